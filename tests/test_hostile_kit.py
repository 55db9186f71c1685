"""``typedserve.testing.hostile``: the hostile clients do what they say, against real listeners."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from typedserve import Server, ServerConfig, StreamHandler, TCPTransport
from typedserve.strategies import ThreadPerRequest
from typedserve.testing import (
    Trickler,
    connect_many,
    fd_budget,
    resetting_client,
    serve_in_thread,
    silent_clients,
    trickling_clients,
)

if TYPE_CHECKING:
    from typedserve.testing import ConnectAddress, LeakCheck

pytestmark = pytest.mark.timeout(20)

WAIT = 5.0  # bound of every wait; never reached when things work
FAST = 0.01  # a trickling interval that keeps the tests short


@dataclass
class Listener:
    """A plain listening socket standing in for a server the test drives by hand."""

    sock: socket.socket
    address: ConnectAddress

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        conn.settimeout(WAIT)
        return conn


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(params=["tcp4", "tcp6", "unix"])
def listener(request: pytest.FixtureRequest, unix_socket_path: str) -> Iterator[Listener]:
    """A listener of each family; its accepted connections are the test's to close."""
    kind: str = request.param
    if kind == "tcp6" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    binds: dict[str, tuple[socket.AddressFamily, tuple[str, int] | str]] = {
        "tcp4": (socket.AF_INET, ("127.0.0.1", 0)),
        "tcp6": (socket.AF_INET6, ("::1", 0)),
        "unix": (socket.AF_UNIX, unix_socket_path),
    }
    family, bind_to = binds[kind]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind(bind_to)
        try:
            sock.listen(64)
            sock.settimeout(WAIT)
            yield Listener(sock, sock.getsockname())
        finally:
            if family == socket.AF_UNIX:
                os.unlink(unix_socket_path)


