"""Issue 10's typing (interface state, shutdown's grace, addresses, handle_request, what custom
strategies and transports import, the CLI factory type): mypy --strict reports nothing here."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Protocol, assert_type

from typedserve import (
    Datagram,
    DatagramHandler,
    DrainReport,
    Host,
    InetSockAddr,
    Inline,
    IPv4SockAddr,
    IPv6SockAddr,
    LoopHost,
    LoopOwner,
    PeerAddress,
    Request,
    Server,
    ServerConfig,
    ServerContext,
    ServerFactory,
    StreamHandler,
    StreamRequest,
    Strategy,
    TCPTransport,
    ThreadPool,
    Transport,
    TransportStats,
    UDPTransport,
    UnixDatagramPeer,
    UnixDatagramTransport,
    UnixSockAddr,
    UnixStreamTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.strategies import AsyncIO

config = ServerConfig()


# -- 1. A handler depends on an interface; the server is given an implementation ---------------


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...


class MemoryStore:
    def get(self, key: str) -> bytes | None:
        return None


class KV(StreamHandler[Store]):
    def handle(self) -> None:
        assert_type(self.state, Store)
        assert_type(self.context, ServerContext[Store])


kv = Server(config=config, transport=TCPTransport(), handler=KV, state=MemoryStore())
assert_type(kv, Server[StreamRequest[InetSockAddr], MemoryStore, InetSockAddr, Inline])
assert_type(kv.context.state, MemoryStore)
as_interface: Server[StreamRequest, Store] = kv  # covariant in the state (and the request)


class Base:
    pass


class Derived(Base):
    pass


class UsesBase(StreamHandler[Base]):
    def handle(self) -> None:
        pass


Server(config=config, transport=TCPTransport(), handler=UsesBase, state=Derived())
store: Store = MemoryStore()
Server(config=config, transport=TCPTransport(), handler=KV, state=store)


class AsyncKV(AsyncHandler[AsyncStream, Store]):
    async def handle(self) -> None:
        assert_type(self.state, Store)


Server(
    config=config, transport=TCPTransport(), handler=AsyncKV, state=MemoryStore(), strategy=AsyncIO()
)


def kv_factory(request: StreamRequest, context: ServerContext[Store]) -> KV:
    return KV(request, context)


Server(config=config, transport=TCPTransport(), handler=kv_factory, state=MemoryStore())

# -- 2. shutdown(grace=None), and a grace that may be None ----------------------------------------

assert_type(kv.shutdown(), None)
assert_type(kv.shutdown(None), None)
assert_type(kv.shutdown(grace=None), None)
assert_type(kv.shutdown(2.5), DrainReport | None)
assert_type(kv.shutdown(grace=2.5), DrainReport | None)
grace: float | None = None
assert_type(kv.shutdown(grace), DrainReport | None)
assert_type(kv.shutdown(grace=grace), DrainReport | None)
assert_type(kv.close(grace), DrainReport | None)

# -- 3. Each transport's address type reaches request.peer, request.local and server.address --


class TCPEcho(StreamHandler[None, InetSockAddr]):
    def handle(self) -> None:
        assert_type(self.request, StreamRequest[InetSockAddr])
        assert_type(self.request.peer, InetSockAddr)
        assert_type(self.request.local, InetSockAddr)
        host: str = self.request.peer[0]
        port: int = self.request.peer[1]
        if len(self.request.peer) == 4:
            assert_type(self.request.peer, IPv6SockAddr)
        else:
            assert_type(self.request.peer, IPv4SockAddr)
        self.wfile.write(b"%s:%d" % (host.encode(), port))


class UnixEcho(StreamHandler[None, UnixSockAddr]):
    def handle(self) -> None:
        assert_type(self.request.peer, str | bytes)


class AnyEcho(StreamHandler):
    def handle(self) -> None:
        assert_type(self.request.peer, PeerAddress)
        assert_type(self.context.address, PeerAddress)


class UnixUpper(DatagramHandler[None, UnixDatagramPeer]):
    def handle(self) -> None:
        assert_type(self.request.peer, str | bytes | None)


class UDPUpper(DatagramHandler[None, InetSockAddr]):
    def handle(self) -> None:
        assert_type(self.request, Datagram[InetSockAddr])


class AsyncInet(AsyncHandler[AsyncStream[InetSockAddr]]):
    async def handle(self) -> None:
        assert_type(self.request.peer, InetSockAddr)
        assert_type(self.request.local, InetSockAddr)
        assert_type(await self.request.read(10), bytes)


tcp = Server(config=config, transport=TCPTransport(), handler=TCPEcho)
assert_type(tcp.address, InetSockAddr)
assert_type(tcp.address[1], int)
unix = Server(config=config, transport=UnixStreamTransport(), handler=UnixEcho)
assert_type(unix.address, UnixSockAddr)
anywhere = Server(config=config, transport=UnixStreamTransport(), handler=AnyEcho)
assert_type(anywhere, Server[StreamRequest[UnixSockAddr], None, UnixSockAddr, Inline])
unix_dgram = Server(config=config, transport=UnixDatagramTransport(), handler=UnixUpper)
assert_type(unix_dgram, Server[Datagram[UnixDatagramPeer], None, UnixSockAddr, Inline])
udp = Server(config=config, transport=UDPTransport(), handler=UDPUpper, strategy=ThreadPool())
assert_type(udp.address, InetSockAddr)
assert_type(udp.strategy, ThreadPool)
aio = Server(config=config, transport=TCPTransport(), handler=AsyncInet, strategy=AsyncIO())
assert_type(aio.address, InetSockAddr)
assert_type(TCPTransport().address, InetSockAddr)
assert_type(UnixDatagramTransport().receive(), Datagram[UnixDatagramPeer] | None)
untyped: Server[Any, Any] = unix  # a two-argument annotation: any address, any strategy
assert_type(untyped.address, Any)

# -- 4. handle_request needs a dispatching strategy -----------------------------------------------

assert_type(tcp.handle_request(), bool)
assert_type(udp.handle_request(timeout=None), bool)
assert_type(untyped.handle_request(0.1), bool)
dispatching: Server[Request, object, PeerAddress, Strategy] = udp
dispatching.handle_request()

# -- 6. What a custom strategy or transport imports from typedserve -------------------------------


class Sequential(Strategy):
    """A dispatching strategy of one's own (serves on the loop thread)."""

    def __init__(self) -> None:
        self.host: LoopHost[Any] | None = None
        self.running = 0

    def attach(self, host: LoopHost[Any]) -> None:
        self.host = host

    def submit(self, serve: Callable[[Any], None], request: Any) -> None:
        self.running += 1
        try:
            serve(request)
        finally:
            self.running -= 1

    @property
    def in_flight(self) -> int:
        return self.running

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        callback()

    def close(self, timeout: float | None = None) -> int:
        return 0


