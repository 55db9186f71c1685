"""Handler and server code using the typed API: mypy --strict --disallow-any-expr must report
nothing here, so none of these expressions has a type with ``Any`` in it from typedserve."""

from __future__ import annotations

import threading
from typing import Protocol

from typedserve import (
    Datagram,
    DatagramHandler,
    InetSockAddr,
    PeerAddress,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    ThreadPool,
    UDPTransport,
    UnixDatagramPeer,
    UnixDatagramTransport,
    UnixSockAddr,
    UnixStreamTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.strategies import AsyncIO
from typedserve.testing import connect, serve_in_thread


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...


class MemoryStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        with self.lock:
            return self.data.get(key)


class Lookup(StreamHandler[Store, InetSockAddr]):
    def handle(self) -> None:
        host, port = self.request.peer[0], self.request.peer[1]
        local: InetSockAddr = self.request.local
        served: PeerAddress = self.context.address
        line = self.rfile.readline()
        found = self.state.get(line.decode().strip())
        self.wfile.write(b"%s %d %r %r %r\n" % (host.encode(), port, local, served, found))
        if self.request.deadline is not None and self.context.config.timeouts.idle:
            self.context.shutdown()


class AnyPeerEcho(StreamHandler):
    def handle(self) -> None:
        peer = self.request.peer
        if isinstance(peer, tuple):
            self.wfile.write(peer[0].encode())
        elif peer:
            self.wfile.write(peer if isinstance(peer, bytes) else peer.encode())


class UnixUpper(DatagramHandler[None, UnixDatagramPeer]):
    def handle(self) -> None:
        if self.request.peer is not None:
            self.wfile.write(self.rfile.read().upper())


class AsyncEcho(AsyncHandler[AsyncStream[UnixSockAddr]]):
    async def handle(self) -> None:
        peer: UnixSockAddr = self.request.peer
        while data := await self.request.read(65536):
            self.request.write(data)
            await self.request.drain()
        line = await self.request.readline()
        self.request.write(line + repr(peer).encode())


class AsyncUpper(AsyncHandler[Datagram[InetSockAddr]]):
    async def handle(self) -> None:
        self.request.reply(self.request.payload.upper() + self.request.peer[0].encode())


config = ServerConfig()
lookup = Server(
    config=config,
    transport=TCPTransport(),
    handler=Lookup,
    state=MemoryStore(),
    strategy=ThreadPool(),
)
port: int = lookup.address[1]
lookup.handle_request(0.0)
report = lookup.shutdown(grace=1.0)
stats = lookup.stats()
with serve_in_thread(lookup) as running, connect(running) as client:
    client.sendall(b"key\n")
echo = Server(config=config, transport=UnixStreamTransport(), handler=AnyPeerEcho)
path: str | bytes = echo.address
upper = Server(config=config, transport=UnixDatagramTransport(), handler=UnixUpper)
aecho = Server(config=config, transport=UnixStreamTransport(), handler=AsyncEcho, strategy=AsyncIO())
aupper = Server(config=config, transport=UDPTransport(), handler=AsyncUpper, strategy=AsyncIO())
grace: float | None = None
aupper.shutdown(grace)
for server in (lookup, echo, upper, aecho, aupper):
    server.close()
plain: Server[StreamRequest[InetSockAddr], Store, InetSockAddr, ThreadPool] = lookup
