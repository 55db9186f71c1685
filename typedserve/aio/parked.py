"""``ParkedStreams``: connections the AsyncIO table holds with no task until their first byte.

The AsyncIO mirror of the selector loop's :mod:`typedserve._parking` (first-byte part). A task
per connection costs about 2 KiB (the ``asyncio.Task``, its coroutine frames, the runner, the
task registry's weak references); a connection that has sent nothing needs none of it. So a
new connection with no input yet is attached to the loop by a short task that then ends, and
waits here: its stream's pending read is a plain future, resolved by ``data_received`` (or the
end, or the loss) like any read, or failed with ``TimeoutError`` by the table's sweep at
``timeouts.first_byte``. Resolved, the connection is handed back to the table, which starts its
serving task; timed out, it is closed and counted as a slow client.

A drain serves what sends its first byte within :data:`~typedserve.drain.PENDING_WAIT`, as the
selector loop does, then refuses the rest (an orderly close: an end, never a reset).

Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from typedserve.aio.stream import AsyncStream
from typedserve.counters import FINISHED, REJECTED, SLOW, Counters
from typedserve.observe import Outcome

__all__ = ["ParkedStreams"]

logger = logging.getLogger("typedserve.server")


class ParkedStreams:
    """The streams waiting for their first byte on one event loop (see the module docstring).

    ``ready(stream)`` is called when one has input (or ended, or was lost): it starts the
    stream's serving task.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        first_byte: float,
        counters: Counters,
        ready: Callable[[AsyncStream[Any]], None],
        ended: Callable[[AsyncStream[Any], Outcome], None] | None = None,
    ) -> None:
        self._loop = loop
        self._first_byte = first_byte
        self._counters = counters
        self._ready = ready
        self._ended = ended  # the server's observers (if any) hear of a stream ended here
        self.streams: dict[AsyncStream[Any], asyncio.Future[bytes]] = {}
        """The parked streams and the read each waits on (the table's sweep expires them)."""
        self._emptied: asyncio.Future[None] | None = None  # a drain waits for the last one

    def __len__(self) -> int:
        return len(self.streams)

    def park(self, stream: AsyncStream[Any]) -> None:
        """Hold ``stream`` (attached to the loop, no input yet) until its first byte."""
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        stream._waiter = waiter  # what data_received, eof_received and connection_lost resolve
        stream._expires = time.monotonic() + self._first_byte
        stream._expired = "first_byte"
        self.streams[stream] = waiter
        waiter.add_done_callback(partial(self._woken, stream))

    def _woken(self, stream: AsyncStream[Any], waiter: asyncio.Future[bytes]) -> None:
        if self.streams.pop(stream, None) is None:
            return  # refused or aborted meanwhile
        if not self.streams and self._emptied is not None and not self._emptied.done():
            self._emptied.set_result(None)
        if waiter.cancelled():
            return
        if isinstance(waiter.exception(), TimeoutError):  # the sweep: timeouts.first_byte
            self._counters.add(SLOW)
            self._counters.add(FINISHED)
            logger.debug("closed %r: nothing received within timeouts.first_byte", stream)
            if self._ended is not None:
                self._ended(stream, "slow")
            stream.close()
            return
        self._ready(stream)  # input, an end or a loss: the handler sees which

    async def wait_for_input(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until no stream is parked (a drain: what sends its
        first byte meanwhile goes to the table, and is served)."""
        if self.streams and timeout > 0:
            self._emptied = self._loop.create_future()
            await asyncio.wait([self._emptied], timeout=timeout)

    def refuse_all(self) -> int:
        """Close every parked stream in order (a FIN; nothing was read, so no reset), counted
        as rejected; how many."""
        parked = list(self.streams)
        self.streams.clear()
        for stream in parked:
            self._counters.add(REJECTED)
            if self._ended is not None:
                self._ended(stream, "rejected")
            stream.close()
        return len(parked)

    def abort_all(self) -> None:
        """Drop every parked stream at once (the table is closing), counted as finished."""
        parked = list(self.streams)
        self.streams.clear()
        for stream in parked:
            self._counters.add(FINISHED)
            if self._ended is not None:
                self._ended(stream, "cut")
            stream.abort()
