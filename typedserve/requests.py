"""Request values: what a transport hands to a handler for one request.

Both are small frozen values. Their fields are the whole contract between the transport layer
and handler code; neither knows about selectors, threads or strategies. Both implement
:class:`Request`, the operations the server performs on any request (close it, cut it during a
drain, refuse it cleanly), so the loop never asks which kind of request it holds.
"""

from __future__ import annotations

import contextlib
import select
import socket
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from typing_extensions import TypeVar

__all__ = ["Datagram", "PeerAddress", "Request", "RequestT", "StreamRequest"]

PeerAddress: TypeAlias = Any
"""A socket address as the ``socket`` module returns it: ``(host, port)``, ``(host, port, flow,
scope)`` for IPv6, or a ``str``/``bytes`` path for Unix sockets (often ``""`` for an unnamed
client)."""

SocketType: TypeAlias = socket.socket

_DISCARD = 65_536  # unread input discarded before a refusal's close, so the peer gets a FIN


class Request(Protocol):
    """What the server does with a request, whatever its kind (a custom transport's requests
    implement it too).

    ``close`` runs exactly once per request, after its handler (or instead of it), on the
    thread that served it. ``cut`` may run on another thread while the handler runs: it must
    wake a handler blocked on the request and must not release anything ``close`` releases.
    None of them raises for a peer that is already gone.
    """

    @property
    def peer(self) -> PeerAddress:
        """The client's address (for logs and the access policy)."""

    @property
    def connection(self) -> SocketType | None:
        """The socket this request owns alone (a stream connection), or ``None`` when it shares
        the server's socket (a datagram)."""

    def close(self) -> None:
        """Release the request's resources (after its handler, or instead of it)."""

    def cut(self) -> None:
        """Make a handler blocked on this request return (a drain's deadline has passed)."""

    def refuse(self) -> None:
        """Turn the request away cleanly after the busy hook replied: the peer sees the reply
        and an orderly end, never a reset; then release it as :meth:`close` does."""

    def wait_first_byte(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the client to send something (or close)."""


RequestT = TypeVar("RequestT", bound=Request)
"""The request type a transport produces and a handler consumes."""


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

    @property
    def connection(self) -> SocketType:
        """The connected socket (the request owns it alone)."""
        return self.socket

    def close(self) -> None:
        """Half-close for writing (so the peer sees EOF even if a forked child holds a copy),
        then close."""
        conn = self.socket
        # try/except, not contextlib.suppress: once per connection, the context manager's
        # construction and two Python-level calls cost more than the shutdown call itself.
        try:  # noqa: SIM105
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already reset by the peer: nothing to flush
        conn.close()

    def cut(self) -> None:
        """Shut the connection down both ways: a handler blocked on it sees EOF."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    def refuse(self) -> None:
        """Discard what the client already sent, then close.

        Closing a socket with unread input makes the kernel send a RST, which can destroy the
        busy reply before the client reads it; reading the pending input first leaves a FIN.
        """
        conn = self.socket
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            while conn.recv(_DISCARD):
                pass
        self.close()

    def wait_first_byte(self, timeout: float) -> bool:
        """Wait until the client has sent something (or closed) within ``timeout`` seconds."""
        poller = select.poll()
        poller.register(self.socket, select.POLLIN)
        return bool(poller.poll(timeout * 1000))


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

    @property
    def connection(self) -> None:
        """``None``: a datagram shares the server's socket."""
        return None

    def close(self) -> None:
        """Nothing to release: the socket is the server's."""

    def cut(self) -> None:
        """Nothing to cut: a datagram handler never blocks on its request."""

    def refuse(self) -> None:
        """Nothing to do after the busy hook: the socket is the server's."""

    def wait_first_byte(self, timeout: float) -> bool:
        """A datagram has all its bytes already: always true."""
        return True


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
