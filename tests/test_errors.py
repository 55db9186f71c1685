"""Handler failures are reported with the peer and survived; the access policy refuses peers."""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

import pytest

from typedserve import (
    AllowNetworks,
    Datagram,
    DatagramHandler,
    InetAddress,
    PeerAddress,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    UnixAddress,
    UnixStreamTransport,
)
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.conftest import MakeServer, TransportCase

pytestmark = pytest.mark.timeout(10)


class BoomStream(StreamHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        if line == b"boom\n":
            raise ValueError("the handler blew up")
        self.wfile.write(b"ok:" + line)


class BoomDatagram(DatagramHandler):
    def handle(self) -> None:
        if self.request.payload == b"boom\n":
            raise ValueError("the handler blew up")
        self.wfile.write(b"ok:" + self.request.payload)


def send(client: socket.socket, kind: str, data: bytes) -> tuple[bytes, PeerAddress]:
    """One request; returns the reply (``b""`` for none) and the client's own address."""
    client.sendall(data)
    if kind == "stream":
        client.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: client.recv(100), b"")), client.getsockname()
    return b"", client.getsockname()


def describe(peer: PeerAddress, family: int) -> str:
    """How the default error policy names a peer in its message."""
    if family == socket.AF_UNIX:
        return repr(peer) if peer else "an unnamed Unix socket"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def test_handler_error_is_logged_with_the_peer_and_the_server_keeps_serving(
    transport_case: TransportCase,
    in_process_strategy_name: str,
    make_server: MakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind = transport_case.kind
    handler = BoomStream if kind == "stream" else BoomDatagram
    server = make_server(transport_case, handler, strategy=in_process_strategy_name)
    with serve_in_thread(server):
        with connect(server) as client:
            reply, peer = send(client, kind, b"boom\n")
            assert reply == b""  # nothing was sent back for the failed request
        with connect(server) as client:
            if kind == "stream":
                assert send(client, kind, b"again\n")[0] == b"ok:again\n"
            else:
                client.send(b"again\n")
                assert client.recv(100) == b"ok:again\n"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "typedserve.server"
    assert record.getMessage() == (
        f"error while handling a request from {describe(peer, transport_case.family)}"
    )
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert server.stats().errors == 1


def test_custom_error_policy_gets_the_exception_and_peer(
    cases: dict[str, TransportCase], make_server: MakeServer
) -> None:
    reported: list[tuple[BaseException, PeerAddress]] = []
    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=BoomStream,
        handle_error=lambda exc, peer: reported.append((exc, peer)),
    )
    with serve_in_thread(server), connect(server) as client:
        _, peer = send(client, "stream", b"boom\n")
    [(exc, reported_peer)] = reported
    assert isinstance(exc, ValueError)
    assert reported_peer[:2] == peer[:2]


def test_a_failing_error_policy_is_itself_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken_policy(exc: BaseException, peer: PeerAddress) -> None:
        raise RuntimeError("the policy is broken too")

    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=BoomStream,
        handle_error=broken_policy,
    )
    with serve_in_thread(server):
        with connect(server) as client:
            send(client, "stream", b"boom\n")
        with connect(server) as client:
            assert send(client, "stream", b"still\n")[0] == b"ok:still\n"
    assert "the error policy itself failed" in caplog.text


# -- access policy ---------------------------------------------------------------------------


class Counted(StreamHandler[list[PeerAddress]]):
    def handle(self) -> None:
        self.state.append(self.request.peer)
        self.wfile.write(b"welcome")


class CountedDatagram(DatagramHandler[list[PeerAddress]]):
    def handle(self) -> None:
        self.state.append(self.request.peer)
        self.wfile.write(b"welcome")


@pytest.mark.parametrize(
    ("case_name", "networks", "served"),
    [
        ("tcp4", ["127.0.0.0/8"], True),
        ("tcp4", ["10.0.0.0/8", "::1/128"], False),
        ("tcp6", ["::1/128"], True),
        ("tcp6", ["127.0.0.0/8"], False),
        ("udp4", ["127.0.0.1/32"], True),
        ("udp4", ["192.0.2.0/24"], False),
        ("unix-stream", ["0.0.0.0/0"], True),  # allow_unix=True by default
    ],
)
def test_allow_networks_serves_only_listed_peers(
    cases: dict[str, TransportCase],
    in_process_strategy_name: str,
    make_server: MakeServer,
    case_name: str,
    networks: list[str],
    served: bool,
) -> None:
    case = cases[case_name]
    seen: list[PeerAddress] = []
    allow = AllowNetworks(networks)
    decided = threading.Event()

    def policy(request: StreamRequest | Datagram) -> bool:
        try:
            return allow(request)
        finally:
            decided.set()

    server = make_server(
        case,
        Counted if case.kind == "stream" else CountedDatagram,
        strategy=in_process_strategy_name,
        state=seen,
        verify_request=policy,
    )
    with serve_in_thread(server), connect(server) as client:
        if case.kind == "datagram":
            client.send(b"hello")
        assert decided.wait(5)
        if served:
            assert client.recv(100) == b"welcome"
        elif case.kind == "stream":
            assert client.recv(100) == b""  # closed unserved
        else:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recv(100)  # refused datagrams get no reply at all
    assert len(seen) == int(served)
    stats = server.stats()
    assert (stats.accepted, stats.refused) == (1, int(not served))


def test_ipv4_peers_of_a_dual_stack_server_match_ipv4_networks(make_server: MakeServer) -> None:
    seen: list[PeerAddress] = []
    server = Server(
        config=ServerConfig(address=InetAddress(host="::", dual_stack=True)),
        transport=TCPTransport(),
        handler=Counted,
        state=seen,
        verify_request=AllowNetworks(["127.0.0.0/8"]),
    )
    with serve_in_thread(server):
        with socket.create_connection(("127.0.0.1", server.address[1]), timeout=5) as client:
            assert client.recv(100) == b"welcome"  # seen as ::ffff:127.0.0.1, matched as v4
        with socket.create_connection(("::1", server.address[1]), timeout=5) as client:
            assert client.recv(100) == b""
    assert [peer[0] for peer in seen] == ["::ffff:127.0.0.1"]


def test_unix_peers_refused_when_allow_unix_is_false(unix_socket_path: str) -> None:
    seen: list[PeerAddress] = []
    server = Server(
        config=ServerConfig(address=UnixAddress(path=unix_socket_path)),
        transport=UnixStreamTransport(),
        handler=Counted,
        state=seen,
        verify_request=AllowNetworks(["0.0.0.0/0"], allow_unix=False),
    )
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(100) == b""
    assert (server.stats().refused, seen) == (1, [])


def test_an_access_policy_that_raises_refuses_and_is_reported(
    cases: dict[str, TransportCase], make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: StreamRequest) -> bool:
        raise LookupError("policy database unavailable")

    seen: list[PeerAddress] = []
    server = make_server(cases["tcp4"], Counted, state=seen, verify_request=broken)
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(100) == b""
    assert seen == []
    stats = server.stats()
    assert (stats.refused, stats.errors) == (1, 1)
    assert "policy database unavailable" in caplog.text
