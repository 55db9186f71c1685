"""Request values: what a transport hands to a handler for one request.

Both are small frozen values. Their fields are the whole contract between the transport layer
and handler code; neither knows about selectors, threads or strategies. Both implement
:class:`Request`, the operations the server performs on any request (close it, cut it during a
drain, refuse it cleanly), so the loop never asks which kind of request it holds.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias

from typing_extensions import TypeVar

from typedserve.tls.info import TLSInfo

if TYPE_CHECKING:
    from typedserve.proxy.header import ProxyHeader

__all__ = [
    "AddrT",
    "AddrT_co",
    "Datagram",
    "FramedRequest",
    "IPv4SockAddr",
    "IPv6SockAddr",
    "InetSockAddr",
    "PeerAddress",
    "Request",
    "RequestT",
    "StreamRequest",
    "UnixDatagramPeer",
    "UnixSockAddr",
]

# Socket addresses, as the ``socket`` module returns them (types only: the values are the
# module's own tuples, strings and bytes, never converted).

IPv4SockAddr: TypeAlias = tuple[str, int]
"""An IPv4 socket address: ``(host, port)``."""

IPv6SockAddr: TypeAlias = tuple[str, int, int, int]
"""An IPv6 socket address: ``(host, port, flowinfo, scope_id)``."""

InetSockAddr: TypeAlias = IPv4SockAddr | IPv6SockAddr
"""The address of a TCP or UDP socket (``TCPTransport``, ``UDPTransport``): IPv4 or IPv6, as
the config's host (or an inherited socket) decides at bind time."""

UnixSockAddr: TypeAlias = str | bytes
"""The address of a Unix socket: a path (``str``; ``""`` for an unnamed socket, which is what an
accepted client usually is) or an abstract name (``bytes`` starting with a NUL byte)."""

UnixDatagramPeer: TypeAlias = UnixSockAddr | None
"""The sender of a Unix datagram: its address, or ``None`` for a sender that did not bind (it
cannot be replied to)."""

PeerAddress: TypeAlias = InetSockAddr | UnixSockAddr | None
"""Any socket address a built-in transport produces: the union of the types above. A request's
``peer`` and a server's ``address`` have the precise type of their transport (``InetSockAddr``
for TCP and UDP, ``UnixSockAddr`` for Unix sockets, ``UnixDatagramPeer`` for a Unix datagram's
sender); handlers that do not name one see this union."""

AddrT = TypeVar("AddrT", bound=PeerAddress, default=PeerAddress)
"""A socket address type (one of the aliases above; the union when not named)."""

AddrT_co = TypeVar("AddrT_co", bound=PeerAddress, covariant=True, default=PeerAddress)
"""A socket address type, for the read-only values that carry one (requests, transports)."""

SocketType: TypeAlias = socket.socket

_DISCARD = 65_536  # unread input discarded before a refusal's close, so the peer gets a FIN


class Request(Protocol[AddrT_co]):
    """What the server does with a request, whatever its kind (a custom transport's requests
    implement it too); ``AddrT_co`` is the type of its ``peer``.

    ``close`` runs exactly once per request, after its handler (or instead of it), on the
    thread that served it. ``cut`` may run on another thread while the handler runs: it must
    wake a handler blocked on the request and must not release anything ``close`` releases.
    None of them raises for a peer that is already gone.
    """

    @property
    def peer(self) -> AddrT_co:
        """The client's address (for logs and the access policy)."""

    @property
    def deadline(self) -> float | None:
        """The ``time.monotonic()`` value by which the request must end (``None``: none)."""

    @property
    def connection(self) -> SocketType | None:
        """The socket this request owns alone (a stream connection), or ``None`` when it shares
        the server's socket (a datagram)."""

    def close(self) -> None:
        """Release the request's resources (after its handler, or instead of it)."""

    def cut(self) -> None:
        """Make a handler blocked on this request return (a deadline has passed)."""

    def refuse(self) -> bool:
        """Turn the request away after the busy hook replied: discard what the peer sent and
        end our side, so the peer reads the reply and an orderly end, never a reset.

        Returns ``True`` when the server should now *linger*: keep reading and discarding
        until the peer closes (or a short bound), then :meth:`close`, because input arriving
        after a close would make the kernel reset the connection. ``False``: it is released.
        """


RequestT = TypeVar("RequestT", bound=Request)
"""The request type a transport produces and a handler consumes."""


