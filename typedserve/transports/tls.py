"""``TLSTransport``: TLS over any stream transport, with the handshake off the accept loop.

``TLSTransport(TCPTransport())`` listens as its inner transport does (TCP, Unix stream, an
inherited fd) and accepts plain connections there; each becomes a :class:`TLSStreamRequest`.
The inner transport may itself open its requests first: ``TLSTransport(ProxyProtocolTransport(
TCPTransport()))`` reads the PROXY protocol header, then runs the handshake, and the TLS
request answers ``proxy``, ``upstream`` and ``peer`` as the inner request does.
Nothing TLS happens on the loop thread: a new connection waits in the loop for its first byte
(the ClientHello) like any other, holding no worker, and the handshake runs where the request
is served, through the transport's :meth:`TLSTransport.open_request` (the pool thread, the
request's thread, the forked child, the prefork worker; ``AsyncIO`` runs the loop's own
non-blocking TLS instead). A handshake that fails, or outlasts ``timeouts.handshake``, never
reaches the handler: :class:`~typedserve.errors.HandshakeError`, counted in
``stats().handshake_failures`` and logged as one INFO line.

``timeouts.handshake`` bounds each read of the handshake (the socket's timeout) and the whole
of it (the request's deadline is brought forward while it runs, so the loop's deadline sweep
cuts a client that trickles its ClientHello).

The context is built from ``config.tls`` at :meth:`TLSTransport.bind` (or given ready made);
:meth:`TLSTransport.reload` re-reads the files: new handshakes use the new certificate,
established connections keep theirs. Datagram transports cannot be wrapped (no DTLS): that is
a type error. A refused connection (overload, drain) gets no busy reply: it would have to
follow a handshake, on the loop thread; it gets a clean close.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from typedserve.config import ServerConfig
from typedserve.errors import ConfigError, HandshakeError, ServerClosedError
from typedserve.requests import AddrT, AddrT_co, StreamRequest
from typedserve.tls.context import TLSContextSource
from typedserve.tls.info import SERVER_NAME, TLSInfo
from typedserve.transports.base import Transport
from typedserve.transports.wrapping import WrappingTransport

if TYPE_CHECKING:
    from typedserve.proxy.header import ProxyHeader

__all__ = ["TLSStreamRequest", "TLSTransport", "record_negotiated"]

# The plain socket calls: SSLSocket.shutdown also drops its TLS state, SSLSocket.recv decrypts.
_shutdown = socket.socket.shutdown
_recv = socket.socket.recv
_DISCARD_ROUNDS = 16


def _discard_input(sock: socket.socket) -> None:
    """Drop what the peer sent and the handshake did not read (a plain-text request, say), so
    closing the connection ends it instead of resetting it. Bounded: never waits."""
    try:
        sock.setblocking(False)  # with a timeout, recv would first wait for input
    except OSError:
        return
    for _ in range(_DISCARD_ROUNDS):
        try:
            if not _recv(sock, 65_536):
                return
        except OSError:
            return


class TLSStreamRequest(StreamRequest[AddrT_co]):
    """A TLS connection: a :class:`StreamRequest` whose ``socket`` is an ``ssl.SSLSocket`` once
    the handshake is done (which is before the handler runs), and whose :attr:`tls` says what
    it negotiated."""

    __slots__ = ("_cut", "_info", "_inner", "_open_inner", "context", "handshake_timeout")

    replies_when_busy: ClassVar[bool] = False  # refused before the handshake: no busy reply

    context: ssl.SSLContext
    handshake_timeout: float | None
    _info: TLSInfo | None
    _cut: bool
    _inner: StreamRequest[AddrT_co] | None  # the inner transport's request, when it opens one
    _open_inner: Callable[[Any], None] | None

    @property
    def proxy(self) -> ProxyHeader | None:
        """The inner request's PROXY protocol header (``TLSTransport(ProxyProtocolTransport(
        ...))``), ``None`` otherwise."""
        inner = self._inner
        return None if inner is None else inner.proxy

    @property
    def upstream(self) -> AddrT_co:
        """The connection's real peer (the load balancer behind a PROXY protocol header)."""
        inner = self._inner
        return self.peer if inner is None else inner.upstream

    @property
    def tls(self) -> TLSInfo:
        """What the handshake negotiated (version, cipher, ALPN, SNI name, client certificate)."""
        info = self._info
        if info is None:
            raise HandshakeError("the handshake has not completed")
        return info

    def open(self) -> None:
        """Run the server side of the handshake on the calling thread (the one serving the
        request), within ``handshake_timeout``; :class:`HandshakeError` if it fails. The inner
        transport's opening (a PROXY protocol header) runs first, within its own bound."""
        inner, open_inner = self._inner, self._open_inner
        if inner is not None and open_inner is not None:
            open_inner(inner)
            _set_peer(self, inner.peer)
        raw = self.socket
        timeout = raw.gettimeout()
        deadline = self.deadline
        bound = self.handshake_timeout
        if bound is not None:
            raw.settimeout(bound)
            ends = time.monotonic() + bound
            _set_deadline(self, ends if deadline is None else min(deadline, ends))
        try:
            conn = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            _set_socket(self, conn)  # from here a cut reaches the handshake
            if self._cut:
                self.cut()
            conn.do_handshake()
        except TimeoutError:
            raise HandshakeError(f"timed out (timeouts.handshake={bound})") from None
        except ssl.SSLError as exc:
            _discard_input(self.socket)
            raise HandshakeError(exc.reason or exc.strerror or str(exc)) from None
        except OSError as exc:
            raise HandshakeError(exc.strerror or type(exc).__name__) from None
        finally:
            _set_deadline(self, deadline)
        conn.settimeout(timeout)
        if conn.family != socket.AF_UNIX:
            # TLS writes whole records: Nagle would only hold the first reply behind the
            # session tickets sent after the handshake, until the client's delayed ACK (40 ms).
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _set_info(self, TLSInfo.of(conn, getattr(conn, SERVER_NAME, None)))

    def close(self) -> None:
        """Send ``close_notify`` (without waiting for the peer's), half-close, close."""
        conn = self.socket
        if self._info is not None and isinstance(conn, ssl.SSLSocket):
            try:
                conn.setblocking(False)
                conn.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass  # sent (the peer's close_notify is not awaited), or the peer is gone
        try:  # noqa: SIM105
            _shutdown(conn, socket.SHUT_WR)
        except OSError:
            pass
        conn.close()

    def cut(self) -> None:
        """Shut the connection down both ways (a handler or a handshake blocked on it returns)."""
        _set_cut(self, True)
        with contextlib.suppress(OSError):
            _shutdown(self.socket, socket.SHUT_RDWR)


