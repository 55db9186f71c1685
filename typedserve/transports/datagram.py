"""``DatagramTransport``: the shared receive logic of UDP and Unix datagram transports."""

from __future__ import annotations

import logging
import socket
from typing import ClassVar

from typedserve.config import ServerConfig
from typedserve.errors import ServerClosedError
from typedserve.requests import Datagram, PeerAddress
from typedserve.transports.base import TransportStats
from typedserve.transports.binding import open_listener

__all__ = ["DatagramTransport"]

logger = logging.getLogger("typedserve.transport")


class DatagramTransport:
    """A bound datagram socket; each datagram received is a :class:`Datagram`.

    Datagrams are read into one preallocated buffer one byte larger than
    ``limits.max_datagram_size``, so an oversized datagram is detected rather than silently
    clipped: with ``limits.truncated="drop"`` it is logged (``typedserve.transport``, WARNING)
    and counted in ``stats.truncated``; with ``"flag"`` it is delivered with
    ``Datagram.truncated`` set and its first ``max_datagram_size`` bytes.
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_INET, socket.AF_INET6})

    def __init__(self) -> None:
        self.stats = TransportStats()
        self._socket: socket.socket | None = None
        self._cleanup: object = None
        self._address: PeerAddress = None
        self._max = 65_507
        self._drop = True
        self._buffer = bytearray(0)

    @property
    def socket(self) -> socket.socket:
        """The bound socket (after :meth:`bind`)."""
        if self._socket is None:
            raise ServerClosedError(f"{type(self).__name__} is not bound")
        return self._socket

    def bind(self, config: ServerConfig) -> None:
        """Create and bind the socket for ``config.address``."""
        listener = open_listener(config, socket.SOCK_DGRAM, self.families, type(self).__name__)
        self._socket, self._cleanup = listener.socket, listener.cleanup
        self._max = config.limits.max_datagram_size
        self._drop = config.limits.truncated == "drop"
        self._buffer = bytearray(self._max + 1)
        self._address = self._socket.getsockname()

    def activate(self) -> None:
        """Make the socket non-blocking (datagram sockets do not listen)."""
        self.socket.setblocking(False)

    @property
    def address(self) -> PeerAddress:
        """The bound address."""
        return self._address

    def fileno(self) -> int:
        """The socket's fd."""
        return self.socket.fileno()

    def receive(self) -> Datagram | None:
        """Read one datagram, or ``None`` if none is pending or it was dropped as oversized."""
        sock = self.socket
        try:
            size, peer = sock.recvfrom_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return None
        if size > self._max:
            self.stats.truncated += 1
            if self._drop:
                logger.warning(
                    "dropped a datagram from %r larger than limits.max_datagram_size=%d bytes",
                    peer,
                    self._max,
                )
                return None
            return Datagram(bytes(self._buffer[: self._max]), peer, sock, truncated=True)
        return Datagram(bytes(self._buffer[:size]), peer, sock)

    def wait_first_byte(self, request: Datagram, timeout: float) -> bool:
        """A datagram has all its bytes already: always true."""
        return True

    def close_request(self, request: Datagram) -> None:
        """Nothing to release: the socket is shared by every datagram."""

    def close(self) -> None:
        """Close the socket and run the address's cleanup (unlink a Unix file)."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        cleanup, self._cleanup = self._cleanup, None
        if callable(cleanup):
            cleanup()
