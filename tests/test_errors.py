"""Errors: the hierarchy and the raise sites that use it; handler failures are reported with the
peer and survived; the access policy refuses peers."""

from __future__ import annotations

import ast
import asyncio
import builtins
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    errors,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.errors import (
    BindError,
    ConfigError,
    FramingError,
    HandshakeError,
    MissingDependencyError,
    ProxyProtocolError,
    ServerClosedError,
    ServerStateError,
    StateError,
    StrategyMismatchError,
    TransportMismatchError,
    TypedServeError,
    UnsupportedPlatformError,
)
from typedserve.framing import Custom, LengthPrefixed, Lines
from typedserve.strategies import AsyncIO, ForkPerRequest, Prefork, ThreadPool
from typedserve.testing import LeakCheck, Trickler, connect, connect_many, serve_in_thread

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
    assert isinstance(peer, tuple)
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
    assert isinstance(reported_peer, tuple) and isinstance(peer, tuple)
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
    speaks_first = True  # the client only reads

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
    assert [peer[0] for peer in seen if isinstance(peer, tuple)] == ["::ffff:127.0.0.1"]


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


# -- the hierarchy ---------------------------------------------------------------------------

BUILTIN_BASES: dict[type[TypedServeError], type[Exception]] = {
    ConfigError: ValueError,
    TransportMismatchError: ValueError,
    FramingError: ValueError,
    ProxyProtocolError: ValueError,
    StrategyMismatchError: TypeError,
    BindError: OSError,
    UnsupportedPlatformError: OSError,
    HandshakeError: OSError,
    MissingDependencyError: ImportError,
    StateError: RuntimeError,
    ServerStateError: RuntimeError,
    ServerClosedError: RuntimeError,
}


@pytest.mark.parametrize("cls", list(BUILTIN_BASES), ids=lambda cls: cls.__name__)
def test_each_error_is_a_typedserve_error_and_keeps_its_builtin_base(
    cls: type[TypedServeError],
) -> None:
    assert issubclass(cls, TypedServeError)
    assert issubclass(cls, BUILTIN_BASES[cls])


def test_every_error_is_exported_from_the_package() -> None:
    import typedserve

    exported = {getattr(errors, name) for name in errors.__all__}
    assert exported == {*BUILTIN_BASES, TypedServeError}
    for name in errors.__all__:
        assert getattr(typedserve, name) is getattr(errors, name)
        assert name in typedserve.__all__


_TREE_LINE = re.compile(r"^    (?P<rails>[ |]*)(?:[+`]-- )?(?P<name>\w+)(?: \((?P<base>\w+)\))?  ")


def test_the_tree_in_the_errors_docstring_is_the_real_hierarchy() -> None:
    """Each class is drawn once, under its parent, with its builtin base in parentheses."""
    assert errors.__doc__ is not None
    drawn: dict[str, tuple[str | None, str | None]] = {}
    parents: list[str] = []
    for line in errors.__doc__.splitlines():
        match = _TREE_LINE.match(line)
        if match is None or match["name"] not in errors.__all__:
            continue
        depth = len(match["rails"]) // 4 + (match["name"] != "TypedServeError")
        del parents[depth:]
        drawn[match["name"]] = (parents[-1] if parents else None, match["base"])
        parents.append(match["name"])
    assert set(drawn) == set(errors.__all__)
    for name, (parent, base) in drawn.items():
        cls = getattr(errors, name)
        expected = tuple(getattr(errors, n) for n in [parent] if n is not None)
        expected += tuple(getattr(builtins, n) for n in [base] if n is not None)
        assert cls.__bases__ == (expected or (Exception,)), name


# -- the raise sites -------------------------------------------------------------------------


def _framer_fed_after_eof() -> None:
    framer = Lines().new_framer()
    framer.feed(b"")
    framer.feed(b"late\n")


def _leak_check_not_started() -> None:
    LeakCheck().leaks()


