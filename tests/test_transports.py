"""Every transport x every strategy serves real clients; addresses report what was bound."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import pytest

from typedserve import (
    BindError,
    DatagramHandler,
    FDAddress,
    InetAddress,
    PeerAddress,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    TransportMismatchError,
    UDPTransport,
    UnixAddress,
    UnixDatagramTransport,
    UnixStreamTransport,
)
from typedserve.testing import connect, serve_in_thread
from typedserve.transports import DatagramTransport, StreamTransport

if TYPE_CHECKING:
    from tests.conftest import MakeServer, TransportCase

pytestmark = pytest.mark.timeout(10)


class UpperLine(StreamHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class UpperDatagram(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


def exchange(server: Server[Any, object], kind: str, data: bytes) -> bytes:
    """Send ``data`` in one request and return the whole reply."""
    with connect(server) as client:
        if kind == "datagram":
            client.send(data)
            return client.recv(65_536)
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: client.recv(65_536), b""))


def bare_server(
    config: ServerConfig, transport: StreamTransport | DatagramTransport
) -> Server[Any, None]:
    """A server whose handler fits ``transport``, for tests about binding and addresses."""
    if isinstance(transport, StreamTransport):
        return Server(config=config, transport=transport, handler=UpperLine)
    return Server(config=config, transport=transport, handler=UpperDatagram)


def handler_for(case: TransportCase) -> type[UpperLine] | type[UpperDatagram]:
    return UpperLine if case.kind == "stream" else UpperDatagram


def test_every_transport_serves_on_every_strategy(
    transport_case: TransportCase,
    strategy_name: str,
    make_server: MakeServer,
    typedserve_leak_check: object,
) -> None:
    server = make_server(transport_case, handler_for(transport_case), strategy=strategy_name)
    with serve_in_thread(server):
        for word in (b"one\n", b"two\n", b"three\n"):
            assert exchange(server, transport_case.kind, word) == word.upper()
    assert server.stats().accepted == 3


class RecordPeer(StreamHandler[list[tuple[PeerAddress, PeerAddress]]]):
    speaks_first = True  # the client only reads

    def handle(self) -> None:
        self.state.append((self.request.peer, self.request.local))
        self.wfile.write(b"ok")


@pytest.mark.parametrize(
    ("host", "transport"),
    [
        ("127.0.0.1", TCPTransport),
        ("::1", TCPTransport),
        ("127.0.0.1", UDPTransport),
        ("::1", UDPTransport),
    ],
)
def test_port_zero_reports_the_real_port(
    host: str, transport: type[StreamTransport | DatagramTransport]
) -> None:
    config = ServerConfig(address=InetAddress(host=host, port=0))
    with bare_server(config, transport()) as server:
        port = server.address[1]
        assert port != 0
        assert server.address[0] == host
        # The kernel agrees: the reported port is the one the socket is bound to.
        with socket.socket(fileno=server.fileno()) as probe:
            try:
                assert probe.getsockname()[1] == port
            finally:
                probe.detach()


def test_stream_handler_sees_peer_and_local_address(
    stream_case: TransportCase, make_server: MakeServer
) -> None:
    seen: list[tuple[PeerAddress, PeerAddress]] = []
    server = make_server(stream_case, RecordPeer, state=seen)
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(2) == b"ok"
        expected_peer = client.getsockname()
    [(peer, local)] = seen
    if stream_case.family == socket.AF_UNIX:
        assert peer in ("", b"")  # an unnamed client
    else:
        assert isinstance(peer, tuple) and peer[:2] == expected_peer[:2]
    if stream_case.family == socket.AF_UNIX:
        assert local == server.address
    else:
        assert isinstance(local, tuple) and local[1] == server.address[1]


def test_dual_stack_accepts_ipv4_and_ipv6_clients() -> None:
    seen: list[tuple[PeerAddress, PeerAddress]] = []
    config = ServerConfig(address=InetAddress(host="::", dual_stack=True))
    server = Server(config=config, transport=TCPTransport(), handler=RecordPeer, state=seen)
    with serve_in_thread(server):
        port = server.address[1]
        for host in ("127.0.0.1", "::1"):
            with socket.create_connection((host, port), timeout=5) as client:
                assert client.recv(2) == b"ok"
    assert [peer[0] for peer, _ in seen if isinstance(peer, tuple)] == ["::ffff:127.0.0.1", "::1"]


def test_ipv6_only_by_default_refuses_ipv4_clients() -> None:
    config = ServerConfig(address=InetAddress(host="::"))
    with (
        Server(config=config, transport=TCPTransport(), handler=UpperLine) as server,
        pytest.raises(ConnectionRefusedError),
    ):
        socket.create_connection(("127.0.0.1", server.address[1]), timeout=5).close()


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_inherited_fd_family_is_read_from_the_socket(family: int, host: str) -> None:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    config = ServerConfig(address=FDAddress(fd=listener.detach()))
    with serve_in_thread(
        Server(config=config, transport=TCPTransport(), handler=UpperLine)
    ) as server:
        assert server.address[0] == host
        with connect(server) as client:
            client.sendall(b"fd\n")
            assert client.recv(10) == b"FD\n"


@pytest.mark.parametrize(
    ("family", "socktype", "transport", "described"),
    [
        (socket.AF_INET, socket.SOCK_DGRAM, TCPTransport, "AF_INET/SOCK_DGRAM"),
        (socket.AF_UNIX, socket.SOCK_STREAM, TCPTransport, "AF_UNIX/SOCK_STREAM"),
        (socket.AF_INET, socket.SOCK_STREAM, UDPTransport, "AF_INET/SOCK_STREAM"),
        (socket.AF_INET, socket.SOCK_STREAM, UnixStreamTransport, "AF_INET/SOCK_STREAM"),
        (socket.AF_UNIX, socket.SOCK_STREAM, UnixDatagramTransport, "AF_UNIX/SOCK_STREAM"),
    ],
)
def test_inherited_fd_of_the_wrong_kind_is_refused_and_left_open(
    family: int, socktype: int, transport: type[StreamTransport | DatagramTransport], described: str
) -> None:
    with socket.socket(family, socktype) as inherited:
        config = ServerConfig(address=FDAddress(fd=inherited.fileno()))
        with pytest.raises(TransportMismatchError) as caught:
            bare_server(config, transport())
        message = str(caught.value)
        assert f"inherited fd {inherited.fileno()}" in message
        assert described in message
        assert transport.__name__ in message
        # The fd is the parent's: the failed server must not have closed it.
        assert inherited.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socktype


def test_inherited_fd_that_is_not_a_socket_is_a_bind_error() -> None:
    read_end, write_end = os.pipe()
    try:
        config = ServerConfig(address=FDAddress(fd=read_end))
        with pytest.raises(BindError, match=f"inherited fd {read_end}: not an open socket"):
            Server(config=config, transport=TCPTransport(), handler=UpperLine)
        os.fstat(read_end)  # still open
    finally:
        os.close(read_end)
        os.close(write_end)


def test_systemd_fd_without_socket_activation_is_a_bind_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LISTEN_PID", raising=False)
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    config = ServerConfig(address=FDAddress(fd="systemd"))
    with pytest.raises(BindError, match="LISTEN_PID/LISTEN_FDS"):
        Server(config=config, transport=TCPTransport(), handler=UpperLine)


@pytest.mark.parametrize(
    ("transport", "address", "needs"),
    [
        (UnixStreamTransport, InetAddress(), "an inet"),
        (UnixDatagramTransport, InetAddress(), "an inet"),
        (TCPTransport, UnixAddress(path="@x"), "a Unix path"),
        (UDPTransport, UnixAddress(path="@x"), "a Unix path"),
    ],
)
def test_transport_refuses_an_address_of_another_family(
    transport: type[StreamTransport | DatagramTransport],
    address: InetAddress | UnixAddress,
    needs: str,
) -> None:
    with pytest.raises(
        TransportMismatchError, match=f"{transport.__name__} cannot listen on {needs}"
    ):
        bare_server(ServerConfig(address=address), transport())
