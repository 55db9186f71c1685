"""What the AsyncIO request table tells the server's request observers (:mod:`typedserve.observe`).

Used only when the server has observers (``host.observer`` is not ``None``); otherwise the table
never touches this module. :class:`ObservedStreams` remembers each stream connection's request
and start from the moment the table takes it, so that whichever part of the table ends it (the
serving task, the attach, the parking, the drain, the close) reports it once, before the
connection is closed. :func:`serve_datagram_observed` is the table's datagram life cycle with
the report. Everything runs on the event loop's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from typedserve.aio.handlers import AsyncHandlerFactory
from typedserve.aio.stream import AsyncStream
from typedserve.context import ServerContext
from typedserve.host import Host
from typedserve.observe import Outcome, RequestObserver, outcome_of
from typedserve.requests import Datagram, StreamRequest
from typedserve.transports.tls import TLSStreamRequest, record_negotiated

__all__ = ["ObservedStreams", "serve_datagram_observed"]

_AT_ONCE = frozenset({"refused", "rejected"})  # turned away: started is the moment it ended


class ObservedStreams:
    """The stream connections the table will report to ``observer``, with their requests."""

    def __init__(self, observer: RequestObserver) -> None:
        self.observer = observer
        self._streams: dict[AsyncStream[Any], tuple[StreamRequest[Any], float]] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def began(self, stream: AsyncStream[Any], request: StreamRequest[Any]) -> None:
        """The table took ``request``, served as ``stream``: its task starts now."""
        self._streams[stream] = (request, time.monotonic())

    def serving(self, stream: AsyncStream[Any]) -> None:
        """A parked ``stream`` got its first byte: its serving starts now."""
        entry = self._streams.get(stream)
        if entry is not None:
            self._streams[stream] = (entry[0], time.monotonic())

    def forget(self, stream: AsyncStream[Any]) -> None:
        """``stream``'s request was reported elsewhere (the access policy refused it)."""
        self._streams.pop(stream, None)

    def ended(self, stream: AsyncStream[Any], outcome: Outcome) -> None:
        """Report ``stream``'s request (once: later calls do nothing); before its close. Past
        its ``timeouts.request`` deadline a request is ``slow`` (unless cut), as with
        synchronous handlers."""
        entry = self._streams.pop(stream, None)
        if entry is None:
            return
        request, started = entry
        ended = time.monotonic()
        deadline = stream.deadline
        if deadline is not None and ended >= deadline and outcome not in ("cut", *_AT_ONCE):
            outcome = "slow"
        if isinstance(request, TLSStreamRequest) and outcome != "handshake_failed":
            info = stream.tls  # the event loop's handshake: the request answers it too
            if info is not None:
                record_negotiated(request, info)
        self.observer.request_ended(
            request, outcome, ended if outcome in _AT_ONCE else started, ended
        )

    def ender(self, stream: AsyncStream[Any]) -> Callable[[Outcome], None]:
        """``ended`` for ``stream``, for code that knows only the outcome (the attach)."""
        return partial(self.ended, stream)


async def serve_datagram_observed(
    factory: AsyncHandlerFactory[Any, Any],
    context: ServerContext[object],
    host: Host[Any],
    observer: RequestObserver,
    request: Datagram[Any],
) -> None:
    """The table's datagram life cycle, with the request reported when it ends (a cancelled
    handler: ``cut``)."""
    started = time.monotonic()
    outcome: Outcome = "cut"
    try:
        handler = factory(request, context)
        try:
            await handler.setup()
            await handler.handle()
            await handler.finish()
        finally:
            await handler.close()
        outcome = "completed"
    except Exception as exc:
        outcome = outcome_of(exc)
        host.report(exc, request.peer)
    finally:
        observer.request_ended(request, outcome, started, time.monotonic())
