"""Transports: one listening endpoint each, producing typed requests."""

from typedserve.transports.base import Transport, TransportStats
from typedserve.transports.datagram import DatagramTransport
from typedserve.transports.stream import StreamTransport
from typedserve.transports.tcp import TCPTransport
from typedserve.transports.udp import UDPTransport
from typedserve.transports.unix import UnixDatagramTransport, UnixStreamTransport

__all__ = [
    "DatagramTransport",
    "StreamTransport",
    "TCPTransport",
    "Transport",
    "TransportStats",
    "UDPTransport",
    "UnixDatagramTransport",
    "UnixStreamTransport",
]
