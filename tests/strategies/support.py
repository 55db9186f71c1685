"""Support of the strategy conformance suite: strategy cases, transports, a cross-process gate.

Each :class:`StrategyCase` says how to build a strategy with test-sized arguments, how many
requests it can run at once, and which handler serves each transport kind. A strategy with
its own handler flavour (e.g. ``AsyncIO`` with async handlers) joins the suite by adding a case
whose ``stream_handler``/``datagram_handler`` speak the same command protocol:

- ``echo:<text>`` replies ``<text>``;
- ``boom`` raises ``RuntimeError`` (no reply);
- ``gate`` connects to the :class:`Gate` (address in ``state``), sends ``started <pid>``, waits
  for ``go`` and replies ``done``;
- ``hold`` (stream only) sends ``started <pid>`` to the gate, then blocks reading the client
  connection until it is cut, and replies nothing;
- ``pid`` replies the pid of the process serving it.

Stream requests are one line (``\\n``-terminated), replies one line; datagrams carry the
command and the reply as the whole payload. Each case also names a ``framed_handler``: the
same protocol on keep-alive connections, one line per request, for handlers whose
connections wait in the server's loop between requests (``framing = Lines()``; an async
handler waits on its event loop instead, holding no thread either). The gate works across
processes, so forked and prefork handlers are observed exactly like threads, without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from typedserve import (
    AsyncIO,
    Datagram,
    DatagramHandler,
    ForkPerRequest,
    Inline,
    Prefork,
    StreamHandler,
    TCPTransport,
    ThreadPerRequest,
    ThreadPool,
    UDPTransport,
    UnixStreamTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.framing import Lines
from typedserve.strategies.base import Strategy

WAIT = 10.0
"""The bound on every wait in the suite (a hang fails the test instead of blocking the run)."""


# -- the cross-process gate ------------------------------------------------------------------


class Gate:
    """A loopback listener that handlers report to and wait on, from any process."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.address: tuple[str, int] = self.listener.getsockname()
        self.held: list[tuple[socket.socket, int]] = []

    def wait_started(self, count: int) -> list[int]:
        """Wait for ``count`` more handlers to report; return their pids."""
        pids = []
        for _ in range(count):
            conn, _ = self.listener.accept()
            conn.settimeout(WAIT)
            words = conn.recv(100).split()
            assert words[0] == b"started", words
            self.held.append((conn, int(words[1])))
            pids.append(int(words[1]))
        return pids

    def wait_ended(self) -> None:
        """Wait until every held ``hold`` handler has returned (its gate connection closes)."""
        for conn, pid in self.held:
            assert conn.recv(10) == b"", f"the hold handler in {pid} sent something"
            conn.close()
        self.held = []

    def release(self) -> None:
        """Let every held ``gate`` handler reply."""
        for conn, _ in self.held:
            with contextlib.suppress(OSError):  # its handler is gone (cut, or worker killed)
                conn.sendall(b"go")
            conn.close()
        self.held = []

    def close(self) -> None:
        """Release what is held and stop listening."""
        self.release()
        self.listener.close()


def report_to_gate(address: tuple[str, int]) -> socket.socket:
    """Connect to the gate and say ``started <pid>`` (handler side)."""
    conn = socket.create_connection(address, timeout=WAIT)
    conn.sendall(b"started %d" % os.getpid())
    return conn


def run_command(command: bytes, state: dict[str, Any]) -> bytes:
    """The shared part of the command protocol; returns the reply."""
    if command.startswith(b"echo:"):
        return command[5:]
    if command == b"boom":
        raise RuntimeError("boom, as the test asked")
    if command == b"gate":
        with report_to_gate(state["gate"]) as conn:
            conn.recv(10)
        return b"done"
    if command == b"pid":
        return b"%d" % os.getpid()
    raise ValueError(f"unknown command {command!r}")


class CommandStream(StreamHandler[dict[str, Any]]):
    """The command protocol over a stream: one line in, one line out."""

    def handle(self) -> None:
        command = self.rfile.readline().strip()
        if command == b"hold":
            with report_to_gate(self.state["gate"]):
                self.rfile.read()  # until the connection is cut (or the client leaves)
            return
        self.wfile.write(run_command(command, self.state) + b"\n")