_set_socket = vars(StreamRequest)["socket"].__set__
_set_peer = vars(StreamRequest)["peer"].__set__
_set_deadline = vars(StreamRequest)["deadline"].__set__
_set_context = vars(TLSStreamRequest)["context"].__set__
_set_handshake = vars(TLSStreamRequest)["handshake_timeout"].__set__
_set_info = vars(TLSStreamRequest)["_info"].__set__
_set_cut = vars(TLSStreamRequest)["_cut"].__set__
_set_inner = vars(TLSStreamRequest)["_inner"].__set__
_set_open_inner = vars(TLSStreamRequest)["_open_inner"].__set__


def new_tls_request(
    request: StreamRequest[AddrT],
    context: ssl.SSLContext,
    handshake: float | None,
    open_inner: Callable[[Any], None] | None = None,
) -> TLSStreamRequest[AddrT]:
    """A plain accepted connection as a :class:`TLSStreamRequest` (handshake not yet run);
    ``open_inner``: the inner transport's ``open_request``, run on ``request`` first."""
    tls: TLSStreamRequest[AddrT] = object.__new__(TLSStreamRequest)
    _set_socket(tls, request.socket)
    _set_peer(tls, request.peer)
    _set_deadline(tls, request.deadline)
    _set_context(tls, context)
    _set_handshake(tls, handshake)
    _set_info(tls, None)
    _set_cut(tls, False)
    _set_inner(tls, None if open_inner is None else request)
    _set_open_inner(tls, open_inner)
    return tls


