"""What the types promise holds at run time: the address each transport's requests and server
really carry has its declared type, an unbound server has no address, and the command line
checks a handler's address type and a factory's shape when it loads them."""

from __future__ import annotations

import argparse
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from typedserve import (
    DatagramHandler,
    InetAddress,
    InetSockAddr,
    IPv4SockAddr,
    IPv6SockAddr,
    PeerAddress,
    Server,
    ServerClosedError,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    TypedServeError,
    UDPTransport,
    UnixAddress,
    UnixDatagramPeer,
    UnixDatagramTransport,
    UnixSockAddr,
    UnixStreamTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.cli.targets import (
    as_server_factory,
    handler_shape,
    server_for_handler,
    server_from_factory,
)
from typedserve.testing import LeakCheck, connect, serve_in_thread

pytestmark = pytest.mark.timeout(20)
WAIT = 10.0


def conforms(value: object, annotation: Any) -> bool:  # Any: a type expression
    """Whether ``value`` is exactly of the type ``annotation`` (pydantic, strict: no coercion)."""
    try:
        TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


class Seen:
    """The addresses handlers saw (the handler runs on the loop thread: Inline)."""

    def __init__(self) -> None:
        self.addresses: list[tuple[PeerAddress, PeerAddress | None]] = []
        self.event = threading.Event()


class RecordStream(StreamHandler[Seen]):
    speaks_first = True  # served at once: the clients below send nothing

    def handle(self) -> None:
        self.state.addresses.append((self.request.peer, self.request.local))
        self.state.event.set()


class RecordDatagram(DatagramHandler[Seen]):
    def handle(self) -> None:
        self.state.addresses.append((self.request.peer, None))
        self.state.event.set()


def _abstract(tag: str) -> str:
    return f"@typedserve-types-{os.getpid()}-{tag}"


@pytest.mark.parametrize(
    ("host", "exact"), [("127.0.0.1", IPv4SockAddr), ("::1", IPv6SockAddr)], ids=["v4", "v6"]
)
def test_tcp_and_udp_addresses_are_inet_socket_addresses(host: str, exact: object) -> None:
    config = ServerConfig(address=InetAddress(host=host))
    tcp_seen, udp_seen = Seen(), Seen()
    tcp = Server(config=config, transport=TCPTransport(), handler=RecordStream, state=tcp_seen)
    udp = Server(config=config, transport=UDPTransport(), handler=RecordDatagram, state=udp_seen)
    with LeakCheck(), serve_in_thread(tcp), serve_in_thread(udp):
        with connect(tcp):
            assert tcp_seen.event.wait(WAIT)
        with connect(udp) as client:
            client.sendall(b"x")
            assert udp_seen.event.wait(WAIT)
        for address in (tcp.address, udp.address, *tcp_seen.addresses[0], udp_seen.addresses[0][0]):
            assert conforms(address, InetSockAddr), address
            assert conforms(address, exact), address


@pytest.mark.parametrize("named", ["path", "abstract"])
def test_unix_addresses_are_paths_or_abstract_names(named: str, short_tmp_dir: Path) -> None:
    where = str(short_tmp_dir / "s.sock") if named == "path" else _abstract(named)
    seen, dgram_seen = Seen(), Seen()
    stream = Server(
        config=ServerConfig(address=UnixAddress(path=where)),
        transport=UnixStreamTransport(),
        handler=RecordStream,
        state=seen,
    )
    dgram_where = str(short_tmp_dir / "d.sock") if named == "path" else _abstract("dgram")
    dgram = Server(
        config=ServerConfig(address=UnixAddress(path=dgram_where)),
        transport=UnixDatagramTransport(),
        handler=RecordDatagram,
        state=dgram_seen,
    )
    expected_type = str if named == "path" else bytes
    with serve_in_thread(stream), serve_in_thread(dgram):
        with connect(stream):
            assert seen.event.wait(WAIT)
        with connect(dgram) as client:  # auto-bound to an abstract name: bytes
            client.sendall(b"x")
            assert dgram_seen.event.wait(WAIT)
        dgram_seen.event.clear()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:
            unbound.sendto(b"x", dgram.address)
            assert dgram_seen.event.wait(WAIT)
    [(peer, local)] = seen.addresses
    assert conforms(stream.address, UnixSockAddr) and type(stream.address) is expected_type
    assert conforms(dgram.address, UnixSockAddr)
    assert (peer, type(local)) == ("", expected_type)  # the client is unnamed
    assert conforms(local, UnixSockAddr)
    [(named_sender, _), (unbound_sender, _)] = dgram_seen.addresses
    assert conforms(named_sender, UnixDatagramPeer) and isinstance(named_sender, bytes)
    assert unbound_sender is None and conforms(unbound_sender, UnixDatagramPeer)


def test_replying_to_an_unbound_unix_sender_raises_type_error(short_tmp_dir: Path) -> None:
    failures: list[BaseException] = []
    done = threading.Event()

    class ReplyAnyway(DatagramHandler):
        def handle(self) -> None:
            try:
                self.request.reply(b"unreachable")
            except TypeError as exc:
                failures.append(exc)
            done.set()

    config = ServerConfig(address=UnixAddress(path=str(short_tmp_dir / "d.sock")))
    server = Server(config=config, transport=UnixDatagramTransport(), handler=ReplyAnyway)
    with serve_in_thread(server), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:
        unbound.sendto(b"x", server.address)
        assert done.wait(WAIT)
    assert len(failures) == 1


def test_an_unbound_server_has_no_address_yet() -> None:
    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=RecordStream,
        state=Seen(),
        bind=False,
    )
    with pytest.raises(ServerClosedError, match="TCPTransport is not bound"):
        server.address  # noqa: B018
    assert repr(server) == "<Server TCPTransport (no address) Inline unbound>"
    with server:
        assert conforms(server.address, InetSockAddr)
        assert repr(server).startswith("<Server TCPTransport ('127.0.0.1', ")


