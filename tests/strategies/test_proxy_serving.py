"""The PROXY protocol in ThreadPool, Prefork and AsyncIO, over TCP and Unix stream: a real
HAProxy (``send-proxy``, ``send-proxy-v2``, health checks) relays a client bound to 127.0.0.2
and the handler sees that client; headers injected directly (untrusted, split, stalled, LOCAL,
missing); the access policy on the relayed client; PROXY under TLS. Every server goes through
the suite's leak check."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.haproxy_support import run_haproxy, through
from tests.strategies.support import STRATEGY_CASES, StrategyCase, TransportCase
from tests.strategies.tls_support import PKI, read_all
from typedserve import (
    FDAddress,
    InetAddress,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    ThreadPool,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.policies import AllowNetworks
from typedserve.proxy import ProxyHeader, TLVType, encode_v1, encode_v2
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.testing import serve_in_thread
from typedserve.transports.proxied import ProxyProtocolTransport
from typedserve.transports.tls import TLSTransport

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
CLIENT = ("10.1.2.3", 4444)
SERVER_SIDE = ("10.0.0.1", 443)


class Relayed(Protocol):
    """What :func:`describe` reads: a ``StreamRequest``'s or an ``AsyncStream``'s."""

    @property
    def peer(self) -> Any: ...
    @property
    def upstream(self) -> Any: ...
    @property
    def proxy(self) -> ProxyHeader | None: ...


def describe(request: Relayed, line: bytes) -> bytes:
    """What the handlers reply: who they think they serve."""
    header = request.proxy
    return (
        json.dumps(
            {
                "peer": request.peer,
                "upstream": request.upstream,
                "version": None if header is None else header.version,
                "command": None if header is None else header.command,
                "authority": None if header is None else header.authority,
                "line": line.decode(),
            }
        ).encode()
        + b"\n"
    )


class Whoami(StreamHandler):
    """Replies :func:`describe` for the line it reads; nothing to a silent health check."""

    def handle(self) -> None:
        line = self.rfile.readline().strip()
        if line:
            self.wfile.write(describe(self.request, line))


class WhoamiAsync(AsyncHandler[AsyncStream, Any]):
    """:class:`Whoami` as an async handler: the stream carries the same facts."""

    async def handle(self) -> None:
        line = (await self.request.readline()).strip()
        if line:
            self.request.write(describe(self.request, line))
            await self.request.drain()


@pytest.fixture(params=STRATEGY_CASES, ids=str)
def strategy_case(request: pytest.FixtureRequest) -> StrategyCase:
    """Every strategy: the header is read wherever each serves a request."""
    case: StrategyCase = request.param
    return case


MakeProxied = Callable[..., Server[Any, Any]]


@pytest.fixture
def make_proxied(
    make_server: MakeServer, strategy_case: StrategyCase, stream_case: TransportCase
) -> MakeProxied:
    """A PROXY server of the case's strategy over the case's stream transport; keywords: the
    ``proxy_protocol`` config's fields, ``wrap`` (around the PROXY transport), the rest as
    ``make_server``'s."""

    def make(wrap: Any = None, options: dict[str, Any] | None = None, **fields: Any) -> Any:
        inner = stream_case.transport

        def transport() -> Any:
            proxied = ProxyProtocolTransport(inner())
            return proxied if wrap is None else wrap(proxied)

        case = TransportCase(stream_case.name, transport, stream=True)
        handler = WhoamiAsync if strategy_case.name == "AsyncIO" else Whoami
        return make_server(
            case,
            handler=handler,
            proxy_protocol=ProxyProtocolConfig(**fields),
            **(options or {}),
        )

    return make


def direct(server: Server[Any, Any], source: str = "127.0.0.1") -> socket.socket:
    """A connection straight to ``server`` (no balancer), from ``source`` for TCP."""
    address = server.address
    if isinstance(address, tuple):
        return socket.create_connection(address, timeout=WAIT, source_address=(source, 0))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(WAIT)
    conn.connect(address)
    return conn


