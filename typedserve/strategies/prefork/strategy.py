"""The :class:`Prefork` strategy: its knobs, its dispatching side (inside a worker) and its
public controls; the supervising and the serving are in :mod:`.supervisor` and :mod:`.worker`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, NoReturn, TypeVar

from typedserve.config import InetAddress
from typedserve.drain import DrainReport
from typedserve.errors import ConfigError
from typedserve.host import LoopHost
from typedserve.requests import Request
from typedserve.strategies.base import Strategy
from typedserve.strategies.pool import ThreadPool
from typedserve.strategies.prefork.supervisor import Supervisor
from typedserve.strategies.prefork.worker import Worker, WorkerStart

__all__ = ["Prefork"]

T = TypeVar("T", bound=Request)


class Prefork(Strategy):
    """Serve with ``workers`` processes, each running ``threads_per_worker`` handler threads.

    Example::

        server = Server(config=ServerConfig(reuse_port=True), transport=TCPTransport(),
                        handler=App, strategy=Prefork(workers=4, threads_per_worker=8))
        with server:
            server.serve_forever()      # this process supervises; workers serve

    At most ``workers * threads_per_worker`` requests run at once (by default 2 x 16, as
    gunicorn's ``gthread`` workers do): a worker's pool has no queue, so a worker whose threads are
    all busy stops accepting and leaves the shared backlog to its siblings, and its loop thread
    stays free to hear a stop or a rolling restart while handlers run. A connection still
    waiting for its first byte is held by the worker that accepted it (the slow-client
    defence): if it becomes ready while that worker's threads are busy, it waits for one of
    them, not a sibling's. As with
    ``ForkPerRequest``, state changed in a worker never reaches the supervisor or the other
    workers. A worker that dies is replaced, at most ``max_restarts`` times within any
    ``restart_window`` seconds (later ones wait; ``max_restarts=0``: never replaced). See
    :mod:`typedserve.strategies.prefork` for supervision and stopping, and
    :mod:`typedserve.strategies.prefork.worker` for what a worker keeps of the supervisor's
    process.
    """

    def __init__(
        self,
        workers: int = 2,
        threads_per_worker: int = 16,
        *,
        max_restarts: int = 10,
        restart_window: float = 10.0,
    ) -> None:
        for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
            if value < 1:
                raise ConfigError.for_argument("Prefork", name, value, ">= 1")
        for name, number in (("max_restarts", max_restarts), ("restart_window", restart_window)):
            if number < 0:
                raise ConfigError.for_argument("Prefork", name, number, ">= 0")
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        # No queue in a worker: it takes only what it can start, leaving the rest of the
        # shared backlog to its siblings. A pool even of one thread keeps the worker's loop free
        # to hear "stop" and cut at the drain's deadline (an inline handler would hold it).
        self._inner = ThreadPool(threads_per_worker, 0)
        self._host: LoopHost[Any] | None = None
        self._in_worker = False
        self._supervisor = Supervisor(
            workers, max_restarts, restart_window, start_worker=self._become_worker
        )

    # -- the dispatching side: used inside a worker (and by handle_request in the supervisor)

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Hand the request to the worker's inner strategy."""
        self._inner.submit(serve, request)

    def pull(
        self, work: Callable[[Callable[[], None], Callable[[], None]], None], limit: int | None
    ) -> None:
        """In a worker: its threads receive datagrams themselves (``ThreadPool.pull``)."""
        self._inner.pull(work, limit)

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
        return self._supervisor.pids

    def wait_ready(self, timeout: float | None = None, *, replacing: Iterable[int] = ()) -> bool:
        """Wait until ``workers`` workers are up and ready, none of them with a pid in
        ``replacing`` (e.g. the pid of a worker just killed); ``False`` on timeout."""
        return self._supervisor.wait_ready(timeout, replacing=replacing)

    def restart_workers(self) -> None:
        """Start a rolling restart (as SIGHUP does); safe from any thread or signal handler."""
        self._supervisor.restart()

    # -- the loop-owning hooks ----------------------------------------------------------------

    def run(self, host: LoopHost[Any]) -> None:
        """Supervise workers until the server is asked to stop; then tell them to drain.

        On the main thread, SIGTERM and SIGINT ask for a graceful stop and SIGHUP for a
        rolling restart until this returns (the previous handlers are then restored).
        """
        self._host = host
        previous = self._install_signals(host)
        try:
            self._supervisor.run(host)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _install_signals(self, host: LoopHost[Any]) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def stop(signum: int, frame: FrameType | None) -> None:
            host.request_stop()

        def hup(signum: int, frame: FrameType | None) -> None:
            self._supervisor.restart()

        handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: hup}
        return {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    def drain(self, host: LoopHost[Any], grace: float) -> DrainReport:
        """Tell every worker to drain within ``grace``; wait for them; sum their reports."""
        if not self._supervisor.active:  # never supervised (handle_request): in-process drain
            return host.drain(grace)
        return self._supervisor.drain(host, grace)

    def close(self, timeout: float | None = None) -> int:
        """Kill and reap the workers still alive (normally none after the drain); release the
        supervisor's fds. Returns the requests lost with killed workers."""
        if self._in_worker:
            return self._inner.close(timeout)
        return self._supervisor.close() + self._inner.close(timeout)

    def _become_worker(self, start: WorkerStart) -> NoReturn:
        """In a freshly forked child (the supervisor's fds already closed): serve as a worker."""
        self._in_worker = True
        Worker(start, self._inner).run()
