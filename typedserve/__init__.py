"""typedserve: typed, composable socket servers.

A server is composed of a validated :class:`ServerConfig`, a typed transport, a concurrency
strategy and a handler generic over the request type::

    from typedserve import Server, ServerConfig, StreamHandler, TCPTransport, ThreadPerRequest

    class Echo(StreamHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line)

    with Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo,
                strategy=ThreadPerRequest()) as server:
        server.serve_forever()

Layers, lowest first (a module imports only its own layer or lower ones; ``tests/test_layers.py``
checks it; ARCHITECTURE.md walks a request through them):

1. Values and sans-IO decisions: ``errors``, ``activation`` (the sockets systemd passed),
   ``_wakeup``, ``framing``, ``proxy`` (the PROXY protocol header, parsed from bytes, and
   ``proxy.config``, its config table), ``config`` (with ``_config_model``,
   ``_config_sources``, ``tls.config`` and ``access_log.config``), ``requests``,
   ``tls.info`` (what a handshake negotiated), ``counters``, ``admission``,
   ``metrics.config`` (the ``metrics`` config table) and ``metrics.histogram`` (the
   request-duration histogram, recorded in the counters).
2. Network endpoints and handler-side types: ``transports`` (``transports.proxied``: the
   PROXY protocol wrapper), ``tls`` (the ``SSLContext`` built from a ``tls.config``),
   ``context``, ``policies``, ``drain``, ``handlers``, ``stats``,
   ``options``, ``systemd`` (``sd_notify`` and its watchdog), ``observe`` (the per-request
   observer seam: who hears of each request's end), ``access_log`` (the access log, an
   observer), ``logformat`` (formatters for applications: ``JsonFormatter``).
3. The strategies' view of a server: ``host`` (``Host``, ``LoopHost``).
4. Where requests run: ``strategies`` and ``aio`` (the AsyncIO request table).
5. The loop machinery: ``_lifecycle``, ``_reactor``, ``_serving``, ``_parking``, ``_pulling``,
   ``_watches``, ``_loop``.
6. ``server`` (and ``_server_host``, the ``LoopHost`` it hands its strategy;
   ``server_factory``, the shape the command line builds servers with; ``_server_params``,
   its type parameters).
7. Built on the whole: ``compat``, ``testing``, ``cli``, ``demo``, ``metrics`` (the
   Prometheus collector and its HTTP endpoint; ``prometheus_client`` is imported there only).
"""

from typing import TYPE_CHECKING

# The exports are imported on first use (module __getattr__ below), so that importing a part
# (``import typedserve.compat``, a drop-in socketserver) does not import the whole package,
# pydantic included. Type checkers and IDEs see these imports.
if TYPE_CHECKING:
    from typedserve.access_log.config import AccessLogConfig
    from typedserve.aio import AsyncHandler, AsyncHandlerFactory, AsyncStream
    from typedserve.config import (
        Address,
        FDAddress,
        InetAddress,
        Limits,
        ServerConfig,
        ShutdownConfig,
        Timeouts,
        UnixAddress,
    )
    from typedserve.context import ServerContext
    from typedserve.drain import BusyPolicy, DrainReport
    from typedserve.errors import (
        BindError,
        ConfigError,
        FramingError,
        HandshakeError,
        MissingDependencyError,
        ProxyProtocolError,
        ServerClosedError,
        ServerStateError,
        StateError,
        StrategyMismatchError,
        TransportMismatchError,
        TypedServeError,
        UnsupportedPlatformError,
    )
    from typedserve.handlers import DatagramHandler, Handler, HandlerFactory, StreamHandler
    from typedserve.host import Host, LoopHost
    from typedserve.observe import Outcome, RequestObserver
    from typedserve.policies import AccessPolicy, AllowNetworks, ErrorPolicy, allow_all, log_error
    from typedserve.proxy.config import ProxyProtocolConfig
    from typedserve.requests import (
        Datagram,
        InetSockAddr,
        IPv4SockAddr,
        IPv6SockAddr,
        PeerAddress,
        Request,
        StreamRequest,
        UnixDatagramPeer,
        UnixSockAddr,
    )
    from typedserve.server import Server, ServerStats
    from typedserve.server_factory import ServerFactory
    from typedserve.strategies import (
        AsyncIO,
        ForkPerRequest,
        Inline,
        Prefork,
        Strategy,
        ThreadPerRequest,
        ThreadPool,
    )
    from typedserve.strategies.base import LoopOwner
    from typedserve.systemd import notify, notify_ready, notify_stopping
    from typedserve.tls.config import TLSConfig
    from typedserve.tls.context import build_context
    from typedserve.tls.info import PeerCertificate, TLSInfo
    from typedserve.transports import (
        TCPTransport,
        Transport,
        TransportStats,
        UDPTransport,
        UnixDatagramTransport,
        UnixStreamTransport,
    )
    from typedserve.transports.proxied import ProxiedStreamRequest, ProxyProtocolTransport
    from typedserve.transports.proxied_datagram import (
        ProxiedDatagram,
        ProxyProtocolDatagramTransport,
    )
    from typedserve.transports.tls import TLSStreamRequest, TLSTransport

