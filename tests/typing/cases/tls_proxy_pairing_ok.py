"""PROXY protocol typing, the right way round (picked up with the TLS cases: both are stream
transport wrappers): no line may get an error."""

from __future__ import annotations

from typing import assert_type

from typedserve import (
    DatagramHandler,
    ProxiedDatagram,
    ProxiedStreamRequest,
    ProxyProtocolDatagramTransport,
    ProxyProtocolTransport,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    ThreadPool,
    TLSStreamRequest,
    TLSTransport,
    UDPTransport,
    UnixStreamTransport,
)
from typedserve.proxy import ProxyAddress, ProxyHeader
from typedserve.requests import InetSockAddr

config = ServerConfig()


class Client(StreamHandler):
    def handle(self) -> None:
        header = self.request.proxy
        assert_type(header, ProxyHeader | None)
        if header is not None:
            self.wfile.write(f"{header.version} {header.authority}\n".encode())


def relayed(request: ProxiedStreamRequest) -> None:
    assert_type(request.peer, ProxyAddress)
    assert_type(request.upstream, ProxyAddress)
    assert_type(request.proxy, ProxyHeader | None)


def relayed_tls(request: TLSStreamRequest[ProxyAddress]) -> None:
    assert_type(request.proxy, ProxyHeader | None)


tcp = ProxyProtocolTransport(TCPTransport())
assert_type(tcp.address, InetSockAddr)
assert_type(tcp.receive(), ProxiedStreamRequest | None)
Server(config=config, transport=tcp, handler=Client, strategy=ThreadPool())
Server(config=config, transport=ProxyProtocolTransport(UnixStreamTransport()), handler=Client)
tls = TLSTransport(ProxyProtocolTransport(TCPTransport()))
assert_type(tls.receive(), TLSStreamRequest[ProxyAddress] | None)
Server(config=config, transport=tls, handler=Client, strategy=ThreadPool())


class Resolver(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


def relayed_datagram(request: ProxiedDatagram) -> None:
    assert_type(request.peer, ProxyAddress)
    assert_type(request.upstream, InetSockAddr)
    assert_type(request.proxy, ProxyHeader | None)


udp = ProxyProtocolDatagramTransport(UDPTransport())
assert_type(udp.receive(), ProxiedDatagram | None)
Server(config=config, transport=udp, handler=Resolver, strategy=ThreadPool())