@dataclass(frozen=True, slots=True)
class StreamRequest(Generic[AddrT_co]):
    """One accepted stream connection; ``AddrT_co`` is the type of its addresses (``peer`` and
    ``local``: ``InetSockAddr`` from ``TCPTransport``, ``UnixSockAddr`` from
    ``UnixStreamTransport``; the ``PeerAddress`` union when not named).

    ``socket`` is connected and blocking (with the config's idle timeout, if any). The server
    owns it: it is shut down and closed after the handler's ``finish``, so handler code must
    not keep it. ``deadline`` is the ``time.monotonic()`` value by which the request must end
    (``None`` when the config sets no ``timeouts.request``).
    """

    socket: socket.socket
    peer: AddrT_co
    deadline: float | None = None

    @property
    def frame(self) -> bytes | None:
        """The request's bytes, already read, when the handler declares its framing (its
        ``rfile`` then reads them); ``None``: the handler reads the socket itself."""
        return None

    @property
    def tls(self) -> TLSInfo | None:
        """What TLS negotiated on this connection (a ``TLSTransport``'s requests), ``None`` on a
        plain one: a handler must check before reading it, or declare its request a
        ``TLSStreamRequest``."""
        return None

    @property
    def proxy(self) -> ProxyHeader | None:
        """The PROXY protocol header the connection began with (a ``ProxyProtocolTransport``'s
        requests, alone or under TLS: the TLVs, ``LOCAL``), ``None`` on a direct connection."""
        return None

    @property
    def upstream(self) -> AddrT_co:
        """The connection's real peer: :attr:`peer` on a direct connection, the load balancer
        when a PROXY protocol header named another client as the ``peer``."""
        return self.peer

    @property
    def local(self) -> AddrT_co:
        """The local end of the connection (``getsockname()``)."""
        local: AddrT_co = self.socket.getsockname()  # the socket module's Any, named
        return local

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

    def refuse(self) -> bool:
        """Discard what the client sent so far and send our FIN after the busy reply; the
        server then lingers (see :meth:`Request.refuse`). ``False`` if the peer is gone (the
        connection is closed then)."""
        conn = self.socket
        try:
            conn.setblocking(False)
            while conn.recv(_DISCARD):
                pass
        except BlockingIOError:
            pass  # nothing more for now: the linger reads the rest
        except OSError:
            conn.close()  # reset by the peer: nothing to send or read
            return False
        else:  # EOF: the peer has finished sending; end our side and release
            self.close()
            return False
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return False
        return True


@dataclass(frozen=True, slots=True)
class FramedRequest(StreamRequest[AddrT_co]):
    """One request on a connection whose handler declares its framing.

    ``frame`` holds the request's bytes, assembled by the server's loop before a worker was
    involved; the handler's ``rfile`` reads them. The connection stays open across requests:
    :meth:`close` gives it back to the loop, which waits (with no worker) for the next frame.
    To end the connection after a reply, call :meth:`cut` once the reply is written.
    """

    frame: bytes = b""
    release: Callable[[FramedRequest[AddrT_co]], None] | None = None

    def close(self) -> None:
        """Give the connection back to the server's loop (it closes it if it must)."""
        release = self.release
        if release is not None:
            release(self)


@dataclass(frozen=True, slots=True)
class Datagram(Generic[AddrT_co]):
    """One received datagram; ``AddrT_co`` is the type of its ``peer`` (``InetSockAddr`` from
    ``UDPTransport``, ``UnixDatagramPeer`` from ``UnixDatagramTransport``; the ``PeerAddress``
    union when not named).

    Nothing is sent back unless the handler calls :meth:`reply` (or writes to a
    ``DatagramHandler``'s ``wfile``): there is no implicit empty reply. ``truncated`` is true only
    when the config's ``limits.truncated`` is ``"flag"`` and the datagram was larger than
    ``limits.max_datagram_size``; ``payload`` then holds its first bytes.
    """

    payload: bytes
    peer: AddrT_co
    socket: socket.socket
    truncated: bool = False

    def reply(self, data: bytes) -> None:
        """Send ``data`` as one datagram to :attr:`peer` from the server's socket.

        A ``None`` peer (a Unix datagram sender that did not bind an address) cannot be replied
        to: ``sendto`` raises ``TypeError``."""
        self.socket.sendto(data, self.peer)  # type: ignore[arg-type]  # None: see above

    # Plain class attributes, not properties: the loop reads both once per datagram.
    connection = None
    """``None``: a datagram shares the server's socket."""
    deadline = None
    """``None``: a datagram is served at once, with no deadline of its own."""

    def close(self) -> None:
        """Nothing to release: the socket is the server's."""

    def cut(self) -> None:
        """Nothing to cut: a datagram handler never blocks on its request."""

    def refuse(self) -> bool:
        """Nothing to do after the busy hook (the socket is the server's): no linger."""
        return False


# Transports build one request value per request, on the hot path. A frozen dataclass's
# generated ``__init__`` sets each field through ``object.__setattr__`` from a Python frame,
# which costs about twice as much as filling the slots directly; these constructors do the
# latter. The result is the same object (every field set exactly once, frozen afterwards).
_new = object.__new__


def _slot_setters(cls: type[Any], *names: str) -> tuple[Any, ...]:
    return tuple(vars(cls)[name].__set__ for name in names)


# The loop reads ``request.connection`` once per request: on a stream request it is served
# by the ``socket`` slot's own descriptor (no Python-level call); the property above is its
# typed declaration and the same value.
StreamRequest.connection = vars(StreamRequest)["socket"]  # type: ignore[method-assign]


_set_conn, _set_conn_peer, _set_deadline = _slot_setters(
    StreamRequest, "socket", "peer", "deadline"
)
_set_payload, _set_peer, _set_socket, _set_truncated = _slot_setters(
    Datagram, "payload", "peer", "socket", "truncated"
)


def new_stream_request(
    sock: socket.socket, peer: AddrT, deadline: float | None = None
) -> StreamRequest[AddrT]:
    """``StreamRequest(sock, peer, deadline)``, built faster (for transports)."""
    request: StreamRequest[AddrT] = _new(StreamRequest)
    _set_conn(request, sock)
    _set_conn_peer(request, peer)
    _set_deadline(request, deadline)
    return request


def new_datagram(
    payload: bytes, peer: AddrT, sock: socket.socket, truncated: bool = False
) -> Datagram[AddrT]:
    """``Datagram(payload, peer, sock, truncated)``, built faster (for transports)."""
    datagram: Datagram[AddrT] = _new(Datagram)
    _set_payload(datagram, payload)
    _set_peer(datagram, peer)
    _set_socket(datagram, sock)
    _set_truncated(datagram, truncated)
    return datagram
