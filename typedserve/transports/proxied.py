"""``ProxyProtocolTransport``: a stream transport behind a load balancer that speaks the PROXY
protocol (HAProxy's ``send-proxy``/``send-proxy-v2``, nginx, AWS NLB...).

``ProxyProtocolTransport(TCPTransport())`` listens as its inner transport does (TCP, Unix
stream, an inherited fd) and accepts plain connections there; each becomes a
:class:`ProxiedStreamRequest`. Nothing is read on the loop thread: the header is read where the
request is served, through the transport's :meth:`ProxyProtocolTransport.open_request` (the
pool thread, the forked child, the prefork worker; ``AsyncIO`` reads it on its event loop
before attaching the connection), within ``proxy_protocol.timeout`` for the whole header.

The header is read without consuming a byte of the application's: peeks (``MSG_PEEK``) are
parsed by :func:`typedserve.proxy.parse`, and only bytes proven to be the header's are
received. Then the request's ``peer`` is the client the header names (its ``upstream`` the
balancer), and the server applies its access policy (``verify_request``) to that client, after
the opening instead of at accept (the transport's ``verify_after_open``).

A connection whose header is missing (``mode="required"``), malformed, from an upstream outside
``proxy_protocol.trusted``, cut short or too slow never reaches the handler: a
:class:`~typedserve.errors.ProxyProtocolError`, counted in ``stats().proxy_refused`` and logged
as one INFO line with the upstream and the reason. A ``LOCAL`` header (a health check) or the
``UNKNOWN`` family keeps the real peer.

With TLS, the header comes first (the balancer relays TLS untouched):
``TLSTransport(ProxyProtocolTransport(TCPTransport()))`` reads the header, then runs the
handshake; ``request.proxy`` works on the TLS request too.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import ClassVar, Literal

from typing_extensions import TypeVar

from typedserve.config import ServerConfig
from typedserve.errors import ProxyProtocolError
from typedserve.proxy import NeedMore, ProxyAddress, ProxyHeader, parse
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.requests import InetSockAddr, PeerAddress, StreamRequest, UnixSockAddr
from typedserve.transports.stream import StreamTransport
from typedserve.transports.wrapping import WrappingTransport

__all__ = [
    "HeaderReader",
    "ProxiedStreamRequest",
    "ProxyProtocolTransport",
    "ProxySettings",
    "peer_of",
    "read_header",
]

StreamAddrT_co = TypeVar("StreamAddrT_co", bound=InetSockAddr | UnixSockAddr, covariant=True)
"""The address type of a stream transport (TCP or Unix)."""

_PEEK = 1024  # what one peek looks at first: a v1 line, a v2 header with its usual TLVs


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """A bound :class:`~typedserve.proxy.config.ProxyProtocolConfig`, with its networks parsed
    once: what each request of the transport reads its header with."""

    config: ProxyProtocolConfig
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def of(cls, config: ProxyProtocolConfig) -> ProxySettings:
        """The settings for ``config``."""
        return cls(config, config.networks())

    def trusts(self, upstream: PeerAddress) -> bool:
        """Whether ``upstream`` (a connection's real peer) may send a header."""
        if not isinstance(upstream, tuple):
            return self.config.trust_unix
        try:
            address = ipaddress.ip_address(upstream[0].split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


class HeaderReader:
    """The header read as a sequence of peeks, with no I/O of its own (the blocking and the
    event-loop readers share it). Feed each peek to :meth:`peeked`, receive (consume) the
    ``consume`` bytes it returns, and stop when ``done``."""

    __slots__ = ("_mode", "_seen", "_versions", "size", "timeout")

    def __init__(self, config: ProxyProtocolConfig) -> None:
        self._versions = config.versions
        self._mode = config.mode
        self._seen = bytearray()  # consumed so far: all of it header
        self.size = _PEEK
        """How many bytes the next peek should ask for."""
        self.timeout = config.timeout
        """Seconds the whole header may take (``proxy_protocol.timeout``)."""

    def timed_out(self) -> ProxyProtocolError:
        """The error for a header not complete within :attr:`timeout`."""
        return ProxyProtocolError(
            f"no complete header within proxy_protocol.timeout={self.timeout}"
        )

    @staticmethod
    def ended() -> ProxyProtocolError:
        """The error for a connection that ended inside its header."""
        return ProxyProtocolError("the connection ended inside its header")

    def peeked(self, data: bytes) -> tuple[int, bool, ProxyHeader | None]:
        """``(consume, done, header)`` for the bytes a peek returned (never empty: an end of
        the connection is the caller's to report). ``done`` with no header: the connection
        has none and ``mode="optional"`` serves it as is; nothing was consumed then."""
        whole = bytes(self._seen) + data
        try:
            result = parse(whole, versions=self._versions)
        except ProxyProtocolError as exc:
            if exc.bad_signature and self._mode == "optional" and not self._seen:
                return 0, True, None
            if exc.bad_signature:
                raise ProxyProtocolError(
                    f"no PROXY protocol header (proxy_protocol.mode={self._mode!r}): the "
                    f"connection starts with {whole[:12]!r}",
                    bad_signature=True,
                ) from None
            raise
        if isinstance(result, NeedMore):
            # Everything parsed is a header's beginning: consume it, so the next peek waits
            # for new bytes instead of returning these again at once.
            self._seen += data
            self.size = max((result.total or result.at_least) - len(self._seen), 1)
            return len(data), False, None
        return result.length - len(self._seen), True, result


def read_header(sock: socket.socket, reader: HeaderReader) -> ProxyHeader | None:
    """Read a connection's header from blocking ``sock`` with ``reader`` (peeks, consuming only
    the header's bytes), within ``reader.timeout`` for the whole of it; ``None``: the
    connection has none and is served as is. :class:`ProxyProtocolError` if it fails. The
    socket's own timeout is restored."""
    timeout = sock.gettimeout()
    ends = time.monotonic() + reader.timeout
    header: ProxyHeader | None = None
    try:
        while True:
            # Each wait gets what is left of the header's time: the whole is bounded.
            sock.settimeout(max(ends - time.monotonic(), 0.000_001))
            data = sock.recv(reader.size, socket.MSG_PEEK)
            if not data:
                raise reader.ended()
            consume, done, header = reader.peeked(data)
            while consume > 0:  # peeked already: in the socket's buffer
                got = len(sock.recv(consume))
                if not got:
                    raise reader.ended()
                consume -= got
            if done:
                return header
    except TimeoutError:
        raise reader.timed_out() from None
    finally:
        sock.settimeout(timeout)


def peer_of(header: ProxyHeader | None, upstream: ProxyAddress) -> ProxyAddress:
    """The client a header names, or ``upstream`` when it names none (``LOCAL``, ``UNKNOWN``,
    no header)."""
    if header is None or header.command == "LOCAL" or header.source is None:
        return upstream
    return header.source


class ProxiedStreamRequest(StreamRequest[ProxyAddress]):
    """A connection relayed by a load balancer: a :class:`StreamRequest` whose ``peer`` is,
    once the header is read (before the handler runs), the client the header names, whose
    :attr:`upstream` is the balancer, and whose :attr:`proxy` is the header.

    The peer's type is :data:`~typedserve.proxy.ProxyAddress` whatever the listener: a Unix
    backend relays TCP clients (``(host, port)``), a TCP listener may relay Unix ones.
    """

    __slots__ = ("_header", "_settings", "_upstream")

    _header: ProxyHeader | None
    _settings: ProxySettings
    _upstream: ProxyAddress

    @property
    def proxy(self) -> ProxyHeader | None:
        """The header the connection began with (``None``: it had none, with
        ``mode="optional"``, or ``mode="off"``): TLVs, the ``LOCAL`` command, the family."""
        return self._header

    @property
    def upstream(self) -> ProxyAddress:
        """The connection's real peer: the balancer (the ``peer`` before the header)."""
        return self._upstream

    def open(self) -> None:
        """Read the header on the calling thread (the one serving the request), within
        ``proxy_protocol.timeout``; :class:`ProxyProtocolError` if it fails."""
        reader = self.reader()
        if reader is None:
            return
        self.opened(read_header(self.socket, reader))

    def reader(self) -> HeaderReader | None:
        """A reader for this connection's header (``None``: ``mode="off"``, nothing to read);
        :class:`ProxyProtocolError` at once if a header is required and the upstream is not
        trusted. For readers of other I/O models (``AsyncIO``), with :meth:`opened`."""
        config = self._settings.config
        if config.mode == "off":
            return None
        if config.mode == "required" and not self._settings.trusts(self._upstream):
            raise ProxyProtocolError(f"{self._upstream!r} is not in proxy_protocol.trusted")
        return HeaderReader(config)

    def opened(self, header: ProxyHeader | None) -> None:
        """Record the header read (``None``: none, served as is): check that the upstream may
        send one, and make the client it names the ``peer``."""
        if header is not None and not self._settings.trusts(self._upstream):
            raise ProxyProtocolError(f"{self._upstream!r} is not in proxy_protocol.trusted")
        _set_header(self, header)
        _set_peer(self, peer_of(header, self._upstream))


_new = object.__new__
_set_socket = vars(StreamRequest)["socket"].__set__
_set_peer = vars(StreamRequest)["peer"].__set__
_set_deadline = vars(StreamRequest)["deadline"].__set__
_set_header = vars(ProxiedStreamRequest)["_header"].__set__
_set_settings = vars(ProxiedStreamRequest)["_settings"].__set__
_set_upstream = vars(ProxiedStreamRequest)["_upstream"].__set__


def new_proxied_request(
    request: StreamRequest[ProxyAddress], settings: ProxySettings
) -> ProxiedStreamRequest:
    """An accepted connection as a :class:`ProxiedStreamRequest` (header not yet read)."""
    proxied: ProxiedStreamRequest = _new(ProxiedStreamRequest)
    _set_socket(proxied, request.socket)
    _set_peer(proxied, request.peer)
    _set_deadline(proxied, request.deadline)
    _set_header(proxied, None)
    _set_settings(proxied, settings)
    _set_upstream(proxied, request.peer)
    return proxied


class ProxyProtocolTransport(WrappingTransport[StreamAddrT_co]):
    """A ``Transport[ProxiedStreamRequest, A]`` over a stream transport of address type ``A``
    (see the module docstring), configured by ``config.proxy_protocol`` (``None``: the
    defaults, a header required from loopback upstreams).

    Example::

        config = ServerConfig(proxy_protocol=ProxyProtocolConfig(trusted=("10.0.0.0/8",)))
        Server(config=config, transport=ProxyProtocolTransport(TCPTransport()), handler=Echo,
               strategy=ThreadPool())

    Datagram transports cannot be wrapped (a type error; UDP has
    :class:`~typedserve.transports.proxied_datagram.ProxyProtocolDatagramTransport`).
    Handlers that declare a framing cannot be served through it (the loop would read the
    header as a frame): the server refuses the pairing when it is built. A refused
    connection (overload, drain) is refused before its header is read: a busy reply goes to
    the balancer, which relays it.
    """

    verify_after_open: ClassVar[Literal[True]] = True
    """The server applies its access policy after :meth:`open_request` (to the client the
    header names), not at accept (to the balancer)."""

    def __init__(self, inner: StreamTransport[StreamAddrT_co]) -> None:
        super().__init__(inner)
        self.inner = inner
        self._settings = ProxySettings.of(ProxyProtocolConfig())

    @property
    def settings(self) -> ProxySettings:
        """The settings new connections read their header with (``config.proxy_protocol``,
        from :meth:`bind`)."""
        return self._settings

    def bind(self, config: ServerConfig) -> None:
        """Take ``config.proxy_protocol`` (or the defaults), then bind the inner transport."""
        self._settings = ProxySettings.of(config.proxy_protocol or ProxyProtocolConfig())
        self.inner.bind(config)

    def receive(self) -> ProxiedStreamRequest | None:
        """Accept one connection (its header is read where it is served)."""
        request = self.inner.receive()
        if request is None:
            return None
        return new_proxied_request(request, self._settings)

    def open_request(self, request: ProxiedStreamRequest) -> None:
        """Read the request's header (the server calls this on the serving thread)."""
        request.open()