def record_negotiated(request: TLSStreamRequest[Any], info: TLSInfo) -> None:
    """Make ``request.tls`` answer ``info``: what a handshake run elsewhere negotiated
    (``AsyncIO``'s event loop runs its own, on the connection it took from the request)."""
    _set_info(request, info)


def _record_server_name(context: ssl.SSLContext) -> ssl.SSLContext:
    """Make ``context`` leave the SNI name a client sends on its connection (the server side of
    ``ssl`` has no accessor for it), keeping the callback it has (the certificate choice)."""
    chosen = context.sni_callback
    if getattr(chosen, SERVER_NAME, False):
        return context  # already recording (a context given twice, or reloaded)

    def record(conn: Any, name: str | None, ctx: ssl.SSLContext) -> int | None:
        setattr(conn, SERVER_NAME, name)
        # typeshed says str; the ssl docs: None when the ClientHello names no server
        return chosen(conn, cast(str, name), ctx) if chosen is not None else None

    setattr(record, SERVER_NAME, True)
    context.sni_callback = record
    return context


class TLSTransport(WrappingTransport[AddrT_co]):
    """A ``Transport[TLSStreamRequest[A], A]`` over a stream transport of address type ``A``
    (one producing ``StreamRequest[A]``: ``TCPTransport``, ``UnixStreamTransport``, or a wrapper
    such as ``ProxyProtocolTransport``, whose ``open_request`` runs before the handshake).

    Example::

        config = ServerConfig(tls=TLSConfig(certfile="cert.pem", keyfile="key.pem"))
        Server(config=config, transport=TLSTransport(TCPTransport()), handler=Echo,
               strategy=ThreadPool())

    ``context``: a ready ``ssl.SSLContext`` (server side) for what ``config.tls`` does not
    cover; then ``config.tls`` is not read, and :meth:`reload` has nothing to re-read. The
    transport installs an SNI callback on it (wrapping any it has) to learn the name each client
    asks for. Handlers that declare a framing cannot be served over TLS (the loop would have to
    read through TLS): the server refuses the pairing when it is built.
    """

    def __init__(
        self,
        inner: Transport[StreamRequest[AddrT_co], AddrT_co],
        *,
        context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(inner)
        self.inner = inner
        self._open_inner: Callable[[Any], None] | None = getattr(inner, "open_request", None)
        self.verify_after_open: bool = getattr(inner, "verify_after_open", False)
        """The inner transport's (a PROXY header: the access policy waits for the client)."""
        self._context = None if context is None else _record_server_name(context)
        self._source: TLSContextSource | None = None  # config.tls, when no context was given
        self._handshake: float | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """The context new handshakes use (after :meth:`bind`)."""
        if self._context is None:
            raise ServerClosedError("TLSTransport is not bound")
        return self._context

    def bind(self, config: ServerConfig) -> None:
        """Build the context from ``config.tls`` (unless one was given), then bind the inner
        transport. A missing ``config.tls``, or a file that does not load, is a ConfigError."""
        if self._context is None:
            if config.tls is None:
                raise ConfigError(
                    "TLSTransport needs config.tls (certfile, keyfile) or an SSLContext "
                    "(TLSTransport(inner, context=...))"
                )
            self._source = TLSContextSource(config.tls)
            self._context = _record_server_name(self._source.context)
        self._handshake = config.timeouts.handshake
        self.inner.bind(config)

    def receive(self) -> TLSStreamRequest[AddrT_co] | None:
        """Accept one connection (plain: its handshake runs where it is served)."""
        request = self.inner.receive()
        if request is None:
            return None
        context = cast("ssl.SSLContext", self._context)
        return new_tls_request(request, context, self._handshake, self._open_inner)

    def open_request(self, request: TLSStreamRequest[AddrT_co]) -> None:
        """Run the request's handshake (the server calls this on the serving thread)."""
        request.open()

    def reload(self) -> bool:
        """Re-read the certificate, key and CA files of ``config.tls``: new handshakes use them,
        established connections keep theirs. ``False`` (the old context kept, the error logged)
        if they do not load, or if the context was given ready made."""
        source = self._source
        if source is None or not source.reload():
            return False
        self._context = _record_server_name(source.context)
        return True
