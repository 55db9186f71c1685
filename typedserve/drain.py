"""Graceful drain: the :class:`DrainReport` a shutdown returns, how it is logged, and the busy
hook a server calls on the requests it turns away.

The two ways a drain ends a connection early are the request's own: ``request.refuse()`` for
one taken from the backlog after the stop, ``request.cut()`` for one still running at the
deadline (see :class:`~typedserve.requests.Request`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from typedserve.requests import RequestT

__all__ = [
    "LINGER",
    "PENDING_WAIT",
    "RELEASE_WAIT",
    "SETTLE",
    "BusyPolicy",
    "DrainReport",
    "log_report",
]

SETTLE = 0.02
"""After a drain holds new connections: how long it keeps refusing the stragglers whose
handshakes were already answered (they complete within a round trip)."""

PENDING_WAIT = 1.0
"""In a drain, at most (and within the grace): how long a connection accepted before the stop
that has not sent its request yet (or not all of it) is still waited for and served. A client
sends right after it connects; one still silent after this is refused (busy hook, FIN), so a
silent client cannot stretch a drain to its full grace."""

LINGER = 2.0
"""Seconds a refused connection is read and discarded, at most, before it is closed (its busy
reply must not be destroyed by a reset)."""

RELEASE_WAIT = 2.0
"""After a drain: how long closing waits for the threads (or worker processes) of requests that
were cut to end before it goes on without them."""

logger = logging.getLogger("typedserve.server")

BusyPolicy: TypeAlias = Callable[[RequestT], None]
"""Called on the loop thread with a request the server turns away (overload or drain) before
the server closes it: write a short "busy" reply here (e.g. ``request.socket.send(b"503 ...")``
or ``datagram.reply(b"BUSY")``). It must not block; exceptions go to the error policy."""


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What a graceful shutdown did with the work it found.

    ``completed``: requests in flight (or taken from the backlog) when the drain began that
    finished before the deadline. ``cut``: requests still running at the deadline, whose
    connections were shut down (or whose worker process was stopped). ``backlog_refused``:
    connections or datagrams that reached the server after it stopped accepting, refused
    cleanly (the busy hook, then a normal close) instead of being reset by the final close.
    Reports add up (``a + b``), e.g. across the workers of a ``Prefork``.
    """

    completed: int = 0
    cut: int = 0
    backlog_refused: int = 0

    def __add__(self, other: DrainReport) -> DrainReport:
        """Field-wise sum."""
        return DrainReport(
            self.completed + other.completed,
            self.cut + other.cut,
            self.backlog_refused + other.backlog_refused,
        )


def log_report(report: DrainReport, where: object, grace: float) -> None:
    """Log ``report`` on ``typedserve.server``: INFO, or WARNING when something was cut."""
    if report.cut:
        logger.warning(
            "%d request(s) still running after the %.1f s grace period were cut "
            "(drained %s: %d completed, %d refused from the backlog)",
            report.cut,
            grace,
            where,
            report.completed,
            report.backlog_refused,
        )
        return
    logger.info(
        "drained %s within %.1f s: %d completed, %d refused from the backlog",
        where,
        grace,
        report.completed,
        report.backlog_refused,
    )
