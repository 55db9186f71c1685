"""``ThreadPool``: a fixed set of worker threads fed by a bounded queue.

Threads: ``submit`` runs on the loop thread and only appends to a ``SimpleQueue``; workers,
started lazily up to ``max_workers``, take requests from it and run ``serve``. The queue is
bounded through ``capacity``: the server stops accepting (or rejects, per
``limits.overload``) while ``max_workers + max_pending`` requests are running or queued, so
excess connections wait in the kernel backlog instead of in memory. An idle worker blocks in
``SimpleQueue.get`` and costs nothing per connection.

Datagrams: the pool lends its workers to the server (:meth:`ThreadPool.pull`), which lets
``max_workers`` of them (fewer under ``limits.max_in_flight``) receive and serve datagrams
themselves while its loop runs, with no queue hand-off; ``max_pending`` then goes unused and
what exceeds the workers waits in the socket's receive buffer.

Resource handling: :meth:`ThreadPool.close` queues one stop marker per worker and joins them;
requests still queued run first (after a drain's deadline the server makes them close their
connection without running the handler). Errors: ``serve`` never raises; a ``BaseException``
escaping it (e.g. ``SystemExit`` from a handler) ends that worker, and the next ``submit``
starts a replacement.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from typedserve.errors import ConfigError
from typedserve.requests import Request
from typedserve.strategies.base import Strategy

__all__ = ["ThreadPool"]

T = TypeVar("T", bound=Request)

_STOP = None
_PULL: Any = object()  # in place of ``serve``: the item is a pulling job, ``work(...)``


class ThreadPool(Strategy):
    """Serve requests on at most ``max_workers`` threads, with up to ``max_pending`` queued.

    Example: ``Server(..., strategy=ThreadPool(max_workers=32, max_pending=64))``.
    ``max_pending`` defaults to ``max_workers``. Threads are daemon threads (so a server that
    is never closed cannot hang interpreter exit), but ``close`` always joins them.
    """

    def __init__(self, max_workers: int = 16, max_pending: int | None = None) -> None:
        if max_workers < 1:
            raise ConfigError.for_argument("ThreadPool", "max_workers", max_workers, ">= 1")
        pending = max_workers if max_pending is None else max_pending
        if pending < 0:
            raise ConfigError.for_argument("ThreadPool", "max_pending", max_pending, ">= 0")
        self.max_workers = max_workers
        self.max_pending = pending
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], None], Any] | None] = (
            queue.SimpleQueue()
        )
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._submitted = 0  # written by the loop thread only
        self._finished = 0  # written by workers, under the lock
        self._pulled = 0  # requests pulled minus those ended: by pulling workers, under
        # their source's lock (never the loop thread's or queue workers' counters)
        self._waiter: Callable[[], None] | None = None

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Queue ``serve(request)``; start a worker if every running one is busy."""
        self._queue.put((serve, request))
        self._submitted += 1
        workers = len(self._workers)
        if workers < self.max_workers and self.in_flight > workers:
            self._start_worker()

    def _start_worker(self) -> None:
        thread = threading.Thread(target=self._work, name="typedserve-pool", daemon=True)
        with self._lock:
            self._workers.add(thread)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._workers.discard(thread)
            raise

    def pull(
        self, work: Callable[[Callable[[], None], Callable[[], None]], None], limit: int | None
    ) -> None:
        """Run ``work(started, ended)`` on ``max_workers`` workers (``limit`` if fewer), started
        now if need be: they receive datagrams themselves until the server stops pulling, then
        go back to the queue (see :class:`~typedserve.strategies.base.Pulling`)."""
        count = self.max_workers if limit is None else min(limit, self.max_workers)
        for _ in range(count):
            self._queue.put((_PULL, work))
        while len(self._workers) < count:
            self._start_worker()

    # A pulling worker's accounting, called under its source's lock (so one at a time): a
    # count of its own, since the loop thread and queue workers may still count theirs.
    def _pulled_started(self) -> None:
        self._pulled += 1

    def _pulled_ended(self) -> None:
        self._pulled -= 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter()

    def _end(self) -> None:
        with self._lock:
            self._finished += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter()

    def _work(self) -> None:
        get, end = self._queue.get, self._end
        try:
            while (item := get()) is not _STOP:
                serve, request = item
                if serve is _PULL:
                    request(self._pulled_started, self._pulled_ended)
                    continue
                try:
                    serve(request)
                finally:
                    end()
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    @property
    def in_flight(self) -> int:
        """Requests running or queued."""
        return self._submitted - self._finished + self._pulled

    @property
    def capacity(self) -> int:
        """``max_workers + max_pending``."""
        return self.max_workers + self.max_pending

    @property
    def workers(self) -> int:
        """Worker threads alive now (they start on demand)."""
        return len(self._workers)

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the next request finishes (at once if none is in flight)."""
        self._waiter = callback
        if self.in_flight == 0:
            waiter, self._waiter = self._waiter, None
            if waiter is not None:
                waiter()

    def close(self, timeout: float | None = None) -> int:
        """Stop every worker once the queue is empty; join them up to ``timeout`` seconds.

        Returns the requests still in flight then. A worker closing its own server is not
        joined (it cannot wait for itself); it ends when its request returns.
        """
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(_STOP)
        caller = threading.current_thread()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in workers:
            if thread is not caller:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.in_flight
