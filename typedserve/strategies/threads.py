"""``ThreadPerRequest``: a new thread for each request (the stdlib's ``ThreadingMixIn``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from typedserve.requests import Request
from typedserve.strategies.base import Strategy

__all__ = ["ThreadPerRequest"]

T = TypeVar("T", bound=Request)


# Passed as the kwargs of every request thread: Thread.__init__ would otherwise allocate an
# empty dict per thread for the target's keyword arguments, which _RequestThread.run (it has
# no target) never reads. Nothing mutates it.
_NO_KWARGS: dict[str, object] = {}


class _RequestThread(threading.Thread):
    """The thread of one request: ``serve(request)``, then tell the strategy it ended.

    A subclass rather than ``Thread(target=..., args=...)``: no bound method, argument tuple
    or kwargs dict is kept per thread, which matters for thousands of idle connections.
    """

    def __init__(self, strategy: ThreadPerRequest, serve: Callable[[Any], None], request: object):
        super().__init__(name="typedserve-request", kwargs=_NO_KWARGS, daemon=strategy.daemon)
        self._strategy = strategy
        self._serve = serve
        self._request = request

    def run(self) -> None:
        try:
            self._serve(self._request)
        finally:
            del self._serve, self._request  # released as the request ends, as Thread.run does
            self._strategy._ended(self)


class ThreadPerRequest(Strategy):
    """Serve each request on a thread of its own.

    ``daemon``: make the threads daemon threads, so the interpreter may exit while they run.
    ``wait_on_close``: :meth:`close` joins the threads still running (up to its timeout); set it
    to ``False`` to return at once. Finished threads are forgotten as they end, so a
    long-running server does not accumulate thread objects. Bound the number of threads with
    the config's ``limits.max_in_flight``.
    """

    def __init__(self, *, daemon: bool = False, wait_on_close: bool = True) -> None:
        self.daemon = daemon
        self.wait_on_close = wait_on_close
        # A dict used as an insertion-ordered set: more compact than a set at thousands of
        # entries (one per idle connection).
        self._threads: dict[threading.Thread, None] = {}
        self._waiter: Callable[[], None] | None = None

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Start a thread running ``serve(request)``."""
        thread = _RequestThread(self, serve, request)
        self._threads[thread] = None  # before start(), so the thread's own removal follows
        try:
            thread.start()
        except BaseException:
            self._threads.pop(thread, None)
            raise

    def _ended(self, thread: threading.Thread) -> None:
        """Called by each request thread as its request ends."""
        self._threads.pop(thread, None)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()

    @property
    def in_flight(self) -> int:
        """Threads started and not yet finished."""
        return len(self._threads)

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the next thread finishes."""
        self._waiter = callback
        if not self._threads:
            waiter, self._waiter = self._waiter, None
            if waiter is not None:
                waiter()

    def close(self, timeout: float | None = None) -> int:
        """Join running threads (unless ``wait_on_close`` is false) up to ``timeout`` seconds.

        Called from one of this strategy's own request threads (a handler closing its server),
        that thread is neither joined nor counted: it cannot wait for itself.
        """
        caller = threading.current_thread()
        others = [thread for thread in list(self._threads) if thread is not caller]
        if not self.wait_on_close:
            return len(others)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in others:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return sum(1 for thread in others if thread.is_alive())
