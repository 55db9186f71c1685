"""examples/custom_transport.py: a transport wrapping ``TCPTransport`` serves like it, and turns
a host's connections past its limit away at accept time."""

from __future__ import annotations

import socket

import pytest

from examples.custom_transport import LineEcho, PeerLimitTransport
from typedserve import (
    InetAddress,
    Inline,
    Server,
    ServerConfig,
    StreamRequest,
    ThreadPerRequest,
)
from typedserve.strategies import Strategy
from typedserve.testing import LeakCheck, connect, serve_in_thread

pytestmark = pytest.mark.timeout(10)


def limited_server(transport: PeerLimitTransport, strategy: Strategy) -> Server[StreamRequest]:
    config = ServerConfig(address=InetAddress(host="127.0.0.1", port=0))
    return Server(config=config, transport=transport, handler=LineEcho, strategy=strategy)


def echo(client: socket.socket, line: bytes) -> bytes:
    """Send one line and read the reply up to its newline."""
    client.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = client.recv(100)
        if not chunk:
            break
        reply += chunk
    return reply


def test_a_host_past_its_limit_is_refused_and_the_others_are_served() -> None:
    transport = PeerLimitTransport(limit=2)
    with LeakCheck(), serve_in_thread(limited_server(transport, ThreadPerRequest())) as server:
        with connect(server) as first, connect(server) as second:
            assert echo(first, b"one\n") == b"one\n"
            assert echo(second, b"two\n") == b"two\n"  # both are held by their handlers now
            with connect(server) as third:
                assert third.recv(100) == b""  # closed at accept time: an orderly end
            assert transport.refused == 1
            assert server.stats().accepted == 2  # the refused one never reached the server
            # Another host has a budget of its own (Linux routes all of 127/8 to loopback).
            with socket.socket() as other:
                other.settimeout(5)
                other.bind(("127.0.0.2", 0))
                other.connect(server.address)
                assert echo(other, b"three\n") == b"three\n"
            assert echo(first, b"still\n") == b"still\n"  # the held ones keep being served
        assert transport.refused == 1


def test_a_closed_connection_gives_its_place_back() -> None:
    # Inline closes each request on the loop thread before it accepts the next connection,
    # so the next one is admitted only if the closed one stopped counting.
    transport = PeerLimitTransport(limit=1)
    with serve_in_thread(limited_server(transport, Inline())) as server:
        for n in range(3):
            with connect(server) as client:
                client.sendall(b"ping %d\n" % n)
                client.shutdown(socket.SHUT_WR)
                assert b"".join(iter(lambda: client.recv(100), b"")) == b"ping %d\n" % n
    assert transport.refused == 0


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        PeerLimitTransport(0)
