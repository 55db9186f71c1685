"""Correct wiring of the core API: mypy --strict must report nothing in this file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from typedserve import (
    AllowNetworks,
    Datagram,
    DatagramHandler,
    InetAddress,
    InetSockAddr,
    Inline,
    Server,
    ServerConfig,
    ServerContext,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    ThreadPerRequest,
    Timeouts,
    UDPTransport,
    UnixAddress,
    UnixDatagramTransport,
    UnixSockAddr,
    UnixStreamTransport,
)
from typedserve.testing import LeakCheck, connect, serve_in_thread


class Echo(StreamHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class Upper(DatagramHandler):
    def handle(self) -> None:
        assert_type(self.request, Datagram)  # Datagram[PeerAddress]: any datagram transport
        self.wfile.write(self.request.payload.upper())


@dataclass
class Counter:
    hits: int = 0


class Counting(StreamHandler[Counter]):
    def handle(self) -> None:
        assert_type(self.request, StreamRequest)
        self.state.hits += 1
        self.wfile.write(b"%d\n" % self.state.hits)


def echo_factory(request: StreamRequest, context: ServerContext[None]) -> Echo:
    return Echo(request, context)


def only_loopback(request: StreamRequest[InetSockAddr]) -> bool:
    return request.peer[0] == "127.0.0.1"


config = ServerConfig(
    address=InetAddress(host="::", port=8000, dual_stack=True), timeouts=Timeouts(idle=30)
)
tcp = Server(config=config, transport=TCPTransport(), handler=Echo)
assert_type(tcp, Server[StreamRequest[InetSockAddr], None, InetSockAddr, Inline])
udp = Server(config=config, transport=UDPTransport(), handler=Upper, strategy=ThreadPerRequest())
assert_type(udp, Server[Datagram[InetSockAddr], None, InetSockAddr, ThreadPerRequest])
unix_config = ServerConfig(address=UnixAddress(path="/tmp/x.sock", mode=0o660))
unix = Server(config=unix_config, transport=UnixStreamTransport(), handler=Echo)
assert_type(unix.address, UnixSockAddr)
unix_dgram = Server(config=unix_config, transport=UnixDatagramTransport(), handler=Upper)
counted = Server(config=config, transport=TCPTransport(), handler=Counting, state=Counter())
assert_type(counted, Server[StreamRequest[InetSockAddr], Counter, InetSockAddr, Inline])
factory = Server(config=config, transport=TCPTransport(), handler=echo_factory)
allowed = Server(
    config=config,
    transport=TCPTransport(),
    handler=Echo,
    verify_request=AllowNetworks(["127.0.0.0/8"]),
)
custom = Server(config=config, transport=TCPTransport(), handler=Echo, verify_request=only_loopback)
udp_allowed = Server(
    config=config,
    transport=UDPTransport(),
    handler=Upper,
    verify_request=AllowNetworks(["::1/128"]),
)

with LeakCheck(), serve_in_thread(counted) as running:
    assert_type(running, Server[StreamRequest[InetSockAddr], Counter, InetSockAddr, Inline])
    with connect(running) as client:
        client.sendall(b"x\n")