RAISE_SITES: list[tuple[str, Callable[[], object], type[TypedServeError], str]] = [
    ("ThreadPool(max_workers=0)", lambda: ThreadPool(max_workers=0), ConfigError, "max_workers"),
    ("ThreadPool(max_pending=-1)", lambda: ThreadPool(max_pending=-1), ConfigError, "max_pending"),
    ("Prefork(workers=-3)", lambda: Prefork(workers=-3), ConfigError, "must be >= 1"),
    (
        "Prefork(threads_per_worker=0)",
        lambda: Prefork(threads_per_worker=0),
        ConfigError,
        "threads",
    ),
    ("ForkPerRequest(max_children=0)", lambda: ForkPerRequest(0), ConfigError, "max_children"),
    ("Lines(max_length=0)", lambda: Lines(max_length=0), ConfigError, "max_length"),
    ("Lines(terminator=b'')", lambda: Lines(terminator=b""), ConfigError, "terminator"),
    ("LengthPrefixed(prefix_size=3)", lambda: LengthPrefixed(3), ConfigError, "prefix_size"),  # type: ignore[arg-type]  # the wrong value under test
    ("Custom(split=None)", lambda: Custom(None), ConfigError, "split"),  # type: ignore[arg-type]  # the wrong value under test
    ("Trickler(count=0)", lambda: Trickler(("127.0.0.1", 1), 0), ConfigError, "count"),
    ("connect_many(count=-1)", lambda: connect_many(("127.0.0.1", 1), -1), ConfigError, "count"),
    ("a framer fed after EOF", _framer_fed_after_eof, StateError, "after end-of-file"),
    ("LeakCheck.leaks() unstarted", _leak_check_not_started, StateError, r"start\(\)"),
]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [pytest.param(call, error, match, id=name) for name, call, error, match in RAISE_SITES],
)
def test_raise_sites_raise_the_typedserve_error_that_is_also_the_builtin(
    call: Callable[[], object], error: type[TypedServeError], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(BUILTIN_BASES[error], match=match):
        call()


def test_an_argument_error_names_the_argument_the_rule_and_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        ThreadPool(max_workers=0)
    assert str(caught.value) == "ThreadPool(max_workers=...) must be >= 1, got 0"
    assert caught.value.problems == (("max_workers", 0, ">= 1"),)


def test_fork_per_request_without_pidfd_open_is_an_unsupported_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    with pytest.raises(UnsupportedPlatformError, match=r"os\.pidfd_open") as caught:
        ForkPerRequest()
    assert isinstance(caught.value, OSError)


def test_one_async_io_strategy_cannot_serve_two_servers() -> None:
    class Idle(AsyncHandler[AsyncStream]):
        async def handle(self) -> None:
            pass

    strategy = AsyncIO(loop="asyncio")

    def make() -> Server[Any, Any]:
        return Server(
            config=ServerConfig(), transport=TCPTransport(), handler=Idle, strategy=strategy
        )

    with make(), pytest.raises(ServerStateError, match="one server"):
        make()


def test_async_stream_misuse_raises_state_and_framing_errors() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        ready.set_result(None)
        stream = AsyncStream(loop, ready, ("127.0.0.1", 1))
        first = stream.read(10)  # driven by hand: it runs up to its wait and yields a future
        assert isinstance(first.send(None), asyncio.Future)
        with pytest.raises(StateError, match="another task is already reading"):
            await stream.read(10)
        stream.data_received(b"x" * 20)
        with pytest.raises(StopIteration) as done:
            first.send(None)
        assert done.value.value == b"x" * 10
        with pytest.raises(FramingError, match="longer than 4 bytes") as caught:
            await stream.readline(limit=4)
        assert (caught.value.limit, caught.value.size) == (4, 10)
        assert isinstance(caught.value, ValueError)
        stream.connection_lost(None)

    asyncio.run(scenario())


# -- no builtin exception raised on purpose outside the tree ---------------------------------

PACKAGE = Path(__file__).resolve().parent.parent / "typedserve"

# Raises of a builtin exception that stay builtin, by (module, enclosing function, exception),
# each with the reason. Control flow (StopIteration, SystemExit...) is not listed, and
# typedserve/compat is not scanned: it raises exactly what socketserver raises.
ALLOWED_BUILTIN_RAISES: dict[tuple[str, str, str], str] = {
    ("compat_proxy.py", "ProxyProtocolMixIn.finish_request", "TypeError"): (
        "a mix-in for socketserver-style classes, which reach the stdlib's handle_error: a "
        "datagram server given it is a TypeError, as the stdlib's own type mistakes are"
    ),
    ("__init__.py", "__getattr__", "AttributeError"): (
        "the module __getattr__ protocol (the package imports its exports lazily): a name that "
        "is not an export is an AttributeError, as for any module"
    ),
    ("metrics/__init__.py", "__getattr__", "AttributeError"): (
        "as above: typedserve.metrics imports its exports lazily too"
    ),
    ("config.py", "InetAddress._dual_stack_needs_ipv6", "ValueError"): (
        "a pydantic validator signals a rejected value with ValueError; ServerConfig turns the "
        "ValidationError into a ConfigError"
    ),
    ("config.py", "UnixAddress._fits_sun_path", "ValueError"): "as above: a pydantic validator",
    ("aio/stream.py", "AsyncStream.readexactly", "ValueError"): (
        "an argument error of the asyncio.StreamReader API AsyncStream mirrors, raised as "
        "asyncio raises it"
    ),
    ("aio/stream.py", "AsyncStream.readuntil", "ValueError"): "as above: asyncio's own check",
    ("aio/write_side.py", "WriteSide._drain_closing", "ConnectionResetError"): (
        "an I/O condition: a drain on a connection the transport is closing (a write failed), "
        "reported as asyncio's streams report it"
    ),
    ("aio/write_side.py", "WriteSide._write_unconnected", "ConnectionResetError"): (
        "an I/O condition: a write on a connection that is not (or no longer) there, reported "
        "as asyncio's transports report it"
    ),
    ("handlers.py", "_arm_deadline", "TimeoutError"): (
        "the timeouts.request deadline, raised as a socket timeout would be (an operation "
        "already blocked at the deadline is ended by the server's cut instead)"
    ),
    ("counters.py", "Counters.use_row", "IndexError"): "an index out of range, as Python says",
    ("framing/custom.py", "_SplitFramer._first_frame", "ValueError"): (
        "a Custom split function returned a length outside its contract: a bug in the user's "
        "function, reported as Python reports a bad __len__ result"
    ),
    (
        "framing/_assembler.py",
        "_Assembler._first_frame",
        "NotImplementedError",
    ): "an abstract method",
    ("framing/_assembler.py", "_Assembler._truncated", "NotImplementedError"): "an abstract method",
    ("testing/hostile/connections.py", "connect_many", "OSError"): (
        "the EMFILE the process would hit halfway, reported up front with its errno"
    ),
    ("testing/hostile/trickler.py", "Trickler.stop", "TimeoutError"): (
        "a testing helper's bounded wait ran out: a test failure, not an error to handle"
    ),
    ("testing/running.py", "serve_in_thread", "TimeoutError"): "as above: a testing wait",
    ("testing/running.py", "_wait_started", "TimeoutError"): "as above: a testing wait",
}

_CONTROL_FLOW = {"StopIteration", "StopAsyncIteration", "SystemExit", "GeneratorExit"}


def _builtin_raises(path: Path) -> set[tuple[str, str]]:
    """``(enclosing function, exception)`` for each ``raise SomeBuiltinError(...)`` in ``path``."""
    found: set[tuple[str, str]] = set()

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                kind = getattr(builtins, exc.id, None) if isinstance(exc, ast.Name) else None
                if isinstance(kind, type) and issubclass(kind, BaseException):
                    found.add((".".join(scope) or "<module>", kind.__name__))
            visit(child, scope)

    visit(ast.parse(path.read_text(), str(path)), ())
    return found


def test_no_builtin_exception_is_raised_on_purpose_outside_the_allowlist() -> None:
    seen: set[tuple[str, str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module.startswith("compat/"):
            continue
        for scope, name in _builtin_raises(path):
            if name not in _CONTROL_FLOW:
                seen.add((module, scope, name))
    unexpected = sorted(seen - set(ALLOWED_BUILTIN_RAISES))
    assert not unexpected, (
        "raise a TypedServeError subclass (see typedserve/errors.py) that keeps this builtin "
        f"as a base, or allowlist the site with a reason: {unexpected}"
    )
    assert not set(ALLOWED_BUILTIN_RAISES) - seen, "allowlisted raise sites that are gone"
