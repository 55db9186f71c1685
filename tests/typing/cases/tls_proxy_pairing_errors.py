"""PROXY protocol typing, the wrong way round: each line marked ``# E: <code>`` must get
exactly that error; every other line must get none."""

from __future__ import annotations

from typedserve import (
    DatagramHandler,
    ProxiedStreamRequest,
    ProxyProtocolDatagramTransport,
    ProxyProtocolTransport,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    UDPTransport,
    UnixDatagramTransport,
)
from typedserve.requests import InetSockAddr

# The stream wrapper takes stream transports; datagrams have their own (UDP only).
ProxyProtocolTransport(UDPTransport())  # E: arg-type
ProxyProtocolDatagramTransport(TCPTransport())  # E: arg-type
ProxyProtocolDatagramTransport(UnixDatagramTransport())  # E: arg-type


class Lines(StreamHandler):
    def handle(self) -> None: ...


class Echo(DatagramHandler):
    def handle(self) -> None: ...


udp = ProxyProtocolDatagramTransport(UDPTransport())
Server(config=ServerConfig(), transport=udp, handler=Lines)  # E: arg-type


def wants_tcp_peer(peer: InetSockAddr) -> None: ...


def relayed(request: ProxiedStreamRequest) -> None:
    # A relayed peer may be a Unix path (a UNIX header, a TCP client behind a Unix backend)
    wants_tcp_peer(request.peer)  # E: arg-type
