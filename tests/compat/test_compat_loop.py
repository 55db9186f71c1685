"""The loops of serve_forever and handle_request: what the stdlib calls, in which order, when."""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Any

import pytest

from .support import Log, echo_line, recording, recording_handler, serving, tcp_exchange

pytestmark = pytest.mark.timeout(10)

LOCAL = ("127.0.0.1", 0)
REQUEST = ["get_request", "verify_request", "process_request", "finish_request"]
HANDLER = ["setup", "handle", "finish"]
STREAM_END = ["shutdown_request", "close_request"]


def test_service_actions_runs_after_every_poll_timeout(ss: Any) -> None:
    log = Log()
    polled = threading.Event()

    base: Any = recording(ss.TCPServer, log)

    class Server(base):
        def service_actions(self) -> None:
            super().service_actions()
            if len(log.args("service_actions")) == 3:
                polled.set()

    with Server(LOCAL, ss.BaseRequestHandler) as server, serving(server, 0.01):
        assert polled.wait(5)  # three polls timed out without a request
    assert log.names() == ["server_bind", "server_activate", "server_close", "server_close"]


def test_service_actions_follows_every_handled_request(ss: Any) -> None:
    log = Log()
    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    with recording(ss.TCPServer, log)(LOCAL, handler) as server, serving(server):
        for data in (b"one\n", b"two\n", b"three\n"):
            assert tcp_exchange(server.server_address, data) == data
    names = log.names(skip=())
    assert names.count("get_request") == 3
    # The loop thread runs service_actions right after each request, before waiting again.
    for i, name in enumerate(names):
        if name == "close_request":
            assert names[i + 1] == "service_actions"
    starts = [i for i, name in enumerate(names) if name == "get_request"]
    for i in starts[1:]:
        assert names[i - 1] == "service_actions"


def test_a_handler_setting_the_flag_still_gets_service_actions(ss: Any) -> None:
    """The flag is checked after the wait and at the top of the loop, not after handling."""
    log = Log()

    def stop(handler: Any) -> None:
        handler.server._BaseServer__shutdown_request = True

    handler = recording_handler(ss.BaseRequestHandler, log, stop)
    with recording(ss.TCPServer, log)(LOCAL, handler) as server:
        with socket.create_connection(server.server_address, timeout=5):
            server.serve_forever(3600)  # returns once the handler has set the flag
        assert not server._BaseServer__shutdown_request
    names = log.names(skip=())
    assert names[-4:] == [*STREAM_END, "service_actions", "server_close"]
    assert names.count("get_request") == 1


def test_a_shutdown_during_the_wait_skips_the_ready_request(
    ss: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bpo-35017: a shutdown that arrives while select() waits ends the loop, even if a
    request is ready, and service_actions is not called."""
    log = Log()
    server = recording(ss.TCPServer, log)(LOCAL, ss.BaseRequestHandler)

    class StoppingSelector(selectors.SelectSelector):
        def select(self, timeout: float | None = None) -> Any:
            server._BaseServer__shutdown_request = True
            return super().select(timeout)

    monkeypatch.setattr(ss, "_ServerSelector", StoppingSelector)
    with server, socket.create_connection(server.server_address, timeout=5):
        server.serve_forever(3600)
        assert not server._BaseServer__shutdown_request
        assert server._BaseServer__is_shut_down.is_set()
    assert log.names(skip=()) == ["server_bind", "server_activate", "server_close"]


def test_serve_forever_runs_again_after_each_shutdown(ss: Any) -> None:
    log = Log()
    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    with recording(ss.TCPServer, log)(LOCAL, handler) as server:
        for round_ in range(3):
            thread = threading.Thread(target=server.serve_forever, args=(0.05,))
            thread.start()
            try:
                data = f"round {round_}\n".encode()
                assert tcp_exchange(server.server_address, data) == data
            finally:
                server.shutdown()
                thread.join()
            assert server._BaseServer__is_shut_down.is_set()
            assert not server._BaseServer__shutdown_request
    assert log.names().count("get_request") == 3


def test_a_pending_shutdown_makes_the_next_serve_forever_return_at_once(ss: Any) -> None:
    log = Log()
    with recording(ss.TCPServer, log)(LOCAL, ss.BaseRequestHandler) as server:
        server._BaseServer__shutdown_request = True
        server.serve_forever(3600)
        assert not server._BaseServer__shutdown_request
    assert log.names(skip=()) == ["server_bind", "server_activate", "server_close"]


def test_handle_request_ignores_the_shutdown_flag(ss: Any) -> None:
    log = Log()
    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    with recording(ss.TCPServer, log)(LOCAL, handler) as server:
        server._BaseServer__shutdown_request = True
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"still\n")
            server.handle_request()
            assert client.recv(100) == b"still\n"
        assert server._BaseServer__shutdown_request  # left as it was: serve_forever resets it
        server.serve_forever(3600)  # the latched request ends it at once
    assert log.names().count("get_request") == 1
    assert "service_actions" not in log.names(skip=())


@pytest.mark.parametrize(("socket_timeout", "server_timeout"), [(3600, 0.01), (0.01, 3600)])
def test_handle_request_waits_the_smaller_of_the_two_timeouts(
    ss: Any, socket_timeout: float, server_timeout: float
) -> None:
    log = Log()
    with recording(ss.TCPServer, log)(LOCAL, ss.BaseRequestHandler) as server:
        server.socket.settimeout(socket_timeout)
        server.timeout = server_timeout
        assert server.handle_request() is None  # returns well before the larger one
    assert log.names() == ["server_bind", "server_activate", "handle_timeout", "server_close"]


def test_handle_request_without_a_timeout_waits_for_a_request(ss: Any) -> None:
    log = Log()
    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    with recording(ss.TCPServer, log)(LOCAL, handler) as server:
        assert server.timeout is None and server.socket.gettimeout() is None
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"wait\n")
            server.handle_request()
            assert client.recv(100) == b"wait\n"
    assert log.names()[2:] == [*REQUEST, *HANDLER, *STREAM_END, "server_close"]
    assert "handle_timeout" not in log.names()
