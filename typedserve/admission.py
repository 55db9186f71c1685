"""Admission: whether the loop may take one more request, and how it survives accept errors.

Sans-IO: plain functions of numbers and errnos, with no sockets, selectors or clocks, so both
loops (the selector loop in :mod:`typedserve._loop` and the AsyncIO table in
:mod:`typedserve.aio.table`) make the same decisions and a fix lands once.

- :meth:`AdmissionPolicy.decide` answers ``SERVE``, ``REJECT`` or ``PAUSE`` for the number of
  requests in flight, from ``limits.max_in_flight``, the strategy's own capacity and
  ``limits.overload``.
- :class:`AcceptBackoff` answers how long to stop accepting after an accept error that means
  "the process or the kernel is out of something" (``EMFILE``, ``ENFILE``, ``ENOBUFS``,
  ``ENOMEM``): 10 ms, doubling up to 1 s while the errors persist, reset by the next success.
  Any other error is re-raised: it is not the loop's to survive.
"""

from __future__ import annotations

import enum
import errno
import logging
from dataclasses import dataclass
from typing import Any, Final

from typedserve.config import ServerConfig

__all__ = [
    "RESOURCE_ERRNOS",
    "AcceptBackoff",
    "Admission",
    "AdmissionPolicy",
    "log_backoff",
]

logger = logging.getLogger("typedserve.server")

RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Accept errors survived by backing off (the listener stays readable: retrying at once spins)."""

BACKOFF_FIRST: Final = 0.01
BACKOFF_MAX: Final = 1.0


class Admission(enum.Enum):
    """What the loop does with the next request."""

    SERVE = "serve"
    """Take it and hand it to the strategy."""
    REJECT = "reject"
    """Take it and turn it away (busy hook, clean close): ``limits.overload="reject"``."""
    PAUSE = "pause"
    """Leave it in the kernel backlog and stop accepting until a request finishes."""


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The overload policy: ``limit`` requests in flight at most, then pause or reject.

    ``limit`` is ``None`` when nothing bounds the requests in flight.
    """

    limit: int | None
    pause_when_full: bool = True

    @classmethod
    def for_server(cls, config: ServerConfig, capacity: int | None) -> AdmissionPolicy:
        """The policy for ``config.limits`` and a strategy holding ``capacity`` requests at most:
        the smaller of ``limits.max_in_flight`` and ``capacity`` bounds the requests."""
        bounds = [n for n in (config.limits.max_in_flight, capacity) if n is not None]
        return cls(min(bounds, default=None), config.limits.overload == "pause")

    def full(self, in_flight: int) -> bool:
        """Whether ``in_flight`` requests reach the limit."""
        return self.limit is not None and in_flight >= self.limit

    def decide(self, in_flight: int) -> Admission:
        """What to do with the next request while ``in_flight`` requests are in flight."""
        if self.limit is None or in_flight < self.limit:
            return Admission.SERVE
        return Admission.PAUSE if self.pause_when_full else Admission.REJECT


class AcceptBackoff:
    """The back-off after accept errors (see the module docstring). One per loop."""

    __slots__ = ("delay",)

    def __init__(self) -> None:
        self.delay = 0.0
        """The current back-off in seconds; 0 after a successful accept."""

    def failed(self, exc: OSError) -> float:
        """An accept raised ``exc``: return how many seconds to stop accepting, or re-raise it
        when it is not a resource error."""
        if exc.errno not in RESOURCE_ERRNOS:
            raise exc
        self.delay = min(BACKOFF_MAX, self.delay * 2 or BACKOFF_FIRST)
        return self.delay

    def succeeded(self) -> None:
        """An accept worked: the next failure starts from the first delay again."""
        self.delay = 0.0


def log_backoff(address: Any, exc: OSError, delay: float) -> None:
    """Log (WARNING, ``typedserve.server``) that accepting on ``address`` pauses for ``delay``."""
    logger.warning(
        "accept on %s failed: %s; pausing accepts for %.0f ms", address, exc.strerror, delay * 1000
    )
