"""``Lingering``: refused connections the AsyncIO table reads and discards until their end.

A connection turned away (busy reply, FIN sent) must not be closed while its peer may still
send: input arriving after a close makes the kernel reset the connection, destroying the busy
reply. So, as the selector loop's parking does, the table keeps reading and discarding until the
peer's EOF, or :data:`~typedserve.drain.LINGER` seconds, then closes it. Loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from typedserve.drain import LINGER
from typedserve.requests import Request

__all__ = ["Lingering"]


class Lingering:
    """The refused connections one event loop is reading to their end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closers: dict[int, Callable[[], None]] = {}  # by fd: what ends each
        self._emptied: asyncio.Future[None] | None = None  # a drain waits for the last one

    def __len__(self) -> int:
        return len(self._closers)

    def linger(self, request: Request) -> None:
        """Read and discard ``request``'s input until its EOF (at most ``LINGER`` seconds),
        then close it."""
        conn = request.connection
        if conn is None:
            request.close()
            return
        loop, fd = self._loop, conn.fileno()

        def readable() -> None:
            try:
                data = conn.recv(65_536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                done()

        def done() -> None:
            if self._closers.pop(fd, None) is None:
                return
            loop.remove_reader(fd)
            timer.cancel()
            request.close()
            waiter = self._emptied
            if not self._closers and waiter is not None and not waiter.done():
                waiter.set_result(None)

        self._closers[fd] = done
        loop.add_reader(fd, readable)
        timer = loop.call_later(LINGER, done)

    async def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until every refused connection has ended."""
        if self._closers and timeout > 0:
            self._emptied = self._loop.create_future()
            await asyncio.wait([self._emptied], timeout=timeout)

    def close_all(self) -> None:
        """Close every lingering connection now."""
        for done in list(self._closers.values()):
            done()
