"""The access log on every strategy: one record per admitted request, with its outcome and bytes.

Records are written by a ``JsonFormatter`` file handler on ``typedserve.access``: a forked child
or a prefork worker inherits it and appends its own records, so every strategy is observed the
same way, after the server is closed (every child and worker has exited by then). Each line
must parse as JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import WAIT, Gate, StrategyCase, TransportCase
from tests.strategies.test_conformance import ask, busy, hold, receive, send
from tests.strategies.tls_support import PKI, Describe, DescribeAsync, read_all, tls_connect
from typedserve import AccessLogConfig, Limits, Prefork, TCPTransport
from typedserve.access_log.config import FIELDS
from typedserve.logformat import JsonFormatter
from typedserve.proxy import encode_v2
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.testing import connect, serve_in_thread
from typedserve.transports.proxied import ProxyProtocolTransport
from typedserve.transports.tls import TLSTransport

pytestmark = pytest.mark.timeout(60)

ON = AccessLogConfig(enabled=True)
Records = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    """The access records written so far (JSON lines in a file every process appends to).

    Set up before ``make_server`` (and so before its leak check), torn down after it."""
    path = tmp_path / "access.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("typedserve.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def read() -> list[dict[str, Any]]:
        handler.flush()
        lines = path.read_text().splitlines()
        parsed = [json.loads(line) for line in lines]  # every line is one JSON object
        for record in parsed:
            assert record["logger"] == "typedserve.access"
            assert record["level"] == "INFO"
            assert set(FIELDS) <= set(record)
        return parsed

    yield read
    logger.removeHandler(handler)
    logger.setLevel(level)
    handler.close()


def bytes_of(transport_case: TransportCase, sent: bytes, replied: int) -> tuple[Any, Any]:
    """What the record says for a request of ``sent`` bytes answered with ``replied``: TCP counts
    both (the kernel's totals), Unix streams neither, a datagram its own length."""
    if transport_case.name == "tcp":
        return len(sent), replied
    if transport_case.name == "udp":
        return len(sent), None
    return None, None


def payload(transport_case: TransportCase, command: bytes) -> bytes:
    """What the client sends for ``command`` (a stream's line, or the bare command)."""
    return command + b"\n" if transport_case.stream else command


def test_a_completed_request_is_one_record_with_its_addresses_and_bytes(
    records: Records, make_server: MakeServer, transport_case: TransportCase
) -> None:
    server = make_server(transport_case, access_log=ON)
    with serve_in_thread(server):
        assert ask(server, transport_case.stream, b"echo:hello") == b"hello"
    server.close(grace=WAIT)
    [record] = records()
    assert record["outcome"] == "completed"
    assert record["duration_ms"] >= 0
    replied = 6 if transport_case.stream else 5  # the reply line, or the bare datagram
    expected = bytes_of(transport_case, payload(transport_case, b"echo:hello"), replied)
    assert (record["bytes_in"], record["bytes_out"]) == expected
    assert record["upstream"] is None and record["tls_version"] is None
    address = server.address
    if isinstance(address, tuple):
        assert record["local"] == f"127.0.0.1:{address[1]}"
        assert record["peer"].startswith("127.0.0.1:")
    else:
        assert record["local"] == address
        assert record["peer"] is None  # an unnamed Unix client
    assert record["message"].startswith(f"{record['peer'] or '-'} -> {record['local']} completed")


def test_a_handler_error_is_one_error_record(
    records: Records, make_server: MakeServer, transport_case: TransportCase
) -> None:
    server = make_server(transport_case, access_log=ON)
    with serve_in_thread(server):
        if transport_case.stream:
            assert ask(server, True, b"boom") == b""
        else:
            with connect(server) as client:
                client.send(b"boom")
            assert ask(server, False, b"echo:after") == b"after"  # the boom was served first
    server.close(grace=WAIT)
    outcomes = [record["outcome"] for record in records()]
    assert sorted(outcomes) == (["error"] if transport_case.stream else ["completed", "error"])
    [error] = [record for record in records() if record["outcome"] == "error"]
    sent = payload(transport_case, b"boom")
    assert (error["bytes_in"], error["bytes_out"]) == bytes_of(transport_case, sent, 0)


def test_a_request_cut_by_a_drain_is_one_cut_record(
    records: Records, make_server: MakeServer, gate: Gate, stream_case: TransportCase
) -> None:
    server = make_server(stream_case, access_log=ON)
    with serve_in_thread(server):
        client = connect(server, timeout=WAIT)
        send(client, True, b"hold")
        gate.wait_started(1)
        report = server.shutdown(grace=0.01)
        assert report is not None and report.cut == 1
        assert client.recv(10) == b""
        client.close()
    server.close(grace=WAIT)
    [record] = records()
    assert record["outcome"] == "cut"
    assert (record["bytes_in"], record["bytes_out"]) == bytes_of(stream_case, b"hold\n", 0)


def test_a_request_the_access_policy_refuses_is_one_refused_record(
    records: Records, make_server: MakeServer, transport_case: TransportCase
) -> None:
    server = make_server(transport_case, access_log=ON, verify_request=lambda request: False)
    with serve_in_thread(server):
        with connect(server, timeout=WAIT) as client:
            send(client, transport_case.stream, b"echo:no")
            if transport_case.stream:
                with contextlib.suppress(ConnectionResetError):  # closed with our line unread
                    assert receive(client, True) == b""  # closed unanswered
        server.shutdown(grace=WAIT)  # the datagram is read before the loop stops
    server.close(grace=WAIT)
    [record] = records()
    assert record["outcome"] == "refused"
    assert record["bytes_out"] in (0, None)


def test_a_request_rejected_at_the_limit_is_one_rejected_record(
    records: Records,
    make_server: MakeServer,
    gate: Gate,
    strategy_case: StrategyCase,
    transport_case: TransportCase,
) -> None:
    if strategy_case.name == "Inline":
        pytest.skip("Inline never holds two requests: its rejections come from drains (below)")
    stream = transport_case.stream
    # One worker: Prefork applies the limit per worker.
    strategy = Prefork(workers=1, threads_per_worker=2) if strategy_case.name == "Prefork" else None
    server = make_server(
        transport_case,
        access_log=ON,
        limits=Limits(max_in_flight=2, overload="reject"),
        on_busy=busy,
        strategy=strategy,
    )
    with serve_in_thread(server):
        clients = hold(server, stream, gate, 2)
        assert ask(server, stream, b"echo:extra") == b"BUSY"
        gate.release()
        assert [receive(client, stream) for client in clients] == [b"done", b"done"]
        for client in clients:
            client.close()
    server.close(grace=WAIT)
    outcomes = sorted(record["outcome"] for record in records())
    assert outcomes == ["completed", "completed", "rejected"]
    [rejected] = [record for record in records() if record["outcome"] == "rejected"]
    assert rejected["duration_ms"] == 0
    if transport_case.name == "tcp":
        assert rejected["bytes_out"] == len(b"BUSY\n")


def test_a_silent_connection_a_drain_turns_away_is_one_rejected_record(
    records: Records, make_server: MakeServer, stream_case: TransportCase
) -> None:
    server = make_server(stream_case, access_log=ON)
    with serve_in_thread(server):
        silent = connect(server, timeout=WAIT)
        # Accepted in order: once this one is served, the silent one was taken (and parked).
        assert ask(server, True, b"echo:after") == b"after"
        server.shutdown(grace=0.5)
        assert silent.recv(10) == b""  # turned away with an orderly end
        silent.close()
    server.close(grace=WAIT)
    assert sorted(record["outcome"] for record in records()) == ["completed", "rejected"]


def test_no_record_without_the_access_log(
    records: Records, make_server: MakeServer, transport_case: TransportCase
) -> None:
    server = make_server(transport_case)
    assert server._serving.observer is None
    with serve_in_thread(server):
        assert ask(server, transport_case.stream, b"echo:quiet") == b"quiet"
    server.close(grace=WAIT)
    assert records() == []


# -- TLS and the PROXY protocol ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


def _three(strategy_case: StrategyCase) -> None:
    if strategy_case.name not in ("ThreadPool", "Prefork", "AsyncIO"):
        pytest.skip("one strategy per serving model: threads, processes, an event loop")


def test_a_tls_record_carries_what_the_handshake_negotiated(
    records: Records, make_server: MakeServer, pki: PKI, strategy_case: StrategyCase
) -> None:
    _three(strategy_case)
    context = pki.server_context(client_auth=ssl.CERT_OPTIONAL)
    case = TransportCase("tcp", lambda: TLSTransport(TCPTransport(), context=context), stream=True)
    handler = DescribeAsync if strategy_case.name == "AsyncIO" else Describe
    server = make_server(case, handler=handler, access_log=ON)
    with serve_in_thread(server):
        with tls_connect(server, pki.client_context(cert=pki.client)) as conn:
            conn.sendall(b"hi\n")
            negotiated = json.loads(read_all(conn))
        with connect(server, timeout=WAIT) as plain:  # not TLS: the handshake fails
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with contextlib.suppress(OSError):  # closed, perhaps after an alert, or reset
                read_all(plain)
    server.close(grace=WAIT)
    by_outcome = {record["outcome"]: record for record in records()}
    assert sorted(by_outcome) == ["completed", "handshake_failed"]
    tls = by_outcome["completed"]
    assert tls["tls_version"] == negotiated["version"]
    assert tls["tls_cipher"] == negotiated["cipher"]
    assert tls["tls_sni"] == "localhost"
    assert tls["tls_client"].startswith("O=trustme") and tls["tls_client"].endswith(",CN=alice")
    assert tls["bytes_in"] > len(b"hi\n") and tls["bytes_out"] > 0  # TLS records on the wire
    assert f"tls={tls['tls_version']} {tls['tls_cipher']} sni=localhost" in tls["message"]
    assert by_outcome["handshake_failed"]["tls_version"] is None


def test_a_proxy_record_names_the_relayed_client_and_the_upstream(
    records: Records, make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    _three(strategy_case)
    case = TransportCase("tcp", lambda: ProxyProtocolTransport(TCPTransport()), stream=True)
    server = make_server(case, access_log=ON, proxy_protocol=ProxyProtocolConfig())
    header = encode_v2("TCP4", ("10.1.2.3", 4444), ("10.0.0.1", 443))
    with serve_in_thread(server):
        with connect(server, timeout=WAIT) as conn:
            conn.sendall(header + b"echo:relayed\n")
            assert receive(conn, True) == b"relayed"
            upstream = conn.getsockname()
        with connect(server, timeout=WAIT) as conn:  # no header: refused
            conn.sendall(b"echo:direct\n")
            with contextlib.suppress(ConnectionResetError):  # closed with the line unread
                assert receive(conn, True) == b""
    server.close(grace=WAIT)
    by_outcome = {record["outcome"]: record for record in records()}
    assert sorted(by_outcome) == ["completed", "proxy_refused"]
    relayed = by_outcome["completed"]
    assert relayed["peer"] == "10.1.2.3:4444"
    assert relayed["upstream"] == f"{upstream[0]}:{upstream[1]}"
    assert relayed["bytes_in"] == len(header) + len(b"echo:relayed\n")
    assert f" via {relayed['upstream']}" in relayed["message"]
    assert by_outcome["proxy_refused"]["upstream"] is None


def test_records_of_several_connections_are_one_each(
    records: Records, make_server: MakeServer, stream_case: TransportCase
) -> None:
    server = make_server(stream_case, access_log=ON)
    with serve_in_thread(server):
        clients = [connect(server, timeout=WAIT) for _ in range(5)]
        for index, client in enumerate(clients):
            send(client, True, b"echo:%d" % index)
        assert [receive(client, True) for client in clients] == [b"%d" % i for i in range(5)]
        for client in clients:
            client.shutdown(socket.SHUT_WR)
            client.close()
    server.close(grace=WAIT)
    assert [record["outcome"] for record in records()] == ["completed"] * 5
