"""Issue 10's typing, the wrong way round: each line marked ``# E: <code>`` (optionally followed
by ``: <message fragment>``) must get exactly that error; every other line must get none."""

from __future__ import annotations

from typing import Protocol

from typedserve import (
    Datagram,
    DatagramHandler,
    InetSockAddr,
    Server,
    ServerConfig,
    ServerFactory,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    UDPTransport,
    UnixDatagramPeer,
    UnixDatagramTransport,
    UnixSockAddr,
    UnixStreamTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.strategies import AsyncIO

config = ServerConfig()


# -- 1. The state must still be an implementation of the handler's state type ---------------------


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...


class NotAStore:
    def put(self, key: str, value: bytes) -> None: ...


class KV(StreamHandler[Store]):
    def handle(self) -> None:
        pass


class Base:
    pass


class Unrelated:
    pass


class UsesBase(StreamHandler[Base]):
    def handle(self) -> None:
        pass


class AsyncKV(AsyncHandler[AsyncStream, Store]):
    async def handle(self) -> None:
        pass


Server(config=config, transport=TCPTransport(), handler=KV, state=NotAStore())  # E: arg-type: ServerContext[NotAStore]
Server(config=config, transport=TCPTransport(), handler=UsesBase, state=Unrelated())  # E: arg-type: ServerContext[Unrelated]
Server(config=config, transport=TCPTransport(), handler=UsesBase, state=Base)  # E: arg-type
Server(config=config, transport=TCPTransport(), handler=AsyncKV, state=NotAStore(), strategy=AsyncIO())  # E: arg-type: ServerContext[NotAStore]
Server(config=config, transport=TCPTransport(), handler=KV)  # E: arg-type: ServerContext[None]

# -- 2. shutdown's result is a report only with a grace ---------------------------------------------

plain = Server(config=config, transport=TCPTransport(), handler=UsesBase, state=Base())
plain.shutdown().completed  # E: attr-defined: "None" has no attribute "completed"
grace: float | None = 1.0
plain.shutdown(grace).completed  # E: union-attr: Item "None" of "DrainReport | None"
plain.shutdown(grace="5")  # E: call-overload


# -- 3. Addresses are typed: no Any to index blindly ---------------------------------------------


class TCPEcho(StreamHandler[None, InetSockAddr]):
    def handle(self) -> None:
        self.request.peer.decode()  # E: union-attr


class AnyPeer(StreamHandler):
    def handle(self) -> None:
        self.request.peer[1]  # E: index: "tuple[str, int] | tuple[str, int, int, int] | str | bytes | None" is not indexable


class UnixUpper(DatagramHandler[None, UnixSockAddr]):
    def handle(self) -> None:
        pass


class AsyncInet(AsyncHandler[AsyncStream[InetSockAddr]]):
    async def handle(self) -> None:
        path: str = self.request.peer  # E: assignment


unix = Server(config=config, transport=UnixStreamTransport(), handler=AnyPeer)
port: int = unix.address[1]  # E: assignment: expression has type "str | int", variable has type "int"
tcp = Server(config=config, transport=TCPTransport(), handler=TCPEcho)
path: str = tcp.address  # E: assignment
Server(config=config, transport=UnixStreamTransport(), handler=TCPEcho)  # E: arg-type: "Callable[[StreamRequest[str | bytes], ServerContext[None]], HandlerLike]"
Server(config=config, transport=UDPTransport(), handler=UnixUpper)  # E: arg-type
Server(config=config, transport=UnixDatagramTransport(), handler=UnixUpper)  # E: arg-type: "Callable[[Datagram[str | bytes | None], ServerContext[None]], HandlerLike]"
Server(config=config, transport=UnixStreamTransport(), handler=AsyncInet, strategy=AsyncIO())  # E: arg-type
received: Datagram[UnixSockAddr] | None = UnixDatagramTransport().receive()  # E: assignment
peer: UnixDatagramPeer = UDPTransport().address  # E: assignment

# -- 4. handle_request on a server whose strategy owns its loop -------------------------------------

served_async = Server(config=config, transport=TCPTransport(), handler=AsyncInet, strategy=AsyncIO())
served_async.handle_request()  # E: misc: Invalid self argument
served_async.handle_request(timeout=0.5)  # E: misc: Invalid self argument
served_async.serve_forever()
served_async.shutdown(grace=1.0)

# -- 7. What is not a ServerFactory ---------------------------------------------------------------


def no_config() -> Server[StreamRequest]:
    return Server(config=config, transport=TCPTransport(), handler=TCPEcho)


def not_a_server(config: ServerConfig) -> int:
    return 0


def two_required(config: ServerConfig, store: Store) -> Server[StreamRequest]:
    return Server(config=config, transport=TCPTransport(), handler=TCPEcho)


first: ServerFactory = no_config  # E: assignment
second: ServerFactory = not_a_server  # E: assignment
third: ServerFactory = two_required  # E: assignment
fourth: ServerFactory = TCPTransport  # E: assignment
