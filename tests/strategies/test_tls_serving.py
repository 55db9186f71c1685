"""TLS in every strategy, over TCP and Unix stream: real handshakes with Python's ``ssl``,
``openssl s_client`` and ``curl``; mutual TLS, ALPN, SNI; failed and stalled handshakes; the
close and the drain. The server's context is given ready made here (the config-built one is
tested in ``tests/tls``); every server goes through the suite's leak check."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import Gate, StrategyCase, TransportCase
from tests.strategies.tls_support import (
    PKI,
    WAIT,
    Describe,
    DescribeAsync,
    Hello,
    HelloAsync,
    read_all,
    tls_connect,
)
from typedserve import (
    ConfigError,
    Limits,
    Server,
    ServerConfig,
    TCPTransport,
    ThreadPool,
    Timeouts,
)
from typedserve.framing import Lines
from typedserve.policies import is_disconnect
from typedserve.testing import connect, serve_in_thread
from typedserve.transports.tls import TLSTransport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


MakeTLS = Callable[..., Server[Any, Any]]


@pytest.fixture
def make_tls(
    make_server: MakeServer, pki: PKI, strategy_case: StrategyCase, stream_case: TransportCase
) -> MakeTLS:
    """A TLS server of the case's strategy over the case's stream transport; keywords: the
    server context's (``client_auth``, ``alpn``), ``sync``/``async_`` handlers, the rest as
    ``make_server``'s."""

    def make(
        sync: Any = Describe,
        async_: Any = DescribeAsync,
        *,
        client_auth: ssl.VerifyMode = ssl.CERT_NONE,
        alpn: list[str] | None = None,
        **options: Any,
    ) -> Server[Any, Any]:
        context = pki.server_context(client_auth=client_auth, alpn=alpn)
        inner = stream_case.transport
        case = TransportCase(
            stream_case.name, lambda: TLSTransport(inner(), context=context), stream=True
        )
        handler = async_ if strategy_case.name == "AsyncIO" else sync
        return make_server(case, handler=handler, **options)

    return make


def ask(server: Server[Any, Any], context: ssl.SSLContext, name: str = "localhost") -> Any:
    """Connect, handshake, send a line; the JSON the ``Describe`` handler replies with."""
    with tls_connect(server, context, name) as conn:
        conn.sendall(b"describe\n")
        return json.loads(read_all(conn))


def peer_args(server: Server[Any, Any]) -> list[str]:
    """``openssl s_client``'s arguments to reach ``server`` (TCP or Unix)."""
    address = server.address
    if isinstance(address, tuple):
        return ["-connect", f"{address[0]}:{address[1]}"]
    return ["-unix", str(address)]


# -- serving -----------------------------------------------------------------------------------


def test_a_python_client_is_served_and_the_handler_sees_what_was_negotiated(
    make_tls: MakeTLS, pki: PKI
) -> None:
    with serve_in_thread(make_tls(alpn=["h2", "http/1.1"])) as server:
        reply = ask(server, pki.client_context(alpn=["http/1.1"]))
        assert reply["version"] in ("TLSv1.3", "TLSv1.2")
        assert reply["alpn"] == "http/1.1"
        assert reply["server_name"] == "localhost"
        assert reply["peer"] is None
        assert server.stats().handshake_failures == 0


