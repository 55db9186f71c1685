"""``SelectorLoop``: the server's own loop, for every dispatching strategy.

One selector (a :class:`~typedserve._reactor.Reactor`) holds the listening socket, a wake-up
fd (so a stop takes effect at once, not at the next poll), the connections the loop parks
(:mod:`typedserve._parking`) and any fd a strategy watches (a forked child's pidfd, a worker's
control pipe). Each time the listener is readable the loop takes a bounded batch of requests
from the transport; each goes through :class:`~typedserve._serving.Serving` (counting, access
policy) and the :class:`~typedserve.admission.AdmissionPolicy` (serve, reject, or pause
accepting). A stream connection then waits in the loop until it has something to serve (its
first byte, or a whole frame when the handler declares its framing) and only then goes to
``strategy.submit``. Accept errors that mean "out of fds or memory" pause accepting for the
:class:`~typedserve.admission.AcceptBackoff` delay. A periodic sweep closes parked
connections past their deadline and cuts running requests past ``timeouts.request`` (for a
serial strategy, whose handler holds the loop thread, a :class:`DeadlineWatch` thread does).

The drain lives here too (:meth:`SelectorLoop.drain`): the kernel stops establishing new
connections (:mod:`typedserve.transports.quiesce`), what was queued at the stop is served, parked
connections are served, refused or closed, requests in flight get until the deadline, what is
left is cut, and arrivals are refused cleanly (busy hook, FIN, linger) rather than reset.

Threads: all on the thread owning the loop (serving, then draining); a stop comes through the
shared :class:`~typedserve._lifecycle.StopSignal`, which wakes the selector. A forked worker
builds a loop of its own.
"""

from __future__ import annotations

import collections
import logging
import selectors
import time
from collections.abc import Callable
from typing import Any, Generic

from typedserve._lifecycle import NEVER, StopSignal
from typedserve._parking import Parking
from typedserve._pulling import PULL_SUPPORTED, PullSource
from typedserve._reactor import Reactor
from typedserve._serving import Serving
from typedserve._watches import DeadlineWatch, Watchdog
from typedserve.admission import AcceptBackoff, Admission, AdmissionPolicy, log_backoff
from typedserve.config import ServerConfig
from typedserve.counters import ACCEPTED, REJECTED
from typedserve.drain import PENDING_WAIT, SETTLE, DrainReport
from typedserve.handlers import declared_framing, declares_speaks_first
from typedserve.host import ListenerOnDrain
from typedserve.requests import RequestT
from typedserve.strategies.base import Pulling, Strategy
from typedserve.systemd import heartbeat
from typedserve.transports.base import Transport
from typedserve.transports.quiesce import hold_new_connections, queued_connections

__all__ = ["BATCH", "SelectorLoop"]

logger = logging.getLogger("typedserve.server")

BATCH = 16  # requests taken per readiness event, so one busy listener cannot starve wake-ups


