"""Datagram services: replies only when asked, oversized datagrams dropped or flagged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import pytest

from typedserve import DatagramHandler, Limits
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.conftest import MakeServer, TransportCase

pytestmark = pytest.mark.timeout(10)


class EchoUnlessSilent(DatagramHandler):
    """Echoes a datagram, except ``silent`` (no reply at all) and ``empty`` (an empty reply)."""

    def handle(self) -> None:
        payload = self.rfile.read()
        if payload == b"empty":
            self.request.reply(b"")
        elif payload != b"silent":
            self.wfile.write(b"echo:" + payload)


def test_no_reply_unless_the_handler_writes_one(
    datagram_case: TransportCase, strategy_name: str, make_server: MakeServer
) -> None:
    server = make_server(datagram_case, EchoUnlessSilent, strategy=strategy_name)
    with serve_in_thread(server), connect(server) as client:
        client.send(b"silent")
        client.send(b"empty")
        assert client.recv(100) == b""  # the explicit empty reply
        client.send(b"after")
        # Had "silent" produced an (empty) reply, it would arrive before this one.
        assert client.recv(100) == b"echo:after"
    assert server.stats().accepted == 3


class Describe(DatagramHandler):
    def handle(self) -> None:
        flag = b"T" if self.request.truncated else b"-"
        self.wfile.write(flag + b":" + self.request.payload)


def test_oversized_datagram_is_dropped_logged_and_counted(
    datagram_case: TransportCase,
    make_server: MakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="typedserve.transport")
    limits = Limits(max_datagram_size=8, truncated="drop")
    server = make_server(datagram_case, Describe, limits=limits)
    with serve_in_thread(server), connect(server) as client:
        client.send(b"123456789")  # one byte too many
        client.send(b"12345678")  # exactly the limit
        assert client.recv(100) == b"-:12345678"
    stats = server.stats()
    assert (stats.truncated, stats.accepted) == (1, 1)
    [record] = [r for r in caplog.records if r.name == "typedserve.transport"]
    assert "max_datagram_size=8" in record.getMessage()


def test_oversized_datagram_is_delivered_flagged(
    datagram_case: TransportCase, make_server: MakeServer
) -> None:
    limits = Limits(max_datagram_size=8, truncated="flag")
    server = make_server(datagram_case, Describe, limits=limits)
    with serve_in_thread(server), connect(server) as client:
        client.send(b"0123456789abcdef")
        assert client.recv(100) == b"T:01234567"
        client.send(b"01234567")
        assert client.recv(100) == b"-:01234567"
    assert server.stats().truncated == 1


def test_large_datagram_within_the_default_limit_arrives_whole(
    cases: dict[str, TransportCase], make_server: MakeServer
) -> None:
    server = make_server(cases["udp4"], Describe)
    payload = bytes(range(256)) * 200  # 51,200 bytes: below 65,507
    with serve_in_thread(server), connect(server) as client:
        client.send(payload)
        assert client.recv(65_536) == b"-:" + payload


@pytest.mark.parametrize("truncated", ["drop", "flag"])
def test_limit_above_64_kib_is_enforced_too(
    cases: dict[str, TransportCase], make_server: MakeServer, truncated: Literal["drop", "flag"]
) -> None:
    # Unix datagrams may exceed UDP's 64 KiB; limits this large read through a reused buffer.
    limits = Limits(max_datagram_size=100_000, truncated=truncated)
    server = make_server(cases["unix-dgram"], Describe, limits=limits)
    payload = bytes(range(256)) * 400  # 102,400 bytes
    with serve_in_thread(server), connect(server) as client:
        client.send(payload)
        if truncated == "flag":
            assert client.recv(200_000) == b"T:" + payload[:100_000]
        client.send(payload[:100_000])
        assert client.recv(200_000) == b"-:" + payload[:100_000]
    assert server.stats().truncated == 1
