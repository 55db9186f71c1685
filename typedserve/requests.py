"""Request values: what a transport hands to a handler for one request.

Both are small frozen values. Their fields are the whole contract between the transport layer
and handler code; neither knows about selectors, threads or strategies.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, TypeAlias

from typing_extensions import TypeVar

__all__ = ["Datagram", "PeerAddress", "RequestT", "StreamRequest"]

RequestT = TypeVar("RequestT")
"""The request type a transport produces and a handler consumes."""

PeerAddress: TypeAlias = Any
"""A socket address as the ``socket`` module returns it: ``(host, port)``, ``(host, port, flow,
scope)`` for IPv6, or a ``str``/``bytes`` path for Unix sockets (often ``""`` for an unnamed
client)."""


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """One accepted stream connection.

    ``socket`` is connected and blocking (with the config's idle timeout, if any). The server
    owns it: it is shut down and closed after the handler's ``finish``, so handler code must
    not keep it. ``deadline`` is the ``time.monotonic()`` value by which the request must end
    (``None`` when the config sets no ``timeouts.request``).
    """

    socket: socket.socket
    peer: PeerAddress
    deadline: float | None = None

    @property
    def local(self) -> PeerAddress:
        """The local end of the connection (``getsockname()``)."""
        return self.socket.getsockname()


@dataclass(frozen=True, slots=True)
class Datagram:
    """One received datagram.

    Nothing is sent back unless the handler calls :meth:`reply` (or writes to a
    ``DatagramHandler``'s ``wfile``): there is no implicit empty reply. ``truncated`` is true only
    when the config's ``limits.truncated`` is ``"flag"`` and the datagram was larger than
    ``limits.max_datagram_size``; ``payload`` then holds its first bytes.
    """

    payload: bytes
    peer: PeerAddress
    socket: socket.socket
    truncated: bool = False

    def reply(self, data: bytes) -> None:
        """Send ``data`` as one datagram to :attr:`peer` from the server's socket."""
        self.socket.sendto(data, self.peer)


# Transports build one request value per request, on the hot path. A frozen dataclass's
# generated ``__init__`` sets each field through ``object.__setattr__`` from a Python frame,
# which costs about twice as much as filling the slots directly; these constructors do the
# latter. The result is the same object (every field set exactly once, frozen afterwards).
_new = object.__new__


def _slot_setters(cls: type[Any], *names: str) -> tuple[Any, ...]:
    return tuple(vars(cls)[name].__set__ for name in names)


_set_conn, _set_conn_peer, _set_deadline = _slot_setters(
    StreamRequest, "socket", "peer", "deadline"
)
_set_payload, _set_peer, _set_socket, _set_truncated = _slot_setters(
    Datagram, "payload", "peer", "socket", "truncated"
)


def new_stream_request(
    sock: socket.socket, peer: PeerAddress, deadline: float | None = None
) -> StreamRequest:
    """``StreamRequest(sock, peer, deadline)``, built faster (for transports)."""
    request: StreamRequest = _new(StreamRequest)
    _set_conn(request, sock)
    _set_conn_peer(request, peer)
    _set_deadline(request, deadline)
    return request


def new_datagram(
    payload: bytes, peer: PeerAddress, sock: socket.socket, truncated: bool = False
) -> Datagram:
    """``Datagram(payload, peer, sock, truncated)``, built faster (for transports)."""
    datagram: Datagram = _new(Datagram)
    _set_payload(datagram, payload)
    _set_peer(datagram, peer)
    _set_socket(datagram, sock)
    _set_truncated(datagram, truncated)
    return datagram
