"""``ForkPerRequest``: each request runs in a child process of its own (``ForkingMixIn``, fixed).

Processes: ``submit`` runs on the loop thread and forks. The child resets SIGTERM/SIGINT to
their defaults, closes its copies of the loop's fds (the listening socket too, unless a
datagram's reply needs it) and of clients of this server living in the parent's process (a
test's client: see :mod:`typedserve.strategies._forked`), runs ``serve(request)`` and leaves
with ``os._exit`` after flushing logging and stdio: it never returns into the parent's loop
and never runs ``atexit`` handlers.
The parent keeps the request while the child serves it (the child ends its side: a FIN when
its handler is done), opens a pidfd for the child and watches it in the server's selector: the
child is reaped by the loop thread as soon as it exits, with no ``waitpid`` polling and no
SIGCHLD handler, so no zombie outlives its loop iteration; the parent then closes its copy of
the request (a framed connection goes back to the loop for its next request). A child closes
its copies of the other children's connections and of the connections the loop holds.

Deadlines: no loop runs in a child, so the child itself cuts its request at its
``timeouts.request`` deadline (a one-shot ``ITIMER_REAL``: SIGALRM in the child, so a
handler must not use SIGALRM itself under this strategy), as the loop's sweep does for
in-process handlers.

Limits: at most ``max_children`` children run at once (``capacity``): the server stops
accepting at the limit (or rejects, per ``limits.overload``); a direct ``submit`` beyond it
blocks until a child exits rather than forking more.

Counters and errors: each running child writes its own row of the server's shared counters
(``stats()`` sums them), so handler errors and finished requests in children are counted; a
child killed by a signal or exiting non-zero is logged (``typedserve.server``, ERROR) and its
request counted as finished with an error (and reported to the server's observers as ``error``,
or ``cut`` when the stop killed it: the child could not report it). Requires Linux >= 5.3
(``os.pidfd_open``): elsewhere the constructor raises
:class:`~typedserve.errors.UnsupportedPlatformError` (an ``OSError``).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # CPython's C module under ``signal``: no stub
import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from typedserve.counters import ERRORS, FINISHED
from typedserve.drain import DrainReport
from typedserve.errors import ConfigError, ServerClosedError, UnsupportedPlatformError
from typedserve.host import LoopHost
from typedserve.observe import Outcome
from typedserve.requests import Request
from typedserve.strategies._forked import close_inherited_clients, describe_status, flush_stdio
from typedserve.strategies.base import Strategy

__all__ = ["ForkPerRequest"]

T = TypeVar("T", bound=Request)

logger = logging.getLogger("typedserve.server")

_STOP_WAIT = 1.0  # after a drain's deadline: SIGTERM, then SIGKILL a child after this long

# In the child, every object Python touches costs a copy-on-write page fault. signal.signal()
# converts its arguments and result to enums on each call (about 40 faults for two calls);
# the C function behind it takes plain ints (about 5).
_set_signal = _signal.signal
_SIGTERM, _SIGINT, _SIG_DFL = int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIG_DFL)
_SIGALRM = int(signal.SIGALRM)


class ForkPerRequest(Strategy):
    """Serve each request in a forked child process; at most ``max_children`` at once.

    **State changed in a child never reaches the parent**: every request starts from a copy of
    the parent's memory as it was at the fork, and whatever the handler changes in
    ``context.state``, module globals or caches is lost when the child exits. Keep shared state
    outside the process (files, a database) or use a threaded strategy with a lock. Other
    costs: a fork per request (milliseconds with a large parent), and a parent with threads
    forks only the loop thread, so locks other threads held at the fork stay held in the child.

    Example: ``Server(..., strategy=ForkPerRequest(max_children=40))``.
    """

    def __init__(self, max_children: int = 40) -> None:
        if max_children < 1:
            raise ConfigError.for_argument("ForkPerRequest", "max_children", max_children, ">= 1")
        if not hasattr(os, "pidfd_open"):
            raise UnsupportedPlatformError(
                "ForkPerRequest needs os.pidfd_open (Linux >= 5.3, Python >= 3.9)"
            )
        self.max_children = max_children
        self._host: LoopHost[Any] | None = None
        # pidfd -> (pid, slot, request, when it was forked: with observers only, else 0.0)
        self._children: dict[int, tuple[int, int, Request, float]] = {}
        self._free_slots = list(range(max_children, 0, -1))
        self._waiter: Callable[[], None] | None = None
        self._stopping = False

    def attach(self, host: LoopHost[Any]) -> None:
        """Keep the server's host: its selector reaps children, its counters count for them."""
        self._host = host

    @property
    def process_slots(self) -> int:
        """One counters row per possible child."""
        return self.max_children

    @property
    def capacity(self) -> int:
        """``max_children``."""
        return self.max_children

    @property
    def in_flight(self) -> int:
        """Children running (or exited and not yet reaped)."""
        return len(self._children)

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Fork a child that runs ``serve(request)``; the parent keeps the request until the
        child is reaped, then closes it (a framed connection goes back to the loop then)."""
        host = self._host
        if host is None:
            raise ServerClosedError("ForkPerRequest is not attached to a bound server")
        while not self._free_slots:
            self._wait_for_exits(None)
        slot = self._free_slots.pop()
        started = 0.0 if host.observer is None else time.monotonic()
        flush_stdio()
        pid = os.fork()
        if pid == 0:
            self._run_child(host, serve, request, slot)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # cannot watch it: wait for it here rather than leave a zombie
            os.waitpid(pid, 0)
            self._free_slots.append(slot)
            request.close()
            raise
        entry = self._children[pidfd] = (pid, slot, request, started)
        # The entry guards against a stale readiness event for a pidfd number reused since.
        host.watch(pidfd, lambda: self._reap(pidfd, entry))

    def _run_child(
        self, host: LoopHost[Any], serve: Callable[[T], None], request: T, slot: int
    ) -> None:
        status = 70  # EX_SOFTWARE, if anything below raises
        try:
            _set_signal(_SIGTERM, _SIG_DFL)
            _set_signal(_SIGINT, _SIG_DFL)
            host.counters.use_row(slot)
            for pidfd, (_, _, other, _) in self._children.items():
                os.close(pidfd)
                other_conn = other.connection
                if other_conn is not None:
                    other_conn.close()  # this process's copy only: never a shutdown here
            conn = request.connection
            host.after_fork(loop=False, keep_listener=conn is None)
            if conn is not None:
                close_inherited_clients(host.transport.address, keep=(conn.fileno(),))
            if _cut_at_deadline(request):
                serve(request)
                signal.setitimer(signal.ITIMER_REAL, 0)  # a late cut must not hit the exit
            else:
                serve(request)
            status = 0
        finally:
            with contextlib.suppress(BaseException):
                logging.shutdown()
                flush_stdio()
            os._exit(status)

    def _reap(self, pidfd: int, entry: tuple[int, int, Request, float] | None = None) -> None:
        """The child behind ``pidfd`` exited: collect its status, free its slot, and close the
        parent's copy of its request (the child already ended its side)."""
        if entry is not None and self._children.get(pidfd) is not entry:
            return
        pid, slot, request, started = self._children.pop(pidfd)
        if self._host is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._host.unwatch(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self._free_slots.append(slot)
        if status != 0 and self._host is not None:
            level = logging.INFO if self._stopping else logging.ERROR
            how = describe_status(status)
            logger.log(level, "request child %d ended abnormally (%s)", pid, how)
            counters = self._host.counters
            counters.add(FINISHED)
            counters.add(ERRORS)
            observer = self._host.observer
            if observer is not None:  # the child died before it could report its request
                outcome: Outcome = "cut" if self._stopping else "error"
                observer.request_ended(request, outcome, started, time.monotonic())
        request.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()

    def _wait_for_exits(self, timeout: float | None) -> None:
        """Block until a child exits (or ``timeout``), then reap every child that has."""
        poller = select.poll()
        for pidfd in self._children:
            poller.register(pidfd, select.POLLIN)
        for pidfd, _ in poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            self._reap(pidfd)

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the next child is reaped (at once if none is running)."""
        self._waiter = callback
        if not self._children:
            waiter, self._waiter = self._waiter, None
            if waiter is not None:
                waiter()

    def drain(self, host: LoopHost[Any], grace: float) -> DrainReport:
        """The server's drain; children still running at its deadline are stopped at once."""
        report = host.drain(grace)
        if report.cut:
            self.close(_STOP_WAIT)
        return report

    def close(self, timeout: float | None = None) -> int:
        """Stop the children still running: SIGTERM, up to ``timeout`` seconds, then SIGKILL.

        Every child is reaped before this returns; returns how many needed SIGKILL.
        """
        self._stopping = True
        for pid, _, _, _ in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._children:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._wait_for_exits(left)
        killed = len(self._children)
        for pid, _, _, _ in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self._children:
            self._wait_for_exits(None)
        self._stopping = False
        return killed


def _cut_at_deadline(request: Request) -> bool:
    """In a request child: cut ``request`` at its deadline (``timeouts.request``); whether a
    cut is armed. No loop runs in the child to sweep it, and a handler reading the socket
    directly (not through ``rfile``) would otherwise outlive its budget as long as the client
    trickles. A one-shot ``ITIMER_REAL`` (SIGALRM) does it: the child's only thread is the one
    serving, a blocked call is interrupted, the cut runs, and the retried call sees EOF. (A
    timer thread would cost a thread start, a fifth of the fork itself, on every request.)"""
    deadline = request.deadline
    if deadline is None:
        return False
    _set_signal(_SIGALRM, lambda _signum, _frame: request.cut())
    signal.setitimer(signal.ITIMER_REAL, max(1e-6, deadline - time.monotonic()))
    return True
