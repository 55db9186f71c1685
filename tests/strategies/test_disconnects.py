"""Network events are not handler bugs, in every strategy.

A peer that resets its connection mid-request, or a handler write that finds the connection
closed (``BrokenPipeError``, e.g. after a drain cut the request), is counted in
``stats().disconnects`` and logged as one INFO line naming the peer, with no traceback; a
handler that raises anything else (here ``ValueError``) is still an ERROR with its traceback,
counted in ``errors``.

The log is read from a file: forked children and prefork workers log in their own processes
(they keep the handler's file), so an in-memory capture in the test process would miss them.
Stats are read after the server closed, which waits for every process serving it.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import (
    TRANSPORT_CASES,
    WAIT,
    CommandAsyncStream,
    Gate,
    StrategyCase,
    report_to_gate,
)
from typedserve import (
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    ThreadPerRequest,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.policies import log_disconnect
from typedserve.testing import LeakCheck, connect, serve_in_thread
from typedserve.testing.hostile import resetting_client

pytestmark = pytest.mark.timeout(60)

TCP = next(case for case in TRANSPORT_CASES if case.name == "tcp")
DISCONNECTED = "ended during its request"
"""What the one INFO line of a disconnect says (with the peer and the error)."""


# -- the log of every process ------------------------------------------------------------------


class _JsonLines(logging.Formatter):
    """One JSON object per record: a traceback stays inside its record's line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "level": record.levelno,
                "message": record.getMessage(),
                "traceback": self.formatException(record.exc_info) if record.exc_info else None,
                "pid": record.process,
            }
        )


@dataclass(frozen=True)
class Record:
    """One record of ``typedserve.server``, from whichever process logged it."""

    level: int
    message: str
    traceback: str | None
    pid: int


