"""The strategy conformance suite: every strategy, over TCP, UDP and Unix stream sockets.

Each test runs for every ``strategy_case`` x transport of ``support``; the ``make_server``
fixture wraps it in a leak check (fds, threads, child processes, socket files).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import WAIT, Gate, StrategyCase, TransportCase
from typedserve import DrainReport, Limits, Server, Timeouts
from typedserve.testing import connect, serve_in_thread

pytestmark = pytest.mark.timeout(60)


def send(client: socket.socket, stream: bool, command: bytes) -> None:
    """Send one command; a server that already turned the client away may have closed the
    connection (a Unix peer then sees EPIPE at once), and its reply is still readable."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        client.sendall(command + b"\n") if stream else client.send(command)


def receive(client: socket.socket, stream: bool) -> bytes:
    """One reply (without its newline); ``b""`` when a stream server closed without one."""
    if not stream:
        return client.recv(65_536)
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data[:-1]


def ask(server: Server[Any, Any], stream: bool, command: bytes, timeout: float = WAIT) -> bytes:
    with connect(server, timeout=timeout) as client:
        send(client, stream, command)
        return receive(client, stream)


def busy(request: Any) -> None:
    """The busy hook: one reply any client of the command protocol can read."""
    if hasattr(request, "reply"):
        request.reply(b"BUSY")
    else:
        request.socket.sendall(b"BUSY\n")


def hold(server: Server[Any, Any], stream: bool, gate: Gate, count: int) -> list[socket.socket]:
    """Start ``count`` ``gate`` requests and wait until every handler is running.

    One at a time: each client connects once the previous handler runs. All at once, a
    ``Prefork`` worker may accept more connections than it has threads while their first bytes
    are on the way (it parks them), and the extra one waits for that worker's thread, not a
    sibling's."""
    clients = []
    for _ in range(count):
        client = connect(server, timeout=WAIT)
        clients.append(client)
        send(client, stream, b"gate")
        gate.wait_started(1)
    return clients


def wait_until_draining(server: Server[Any, Any], stream: bool) -> None:
    """Probe with new requests until one is turned away with BUSY, or (streams) is not even
    established (a draining listener holds new connections): the drain has begun."""
    for _ in range(10_000):
        try:
            if ask(server, stream, b"echo:probe", timeout=0.2 if stream else WAIT) == b"BUSY":
                return
        except (TimeoutError, ConnectionRefusedError, BlockingIOError):
            if stream:
                return
            raise
    raise AssertionError("the server never started refusing new requests")


# -- serving ---------------------------------------------------------------------------------


def test_concurrent_clients_are_all_served(
    make_server: MakeServer, strategy_case: StrategyCase, transport_case: TransportCase
) -> None:
    stream = transport_case.stream
    with serve_in_thread(make_server(transport_case)) as server:
        clients = [connect(server, timeout=WAIT) for _ in range(8)]
        for index, client in enumerate(clients):
            send(client, stream, b"echo:%d" % index)
        replies = [receive(client, stream) for client in clients]
        for client in clients:
            client.close()
    assert replies == [b"%d" % index for index in range(8)]


def test_requests_run_concurrently_up_to_the_strategy_capacity(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, transport_case: TransportCase
) -> None:
    stream = transport_case.stream
    with serve_in_thread(make_server(transport_case)) as server:
        clients = hold(server, stream, gate, strategy_case.concurrency)
        assert server.stats().in_flight == strategy_case.concurrency
        gate.release()
        replies = [receive(client, stream) for client in clients]
        for client in clients:
            client.close()
    assert replies == [b"done"] * strategy_case.concurrency


def test_a_handler_error_is_counted_and_the_server_keeps_serving(
    make_server: MakeServer, transport_case: TransportCase, caplog: pytest.LogCaptureFixture
) -> None:
    stream = transport_case.stream
    with serve_in_thread(make_server(transport_case)) as server:
        if stream:
            assert ask(server, stream, b"boom") == b""  # closed, with no half-built reply
        else:
            with connect(server) as client:
                client.send(b"boom")
        assert ask(server, stream, b"echo:after") == b"after"
    # Counted even when it happened in another process (read once closing has waited for it).
    assert server.stats().errors == 1


def test_a_silent_client_is_closed_and_does_not_block_others(
    make_server: MakeServer, stream_case: TransportCase
) -> None:
    server = make_server(stream_case, timeouts=Timeouts(first_byte=0.05))
    with serve_in_thread(server), connect(server, timeout=WAIT) as silent:
        assert ask(server, True, b"echo:other") == b"other"
        assert silent.recv(10) == b""  # closed by the server, never answered
        assert server.stats().slow_clients == 1


