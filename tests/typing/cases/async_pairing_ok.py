"""Async handlers with AsyncIO: accepted, and the server's type follows the transport."""

from __future__ import annotations

from dataclasses import dataclass

from typing_extensions import assert_type

from typedserve import Datagram, Server, ServerConfig, StreamRequest, TCPTransport, UDPTransport
from typedserve import InetSockAddr, UnixDatagramPeer, UnixSockAddr
from typedserve import UnixDatagramTransport, UnixStreamTransport
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.strategies import AsyncIO


@dataclass
class Hits:
    count: int = 0


class Echo(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        while data := await self.request.read(65536):
            self.request.write(data)
            await self.request.drain()


class Counting(AsyncHandler[AsyncStream, Hits]):
    async def handle(self) -> None:
        self.state.count += 1
        line = await self.request.readline()
        self.request.write(line)


class Upper(AsyncHandler[Datagram]):
    async def handle(self) -> None:
        self.request.reply(self.request.payload.upper())


config = ServerConfig()
tcp = Server(config=config, transport=TCPTransport(), handler=Echo, strategy=AsyncIO())
assert_type(tcp, Server[StreamRequest[InetSockAddr], None, InetSockAddr, AsyncIO])
unix = Server(config=config, transport=UnixStreamTransport(), handler=Echo, strategy=AsyncIO())
assert_type(unix, Server[StreamRequest[UnixSockAddr], None, UnixSockAddr, AsyncIO])
stateful = Server(
    config=config, transport=TCPTransport(), handler=Counting, state=Hits(), strategy=AsyncIO()
)
assert_type(stateful, Server[StreamRequest[InetSockAddr], Hits, InetSockAddr, AsyncIO])
assert_type(stateful.context.state, Hits)
udp = Server(config=config, transport=UDPTransport(), handler=Upper, strategy=AsyncIO(loop="uvloop"))
assert_type(udp, Server[Datagram[InetSockAddr], None, InetSockAddr, AsyncIO])
unix_dgram = Server(
    config=config, transport=UnixDatagramTransport(), handler=Upper, strategy=AsyncIO(loop="asyncio")
)
assert_type(unix_dgram, Server[Datagram[UnixDatagramPeer], None, UnixSockAddr, AsyncIO])