class ServerLog:
    """The records ``typedserve.server`` wrote to a file, from every process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[Record]:
        """Every record so far."""
        return [Record(**json.loads(line)) for line in self.path.read_text().splitlines()]

    def disconnects(self) -> list[Record]:
        """The records of disconnects."""
        return [record for record in self.records() if DISCONNECTED in record.message]

    def errors(self) -> list[Record]:
        """The records at ERROR or above."""
        return [record for record in self.records() if record.level >= logging.ERROR]


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[ServerLog]:
    """``typedserve.server`` at INFO into a file (set up before the leak check's baseline)."""
    path = tmp_path / "server.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(_JsonLines())
    log = logging.getLogger("typedserve.server")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield ServerLog(path)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


def described(peer: Any) -> str:
    """How the server's log names a TCP peer."""
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- handlers: tell the gate they run, then meet the network event ------------------------------


class ReadsAfterStarting(StreamHandler[dict[str, Any]]):
    """Says ``started`` to the gate, then reads a line the client never completes (the line
    ``bug`` raises ``ValueError``)."""

    def setup(self) -> None:
        report_to_gate(self.state["gate"]).close()

    def handle(self) -> None:
        line = self.rfile.readline()
        if line == b"bug\n":
            raise ValueError("a bug, as the test asked")
        self.wfile.write(b"got " + line)


class AsyncReadsAfterStarting(AsyncHandler[AsyncStream, dict[str, Any]]):
    """:class:`ReadsAfterStarting` as an async handler."""

    async def setup(self) -> None:
        _, writer = await asyncio.open_connection(*self.state["gate"])
        writer.write(b"started %d" % os.getpid())
        await writer.drain()
        writer.close()

    async def handle(self) -> None:
        line = await self.request.readline()
        self.request.write(b"got " + line)
        await self.request.drain()


class WritesAfterTheCut(StreamHandler[dict[str, Any]]):
    """Reads ``hold``, says ``started`` to the gate, reads until its connection is cut (a
    drain's deadline), then writes: the connection is shut down, the write breaks the pipe."""

    def handle(self) -> None:
        self.rfile.readline()
        report_to_gate(self.state["gate"]).close()
        self.rfile.read()  # b"" once the drain cut the connection
        self.wfile.write(b"too late\n")


class WritesForever(StreamHandler[dict[str, Any]]):
    """Reads its line, says ``started`` to the gate, then writes until the peer is gone."""

    def handle(self) -> None:
        self.rfile.readline()
        report_to_gate(self.state["gate"]).close()
        chunk = b"x" * 65_536
        while True:
            self.wfile.write(chunk)


class AsyncWritesForever(AsyncHandler[AsyncStream, dict[str, Any]]):
    """:class:`WritesForever` as an async handler, with no suspension of its own.

    The event loop reports a lost connection to the stream with a callback
    (``connection_lost``), and ``drain`` does not suspend while the write buffer is below its
    high-water mark; ``drain`` suspends once when the transport is closing, so the handler
    sees the loss instead of spinning (with the event loop, the whole server) forever.
    """

    async def handle(self) -> None:
        await self.request.readline()
        _, writer = await asyncio.open_connection(*self.state["gate"])
        writer.write(b"started %d" % os.getpid())
        await writer.drain()
        writer.close()
        chunk = b"x" * 65_536
        while True:  # no suspension of its own: drain must see the loss (it once spun here)
            self.request.write(chunk)
            await self.request.drain()


def _is_async(strategy_case: StrategyCase) -> bool:
    return strategy_case.stream_handler is CommandAsyncStream


# -- the tests -----------------------------------------------------------------------------------


def test_a_peer_resetting_mid_request_is_a_disconnect_not_an_error(
    server_log: ServerLog, make_server: MakeServer, gate: Gate, strategy_case: StrategyCase
) -> None:
    handler = AsyncReadsAfterStarting if _is_async(strategy_case) else ReadsAfterStarting
    server = make_server(TCP, handler=handler)
    with serve_in_thread(server):
        peer = resetting_client(server.address, b"echo:partial")  # no newline: mid-request
        gate.wait_started(1)  # its handler runs: the server's close waits for it to end
    stats = server.stats()
    assert (stats.disconnects, stats.errors, stats.in_flight) == (1, 0, 0)
    assert server_log.errors() == []
    [record] = server_log.disconnects()
    assert record.level == logging.INFO
    assert record.traceback is None
    assert described(peer) in record.message
    assert "ConnectionResetError" in record.message


@pytest.mark.parametrize("transport_name", ["tcp", "unix"])
def test_a_write_to_a_peer_that_left_is_a_disconnect(
    server_log: ServerLog,
    make_server: MakeServer,
    gate: Gate,
    strategy_case: StrategyCase,
    transport_name: str,
) -> None:
    # The handler writes until the peer is gone: a write fails with ECONNRESET (the client
    # reset it, or closed a Unix socket with our data unread) or EPIPE, as the kernel says.
    handler = AsyncWritesForever if _is_async(strategy_case) else WritesForever
    transport = next(case for case in TRANSPORT_CASES if case.name == transport_name)
    server = make_server(transport, handler=handler)
    with serve_in_thread(server):
        client = connect(server, timeout=WAIT)
        with client:
            client.sendall(b"flood\n")
            gate.wait_started(1)
            peer = client.getsockname()
            if transport_name == "tcp":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stats = server.stats()
    assert (stats.disconnects, stats.errors, stats.in_flight) == (1, 0, 0)
    assert server_log.errors() == []
    [record] = server_log.disconnects()
    assert record.level == logging.INFO
    assert record.traceback is None
    if transport_name == "tcp":
        assert described(peer) in record.message
    assert "ConnectionResetError" in record.message or "BrokenPipeError" in record.message


def test_a_write_after_the_drain_cut_the_request_is_a_disconnect(
    server_log: ServerLog, make_server: MakeServer, gate: Gate, strategy_case: StrategyCase
) -> None:
    if _is_async(strategy_case):
        pytest.skip("AsyncIO cancels a handler at the drain's deadline: it writes nothing after")
    if strategy_case.name == "ForkPerRequest":
        pytest.skip("ForkPerRequest stops a request's child at the drain's deadline (SIGTERM)")
    server = make_server(TCP, handler=WritesAfterTheCut)
    with serve_in_thread(server), connect(server, timeout=WAIT) as client:
        client.sendall(b"hold\n")
        gate.wait_started(1)
        report = server.close(grace=0.1)  # cuts the handler reading: it then writes
        assert report is not None and report.cut == 1
        assert client.recv(100) == b""  # nothing reached the client after the cut
    stats = server.stats()
    assert (stats.disconnects, stats.errors) == (1, 0)
    assert server_log.errors() == []
    [record] = server_log.disconnects()
    assert record.level == logging.INFO
    assert record.traceback is None
    assert "BrokenPipeError" in record.message


def test_a_handler_bug_is_still_an_error_with_its_traceback(
    server_log: ServerLog, make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    server = make_server(TCP)
    with serve_in_thread(server), connect(server, timeout=WAIT) as client:
        client.sendall(b"no-such-command\n")  # the command handlers raise ValueError
        peer = client.getsockname()
        assert client.recv(100) == b""  # closed with no reply
    stats = server.stats()
    assert (stats.errors, stats.disconnects) == (1, 0)
    assert server_log.disconnects() == []
    [record] = server_log.errors()
    assert record.level == logging.ERROR
    assert record.message == f"error while handling a request from {described(peer)}"
    assert record.traceback is not None
    assert "ValueError: unknown command b'no-such-command'" in record.traceback


def test_a_disconnect_does_not_reach_the_error_policy(
    server_log: ServerLog, typedserve_leak_check: LeakCheck, gate: Gate
) -> None:
    # The leak check comes before the gate: the gate (and what it holds) closes before it.
    reported: list[BaseException] = []
    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=ReadsAfterStarting,
        strategy=ThreadPerRequest(),
        state={"gate": gate.address},
        handle_error=lambda exc, peer: reported.append(exc),
    )
    with serve_in_thread(server):
        resetting_client(server.address, b"echo:partial")
        gate.wait_started(1)
        with connect(server, timeout=WAIT) as client:  # a bug still reaches it
            client.sendall(b"bug\n")
            assert client.recv(100) == b""
    assert [type(exc) for exc in reported] == [ValueError]
    assert (server.stats().disconnects, server.stats().errors) == (1, 1)
    assert server_log.errors() == []  # this error policy logs nothing


@pytest.mark.parametrize(
    ("exc", "peer", "line"),
    [
        (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
            ("127.0.0.1", 5000),
            "connection from 127.0.0.1:5000 ended during its request: "
            "ConnectionResetError: Connection reset by peer",
        ),
        (
            BrokenPipeError(errno.EPIPE, "Broken pipe"),
            ("::1", 5000, 0, 0),
            "connection from [::1]:5000 ended during its request: BrokenPipeError: Broken pipe",
        ),
        (
            ConnectionResetError("the connection to '' is closed"),
            "",
            "connection from an unnamed Unix socket ended during its request: "
            "ConnectionResetError: the connection to '' is closed",
        ),
    ],
)
def test_a_disconnect_is_one_info_line_naming_the_peer(
    caplog: pytest.LogCaptureFixture, exc: OSError, peer: Any, line: str
) -> None:
    with caplog.at_level(logging.INFO, logger="typedserve.server"):
        log_disconnect(exc, peer)
    [record] = caplog.records
    assert (record.levelno, record.name, record.getMessage()) == (
        logging.INFO,
        "typedserve.server",
        line,
    )
    assert record.exc_info is None