class SelectorLoop(Reactor, Generic[RequestT]):
    """The selector loop of one server in one process (see the module docstring)."""

    def __init__(
        self,
        transport: Transport[RequestT],
        strategy: Strategy,
        serving: Serving[RequestT],
        config: ServerConfig,
        stop: StopSignal,
    ) -> None:
        self.transport = transport
        self.strategy = strategy
        self.serving = serving
        self.policy = AdmissionPolicy.for_server(config, strategy.capacity)
        self._backlog = max(config.backlog, BATCH)
        super().__init__(stop)
        self._limit = BATCH  # requests to take in this wait (1 for handle_request)
        self._dispatched, self._draining = 0, False
        self._serve_late = False  # while draining: serve what the listener still yields
        self._drain_deadline: float | None = None  # while draining: nothing starts after it
        self._listening = False
        self._paused = False  # full: accepting resumes when a request finishes
        self._resume_at: float | None = None  # backing off after an accept error until then
        self._backoff = AcceptBackoff()
        self._waiting: collections.deque[Any] = collections.deque()  # ready, strategy full
        timeouts, factory = config.timeouts, serving.factory
        framing = declared_framing(factory)
        self.parking = Parking(
            self,
            serving,
            self._ready,
            first_byte=timeouts.first_byte,
            budget=timeouts.request,
            framing=framing,
        )
        serving.linger = self._linger
        parks = framing is not None or timeouts.first_byte is not None
        self._arrive: Callable[[Any], bool] | None = (
            self.parking.arrived if parks and not declares_speaks_first(factory) else None
        )
        sweeps = timeouts.first_byte is not None or timeouts.request is not None
        self._next_sweep = time.monotonic() + self.parking.period if sweeps else None
        self._watches_deadlines = strategy.serial and timeouts.request is not None
        self._deadline_watch: DeadlineWatch | None = None  # started by the first run
        receiver = getattr(transport, "receiver", None)  # datagram transports
        if receiver is not None and receiver() is None:
            receiver = None  # its receive is a subclass's own
        self._pull: tuple[PullSource[RequestT], Pulling] | None = None
        # Not with limits.overload="reject": the loop must see what it turns away.
        pulls = PULL_SUPPORTED and self.policy.pause_when_full
        if receiver is not None and pulls and isinstance(strategy, Pulling):
            self._pull = (PullSource(transport, receiver, serving), strategy)

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Dispatch until a stop is requested, beating the systemd watchdog each time round
        (datagrams: the strategy's threads may receive them, see :mod:`typedserve._pulling`)."""
        self._start_deadline_watch()
        stop, pulling = self.stop, self._pull
        pull = None
        if pulling is not None:
            pull, lender = pulling
            self._paused, self._resume_at = False, None
            self.set_listening(False)
            lender.pull(pull.open(self.waker.wake), self.policy.limit)
        try:
            with heartbeat() as pulse:
                while not stop.requested:
                    self.run_once(pulse.beat(self.poll_timeout(None)))
                    if pull is not None and pull.error is not None:
                        raise pull.error
        finally:
            if pull is not None:
                self._stop_pulling(pull)

    def _stop_pulling(self, pull: PullSource[RequestT]) -> None:
        """Take the socket back from the strategy's threads; what they received after the
        stop waits here, as a parked connection that became ready does."""
        pull.stop()
        serving = self.serving
        for request in pull.take_leftovers():  # (a pulling thread may still be counting)
            if serving.verify is None or serving.verified_by_worker(serving.verify, request):
                self._waiting.append(request)
        self.set_listening(True)  # (the next run_once, the drain's, serves them without waiting)

    def run_once(self, timeout: float | None, limit: int = BATCH) -> int:
        """Wait once for readiness and dispatch up to ``limit`` new requests (plus any parked
        connection that became ready); return how many went to the strategy."""
        self._limit, self._dispatched = limit, 0
        if self._waiting and self._can_serve_waiting():
            timeout = 0.0  # not a wake-up byte: another wait may have drained it (begin_drain)
        self.wait_once(timeout)
        self.parking.take_returns()
        if self._waiting:
            self._serve_waiting()
        if self._next_sweep is not None or self._resume_at is not None:
            now = time.monotonic()
            if self._next_sweep is not None and now >= self._next_sweep:
                self._next_sweep = now + self.parking.period
                self.parking.sweep(now)
                self.serving.cut_expired(now)
            if self._resume_at is not None and now >= self._resume_at:
                self._resume_at = None
                self.set_listening(True)
        if self._paused:
            self._maybe_resume()
        return self._dispatched

    def _on_listener(self) -> None:
        self._dispatched += self._dispatch_ready(self._limit, self.stop)

    def serve_one(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: forever) for one request and dispatch it;
        whether one was dispatched (``False`` also when a stop is requested)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._start_deadline_watch()
        while not self.stop.requested:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if self.run_once(self.poll_timeout(remaining), limit=1):
                return True
        return False

    def _start_deadline_watch(self) -> None:
        """A serial strategy's handler runs on this thread, so the sweep cannot cut it: start
        the thread that does (once; it lives until :meth:`close`)."""
        if self._watches_deadlines and self._deadline_watch is None:
            self._deadline_watch = DeadlineWatch(self.parking.period, self.serving.cut_expired)

    def poll_timeout(self, timeout: float | None) -> float | None:
        """``timeout``, shortened to the next sweep or the end of an accept back-off."""
        wake_at = self._next_sweep
        if self._resume_at is not None:
            wake_at = self._resume_at if wake_at is None else min(wake_at, self._resume_at)
        if wake_at is None:
            return timeout
        wait = max(0.0, wake_at - time.monotonic())
        return wait if timeout is None else min(wait, timeout)

    def _dispatch_ready(self, limit: int, stop: StopSignal) -> int:
        if self._draining:
            if not self._serve_late or self._past_drain_deadline():
                self._refuse_backlog()
                return 0
            stop = NEVER  # a straggler the hold let through: served like the backlog
        # Everything the loop touches per request is bound once here, not looked up each time.
        receive, strategy, submit = self.transport.receive, self.strategy, self.strategy.submit
        serving, arrive = self.serving, self._arrive
        serve, verify, row, policy = (
            serving.serve,
            serving.verify,
            serving.counters.row,
            self.policy,
        )
        bound = policy.limit  # None: nothing to check per request
        dispatched = 0
        while dispatched < limit and not stop.requested:
            # policy.full(strategy.in_flight), inlined: two Python-level calls per request
            full = bound is not None and strategy.in_flight >= bound
            if full and policy.pause_when_full:
                self._pause()
                break
            try:
                request = receive()
            except OSError as exc:
                self._back_off(exc)
                break
            if request is None:
                break
            if self._backoff.delay:
                self._backoff.succeeded()
            row[ACCEPTED] += 1
            if verify is not None and not serving.verified(verify, request):
                continue
            if full:
                serving.reject(request)
                continue
            if arrive is not None and request.connection is not None and not arrive(request):
                continue  # parked until it has something to serve
            try:
                submit(serve, request)
            except Exception as exc:
                serving.submit_failed(exc, request)
            dispatched += 1
        return dispatched

    def _ready(self, request: Any) -> None:
        """A parked connection has something to serve: admit it again (the strategy may have
        filled up since it was accepted). Once a stop is asked it waits for the drain, which
        serves it before its deadline or refuses it: a serial strategy would otherwise serve
        every connection that became ready in this wait, one after the other, before the loop
        could hear the stop."""
        if (self.stop.requested and not self._draining) or self._past_drain_deadline():
            if self._draining:
                self.serving.reject(request)
            else:
                self._waiting.append(request)
            return
        decision = self.policy.decide(self.strategy.in_flight)
        if decision is Admission.SERVE:
            self._submit(request)
        elif decision is Admission.PAUSE:
            self._waiting.append(request)
            self.strategy.notify_when_available(self.waker.wake)
        else:
            self.serving.reject(request)

    def _past_drain_deadline(self) -> bool:
        deadline = self._drain_deadline
        return deadline is not None and time.monotonic() >= deadline

    def _can_serve_waiting(self) -> bool:
        """Whether a waiting request can go to the strategy now: not between a stop and its
        drain (which serves them, or refuses them past its deadline), nor while it is full."""
        stopped = self.stop.requested and not self._draining
        return not stopped and not self.policy.full(self.strategy.in_flight)

    def _serve_waiting(self) -> None:
        waiting = self._waiting
        while waiting and self._can_serve_waiting():
            if self._past_drain_deadline():
                while waiting:
                    self.serving.reject(waiting.popleft())
                return
            self._submit(waiting.popleft())
        if waiting and (self._draining or not self.stop.requested):
            self.strategy.notify_when_available(self.waker.wake)

    def _submit(self, request: Any) -> None:
        try:
            self.strategy.submit(self.serving.serve, request)
        except Exception as exc:
            self.serving.submit_failed(exc, request)
        self._dispatched += 1

    def _linger(self, request: Any) -> None:
        if request.connection is None:
            request.close()
        else:
            self.parking.linger(request)

    # -- accepting, pausing and backing off ------------------------------------------------------

    def set_listening(self, on: bool) -> None:
        """Watch the listening socket or stop watching it."""
        if on == self._listening:
            return
        if on:
            self.selector.register(self.transport.fileno(), selectors.EVENT_READ, self._on_listener)
        else:
            self.selector.unregister(self.transport.fileno())
        self._listening = on

    def _pause(self) -> None:
        self._paused = True
        self.set_listening(False)
        self.strategy.notify_when_available(self.waker.wake)
        self._maybe_resume()  # a request may have finished before the callback was registered

    def _maybe_resume(self) -> None:
        if not self.policy.full(self.strategy.in_flight):
            self._paused = False
            if self._resume_at is None:
                self.set_listening(True)

    def _back_off(self, exc: OSError) -> None:
        delay = self._backoff.failed(exc)  # re-raises what is not a resource error
        log_backoff(self.transport.address, exc, delay)
        self._resume_at = time.monotonic() + delay
        self.set_listening(False)

    def close(self) -> None:
        """Stop the deadline watch; close the parked connections, then the selector and the
        wake-up pair."""
        if self._deadline_watch is not None:
            self._deadline_watch.stop()
            self._deadline_watch = None
        self.parking.close()
        super().close()

    def abandon(self) -> None:
        """In a forked child: release this process's copies of the loop's fds (the selector,
        the wake-up pair, parked connections) without ending anything the parent serves."""
        self._deadline_watch = None  # the thread was not forked: nothing to stop here
        self.parking.abandon()
        super().close()

    # -- draining --------------------------------------------------------------------------------

    def drain(self, grace: float, listener: ListenerOnDrain) -> DrainReport:
        """Drain within ``grace`` seconds (see ``LoopHost.drain``)."""
        deadline = time.monotonic() + grace
        strategy, serving, row = self.strategy, self.serving, self.serving.counters.row
        self._resume_at, self._paused = None, False
        rejected_before, self._dispatched = row[REJECTED], 0
        in_flight_before = strategy.in_flight
        watchdog = Watchdog(deadline, serving.cut_running) if strategy.serial else None
        try:
            backlog, held = listener != "leave", False
            self.set_listening(backlog)
            if backlog:
                fd = self.transport.fileno()
                queued = queued_connections(fd)
                # TCP (whose queue TCP_INFO measures): the hold drops new SYNs, so only the
                # handshakes answered before it can still land; each is served, as the
                # backlog is. A Unix listener's hold lets arrivals in one at a time for as
                # long as it lasts: those are refused.
                self._serve_late = queued is not None
                # "share": the supervisor held the socket before telling this worker to stop.
                held = hold_new_connections(fd) if listener == "refuse" else True
                self._take_backlog(deadline, self._backlog if queued is None else queued)
            # Draining first: what begin_drain reads from the listener is refused, not served
            # (the backlog was taken above); past the deadline it reads nothing, so nothing
            # starts that no one would cut (an Inline drain's watchdog has already fired).
            self._draining, self._drain_deadline = True, deadline
            self.parking.begin_drain(read=time.monotonic() < deadline)
            logger.debug(
                "draining %s: %d request(s) running, %d pending in the loop",
                self.transport.address,
                strategy.in_flight,
                self.parking.pending,
            )
            # What went to the strategy so far (the backlog, parked connections that were
            # ready); each run_once below counts its own dispatches from zero.
            taken = self._dispatched
            now = time.monotonic()
            settle = now + SETTLE if backlog and held else 0.0
            pending_until = min(deadline, now + PENDING_WAIT)
            parking = self.parking
            while (now := time.monotonic()) < deadline:
                if now >= pending_until and parking.pending:
                    parking.refuse_pending()
                busy = strategy.in_flight or self._waiting or parking.lingering or parking.pending
                if not busy and now >= settle:
                    break
                strategy.notify_when_available(self.waker.wake)
                wake_at = deadline
                if parking.pending:
                    wake_at = pending_until
                elif not busy:
                    wake_at = settle
                taken += self.run_once(max(0.0, min(deadline, wake_at) - now))
            parking.refuse_pending()  # past the deadline: nothing pending starts now
            still_running = strategy.in_flight
            serving.cutting = bool(still_running)
            serving.cut_running()
            for request in self._waiting:
                serving.reject(request)
            self._waiting.clear()
            if backlog:
                self._refuse_backlog()
        finally:
            self._draining, self._drain_deadline, self._serve_late = False, None, False
            if watchdog is not None:
                watchdog.cancel()
        completed = in_flight_before + taken - still_running
        return DrainReport(completed, still_running, row[REJECTED] - rejected_before)

    def resume_after_drain(self) -> None:
        """Park connections again (a server that serves after a drain)."""
        self.parking.closing = False

    def _take_backlog(self, deadline: float, queued: int) -> None:
        """Serve the ``queued`` requests that were waiting when the stop came (one at a time
        for a serial strategy, so the deadline is checked between them)."""
        batch = 1 if self.strategy.serial else BATCH
        while queued > 0 and time.monotonic() < deadline:
            taken = self._dispatch_ready(min(queued, batch), NEVER)
            self._dispatched += taken
            queued -= taken
            if not taken or self._paused:
                break
        if self._paused:  # the strategy is full: what is still queued will be refused
            self._paused = False
            self.set_listening(True)

    def _refuse_backlog(self) -> None:
        """Take every request waiting in the backlog and refuse it cleanly (bounded)."""
        serving = self.serving
        for _ in range(self._backlog):
            try:
                request = self.transport.receive()
            except OSError:
                return
            if request is None:
                return
            if serving.admit(request):
                serving.reject(request)
