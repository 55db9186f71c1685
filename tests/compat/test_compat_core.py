"""compat's serve_forever and handle_request wait on the core's Reactor (one loop primitive)."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import typedserve.compat as compat
from typedserve._reactor import Reactor

from .support import Log, echo_line, recording, recording_handler, tcp_exchange

pytestmark = pytest.mark.timeout(10)

LOCAL = ("127.0.0.1", 0)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Log]:
    """Every ``Reactor.wait_once`` call, logged as ``("wait", reactor, timeout)``."""
    log = Log()
    wait_once = Reactor.wait_once

    def spy(self: Reactor, timeout: float | None) -> None:
        log.add("wait", self, timeout)
        wait_once(self, timeout)

    monkeypatch.setattr(Reactor, "wait_once", spy)
    yield log


def test_serve_forever_waits_on_the_reactor_and_keeps_the_stdlib_order(waits: Log) -> None:
    handler = recording_handler(compat.StreamRequestHandler, waits, echo_line)
    server: Any = recording(compat.TCPServer, waits)(LOCAL, handler)
    thread = threading.Thread(target=server.serve_forever, args=(3600,))
    thread.start()
    try:
        for data in (b"one\n", b"two\n"):
            assert tcp_exchange(server.server_address, data) == data
    finally:
        server.shutdown()  # wakes the hour-long wait at once
        thread.join()
        server.server_close()
    entries = waits.names(skip=())
    steps = [name for name in entries if name in ("wait", "get_request", "service_actions")]
    # Each wait ends in a request (then service_actions) or in the shutdown; the shutdown may
    # also come before the last wait began.
    assert steps[:6] == ["wait", "get_request", "service_actions"] * 2
    assert steps[6:] in ([], ["wait"])
    loops = {id(loop) for loop, _ in waits.args("wait")}
    assert len(loops) == 1  # one Reactor for the whole serve_forever call
    assert {timeout for _, timeout in waits.args("wait")} == {3600}
    loop, _ = waits.args("wait")[0]
    assert isinstance(loop, Reactor)
    assert isinstance(loop.selector, compat._ServerSelector)
    assert loop.selector.get_map() is None  # closed when serve_forever returned
    assert loop.waker.fileno() == -1


def test_handle_request_waits_on_a_reactor_for_the_smaller_timeout(waits: Log) -> None:
    base: Any = recording(compat.TCPServer, waits)
    with base(LOCAL, compat.BaseRequestHandler) as server:
        server.socket.settimeout(0.02)
        server.timeout = 0.01
        server.handle_request()
    assert "handle_timeout" in waits.names()
    (loop, first), *_ = waits.args("wait")
    assert first == 0.01
    assert isinstance(loop, Reactor)
    assert loop.waker.fileno() == -1  # closed when handle_request returned


def test_handle_request_handles_what_the_reactor_reports(waits: Log) -> None:
    handler = recording_handler(compat.StreamRequestHandler, waits, echo_line)
    with (
        recording(compat.TCPServer, waits)(LOCAL, handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        client.sendall(b"ready\n")
        server.handle_request()
        assert client.recv(100) == b"ready\n"
    assert waits.names(skip=())[2:5] == ["wait", "get_request", "verify_request"]
    assert waits.args("wait")[0][1] is None  # no timeout: wait for a request


def test_shutdown_wakes_an_idle_loop_and_skips_service_actions(waits: Log) -> None:
    server: Any = recording(compat.TCPServer, waits)(LOCAL, compat.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(3600,))
    thread.start()
    try:
        server.shutdown()
        thread.join()
        assert server._BaseServer__is_shut_down.is_set()
    finally:
        server.server_close()
    # The only waits ended in the shutdown: no service_actions after them.
    assert "service_actions" not in waits.names(skip=())


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_a_signal_handler_setting_the_flag_wakes_an_hour_long_wait() -> None:
    watching = threading.Event()
    returned = threading.Event()

    class Server(compat.TCPServer):
        def fileno(self) -> int:
            watching.set()  # read by the loop once its Reactor listens to the stop
            return super().fileno()

    server: Any = Server(LOCAL, compat.BaseRequestHandler)

    def on_signal(signum: int, frame: object) -> None:
        server._BaseServer__shutdown_request = True

    previous = signal.signal(signal.SIGUSR1, on_signal)
    main = threading.get_ident()

    def kick() -> None:
        # Python runs a handler between bytecodes: a signal landing just before poll()
        # starts is only handled when poll() returns (the stdlib's poll_interval later). So
        # signal again until the loop returns; any signal that lands during the hour-long
        # wait must end it at once.
        watching.wait(5)
        while not returned.is_set():
            signal.pthread_kill(main, signal.SIGUSR1)
            returned.wait(0.05)

    kicker = threading.Thread(target=kick)
    kicker.start()
    try:
        server.serve_forever(3600)  # in the main thread, where signal handlers run
    finally:
        returned.set()
        kicker.join()
        signal.signal(signal.SIGUSR1, previous)
        server.server_close()
