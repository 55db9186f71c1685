"""The supervisor of a :class:`~typedserve.strategies.prefork.Prefork`: it forks the workers,
watches them, replaces the ones that die, rolls them on request, and stops them.

Threads: :meth:`Supervisor.run` and :meth:`Supervisor.drain` run on the thread that owns the
server's loop, and only there is the supervisor's state changed; :meth:`Supervisor.restart`
and the stop callback only write a :class:`~.messages.Wakeup` byte to its wake-up pipe (safe
from any thread or signal handler), and :meth:`Supervisor.wait_ready` waits on a condition the
loop thread notifies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from typedserve.drain import RELEASE_WAIT, DrainReport
from typedserve.host import LoopHost
from typedserve.strategies._forked import FdBaseline, describe_status, flush_stdio
from typedserve.strategies.prefork.messages import (
    Malformed,
    Message,
    Ready,
    Report,
    Retire,
    Stop,
    Wakeup,
    decode_wakeups,
)
from typedserve.strategies.prefork.port_group import PortGroup
from typedserve.strategies.prefork.processes import WorkerProcess
from typedserve.strategies.prefork.restarts import RestartLimit
from typedserve.strategies.prefork.worker import WorkerStart
from typedserve.systemd import heartbeat

__all__ = ["Supervisor"]

logger = logging.getLogger("typedserve.server")

_EXIT_MARGIN = 1.0 + RELEASE_WAIT  # how long past the grace the supervisor waits for workers
_WAKE = "wake"
_EX_SOFTWARE = 70
_READ = 4096


class Supervisor:
    """Forks and supervises ``workers`` worker processes for one server.

    ``start_worker`` is called in each new child, once the supervisor's own fds are closed
    there, and never returns. The restart-rate limit allows ``max_restarts`` replacements of
    dead workers within ``restart_window`` seconds.
    """

    def __init__(
        self,
        workers: int,
        max_restarts: int,
        restart_window: float,
        *,
        start_worker: Callable[[WorkerStart], NoReturn],
    ) -> None:
        self.workers = workers
        self._start_worker = start_worker
        self._host: LoopHost[Any] | None = None
        self._live: dict[int, WorkerProcess] = {}  # pidfd -> worker
        self._free_slots = list(range(2 * workers, 0, -1))
        self._restarts = RestartLimit(max_restarts, restart_window)
        # Dead workers not yet replaced (the restart-rate limit delays them): their positions
        # (see .port_group), and the worker each was to retire if it died before being ready.
        self._owed: list[tuple[int, WorkerProcess | None]] = []
        self._ports = PortGroup()
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._baseline = FdBaseline()
        self._stop_grace: float | None = None
        self._stop_sent = False
        self._changed = threading.Condition()
        self._reports: list[DrainReport] = []
        self._hooked = False

    @property
    def active(self) -> bool:
        """Whether :meth:`run` has started supervising (and :meth:`close` not yet ended it)."""
        return self._selector is not None

    @property
    def pids(self) -> list[int]:
        """The pids of the live workers."""
        return [worker.pid for worker in list(self._live.values())]

    def wait_ready(self, timeout: float | None = None, *, replacing: Iterable[int] = ()) -> bool:
        """Wait until ``workers`` workers are up and ready, none of them with a pid in
        ``replacing``; ``False`` on timeout. Any thread."""
        gone = set(replacing)

        def ready() -> bool:
            live = [w for w in list(self._live.values()) if not w.stopping]
            return (
                len(live) == self.workers
                and all(w.ready for w in live)
                and not gone.intersection(w.pid for w in live)
            )

        with self._changed:
            return self._changed.wait_for(ready, timeout)

    def restart(self) -> None:
        """Start a rolling restart; safe from any thread or signal handler."""
        self._poke(Wakeup.RESTART)

    # -- supervising ----------------------------------------------------------------------------

    def run(self, host: LoopHost[Any]) -> None:
        """Supervise workers until the server is asked to stop; then tell them to drain."""
        self._host = host
        # What a worker may keep of this process (see .worker): what is open as supervision
        # begins, before the first fork.
        self._baseline = FdBaseline.take()
        if self._selector is None:  # kept across runs: workers still draining are in it
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._ports.open(host, self.workers)
        if self._stop_sent:  # serving again: the drain held the listeners
            self._ports.release()
        self._stop_sent = False
        if not self._hooked:
            self._hooked = True
            host.on_stop(lambda: self._poke(Wakeup.STOP))
        if not host.stopping:  # a stop that came first: no workers to start only to stop them
            self._supervise_once(0)  # reap an earlier run's workers that have exited since
            if _is_datagram(host):  # an earlier run's draining worker refuses what it reads
                while not host.stopping and any(w.stopping for w in self._live.values()):
                    self._supervise_once(None)  # until it exits (within its grace)
            taken = {w.position for w in self._live.values() if not w.stopping}
            for position in range(self.workers):
                if position not in taken:
                    self._spawn(position)
        with heartbeat() as pulse:  # the main process's loop: it pings systemd's watchdog
            while not host.stopping:
                self._supervise_once(pulse.beat(self._next_restart_delay()))
        self._stop_grace = host.grace
        self._send_stop()

    def _poke(self, wakeup: Wakeup) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is pending; closed: nobody waits
            os.write(self._wake_w, wakeup.value)

    def _supervise_once(self, timeout: float | None) -> None:
        assert self._selector is not None
        for key, _ in self._selector.select(timeout):
            data = key.data
            if data is _WAKE:
                self._on_wake()
            elif isinstance(data, tuple):
                kind, worker = data
                if kind == "status":
                    self._on_status(worker)
                else:
                    self._on_exit(worker)
        now = time.monotonic()
        if self._owed and not self._stop_sent and self._restarts.delay(now) == 0:
            self._restarts.record(now)
            position, replaces = self._owed.pop(0)
            self._spawn(position, replaces)

    def _on_wake(self) -> None:
        try:
            data = os.read(self._wake_r, _READ)
        except BlockingIOError:
            return
        wakeups = decode_wakeups(data)
        for wakeup in wakeups:
            if isinstance(wakeup, Malformed):
                logger.warning("prefork supervisor: ignoring wake-up %r", wakeup.line)
        if Wakeup.RESTART in wakeups and not self._stop_sent:
            logger.info("rolling restart of %d worker(s)", len(self._live))
            # New workers fork with the transport as it is here: re-read its files (TLS).
            reload = getattr(self._host.transport, "reload", None) if self._host else None
            if reload is not None:
                reload()
            for worker in [w for w in self._live.values() if not w.stopping]:
                self._spawn(worker.position, replaces=worker)

    def _spawn(self, position: int, replaces: WorkerProcess | None = None) -> None:
        host, selector = self._host, self._selector
        assert host is not None and selector is not None
        while not self._free_slots:  # an earlier run's workers are still draining
            self._supervise_once(None)  # their exits free their slots (within their grace)
        slot = self._free_slots.pop()
        rebind = self._ports.rebind_for(position)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        control_r, control_w = os.pipe2(os.O_CLOEXEC)
        flush_stdio()
        pid = os.fork()
        if pid == 0:
            start = WorkerStart(host, slot, control_r, status_w, self._baseline, rebind)
            self._in_child(start, ours=(status_r, control_w))
        os.close(status_w)
        os.close(control_r)
        os.set_blocking(status_r, False)
        worker = WorkerProcess(
            pid, os.pidfd_open(pid), slot, status_r, control_w, position, replaces=replaces
        )
        self._live[worker.pidfd] = worker
        worker.watch(selector)
        self._notify()

    def _in_child(self, start: WorkerStart, ours: tuple[int, int]) -> NoReturn:
        """In a new worker: forget the supervisor's fds (``ours``: its ends of this worker's
        pipes), then become the worker. Whatever happens, never return into the supervisor's
        code (the process would become a second supervisor)."""
        try:
            for fd in ours:
                os.close(fd)
            self._forget_in_child()
            self._ports.forget_in_child(start.rebind)
            self._start_worker(start)
        except BaseException:
            logger.exception("worker %d failed to start", os.getpid())
        finally:
            os._exit(_EX_SOFTWARE)

    def _forget_in_child(self) -> None:
        """The supervisor's fds are not a worker's: keeping them would hold its siblings' pipes
        open (its own pipes' other ends too)."""
        for worker in self._live.values():
            worker.close_in_child()
        self._live = {}
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1

    def _on_status(self, worker: WorkerProcess) -> None:
        assert self._selector is not None
        for message in worker.read_status(self._selector):
            self._on_message(worker, message)

    def _on_message(self, worker: WorkerProcess, message: Message | Malformed) -> None:
        if isinstance(message, Ready):
            worker.ready = True
            if worker.replaces is not None:
                worker.replaces.tell_stop(Retire())
                worker.replaces = None
            self._notify()
        elif isinstance(message, Report):
            worker.report = message.report
        else:
            logger.warning("prefork worker %d sent %r, ignored", worker.pid, message)

    def _on_exit(self, worker: WorkerProcess) -> None:
        host, selector = self._host, self._selector
        assert host is not None and selector is not None
        if worker.reaped:  # a stale event from the same select() batch
            return
        _, status = os.waitpid(worker.pid, 0)
        for _ in range(64):  # its last words (the report) may still be in the pipe
            if worker.eof:
                break
            self._on_status(worker)
        del self._live[worker.pidfd]
        worker.release(selector)
        self._free_slots.append(worker.slot)
        lost = host.counters.settle(worker.slot)
        if worker.report is not None:
            self._reports.append(worker.report)
        elif worker.stopping:  # stopped without a report (killed, crashed): all it had is cut
            self._reports.append(DrainReport(cut=lost))
        if not worker.stopping:
            logger.warning(
                "worker %d died (%s), losing %d request(s); replacing it",
                worker.pid,
                describe_status(status),
                lost,
            )
            if not self._stop_sent:  # its position waits (queue and all) for a replacement
                self._owed.append((worker.position, worker.replaces))
        self._notify()

    def _next_restart_delay(self) -> float | None:
        """Seconds until the next owed replacement may start (``None``: none owed, or never)."""
        return self._restarts.delay(time.monotonic()) if self._owed else None

    def _send_stop(self) -> None:
        self._stop_sent = True
        for worker in list(self._live.values()):
            worker.tell_stop(Stop(self._stop_grace))

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- stopping -------------------------------------------------------------------------------

    def drain(self, host: LoopHost[Any], grace: float) -> DrainReport:
        """Tell every worker to drain within ``grace``; wait for them; sum their reports."""
        # A worker counts what finishes during its own drain; a request that finishes between
        # this call and the worker receiving "stop" would be in no report, so the supervisor
        # also counts, from the shared counters, what was in flight when the drain began.
        in_flight_at_start = host.counters.totals().in_flight
        self._ports.hold()  # the workers share the supervisor's sockets: the hold is ours
        if not self._stop_sent:
            self._stop_grace = grace
            self._send_stop()
        deadline = time.monotonic() + (self._stop_grace or grace) + _EXIT_MARGIN
        while self._live and (left := deadline - time.monotonic()) > 0:
            self._supervise_once(left)
        self._kill_all()
        reports, self._reports = self._reports, []
        total = sum(reports, DrainReport())
        settled_early = in_flight_at_start - total.cut - total.completed
        if settled_early > 0:
            total = total + DrainReport(completed=settled_early)
        return total

    def _kill_all(self) -> None:
        """SIGKILL and reap every live worker (their requests in flight count as cut)."""
        for worker in list(self._live.values()):
            worker.stopping = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            self._on_exit(worker)

    def close(self) -> int:
        """Kill and reap the workers still alive; release the supervisor's fds. Returns the
        requests lost with killed workers."""
        if self._selector is None:
            return 0
        self._kill_all()
        lost = sum(report.cut for report in self._reports)
        self._reports = []
        self._selector.close()
        self._selector = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1
        self._ports.close()
        return lost


def _is_datagram(host: LoopHost[Any]) -> bool:
    """Whether the server's socket is a datagram one (no queue a drain could hand over)."""
    try:
        view = socket.socket(fileno=host.transport.fileno())
    except OSError:
        return False
    try:
        return view.type == socket.SOCK_DGRAM
    finally:
        view.detach()  # the transport's socket: not closed here
