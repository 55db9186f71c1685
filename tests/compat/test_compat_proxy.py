"""``typedserve.compat_proxy.ProxyProtocolMixIn``: old-style stream servers behind a balancer,
opted in by mixing it in (compat itself reads no header, as the stdlib)."""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from typedserve.compat import (
    DatagramRequestHandler,
    ForkingTCPServer,
    StreamRequestHandler,
    ThreadingTCPServer,
    ThreadingUDPServer,
)
from typedserve.compat_proxy import ProxyProtocolMixIn
from typedserve.proxy import encode_v1, encode_v2
from typedserve.proxy.config import ProxyProtocolConfig

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
CLIENT = ("10.1.2.3", 4444)
SERVER_SIDE = ("10.0.0.1", 443)


class Whoami(StreamRequestHandler):
    """Replies with the client address it was given and what the server knows of the relay."""

    server: Any

    def handle(self) -> None:
        line = self.rfile.readline().strip()
        header = self.server.proxy_header(self.request)
        reply = {
            "client": self.client_address,
            "upstream": self.server.upstream(self.request),
            "version": None if header is None else header.version,
            "line": line.decode(),
        }
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class ThreadingProxied(ProxyProtocolMixIn, ThreadingTCPServer):
    daemon_threads = True
    block_on_close = True


class ForkingProxied(ProxyProtocolMixIn, ForkingTCPServer):
    block_on_close = True


class Picky(ThreadingProxied):
    """Serves relayed clients from 10.1.0.0/16 only."""

    def verify_client(self, request: Any, client_address: Any) -> bool:
        return str(client_address[0]).startswith("10.1.")


class Optional(ThreadingProxied):
    proxy_protocol: ClassVar[ProxyProtocolConfig] = ProxyProtocolConfig(mode="optional")


class Untrusting(ThreadingProxied):
    proxy_protocol: ClassVar[ProxyProtocolConfig] = ProxyProtocolConfig(trusted=("10.0.0.0/8",))


@contextmanager
def serving(server: Any) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,))
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(WAIT)
        server.server_close()


def ask(server: Any, data: bytes) -> bytes:
    """Send ``data``, read the reply to the end; ``b""`` if the server closed without one (a
    refusal closes with the request unread, which may reach the client as a reset, as with
    the stdlib's ``verify_request``)."""
    with socket.create_connection(server.server_address[:2], timeout=WAIT) as conn:
        chunks = []
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            while chunk := conn.recv(4096):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            return b""
        except OSError as exc:  # ENOTCONN: the reset came before the half-close
            if exc.errno != errno.ENOTCONN:
                raise
            return b""
        return b"".join(chunks)


@pytest.mark.parametrize(
    "server_class",
    [
        ThreadingProxied,
        ForkingProxied,
    ],
    ids=["threads", "fork"],
)
@pytest.mark.parametrize("version", [1, 2])
def test_the_handler_gets_the_relayed_client_as_its_address(
    server_class: type[Any], version: int
) -> None:
    header = (
        encode_v1("TCP4", CLIENT, SERVER_SIDE)
        if version == 1
        else encode_v2("TCP4", CLIENT, SERVER_SIDE)
    )
    with serving(server_class(("127.0.0.1", 0), Whoami)) as server:
        reply = json.loads(ask(server, header + b"hello\n"))
    assert reply == {
        "client": list(CLIENT),
        "upstream": [reply["upstream"][0], reply["upstream"][1]],
        "version": version,
        "line": "hello",
    }
    assert reply["upstream"][0] == "127.0.0.1"


def test_a_missing_header_is_refused_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "typedserve.server")
    with serving(ThreadingProxied(("127.0.0.1", 0), Whoami)) as server:
        assert ask(server, b"hello\n") == b""
        assert json.loads(ask(server, encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"x\n"))["line"]
    assert server.proxy_refused == 1
    assert "no PROXY protocol header" in caplog.text


def test_optional_mode_serves_a_direct_client_as_is() -> None:
    with serving(Optional(("127.0.0.1", 0), Whoami)) as server:
        reply = json.loads(ask(server, b"direct\n"))
    assert reply["client"][0] == "127.0.0.1"
    assert reply["version"] is None
    assert reply["line"] == "direct"


def test_a_header_from_an_untrusted_upstream_is_refused() -> None:
    with serving(Untrusting(("127.0.0.1", 0), Whoami)) as server:
        assert ask(server, encode_v2("TCP4", CLIENT, SERVER_SIDE) + b"x\n") == b""
    assert server.proxy_refused == 1


def test_verify_client_sees_the_relayed_client() -> None:
    with serving(Picky(("127.0.0.1", 0), Whoami)) as server:
        allowed = ask(server, encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"in\n")
        refused = ask(server, encode_v1("TCP4", ("192.0.2.1", 5), SERVER_SIDE) + b"out\n")
    assert json.loads(allowed)["line"] == "in"
    assert refused == b""


def test_http_server_logs_the_relayed_client(capfd: pytest.CaptureFixture[str]) -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello {self.client_address[0]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class ProxiedHTTP(ProxyProtocolMixIn, ThreadingHTTPServer):
        daemon_threads = True

    with serving(ProxiedHTTP(("127.0.0.1", 0), Hello)) as server:
        request = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
        reply = ask(server, encode_v2("TCP4", CLIENT, SERVER_SIDE) + request)
    assert reply.startswith(b"HTTP/1.0 200")
    assert reply.endswith(b"hello 10.1.2.3\n")
    assert "10.1.2.3 - - [" in capfd.readouterr().err  # log_message names the client


def test_a_datagram_server_is_a_type_error() -> None:
    class Echo(DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read())

    class ProxiedUDP(ProxyProtocolMixIn, ThreadingUDPServer):
        pass

    failed = threading.Event()
    errors: list[BaseException | None] = []

    class Recording(ProxiedUDP):
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])
            failed.set()

    server = Recording(("127.0.0.1", 0), Echo)
    with serving(server), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"x", server.server_address)
        assert failed.wait(WAIT)
    assert isinstance(errors[0], TypeError)
