"""``TCPTransport``: TCP over IPv4 and IPv6 (including dual-stack)."""

from __future__ import annotations

from typedserve.transports.stream import StreamTransport

__all__ = ["TCPTransport"]


class TCPTransport(StreamTransport):
    """A ``Transport[StreamRequest]`` listening on TCP: an ``inet`` address or an inherited fd.

    Example::

        Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo)
    """