def test_openssl_s_client_is_served(make_tls: MakeTLS, pki: PKI) -> None:
    with serve_in_thread(make_tls()) as server:
        done = subprocess.run(
            [
                *["openssl", "s_client", *peer_args(server), "-servername", "localhost"],
                *["-CAfile", str(pki.ca_file), "-verify_return_error", "-quiet"],
            ],
            input=b"describe\n",
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        reply = json.loads(done.stdout.splitlines()[-1])
        assert reply["server_name"] == "localhost"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by .ci/run")
def test_curl_is_served(make_tls: MakeTLS, pki: PKI) -> None:
    with serve_in_thread(make_tls(Hello, HelloAsync)) as server:
        address = server.address
        if isinstance(address, tuple):
            where = [f"https://localhost:{address[1]}/"]
            where += ["--resolve", f"localhost:{address[1]}:127.0.0.1"]
        else:
            where = ["--unix-socket", str(address), "https://localhost/"]
        done = subprocess.run(
            [
                *["curl", "--silent", "--show-error", "--max-time", str(WAIT)],
                *["--cacert", str(pki.ca_file), "--http1.0", *where],
            ],
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"hello over TLSv1.")


def test_sni_picks_the_certificate_and_the_handler_sees_the_name(
    make_tls: MakeTLS, pki: PKI
) -> None:
    """A client asking for ``b.example`` verifies ``b.example``'s certificate (hostname check
    on): the server switched certificates by name."""
    with serve_in_thread(make_tls()) as server:
        assert ask(server, pki.client_context(), "b.example")["server_name"] == "b.example"
        assert ask(server, pki.client_context(), "localhost")["server_name"] == "localhost"


# -- mutual TLS ----------------------------------------------------------------------------------


def test_mutual_tls_accepts_a_good_client_certificate_and_shows_it(
    make_tls: MakeTLS, pki: PKI
) -> None:
    with serve_in_thread(make_tls(client_auth=ssl.CERT_REQUIRED)) as server:
        assert ask(server, pki.client_context(cert=pki.client))["peer"] == "alice"


@pytest.mark.parametrize("who", ["no certificate", "another CA's"])
def test_mutual_tls_refuses_a_missing_or_foreign_certificate(
    make_tls: MakeTLS, pki: PKI, strategy_case: StrategyCase, who: str
) -> None:
    """The handshake fails (with TLS 1.3 the client learns it at its first read: an alert,
    or with AsyncIO's TLS a bare end), no handler runs (no reply), the failure is counted,
    and the server goes on serving good clients."""
    cert = None if who == "no certificate" else pki.stranger
    replies = []
    with serve_in_thread(make_tls(client_auth=ssl.CERT_REQUIRED)) as server:
        refused = (ssl.SSLError, ConnectionResetError, BrokenPipeError)
        with contextlib.suppress(*refused), tls_connect(server, pki.client_context(cert=cert)) as c:
            c.sendall(b"describe\n")
            replies.append(read_all(c))
        assert ask(server, pki.client_context(cert=pki.client))["peer"] == "alice"
        stats = server.stats()
    assert replies in ([], [b""])
    assert stats.handshake_failures == 1
    assert stats.errors == 0


# -- failed and stalled handshakes ---------------------------------------------------------------


def test_a_failed_handshake_is_one_info_line_with_the_peer(
    make_tls: MakeTLS, pki: PKI, strategy_case: StrategyCase, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain text to a TLS port: the connection is closed (an end, not a reset), the failure
    counted and logged as one INFO line naming the peer (no traceback, no error)."""
    caplog.set_level(logging.INFO, "typedserve.server")
    with serve_in_thread(make_tls()) as server:
        with connect(server, timeout=WAIT) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            port = plain.getsockname()[1] if plain.family != socket.AF_UNIX else None
            assert read_all(plain) == b""
        # AsyncIO's TLS closes the connection before its handshake reports the failure: a
        # request served after it is served after the report.
        assert ask(server, pki.client_context())["server_name"] == "localhost"
        stats = server.stats()
    assert (stats.handshake_failures, stats.errors) == (1, 0)
    if strategy_case.in_process:  # forked children and workers log in their own process
        [line] = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
        assert line.levelno == logging.INFO and line.exc_info is None
        if port is not None:
            assert f":{port} failed" in line.getMessage()


def partial_hello(server: Server[Any, Any]) -> socket.socket:
    """A client that sends the first bytes of a ClientHello record, then stalls."""
    conn = connect(server, timeout=WAIT)
    conn.sendall(b"\x16\x03\x01\x02\x00\x01")  # handshake record header, ClientHello type
    return conn


def test_stalled_handshakes_are_closed_at_the_handshake_timeout_and_counted(
    make_tls: MakeTLS, pki: PKI, strategy_case: StrategyCase
) -> None:
    """Clients that stall mid-ClientHello hold a worker only until ``timeouts.handshake``;
    they are then closed (an end, no reset) and counted, and the server serves again."""
    stalled = min(strategy_case.concurrency, 3)
    timeouts = Timeouts(handshake=0.5)
    with serve_in_thread(make_tls(timeouts=timeouts)) as server:
        clients = [partial_hello(server) for _ in range(stalled)]
        for client in clients:
            with client:
                assert read_all(client) == b""
        # AsyncIO's TLS closes a timed-out connection before its handshake reports the
        # failure: a request served after it is served after the report.
        assert ask(server, pki.client_context())["server_name"] == "localhost"
        assert server.stats().handshake_failures == stalled


def test_silent_connections_do_not_starve_tls_clients(
    make_tls: MakeTLS, pki: PKI, strategy_case: StrategyCase
) -> None:
    """200 connections that send nothing wait in the loop for their ClientHello, holding no
    worker: a TLS client is served meanwhile, and after ``timeouts.first_byte`` the silent
    ones are closed and counted as slow clients."""
    if strategy_case.name == "Inline":
        pytest.skip("Inline handshakes on the loop thread: one stalled ClientHello holds it")
    timeouts = Timeouts(first_byte=1.0, handshake=1.0)
    with serve_in_thread(make_tls(timeouts=timeouts)) as server:
        silent = [connect(server, timeout=WAIT) for _ in range(200)]
        try:
            assert ask(server, pki.client_context())["server_name"] == "localhost"
            for conn in silent:
                assert read_all(conn) == b""
        finally:
            for conn in silent:
                conn.close()
        stats = server.stats()
    assert stats.slow_clients == 200
    assert stats.handshake_failures == 0


# -- ending: close_notify, drains ----------------------------------------------------------------


def test_a_normal_end_sends_close_notify(make_tls: MakeTLS, pki: PKI) -> None:
    """After the reply, the client reads a clean TLS end (``close_notify``): ``recv`` returns
    ``b""`` instead of raising ``SSLEOFError``."""
    with serve_in_thread(make_tls()) as server:
        context = pki.client_context()
        context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # an EOF without close_notify raises
        with tls_connect(server, context) as conn:
            conn.sendall(b"describe\n")
            assert read_all(conn).endswith(b"}\n")


def test_a_drain_cuts_a_handler_blocked_in_a_tls_read(
    make_server: MakeServer,
    pki: PKI,
    gate: Gate,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
) -> None:
    """A handler blocked reading a TLS connection is cut at the drain's deadline; the client
    sees the end (no hang)."""
    context = pki.server_context()
    inner = stream_case.transport
    case = TransportCase(
        stream_case.name, lambda: TLSTransport(inner(), context=context), stream=True
    )
    server = make_server(case)  # the suite's command handler: "hold" blocks reading
    with serve_in_thread(server), tls_connect(server, pki.client_context()) as conn:
        conn.sendall(b"hold\n")
        gate.wait_started(1)
        report = server.shutdown(grace=0.5)
        with contextlib.suppress(ssl.SSLEOFError):  # an end without close_notify: it was cut
            read_all(conn)
    assert report is not None and report.cut == 1


# -- what cannot be paired ---------------------------------------------------------------------


def test_a_framed_handler_over_tls_is_refused_when_the_server_is_built(pki: PKI) -> None:
    class Framed(Describe):
        framing = Lines()

    transport = TLSTransport(TCPTransport(), context=pki.server_context())
    with pytest.raises(ConfigError, match="declares a framing"):
        Server(config=ServerConfig(), transport=transport, handler=Framed)


def test_a_tls_client_refused_under_overload_gets_no_plaintext_busy_reply(pki: PKI) -> None:
    """``limits.overload="reject"`` with the one worker busy: the refused TLS client gets a
    clean close, and the busy hook (which would write plaintext) is not called."""
    calls: list[object] = []
    transport = TLSTransport(TCPTransport(), context=pki.server_context())
    config = ServerConfig(limits=Limits(overload="reject"))
    strategy = ThreadPool(max_workers=1, max_pending=0)
    server = Server(
        config=config,
        transport=transport,
        handler=Describe,
        strategy=strategy,
        on_busy=calls.append,
    )
    with serve_in_thread(server), tls_connect(server, pki.client_context()) as first:
        # first's handler now waits for its line: the server is full
        with connect(server, timeout=WAIT) as second:
            second.sendall(b"\x16\x03\x01")
            assert read_all(second) == b""
        first.sendall(b"describe\n")
        assert json.loads(read_all(first))["server_name"] == "localhost"
        stats = server.stats()
    assert calls == []
    assert stats.rejected == 1


def test_a_client_gone_without_close_notify_is_a_disconnect_not_an_error(
    make_server: MakeServer,
    pki: PKI,
    gate: Gate,
    stream_case: TransportCase,
) -> None:
    """A handler blocked reading a TLS connection whose client vanishes without ``close_notify``
    (``ssl.SSLEOFError``) is a network event: counted in ``disconnects``, not an error."""
    context = pki.server_context()
    inner = stream_case.transport
    case = TransportCase(
        stream_case.name, lambda: TLSTransport(inner(), context=context), stream=True
    )
    server = make_server(case)  # the suite's command handler: "hold" reads until the end
    with serve_in_thread(server):
        conn = tls_connect(server, pki.client_context())
        conn.sendall(b"hold\n")
        gate.wait_started(1)
        conn.close()  # no close_notify: the server's read sees an EOF in violation of TLS
        gate.wait_ended()
    stats = server.stats()  # the server is closed: its handler has been reported
    assert (stats.errors, stats.in_flight) == (0, 0)
    assert stats.disconnects <= 1  # an SSLEOFError, or an end read as a plain one (b"")


def test_a_tls_eof_is_classified_as_a_disconnect() -> None:
    assert is_disconnect(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert is_disconnect(ConnectionResetError())
    assert not is_disconnect(ssl.SSLError(1, "bad record"))
    assert not is_disconnect(ValueError("a handler bug"))
