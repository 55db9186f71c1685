"""``ProxyProtocolMixIn``: an opt-in PROXY protocol reader for old-style stream servers.

``typedserve.compat`` behaves as the stdlib ``socketserver`` does, so it reads no PROXY
header unless asked: mix this in first, and each connection's header is read before its
handler runs::

    from typedserve.compat import StreamRequestHandler, ThreadingTCPServer
    from typedserve.compat_proxy import ProxyProtocolMixIn
    from typedserve.proxy.config import ProxyProtocolConfig

    class Server(ProxyProtocolMixIn, ThreadingTCPServer):
        proxy_protocol = ProxyProtocolConfig(mode="required", trusted=("10.0.0.0/8",))

The header is read where the request is served (the request's thread or forked child, inside
``finish_request``), with the typed core's reader (:func:`~typedserve.transports.proxied.
read_header`: peeks, consumes only the header, within ``proxy_protocol.timeout``). The
handler's ``client_address`` is then the client the header names; :meth:`proxy_header` and
:meth:`upstream` give the header and the balancer for a request. ``verify_request`` runs at
accept, as in the stdlib, on the balancer's address; :meth:`verify_client` runs on the
relayed client, after the header. A connection refused at its header (missing where required,
malformed, from an upstream outside ``trusted``, too slow) never reaches the handler: it is
logged as one INFO line on ``typedserve.server`` and counted in :attr:`proxy_refused`.

Stream servers only (TCP, Unix stream): a datagram server raises ``TypeError`` at its first
request.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, ClassVar

from typedserve.errors import ProxyProtocolError
from typedserve.policies import is_disconnect, log_disconnect, log_proxy_refusal
from typedserve.proxy import ProxyHeader
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.transports.proxied import HeaderReader, ProxySettings, peer_of, read_header

__all__ = ["ProxyProtocolMixIn"]


class ProxyProtocolMixIn:
    """Read a PROXY protocol header (v1 or v2) at the start of every connection (see the
    module docstring). Put it before the server class in the bases."""

    proxy_protocol: ClassVar[ProxyProtocolConfig] = ProxyProtocolConfig()
    """How headers are read: mode, versions, trusted upstreams, timeout (override it)."""

    proxy_refused: int = 0
    """Connections refused at their header, in this process."""

    _proxy_settings: ProxySettings | None = None
    _proxy_relayed: dict[int, tuple[ProxyHeader | None, Any]] | None = None
    _proxy_lock = threading.Lock()

    def verify_client(self, request: Any, client_address: Any) -> bool:
        """Whether to serve the client a header relayed (``client_address`` is that client);
        runs after the header, where the request is served. May be overridden."""
        return True

    def proxy_header(self, request: Any) -> ProxyHeader | None:
        """The header ``request`` began with (``None``: none was read, or it is not being
        served): its TLVs, ``LOCAL`` for a health check."""
        relayed = (self._proxy_relayed or {}).get(id(request))
        return None if relayed is None else relayed[0]

    def upstream(self, request: Any) -> Any:
        """The real peer of ``request`` (the balancer), while it is served; else ``None``."""
        relayed = (self._proxy_relayed or {}).get(id(request))
        return None if relayed is None else relayed[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Read the header, then let the server finish the request for the client it names."""
        if not isinstance(request, socket.socket):
            raise TypeError(
                f"{type(self).__name__}: ProxyProtocolMixIn reads headers on stream servers "
                "only (TCP, Unix stream)"
            )
        settings = self._settings()
        config = settings.config
        header: ProxyHeader | None = None
        if config.mode != "off":
            try:
                if config.mode == "required" and not settings.trusts(client_address):
                    raise ProxyProtocolError(f"{client_address!r} is not in proxy_protocol.trusted")
                header = read_header(request, HeaderReader(config))
                if header is not None and not settings.trusts(client_address):
                    raise ProxyProtocolError(f"{client_address!r} is not in proxy_protocol.trusted")
            except ProxyProtocolError as exc:
                with self._proxy_lock:
                    self.proxy_refused += 1
                log_proxy_refusal(exc, client_address)
                return
            except OSError as exc:
                if not is_disconnect(exc):
                    raise
                log_disconnect(exc, client_address)
                return
        client = peer_of(header, client_address)
        if not self.verify_client(request, client):
            return
        relayed = self._relayed()
        relayed[id(request)] = (header, client_address)
        try:
            super().finish_request(request, client)  # type: ignore[misc]  # the server's
        finally:
            relayed.pop(id(request), None)

    def _settings(self) -> ProxySettings:
        settings = self._proxy_settings
        if settings is None or settings.config is not self.proxy_protocol:
            settings = self._proxy_settings = ProxySettings.of(self.proxy_protocol)
        return settings

    def _relayed(self) -> dict[int, tuple[ProxyHeader | None, Any]]:
        relayed = self._proxy_relayed
        if relayed is None:
            with self._proxy_lock:
                if self._proxy_relayed is None:
                    self._proxy_relayed = {}
                relayed = self._proxy_relayed
        return relayed
