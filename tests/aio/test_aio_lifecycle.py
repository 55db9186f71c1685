"""AsyncIO timeouts, graceful drain, immediate shutdown, leaks, and thousands of connections."""

from __future__ import annotations

import asyncio
import resource
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from typedserve import ShutdownConfig, Timeouts
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.testing import LeakCheck, connect, serve_in_thread

if TYPE_CHECKING:
    from tests.aio.conftest import MakeAioServer
    from tests.conftest import TransportCase

WAIT = 5.0


@dataclass
class Probe:
    """What handlers report back to the test thread."""

    started: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    arrived: int = 0
    all_arrived: threading.Event = field(default_factory=threading.Event)
    expected: int = 0


class WaitForLine(AsyncHandler[AsyncStream, Probe]):
    """Signals that it started, echoes one line, signals its close (always)."""

    speaks_first = True  # the test waits for it to start before sending

    async def handle(self) -> None:
        self.state.started.set()
        try:
            self.request.write(await self.request.readline())
        except BaseException as exc:
            self.state.errors.append(exc)
            raise

    async def close(self) -> None:
        self.state.closed.set()


def read_all(client: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := client.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.timeout(20)
def test_idle_timeout_ends_a_waiting_read(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    probe = Probe()
    server = aio_server(stream_case, WaitForLine, state=probe, timeouts=Timeouts(idle=0.1))
    with serve_in_thread(server), connect(server) as client:
        client.sendall(b"partial line without a newline")
        assert read_all(client) == b""  # closed by the server once the read timed out
        assert probe.closed.wait(WAIT)
        assert [type(e) for e in probe.errors] == [TimeoutError]
        assert "timeouts.idle" in str(probe.errors[0])
        assert server.stats().errors == 1


@pytest.mark.timeout(20)
def test_request_deadline_ends_the_request(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    probe = Probe()
    server = aio_server(stream_case, WaitForLine, state=probe, timeouts=Timeouts(request=0.1))
    with serve_in_thread(server), connect(server) as client:
        client.sendall(b"x")
        assert read_all(client) == b""
        assert probe.closed.wait(WAIT)
        assert "timeouts.request" in str(probe.errors[0])


class WaitForFirstByte(WaitForLine):
    speaks_first = False  # held until the client sends (timeouts.first_byte)


@pytest.mark.timeout(20)
def test_silent_clients_are_closed_before_the_handler_runs(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    probe = Probe()
    server = aio_server(
        stream_case, WaitForFirstByte, state=probe, timeouts=Timeouts(first_byte=0.1)
    )
    with serve_in_thread(server):
        with connect(server) as silent:
            assert read_all(silent) == b""
        assert not probe.started.is_set()
        assert server.stats().slow_clients == 1
        with connect(server) as talker:  # one that speaks in time is served
            talker.sendall(b"hi\n")
            assert read_all_line(talker) == b"hi\n"


def read_all_line(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and (chunk := client.recv(100)):
        data += chunk
    return data


@pytest.mark.timeout(20)
def test_graceful_drain_lets_requests_in_flight_finish(
    aio_server: MakeAioServer, stream_case: TransportCase
) -> None:
    probe = Probe()
    server = aio_server(stream_case, WaitForLine, state=probe)
    with connect(server) as client:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        assert server.wait_serving(WAIT)
        assert probe.started.wait(WAIT)
        server.shutdown()  # the loop stops; the request is still in flight
        thread.join(WAIT)
        client.sendall(b"finish me\n")  # arrives while nothing runs the loop
        report = server.close(grace=WAIT)  # the drain runs the loop again, on this thread
        assert read_all(client) == b"finish me\n"
    assert report is not None
    assert (report.completed, report.cut) == (1, 0)
    assert probe.errors == []


@pytest.mark.timeout(20)
@pytest.mark.parametrize("grace", [0.0, 0.1])
def test_requests_still_running_at_the_deadline_are_cut(
    aio_server: MakeAioServer, stream_case: TransportCase, grace: float
) -> None:
    probe = Probe()
    server = aio_server(stream_case, WaitForLine, state=probe)
    with connect(server) as client:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        assert probe.started.wait(WAIT)
        report = server.close(grace=grace)  # from another thread: stops the loop, then drains
        thread.join(WAIT)
        assert read_all(client) == b""
    assert report is not None
    assert (report.completed, report.cut) == (0, 1)
    assert probe.closed.is_set()  # the handler's close ran after the cancel
    assert [type(e) for e in probe.errors] == [asyncio.CancelledError]


@pytest.mark.timeout(20)
def test_immediate_shutdown_of_an_idle_server(aio_server: MakeAioServer) -> None:
    from tests.conftest import STREAM_CASES

    server = aio_server(STREAM_CASES[0], WaitForLine, state=Probe())
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    assert server.wait_serving(WAIT)
    server.shutdown()
    thread.join(WAIT)
    assert not thread.is_alive()
    report = server.close()
    assert report is not None and (report.completed, report.cut) == (0, 0)


@pytest.mark.timeout(30)
def test_nothing_leaks(
    typedserve_leak_check: LeakCheck,
    aio_server: MakeAioServer,
    transport_case: TransportCase,
) -> None:
    class Echo(AsyncHandler[Any]):
        async def handle(self) -> None:
            request = self.request
            if isinstance(request, AsyncStream):
                request.write(await request.readline())
            else:
                request.reply(request.payload)

    # A short grace: the connection still open at the end is cut rather than waited for.
    server = aio_server(transport_case, Echo, shutdown=ShutdownConfig(grace=0.1))
    with serve_in_thread(server):
        clients = [connect(server) for _ in range(5)]
        try:
            for client in clients:
                client.send(b"ping\n")
            for client in clients:
                assert client.recv(100) == b"ping\n"
            stuck = connect(server)  # still connected when the server closes
        finally:
            for client in clients:
                client.close()
    stuck.close()


@pytest.fixture
def many_fds() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * CONNECTIONS + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


CONNECTIONS = 5000


class CountThenEcho(AsyncHandler[AsyncStream, Probe]):
    speaks_first = True  # the test waits for it to start before sending

    async def handle(self) -> None:
        probe = self.state
        probe.arrived += 1  # the loop's thread only: no lock needed
        if probe.arrived == probe.expected:
            probe.all_arrived.set()
        line = await self.request.readline()
        self.request.write(b"echo " + line)


@pytest.mark.timeout(120)
def test_thousands_of_idle_connections_are_held_then_each_answered(
    many_fds: None, aio_server: MakeAioServer
) -> None:
    from tests.conftest import STREAM_CASES

    probe = Probe(expected=CONNECTIONS)
    server = aio_server(STREAM_CASES[0], CountThenEcho, state=probe, backlog=4096)
    clients: list[socket.socket] = []
    try:
        with serve_in_thread(server):
            for _ in range(CONNECTIONS):
                clients.append(connect(server, timeout=30))
            assert probe.all_arrived.wait(60), f"{probe.arrived} of {CONNECTIONS} arrived"
            assert server.stats().in_flight == CONNECTIONS
            for index, client in enumerate(clients):
                client.sendall(b"%d\n" % index)
            for index, client in enumerate(clients):
                assert read_all_line(client) == b"echo %d\n" % index
    finally:
        for client in clients:
            client.close()
