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
        request.close()                      # any thread: release the request's resources
    transport.close()            # release the endpoint (and unlink a Unix socket file it made)

Resource handling: the transport owns the listening socket; each request (a
:class:`~typedserve.requests.Request`) belongs to the server once ``receive`` returns it, and
carries its own ``close``, ``cut`` and ``refuse``: the transport never sees it again.
Error handling: ``receive`` swallows only "nothing to do" errors (``EAGAIN``, ``EINTR``,
``ECONNABORTED``); resource exhaustion (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``) is
raised for the server to back off from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from typing_extensions import TypeVar

from typedserve.config import ServerConfig
from typedserve.requests import AddrT_co, Request

__all__ = ["RequestT_co", "Transport", "TransportStats"]

RequestT_co = TypeVar("RequestT_co", bound=Request, covariant=True)
"""The request type a transport produces (covariant: a read-only product)."""


@dataclass(slots=True)
class TransportStats:
    """Counters a transport keeps (written only from the loop thread)."""

    truncated: int = 0
    """Datagrams larger than ``limits.max_datagram_size`` (dropped or delivered flagged)."""


class Transport(Protocol[RequestT_co, AddrT_co]):
    """A listening endpoint producing requests of type ``RequestT_co``, bound to an address of
    type ``AddrT_co`` (the ``PeerAddress`` union when not named).

    The built-in kinds: ``TCPTransport`` is a
    ``Transport[StreamRequest[InetSockAddr], InetSockAddr]``, ``UnixStreamTransport`` a
    ``Transport[StreamRequest[UnixSockAddr], UnixSockAddr]``, ``UDPTransport`` a
    ``Transport[Datagram[InetSockAddr], InetSockAddr]`` and ``UnixDatagramTransport`` a
    ``Transport[Datagram[UnixDatagramPeer], UnixSockAddr]``; the server's handler must accept
    the transport's request type.
    A transport of your own produces any :class:`~typedserve.requests.Request` (or wraps a
    built-in transport and returns its requests): see ``examples/custom_transport.py``.
    ``stats`` holds the counters it keeps itself (``stats().truncated``).
    """

    stats: TransportStats

    def bind(self, config: ServerConfig) -> None:
        """Create the endpoint for ``config.address`` and bind it; raise ``BindError``."""

    def activate(self) -> None:
        """Start listening (a no-op for datagram transports)."""

    @property
    def address(self) -> AddrT_co:
        """The bound address, with the real port when the config asked for port 0."""

    def fileno(self) -> int:
        """The fd to wait on for readiness."""

    def receive(self) -> RequestT_co | None:
        """Take one request without blocking, or ``None`` if there was none after all."""

    def close(self) -> None:
        """Release the endpoint; idempotent."""