# -- the command line: a handler's address type -----------------------------------------------


class InetOnly(StreamHandler[None, InetSockAddr]):
    speaks_first = True

    def handle(self) -> None:
        self.wfile.write(self.request.peer[0].encode())


class UnixOnlyAsync(AsyncHandler[AsyncStream[UnixSockAddr]]):
    async def handle(self) -> None:
        self.request.write(b"hello")


def _args(target: str) -> argparse.Namespace:
    return argparse.Namespace(target=target, udp=False, strategy=None, workers=None)


def test_the_cli_refuses_a_handler_typed_for_another_transports_addresses(
    short_tmp_dir: Path,
) -> None:
    unix = ServerConfig(address=UnixAddress(path=str(short_tmp_dir / "s.sock")))
    shape = handler_shape("app:InetOnly", InetOnly)
    assert shape is not None and shape.address == InetSockAddr
    with pytest.raises(TypedServeError) as raised:
        server_for_handler(shape, unix, _args("app:InetOnly"))
    assert str(raised.value) == (
        "app:InetOnly is typed for InetSockAddr addresses, but it would be served on a "
        f"UnixStreamTransport (unix:{short_tmp_dir}/s.sock), whose addresses are UnixSockAddr"
    )
    async_shape = handler_shape("app:UnixOnlyAsync", UnixOnlyAsync)
    assert async_shape is not None
    with pytest.raises(TypedServeError, match="typed for UnixSockAddr addresses, but it would"):
        server_for_handler(async_shape, ServerConfig(), _args("app:UnixOnlyAsync"))
    assert os.listdir(short_tmp_dir) == []  # refused before anything was bound


def test_the_cli_serves_a_handler_typed_for_its_transports_addresses() -> None:
    shape = handler_shape("app:InetOnly", InetOnly)
    assert shape is not None
    server = server_for_handler(shape, ServerConfig(), _args("app:InetOnly"))
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(100) == b"127.0.0.1"


# -- the command line: a ServerFactory ----------------------------------------------------------


def typed_factory(config: ServerConfig) -> Server[StreamRequest[InetSockAddr]]:
    return Server(config=config, transport=TCPTransport(), handler=InetOnly, bind=False)


def untyped_factory(config):  # type: ignore[no-untyped-def]  # a factory need not be annotated
    return typed_factory(config)


def int_factory(config: ServerConfig) -> int:
    return 0


def none_factory(config: ServerConfig) -> None:
    return None


def optional_factory(config: ServerConfig) -> Server[StreamRequest] | None:
    return typed_factory(config)


def unresolvable_factory(config: ServerConfig) -> NotImportedHere:  # type: ignore[name-defined]  # noqa: F821
    return typed_factory(config)


@pytest.mark.parametrize(
    "factory",
    [typed_factory, untyped_factory, optional_factory, unresolvable_factory, lambda c: None],
)
def test_a_server_factory_shape_is_accepted(factory: Callable[..., object]) -> None:
    assert as_server_factory("app:factory", factory) is factory


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            int_factory,
            "app:factory is not a factory(config) -> Server: it is annotated to return int",
        ),
        (none_factory, "it is annotated to return NoneType"),
        (lambda: None, "is not a factory(config) -> Server: too many positional arguments"),
        (
            42,
            "app:factory is an object of type int, not a handler class or a factory(config) "
            "-> Server (typedserve.ServerFactory)",
        ),
        (argparse.Namespace, "app:factory is a class but not a handler"),
    ],
)
def test_what_is_not_a_server_factory_is_refused_naming_it(target: object, message: str) -> None:
    with pytest.raises(TypedServeError) as raised:
        as_server_factory("app:factory", target)
    assert message in str(raised.value)


def test_a_factory_is_called_only_once_its_shape_is_checked() -> None:
    calls: list[ServerConfig] = []

    def counting(config: ServerConfig) -> int:
        calls.append(config)
        return 0

    with pytest.raises(TypedServeError, match="annotated to return int"):
        server_from_factory("app:counting", counting, ServerConfig(), _args("app:counting"))
    assert calls == []
    server = server_from_factory("app:typed", typed_factory, ServerConfig(), _args("app:typed"))
    try:
        assert conforms(server.address, InetSockAddr)  # bound by the command line
    finally:
        server.close()
