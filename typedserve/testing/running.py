"""``serve_in_thread``: run a server's loop on a background thread for the length of a block."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, runtime_checkable

from typedserve.server import Server

__all__ = ["serve_in_thread"]

_SLICE = 0.01

ServerT = TypeVar("ServerT", bound=Server[Any, Any])


@runtime_checkable
class _StartsWorkers(Protocol):
    """A strategy whose loop starts workers (``Prefork``): ready once every worker is."""

    def wait_ready(self, timeout: float | None = None) -> bool: ...


@contextmanager
def serve_in_thread(server: ServerT, *, timeout: float = 10.0) -> Iterator[ServerT]:
    """Run ``server.serve_forever()`` on a thread; yield ``server`` once it is serving.

    Serving means the loop is running and, for a strategy that starts worker processes
    (``Prefork``, through its ``wait_ready``), every worker is up: the block's code starts
    while nothing is being forked (a fork would copy whatever the block has open at that
    instant), and the workers are there to count, signal or kill.

    On leaving the block, however it is left, the loop is asked to stop, the thread is joined
    and the server is closed (waiting up to its ``shutdown.grace`` for requests in flight), in
    that order. Every wait is bounded by ``timeout`` seconds: a loop that does not start or
    does not stop in time raises :class:`TimeoutError` instead of hanging the test run. An
    exception that escaped ``serve_forever`` is re-raised on exit (after the block's own
    exception, if any, which takes precedence).

    Resource handling: the caller creates (and binds) the server; this function owns closing
    it. Threads: the loop runs on a thread named ``typedserve-serve-forever``.

    Example::

        with serve_in_thread(Server(config=..., transport=TCPTransport(), handler=Echo)) as s:
            with socket.create_connection(s.address[:2]) as client: ...
    """
    failures: list[BaseException] = []
    ended = threading.Event()

    def run() -> None:
        try:
            server.serve_forever()
        except BaseException as exc:  # reported to the caller on exit, never lost
            failures.append(exc)
        finally:
            ended.set()

    thread = threading.Thread(target=run, name="typedserve-serve-forever", daemon=True)
    try:
        thread.start()
        _wait_started(server, ended, failures, timeout)
        yield server
    finally:
        server.request_shutdown()
        thread.join(timeout)
        stuck = thread.is_alive()
        if not stuck:
            server.close()
    if stuck:
        raise TimeoutError(f"{server!r} did not stop within {timeout} s of shutdown()")
    if failures:
        raise failures[0]


def _wait_started(
    server: Server[Any, Any], ended: threading.Event, failures: list[BaseException], timeout: float
) -> None:
    # The loop either starts (the server's readiness event, then its workers') or ends first:
    # it failed, or a shutdown requested earlier made it return at once. Check both in short
    # slices, bounded by ``timeout`` overall.
    deadline = time.monotonic() + timeout
    waits: list[Callable[[float], bool]] = [server.wait_serving]
    strategy = server.strategy
    if isinstance(strategy, _StartsWorkers):
        waits.append(strategy.wait_ready)
    for wait in waits:
        while not wait(_SLICE):
            if ended.is_set():
                if failures:
                    raise failures[0]
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{server!r} did not start serving within {timeout} s")
