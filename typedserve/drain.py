"""Graceful drain: the :class:`DrainReport` a shutdown returns, and the two ways a drain ends a
connection early (refusing one still in the backlog, cutting one in flight).

Who calls what: the server's drain (or a loop-owning strategy's) calls :func:`refuse` on the
thread that owns the loop, for requests taken from the backlog after the stop; it calls
:func:`cut` from that same thread on requests still running on other threads at the deadline.
Neither raises: a connection the peer already reset is simply gone.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from typedserve.requests import RequestT, StreamRequest

__all__ = ["BusyPolicy", "DrainReport", "cut", "log_report", "refuse"]

logger = logging.getLogger("typedserve.server")

BusyPolicy: TypeAlias = Callable[[RequestT], None]
"""Called on the loop thread with a request the server turns away (overload or drain) before
the server closes it: write a short "busy" reply here (e.g. ``request.socket.send(b"503 ...")``
or ``datagram.reply(b"BUSY")``). It must not block; exceptions go to the error policy."""

_DISCARD = 65_536  # unread input discarded before closing, so the peer gets a FIN, not a RST


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


def refuse(request: Any, close: Callable[[Any], None]) -> None:
    """Discard what a refused stream client already sent, then ``close(request)`` normally.

    Closing a socket with unread input makes the kernel send a RST, which can destroy the busy
    reply before the client reads it; reading the pending input first leaves a clean FIN.
    """
    if isinstance(request, StreamRequest):
        conn = request.socket
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            while conn.recv(_DISCARD):
                pass
    close(request)


def cut(request: object) -> None:
    """Shut a running request's connection down so a handler blocked on it wakes up (EOF).

    Only stream requests own a connection; a datagram's socket is shared and left alone. The
    handler's thread still closes the request as usual when it returns.
    """
    if isinstance(request, StreamRequest):
        with contextlib.suppress(OSError):
            request.socket.shutdown(socket.SHUT_RDWR)
