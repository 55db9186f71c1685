"""The strategy seam: where and how each request runs.

The server calls a strategy from its loop thread only:

- ``submit(serve, request)`` once per accepted request. The strategy arranges for
  ``serve(request)`` to run exactly once (inline, on a thread, in a child process...). ``serve``
  never raises: it runs the handler, reports errors to the server's error policy and releases
  the request. Ownership of ``request`` passes to the strategy with the call.
- ``in_flight``: requests submitted and not yet finished (the server compares it with
  ``limits.max_concurrent`` to stop accepting while the limit is reached).
- ``notify_when_available(callback)``: call ``callback()`` once, from any thread, when the next
  request finishes (or at once if none is in flight). The server uses it to resume accepting.
- ``close(timeout)``: stop taking work and wait up to ``timeout`` seconds (``None``: forever)
  for the requests in flight; return how many were still running at the deadline. Every
  thread or process the strategy started is joined or reaped before it returns (unless the
  strategy was configured not to wait, e.g. daemon threads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["Strategy"]

T = TypeVar("T")


class Strategy(Protocol):
    """How requests run: see the module docstring for the contract."""

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Run ``serve(request)`` once, here or elsewhere."""

    @property
    def in_flight(self) -> int:
        """Requests submitted and not finished."""

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when a request finishes (at once if none is in flight)."""

    def close(self, timeout: float | None = None) -> int:
        """Wait for requests in flight up to ``timeout``; return how many were left running."""
