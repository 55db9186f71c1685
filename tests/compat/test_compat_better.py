"""Where typedserve.compat is intentionally better than the stdlib (see DIFFERENCES.md)."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest

import typedserve.compat as compat

pytestmark = pytest.mark.timeout(10)

LOCAL = ("127.0.0.1", 0)


def address_of(server: Any) -> Any:
    """``server.server_address``, untyped (the stub types it as a union of address shapes)."""
    return server.server_address


def test_shutdown_wakes_the_loop_at_once() -> None:
    # The stdlib would wait up to poll_interval (here longer than the test's timeout).
    server: Any = compat.TCPServer(LOCAL, compat.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(3600,))
    thread.start()
    try:
        server.shutdown()
        thread.join()
    finally:
        server.server_close()


def test_shutdown_flag_wakes_the_loop_at_once() -> None:
    server: Any = compat.TCPServer(LOCAL, compat.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(3600,))
    thread.start()
    try:
        server._BaseServer__shutdown_request = True
        thread.join()
    finally:
        server.server_close()
    assert server._BaseServer__shutdown_request is False


def test_shutdown_before_the_loop_starts_stops_it_immediately() -> None:
    server: Any = compat.TCPServer(LOCAL, compat.BaseRequestHandler)
    stopper = threading.Thread(target=server.shutdown)
    stopper.start()
    try:
        server.serve_forever(3600)  # the request is already pending, or comes by the waker
    finally:
        stopper.join()
        server.server_close()


def test_finished_threads_leave_threads_at_once() -> None:
    server: Any = compat.ThreadingTCPServer(LOCAL, compat.BaseRequestHandler)
    try:
        for _ in range(3):
            with socket.create_connection(address_of(server), timeout=5):
                server.handle_request()
                tracked = list(server._threads)
            for thread in tracked:
                thread.join()
            assert len(server._threads) == 0
    finally:
        server.server_close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_handle_error_also_logs(capsys: pytest.CaptureFixture[str]) -> None:
    records = _Records()
    log = logging.getLogger("typedserve.compat")
    log.addHandler(records)

    class Handler(compat.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("logged")

    try:
        with (
            compat.TCPServer(LOCAL, Handler) as server,
            socket.create_connection(address_of(server), timeout=5) as client,
        ):
            server.handle_request()
            address = client.getsockname()
    finally:
        log.removeHandler(records)
    (record,) = records.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        f"Exception occurred during processing of request from {address}"
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert "ValueError: logged" in capsys.readouterr().err  # the stdlib report is unchanged


def test_logger_does_not_propagate_by_default() -> None:
    assert logging.getLogger("typedserve.compat").propagate is False


def test_bind_error_notes_the_address() -> None:
    """The stdlib's own exception, plus a note (tracebacks print it); test_compat_drop_in
    checks that nothing else about the exception differs."""
    with compat.TCPServer(LOCAL, compat.BaseRequestHandler) as taken:
        host, port = address_of(taken)
        with pytest.raises(OSError) as info:
            compat.TCPServer((host, port), compat.BaseRequestHandler)
    assert info.value.__notes__ == [f"cannot bind TCP server to 127.0.0.1:{port}"]


def test_repr_names_the_public_module() -> None:
    """Not installed, the classes are members of typedserve.compat (installed: socketserver)."""
    server: Any = compat.TCPServer
    assert server.__module__ == "typedserve.compat"
    assert repr(server) == "<class 'typedserve.compat.TCPServer'>"
