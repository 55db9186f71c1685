"""The restart-rate limit of ``Prefork``, sans-IO: when may the next replacement start?

A worker that dies unexpectedly is replaced, but a crash loop must not turn into a fork loop:
at most ``limit`` replacements start within any ``window`` seconds, and one beyond that waits
until the oldest of them leaves the window. Time is passed in (``time.monotonic()`` values),
so the policy is tested without processes or clocks.
"""

from __future__ import annotations

import collections

from typedserve.errors import ConfigError

__all__ = ["RestartLimit"]


class RestartLimit:
    """At most ``limit`` replacements within any ``window`` seconds (``limit`` 0: none ever).

    Example::

        limit = RestartLimit(2, window=10.0)
        limit.delay(0.0)        # 0.0: may start now
        limit.record(0.0); limit.record(1.0)
        limit.delay(5.0)        # 5.0: the one at 0.0 leaves the window at 10.0
    """

    def __init__(self, limit: int, window: float) -> None:
        for name, value in (("limit", limit), ("window", window)):
            if value < 0:
                raise ConfigError.for_argument("RestartLimit", name, value, ">= 0")
        self.limit = limit
        self.window = window
        self._started: collections.deque[float] = collections.deque()

    def delay(self, now: float) -> float | None:
        """Seconds from ``now`` until a replacement may start: 0.0 if it may start now,
        ``None`` if it never may (``limit`` 0). Does not count as a start."""
        if self.limit == 0:
            return None
        while self._started and now - self._started[0] >= self.window:
            self._started.popleft()
        if len(self._started) < self.limit:
            return 0.0
        return self._started[0] + self.window - now

    def record(self, now: float) -> None:
        """Count a replacement started at ``now``."""
        self._started.append(now)
