"""``MetricsConfig``: the ``metrics`` table of a server's config.

It says whether the server keeps a request-duration histogram (``duration_histogram``, off by
default: it costs a clock read per request) and with which buckets. The histogram lives in the
server's shared counters, so the processes of ``ForkPerRequest`` and ``Prefork`` add to the one
``server.stats().request_durations`` the parent reads (and :mod:`typedserve.metrics` exposes).
The counters and gauges of ``server.stats()`` need no config: they are always kept.

In TOML::

    [metrics]
    duration_histogram = true
    buckets = [0.001, 0.01, 0.1, 1, 10]

From the environment: ``TYPEDSERVE_METRICS__DURATION_HISTOGRAM=true``,
``TYPEDSERVE_METRICS__BUCKETS=0.001,0.01,0.1`` (text is split on commas).
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from typedserve._config_model import _Model

__all__ = ["DEFAULT_BUCKETS", "MetricsConfig"]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""The default upper bounds, in seconds: from half a millisecond (a loopback request) to the
default ``timeouts.request`` (60 s); ``+Inf`` is always added."""

_Bound = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class MetricsConfig(_Model, frozen=True):
    """Metrics the server keeps beyond its counters: the ``metrics`` table of a
    :class:`~typedserve.config.ServerConfig` (see the module docstring).

    Example::

        MetricsConfig(duration_histogram=True, buckets=(0.001, 0.01, 0.1, 1.0))
    """

    duration_histogram: bool = False
    """Keep a histogram of how long requests take, from the server taking a request to its
    handler's end (``stats().request_durations``, ``typedserve_request_duration_seconds``).
    Off by default: it costs two clock reads and a locked update per request."""
    buckets: tuple[_Bound, ...] = DEFAULT_BUCKETS
    """The histogram's upper bounds in seconds: at least one, each positive and finite,
    strictly increasing (``+Inf`` is added). Text: ``0.001,0.01,0.1``."""

    @field_validator("buckets", mode="before")
    @classmethod
    def _buckets_text(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, buckets: tuple[float, ...]) -> tuple[float, ...]:
        if not buckets:
            raise PydanticCustomError(
                "buckets", "at least one bucket bound (seconds), e.g. [0.01, 0.1, 1]"
            )
        for lower, upper in itertools.pairwise(buckets):
            if not lower < upper:
                raise PydanticCustomError(
                    "buckets",
                    "bucket bounds must be strictly increasing: {upper} follows {lower}",
                    {"lower": lower, "upper": upper},
                )
        return buckets

    @property
    def histogram(self) -> tuple[float, ...] | None:
        """The bucket bounds when ``duration_histogram`` is on; ``None`` when it is off."""
        return self.buckets if self.duration_histogram else None
