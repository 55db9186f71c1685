"""``Prefork``: a supervisor process and N worker processes serving the same address.

Processes and threads: ``Server.serve_forever()`` calls :meth:`Prefork.run`, which makes the
calling process the **supervisor**: it forks ``workers`` processes and then only watches them
(pidfds and one status pipe each, in a selector of its own); it never accepts. Each **worker**
runs the server's normal loop (``host.run_loop()``) dispatching to a ``ThreadPool`` of
``threads_per_worker`` threads with no queue, then the server's normal drain, and leaves with
``os._exit``. A new worker closes its copies of the supervisor's fds, and of clients of this
server living in the supervisor's process (see :mod:`typedserve.strategies._forked`). Workers
share the listening socket the server bound (inherited through the fork), or, with
``config.reuse_port``, each binds a ``SO_REUSEPORT`` socket of its own and the kernel balances
connections between them (the supervisor then closes its own socket once the first workers
are up; a connection that reached it before is reset, a datagram dropped).

Supervision: a worker that dies unexpectedly is logged (WARNING) and replaced; its requests in
flight are lost and counted as errors. At most ``max_restarts`` replacements start within
``restart_window`` seconds; beyond that they are delayed, so a crash loop does not spin.
``SIGHUP`` (or :meth:`Prefork.restart_workers`) starts a rolling restart: each worker is
replaced by a new one, and told to drain once its successor is ready. When ``run`` owns the
main thread it handles SIGTERM and SIGINT as "stop gracefully" and SIGHUP as above (restoring
the previous handlers when it returns); workers ignore SIGINT/SIGHUP and treat SIGTERM as a
graceful stop with ``config.shutdown.grace``. A worker whose supervisor dies (its control pipe
reaches EOF) drains and exits too.

Stopping: on a stop request ``run`` tells every worker to stop accepting and drain (with the
requested grace, else ``config.shutdown.grace``) and returns; :meth:`Prefork.drain` waits for
their :class:`~typedserve.drain.DrainReport` (sent over the status pipe) and sums them;
:meth:`Prefork.close` kills and reaps whatever is left. Counters: each worker writes its own
row of the server's shared counters, so ``server.stats()`` in the supervisor sums them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from typedserve.config import InetAddress
from typedserve.drain import DrainReport
from typedserve.errors import ConfigError
from typedserve.host import ListenerOnDrain, LoopHost
from typedserve.requests import Request
from typedserve.strategies._forked import close_inherited_clients, describe_status, flush_stdio
from typedserve.strategies.base import Strategy
from typedserve.strategies.pool import ThreadPool

__all__ = ["Prefork"]

T = TypeVar("T", bound=Request)

logger = logging.getLogger("typedserve.server")

_RELEASE_WAIT = 2.0  # a worker's own close() wait after its drain (see Server)
_EXIT_MARGIN = 1.0 + _RELEASE_WAIT  # how long past the grace the supervisor waits for workers
_WAKE = "wake"
_HUP = b"H"
_READ = 4096


@dataclass(eq=False)
class _Worker:
    """The supervisor's view of one worker process."""

    pid: int
    pidfd: int
    slot: int
    status: int  # read end of the worker's status pipe
    control: int  # write end of the worker's control pipe
    ready: bool = False
    stopping: bool = False
    replaces: _Worker | None = None
    report: DrainReport | None = None
    eof: bool = False  # the status pipe is closed on the worker's side
    reaped: bool = False
    watched: set[int] = field(default_factory=set)  # its fds registered in the selector
    buffer: bytearray = field(default_factory=bytearray)


