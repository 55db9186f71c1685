"""``SelectorLoop``: the server's own loop, for every dispatching strategy.

One selector holds the listening socket, a wake-up fd (so a stop takes effect at once, not at
the next poll) and any fd a strategy watches (a forked child's pidfd, a worker's control
pipe). Each time the listener is readable the loop takes a bounded batch of requests from the
transport; each goes through :class:`~typedserve._serving.Serving` (counting, access policy)
and the :class:`~typedserve.admission.AdmissionPolicy` (serve, reject, or pause accepting),
then to ``strategy.submit``. Accept errors that mean "out of fds or memory" pause accepting
for the :class:`~typedserve.admission.AcceptBackoff` delay.

The drain lives here too: serve what was queued when the stop came, wait for the strategy to
finish what is in flight (woken by ``notify_when_available``), cut what is left at the
deadline, and refuse what arrived since, cleanly.

Threads: everything runs on the thread that owns the loop (the serving thread, then the one
draining); a stop is asked through the shared :class:`~typedserve._lifecycle.StopSignal`
(any thread or a signal handler), which wakes the selector. A forked worker builds a new loop
rather than sharing its parent's kernel objects.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable
from typing import Generic

from typedserve._lifecycle import NEVER, StopSignal
from typedserve._reactor import Reactor
from typedserve._serving import Serving
from typedserve.admission import AcceptBackoff, AdmissionPolicy, log_backoff
from typedserve.config import ServerConfig
from typedserve.counters import ACCEPTED, REJECTED
from typedserve.drain import DrainReport
from typedserve.host import ListenerOnDrain
from typedserve.requests import RequestT
from typedserve.strategies.base import Strategy
from typedserve.transports.base import Transport

__all__ = ["BATCH", "SelectorLoop"]


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
        self._dispatched = 0
        self._draining = False
        self._listening = False
        self._paused = False  # full: accepting resumes when a request finishes
        self._resume_at: float | None = None  # backing off after an accept error until then
        self._backoff = AcceptBackoff()

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Dispatch until a stop is requested."""
        stop = self.stop
        while not stop.requested:
            self.run_once(self.poll_timeout(None))

    def run_once(self, timeout: float | None, limit: int = BATCH) -> int:
        """Wait once for readiness and dispatch up to ``limit`` requests; return how many."""
        self._limit, self._dispatched = limit, 0
        self.wait_once(timeout)
        if self._resume_at is not None and time.monotonic() >= self._resume_at:
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
        while not self.stop.requested:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if self.run_once(self.poll_timeout(remaining), limit=1):
                return True
        return False

    def poll_timeout(self, timeout: float | None) -> float | None:
        """``timeout``, shortened to the end of an accept back-off."""
        if self._resume_at is None:
            return timeout
        wait = max(0.0, self._resume_at - time.monotonic())
        return wait if timeout is None else min(wait, timeout)

    def _dispatch_ready(self, limit: int, stop: StopSignal) -> int:
        if self._draining:
            self._refuse_backlog()
            return 0
        # Everything the loop touches per request is bound once here, not looked up each time.
        receive, strategy, submit = self.transport.receive, self.strategy, self.strategy.submit
        serving = self.serving
        serve, verify, row, policy = (
            serving.serve,
            serving.verify,
            serving.counters.row,
            self.policy,
        )
        dispatched = 0
        while dispatched < limit and not stop.requested:
            full = policy.full(strategy.in_flight)
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
            try:
                submit(serve, request)
            except Exception as exc:
                serving.submit_failed(exc, request)
            dispatched += 1
        return dispatched

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

    # -- draining --------------------------------------------------------------------------------

    def drain(
        self, grace: float, listener: ListenerOnDrain, release: Callable[[], None]
    ) -> DrainReport:
        """Drain within ``grace`` seconds (see ``LoopHost.drain``); ``release`` closes this
        process's copy of the listener when ``listener="release"``."""
        deadline = time.monotonic() + grace
        strategy, serving, row = self.strategy, self.serving, self.serving.counters.row
        self._resume_at, self._paused = None, False
        backlog = listener != "leave"
        self.set_listening(backlog)
        in_flight_before, refused_before = strategy.in_flight, row[REJECTED]
        taken = self._take_backlog(deadline) if backlog else 0
        if listener == "release":
            self.set_listening(False)
            release()
            backlog = False
        self._draining = True
        try:
            while strategy.in_flight and (left := deadline - time.monotonic()) > 0:
                strategy.notify_when_available(self.waker.wake)
                if strategy.in_flight:
                    self.run_once(left)
            still_running = strategy.in_flight
            serving.cutting = bool(still_running)
            serving.cut_running()
            if backlog:
                self._refuse_backlog()
        finally:
            self._draining = False
        completed = in_flight_before + taken - still_running
        return DrainReport(completed, still_running, row[REJECTED] - refused_before)

    def _take_backlog(self, deadline: float) -> int:
        """Serve what was already queued when the stop came (bounded by the backlog size);
        return how many requests were dispatched."""
        budget = total = self._backlog
        while budget > 0 and time.monotonic() < deadline:
            taken = self._dispatch_ready(min(budget, BATCH), NEVER)
            if not taken or self._paused:
                break
            budget -= taken
        if self._paused:  # the strategy is full: what is still queued will be refused
            self._paused = False
            self.set_listening(True)
        return total - budget

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
