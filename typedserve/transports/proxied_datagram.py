"""``ProxyProtocolDatagramTransport``: UDP behind a proxy that prepends a PROXY protocol v2
header to every datagram (the protocol's ``DGRAM`` families: ``UDP4``, ``UDP6``).

``ProxyProtocolDatagramTransport(UDPTransport())`` binds as its inner transport does; each
datagram becomes a :class:`ProxiedDatagram`. The header is parsed where the datagram is served
(the transport's ``open_request``, on the serving thread or process; ``AsyncIO`` before the
handler), with the same rules as on streams (``ServerConfig.proxy_protocol``: ``mode``,
``trusted``; only version 2 exists for datagrams, ``timeout`` does not apply): its bytes are
removed from ``payload``, ``peer`` is the client it names and :attr:`ProxiedDatagram.upstream`
the proxy. :meth:`ProxiedDatagram.reply` sends to the proxy, which relays the reply to the
client. A datagram without a valid header from a trusted proxy (``mode="required"``) never
reaches the handler: counted in ``stats().proxy_refused`` and logged as one INFO line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from typedserve.config import ServerConfig
from typedserve.errors import ConfigError, ProxyProtocolError
from typedserve.proxy import NeedMore, ProxyAddress, ProxyHeader, parse
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.requests import Datagram, InetSockAddr
from typedserve.transports.proxied import ProxySettings, peer_of
from typedserve.transports.udp import UDPTransport
from typedserve.transports.wrapping import WrappingTransport

__all__ = ["ProxiedDatagram", "ProxyProtocolDatagramTransport"]

_V2_ONLY: tuple[Literal[2]] = (2,)


class ProxiedDatagram(Datagram[ProxyAddress]):
    """A datagram relayed by a proxy: once opened (before the handler runs), ``payload`` is
    what follows the header, ``peer`` the client the header names, :attr:`upstream` the proxy
    and :attr:`proxy` the header (see the module docstring)."""

    __slots__ = ("_header", "_settings", "_upstream")

    _header: ProxyHeader | None
    _settings: ProxySettings
    _upstream: InetSockAddr

    @property
    def proxy(self) -> ProxyHeader | None:
        """The header the datagram began with (``None``: it had none, with
        ``mode="optional"``, or ``mode="off"``)."""
        return self._header

    @property
    def upstream(self) -> InetSockAddr:
        """The datagram's real sender: the proxy (the ``peer`` before the header)."""
        return self._upstream

    def reply(self, data: bytes) -> None:
        """Send ``data`` as one datagram to the proxy (:attr:`upstream`), which relays it."""
        self.socket.sendto(data, self._upstream)

    def open(self) -> None:
        """Parse and remove the header; :class:`ProxyProtocolError` if the datagram is
        refused."""
        settings = self._settings
        config = settings.config
        if config.mode == "off":
            return
        upstream = self._upstream
        trusted = settings.trusts(upstream)
        if config.mode == "required" and not trusted:
            raise ProxyProtocolError(f"{upstream!r} is not in proxy_protocol.trusted")
        try:
            header = parse(self.payload, versions=_V2_ONLY)
        except ProxyProtocolError as exc:
            if exc.bad_signature and config.mode == "optional":
                return  # no header: served as is
            if exc.bad_signature:
                raise ProxyProtocolError(
                    f"no PROXY protocol v2 header (proxy_protocol.mode={config.mode!r}): the "
                    f"datagram starts with {self.payload[:12]!r}",
                    bad_signature=True,
                ) from None
            raise
        if isinstance(header, NeedMore):
            raise ProxyProtocolError("the datagram ends inside its PROXY protocol header")
        if not trusted:
            raise ProxyProtocolError(f"{upstream!r} is not in proxy_protocol.trusted")
        _set_header(self, header)
        _set_payload(self, self.payload[header.length :])
        _set_peer(self, peer_of(header, upstream))


_new = object.__new__
_set_payload = vars(Datagram)["payload"].__set__
_set_peer = vars(Datagram)["peer"].__set__
_set_socket = vars(Datagram)["socket"].__set__
_set_truncated = vars(Datagram)["truncated"].__set__
_set_header = vars(ProxiedDatagram)["_header"].__set__
_set_settings = vars(ProxiedDatagram)["_settings"].__set__
_set_upstream = vars(ProxiedDatagram)["_upstream"].__set__


class ProxyProtocolDatagramTransport(WrappingTransport[InetSockAddr]):
    """A ``Transport[ProxiedDatagram, InetSockAddr]`` over a :class:`UDPTransport` (see the
    module docstring), configured by ``config.proxy_protocol`` (``None``: the defaults, a
    header required from loopback proxies); its ``versions`` must include 2.

    Example::

        Server(config=ServerConfig(proxy_protocol=ProxyProtocolConfig(trusted=("10.0.0.0/8",))),
               transport=ProxyProtocolDatagramTransport(UDPTransport()), handler=Echo)
    """

    verify_after_open: ClassVar[Literal[True]] = True
    """The server applies its access policy after :meth:`open_request` (to the client the
    header names), not on receipt (to the proxy)."""

    def __init__(self, inner: UDPTransport) -> None:
        super().__init__(inner)
        self.inner = inner
        self._settings = ProxySettings.of(ProxyProtocolConfig())

    def bind(self, config: ServerConfig) -> None:
        """Take ``config.proxy_protocol`` (or the defaults), then bind the inner transport."""
        proxy = config.proxy_protocol or ProxyProtocolConfig()
        if proxy.mode != "off" and 2 not in proxy.versions:
            raise ConfigError(
                "proxy_protocol.versions: datagrams carry version 2 headers only; "
                f"{list(proxy.versions)} leaves none to read"
            )
        self._settings = ProxySettings.of(proxy)
        self.inner.bind(config)

    def receive(self) -> ProxiedDatagram | None:
        """Receive one datagram (its header is parsed where it is served)."""
        return self._wrap(self.inner.receive())

    def receiver(self) -> Callable[[], ProxiedDatagram | None] | None:
        """A :meth:`receive` for one more thread (see ``DatagramTransport.receiver``)."""
        receive, wrap = self.inner.receiver(), self._wrap
        if receive is None or type(self).receive is not ProxyProtocolDatagramTransport.receive:
            return None
        return lambda: wrap(receive())

    def _wrap(self, datagram: Datagram[InetSockAddr] | None) -> ProxiedDatagram | None:
        if datagram is None:
            return None
        proxied: ProxiedDatagram = _new(ProxiedDatagram)
        _set_payload(proxied, datagram.payload)
        _set_peer(proxied, datagram.peer)
        _set_socket(proxied, datagram.socket)
        _set_truncated(proxied, datagram.truncated)
        _set_header(proxied, None)
        _set_settings(proxied, self._settings)
        _set_upstream(proxied, datagram.peer)
        return proxied

    def open_request(self, request: ProxiedDatagram) -> None:
        """Parse the datagram's header (the server calls this where it serves it)."""
        request.open()
