"""Every hook is called when, as often as and with the arguments the stdlib uses."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from .support import Log, echo_line, recording, recording_handler, serving, tcp_exchange

pytestmark = pytest.mark.timeout(10)

LOCAL = ("127.0.0.1", 0)
REQUEST = ["get_request", "verify_request", "process_request", "finish_request"]
HANDLER = ["setup", "handle", "finish"]
STREAM_END = ["shutdown_request", "close_request"]


def test_construction_binds_then_activates(ss: Any) -> None:
    log = Log()
    with recording(ss.TCPServer, log)(LOCAL, ss.BaseRequestHandler) as server:
        assert log.names() == ["server_bind", "server_activate"]
        assert server.server_address[0] == "127.0.0.1"
        assert server.server_address[1] != 0
    assert log.names() == ["server_bind", "server_activate", "server_close"]


def test_bind_and_activate_false(ss: Any) -> None:
    log = Log()
    server = recording(ss.TCPServer, log)(LOCAL, ss.BaseRequestHandler, bind_and_activate=False)
    try:
        assert log.names() == []
        assert server.server_address == LOCAL
        assert server.socket.family == socket.AF_INET
        server.server_bind()
        server.server_activate()
        assert log.names() == ["server_bind", "server_activate"]
        socket.create_connection(server.server_address, timeout=5).close()  # it listens
    finally:
        server.server_close()


def test_failed_bind_closes_and_propagates(ss: Any) -> None:
    log = Log()
    with ss.TCPServer(LOCAL, ss.BaseRequestHandler) as taken:
        cls = recording(ss.TCPServer, log)
        with pytest.raises(OSError) as info:
            cls(taken.server_address, ss.BaseRequestHandler)
    assert log.names() == ["server_bind", "server_close"]
    assert info.value.errno is not None
    assert "Address already in use" in str(info.value)


def test_failed_activate_closes_and_propagates(ss: Any) -> None:
    log = Log()

    base: Any = recording(ss.TCPServer, log)

    class Refusing(base):
        def server_activate(self) -> None:
            super().server_activate()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Refusing(LOCAL, ss.BaseRequestHandler)
    assert log.names() == ["server_bind", "server_activate", "server_close"]


def test_handle_request_sequence_and_arguments(ss: Any) -> None:
    log = Log()
    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    server = recording(ss.TCPServer, log)(LOCAL, handler)
    try:
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"ping\n")
            assert server.handle_request() is None
            assert client.recv(100) == b"ping\n"
            assert client.recv(100) == b""  # shut down and closed by the server
            client_address = client.getsockname()
    finally:
        server.server_close()
    assert log.names() == [
        "server_bind",
        "server_activate",
        *REQUEST,
        *HANDLER,
        *STREAM_END,
        "server_close",
    ]
    request, address = log.args("verify_request")[0]
    assert isinstance(request, socket.socket)
    assert address == client_address
    assert log.args("process_request") == [(request, address)]
    assert log.args("finish_request") == [(request, address)]
    assert log.args("setup") == [(request, address, server)]
    assert log.args("shutdown_request") == [(request,)]
    assert log.args("close_request") == [(request,)]
    assert log.args("get_request") == [()]
    assert request.fileno() == -1


def test_verify_request_refusal_shuts_the_request_down(ss: Any) -> None:
    log = Log()

    base: Any = recording(ss.TCPServer, log)

    class Refusing(base):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            super().verify_request(request, client_address)
            return False

    with (
        Refusing(LOCAL, recording_handler(ss.BaseRequestHandler, log)) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        assert client.recv(10) == b""
    assert log.names() == [
        "server_bind",
        "server_activate",
        "get_request",
        "verify_request",
        *STREAM_END,
        "server_close",
    ]


def test_handler_exception_goes_to_handle_error_then_shutdown(
    ss: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log()

    def fail(handler: Any) -> None:
        raise ValueError("boom")

    handler = recording_handler(ss.StreamRequestHandler, log, fail)
    with (
        recording(ss.TCPServer, log)(LOCAL, handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        assert client.recv(10) == b""
        client_address = client.getsockname()
    assert log.names()[2:] == [
        *REQUEST,
        "setup",
        "handle",
        "finish",  # finish runs although handle raised
        "handle_error",
        *STREAM_END,
        "server_close",
    ]
    _request, address = log.args("handle_error")[0]
    assert address == client_address
    err = capsys.readouterr().err
    assert err.startswith("-" * 40 + "\n")
    assert f"Exception occurred during processing of request from {client_address}" in err
    assert "ValueError: boom" in err
    assert err.endswith("-" * 40 + "\n")


def test_base_exception_shuts_down_and_propagates(ss: Any) -> None:
    log = Log()

    class Stop(BaseException):
        pass

    def stop(handler: Any) -> None:
        raise Stop

    with (
        recording(ss.TCPServer, log)(
            LOCAL, recording_handler(ss.BaseRequestHandler, log, stop)
        ) as server,
        socket.create_connection(server.server_address, timeout=5),
        pytest.raises(Stop),
    ):
        server.handle_request()
    assert log.names()[2:] == [*REQUEST, *HANDLER, *STREAM_END, "server_close"]


def test_get_request_oserror_is_ignored(ss: Any) -> None:
    log = Log()

    base: Any = recording(ss.TCPServer, log)

    class Failing(base):
        def get_request(self) -> Any:
            super().get_request()[0].close()
            raise OSError("accept failed")

    with (
        Failing(LOCAL, ss.BaseRequestHandler) as server,
        socket.create_connection(server.server_address, timeout=5),
    ):
        assert server.handle_request() is None
    assert log.names() == ["server_bind", "server_activate", "get_request", "server_close"]


def test_handle_request_timeout_calls_handle_timeout(ss: Any) -> None:
    log = Log()

    base: Any = recording(ss.TCPServer, log)

    class Timing(base):
        timeout = 0.01

        def handle_timeout(self) -> Any:
            super().handle_timeout()
            return "timed out"

    with Timing(LOCAL, ss.BaseRequestHandler) as server:
        assert server.handle_request() == "timed out"  # the hook's value is returned
    assert log.names() == ["server_bind", "server_activate", "handle_timeout", "server_close"]


def test_handle_request_uses_the_socket_timeout(ss: Any) -> None:
    log = Log()
    with recording(ss.TCPServer, log)(LOCAL, ss.BaseRequestHandler) as server:
        server.socket.settimeout(0.01)
        server.handle_request()
        server.timeout = 0.02
        server.handle_request()
    assert log.names().count("handle_timeout") == 2


def test_serve_forever_calls_service_actions_and_handles(ss: Any) -> None:
    log = Log()
    served = threading.Event()

    def body(handler: Any) -> None:
        echo_line(handler)
        served.set()

    server = recording(ss.TCPServer, log)(
        LOCAL, recording_handler(ss.StreamRequestHandler, log, body)
    )
    with serving(server):
        assert tcp_exchange(server.server_address, b"hi\n") == b"hi\n"
        assert served.wait(5)
    names = log.names()
    assert names == [
        "server_bind",
        "server_activate",
        *REQUEST,
        *HANDLER,
        *STREAM_END,
        "server_close",
    ]
    # service_actions runs after each wait, so at least once after the request.
    all_names = log.names(skip=())
    assert "service_actions" in all_names[all_names.index("close_request") :]


def test_context_manager_returns_the_server_and_closes(ss: Any) -> None:
    with ss.TCPServer(LOCAL, ss.BaseRequestHandler) as server:
        assert isinstance(server, ss.TCPServer)
    assert server.socket.fileno() == -1


def test_udp_sequence_and_datagram_handler(ss: Any) -> None:
    log = Log()

    def body(handler: Any) -> None:
        handler.wfile.write(handler.rfile.read().upper())

    handler = recording_handler(ss.DatagramRequestHandler, log, body)
    with recording(ss.UDPServer, log)(LOCAL, handler) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(LOCAL)
            client.settimeout(5)
            client.sendto(b"quiet", server.server_address)
            server.handle_request()
            data, _ = client.recvfrom(100)
            assert data == b"QUIET"
            client_address = client.getsockname()
        assert server.socket.fileno() != -1  # close_request leaves the server's socket alone
    assert log.names() == [
        "server_bind",
        "server_activate",
        *REQUEST,
        *HANDLER,
        *STREAM_END,
        "server_close",
    ]
    (request, address) = log.args("verify_request")[0]
    assert request == (b"quiet", server.socket)
    assert address == client_address


def test_unix_stream_server(ss: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    log = Log()
    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    with recording(ss.UnixStreamServer, log)(path, handler) as server:
        assert server.server_address == path
        with serving(server, 0.05):
            assert tcp_exchange(path, b"unix\n", socket.AF_UNIX) == b"unix\n"
    assert log.names()[2:] == [*REQUEST, *HANDLER, *STREAM_END, "server_close", "server_close"]


def test_unix_datagram_server(ss: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "d.sock")
    client_path = str(tmp_path / "c.sock")

    def body(handler: Any) -> None:
        handler.wfile.write(handler.packet[::-1])

    log = Log()
    with (
        ss.UnixDatagramServer(
            path, recording_handler(ss.DatagramRequestHandler, log, body)
        ) as server,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client,
    ):
        client.bind(client_path)
        client.settimeout(5)
        client.sendto(b"abc", path)
        server.handle_request()
        assert client.recv(10) == b"cba"
    assert log.names() == HANDLER


def test_ipv6_tcp_server(ss: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    class Server6(ss.TCPServer):
        address_family = socket.AF_INET6

    try:
        server = Server6(("::1", 0), recording_handler(ss.StreamRequestHandler, Log(), echo_line))
    except OSError as exc:
        pytest.skip(f"no ::1 here: {exc}")
    with server, serving(server):
        assert len(server.server_address) == 4
        assert tcp_exchange(server.server_address[:2], b"v6\n", socket.AF_INET6) == b"v6\n"


def test_reuse_options_are_set(ss: Any) -> None:
    class Reusing(ss.TCPServer):
        allow_reuse_address = True
        allow_reuse_port = True

    with Reusing(LOCAL, ss.BaseRequestHandler) as server:
        sock = server.socket
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
    with ss.TCPServer(LOCAL, ss.BaseRequestHandler) as plain:
        assert plain.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0


def test_stream_handler_options(ss: Any) -> None:
    seen: dict[str, Any] = {}

    class Handler(ss.StreamRequestHandler):
        timeout = 7.5
        disable_nagle_algorithm = True
        wbufsize = 4096

        def handle(self) -> None:
            seen["timeout"] = self.connection.gettimeout()
            seen["nodelay"] = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            seen["wfile"] = type(self.wfile).__name__
            seen["connection"] = self.connection is self.request
            self.wfile.write(b"buffered")  # flushed by finish()

    with (
        ss.TCPServer(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        assert client.recv(100) == b"buffered"
    assert seen == {"timeout": 7.5, "nodelay": 1, "wfile": "BufferedWriter", "connection": True}


def test_stream_handler_files_and_finish(ss: Any) -> None:
    seen: dict[str, Any] = {}

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            seen["wfile"] = self.wfile
            seen["rfile"] = self.rfile
            seen["writer"] = isinstance(self.wfile, ss._SocketWriter)
            seen["fileno"] = self.wfile.fileno() == self.connection.fileno()
            seen["written"] = self.wfile.write(memoryview(b"abcd").cast("B", (2, 2)))
            seen["line"] = self.rfile.readline()

    with (
        ss.TCPServer(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        client.sendall(b"line\nrest")
        server.handle_request()
        assert client.recv(100) == b"abcd"
    assert seen["writer"] and seen["fileno"]
    assert seen["written"] == 4
    assert seen["line"] == b"line\n"
    assert seen["wfile"].closed and seen["rfile"].closed