__version__ = "0.1.0"

# Each export -> the module defining it: what __getattr__ imports. Adding an export is a line
# here, its import above and its name in __all__ (tests/compat/test_compat_import_cost.py
# checks that the three agree).
_EXPORTS: dict[str, str] = {
    "AccessLogConfig": "typedserve.access_log.config",
    "AccessPolicy": "typedserve.policies",
    "Address": "typedserve.config",
    "AllowNetworks": "typedserve.policies",
    "AsyncHandler": "typedserve.aio",
    "AsyncHandlerFactory": "typedserve.aio",
    "AsyncIO": "typedserve.strategies",
    "AsyncStream": "typedserve.aio",
    "BindError": "typedserve.errors",
    "BusyPolicy": "typedserve.drain",
    "ConfigError": "typedserve.errors",
    "Datagram": "typedserve.requests",
    "DatagramHandler": "typedserve.handlers",
    "DrainReport": "typedserve.drain",
    "ErrorPolicy": "typedserve.policies",
    "FDAddress": "typedserve.config",
    "ForkPerRequest": "typedserve.strategies",
    "FramingError": "typedserve.errors",
    "HandshakeError": "typedserve.errors",
    "MissingDependencyError": "typedserve.errors",
    "PeerCertificate": "typedserve.tls.info",
    "TLSInfo": "typedserve.tls.info",
    "TLSStreamRequest": "typedserve.transports.tls",
    "TLSTransport": "typedserve.transports.tls",
    "ProxiedDatagram": "typedserve.transports.proxied_datagram",
    "ProxiedStreamRequest": "typedserve.transports.proxied",
    "ProxyProtocolDatagramTransport": "typedserve.transports.proxied_datagram",
    "ProxyProtocolConfig": "typedserve.proxy.config",
    "ProxyProtocolTransport": "typedserve.transports.proxied",
    "Handler": "typedserve.handlers",
    "HandlerFactory": "typedserve.handlers",
    "Host": "typedserve.host",
    "IPv4SockAddr": "typedserve.requests",
    "IPv6SockAddr": "typedserve.requests",
    "InetAddress": "typedserve.config",
    "InetSockAddr": "typedserve.requests",
    "Inline": "typedserve.strategies",
    "Limits": "typedserve.config",
    "LoopHost": "typedserve.host",
    "LoopOwner": "typedserve.strategies.base",
    "Outcome": "typedserve.observe",
    "PeerAddress": "typedserve.requests",
    "Prefork": "typedserve.strategies",
    "ProxyProtocolError": "typedserve.errors",
    "Request": "typedserve.requests",
    "RequestObserver": "typedserve.observe",
    "Server": "typedserve.server",
    "ServerClosedError": "typedserve.errors",
    "ServerConfig": "typedserve.config",
    "ServerContext": "typedserve.context",
    "ServerFactory": "typedserve.server_factory",
    "ServerStateError": "typedserve.errors",
    "ServerStats": "typedserve.server",
    "ShutdownConfig": "typedserve.config",
    "StateError": "typedserve.errors",
    "Strategy": "typedserve.strategies",
    "StrategyMismatchError": "typedserve.errors",
    "StreamHandler": "typedserve.handlers",
    "StreamRequest": "typedserve.requests",
    "TCPTransport": "typedserve.transports",
    "TLSConfig": "typedserve.tls.config",
    "ThreadPerRequest": "typedserve.strategies",
    "ThreadPool": "typedserve.strategies",
    "Timeouts": "typedserve.config",
    "Transport": "typedserve.transports",
    "TransportMismatchError": "typedserve.errors",
    "TransportStats": "typedserve.transports",
    "TypedServeError": "typedserve.errors",
    "UDPTransport": "typedserve.transports",
    "UnixAddress": "typedserve.config",
    "UnixDatagramPeer": "typedserve.requests",
    "UnixDatagramTransport": "typedserve.transports",
    "UnixSockAddr": "typedserve.requests",
    "UnixStreamTransport": "typedserve.transports",
    "UnsupportedPlatformError": "typedserve.errors",
    "allow_all": "typedserve.policies",
    "build_context": "typedserve.tls.context",
    "log_error": "typedserve.policies",
    "notify": "typedserve.systemd",
    "notify_ready": "typedserve.systemd",
    "notify_stopping": "typedserve.systemd",
}