def describe(host: Host[StreamRequest]) -> str:
    return f"{host.config.backlog} {host.transport.address!r} {host.context.state!r}"


owner: LoopOwner = Sequential()
sequential = Server(config=config, transport=TCPTransport(), handler=TCPEcho, strategy=Sequential())
assert_type(sequential.strategy, Sequential)
sequential.handle_request()


class Wrapper:
    """A transport of one's own, wrapping TCP."""

    def __init__(self) -> None:
        self.inner = TCPTransport()
        self.stats: TransportStats = self.inner.stats

    def bind(self, config: ServerConfig) -> None:
        self.inner.bind(config)

    def activate(self) -> None:
        self.inner.activate()

    @property
    def address(self) -> InetSockAddr:
        return self.inner.address

    def fileno(self) -> int:
        return self.inner.fileno()

    def receive(self) -> StreamRequest[InetSockAddr] | None:
        return self.inner.receive()

    def close(self) -> None:
        self.inner.close()


as_transport: Transport[StreamRequest[InetSockAddr], InetSockAddr] = Wrapper()
wrapped = Server(config=config, transport=Wrapper(), handler=TCPEcho)
assert_type(wrapped.address, InetSockAddr)


class OwnRequest:
    """A request of one's own: the Request protocol, with an address type."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @property
    def peer(self) -> UnixSockAddr:
        return ""

    @property
    def deadline(self) -> float | None:
        return None

    @property
    def connection(self) -> socket.socket | None:
        return self.sock

    def close(self) -> None:
        self.sock.close()

    def cut(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)

    def refuse(self) -> bool:
        return False


as_request: Request[UnixSockAddr] = OwnRequest(socket.socket())
as_any_request: Request = as_request

# -- 7. A factory for `typedserve serve MODULE:ATTR` ----------------------------------------------


def build_kv(config: ServerConfig) -> Server[StreamRequest, Store]:
    return Server(config=config, transport=TCPTransport(), handler=KV, state=MemoryStore())


def build_echo(config: ServerConfig, verbose: bool = False) -> Server[StreamRequest[UnixSockAddr]]:
    return Server(config=config, transport=UnixStreamTransport(), handler=UnixEcho)


def build_async(
    config: ServerConfig,
) -> Server[StreamRequest[InetSockAddr], None, InetSockAddr, AsyncIO]:
    return Server(config=config, transport=TCPTransport(), handler=AsyncInet, strategy=AsyncIO())


factories: list[ServerFactory] = [build_kv, build_echo, build_async, lambda config: tcp]
