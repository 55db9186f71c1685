"""TLS typing, the wrong way round: each line marked ``# E: <code>`` must get exactly that
error; every other line must get none."""

from __future__ import annotations

from typedserve import (
    DatagramHandler,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    TLSTransport,
    UDPTransport,
)

config = ServerConfig()


class Echo(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


class Version(StreamHandler):
    def handle(self) -> None:
        # request.tls is None on a plain transport: reading it unchecked is an error
        self.wfile.write(self.request.tls.version.encode())  # E: union-attr


# There is no DTLS: a datagram transport cannot be wrapped.
TLSTransport(UDPTransport())  # E: arg-type

# A datagram handler cannot serve a TLS (stream) transport.
Server(config=config, transport=TLSTransport(TCPTransport()), handler=Echo)  # E: arg-type
