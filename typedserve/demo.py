"""The embedded demo: an echo service on TCP and UDP, run by ``typedserve demo``."""

from __future__ import annotations

from typedserve.config import InetAddress, ServerConfig, Timeouts
from typedserve.handlers import DatagramHandler, StreamHandler

__all__ = ["DEMO_CONFIG", "DatagramEcho", "StreamEcho"]

DEMO_CONFIG = ServerConfig(
    address=InetAddress(host="127.0.0.1", port=8765),
    timeouts=Timeouts(idle=300.0),
)
"""The demo's default config: localhost port 8765 (TCP and UDP), idle connections closed after
five minutes."""


class StreamEcho(StreamHandler):
    """Echo each line back, as it arrives, until the client closes the connection."""

    def handle(self) -> None:
        """Copy ``rfile`` to ``wfile`` line by line."""
        for line in self.rfile:
            self.wfile.write(line)


class DatagramEcho(DatagramHandler):
    """Answer each datagram with the same bytes."""

    def handle(self) -> None:
        """Reply with the payload."""
        self.request.reply(self.request.payload)
