"""``TCPTransport``: TCP over IPv4 and IPv6 (including dual-stack)."""

from __future__ import annotations

from typedserve.requests import InetSockAddr
from typedserve.transports.stream import StreamTransport

__all__ = ["TCPTransport"]


class TCPTransport(StreamTransport[InetSockAddr]):
    """A ``Transport[StreamRequest[InetSockAddr], InetSockAddr]`` listening on TCP: an
    ``inet`` address or an inherited fd. Addresses are ``(host, port)`` tuples for IPv4 and
    ``(host, port, flowinfo, scope_id)`` for IPv6.

    Example::

        Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo)
    """