class Prefork(Strategy):
    """Serve with ``workers`` processes, each running ``threads_per_worker`` handler threads.

    Example::

        server = Server(config=ServerConfig(reuse_port=True), transport=TCPTransport(),
                        handler=App, strategy=Prefork(workers=4, threads_per_worker=8))
        with server:
            server.serve_forever()      # this process supervises; workers serve

    At most ``workers * threads_per_worker`` requests run at once (by default 2 x 16, as
    gunicorn's ``gthread`` workers do): a worker's pool has no queue, so it accepts only what it
    can start and leaves the rest of the shared backlog to its siblings, and its loop thread
    stays free to hear a stop or a rolling restart while handlers run. As with
    ``ForkPerRequest``, state changed in a worker never reaches the supervisor or the other
    workers.
    """

    def __init__(
        self,
        workers: int = 2,
        threads_per_worker: int = 16,
        *,
        max_restarts: int = 10,
        restart_window: float = 10.0,
    ) -> None:
        if workers < 1 or threads_per_worker < 1:
            raise ConfigError(
                f"Prefork needs workers >= 1 and threads_per_worker >= 1, "
                f"got {workers} and {threads_per_worker}"
            )
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        # No queue in a worker: it takes only what it can start, leaving the rest of the
        # shared backlog to its siblings. A pool even of one thread keeps the worker's loop free
        # to hear "stop" and cut at the drain's deadline (an inline handler would hold it).
        self._inner: Strategy = ThreadPool(threads_per_worker, 0)
        self._host: LoopHost[Any] | None = None
        self._in_worker = False
        self._retiring = False
        self._live: dict[int, _Worker] = {}  # pidfd -> worker
        self._free_slots = list(range(2 * workers, 0, -1))
        self._restarts: collections.deque[float] = collections.deque()
        self._owed = 0  # replacements delayed by the restart-rate limit
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._stop_grace: float | None = None
        self._stop_sent = False
        self._changed = threading.Condition()
        self._reports: list[DrainReport] = []
        self._hooked = False

    # -- the dispatching side: used inside a worker (and by handle_request in the supervisor)

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Hand the request to the worker's inner strategy."""
        self._inner.submit(serve, request)

    @property
    def in_flight(self) -> int:
        """In a worker: its requests in flight. In the supervisor: all workers' (counters)."""
        if self._in_worker or self._host is None:
            return self._inner.in_flight
        return self._host.counters.totals().in_flight

    @property
    def capacity(self) -> int | None:
        """One worker's capacity (its inner strategy's)."""
        return self._inner.capacity

    @property
    def process_slots(self) -> int:
        """Two counters rows per worker: a rolling restart runs old and new side by side."""
        return 2 * self.workers

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Delegate to the inner strategy."""
        self._inner.notify_when_available(callback)

    def attach(self, host: LoopHost[Any]) -> None:
        """Keep the host; attach the inner strategy too."""
        if host.config.reuse_port and not isinstance(host.config.address, InetAddress):
            raise ConfigError(
                "Prefork with reuse_port=True needs an inet address (host and port): "
                "SO_REUSEPORT does not apply to Unix or inherited sockets"
            )
        self._host = host
        self._inner.attach(host)

    # -- public controls ----------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The pids of the live workers (supervisor only)."""
        return [worker.pid for worker in list(self._live.values())]

    def wait_ready(self, timeout: float | None = None, *, replacing: Iterable[int] = ()) -> bool:
        """Wait until ``workers`` workers are up and ready, none of them with a pid in
        ``replacing`` (e.g. the pid of a worker just killed); ``False`` on timeout."""
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

    def restart_workers(self) -> None:
        """Start a rolling restart (as SIGHUP does); safe from any thread or signal handler."""
        self._poke(_HUP)

    # -- the supervisor -----------------------------------------------------------------------

    def run(self, host: LoopHost[Any]) -> None:
        """Supervise workers until the server is asked to stop; then tell them to drain."""
        self._host = host
        if self._selector is None:  # kept across runs: workers still draining are in it
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._stop_sent = False
        previous = self._install_signals(host)
        if not self._hooked:
            self._hooked = True
            host.on_stop(lambda: self._poke(b"S"))
        try:
            for _ in range(self.workers - sum(not w.stopping for w in self._live.values())):
                self._spawn()
            while not host.stopping:
                self._supervise_once(self._next_restart_delay())
            self._stop_grace = host.grace
            self._send_stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _install_signals(self, host: LoopHost[Any]) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def stop(signum: int, frame: FrameType | None) -> None:
            host.request_stop()

        def hup(signum: int, frame: FrameType | None) -> None:
            self._poke(_HUP)

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: hup}
        return {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    def _poke(self, what: bytes) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is pending; closed: nobody waits
            os.write(self._wake_w, what)

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
        if self._owed and not self._stop_sent and self._next_restart_delay() == 0:
            self._owed -= 1
            self._spawn()

    def _on_wake(self) -> None:
        try:
            data = os.read(self._wake_r, _READ)
        except BlockingIOError:
            return
        if _HUP in data and not self._stop_sent:
            logger.info("rolling restart of %d worker(s)", len(self._live))
            for worker in [w for w in self._live.values() if not w.stopping]:
                self._spawn(replaces=worker)

    def _spawn(self, replaces: _Worker | None = None) -> None:
        host, selector = self._host, self._selector
        assert host is not None and selector is not None
        slot = self._free_slots.pop()
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        control_r, control_w = os.pipe2(os.O_CLOEXEC)
        flush_stdio()
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            os.close(control_w)
            self._worker_main(host, slot, control_r, status_w)
        os.close(status_w)
        os.close(control_r)
        os.set_blocking(status_r, False)
        worker = _Worker(pid, os.pidfd_open(pid), slot, status_r, control_w, replaces=replaces)
        self._live[worker.pidfd] = worker
        self._watch(worker, worker.pidfd, "exit")
        self._watch(worker, worker.status, "status")
        self._notify()

    def _watch(self, worker: _Worker, fd: int, kind: str) -> None:
        assert self._selector is not None
        self._selector.register(fd, selectors.EVENT_READ, (kind, worker))
        worker.watched.add(fd)

    def _unwatch(self, worker: _Worker, fd: int) -> None:
        """Unregister one of ``worker``'s fds, once: its record, not the selector's map (where
        the number may already belong to a newer worker), says whether it is registered."""
        if fd in worker.watched:
            worker.watched.discard(fd)
            assert self._selector is not None
            self._selector.unregister(fd)

    def _on_status(self, worker: _Worker) -> None:
        if worker.eof or worker.reaped:
            return
        try:
            data = os.read(worker.status, _READ)
        except BlockingIOError:
            return
        if not data:
            self._unwatch(worker, worker.status)
            worker.eof = True
            return
        worker.buffer += data
        while b"\n" in worker.buffer:
            line, _, rest = bytes(worker.buffer).partition(b"\n")
            worker.buffer = bytearray(rest)
            self._on_message(worker, line.decode("ascii", "replace").split())

    def _on_message(self, worker: _Worker, words: list[str]) -> None:
        if words == ["ready"]:
            worker.ready = True
            if worker.replaces is not None:
                self._tell_stop(worker.replaces, None, retire=True)
                worker.replaces = None
            host = self._host
            if host is not None and host.config.reuse_port and not self._stop_sent:
                host.release_listener()  # workers hold the port now; ours would take a share
            self._notify()
        elif len(words) == 4 and words[0] == "report":
            worker.report = DrainReport(*(int(word) for word in words[1:]))

    def _on_exit(self, worker: _Worker) -> None:
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
        self._unwatch(worker, worker.pidfd)
        self._unwatch(worker, worker.status)
        os.close(worker.pidfd)
        os.close(worker.status)
        worker.reaped = True
        os.close(worker.control)
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
            if not self._stop_sent:
                self._owed += 1
        self._notify()

    def _next_restart_delay(self) -> float | None:
        """Seconds until the next owed replacement may start (``None``: none owed)."""
        if not self._owed:
            return None
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] >= self.restart_window:
            self._restarts.popleft()
        if len(self._restarts) < self.max_restarts:
            self._restarts.append(now)
            return 0
        return self._restarts[0] + self.restart_window - now

    def _tell_stop(self, worker: _Worker, grace: float | None, retire: bool = False) -> None:
        if worker.stopping or worker.reaped:  # a reaped worker's control fd number is reused
            return
        worker.stopping = True
        if retire:  # the others keep serving: leave the shared backlog to them
            message = b"retire\n"
        else:
            message = b"stop\n" if grace is None else f"stop {grace!r}\n".encode()
        with contextlib.suppress(OSError):  # already gone: its exit is being reported
            os.write(worker.control, message)

    def _send_stop(self) -> None:
        self._stop_sent = True
        for worker in list(self._live.values()):
            self._tell_stop(worker, self._stop_grace)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def drain(self, host: LoopHost[Any], grace: float) -> DrainReport:
        """Tell every worker to drain within ``grace``; wait for them; sum their reports."""
        if self._selector is None:  # never supervised (handle_request): an in-process drain
            return host.drain(grace)
        # A worker counts what finishes during its own drain; a request that finishes between
        # this call and the worker receiving "stop" would be in no report, so the supervisor
        # also counts, from the shared counters, what was in flight when the drain began.
        in_flight_at_start = host.counters.totals().in_flight
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

    def close(self, timeout: float | None = None) -> int:
        """Kill and reap the workers still alive (normally none after the drain); release the
        supervisor's fds. Returns the requests lost with killed workers."""
        if self._in_worker:
            return self._inner.close(timeout)
        lost = 0
        if self._selector is not None:
            self._kill_all()
            lost = sum(report.cut for report in self._reports)
            self._reports = []
            self._selector.close()
            self._selector = None
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        return lost + self._inner.close(timeout)

    # -- a worker -------------------------------------------------------------------------------

    def _worker_main(self, host: LoopHost[Any], slot: int, control: int, status: int) -> None:
        """The body of a worker process; never returns."""
        code = 70  # EX_SOFTWARE, if anything below raises
        try:
            self._become_worker(host, slot, control)
            _send(status, b"ready\n")
            host.run_loop()
            grace = host.grace if host.grace is not None else host.config.shutdown.grace
            report = host.drain(grace, self._listener_on_drain(host))
            self._inner.close(_RELEASE_WAIT)
            line = f"report {report.completed} {report.cut} {report.backlog_refused}\n"
            _send(status, line.encode())
            code = 0
        except BaseException:
            logger.exception("worker %d failed", os.getpid())
        finally:
            with contextlib.suppress(BaseException):
                logging.shutdown()
                flush_stdio()
            os._exit(code)

    def _become_worker(self, host: LoopHost[Any], slot: int, control: int) -> None:
        self._in_worker = True
        rebind = None
        if host.config.reuse_port:  # a SO_REUSEPORT socket of its own, on the same port
            port = host.transport.address[1]
            rebind = host.config.with_overrides({"address.port": port})
        host.after_fork(loop=True, rebind=rebind)
        grace = host.config.shutdown.grace
        signal.signal(signal.SIGTERM, lambda signum, frame: host.request_stop(grace))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        host.counters.use_row(slot)
        # The supervisor's fds are not ours: keeping them would hold siblings' pipes open.
        for worker in self._live.values():
            for fd in (worker.pidfd, worker.status, worker.control):
                os.close(fd)
        self._live = {}
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1
        close_inherited_clients(host.transport.address)
        host.watch(control, lambda: self._on_control(host, control))

    def _listener_on_drain(self, host: LoopHost[Any]) -> ListenerOnDrain:
        if not self._retiring:
            return "refuse"
        return "release" if host.config.reuse_port else "leave"

    def _on_control(self, host: LoopHost[Any], control: int) -> None:
        """A message from the supervisor, or EOF (it died): stop gracefully either way."""
        data = os.read(control, _READ)
        words = data.split()
        grace = float(words[1]) if len(words) == 2 and words[0] == b"stop" else None
        self._retiring = words == [b"retire"]
        host.unwatch(control)
        os.close(control)
        host.request_stop(grace if grace is not None else host.config.shutdown.grace)


def _send(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
        os.write(fd, data)
