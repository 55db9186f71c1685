"""ThreadingMixIn and ForkingMixIn: request threads/children, _threads, active_children."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

from .support import Log, echo_line, recording, recording_handler, serving, tcp_exchange

pytestmark = pytest.mark.timeout(10)

LOCAL = ("127.0.0.1", 0)
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def test_threading_server_handles_in_another_thread(ss: Any) -> None:
    threads: list[str] = []

    def body(handler: Any) -> None:
        threads.append(threading.current_thread().name)
        echo_line(handler)

    server = ss.ThreadingTCPServer(LOCAL, recording_handler(ss.StreamRequestHandler, Log(), body))
    with serving(server):
        assert tcp_exchange(server.server_address, b"t\n") == b"t\n"
    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name
    assert threads[0].endswith("(process_request_thread)")  # the thread's target is unchanged


def test_threads_are_tracked_and_joined_on_close(ss: Any) -> None:
    release = threading.Event()
    started = threading.Event()
    finished: list[bool] = []

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            started.set()
            release.wait(5)
            finished.append(True)

    server = ss.ThreadingTCPServer(LOCAL, Handler)
    try:
        assert type(server._threads).__name__ == "_NoThreads"
        assert "_threads" not in vars(server)
        with socket.create_connection(server.server_address, timeout=5):
            server.handle_request()
            assert started.wait(5)
            assert type(server._threads).__name__ == "_Threads"
            assert isinstance(server._threads, list)
            assert len(server._threads) == 1
            assert server._threads[0].is_alive()
            threading.Thread(target=release.set).start()
    finally:
        server.server_close()  # joins the handler thread
    assert finished == [True]
    assert len(server._threads) == 0


def test_finished_threads_do_not_accumulate(ss: Any) -> None:
    server = ss.ThreadingTCPServer(LOCAL, ss.BaseRequestHandler)
    seen: list[threading.Thread] = []
    try:
        for _ in range(10):
            with socket.create_connection(server.server_address, timeout=5):
                server.handle_request()
                seen.extend(server._threads)
        assert len(server._threads) < 10
    finally:
        server.server_close()
    for thread in seen:
        assert not thread.is_alive()


def test_block_on_close_false_does_not_track(ss: Any) -> None:
    release = threading.Event()
    done = threading.Event()

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            release.wait(5)
            done.set()

    class Server(ss.ThreadingTCPServer):
        block_on_close = False

    server = Server(LOCAL, Handler)
    try:
        with socket.create_connection(server.server_address, timeout=5):
            server.handle_request()
    finally:
        server.server_close()  # returns without waiting
        assert "_threads" not in vars(server)
        release.set()
    assert done.wait(5)
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):
            thread.join(5)


def test_daemon_threads_are_not_tracked(ss: Any) -> None:
    seen: list[bool] = []

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            seen.append(threading.current_thread().daemon)

    class Server(ss.ThreadingTCPServer):
        daemon_threads = True

    server = Server(LOCAL, Handler)
    try:
        with socket.create_connection(server.server_address, timeout=5):
            server.handle_request()
        assert len(server._threads) == 0
    finally:
        server.server_close()
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):
            thread.join(5)
    assert seen == [True]


def test_thread_errors_go_to_handle_error_then_shutdown(ss: Any) -> None:
    log = Log()

    def fail(handler: Any) -> None:
        raise ValueError("in thread")

    base: Any = recording(ss.ThreadingTCPServer, log)

    class Server(base):
        def handle_error(self, request: Any, client_address: Any) -> None:
            log.add("handle_error")

    with (
        Server(LOCAL, recording_handler(ss.BaseRequestHandler, log, fail)) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        assert client.recv(10) == b""
    # server_close is logged when it starts, possibly before the thread's last hooks.
    assert log.names(skip=("server_close",)) == [
        "server_bind",
        "server_activate",
        "get_request",
        "verify_request",
        "process_request",
        "finish_request",
        "setup",
        "handle",
        "finish",
        "handle_error",
        "shutdown_request",
        "close_request",
    ]
    assert "server_close" in log.names()


def test_user_mixin_overriding_process_request(ss: Any) -> None:
    """A user mix-in listed first wraps the threading mix-in's process_request."""
    log = Log()
    handled = threading.Event()

    class LoggingMixIn:
        def process_request(self, request: Any, client_address: Any) -> None:
            log.add("before")
            super().process_request(request, client_address)  # type: ignore[misc]  # mix-in
            log.add("after")

    class Server(LoggingMixIn, ss.ThreadingMixIn, ss.TCPServer):
        pass

    def body(handler: Any) -> None:
        log.add("handled-in-thread", threading.current_thread() is not threading.main_thread())
        handled.set()

    with (
        Server(LOCAL, recording_handler(ss.BaseRequestHandler, Log(), body)) as server,
        socket.create_connection(server.server_address, timeout=5),
    ):
        server.handle_request()
        assert handled.wait(5)
    assert log.names()[0] == "before"
    assert set(log.names()) == {"before", "after", "handled-in-thread"}
    assert log.args("handled-in-thread") == [(True,)]


def test_threading_udp_server(ss: Any) -> None:
    def body(handler: Any) -> None:
        handler.wfile.write(handler.packet * 2)

    with (
        ss.ThreadingUDPServer(
            LOCAL, recording_handler(ss.DatagramRequestHandler, Log(), body)
        ) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.settimeout(5)
        client.sendto(b"ab", server.server_address)
        server.handle_request()
        assert client.recv(10) == b"abab"


@needs_fork
def test_forking_server_handles_in_a_child(ss: Any) -> None:
    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(str(os.getpid()).encode())

    server = ss.ForkingTCPServer(LOCAL, Handler)
    try:
        assert server.active_children is None
        with socket.create_connection(server.server_address, timeout=5) as client:
            server.handle_request()
            children = set(vars(server)["active_children"])
            assert len(children) == 1
            reply = b""
            while chunk := client.recv(100):
                reply += chunk
        assert int(reply) in children
        assert int(reply) != os.getpid()
    finally:
        server.server_close()  # block_on_close: reaps every child
    assert server.active_children == set()


@needs_fork
def test_forking_collects_children_on_timeout(ss: Any) -> None:
    class Server(ss.ForkingTCPServer):
        timeout = 0.01

    server = Server(LOCAL, ss.BaseRequestHandler)
    try:
        with socket.create_connection(server.server_address, timeout=5) as client:
            server.handle_request()
            assert client.recv(10) == b""  # the child finished and closed it
        (_pid,) = server.active_children
        server.collect_children(blocking=True)
        assert server.active_children == set()
        server.handle_request()  # times out: handle_timeout collects (nothing left)
    finally:
        server.server_close()


@needs_fork
def test_forking_child_error_goes_to_handle_error_in_the_child(ss: Any) -> None:
    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("child")

    class Server(ss.ForkingTCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            request.sendall(b"handled")

    server = Server(LOCAL, Handler)
    try:
        with socket.create_connection(server.server_address, timeout=5) as client:
            server.handle_request()
            assert client.recv(100) == b"handled"
    finally:
        server.server_close()
    assert server.active_children == set()


@needs_fork
def test_forking_max_children(ss: Any) -> None:
    class Server(ss.ForkingTCPServer):
        max_children = 1

    server = Server(LOCAL, ss.BaseRequestHandler)
    try:
        for _ in range(3):
            with socket.create_connection(server.server_address, timeout=5):
                server.handle_request()
            server.collect_children()  # at max_children: waits for one
            assert len(server.active_children) < 1
    finally:
        server.server_close()