@pytest.fixture
def tcp_listener() -> Iterator[Listener]:
    """An IPv4 listener: its accepted peers' addresses identify each client."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        sock.settimeout(WAIT)
        yield Listener(sock, sock.getsockname())


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    for _ in range(size):  # each recv returns at least one byte, or the peer closed
        if len(data) == size:
            break
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


# -- silent clients --------------------------------------------------------------------------


def test_silent_clients_connect_send_nothing_and_close_on_exit(
    typedserve_leak_check: LeakCheck, listener: Listener
) -> None:
    with ExitStack() as accepted:
        with silent_clients(listener.address, 3) as clients:
            assert len(clients) == 3
            conns = [accepted.enter_context(listener.accept()) for _ in clients]
            for conn in conns:
                conn.setblocking(False)
                with pytest.raises(BlockingIOError):
                    conn.recv(1)  # connected, and not a byte sent
                conn.settimeout(WAIT)
        assert [conn.recv(1) for conn in conns] == [b"", b"", b""]  # closed with FIN


def test_a_wildcard_address_means_loopback(typedserve_leak_check: LeakCheck) -> None:
    with socket.create_server(("0.0.0.0", 0)) as sock:
        sock.settimeout(WAIT)
        with silent_clients(sock.getsockname(), 1) as clients:
            assert len(clients) == 1
            conn, peer = sock.accept()
            conn.close()
        assert peer[0] == "127.0.0.1"


# -- connect_many and the fd budget ----------------------------------------------------------


def test_connect_many_refuses_more_than_the_fd_budget_before_opening_any(
    typedserve_leak_check: LeakCheck, tcp_listener: Listener
) -> None:
    too_many = fd_budget(reserve=0) + 1
    with pytest.raises(OSError, match=r"need \d+ fds but only \d+ are free") as caught:
        connect_many(tcp_listener.address, too_many, reserve=0)
    assert caught.value.errno == errno.EMFILE


def test_connect_many_closes_what_it_opened_when_a_connect_fails(
    typedserve_leak_check: LeakCheck, unix_socket_path: str
) -> None:
    with pytest.raises(FileNotFoundError):
        connect_many(unix_socket_path, 3)  # nothing listens there


def test_fd_budget_counts_open_fds(typedserve_leak_check: LeakCheck) -> None:
    before = fd_budget()
    with socket.socket() as _:
        during = fd_budget()
    assert during < before


# -- resetting client ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp4", "tcp6"])
def test_resetting_client_resets_after_its_data(
    typedserve_leak_check: LeakCheck, kind: str
) -> None:
    if kind == "tcp6" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    host = "127.0.0.1" if kind == "tcp4" else "::1"
    family = socket.AF_INET if kind == "tcp4" else socket.AF_INET6
    with socket.create_server((host, 0), family=family) as sock:
        sock.settimeout(WAIT)
        local = resetting_client(sock.getsockname(), b"hello")
        conn, peer = sock.accept()
        with conn:
            conn.settimeout(WAIT)
            assert peer == local
            assert read_exactly(conn, 5) == b"hello"  # what was sent arrives first
            with pytest.raises(ConnectionResetError):
                conn.recv(1)


def test_resetting_client_on_a_unix_socket_just_closes(
    typedserve_leak_check: LeakCheck, unix_socket_path: str
) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(unix_socket_path)
        try:
            sock.listen()
            sock.settimeout(WAIT)
            resetting_client(unix_socket_path, b"hi")
            conn, _ = sock.accept()
            with conn:
                conn.settimeout(WAIT)
                assert read_exactly(conn, 3) == b"hi"  # then end-of-file
        finally:
            os.unlink(unix_socket_path)


# -- trickling clients -----------------------------------------------------------------------


def test_tricklers_deliver_the_payload_byte_by_byte(
    typedserve_leak_check: LeakCheck, listener: Listener
) -> None:
    with (
        ExitStack() as accepted,
        trickling_clients(listener.address, 2, payload=b"abc", interval=FAST) as trickler,
    ):
        conns = [accepted.enter_context(listener.accept()) for _ in range(2)]
        assert [read_exactly(conn, 3) for conn in conns] == [b"abc", b"abc"]
        assert trickler.wait_rounds(3, timeout=WAIT)
        assert (trickler.closed_count, trickler.open_count) == (0, 2)


def test_a_trickler_records_which_connection_the_server_closed_and_how(
    typedserve_leak_check: LeakCheck, tcp_listener: Listener
) -> None:
    with (
        ExitStack() as accepted,
        Trickler(tcp_listener.address, 3, payload=b"ab", interval=FAST, rounds=2000) as trickler,
    ):
        conns = {}
        for _ in range(3):
            conn, peer = tcp_listener.sock.accept()
            conns[peer] = accepted.enter_context(conn)
        assert set(conns) == set(trickler.local_addresses)
        orderly, rude = (conns[trickler.local_addresses[i]] for i in (0, 1))
        assert trickler.wait_rounds(2, timeout=WAIT)  # the whole payload is sent
        orderly.settimeout(WAIT)
        assert read_exactly(orderly, 2) == b"ab"
        orderly.close()  # nothing unread: FIN
        assert trickler.wait_closed(1, timeout=WAIT)
        rude.close()  # two bytes unread: the kernel resets
        assert trickler.wait_closed(2, timeout=WAIT)
        first, second = trickler.closed
        assert (first.index, first.how, first.sent) == (0, "eof", 2)
        assert (second.index, second.how, second.sent) == (1, "reset", 2)
        assert first.local == trickler.local_addresses[0]
        assert trickler.started_at is not None
        assert trickler.started_at <= first.at <= second.at
        assert (trickler.closed_count, trickler.open_count) == (2, 1)
    assert trickler.open_count == 0


def test_a_trickler_watches_every_family(
    typedserve_leak_check: LeakCheck, listener: Listener
) -> None:
    with trickling_clients(listener.address, 2, interval=FAST) as trickler:
        for _ in range(2):
            listener.accept().close()
        assert trickler.wait_closed(timeout=WAIT), trickler.closed
    assert {closed.index for closed in trickler.closed} == {0, 1}


def test_stopping_a_trickler_does_not_wait_for_its_interval(
    typedserve_leak_check: LeakCheck, tcp_listener: Listener
) -> None:
    # The interval is far beyond this test's timeout: only an immediate stop passes.
    with trickling_clients(tcp_listener.address, 1, interval=3600) as trickler:
        with tcp_listener.accept() as conn:
            assert conn.recv(1) == b"x"
        assert trickler.wait_rounds(1, timeout=WAIT)
    assert not trickler.running
    trickler.stop()  # idempotent
    with pytest.raises(RuntimeError, match="starts once"):
        trickler.start()


def test_a_trickler_ends_its_rounds_and_says_so(
    typedserve_leak_check: LeakCheck, tcp_listener: Listener
) -> None:
    with (
        Trickler(tcp_listener.address, 1, payload=b"ab", interval=0) as trickler,
        tcp_listener.accept() as conn,
    ):
        assert read_exactly(conn, 2) == b"ab"
        # Rounds are bounded (len(payload) by default): waiting for more returns False.
        assert not trickler.wait_rounds(3, timeout=WAIT)
        assert trickler.rounds_done == 2


@pytest.mark.parametrize(
    "arguments",
    [{"count": 0}, {"payload": b""}, {"interval": -1.0}, {"rounds": 0}],
    ids=["count", "payload", "interval", "rounds"],
)
def test_trickler_rejects_bad_arguments_by_name(arguments: dict[str, Any]) -> None:
    name = next(iter(arguments))
    values = {"count": 1, **arguments}
    with pytest.raises(ValueError, match=rf"Trickler\({name}=\.\.\.\)"):
        Trickler(("127.0.0.1", 1), **values)


class EchoLine(StreamHandler):
    """Echo one line, then end the request (the server closes the connection)."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def test_a_trickler_sees_a_typedserve_server_answer_and_close(
    typedserve_leak_check: LeakCheck,
) -> None:
    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=EchoLine,
        strategy=ThreadPerRequest(),
    )
    with (
        serve_in_thread(server),
        trickling_clients(server.address, 3, payload=b"hi\n", interval=FAST, rounds=2000) as t,
    ):
        assert t.wait_closed(timeout=WAIT), t.closed
    assert sorted((c.how, c.sent, c.received) for c in t.closed) == [("eof", 3, 3)] * 3