__all__ = [
    "AccessLogConfig",
    "AccessPolicy",
    "Address",
    "AllowNetworks",
    "AsyncHandler",
    "AsyncHandlerFactory",
    "AsyncIO",
    "AsyncStream",
    "BindError",
    "BusyPolicy",
    "ConfigError",
    "Datagram",
    "DatagramHandler",
    "DrainReport",
    "ErrorPolicy",
    "FDAddress",
    "ForkPerRequest",
    "FramingError",
    "Handler",
    "HandlerFactory",
    "HandshakeError",
    "Host",
    "IPv4SockAddr",
    "IPv6SockAddr",
    "InetAddress",
    "InetSockAddr",
    "Inline",
    "Limits",
    "LoopHost",
    "LoopOwner",
    "MissingDependencyError",
    "Outcome",
    "PeerAddress",
    "PeerCertificate",
    "Prefork",
    "ProxiedDatagram",
    "ProxiedStreamRequest",
    "ProxyProtocolConfig",
    "ProxyProtocolDatagramTransport",
    "ProxyProtocolError",
    "ProxyProtocolTransport",
    "Request",
    "RequestObserver",
    "Server",
    "ServerClosedError",
    "ServerConfig",
    "ServerContext",
    "ServerFactory",
    "ServerStateError",
    "ServerStats",
    "ShutdownConfig",
    "StateError",
    "Strategy",
    "StrategyMismatchError",
    "StreamHandler",
    "StreamRequest",
    "TCPTransport",
    "TLSConfig",
    "TLSInfo",
    "TLSStreamRequest",
    "TLSTransport",
    "ThreadPerRequest",
    "ThreadPool",
    "Timeouts",
    "Transport",
    "TransportMismatchError",
    "TransportStats",
    "TypedServeError",
    "UDPTransport",
    "UnixAddress",
    "UnixDatagramPeer",
    "UnixDatagramTransport",
    "UnixSockAddr",
    "UnixStreamTransport",
    "UnsupportedPlatformError",
    "allow_all",
    "build_context",
    "log_error",
    "notify",
    "notify_ready",
    "notify_stopping",
]


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any name as an export

    def __getattr__(name: str) -> object:
        """Import an export of the package on first use, from the module defining it."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(module), name)
        globals()[name] = value  # later lookups find it without calling __getattr__
        return value


def __dir__() -> list[str]:
    """The module's names, the exports not yet imported included."""
    return sorted({*globals(), *__all__})
