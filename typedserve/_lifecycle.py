"""``Lifecycle``: a server's phase, its legal transitions, and which thread owns the loop.

::

    UNBOUND --bind--> IDLE --serve_forever/handle_request--> SERVING --loop returns--> IDLE
                       |                                                              |
                       +--shutdown(grace)/close--> DRAINING --> DRAINED --serve------>+
    any phase but SERVING and DRAINING --close--> CLOSED (final)

``SERVING`` and ``DRAINING`` have an owner: the thread running the loop or the drain; only
that thread leaves them. ``DRAINED`` is ``IDLE`` with a drain done since the loop last ran, so
a second ``shutdown(grace)`` or ``close()`` returns that drain's report instead of draining
again. Two requests are latched beside the phase, because they may arrive in any phase and
from any thread: a stop (the loop's ``stopping`` flag) and a close asked from inside a handler
(done by the loop's thread when the loop returns).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from typedserve.errors import ServerClosedError, ServerStateError

if TYPE_CHECKING:  # imported where used: typedserve.compat uses StopSignal, never a drain
    from typedserve.drain import DrainReport

__all__ = ["Lifecycle", "Phase", "StopSignal"]


class Phase(enum.Enum):
    """Where a server is in its life (see the module docstring)."""

    UNBOUND = "unbound"
    IDLE = "idle"
    SERVING = "serving"
    DRAINING = "draining"
    DRAINED = "drained"
    CLOSED = "closed"


_LEGAL: dict[Phase, frozenset[Phase]] = {
    Phase.UNBOUND: frozenset({Phase.IDLE, Phase.CLOSED}),
    Phase.IDLE: frozenset({Phase.SERVING, Phase.DRAINING, Phase.CLOSED}),
    Phase.SERVING: frozenset({Phase.IDLE}),
    Phase.DRAINING: frozenset({Phase.DRAINED}),
    Phase.DRAINED: frozenset({Phase.SERVING, Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}


class Lifecycle:
    """The phase of one server, changed only through :meth:`move` under :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase = Phase.UNBOUND
        self.owner: int | None = None  # the thread in SERVING or DRAINING
        self.closing = False  # close() began (or was asked from a handler): no new loop
        self._close_pending = False  # close() was asked from a handler: the loop closes on exit
        self.idle = threading.Event()  # set while no loop runs
        self.idle.set()
        self.serving = threading.Event()  # set while a loop runs
        self._drain_lock = threading.Lock()  # a second drain waits for the first one's report
        self._last_report: DrainReport | None = None

    def move(self, to: Phase) -> None:
        """Go to ``to`` (the caller holds :attr:`lock`); an illegal move raises."""
        if to not in _LEGAL[self.phase]:
            if self.phase is Phase.CLOSED:
                raise ServerClosedError("the server is closed")
            raise ServerStateError(f"a server cannot go from {self.phase.value} to {to.value}")
        self.phase = to
        owned = to is Phase.SERVING or to is Phase.DRAINING
        self.owner = threading.get_ident() if owned else None
        if to is Phase.SERVING:
            self.idle.clear()
            self.serving.set()
        elif self.phase is not Phase.DRAINING:
            self.serving.clear()
            self.idle.set()

    def start_loop(self) -> Phase:
        """Enter ``SERVING`` on this thread, or say why not; return the phase it left."""
        with self.lock:
            if self.closing or self.phase in (Phase.CLOSED, Phase.UNBOUND):
                raise ServerClosedError("the server is closed or not bound")
            if self.phase is Phase.SERVING:
                raise ServerStateError("this server is already serving on another thread")
            if self.phase is Phase.DRAINING:
                raise ServerStateError("this server is draining on another thread")
            left = self.phase
            self.move(Phase.SERVING)
            return left

    def begin_close(self, in_handler: bool) -> bool:
        """Whether the calling ``close()`` should close the server now.

        ``False`` if it is closed or closing already, or if the caller is the loop's own
        thread or one of its handlers (it cannot wait for itself): then the close is left
        pending for the loop's thread, which takes it when the loop returns.
        """
        with self.lock:
            if self.phase is Phase.CLOSED or self.closing:
                return False
            self.closing = True
            if self.phase is Phase.SERVING and (self.owns_loop() or in_handler):
                self._close_pending = True
                return False
            return True

    def end_loop(self, stop: StopSignal) -> bool:
        """The loop returned: back to ``IDLE``, the stop consumed. Returns whether a close was
        left pending for the loop's thread (cleared: the caller closes the server now)."""
        with self.lock:
            stop.clear()
            self.move(Phase.IDLE)
            pending, self._close_pending = self._close_pending, False
            if pending:
                self.closing = False
            return pending

    def drain(
        self,
        grace: float,
        run_drain: Callable[[float], DrainReport],
        cut_running: Callable[[], int],
    ) -> tuple[DrainReport | None, bool]:
        """After a stop was requested: wait for the loop to return, then drain on this thread
        with what is left of ``grace``; return the report and whether this call made it.

        A loop still running at the deadline (an ``Inline`` handler holding the loop thread)
        has its running requests cut so it can return; they count as cut. A drain that already
        ran since the loop last stopped is not repeated: its report is returned. ``None``: a
        new loop started meanwhile (it will stop and be drained later).
        """
        deadline = time.monotonic() + grace
        cut_early = 0
        if not self.idle.wait(grace):
            cut_early = cut_running()
            self.idle.wait()
        with self._drain_lock:
            with self.lock:
                if self.phase is Phase.DRAINED:
                    return self._last_report, False
                if self.phase is not Phase.IDLE:
                    return None, False
                self.move(Phase.DRAINING)
            try:
                report = run_drain(max(0.0, deadline - time.monotonic()))
            finally:
                with self.lock:
                    self.move(Phase.DRAINED)
            from typedserve.drain import DrainReport

            self._last_report = report + DrainReport(cut=cut_early)
            return self._last_report, True

    def owns_loop(self) -> bool:
        """Whether the calling thread runs this server's loop or drain now."""
        return self.owner == threading.get_ident()


class StopSignal:
    """The latched request to stop serving: any thread or a signal handler sets it; the loop
    (or a loop-owning strategy) reads :attr:`requested` and is told through callbacks.

    Latched: a stop that arrives while no loop runs makes the next loop return at once (it is
    cleared when that loop returns). ``grace`` is the requested drain's, ``None`` for a plain
    stop. Callbacks must not block (they run in the caller, possibly a signal handler).
    """

    __slots__ = ("_callbacks", "grace", "requested")

    def __init__(self) -> None:
        self.requested = False
        self.grace: float | None = None
        self._callbacks: list[Callable[[], None]] = []

    def request(self, grace: float | None = None) -> None:
        """Ask for a stop (and a drain with ``grace``)."""
        if grace is not None:
            self.grace = grace
        self.requested = True
        for callback in list(self._callbacks):
            callback()

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` at every stop request (at once if one is pending)."""
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def forget(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (its owner is closing)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def clear(self) -> None:
        """Forget the stop (the loop that heard it has returned)."""
        self.requested = False
        self.grace = None


class _NeverStop(StopSignal):
    """A signal that is never requested: for a drain serving the backlog after the stop."""

    __slots__ = ()

    def request(self, grace: float | None = None) -> None:
        """Ignored."""


NEVER = _NeverStop()
"""A :class:`StopSignal` that never fires."""
