"""TLS typing, the right way round: no line may get an error."""

from __future__ import annotations

from typing import assert_type

from typedserve import (
    InetSockAddr,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    ThreadPool,
    TLSInfo,
    TLSStreamRequest,
    TLSTransport,
    UnixSockAddr,
    UnixStreamTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.strategies import AsyncIO


class Version(StreamHandler):
    def handle(self) -> None:
        tls = self.request.tls
        self.wfile.write(b"plain" if tls is None else tls.version.encode())


class AsyncVersion(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        tls = self.request.tls
        self.request.write(b"plain" if tls is None else tls.cipher.encode())


tcp = TLSTransport(TCPTransport())
assert_type(tcp, TLSTransport[InetSockAddr])
unix = TLSTransport(UnixStreamTransport())
assert_type(unix.address, UnixSockAddr)

server = Server(config=ServerConfig(), transport=tcp, handler=Version, strategy=ThreadPool())
assert_type(server, Server[TLSStreamRequest[InetSockAddr], None, InetSockAddr, ThreadPool])
plain_view: Server[StreamRequest[InetSockAddr], None] = server  # a TLS server is a stream server
aio = Server(config=ServerConfig(), transport=unix, handler=AsyncVersion, strategy=AsyncIO())


def negotiated(request: TLSStreamRequest[InetSockAddr]) -> TLSInfo:
    return request.tls  # never None on a TLS request
