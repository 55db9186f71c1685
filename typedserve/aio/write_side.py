"""The write side of :class:`~typedserve.aio.AsyncStream`: writes, drains, flow control and the
transport's controls (half-close, close, abort, addresses).

``WriteSide`` is AsyncStream's base class, kept apart from the read side that every message
goes through (:mod:`typedserve.aio.stream`). A method or slot found on a base class is looked up
through the same per-type cache as one on the class itself, so the split adds no indirection to
a call. It has no ``__init__``: ``AsyncStream.__init__`` sets every attribute, these included,
so creating a stream makes no extra call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Generic

from typedserve.errors import StateError
from typedserve.requests import AddrT_co

__all__ = ["WriteSide"]

NO_EXPIRY: Final = 0.0
"""``_expires`` when no wait is timed."""


class WriteSide(asyncio.Protocol, Generic[AddrT_co]):
    """What an :class:`~typedserve.aio.AsyncStream` does with the transport besides reading
    (``AddrT_co``: the type of its addresses, ``peer`` and ``local``).

    ``write`` is the transport's own ``write`` while the connection is up; ``drain`` returns a
    future that is already done while the transport is not paused. After a loss or the request
    deadline both are replaced by functions raising the error (see ``_fail_writes``).
    """

    __slots__ = (
        "_done",
        "_drain_waiter",
        "_expired",
        "_expires",
        "_idle",
        "_loop",
        "_ready",
        "_transport",
        "_write_error",
        "drain",
        "peer",
        "write",
    )

    write: Callable[[bytes | bytearray | memoryview], None]
    """Send ``data`` (buffered by the transport while the socket cannot take it).

    Raises ``ConnectionResetError`` (or the socket error) once the connection is lost and
    ``TimeoutError`` after the request deadline. While the connection is up this *is* the
    transport's ``write``, with nothing in between.
    """

    drain: Callable[[], Awaitable[None]]
    """Wait until the transport's write buffer is below its high-water mark.

    Await the result at once: a lost connection or an expired deadline may be raised by the
    call itself. While the buffer is below the mark it returns a future that is already done,
    so awaiting it does not suspend the handler.
    """

    peer: AddrT_co
    _loop: asyncio.AbstractEventLoop
    _idle: float | None  # timeouts.idle, for each read and drain
    _transport: asyncio.Transport | None
    _write_error: BaseException | None
    _drain_waiter: asyncio.Future[None] | None
    _done: asyncio.Future[None]  # a future that is already done
    _ready: Callable[[], Awaitable[None]]  # what drain is while not paused
    _expires: float  # monotonic time at which the current wait times out
    _expired: str  # the name of the timeout that ``_expires`` stands for

    def _drain_open(self) -> Awaitable[None]:
        """``drain`` while the transport is not paused: a future that is already done (no
        suspension), unless the transport is closing. A failed ``transport.write`` only
        schedules ``connection_lost``; a handler looping on ``write``/``drain`` would never
        suspend to let it run, and would hold the event loop (the whole server) forever."""
        transport = self._transport
        if transport is not None and transport.is_closing():
            return self._drain_closing()
        return self._done

    async def _drain_closing(self) -> None:
        await asyncio.sleep(0)  # let connection_lost run: it fails the writes
        if self._write_error is not None:
            raise self._write_error
        raise ConnectionResetError(f"the connection to {self.peer!r} is closing")

    def _write_unconnected(self, data: bytes | bytearray | memoryview) -> None:
        raise ConnectionResetError(f"the connection to {self.peer!r} is not attached")

    def _write_failed(self, data: bytes | bytearray | memoryview) -> None:
        assert self._write_error is not None
        raise self._write_error

    def _drain_failed(self) -> Awaitable[None]:
        assert self._write_error is not None
        raise self._write_error

    def _fail_writes(self, exc: BaseException) -> None:
        """From now on every write and drain raises ``exc``."""
        self._write_error = exc
        self.write = self._write_failed
        self.drain = self._drain_failed

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Send each buffer of ``data`` in order."""
        if self._write_error is not None:
            raise self._write_error
        if self._transport is None:
            self._write_unconnected(b"")
        else:
            self._transport.writelines(data)

    async def _wait_writable(self) -> None:
        if self._drain_waiter is not None:
            raise StateError(f"another task is already draining the stream to {self.peer!r}")
        if self._idle is not None:
            self._expires, self._expired = time.monotonic() + self._idle, "idle"
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None
            self._expires = NO_EXPIRY

    def write_eof(self) -> None:
        """Half-close: the peer reads end of stream; reading from it goes on."""
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    def close(self) -> None:
        """Close the connection after the buffered writes are sent (the server does this)."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close the connection at once, discarding buffered writes."""
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        """Whether the connection is closed or closing."""
        return self._transport is None or self._transport.is_closing()

    def pause_writing(self) -> None:
        """The transport's write buffer is full: :meth:`drain` will wait."""
        if self._write_error is None:
            self.drain = self._wait_writable

    def resume_writing(self) -> None:
        """The write buffer has room again: wake a waiting :meth:`drain`."""
        if self._write_error is None:
            self.drain = self._ready
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def local(self) -> AddrT_co:
        """The local end of the connection (``getsockname()``)."""
        local: AddrT_co = self.get_extra_info("sockname")  # the transport's Any, named
        return local

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra information (``"sockname"``, ``"peername"``, ``"socket"``...)."""
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)
