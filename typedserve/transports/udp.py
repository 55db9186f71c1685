"""``UDPTransport``: UDP over IPv4 and IPv6."""

from __future__ import annotations

from typedserve.requests import InetSockAddr
from typedserve.transports.datagram import DatagramTransport

__all__ = ["UDPTransport"]


class UDPTransport(DatagramTransport[InetSockAddr, InetSockAddr]):
    """A ``Transport[Datagram[InetSockAddr], InetSockAddr]`` bound to a UDP ``inet`` address
    or an inherited UDP fd."""
