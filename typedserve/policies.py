"""Injected policies: who may connect (access) and what happens when a handler fails (errors)."""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Callable, Iterable
from typing import TypeAlias, TypeGuard

from typedserve.errors import HandshakeError, ProxyProtocolError
from typedserve.requests import Datagram, PeerAddress, RequestT, StreamRequest

__all__ = [
    "DISCONNECT_ERRORS",
    "AccessPolicy",
    "AllowNetworks",
    "ErrorPolicy",
    "allow_all",
    "is_disconnect",
    "log_disconnect",
    "log_error",
    "log_handshake_failure",
    "log_proxy_refusal",
]

logger = logging.getLogger("typedserve.server")

AccessPolicy: TypeAlias = Callable[[RequestT], bool]
"""Decides whether a request is served (``True``) or refused and closed (``False``)."""

ErrorPolicy: TypeAlias = Callable[[BaseException, PeerAddress], None]
"""Called with the exception and the peer address when a handler raises (except for the
network events in :data:`DISCONNECT_ERRORS`, which are counted and logged by
:func:`log_disconnect` instead)."""

DISCONNECT_ERRORS: tuple[type[OSError], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)
"""What a handler raises when the network, not the handler, ended its request: the peer reset
the connection, or a write found it closed (a peer gone, or a drain that cut the request).
Counted in ``stats().disconnects`` and logged by :func:`log_disconnect`, not passed to the
error policy. A handler that lets one of these escape from a connection of its own (to a
backend) is counted the same way; catch it to report it as an error."""


def allow_all(request: object) -> bool:
    """The default access policy: serve everyone."""
    return True


def log_error(exc: BaseException, peer: PeerAddress) -> None:
    """The default error policy: log at ERROR on ``typedserve.server`` with peer and traceback."""
    logger.error("error while handling a request from %s", _describe(peer), exc_info=exc)


def is_disconnect(exc: BaseException) -> TypeGuard[OSError]:
    """Whether ``exc`` is a network event rather than a handler bug: one of
    :data:`DISCONNECT_ERRORS`, or ``ssl.SSLEOFError`` (a TLS peer gone without ``close_notify``;
    looked up only when ``ssl`` is loaded, so plain servers never import it)."""
    if isinstance(exc, DISCONNECT_ERRORS):
        return True
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(exc, ssl.SSLEOFError)


def log_disconnect(exc: OSError, peer: PeerAddress) -> None:
    """Log a request ended by a network event (:data:`DISCONNECT_ERRORS`): one INFO line on
    ``typedserve.server`` naming the peer and the error, no traceback."""
    logger.info(
        "connection from %s ended during its request: %s: %s",
        _describe(peer),
        type(exc).__name__,
        exc.strerror or exc,
    )


class AllowNetworks:
    """An access policy that serves only peers inside the given IP networks (CIDR strings).

    Unix-socket peers have no IP address; they are served only if ``allow_unix`` is true.
    Example: ``Server(..., verify_request=AllowNetworks(["127.0.0.0/8", "::1/128"]))``.
    """

    def __init__(self, networks: Iterable[str], *, allow_unix: bool = True) -> None:
        self.networks = tuple(ipaddress.ip_network(net, strict=False) for net in networks)
        self.allow_unix = allow_unix

    def __call__(self, request: StreamRequest | Datagram) -> bool:
        """Whether ``request``'s peer is in one of the networks."""
        peer = request.peer
        if not isinstance(peer, tuple):
            return self.allow_unix
        try:
            address = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def log_handshake_failure(exc: HandshakeError, peer: PeerAddress) -> None:
    """Log a failed TLS handshake: one INFO line on ``typedserve.server`` naming the peer and
    the reason, no traceback (a scanner or a misconfigured client is no server error)."""
    logger.info("TLS handshake with %s failed: %s", _describe(peer), exc.reason)


def log_proxy_refusal(exc: ProxyProtocolError, upstream: PeerAddress) -> None:
    """Log a connection refused at its PROXY protocol header: one INFO line on
    ``typedserve.server`` naming the upstream (the connection's real peer) and the reason, no
    traceback (a misconfigured balancer or a probe is no server error)."""
    logger.info("PROXY protocol header from %s refused: %s", _describe(upstream), exc)


def _describe(peer: PeerAddress) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = peer[0]
        return f"[{host}]:{peer[1]}" if ":" in str(host) else f"{host}:{peer[1]}"
    return repr(peer) if peer else "an unnamed Unix socket"
