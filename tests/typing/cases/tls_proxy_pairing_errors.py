"""PROXY protocol typing, the wrong way round: each line marked ``# E: <code>`` must get
exactly that error; every other line must get none."""

from __future__ import annotations

from typedserve import ProxiedStreamRequest, ProxyProtocolTransport, UDPTransport
from typedserve.requests import InetSockAddr

# No PROXY protocol over datagrams (v2 per datagram is not implemented): a type error.
ProxyProtocolTransport(UDPTransport())  # E: arg-type


def wants_tcp_peer(peer: InetSockAddr) -> None: ...


def relayed(request: ProxiedStreamRequest) -> None:
    # A relayed peer may be a Unix path (a UNIX header, a TCP client behind a Unix backend)
    wants_tcp_peer(request.peer)  # E: arg-type
