"""``AsyncIO``: async handlers on an asyncio event loop (uvloop when installed).

The event-driven model: one thread holds many partially finished requests, each a task on the
loop (see :mod:`typedserve.aio.table`). It suits many long-lived, mostly idle connections,
which thread-per-request strategies pay a thread (and its stack) for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from typedserve.aio.handlers import AsyncHandlerFactory
from typedserve.aio.loops import LoopName, loop_factory
from typedserve.aio.table import RequestTable
from typedserve.drain import DrainReport
from typedserve.errors import ServerClosedError, ServerStateError
from typedserve.host import Host
from typedserve.systemd import heartbeat

__all__ = ["AsyncIO"]

logger = logging.getLogger("typedserve.server")


class AsyncIO:
    """Serve async handlers (``AsyncHandler[AsyncStream]``, ``AsyncHandler[Datagram]``) on an
    event loop owned by this strategy.

    ``loop``: ``"auto"`` (default) uses uvloop when it is installed
    (``pip install 'typedserve[uvloop]'``) and the stdlib loop otherwise; ``"uvloop"`` requires
    it (:class:`~typedserve.errors.TypedServeError` here if missing); ``"asyncio"`` never uses it.

    Example::

        class Echo(AsyncHandler[AsyncStream]):
            async def handle(self) -> None:
                while data := await self.request.read(65536):
                    self.request.write(data)
                    await self.request.drain()

        with Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo,
                    strategy=AsyncIO()) as server:
            server.serve_forever()

    Pairing: the server's type accepts only async handlers with ``AsyncIO`` and only
    synchronous handlers with the other strategies (a mismatch is a mypy error).

    Threads: ``serve_forever`` runs the event loop on its own thread, and handlers run there
    (``state`` needs no lock, and handler code must never block). After ``shutdown()`` the loop
    is not running: requests in flight wait until the drain (``close()`` or
    ``shutdown(grace=...)``) runs the loop again, on the thread that calls it, or until the
    next ``serve_forever``.

    Config: ``timeouts.idle`` bounds each read or drain that waits, ``timeouts.first_byte`` the
    silence before the handler starts, ``timeouts.request`` the whole request (enforced on the
    stream's operations, as with synchronous handlers); ``limits.max_in_flight`` with
    ``limits.overload`` pauses accepting or turns clients away; datagram size and truncation are
    the transport's. Handler errors go to the error policy with the peer.

    Resource handling: the strategy owns its event loop, every task and every connection it
    attached to the loop; the drain cancels tasks still running at the deadline and aborts their
    connections, and :meth:`close` closes the loop.
    """

    def __init__(self, *, loop: LoopName = "auto") -> None:
        self.loop_name: LoopName = loop
        self._new_loop = loop_factory(loop)  # fails now, not at serve time, if uvloop is missing
        self._loop: asyncio.AbstractEventLoop | None = None
        self._table: RequestTable | None = None
        self._closed = False

    # -- what the server reads -------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests whose handler task has not finished."""
        return 0 if self._table is None else self._table.in_flight

    @property
    def capacity(self) -> int | None:
        """No bound of its own: ``limits.max_in_flight`` is the only limit."""
        return None

    @property
    def process_slots(self) -> int:
        """Every request runs in this process."""
        return 0

    # -- the loop-ownership hooks ------------------------------------------------------------------

    def attach(self, host: Host[Any]) -> None:
        """Create the event loop and the request table for ``host`` (once, at bind time)."""
        if self._closed:
            raise ServerClosedError("this AsyncIO strategy was closed; create a new one")
        if self._table is not None:
            raise ServerStateError("an AsyncIO strategy serves one server; create one per server")
        loop = self._new_loop()
        # The server's overloads admit only async handler factories with AsyncIO.
        factory = cast(AsyncHandlerFactory[Any, Any], host.handler)
        self._loop, self._table = loop, RequestTable(loop, host, factory)

    def run(self, host: Host[Any]) -> None:
        """Run the event loop on this thread until ``host.stopping``; accept while it runs."""
        loop, table = self._attached()
        loop.run_until_complete(self._serve(host, loop, table))

    @staticmethod
    async def _serve(host: Host[Any], loop: asyncio.AbstractEventLoop, table: RequestTable) -> None:
        stopped: asyncio.Future[None] = loop.create_future()

        def stop() -> None:
            if not stopped.done():
                stopped.set_result(None)

        def request_stop() -> None:  # any thread, or a signal handler
            with contextlib.suppress(RuntimeError):  # closed loop: nothing runs to stop
                loop.call_soon_threadsafe(stop)

        host.on_stop(request_stop)
        if host.stopping:
            return
        table.start(stopped)
        with heartbeat() as pulse:  # beats on the event loop: a blocked loop stops them
            stop_beating = pulse.keep_beating(loop.call_later)
            try:
                await stopped
            finally:
                stop_beating()
                table.pause()

    def drain(self, host: Host[Any], grace: float) -> DrainReport:
        """Serve the backlog, give requests in flight ``grace`` seconds, cancel the rest."""
        loop, table = self._attached()
        return loop.run_until_complete(table.drain(grace))

    def close(self, timeout: float | None = None) -> int:
        """Cancel what still runs, close the event loop; return how many tasks ignored the cancel.

        ``timeout`` is unused: after the drain nothing should be left, and what is left is
        cancelled at once.
        """
        if self._closed:
            return 0
        self._closed = True
        loop, table = self._loop, self._table
        self._loop = self._table = None
        if loop is None or table is None:
            return 0
        try:
            left = loop.run_until_complete(table.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
        return left

    def _attached(self) -> tuple[asyncio.AbstractEventLoop, RequestTable]:
        if self._loop is None or self._table is None:
            raise ServerClosedError("the AsyncIO strategy is not attached to a bound server")
        return self._loop, self._table

    def __repr__(self) -> str:
        return f"AsyncIO(loop={self.loop_name!r})"
