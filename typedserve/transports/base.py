"""The transport seam: how a server gets requests from the network.

A transport owns one listening endpoint. The server drives it, always from the loop thread,
in this order::

    transport.bind(config)       # create and bind (or adopt an inherited fd); BindError on failure
    transport.activate()         # listen (streams); the endpoint is now non-blocking
    while serving:
        <selector says transport.fileno() is readable>
        request = transport.receive()        # None: nothing there after all (spurious wake-up,
                                             # aborted connection); OSError: EMFILE & co.
        ... handler runs on the strategy's thread or process ...
        transport.close_request(request)     # any thread: release the request's resources
    transport.close()            # release the endpoint (and unlink a Unix socket file it made)

Resource handling: the transport owns the listening socket; each request's resources belong to
the server once ``receive`` returns it, and the server gives them back with ``close_request``.
Error handling: ``receive`` swallows only "nothing to do" errors (``EAGAIN``, ``EINTR``,
``ECONNABORTED``); resource exhaustion (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``) is
raised for the server to back off from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from typedserve.config import ServerConfig
from typedserve.requests import PeerAddress, RequestT

__all__ = ["Transport", "TransportStats"]


@dataclass(slots=True)
class TransportStats:
    """Counters a transport keeps (written only from the loop thread)."""

    truncated: int = 0
    """Datagrams larger than ``limits.max_datagram_size`` (dropped or delivered flagged)."""


class Transport(Protocol[RequestT]):
    """A listening endpoint producing requests of type ``RequestT``.

    ``Transport[StreamRequest]`` (TCP, Unix stream) and ``Transport[Datagram]`` (UDP, Unix
    datagram) are the built-in kinds; the server's handler must accept the same ``RequestT``.
    """

    stats: TransportStats

    def bind(self, config: ServerConfig) -> None:
        """Create the endpoint for ``config.address`` and bind it; raise ``BindError``."""

    def activate(self) -> None:
        """Start listening (a no-op for datagram transports)."""

    @property
    def address(self) -> PeerAddress:
        """The bound address, with the real port when the config asked for port 0."""

    def fileno(self) -> int:
        """The fd to wait on for readiness."""

    def receive(self) -> RequestT | None:
        """Take one request without blocking, or ``None`` if there was none after all."""

    def wait_first_byte(self, request: RequestT, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the client to send something; ``False`` if not."""

    def close_request(self, request: RequestT) -> None:
        """Release the resources of ``request`` (close its connection); safe from any thread."""

    def close(self) -> None:
        """Release the endpoint; idempotent."""
