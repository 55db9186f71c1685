"""AsyncIO serving over real loopback sockets: echo, context, errors, limits, loop selection."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from typedserve import Datagram, InetAddress, Limits, Server, ServerConfig, TCPTransport
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.errors import TypedServeError
from typedserve.strategies import AsyncIO
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.aio.conftest import MakeAioServer
    from tests.conftest import TransportCase

pytestmark = pytest.mark.timeout(20)

WAIT = 5.0


class LineEcho(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        async for line in self.request:
            self.request.write(line)
            await self.request.drain()


class ChunkEcho(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        while data := await self.request.read(65536):
            self.request.write(data)
            await self.request.drain()


class UpperDatagram(AsyncHandler[Datagram]):
    async def handle(self) -> None:
        self.request.reply(self.request.payload.upper())


def read_line(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_stream_echo_over_every_stream_transport(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    server = aio_server(stream_case, ChunkEcho)
    with serve_in_thread(server), connect(server) as one, connect(server) as two:
        one.sendall(b"first\n")
        two.sendall(b"second\n")
        assert read_line(two) == b"second\n"
        assert read_line(one) == b"first\n"
        big = b"x" * 3_000_000  # past the read and write buffers' high-water marks
        sender = threading.Thread(target=one.sendall, args=(big,))
        sender.start()
        received = bytearray()
        while len(received) < len(big):
            received += one.recv(1 << 20)
        sender.join(WAIT)
        assert received == big


def test_datagram_reply_over_every_datagram_transport(
    aio_server: MakeAioServer, datagram_case: TransportCase
) -> None:
    server = aio_server(datagram_case, UpperDatagram)
    with serve_in_thread(server), connect(server) as client:
        for word in (b"one", b"two", b"three"):
            client.send(word)
            assert client.recv(100) == word.upper()


@dataclass
class Seen:
    contexts: list[Any] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)


class Introspect(AsyncHandler[AsyncStream, Seen]):
    speaks_first = True  # the test waits for it to start before sending

    async def handle(self) -> None:
        self.state.contexts.append(self.context)
        self.state.loops.append(type(asyncio.get_running_loop()).__module__)
        self.request.write(repr((self.request.peer, self.request.local)).encode() + b"\n")


def test_handlers_get_the_typed_context_and_peer(
    aio_server: MakeAioServer, stream_case: TransportCase, loop_name: str
) -> None:
    seen = Seen()
    server = aio_server(stream_case, Introspect, state=seen)
    with serve_in_thread(server), connect(server) as client:
        reply = read_line(client)
        assert reply == repr((client.getsockname(), client.getpeername())).encode() + b"\n"
    (context,) = seen.contexts
    assert context.state is seen
    assert context.config is server.config
    assert context.address == server.address
    assert seen.loops == ["uvloop" if loop_name == "uvloop" else "asyncio.unix_events"]


class FailOnBoom(AsyncHandler[AsyncStream]):
    async def handle(self) -> None:
        line = await self.request.readline()
        if line == b"boom\n":
            raise ValueError("boom")
        self.request.write(line)


def test_handler_errors_are_logged_with_the_peer_and_serving_goes_on(
    aio_server: MakeAioServer, stream_case: TransportCase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="typedserve.server")
    server = aio_server(stream_case, FailOnBoom)
    with serve_in_thread(server):
        with connect(server) as client:
            client.sendall(b"boom\n")
            assert client.recv(100) == b""  # the server closed the failed request
            peer = client.getsockname()
        with connect(server) as client:
            client.sendall(b"fine\n")
            assert read_line(client) == b"fine\n"
        assert server.stats().errors == 1
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    if isinstance(peer, tuple):
        assert str(peer[1]) in record.getMessage()


class RecordingDatagram(AsyncHandler[Datagram, list[int]]):
    async def handle(self) -> None:
        if self.request.payload == b"boom":
            raise RuntimeError("boom")
        self.state.append(len(self.request.payload))
        self.request.reply(b"ok")


def test_oversized_datagrams_are_dropped_and_counted(
    aio_server: MakeAioServer, datagram_case: TransportCase
) -> None:
    sizes: list[int] = []
    server = aio_server(
        datagram_case, RecordingDatagram, state=sizes, limits=Limits(max_datagram_size=10)
    )
    with serve_in_thread(server), connect(server) as client:
        client.send(b"x" * 11)
        client.send(b"boom")
        client.send(b"y" * 10)
        assert client.recv(100) == b"ok"
        assert sizes == [10]
        stats = server.stats()
        assert (stats.truncated, stats.errors) == (1, 1)


def test_oversized_datagrams_are_flagged_when_configured(
    aio_server: MakeAioServer, datagram_case: TransportCase
) -> None:
    class Flag(AsyncHandler[Datagram]):
        async def handle(self) -> None:
            self.request.reply(b"%d %d" % (self.request.truncated, len(self.request.payload)))

    limits = Limits(max_datagram_size=4, truncated="flag")
    server = aio_server(datagram_case, Flag, limits=limits)
    with serve_in_thread(server), connect(server) as client:
        client.send(b"123456")
        assert client.recv(100) == b"1 4"


class HoldUntilLine(AsyncHandler[AsyncStream, threading.Event]):
    speaks_first = True  # the test waits for it to start before sending

    async def handle(self) -> None:
        self.state.set()
        self.request.write(await self.request.readline())


def test_max_in_flight_with_reject_turns_the_next_client_away(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    started = threading.Event()
    limits = Limits(max_in_flight=1, overload="reject")
    server = aio_server(stream_case, HoldUntilLine, state=started, limits=limits)
    with serve_in_thread(server), connect(server) as first:
        assert started.wait(WAIT)
        with connect(server) as second:
            assert second.recv(100) == b""  # turned away: closed without a reply
        first.sendall(b"done\n")
        assert read_line(first) == b"done\n"
        stats = server.stats()
        assert (stats.accepted, stats.rejected) == (2, 1)


def test_max_in_flight_with_pause_serves_the_next_client_afterwards(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    started = threading.Event()
    server = aio_server(stream_case, HoldUntilLine, state=started, limits=Limits(max_in_flight=1))
    with serve_in_thread(server), connect(server) as first:
        assert started.wait(WAIT)
        started.clear()
        with connect(server) as second:
            second.sendall(b"second\n")
            first.sendall(b"first\n")
            assert read_line(first) == b"first\n"
            assert read_line(second) == b"second\n"
        assert server.stats().rejected == 0


def test_handle_request_is_refused_for_a_loop_owner(aio_server: MakeAioServer) -> None:
    from tests.conftest import STREAM_CASES

    server = aio_server(STREAM_CASES[0], LineEcho)
    with pytest.raises(TypeError, match="serve_forever"):
        server.handle_request(0.01)


def test_uvloop_required_but_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes ``import uvloop`` fail
    with pytest.raises(TypedServeError, match=r"typedserve\[uvloop\]"):
        AsyncIO(loop="uvloop")
    auto = AsyncIO(loop="auto")
    server = Server(
        config=ServerConfig(address=InetAddress()),
        transport=TCPTransport(),
        handler=LineEcho,
        strategy=auto,
    )
    seen: list[str] = []

    class Which(AsyncHandler[AsyncStream]):
        speaks_first = True  # the test waits for it to start before sending

        async def handle(self) -> None:
            seen.append(type(asyncio.get_running_loop()).__module__)

    server.close()
    server = Server(
        config=ServerConfig(address=InetAddress()),
        transport=TCPTransport(),
        handler=Which,
        strategy=AsyncIO(loop="auto"),
    )
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(10) == b""
    assert seen == ["asyncio.unix_events"]
