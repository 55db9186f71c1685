"""PROXY protocol v2 over UDP (``ProxyProtocolDatagramTransport``), for every strategy: the test
client plays the proxy, prepending a header to each datagram; the handler sees the client it
names and its reply goes back to the proxy. Refusals are counted, never served."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import StrategyCase, TransportCase
from typedserve import DatagramHandler, ProxyProtocolDatagramTransport, Server, UDPTransport
from typedserve.aio import AsyncHandler
from typedserve.policies import AllowNetworks
from typedserve.proxy import ProxyHeader, encode_v1, encode_v2
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.requests import Datagram
from typedserve.testing import serve_in_thread
from typedserve.transports.proxied_datagram import ProxiedDatagram

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
CLIENT = ("10.1.2.3", 4444)
SERVER_SIDE = ("10.0.0.1", 53)


def describe(request: Datagram[Any]) -> bytes:
    """Who the handler thinks it serves, as JSON."""
    header: ProxyHeader | None = request.proxy if isinstance(request, ProxiedDatagram) else None
    upstream = request.upstream if isinstance(request, ProxiedDatagram) else None
    return json.dumps(
        {
            "peer": request.peer,
            "upstream": upstream,
            "family": None if header is None else header.family,
            "payload": request.payload.decode(),
        }
    ).encode()


class Whoami(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(describe(self.request))


class WhoamiAsync(AsyncHandler[Datagram, Any]):
    async def handle(self) -> None:
        self.request.reply(describe(self.request))


def make_proxied(
    make_server: MakeServer, strategy_case: StrategyCase, **options: Any
) -> Server[Any, Any]:
    proxy = ProxyProtocolConfig(**options.pop("proxy", {}))
    case = TransportCase(
        "udp", lambda: ProxyProtocolDatagramTransport(UDPTransport()), stream=False
    )
    handler = WhoamiAsync if strategy_case.name == "AsyncIO" else Whoami
    return make_server(case, handler=handler, proxy_protocol=proxy, **options)


def exchange(server: Server[Any, Any], datagram: bytes) -> bytes | None:
    """Send one datagram from 127.0.0.1 (the proxy); the reply, or ``None`` if none came
    before the server drained (it had nothing to say)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as proxy:
        proxy.settimeout(WAIT)
        proxy.sendto(datagram, server.address)
        try:
            return proxy.recv(65_536)
        except TimeoutError:
            return None


def test_the_handler_sees_the_client_and_replies_through_the_proxy(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    with serve_in_thread(make_proxied(make_server, strategy_case)) as server:
        reply = exchange(server, encode_v2("UDP4", CLIENT, SERVER_SIDE) + b"query")
        stats = server.stats()
    assert reply is not None
    answer = json.loads(reply)
    assert answer["peer"] == list(CLIENT)
    assert answer["upstream"][0] == "127.0.0.1"
    assert answer["family"] == "UDP4"
    assert answer["payload"] == "query"
    assert (stats.proxy_refused, stats.errors) == (0, 0)


def test_refused_datagrams_are_counted_and_never_served(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    server = make_proxied(make_server, strategy_case)
    bad = (b"no header", encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"v1", b"\r\n\r\n")
    with serve_in_thread(server), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as proxy:
        proxy.settimeout(WAIT)
        for datagram in bad:
            proxy.sendto(datagram, server.address)
        # A good one after the bad ones: its reply is the first and only one.
        proxy.sendto(encode_v2("UDP4", CLIENT, SERVER_SIDE) + b"good", server.address)
        assert json.loads(proxy.recv(65_536))["payload"] == "good"
    stats = server.stats()  # after the stop: every request has ended
    assert stats.proxy_refused == 3
    assert (stats.accepted, stats.in_flight, stats.errors) == (4, 0, 0)  # each ended once


def test_the_access_policy_applies_to_the_relayed_client(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    server = make_proxied(make_server, strategy_case, verify_request=AllowNetworks(["10.1.0.0/16"]))
    with serve_in_thread(server), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as proxy:
        proxy.settimeout(WAIT)
        proxy.sendto(encode_v2("UDP4", ("192.0.2.9", 1), SERVER_SIDE) + b"out", server.address)
        proxy.sendto(encode_v2("UDP4", CLIENT, SERVER_SIDE) + b"in", server.address)
        assert json.loads(proxy.recv(65_536))["payload"] == "in"
    stats = server.stats()  # after the stop: every request has ended
    assert (stats.refused, stats.in_flight) == (1, 0)


def test_optional_mode_serves_a_datagram_without_a_header_as_is(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    server = make_proxied(make_server, strategy_case, proxy={"mode": "optional"})
    with serve_in_thread(server):
        reply = exchange(server, b"plain")
    assert reply is not None
    answer = json.loads(reply)
    assert answer["peer"][0] == "127.0.0.1"
    assert answer["family"] is None
    assert answer["payload"] == "plain"


def test_a_config_without_version_2_is_an_error(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    with pytest.raises(Exception, match="datagrams carry version 2 headers only"):
        make_proxied(make_server, strategy_case, proxy={"versions": [1]})
