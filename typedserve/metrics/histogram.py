"""``DurationHistogram``: records how long each served request took, in the shared counters.

It is a request observer (``typedserve.observe.RequestObserver``): the server calls
``request_ended(request, outcome, started, ended)`` once per admitted request, in the process
and on the thread that served it, and the histogram adds ``ended - started`` to that process's
row of the server's :class:`~typedserve.counters.Counters` (the bucket columns they have when
``metrics.duration_histogram`` is on). So the children of ``ForkPerRequest`` and the workers of
``Prefork`` record into memory the parent reads, and ``server.stats().request_durations`` sums
every process, like the counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from typedserve.counters import Counters
from typedserve.errors import ConfigError

if TYPE_CHECKING:
    from typedserve.config import ServerConfig

__all__ = ["RECORDED_OUTCOMES", "DurationHistogram", "duration_observer"]

RECORDED_OUTCOMES: Final = frozenset({"completed", "error", "disconnect", "cut", "slow"})
"""The outcomes whose durations are recorded: the requests the server served, however they
ended (``slow`` includes, as the observer seam reports it, a connection closed for sending
nothing within ``timeouts.first_byte``). Not recorded: ``refused`` and ``rejected`` (turned
away by the access or overload policy), ``handshake_failed`` and ``proxy_refused`` (closed
before any handler ran)."""


class DurationHistogram:
    """Records the duration of each served request in ``counters`` (a request observer).

    ``counters`` must have been made with ``durations`` (the bucket bounds): a server's are
    when its config has ``metrics.duration_histogram`` on. Thread-safe: several threads of a
    process record under the counters' lock.
    """

    __slots__ = ("_observe",)

    def __init__(self, counters: Counters) -> None:
        if counters.durations is None:
            raise ConfigError(
                "DurationHistogram(counters=...) needs counters with a duration histogram: "
                "a server's have one when its config sets metrics.duration_histogram = true"
            )
        self._observe: Callable[[float], None] = counters.observe_duration

    def request_ended(self, request: object, outcome: str, started: float, ended: float) -> None:
        """Record ``ended - started`` (``time.monotonic()`` seconds) if ``outcome`` is one of
        :data:`RECORDED_OUTCOMES` (``request`` is not read)."""
        if outcome in RECORDED_OUTCOMES:
            self._observe(ended - started)


def duration_observer(config: ServerConfig, counters: Counters) -> DurationHistogram | None:
    """The observer factory for a server: a :class:`DurationHistogram` over its ``counters``
    when ``config.metrics.duration_histogram`` is on, ``None`` (nothing to call per request)
    when it is off."""
    if config.metrics.histogram is None or counters.durations is None:
        return None
    return DurationHistogram(counters)