def ask(server: Server[Any, Any], data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send ``data`` directly, half-close, read the reply to the end (``b""``: refused)."""
    with direct(server, source) as conn:
        try:  # a refused connection may be gone before the client is done
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            return read_all(conn)
        except OSError:
            return b""


def tcp_only(stream_case: TransportCase) -> None:
    if stream_case.name != "tcp":
        pytest.skip("the upstream's address decides: TCP only")


# -- through HAProxy ---------------------------------------------------------------------------


@pytest.mark.skipif(
    not shutil.which("haproxy") and not Path("/usr/sbin/haproxy").exists(),
    reason="haproxy is installed by .ci/run",
)
def test_haproxy_relays_the_client_and_the_handler_sees_it(
    make_proxied: MakeProxied,
    short_tmp_dir: Path,
    stream_case: TransportCase,
    strategy_case: StrategyCase,
) -> None:
    """v1 and v2 frontends, a client bound to 127.0.0.2: the handler's peer is that client
    (typed as a TCP peer: ``(host, port)``), its upstream HAProxy; health checks (a v1 line, a
    v2 ``LOCAL``) are served too, and nothing is refused or failed."""
    with serve_in_thread(make_proxied()) as server:
        with run_haproxy(server.address, short_tmp_dir) as balancer:
            for version in (1, 2):
                reply = json.loads(through(balancer, version, b"hello\n"))
                assert reply["peer"][0] == "127.0.0.2"
                assert reply["line"] == "hello"
                assert reply["version"] == version
                assert reply["command"] == "PROXY"
                if stream_case.name == "tcp":
                    assert reply["upstream"][0] == "127.0.0.1"
        stats = server.stats()
    assert (stats.proxy_refused, stats.errors, stats.refused) == (0, 0, 0)


# -- headers injected directly ------------------------------------------------------------------


def test_a_header_from_an_untrusted_upstream_is_refused_counted_and_logged(
    make_proxied: MakeProxied, stream_case: TransportCase, caplog: pytest.LogCaptureFixture
) -> None:
    tcp_only(stream_case)
    caplog.set_level(logging.INFO, "typedserve.server")
    with serve_in_thread(make_proxied(trusted=("127.0.0.1/32",))) as server:
        assert ask(server, encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"x\n", "127.0.0.2") == b""
        trusted = json.loads(ask(server, encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"x\n"))
        assert trusted["peer"] == list(CLIENT)
        stats = server.stats()
    assert (stats.proxy_refused, stats.errors) == (1, 0)
    if server.strategy.process_slots == 0:  # a worker process logs in its own process
        assert "127.0.0.2" in caplog.text and "not in proxy_protocol.trusted" in caplog.text


@pytest.mark.parametrize("version", [1, 2])
def test_a_header_split_over_many_small_segments_parses(
    make_proxied: MakeProxied, version: int
) -> None:
    header = (
        encode_v1("TCP4", CLIENT, SERVER_SIDE)
        if version == 1
        else encode_v2("TCP4", CLIENT, SERVER_SIDE, tlvs=[(TLVType.AUTHORITY, b"example.com")])
    )
    with serve_in_thread(make_proxied()) as server, direct(server) as conn:
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(header)):  # one segment per byte
            conn.send(header[index : index + 1])
        conn.sendall(b"split\n")
        conn.shutdown(socket.SHUT_WR)
        reply = json.loads(read_all(conn))
    assert reply["peer"] == list(CLIENT)
    assert reply["line"] == "split"


def test_a_client_stalled_inside_its_header_is_closed_at_the_timeout_without_blocking_others(
    make_proxied: MakeProxied, strategy_case: StrategyCase
) -> None:
    if strategy_case.name == "Inline":
        pytest.skip("Inline reads the header on the loop thread: a stalled header holds it")
    with serve_in_thread(make_proxied(timeout=1.0)) as server, direct(server) as stalled:
        stalled.sendall(encode_v1("TCP4", CLIENT, SERVER_SIDE)[:20])
        reply = json.loads(ask(server, encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"other\n"))
        assert reply["line"] == "other"
        stalled.setblocking(False)
        with pytest.raises(BlockingIOError):  # still open: the other was served meanwhile
            stalled.recv(1)
        stalled.settimeout(WAIT)
        assert read_all(stalled) == b""  # then closed by the server, within the socket's WAIT
        stats = server.stats()
    assert (stats.proxy_refused, stats.errors) == (1, 0)


def test_a_local_header_keeps_the_real_peer(
    make_proxied: MakeProxied, strategy_case: StrategyCase, stream_case: TransportCase
) -> None:
    tcp_only(stream_case)
    with serve_in_thread(make_proxied()) as server:
        reply = json.loads(ask(server, encode_v2(command="LOCAL") + b"check\n"))
    assert reply["peer"][0] == "127.0.0.1"
    assert reply["command"] == "LOCAL"


@pytest.mark.parametrize("mode", ["required", "optional"])
def test_a_client_without_a_header_is_refused_or_served_as_is(
    make_proxied: MakeProxied, mode: str
) -> None:
    with serve_in_thread(make_proxied(mode=mode)) as server:
        reply = ask(server, b"plain\n")
        stats = server.stats()
    if mode == "required":
        assert reply == b""
        assert stats.proxy_refused == 1
    else:
        assert json.loads(reply)["line"] == "plain"
        assert stats.proxy_refused == 0


def test_the_access_policy_applies_to_the_relayed_client(make_proxied: MakeProxied) -> None:
    """``AllowNetworks`` sees the client the header names, not the upstream; a refused one is
    counted in ``refused`` (and never as finished: nothing stays in flight)."""
    options = {"verify_request": AllowNetworks(["10.1.0.0/16"], allow_unix=False)}
    with serve_in_thread(make_proxied(options=options)) as server:
        allowed = ask(server, encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"in\n")
        denied = ask(server, encode_v1("TCP4", ("10.2.0.1", 1), SERVER_SIDE) + b"out\n")
        assert json.loads(allowed)["line"] == "in"
        assert denied == b""
        stats = server.stats()
    assert (stats.refused, stats.proxy_refused) == (1, 0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


def test_the_header_comes_before_the_tls_handshake(
    make_proxied: MakeProxied, pki: PKI, strategy_case: StrategyCase
) -> None:
    """``TLSTransport(ProxyProtocolTransport(...))``: the header in clear, then TLS; the handler
    sees the relayed client, and (threads, processes) the header on the TLS request."""
    context = pki.server_context(client_auth=ssl.CERT_NONE, alpn=None)
    server = make_proxied(wrap=lambda proxied: TLSTransport(proxied, context=context))
    with serve_in_thread(server), direct(server) as raw:
        raw.sendall(encode_v2("TCP4", CLIENT, SERVER_SIDE))
        with pki.client_context().wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"tls\n")
            reply = json.loads(read_all(conn))
    assert reply["peer"] == list(CLIENT)
    assert reply["line"] == "tls"
    assert reply["version"] == 2


def _proxied_server(address: Any) -> Server[Any, Any]:
    return Server(
        config=ServerConfig(address=address, proxy_protocol=ProxyProtocolConfig()),
        transport=ProxyProtocolTransport(TCPTransport()),
        handler=Whoami,
        strategy=ThreadPool(max_workers=2),
    )


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
@pytest.mark.parametrize("family", ["TCP4", "TCP6"])
def test_an_ipv6_listener_relays_the_client_the_header_names(
    family: Literal["TCP4", "TCP6"],
) -> None:
    client = CLIENT if family == "TCP4" else ("2001:db8::7", 4444)
    server_side = SERVER_SIDE if family == "TCP4" else ("2001:db8::1", 443)
    server = _proxied_server(InetAddress(host="::1"))
    with serve_in_thread(server), socket.create_connection(server.address[:2], WAIT) as conn:
        conn.sendall(encode_v2(family, client, server_side) + b"v6\n")
        conn.shutdown(socket.SHUT_WR)
        reply = json.loads(read_all(conn))
    assert tuple(reply["peer"][:2]) == client
    assert reply["upstream"][0] == "::1"  # the balancer, over IPv6


def test_an_inherited_listening_socket_reads_headers_too() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    fd = listener.detach()  # the server owns the fd from here
    server = _proxied_server(FDAddress(fd=fd))
    with serve_in_thread(server), socket.create_connection(server.address, WAIT) as conn:
        conn.sendall(encode_v1("TCP4", CLIENT, SERVER_SIDE) + b"fd\n")
        conn.shutdown(socket.SHUT_WR)
        reply = json.loads(read_all(conn))
    assert reply["peer"] == list(CLIENT)
    assert reply["line"] == "fd"
