"""Every example runs as the README says and answers real clients."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from tests.commands.processes import Running

pytestmark = pytest.mark.timeout(60)


def _lines(port: int, payload: bytes) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data.splitlines()


def _line(conn: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n") and (chunk := conn.recv(100)):
        line += chunk
    return line


def _udp(port: int, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(payload, ("127.0.0.1", port))
        return sock.recv(65536)


def test_echo_server_example(launch: Callable[..., Running]) -> None:
    server = launch("examples/echo_server.py", "--port", "0")
    assert _lines(server.port, b"a\nb\n") == [b"a", b"b"]
    assert _udp(server.port, b"dgram") == b"dgram"
    assert server.stop()[0] == 0


def test_kv_store_shares_state_across_connections(launch: Callable[..., Running]) -> None:
    server = launch("examples/kv_store.py", "--port", "0")
    assert _lines(server.port, b"SET colour blue\nSET size 3\n") == [b"OK", b"OK"]
    assert _lines(server.port, b"GET colour\nKEYS\nDEL size\nGET size\nbogus\nQUIT\nGET x\n") == [
        b"VALUE blue",
        b"KEYS colour size",
        b"DELETED",
        b"NOT_FOUND",
        b"ERROR unknown or malformed command 'bogus'",
        b"BYE",
    ]
    assert server.stop()[0] == 0


def test_udp_time_service(launch: Callable[..., Running]) -> None:
    server = launch("examples/udp_time.py", "--port", "0")
    assert _udp(server.port, b"time").decode().endswith("+00:00")
    first, second = _udp(server.port, b"quote"), _udp(server.port, b"QUOTE")
    assert first != second
    assert _udp(server.port, b"nope").startswith(b"error: unknown request")
    # An oversized request is dropped (no reply), and the service keeps answering.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(b"x" * 2000, ("127.0.0.1", server.port))
        sock.sendto(b"time", ("127.0.0.1", server.port))
        assert sock.recv(65536).decode().endswith("+00:00")
    status, output = server.stop()
    assert status == 0
    assert "dropped a datagram" in output


def test_custom_transport_refuses_a_host_past_its_limit(launch: Callable[..., Running]) -> None:
    server = launch("examples/custom_transport.py", "--port", "0", "--limit", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as held:
        held.sendall(b"first\n")
        assert _line(held) == b"first\n"  # served, and held by its handler
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as refused:
            assert refused.recv(100) == b""  # closed at accept time
        held.sendall(b"again\n")
        assert _line(held) == b"again\n"
    status, output = server.stop()
    assert status == 0
    assert "refused a connection from 127.0.0.1: it holds 1 already (limit 1)" in output
