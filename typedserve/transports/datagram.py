"""``DatagramTransport``: the shared receive logic of UDP and Unix datagram transports."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from functools import partial
from typing import ClassVar, Generic

from typing_extensions import TypeVar

from typedserve.config import ServerConfig
from typedserve.errors import ServerClosedError
from typedserve.requests import AddrT_co, Datagram, PeerAddress, new_datagram
from typedserve.transports.base import TransportStats
from typedserve.transports.binding import open_listener

__all__ = ["DatagramTransport"]

logger = logging.getLogger("typedserve.transport")

# For limits below this (the default, 65,507 bytes, is UDP's largest payload), ``recvfrom``
# into a fresh bytes object is cheaper than reading into a reusable buffer and copying the
# payload out of it; above, each fresh allocation would be a mmap/munmap pair (glibc's
# threshold is 128 KiB), so one buffer is reused instead.
_FRESH_READ_MAX = 65_536
_truncated_lock = threading.Lock()

PeerT_co = TypeVar("PeerT_co", bound=PeerAddress, covariant=True, default=PeerAddress)
"""The type of a datagram's sender (wider than the bound address for Unix: ``None``)."""


class DatagramTransport(Generic[PeerT_co, AddrT_co]):
    """A bound datagram socket, with an address of type ``AddrT_co``; each datagram received
    is a :class:`Datagram` whose sender has the type ``PeerT_co``.

    Datagrams are read with room for one byte more than ``limits.max_datagram_size``, so an
    oversized datagram is detected rather than silently clipped: with
    ``limits.truncated="drop"`` it is logged (``typedserve.transport``, WARNING) and counted in
    ``stats.truncated``; with ``"flag"`` it is delivered with ``Datagram.truncated`` set and its
    first ``max_datagram_size`` bytes.
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_INET, socket.AF_INET6})

    def __init__(self) -> None:
        self.stats = TransportStats()
        self._socket: socket.socket | None = None
        self._cleanup: object = None
        self._address: AddrT_co | None = None
        self._max = 65_507
        self._drop = True
        self._buffer: bytearray | None = None  # only for limits above _FRESH_READ_MAX

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
        self._buffer = None if self._max < _FRESH_READ_MAX else bytearray(self._max + 1)
        self._address = self._socket.getsockname()

    def activate(self) -> None:
        """Make the socket non-blocking (datagram sockets do not listen)."""
        self.socket.setblocking(False)

    @property
    def address(self) -> AddrT_co:
        """The bound address, once bound."""
        address = self._address
        if address is None:
            raise ServerClosedError(f"{type(self).__name__} is not bound")
        return address

    def fileno(self) -> int:
        """The socket's fd."""
        return self.socket.fileno()

    def receive(self) -> Datagram[PeerT_co] | None:
        """Read one datagram, or ``None`` if none is pending or it was dropped as oversized."""
        return self._receive(self._buffer)

    def receiver(self) -> Callable[[], Datagram[PeerT_co] | None] | None:
        """A :meth:`receive` for one more thread, which may call it while others receive (with
        a buffer of its own when ``limits.max_datagram_size`` needs one); ``None`` when a
        subclass overrides :meth:`receive` (its threads' safety is its own: the server then
        receives on its loop thread only)."""
        if type(self).receive is not DatagramTransport.receive:
            return None
        if self._buffer is None:
            return self.receive
        return partial(self._receive, bytearray(len(self._buffer)))

    def _receive(self, buffer: bytearray | None) -> Datagram[PeerT_co] | None:
        sock = self._socket
        if sock is None:
            raise ServerClosedError(f"{type(self).__name__} is not bound")
        try:
            if buffer is None:
                payload, peer = sock.recvfrom(self._max + 1)
            else:
                size, peer = sock.recvfrom_into(buffer)
                payload = bytes(memoryview(buffer)[:size])
        except (BlockingIOError, InterruptedError):
            return None
        if len(payload) > self._max:
            with _truncated_lock:  # receivers on several threads (see receiver())
                self.stats.truncated += 1
            if self._drop:
                logger.warning(
                    "dropped a datagram from %r larger than limits.max_datagram_size=%d bytes",
                    peer,
                    self._max,
                )
                return None
            return new_datagram(payload[: self._max], peer, sock, truncated=True)
        return new_datagram(payload, peer, sock)

    def close(self) -> None:
        """Close the socket and run the address's cleanup (unlink a Unix file)."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        cleanup, self._cleanup = self._cleanup, None
        if callable(cleanup):
            cleanup()
