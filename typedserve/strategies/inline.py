"""``Inline``: each request runs to completion on the loop thread (the stdlib's default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from typedserve.requests import Request
from typedserve.strategies.base import Strategy

__all__ = ["Inline"]

T = TypeVar("T", bound=Request)


class Inline(Strategy):
    """Serve requests synchronously, one at a time, on the thread running the server loop.

    The cheapest strategy per request, and the right one for short requests (UDP services,
    quick request/response protocols). A slow client makes the server "deaf" to others while
    it is served: use ``timeouts`` or a threaded strategy for long-lived connections.
    """

    __slots__ = ("_running",)

    serial = True

    def __init__(self) -> None:
        self._running = 0

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Run ``serve(request)`` now."""
        self._running = 1
        try:
            serve(request)
        finally:
            self._running = 0

    @property
    def in_flight(self) -> int:
        """1 while a request runs, else 0."""
        return self._running

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Nothing runs between two submits: call ``callback`` at once."""
        callback()

    def close(self, timeout: float | None = None) -> int:
        """Nothing to wait for."""
        return 0
