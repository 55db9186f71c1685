"""``RequestTable``: the requests in flight on one event loop, and the loop callbacks that feed it.

This is the event-driven server model: one thread, many partially finished requests, each a
task in an explicit table. The table

- accepts from the transport in a reader callback on its fd (the transport's own non-blocking
  ``receive``, so access policy, counters, datagram truncation and accept errors behave as in
  the synchronous loop), and stops reading the fd while ``limits.max_in_flight`` requests
  run (the shared :mod:`typedserve.admission` policy decides, as in the selector loop);
- starts one task per request: a stream connection becomes an :class:`AsyncStream` attached to
  the loop (:mod:`.attach`), served by a :class:`ResumableTask` that the stream's callbacks
  resume in place; one that has sent nothing yet waits with no task (:mod:`.parked`); a
  datagram is handed over as is;
- enforces the stream timeouts (``idle``, ``first_byte``, ``request``) with one periodic sweep;
- drains on shutdown: stops accepting, serves what was queued, waits up to the grace for the
  tasks, cancels the rest, aborts connections still flushing their replies;
- reports each request's end to the server's observers, if any (:mod:`.observed`). Loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Final

from typedserve.admission import AcceptBackoff, AdmissionPolicy, log_backoff
from typedserve.aio.attach import attach, has_input, new_stream, open_datagram, opens_first
from typedserve.aio.handlers import AsyncHandlerFactory
from typedserve.aio.linger import Lingering
from typedserve.aio.observed import ObservedStreams, serve_datagram_observed
from typedserve.aio.parked import ParkedStreams
from typedserve.aio.resumable import ResumableTask
from typedserve.aio.stream import DEFAULT_LIMIT, AsyncStream
from typedserve.counters import FINISHED, SLOW
from typedserve.drain import PENDING_WAIT, SETTLE, DrainReport
from typedserve.errors import StrategyMismatchError
from typedserve.handlers import declares_speaks_first
from typedserve.host import Host
from typedserve.observe import Outcome, outcome_of
from typedserve.requests import Datagram, Request, StreamRequest
from typedserve.transports.proxied_datagram import ProxiedDatagram
from typedserve.transports.quiesce import hold_new_connections, queued_connections
from typedserve.transports.tls import TLSStreamRequest

__all__ = ["RequestTable"]

logger = logging.getLogger("typedserve.server")

_BATCH: Final = 64  # requests taken per readiness callback, so accepting cannot starve I/O
_CANCEL_WAIT: Final = 1.0  # how long cancelled handlers get to run their ``close``
_CLOSE_ROUNDS: Final = 100
_SWEEP_MIN, _SWEEP_MAX = 0.005, 1.0  # bounds of the sweep's period, in seconds


class RequestTable:
    """The requests in flight on one event loop (see the module docstring).

    ``host`` is the server as strategies see it: the table takes the config, transport and
    context from it, passes each request received through ``host.admit`` (counting, access
    policy), reports handler errors with ``host.report`` and counts finished requests and
    slow clients in ``host.counters``. ``factory`` is the server's async handler factory.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: Host[Any],
        factory: AsyncHandlerFactory[Any, Any],
    ) -> None:
        config = host.config
        timeouts = config.timeouts
        self._loop = loop
        self._host = host
        self._transport = host.transport
        self._counters = host.counters
        self._factory = factory
        self._context = host.context
        self._idle = timeouts.idle
        self._first_byte = None if declares_speaks_first(factory) else timeouts.first_byte
        self._policy = AdmissionPolicy.for_server(config, None)
        self._ready: asyncio.Future[None] = loop.create_future()  # what a free drain() returns
        self._ready.set_result(None)
        # The stdlib loop's transports allocate a buffer per recv unless the protocol brings one.
        self._recv_buffer: memoryview | None = (
            memoryview(bytearray(DEFAULT_LIMIT))
            if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
            else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # 3.12+: datagram tasks start eagerly (a handler that never waits ends in the callback).
        new_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]] = loop.create_task
        if sys.version_info >= (3, 12):
            new_task = partial(asyncio.Task, loop=loop, eager_start=True)
        self._datagram_task = new_task
        observer = host.observer
        self._observed = None if observer is None else ObservedStreams(observer)
        self._serve_datagram: Callable[[Datagram], Coroutine[Any, Any, None]] = (
            self._serve_datagram_plain
            if observer is None
            else partial(serve_datagram_observed, factory, self._context, host, observer)
        )
        self._attaching: set[asyncio.Task[None]] = set()  # silent connections being attached
        self._parked = (  # connections with no input yet: attached, with no task
            None
            if self._first_byte is None
            else ParkedStreams(
                loop,
                self._first_byte,
                self._counters,
                self._serve_attached,
                None if self._observed is None else self._observed.ended,
            )
        )
        self._streams: set[AsyncStream] = set()  # connected, handler running: swept
        self._flushing: set[AsyncStream] = set()  # handler done, replies still being sent
        self._lingering = Lingering(loop)  # refused: read until their end, then closed
        self._fd = self._transport.fileno()
        self._reading = False
        self._accepting = False
        self._refusing = False  # draining: arrivals are turned away
        self._refused = 0  # turned away during the drain
        self._backlog = config.backlog
        self._fatal: BaseException | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._backoff = AcceptBackoff()
        self._resume_handle: asyncio.TimerHandle | None = None
        configured = [t for t in (timeouts.idle, timeouts.first_byte, timeouts.request) if t]
        self._sweep_every = (
            min(_SWEEP_MAX, max(_SWEEP_MIN, min(configured) / 10)) if configured else None
        )
        self._sweep_handle: asyncio.TimerHandle | None = None

    # -- accepting -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests whose handler task has not finished."""
        return len(self._tasks)

    def start(self, stopped: asyncio.Future[None]) -> None:
        """Start accepting (and sweeping for timeouts); a fatal accept error is set on
        ``stopped`` (the future ``AsyncIO.run`` waits on)."""
        self._stopped = stopped
        self._accepting = True
        self._set_reading(True)
        if self._sweep_every is not None and self._sweep_handle is None:
            self._sweep_handle = self._loop.call_later(self._sweep_every, self._sweep)

    def pause(self) -> None:
        """Stop reading the transport's fd (requests in flight go on; :meth:`start` resumes)."""
        self._accepting = False
        self._set_reading(False)
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None

    def _set_reading(self, on: bool) -> None:
        if on == self._reading:
            return
        if on:
            self._loop.add_reader(self._fd, self._on_readable)
        else:
            self._loop.remove_reader(self._fd)
        self._reading = on

    def _on_readable(self) -> None:
        self._take(_BATCH, pause_when_full=self._policy.pause_when_full and not self._refusing)

    def _take(self, budget: int, *, pause_when_full: bool) -> None:
        """Receive up to ``budget`` requests: serve them, or turn them away when full/draining."""
        transport, policy, tasks, host = self._transport, self._policy, self._tasks, self._host
        for _ in range(budget):
            full = policy.full(len(tasks))
            if full and pause_when_full:
                self._set_reading(False)  # resumed by _finished
                return
            try:
                request = transport.receive()
            except OSError as exc:
                self._accept_failed(exc)
                return
            if request is None:
                return
            self._backoff.succeeded()
            if not host.admit(request):
                continue
            if full or self._refusing:
                self._refused += 1
                if host.reject(request):
                    self._lingering.linger(request)
                continue
            self._start(request)

    def _start(self, request: Request) -> None:
        # Each built-in request kind as AsyncIO serves it: a stream on the loop, a datagram as is.
        loop = self._loop
        if isinstance(request, StreamRequest):
            stream = new_stream(loop, self._ready, request, self._idle, self._recv_buffer)
            if self._observed is not None:
                self._observed.began(stream, request)
            if opens_first(request) is not None or (
                self._parked is not None
                and not isinstance(request, TLSStreamRequest)
                and not has_input(request.socket)
            ):  # attach (a PROXY header first), then park: no task while it is silent
                attaching = loop.create_task(self._attach(request, stream))
                self._attaching.add(attaching)  # not in flight: it parks, or starts a task
                attaching.add_done_callback(self._attaching.discard)
                return
            runner = stream._runner = ResumableTask(loop, self._serve_stream(request, stream))
            task = runner.task
        elif isinstance(request, Datagram):
            if isinstance(request, ProxiedDatagram) and not open_datagram(request, self._host):
                return  # refused at its header or by the access policy: reported there
            task = self._datagram_task(self._serve_datagram(request))
            if task.done():  # it ran to its end at once (3.12+): nothing to track
                self._counters.add(FINISHED)
                return
        else:
            if (observer := self._host.observer) is not None:
                observer.request_ended(request, "error", now := time.monotonic(), now)
            request.close()
            self._counters.add(FINISHED)
            raise StrategyMismatchError(
                f"AsyncIO serves stream and datagram transports, got {request!r}"
            )
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _attach(self, request: StreamRequest, stream: AsyncStream[Any]) -> None:
        """Attach a connection that has sent nothing yet, then park it (or serve it, if its
        first bytes came meanwhile). Counts it finished itself if it cannot be attached."""
        observed = self._observed
        ended = None if observed is None else observed.ender(stream)
        try:
            attached = await attach(self._loop, request, stream, None, self._host, ended)
        except BaseException:
            self._counters.add(FINISHED)  # its request ends here
            raise
        parked = self._parked
        if attached is not True:  # False: it ends here; "refused": counted as refused already
            self._counters.add(FINISHED, attached is False)
            if observed is not None:  # reported by attach, or by the access policy
                observed.forget(stream)
        elif (
            parked is None or stream._buffer or stream._eof or isinstance(request, TLSStreamRequest)
        ):  # input already, or nothing parks it (PROXY, TLS)
            self._serve_attached(stream)
        else:
            parked.park(stream)

    def _serve_attached(self, stream: AsyncStream[Any]) -> None:
        """Start the serving task of a stream already attached (it left the parking)."""
        if self._observed is not None:
            self._observed.serving(stream)
        runner = stream._runner = ResumableTask(self._loop, self._serve_stream(None, stream))
        task = runner.task
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._counters.add(FINISHED)
        if (
            self._accepting
            and not self._reading
            and self._resume_handle is None
            and not self._policy.full(len(self._tasks))
        ):
            self._set_reading(True)

    def _accept_failed(self, exc: OSError) -> None:
        try:
            delay = self._backoff.failed(exc)
        except OSError:  # not a resource error: fatal for this loop
            self.pause()
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_exception(exc)
            return
        log_backoff(self._transport.address, exc, delay)
        self._set_reading(False)
        self._resume_handle = self._loop.call_later(delay, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        if self._accepting and not self._policy.full(len(self._tasks)):
            self._set_reading(True)

    # -- serving ---------------------------------------------------------------------------------

    async def _serve_stream(self, request: StreamRequest | None, stream: AsyncStream) -> None:
        """Attach ``request``'s connection to the loop as ``stream`` (``None``: attached
        already, and it has input), wait for its first byte, run the handler, release it."""
        observed = self._observed
        if request is not None and not await attach(
            self._loop,
            request,
            stream,
            self._first_byte,
            self._host,
            None if observed is None else observed.ender(stream),
        ):
            if observed is not None:  # reported by attach, or by the access policy
                observed.forget(stream)
            return
        streams = self._streams
        streams.add(stream)
        completed = False
        outcome: Outcome = "cut"  # unless set below: cancelled (a drain's deadline, the close)
        try:
            if (
                request is None
                or self._first_byte is None
                or await stream._wait_first_byte(time.monotonic() + self._first_byte)
            ):
                # The life cycle is written out here and in _serve_datagram rather than shared:
                # each coroutine level costs a frame resumption on every wake-up.
                try:
                    handler = self._factory(stream, self._context)
                    try:
                        await handler.setup()
                        await handler.handle()
                        await handler.finish()
                    finally:
                        await handler.close()
                    outcome = "completed"
                except Exception as exc:
                    outcome = outcome_of(exc)
                    self._host.report(exc, stream.peer)
            else:
                self._counters.add(SLOW)
                outcome = "slow"
                logger.debug("closed %r: nothing received within timeouts.first_byte", stream)
            completed = True
        finally:
            streams.discard(stream)
            if observed is not None:
                observed.ended(stream, outcome)
            self._release(stream, completed=completed)

    def _release(self, stream: AsyncStream, *, completed: bool) -> None:
        """Close ``stream``: flush its replies after a normal end, drop them after a cancel."""
        if not completed:
            stream.abort()
            return
        stream.close()
        transport = stream._transport
        if not stream._lost and transport is not None and transport.get_write_buffer_size():
            self._flushing.add(stream)
            stream._on_lost = self._flushing.discard

    async def _serve_datagram_plain(self, request: Datagram) -> None:
        try:
            handler = self._factory(request, self._context)
            try:
                await handler.setup()
                await handler.handle()
                await handler.finish()
            finally:
                await handler.close()
        except Exception as exc:
            self._host.report(exc, request.peer)

    # -- timeouts ----------------------------------------------------------------------------------

    def _sweep(self) -> None:
        now = time.monotonic()
        for stream in self._streams:
            stream._expire_if_due(now)
        if self._parked is not None:
            for stream in list(self._parked.streams):
                stream._expire_if_due(now)
        assert self._sweep_every is not None
        self._sweep_handle = self._loop.call_later(self._sweep_every, self._sweep)

    # -- shutting down -----------------------------------------------------------------------------

    async def drain(self, grace: float) -> DrainReport:
        """Serve the backlog, wait up to ``grace`` seconds for the tasks, cut the rest.

        What was queued at the start is served (busy hook if full), silent connections get
        ``PENDING_WAIT`` to send their request, arrivals are refused cleanly. Tasks running at
        the deadline are cancelled (``close`` still runs, up to a second more), connections
        aborted, as are those still sending replies: every socket is closed on return."""
        self.pause()
        self._refused = 0
        deadline = self._loop.time() + grace
        queued = queued_connections(self._fd)  # what was queued at the stop: served
        held = hold_new_connections(self._fd)  # nobody new is established, then reset
        self._take(max(self._backlog, _BATCH) if queued is None else queued, pause_when_full=False)
        running = set(self._tasks)
        parked = self._parked
        logger.debug(
            "draining %s: %d request(s) running, %d pending in the loop",
            self._transport.address,
            len(running),
            len(parked or ()),
        )
        self._refusing = True
        self._set_reading(True)
        try:
            if self._attaching:  # silent connections being attached: each parks or starts
                await asyncio.wait(self._attaching, timeout=grace)
            if parked is not None and parked.streams:  # serve those whose request comes soon
                await parked.wait_for_input(min(PENDING_WAIT, deadline - self._loop.time()))
                self._refused += parked.refuse_all()
            running |= self._tasks
            pending: set[asyncio.Task[None]] = set()
            if running:
                left = max(0.0, deadline - self._loop.time())
                _, pending = await asyncio.wait(running, timeout=left)
            if parked is not None:  # attached, still silent, during the drain
                self._refused += parked.refuse_all()
            if held:  # handshakes answered before the hold complete now: refuse them too
                await asyncio.sleep(min(SETTLE, max(0.0, deadline - self._loop.time())))
            await self._lingering.wait(deadline - self._loop.time())
            await self.close(pending)
        finally:
            self._refusing = False
            self._set_reading(False)
        return DrainReport(len(running) - len(pending), len(pending), self._refused)

    async def close(self, tasks: set[asyncio.Task[None]] | None = None) -> int:
        """Cancel ``tasks`` (default: every task), wait for them, abort what is left; how many
        did not end within a second of being cancelled."""
        self.pause()
        pending = set(self._tasks) if tasks is None else tasks
        pending |= self._attaching
        for task in pending:
            task.cancel()
        left: set[asyncio.Task[None]] = set()
        if pending:
            _, left = await asyncio.wait(pending, timeout=_CANCEL_WAIT)
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self._lingering.close_all()
        if self._parked is not None:
            self._parked.abort_all()
        for stream in [*self._flushing, *self._streams]:
            stream.abort()
        for _ in range(_CLOSE_ROUNDS):  # aborted transports close their sockets a round later
            if not self._flushing:
                break
            await asyncio.sleep(0)
        return len(left)
