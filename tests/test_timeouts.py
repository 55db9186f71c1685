"""Deadlines: idle reads, silent clients (first byte), whole-request deadline, handle_request."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import pytest

from typedserve import Server, ServerConfig, StreamHandler, TCPTransport, Timeouts
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.conftest import MakeServer, TransportCase

pytestmark = pytest.mark.timeout(10)

SHORT = 0.2  # a deadline the tests let expire; never a synchronisation delay


class EchoLines(StreamHandler[list[str]]):
    def handle(self) -> None:
        self.state.append("handled")
        for line in self.rfile:
            self.wfile.write(line)


def read_to_eof(client: socket.socket) -> bytes:
    return b"".join(iter(lambda: client.recv(100), b""))


def timeout_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "typedserve.server" and r.exc_info and r.exc_info[0] is TimeoutError
    ]


@pytest.mark.parametrize("setting", ["idle", "request"])
def test_a_client_that_stops_sending_is_cut_off(
    stream_case_and_strategy: tuple[TransportCase, str],
    make_server: MakeServer,
    setting: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    case, strategy = stream_case_and_strategy
    seen: list[str] = []
    timeouts = Timeouts(**{setting: SHORT})
    server = make_server(case, EchoLines, strategy=strategy, state=seen, timeouts=timeouts)
    with serve_in_thread(server), connect(server) as client:
        client.sendall(b"one\n")
        # ...then silence: the handler's next read times out and the connection is closed.
        assert read_to_eof(client) == b"one\n"
    assert seen == ["handled"]
    if setting == "idle":  # one read waited too long: the handler's error, reported
        assert server.stats().errors == 1
        assert len(timeout_records(caplog)) == 1
    else:  # the request ran past its budget: a slow client, not an error
        assert (server.stats().errors, server.stats().slow_clients) == (0, 1)
        assert timeout_records(caplog) == []


def test_request_deadline_covers_the_whole_request_not_each_read(
    cases: dict[str, TransportCase], make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that keeps the connection busy cannot outlive ``timeouts.request``."""
    server = make_server(cases["tcp4"], EchoLines, state=[], timeouts=Timeouts(request=SHORT))
    with serve_in_thread(server), connect(server) as client:
        # Each line comes back at once (no read waits long), yet the request is cut at the
        # deadline: keep talking until the server hangs up.
        replies = client.makefile("rb")
        with pytest.raises((ConnectionError, EOFError)):
            while True:
                client.sendall(b"ping\n")
                if replies.readline() != b"ping\n":
                    raise EOFError
        replies.close()
    assert server.stats().slow_clients == 1  # counted as slow, not as a handler error
    assert server.stats().errors == 0


def test_silent_client_is_closed_before_the_handler_runs(
    stream_case_and_strategy: tuple[TransportCase, str], make_server: MakeServer
) -> None:
    case, strategy = stream_case_and_strategy
    seen: list[str] = []
    server = make_server(
        case,
        EchoLines,
        strategy=strategy,
        state=seen,
        timeouts=Timeouts(first_byte=SHORT),
    )
    with serve_in_thread(server):
        with connect(server) as silent:
            assert read_to_eof(silent) == b""  # closed by the server, unserved
        assert seen == []
        with connect(server) as prompt:
            prompt.sendall(b"hi\n")
            prompt.shutdown(socket.SHUT_WR)
            assert read_to_eof(prompt) == b"hi\n"
    stats = server.stats()
    assert (stats.slow_clients, stats.errors, seen) == (1, 0, ["handled"])


def test_handle_request_times_out_and_calls_on_timeout() -> None:
    calls: list[str] = []
    seen: list[str] = []
    with Server(
        config=ServerConfig(timeouts=Timeouts(poll=0.05)),
        transport=TCPTransport(),
        handler=EchoLines,
        state=seen,
        on_timeout=lambda: calls.append("timeout"),
    ) as server:
        assert server.handle_request() is False  # waits timeouts.poll by default
        assert server.handle_request(timeout=0.01) is False
    assert calls == ["timeout", "timeout"]


def test_handle_request_serves_one_pending_request(
    cases: dict[str, TransportCase], make_server: MakeServer
) -> None:
    seen: list[str] = []
    server = make_server(cases["tcp4"], EchoLines, state=seen)
    with connect(server) as client:
        client.sendall(b"x\n")
        client.shutdown(socket.SHUT_WR)
        assert server.handle_request(timeout=None) is True
        assert read_to_eof(client) == b"x\n"
    assert seen == ["handled"]