FRAME_LIMIT = 1024
"""The longest line :class:`FramedCommandStream` accepts, newline included."""


class FramedCommandStream(StreamHandler[dict[str, Any]]):
    """The command protocol with ``framing = Lines()``: the server's loop reads each line (and
    holds the connection, with no worker, until one is complete), one handler per line, and
    the connection stays open for the next."""

    framing = Lines(max_length=FRAME_LIMIT)

    def handle(self) -> None:
        command = self.rfile.readline().strip()
        self.wfile.write(run_command(command, self.state) + b"\n")


class CommandDatagram(DatagramHandler[dict[str, Any]]):
    """The command protocol over datagrams: the payload in, the reply out."""

    def handle(self) -> None:
        self.wfile.write(run_command(self.rfile.read(), self.state))


async def _gate_async(address: tuple[str, int]) -> None:
    """The async ``gate`` command: report to the gate, wait for its go."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"started %d" % os.getpid())
        await writer.drain()
        await reader.read(10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run_command_async(command: bytes, state: dict[str, Any]) -> bytes:
    """:func:`run_command` for async handlers (the gate is awaited, never blocked on)."""
    if command == b"gate":
        await _gate_async(state["gate"])
        return b"done"
    return run_command(command, state)


class CommandAsyncStream(AsyncHandler[AsyncStream, dict[str, Any]]):
    """The command protocol over a stream, as an async handler."""

    async def handle(self) -> None:
        stream = self.request
        command = (await stream.readline()).strip()
        if command == b"hold":
            _, writer = await asyncio.open_connection(*self.state["gate"])
            try:
                writer.write(b"started %d" % os.getpid())
                await writer.drain()
                while await stream.read(65536):  # until the connection is cut
                    pass
            finally:
                writer.close()
            return
        stream.write(await run_command_async(command, self.state) + b"\n")
        await stream.drain()


class CommandAsyncLines(AsyncHandler[AsyncStream, dict[str, Any]]):
    """The command protocol on a keep-alive connection, one line per request, as an async
    handler (the async counterpart of :class:`FramedCommandStream`: async handlers declare
    no framing, and a connection waiting for its next line costs no thread)."""

    async def handle(self) -> None:
        stream = self.request
        while command := (await stream.readline()).strip():
            stream.write(await run_command_async(command, self.state) + b"\n")
            await stream.drain()


class CommandAsyncDatagram(AsyncHandler[Datagram, dict[str, Any]]):
    """The command protocol over datagrams, as an async handler."""

    async def handle(self) -> None:
        self.request.reply(await run_command_async(self.request.payload, self.state))


# -- strategy cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyCase:
    """One strategy configuration under test."""

    name: str
    make: Callable[[], Strategy]
    concurrency: int
    """Requests it runs at once (the suite holds this many in flight)."""
    in_process: bool = True
    stream_handler: Any = CommandStream
    datagram_handler: Any = CommandDatagram
    framed_handler: Any = FramedCommandStream

    def __str__(self) -> str:
        return self.name


STRATEGY_CASES = [
    StrategyCase("Inline", Inline, 1),
    StrategyCase("ThreadPerRequest", ThreadPerRequest, 3),
    StrategyCase("ThreadPool", lambda: ThreadPool(max_workers=3, max_pending=2), 3),
    StrategyCase("ForkPerRequest", lambda: ForkPerRequest(max_children=3), 3, in_process=False),
    StrategyCase("Prefork", lambda: Prefork(workers=2, threads_per_worker=2), 4, in_process=False),
    StrategyCase(
        "AsyncIO",
        lambda: cast(Strategy, AsyncIO(loop="asyncio")),  # owns the loop: no submit()
        4,
        stream_handler=CommandAsyncStream,
        datagram_handler=CommandAsyncDatagram,
        framed_handler=CommandAsyncLines,
    ),
]


@dataclass(frozen=True)
class TransportCase:
    """A transport kind and how to address it."""

    name: str
    transport: Callable[[], Any]
    stream: bool

    def __str__(self) -> str:
        return self.name


TRANSPORT_CASES = [
    TransportCase("tcp", TCPTransport, True),
    TransportCase("udp", UDPTransport, False),
    TransportCase("unix", UnixStreamTransport, True),
]
