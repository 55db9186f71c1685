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

1. Values and sans-IO decisions: ``errors``, ``_wakeup``, ``framing``, ``config``,
   ``requests``, ``counters``, ``admission``.
2. Network endpoints and handler-side types: ``transports``, ``context``, ``policies``,
   ``drain``, ``handlers``, ``stats``, ``options``.
3. The strategies' view of a server: ``host`` (``Host``, ``LoopHost``).
4. Where requests run: ``strategies`` and ``aio`` (the AsyncIO request table).
5. The loop machinery: ``_lifecycle``, ``_reactor``, ``_serving``, ``_parking``, ``_loop``.
6. ``server`` (and ``_server_host``, the ``LoopHost`` it hands its strategy).
7. Built on the whole: ``compat``, ``testing``, ``cli``, ``demo``.
"""

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
from typedserve.policies import AccessPolicy, AllowNetworks, ErrorPolicy, allow_all, log_error
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
from typedserve.server import Server, ServerFactory, ServerStats
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
from typedserve.transports import (
    TCPTransport,
    Transport,
    TransportStats,
    UDPTransport,
    UnixDatagramTransport,
    UnixStreamTransport,
)

__version__ = "0.1.0"

__all__ = [
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
    "Host",
    "IPv4SockAddr",
    "IPv6SockAddr",
    "InetAddress",
    "InetSockAddr",
    "Inline",
    "Limits",
    "LoopHost",
    "LoopOwner",
    "PeerAddress",
    "Prefork",
    "Request",
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
    "log_error",
]
