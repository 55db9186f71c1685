"""Every mis-pairing of async and synchronous handlers and strategies is a mypy error.

Each line ending in ``# E: <code>`` must report exactly that error code; no other line may
report anything.
"""

from __future__ import annotations

from typedserve import (
    Datagram,
    DatagramHandler,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    ThreadPerRequest,
    UDPTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.strategies import AsyncIO, Inline


class AsyncEcho(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        self.request.write(await self.request.read(100))


class AsyncUpper(AsyncHandler[Datagram]):
    async def handle(self) -> None:
        self.request.reply(self.request.payload.upper())


class SyncEcho(StreamHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class SyncUpper(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


class WithState(AsyncHandler[AsyncStream, list[int]]):
    async def handle(self) -> None:
        self.state.append(1)


class NotAsync(AsyncHandler[AsyncStream]):
    def handle(self) -> None:  # E: override
        pass


config = ServerConfig()

# A synchronous handler with AsyncIO.
Server(config=config, transport=TCPTransport(), handler=SyncEcho, strategy=AsyncIO())  # E: arg-type
Server(config=config, transport=UDPTransport(), handler=SyncUpper, strategy=AsyncIO())  # E: arg-type

# An async handler with a thread strategy, or with the default (Inline).
Server(config=config, transport=TCPTransport(), handler=AsyncEcho, strategy=ThreadPerRequest())  # E: arg-type
Server(config=config, transport=TCPTransport(), handler=AsyncEcho, strategy=Inline())  # E: arg-type
Server(config=config, transport=TCPTransport(), handler=AsyncEcho)  # E: arg-type
Server(config=config, transport=UDPTransport(), handler=AsyncUpper, strategy=ThreadPerRequest())  # E: arg-type

# The async handler's request type must match the transport.
Server(config=config, transport=UDPTransport(), handler=AsyncEcho, strategy=AsyncIO())  # E: arg-type
Server(config=config, transport=TCPTransport(), handler=AsyncUpper, strategy=AsyncIO())  # E: arg-type

# The state must match the handler's StateT, and be given when the handler needs one.
Server(config=config, transport=TCPTransport(), handler=WithState, state="no", strategy=AsyncIO())  # E: arg-type
Server(config=config, transport=TCPTransport(), handler=WithState, strategy=AsyncIO())  # E: arg-type

# Unknown loop names.
AsyncIO(loop="trio")  # E: arg-type