def test_a_client_closing_its_connection_ends_a_handler_reading_to_eof(
    make_server: MakeServer, gate: Gate, stream_case: TransportCase
) -> None:
    # The client lives in the server's process: a forked child or worker must not keep its
    # own copy of the client's end open, or the handler never sees EOF.
    server = make_server(stream_case)
    with serve_in_thread(server):
        client = connect(server, timeout=WAIT)
        send(client, True, b"hold")
        gate.wait_started(1)
        client.close()
        gate.wait_ended()
        report = server.shutdown(grace=WAIT)
    assert report is not None
    assert report.cut == 0
    assert server.stats().in_flight == 0


# -- overload ----------------------------------------------------------------------------------


def test_at_max_in_flight_the_reject_policy_turns_clients_away_with_the_busy_hook(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, transport_case: TransportCase
) -> None:
    if strategy_case.name in ("Inline", "Prefork"):
        pytest.skip("Inline holds the loop; Prefork applies the limit per worker")
    stream = transport_case.stream
    server = make_server(
        transport_case, limits=Limits(max_in_flight=2, overload="reject"), on_busy=busy
    )
    with serve_in_thread(server):
        clients = hold(server, stream, gate, 2)
        assert ask(server, stream, b"echo:extra") == b"BUSY"
        gate.release()
        assert [receive(client, stream) for client in clients] == [b"done", b"done"]
        for client in clients:
            client.close()
        assert server.stats().rejected == 1


def test_at_max_in_flight_the_pause_policy_leaves_clients_in_the_backlog(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, stream_case: TransportCase
) -> None:
    if strategy_case.name in ("Inline", "Prefork"):
        pytest.skip("Inline holds the loop; Prefork applies the limit per worker")
    server = make_server(stream_case, limits=Limits(max_in_flight=2))
    with serve_in_thread(server):
        clients = hold(server, True, gate, 2)
        waiting = connect(server, timeout=WAIT)  # the kernel completes it; nobody accepts it
        send(waiting, True, b"echo:waited")
        assert server.stats().accepted == 2
        gate.release()
        assert receive(waiting, True) == b"waited"
        for client in [*clients, waiting]:
            client.close()


# -- stopping ----------------------------------------------------------------------------------


def test_graceful_shutdown_completes_requests_in_flight_and_reports(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, transport_case: TransportCase
) -> None:
    stream = transport_case.stream
    count = min(strategy_case.concurrency, 2)
    server = make_server(transport_case, on_busy=busy)
    reports: list[DrainReport | None] = []
    with serve_in_thread(server):
        clients = hold(server, stream, gate, count)
        stopper = threading.Thread(target=lambda: reports.append(server.shutdown(grace=WAIT)))
        stopper.start()
        if strategy_case.name != "Inline":  # an Inline drain holds the loop thread: no probe
            wait_until_draining(server, stream)
        gate.release()
        replies = [receive(client, stream) for client in clients]
        stopper.join(WAIT)
        for client in clients:
            client.close()
    assert replies == [b"done"] * count
    (report,) = reports
    assert report is not None
    # Probes taken from the backlog when the drain began were served too, so "at least". An
    # Inline loop is busy with the held request until it ends, so that one precedes the drain.
    inline = strategy_case.name == "Inline"
    assert report.completed >= (0 if inline else count)
    assert report.cut == 0
    # A datagram probe is refused with BUSY; a stream probe may instead never be established.
    assert report.backlog_refused >= (0 if inline or stream else 1)


def test_graceful_shutdown_cuts_what_outlives_the_grace_period(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, stream_case: TransportCase
) -> None:
    server = make_server(stream_case)
    with serve_in_thread(server):
        client = connect(server, timeout=WAIT)
        send(client, True, b"hold")
        gate.wait_started(1)
        report = server.shutdown(grace=0.01)
        assert report == DrainReport(completed=0, cut=1, backlog_refused=0)
        assert client.recv(10) == b""  # its connection was shut down
        client.close()


def test_plain_shutdown_returns_while_requests_are_in_flight(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, transport_case: TransportCase
) -> None:
    if strategy_case.name == "Inline":
        pytest.skip("an Inline handler holds the loop thread: shutdown() waits for it")
    if strategy_case.name == "AsyncIO":
        pytest.skip("AsyncIO's requests run on its loop, which resumes only in the drain")
    stream = transport_case.stream
    server = make_server(transport_case)
    with serve_in_thread(server):
        clients = hold(server, stream, gate, 1)
        assert server.shutdown() is None  # returned with the request still held at the gate
        assert not server.wait_serving(0)
        gate.release()
        assert receive(clients[0], stream) == b"done"
        clients[0].close()
        report = server.close(grace=WAIT)
    assert report is not None
    assert report.cut == 0
