"""Line-framed handlers on real connections: the loop assembles each line, a worker serves it,
and the connection goes back to the loop between requests.

Every test runs for every strategy of the suite but ``AsyncIO`` (async handlers declare no
framing), over TCP and Unix stream sockets, with the leak check of ``make_server``.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable
from typing import Any

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import FRAME_LIMIT, WAIT, FramedCommandStream, StrategyCase
from tests.strategies.support import TransportCase as SuiteTransport
from typedserve import ForkPerRequest, Limits, Prefork, Server, ThreadPool
from typedserve.strategies.base import Strategy
from typedserve.testing import connect, serve_in_thread

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def framed_strategies_only(strategy_case: StrategyCase) -> None:
    if strategy_case.name == "AsyncIO":
        pytest.skip("async handlers declare no framing")


class Reader:
    """Reads reply lines from one connection, keeping what came after the last line."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.buffer = b""

    def line(self) -> bytes:
        """The next line, without its newline; ``b""`` at EOF (with nothing pending)."""
        while b"\n" not in self.buffer:
            chunk = self.client.recv(4096)
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def ask(self, command: bytes) -> bytes:
        self.client.sendall(command + b"\n")
        return self.line()


def framed_server(
    make_server: MakeServer, case: SuiteTransport, **options: Any
) -> Server[Any, Any]:
    return make_server(case, handler=FramedCommandStream, **options)


def test_pipelined_lines_are_answered_in_order(
    make_server: MakeServer, stream_case: SuiteTransport
) -> None:
    server = framed_server(make_server, stream_case)
    with serve_in_thread(server), connect(server, timeout=WAIT) as client:
        client.sendall(b"".join(b"echo:%d\n" % index for index in range(50)))
        reader = Reader(client)
        assert [reader.line() for _ in range(50)] == [b"%d" % i for i in range(50)]
        client.shutdown(socket.SHUT_WR)
        assert reader.line() == b""  # the server ends the connection after our EOF


def test_a_line_sent_one_byte_at_a_time_is_answered_once_complete(
    make_server: MakeServer, stream_case: SuiteTransport
) -> None:
    server = framed_server(make_server, stream_case)
    with serve_in_thread(server), connect(server, timeout=WAIT) as client:
        if client.family != socket.AF_UNIX:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in b"echo:trickled":
            client.sendall(bytes([byte]))
            readable, _, _ = select.select([client], [], [], 0)
            assert not readable  # no reply (and no close) for half a line
        assert Reader(client).ask(b"") == b"trickled"


def test_a_line_longer_than_max_length_closes_the_connection_only(
    make_server: MakeServer, stream_case: SuiteTransport
) -> None:
    with serve_in_thread(framed_server(make_server, stream_case)) as server:
        with connect(server, timeout=WAIT) as bystander, connect(server, timeout=WAIT) as client:
            keep = Reader(bystander)
            assert keep.ask(b"echo:before") == b"before"
            client.sendall(b"x" * FRAME_LIMIT)  # no newline within max_length
            assert client.recv(100) == b""  # closed, no reply: no handler saw it
            assert keep.ask(b"echo:after") == b"after"
        with connect(server, timeout=WAIT) as new:
            assert Reader(new).ask(b"echo:new") == b"new"
        stats = server.stats()
    assert stats.errors == 0


ONE_WORKER: dict[str, Callable[[], Strategy]] = {
    "ThreadPool": lambda: ThreadPool(max_workers=1, max_pending=0),
    "ForkPerRequest": lambda: ForkPerRequest(max_children=1),
    "Prefork": lambda: Prefork(workers=1, threads_per_worker=1),
}


def test_keep_alive_connections_take_turns_on_one_worker(
    make_server: MakeServer, strategy_case: StrategyCase, stream_case: SuiteTransport
) -> None:
    """Two keep-alive connections, 40 requests each, alternating, on a server that runs one
    request at a time: each connection goes back to the loop between its requests (it would
    hold the only worker otherwise). With ForkPerRequest each request is a child of its own."""
    one = ONE_WORKER.get(strategy_case.name)
    server = framed_server(
        make_server,
        stream_case,
        limits=Limits(max_in_flight=1),
        strategy=one() if one is not None else None,
    )
    rounds = 40
    with serve_in_thread(server):
        first, second = connect(server, timeout=WAIT), connect(server, timeout=WAIT)
        with first, second:
            readers = [Reader(first), Reader(second)]
            pids = [int(reader.ask(b"pid")) for _ in range(rounds) for reader in readers]
    assert len(pids) == 2 * rounds
    if strategy_case.name == "ForkPerRequest":
        assert len(set(pids)) == len(pids) and os.getpid() not in pids  # a child per request
    elif strategy_case.in_process:
        assert set(pids) == {os.getpid()}
    else:
        assert len(set(pids)) == 1 and os.getpid() not in pids  # the one worker


def test_a_failing_handler_closes_its_own_connection_only(
    make_server: MakeServer, stream_case: SuiteTransport
) -> None:
    with serve_in_thread(framed_server(make_server, stream_case)) as server:
        with connect(server, timeout=WAIT) as failing, connect(server, timeout=WAIT) as other:
            bad, good = Reader(failing), Reader(other)
            assert bad.ask(b"echo:1") == b"1"
            assert good.ask(b"echo:1") == b"1"
            assert bad.ask(b"boom") == b""  # closed without a half-built reply
            assert good.ask(b"echo:2") == b"2"
        with connect(server, timeout=WAIT) as new:
            assert Reader(new).ask(b"echo:new") == b"new"
        stats = server.stats()
    assert stats.errors == 1
