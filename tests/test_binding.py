"""Binding: failures name the address and the fix; Unix socket files are handled with care."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from typedserve import (
    BindError,
    DatagramHandler,
    InetAddress,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    UDPTransport,
    UnixAddress,
    UnixDatagramTransport,
    UnixStreamTransport,
)
from typedserve.testing import LeakCheck, connect, serve_in_thread

if TYPE_CHECKING:
    from typedserve.transports import DatagramTransport, StreamTransport

pytestmark = pytest.mark.timeout(10)


class Hello(StreamHandler):
    speaks_first = True  # the client only reads

    def handle(self) -> None:
        self.wfile.write(b"hello")


class HelloDatagram(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(b"hello")


def make(
    address: InetAddress | UnixAddress, transport: StreamTransport | DatagramTransport
) -> Server[Any, None]:
    config = ServerConfig(address=address)
    if isinstance(transport, (TCPTransport, UnixStreamTransport)):
        return Server(config=config, transport=transport, handler=Hello)
    return Server(config=config, transport=transport, handler=HelloDatagram)


# -- bind failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "socktype", "transport"),
    [
        ("127.0.0.1", socket.SOCK_STREAM, TCPTransport),
        ("::1", socket.SOCK_STREAM, TCPTransport),
        ("127.0.0.1", socket.SOCK_DGRAM, UDPTransport),
        ("::1", socket.SOCK_DGRAM, UDPTransport),
    ],
)
def test_address_in_use_names_the_address_and_the_fix(
    host: str, socktype: int, transport: type[TCPTransport | UDPTransport]
) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socktype) as occupant:
        occupant.bind((host, 0))
        if socktype == socket.SOCK_STREAM:
            occupant.listen()
        port = occupant.getsockname()[1]
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        with LeakCheck(), pytest.raises(BindError) as caught:
            make(InetAddress(host=host, port=port), transport())
    error = caught.value
    assert isinstance(error, OSError)
    assert error.errno == errno.EADDRINUSE
    assert error.address == where
    assert str(error).startswith(f"cannot bind {where}: address already in use")
    assert "use port 0" in str(error)


def test_a_non_local_address_is_not_available() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine, and nothing is sent.
    with LeakCheck(), pytest.raises(BindError) as caught:
        make(InetAddress(host="192.0.2.1", port=0), TCPTransport())
    assert caught.value.errno == errno.EADDRNOTAVAIL
    assert str(caught.value) == (
        "cannot bind 192.0.2.1:0: address not available "
        "(the host is not an address of this machine)"
    )


def test_a_unix_socket_in_a_missing_directory(short_tmp_dir: Path) -> None:
    path = str(short_tmp_dir / "no-such-dir" / "s.sock")
    with LeakCheck(), pytest.raises(BindError) as caught:
        make(UnixAddress(path=path), UnixStreamTransport())
    assert caught.value.errno == errno.ENOENT
    assert str(caught.value) == f"cannot bind unix:{path}: no such directory for the socket file"


def test_a_unix_path_too_long_is_caught_before_binding(short_tmp_dir: Path) -> None:
    path = str(short_tmp_dir / ("x" * 120))
    with pytest.raises(ValueError, match="at most 107 bytes"):
        UnixAddress(path=path)


# -- Unix socket file hygiene ----------------------------------------------------------------

UNIX_TRANSPORTS = [UnixStreamTransport, UnixDatagramTransport]


def socktype_of(transport: type[UnixStreamTransport | UnixDatagramTransport]) -> int:
    return socket.SOCK_STREAM if transport is UnixStreamTransport else socket.SOCK_DGRAM


def leave_stale_socket(path: str, socktype: int) -> int:
    """A socket file nobody listens on any more (its owner died without unlinking it)."""
    with socket.socket(socket.AF_UNIX, socktype) as dead:
        dead.bind(path)
    return os.lstat(path).st_ino


@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_a_stale_socket_file_is_replaced(
    unix_socket_path: str, transport: type[UnixStreamTransport | UnixDatagramTransport]
) -> None:
    leave_stale_socket(unix_socket_path, socktype_of(transport))
    server = make(UnixAddress(path=unix_socket_path), transport())
    with serve_in_thread(server), connect(server) as client:
        if transport is UnixDatagramTransport:
            client.send(b"hi")
        assert client.recv(5) == b"hello"  # the stale file refused; this one answers
    assert not os.path.exists(unix_socket_path)  # and unlinked on close


@pytest.mark.parametrize("live_type", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_a_live_socket_of_another_server_is_never_removed(
    unix_socket_path: str,
    transport: type[UnixStreamTransport | UnixDatagramTransport],
    live_type: int,
) -> None:
    with socket.socket(socket.AF_UNIX, live_type) as other:
        other.bind(unix_socket_path)
        if live_type == socket.SOCK_STREAM:
            other.listen()
        inode = os.lstat(unix_socket_path).st_ino
        with LeakCheck(), pytest.raises(BindError) as caught:
            make(UnixAddress(path=unix_socket_path), transport())
        assert caught.value.errno == errno.EADDRINUSE
        assert f"unix:{unix_socket_path}" in str(caught.value)
        assert "a live server answers there" in str(caught.value)
        assert os.lstat(unix_socket_path).st_ino == inode
        if live_type == socket.SOCK_STREAM:  # the other server still works
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(unix_socket_path)


@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_a_regular_file_is_never_removed(
    unix_socket_path: str, transport: type[UnixStreamTransport | UnixDatagramTransport]
) -> None:
    Path(unix_socket_path).write_text("precious")
    with LeakCheck(), pytest.raises(BindError) as caught:
        make(UnixAddress(path=unix_socket_path), transport())
    assert caught.value.errno == errno.EEXIST
    assert str(caught.value) == (
        f"cannot bind unix:{unix_socket_path}: the path exists and is not a socket; "
        "refusing to remove it"
    )
    assert Path(unix_socket_path).read_text() == "precious"


def test_stale_error_refuses_even_a_stale_socket(unix_socket_path: str) -> None:
    inode = leave_stale_socket(unix_socket_path, socket.SOCK_STREAM)
    with LeakCheck(), pytest.raises(BindError, match="stale='error'"):
        make(UnixAddress(path=unix_socket_path, stale="error"), UnixStreamTransport())
    assert os.lstat(unix_socket_path).st_ino == inode


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o777])
@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_mode_is_applied_to_the_socket_file(
    unix_socket_path: str,
    transport: type[UnixStreamTransport | UnixDatagramTransport],
    mode: int,
) -> None:
    with make(UnixAddress(path=unix_socket_path, mode=mode), transport()):
        info = os.lstat(unix_socket_path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == mode


@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_the_socket_file_is_unlinked_on_close(
    short_tmp_dir: Path,
    unix_socket_path: str,
    transport: type[UnixStreamTransport | UnixDatagramTransport],
) -> None:
    with LeakCheck(socket_dirs=[short_tmp_dir]):
        server = make(UnixAddress(path=unix_socket_path), transport())
        assert os.path.exists(unix_socket_path)
        server.close()
        assert not os.path.exists(unix_socket_path)
        server.close()  # idempotent


@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_a_successor_socket_at_the_same_path_is_not_unlinked(
    unix_socket_path: str, transport: type[UnixStreamTransport | UnixDatagramTransport]
) -> None:
    server = make(UnixAddress(path=unix_socket_path), transport())
    # Someone removed our file and another server bound the same path meanwhile.
    os.unlink(unix_socket_path)
    with socket.socket(socket.AF_UNIX, socktype_of(transport)) as successor:
        successor.bind(unix_socket_path)
        inode = os.lstat(unix_socket_path).st_ino
        server.close()
        assert os.lstat(unix_socket_path).st_ino == inode


@pytest.mark.parametrize("transport", UNIX_TRANSPORTS)
def test_an_abstract_name_creates_no_file(
    short_tmp_dir: Path, transport: type[UnixStreamTransport | UnixDatagramTransport]
) -> None:
    name = f"@typedserve-binding-{os.getpid()}"
    with serve_in_thread(make(UnixAddress(path=name), transport())) as server:
        assert server.address == b"\0" + name[1:].encode()
        with connect(server) as client:
            if transport is UnixDatagramTransport:
                client.send(b"hi")
            assert client.recv(5) == b"hello"
    assert list(short_tmp_dir.iterdir()) == []
