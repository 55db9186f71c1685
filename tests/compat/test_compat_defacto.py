"""De-facto contracts that real code relies on, beyond the documented API."""

from __future__ import annotations

import io
import selectors
import signal
import socket
import threading
from typing import Any

import pytest

from .support import Log, echo_line, recording, recording_handler, serving, tcp_exchange

pytestmark = pytest.mark.timeout(10)

LOCAL = ("127.0.0.1", 0)


def test_shutdown_request_flag_from_a_handler_stops_the_loop(ss: Any) -> None:
    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"bye")
            self.server._BaseServer__shutdown_request = True

    with ss.TCPServer(LOCAL, Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        assert tcp_exchange(server.server_address, b"") == b"bye"
        thread.join(8)
        assert not thread.is_alive()
        assert server._BaseServer__is_shut_down.is_set()
        assert not server._BaseServer__shutdown_request  # reset by serve_forever
        # The loop can be started again and shut down normally.
        with serving(server):
            assert tcp_exchange(server.server_address, b"") == b"bye"


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_shutdown_request_flag_from_a_signal_handler_stops_the_loop(ss: Any) -> None:
    ready = threading.Event()

    class Server(ss.TCPServer):
        def service_actions(self) -> None:
            ready.set()

    with Server(LOCAL, ss.BaseRequestHandler) as server:

        def on_signal(signum: int, frame: object) -> None:
            server._BaseServer__shutdown_request = True

        previous = signal.signal(signal.SIGUSR1, on_signal)
        main = threading.get_ident()

        def kick() -> None:
            ready.wait(5)
            signal.pthread_kill(main, signal.SIGUSR1)

        kicker = threading.Thread(target=kick)
        kicker.start()
        try:
            server.serve_forever(0.05)  # in the main thread, where signal handlers run
        finally:
            kicker.join()
            signal.signal(signal.SIGUSR1, previous)


def test_patched_server_selector_is_used(ss: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    class Selector(selectors.SelectSelector):
        def __init__(self) -> None:
            made.append("selector")
            super().__init__()

    monkeypatch.setattr(ss, "_ServerSelector", Selector)
    with ss.TCPServer(LOCAL, recording_handler(ss.StreamRequestHandler, Log(), echo_line)) as s:
        s.timeout = 0.01
        s.handle_request()
        assert made == ["selector"]
        with serving(s):
            assert tcp_exchange(s.server_address, b"x\n") == b"x\n"
        assert made == ["selector", "selector"]


def test_socketless_base_server(ss: Any) -> None:
    """A BaseServer whose requests come from a queue, with a socketpair as its fd."""
    log = Log()
    handled = threading.Event()

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            log.add("handled", self.request, self.client_address)
            handled.set()

    base: Any = recording(ss.BaseServer, log)

    class QueueServer(base):
        def __init__(self) -> None:
            ss.BaseServer.__init__(self, ("queue", 0), Handler)
            self.reader, self.writer = socket.socketpair()
            self.items = ["job-1"]

        def fileno(self) -> int:
            return self.reader.fileno()

        def get_request(self) -> tuple[Any, Any]:
            self.reader.recv(1)
            return self.items.pop(0), ("queue", 1)

        def server_close(self) -> None:
            super().server_close()
            self.reader.close()
            self.writer.close()

    with QueueServer() as server:
        assert not hasattr(server, "socket")
        with serving(server):
            server.writer.send(b"!")
            assert handled.wait(5)
    assert log.args("handled") == [("job-1", ("queue", 1))]
    assert log.names(skip=("service_actions", "handled")) == [
        "verify_request",
        "process_request",
        "finish_request",
        "shutdown_request",
        "close_request",
        "server_close",  # by serving()
        "server_close",  # by the with statement
    ]


def test_replacing_the_listening_socket_in_server_activate(ss: Any) -> None:
    """The TLS pattern: wrap self.socket after listen(); fileno/get_request use the new one."""
    accepted: list[str] = []

    class Wrapped:
        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock

        def fileno(self) -> int:
            return self._sock.fileno()

        def accept(self) -> tuple[socket.socket, Any]:
            accepted.append("wrapped")
            return self._sock.accept()

        def gettimeout(self) -> float | None:
            return self._sock.gettimeout()

        def close(self) -> None:
            self._sock.close()

        def getsockname(self) -> Any:
            return self._sock.getsockname()

    class WrappingServer(ss.TCPServer):
        def server_activate(self) -> None:
            super().server_activate()
            self.__dict__["socket"] = Wrapped(self.__dict__["socket"])

    handler = recording_handler(ss.StreamRequestHandler, Log(), echo_line)
    with WrappingServer(LOCAL, handler) as server:
        assert isinstance(server.socket, Wrapped)
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"again\n")
            server.handle_request()
            assert client.recv(100) == b"again\n"
        with serving(server):
            assert tcp_exchange(server.server_address, b"tls\n") == b"tls\n"
    assert accepted == ["wrapped", "wrapped"]


def test_replacing_the_socket_in_get_request(ss: Any) -> None:
    """Wrapping each accepted connection (ssl.SSLContext.wrap_socket style) in get_request."""

    class ConnWrapper(socket.socket):
        pass

    seen: list[str] = []

    class Server(ss.TCPServer):
        def get_request(self) -> tuple[Any, Any]:
            conn, addr = self.socket.accept()
            wrapped = ConnWrapper(fileno=conn.detach())
            return wrapped, addr

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            seen.append(type(self.request).__name__)
            echo_line(self)

    with Server(LOCAL, Handler) as server, serving(server):
        assert tcp_exchange(server.server_address, b"w\n") == b"w\n"
    assert seen == ["ConnWrapper"]


def test_unbound_calls_across_multiple_inheritance(ss: Any, tmp_path: Any) -> None:
    """http.server style: explicit ``Base.method(self)`` calls in a diamond."""
    log = Log()

    class Extra:
        def __init__(self) -> None:
            log.add("Extra.__init__")

    class Server(ss.UnixStreamServer, Extra):
        def __init__(self, path: str) -> None:
            ss.TCPServer.__init__(self, path, ss.BaseRequestHandler, bind_and_activate=False)
            Extra.__init__(self)
            self.server_bind()
            ss.TCPServer.server_activate(self)

        def server_bind(self) -> None:
            ss.UnixStreamServer.server_bind(self)
            log.add("bound", self.server_address)

    path = str(tmp_path / "u.sock")
    with Server(path) as server:
        assert server.socket.family == socket.AF_UNIX
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            server.handle_request()
    assert log.names() == ["Extra.__init__", "bound"]
    assert log.args("bound") == [(path,)]


def test_reversed_server_that_connects_out(ss: Any) -> None:
    """idlelib.rpc.RPCServer: server_activate connects to the client, which sends first."""
    listener = socket.create_server(LOCAL)
    got: list[bytes] = []

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            got.append(self.request.recv(100))
            self.request.sendall(b"pong")

    class ReversedServer(ss.TCPServer):
        def server_bind(self) -> None:
            pass  # the "server" does not bind: it connects out

        def server_activate(self) -> None:
            self.socket.connect(self.server_address)

        def get_request(self) -> tuple[Any, Any]:
            return self.socket, self.server_address

    with listener:
        server = ReversedServer(listener.getsockname(), Handler)
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(5)
            peer.sendall(b"ping")
            server.handle_request()
            assert peer.recv(100) == b"pong"
        server.server_close()
    assert got == [b"ping"]


def test_wfile_is_a_buffered_io_base_sharing_the_socket_fd(ss: Any) -> None:
    seen: dict[str, Any] = {}

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            seen["is_buffered_io"] = isinstance(self.wfile, io.BufferedIOBase)
            seen["fileno"] = self.wfile.fileno() == self.request.fileno()
            seen["writable"] = self.wfile.writable()
            # TextIOWrapper works over it (http.server-style code does this).
            text = io.TextIOWrapper(self.wfile, encoding="utf-8", write_through=True)
            text.write("héllo")
            text.detach()

    with (
        ss.TCPServer(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5) as client,
    ):
        server.handle_request()
        assert client.recv(100) == "héllo".encode()
    assert seen == {"is_buffered_io": True, "fileno": True, "writable": True}


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_wfile_write_completes_when_interrupted_by_signals(ss: Any) -> None:
    payload = bytes(range(256)) * 32768  # 8 MiB: more than the socket buffers hold
    interrupted: list[int] = []
    results: dict[str, Any] = {}
    writing = threading.Event()
    done = threading.Event()

    class Handler(ss.StreamRequestHandler):
        def handle(self) -> None:
            writing.set()
            results["written"] = self.wfile.write(payload)

    def on_signal(signum: int, frame: object) -> None:
        interrupted.append(signum)

    previous = signal.signal(signal.SIGUSR1, on_signal)
    main = threading.get_ident()

    with ss.TCPServer(LOCAL, Handler) as server:
        client = socket.create_connection(server.server_address, timeout=5)

        def read() -> None:
            writing.wait(5)
            chunks = []
            while True:
                chunk = client.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
                if len(chunks) % 64 == 0 and len(interrupted) < 200:
                    signal.pthread_kill(main, signal.SIGUSR1)
            results["received"] = b"".join(chunks)
            done.set()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            server.handle_request()
        finally:
            reader.join()
            client.close()
            signal.signal(signal.SIGUSR1, previous)
    assert done.is_set()
    assert results["written"] == len(payload)
    assert results["received"] == payload
    assert interrupted  # the write really was interrupted by signals


def test_handler_finish_runs_even_if_handle_raises(ss: Any) -> None:
    log = Log()

    class Handler(ss.BaseRequestHandler):
        def handle(self) -> None:
            raise RuntimeError("x")

        def finish(self) -> None:
            log.add("finish")

    class Quiet(ss.TCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            log.add("handle_error")

    with (
        Quiet(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5),
    ):
        server.handle_request()
    assert log.names() == ["finish", "handle_error"]


def test_setup_exception_skips_handle_and_finish(ss: Any) -> None:
    log = Log()

    class Handler(ss.BaseRequestHandler):
        def setup(self) -> None:
            raise RuntimeError("x")

        def handle(self) -> None:
            log.add("handle")

        def finish(self) -> None:
            log.add("finish")

    class Quiet(ss.TCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            log.add("handle_error")

    with (
        Quiet(LOCAL, Handler) as server,
        socket.create_connection(server.server_address, timeout=5),
    ):
        server.handle_request()
    assert log.names() == ["handle_error"]


def test_override_handle_request_noblock(ss: Any) -> None:
    """Some code overrides the private _handle_request_noblock; serve_forever calls it."""
    log = Log()

    class Server(ss.TCPServer):
        def _handle_request_noblock(self) -> None:
            log.add("noblock")
            super()._handle_request_noblock()

    handler = recording_handler(ss.StreamRequestHandler, log, echo_line)
    with Server(LOCAL, handler) as server:
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"m\n")
            server.handle_request()
        with serving(server):
            assert tcp_exchange(server.server_address, b"n\n") == b"n\n"
    assert log.names() == ["noblock", "setup", "handle", "finish"] * 2
