"""The per-request observer seam: who hears of every admitted request when it ends, and how.

A :class:`RequestObserver` is called once per admitted request (every request the server took
from its transport and counted as accepted), on the thread or process that ended it, with the
request, its :data:`Outcome` and two ``time.monotonic()`` values. The access log
(:mod:`typedserve.access_log`) is one; the request-duration histogram
(:mod:`typedserve.metrics.histogram`, recording into the server's shared counters) another.
Observers are built from the server's config and counters by :func:`observers_for`, once per
server: ``None`` when none is enabled, and then the server pays nothing per request (no clock
read, no call).

Where each outcome is decided (every strategy reports through the same points):

- ``completed``: the handler returned (``finish`` ran, the request was closed normally).
- ``error``: the handler (or the access policy, or the strategy's ``submit``) raised; also a
  framed connection closed for a framing error, and a request child that died abnormally.
- ``disconnect``: a network event ended it (a reset, a broken pipe: ``policies.is_disconnect``),
  or a framed connection's peer left before a complete first request.
- ``cut``: a drain's deadline (or the server's close) ended it while it ran, was queued or
  waited in the loop; it is ``cut`` even when its handler then returned normally.
- ``slow``: it outlived ``timeouts.request``, or sent nothing within ``timeouts.first_byte``.
- ``refused``: the access policy turned it away (``verify_request``).
- ``rejected``: the overload policy or a drain turned it away (busy hook, clean refusal).
- ``handshake_failed``: its TLS handshake failed or timed out (no handler ran).
- ``proxy_refused``: its PROXY protocol header was missing, malformed, untrusted or too slow.

``started``: the moment the server began serving the request (the thread, process or task that
serves it picked it up: after its first byte, for a connection that waited in the loop, and
after any queue in the strategy); it includes the opening (TLS handshake, PROXY header), the
handler and the close. For a request that ends in the loop before being served (``refused``,
``rejected``, and a request closed while parked), ``started`` is the moment it ended, except a
``slow`` parked connection's, which started when it was parked (it waited until its deadline).

Requests lost with a process (a prefork worker killed, or crashing) are not reported: the
process that knew them is gone (the supervisor counts them as errors in ``stats()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal, Protocol, TypeAlias, get_args

from typedserve.config import ServerConfig
from typedserve.counters import Counters
from typedserve.errors import HandshakeError, ProxyProtocolError
from typedserve.policies import is_disconnect
from typedserve.requests import Request

__all__ = [
    "OBSERVER_FACTORIES",
    "OUTCOMES",
    "ObserverFactory",
    "Observers",
    "Outcome",
    "RequestObserver",
    "observers_for",
    "outcome_of",
]

logger = logging.getLogger("typedserve.server")

Outcome = Literal[
    "completed",
    "error",
    "disconnect",
    "cut",
    "slow",
    "refused",
    "rejected",
    "handshake_failed",
    "proxy_refused",
]
"""How a request ended (see the module docstring for where each is decided)."""

OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
"""Every :data:`Outcome`, in the order of the type (for label sets, documentation, tests)."""


class RequestObserver(Protocol):
    """Hears of every admitted request once, when it ends (see the module docstring)."""

    def request_ended(
        self, request: Request, outcome: Outcome, started: float, ended: float
    ) -> None:
        """Called once per admitted request when it ends, on the thread/process that ended it.
        started/ended are time.monotonic() values (for refused/rejected: both the moment it was
        turned away).

        ``request`` is the transport's request (a ``StreamRequest``, ``TLSStreamRequest``,
        ``ProxiedStreamRequest``, ``FramedRequest`` or ``Datagram``; for ``AsyncIO`` streams,
        the ``StreamRequest`` accepted, whose socket the event loop drove). A stream request's
        connection is still open (not yet closed) during the call; a handler's thread waits for
        it, so it must be quick. It should not raise: what it raises is logged
        (``typedserve.server``, ERROR) by :class:`Observers` and serving goes on."""


ObserverFactory: TypeAlias = Callable[[ServerConfig, Counters], RequestObserver | None]
"""Builds one observer for a server from its config (and its counters, shared by the processes
that serve it); ``None``: not enabled by that config."""


class Observers:
    """Several observers as one: each is called in order; one that raises is logged and the
    others are still called. What :func:`observers_for` returns."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[RequestObserver]) -> None:
        self.members: tuple[RequestObserver, ...] = tuple(members)
        """The observers called, in order."""

    def request_ended(
        self, request: Request, outcome: Outcome, started: float, ended: float
    ) -> None:
        """Call every member with the same arguments (see :class:`RequestObserver`)."""
        for member in self.members:
            try:
                member.request_ended(request, outcome, started, ended)
            except Exception:
                logger.exception("request observer %r failed on %r (%s)", member, request, outcome)

    def __repr__(self) -> str:
        return f"Observers({list(self.members)!r})"


def _access_log(config: ServerConfig, counters: Counters) -> RequestObserver | None:
    """The access log (:mod:`typedserve.access_log`), when ``config.access_log.enabled``."""
    if not config.access_log.enabled:
        return None
    from typedserve.access_log.observer import AccessLog  # only for servers that log access

    return AccessLog(config.access_log)


def _duration_histogram(config: ServerConfig, counters: Counters) -> RequestObserver | None:
    """The request-duration histogram (:mod:`typedserve.metrics.histogram`), recording into
    ``counters``, when ``config.metrics.duration_histogram``."""
    if config.metrics.histogram is None:
        return None
    from typedserve.metrics.histogram import duration_observer  # only for servers that keep it

    return duration_observer(config, counters)


OBSERVER_FACTORIES: tuple[ObserverFactory, ...] = (
    _access_log,
    _duration_histogram,
    # Add a factory here (one line): it gets the server's config and counters and returns its
    # observer, or None when that config does not enable it. Import the observer's module
    # inside it, so a server that does not use it never imports it.
)
"""The factories :func:`observers_for` consults, in order (the order observers are called)."""


def observers_for(config: ServerConfig, counters: Counters) -> RequestObserver | None:
    """The observers ``config`` enables for a server whose counters are ``counters``, as one
    :class:`Observers`; ``None`` when it enables none (the server then makes no observer call
    and no clock read per request)."""
    made = [factory(config, counters) for factory in OBSERVER_FACTORIES]
    members = [observer for observer in made if observer is not None]
    return Observers(members) if members else None


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome of a request ended by ``exc`` (as ``Serving.report`` counts it):
    ``handshake_failed``, ``proxy_refused``, ``disconnect`` (a network event) or ``error``."""
    if isinstance(exc, HandshakeError):
        return "handshake_failed"
    if isinstance(exc, ProxyProtocolError):
        return "proxy_refused"
    if is_disconnect(exc):
        return "disconnect"
    return "error"
