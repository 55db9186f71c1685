"""TLS configured from ``ServerConfig.tls`` (files), and certificates reloaded under load:
``server.reload_tls()`` while a client loop runs loses no request, and new connections get the
new certificate; a reload that cannot load the files keeps the old certificate."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.strategies.conftest import MakeServer
from tests.strategies.support import StrategyCase, TransportCase
from tests.strategies.tls_support import PKI, WAIT, Describe, DescribeAsync, read_all, tls_connect
from typedserve import Prefork, Server, TLSConfig
from typedserve.testing import serve_in_thread
from typedserve.transports.tls import TLSTransport

pytestmark = pytest.mark.timeout(60)

_BOUND = 2_000  # requests the client loop makes at most


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


def write_pair(cert: trustme.LeafCert, directory: Path) -> TLSConfig:
    """Write ``cert`` and its key into ``directory`` (replacing what is there)."""
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return TLSConfig(certfile=certfile, keyfile=keyfile)


def tls_server(
    make_server: MakeServer, strategy_case: StrategyCase, stream_case: TransportCase, tls: TLSConfig
) -> Server[Any, Any]:
    inner = stream_case.transport
    case = TransportCase(stream_case.name, lambda: TLSTransport(inner()), stream=True)
    handler = DescribeAsync if strategy_case.name == "AsyncIO" else Describe
    return make_server(case, handler=handler, tls=tls)


class ClientLoop:
    """Requests one after the other on new TLS connections, recording each certificate's
    serial number and every failure, until stopped (at most ``_BOUND`` requests)."""

    def __init__(self, server: Server[Any, Any], pki: PKI) -> None:
        self.server, self.context = server, pki.client_context()
        self.serials: list[str] = []
        self.failures: list[BaseException] = []
        self.running = threading.Event()  # a few requests went through
        self.changed = threading.Event()  # a serial other than the first was seen
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tls-client-loop")

    def _run(self) -> None:
        for _ in range(_BOUND):
            if self.stop.is_set():
                return
            try:
                with tls_connect(self.server, self.context) as conn:
                    serial = str((conn.getpeercert() or {})["serialNumber"])
                    conn.sendall(b"describe\n")
                    json.loads(read_all(conn))
            except Exception as exc:
                self.failures.append(exc)
                continue
            self.serials.append(serial)
            if len(self.serials) >= 3:
                self.running.set()
            if serial != self.serials[0]:
                self.changed.set()

    def __enter__(self) -> ClientLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(WAIT)


def test_a_reload_under_load_loses_no_request_and_switches_certificates(
    make_server: MakeServer,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
    pki: PKI,
    tmp_path: Path,
) -> None:
    """For ``Prefork`` the reload rolls the workers: until the old ones retire, a connection
    may still get the old certificate; once the new workers are all ready, none does."""
    tls = write_pair(pki.ca.issue_cert("127.0.0.1", "localhost"), tmp_path)
    server = tls_server(make_server, strategy_case, stream_case, tls)
    with serve_in_thread(server):
        old_workers = server.strategy.pids if isinstance(server.strategy, Prefork) else []
        with ClientLoop(server, pki) as client:
            assert client.running.wait(WAIT), client.failures
            new = pki.ca.issue_cert("127.0.0.1", "localhost")
            write_pair(new, tmp_path)
            assert server.reload_tls()
            assert client.changed.wait(WAIT), client.failures
        if old_workers:
            assert server.strategy.wait_ready(WAIT, replacing=old_workers)
        else:  # in one process (or forked from it): from the first new one on, only new ones
            switched = next(i for i, s in enumerate(client.serials) if s != client.serials[0])
            assert len(set(client.serials[switched:])) == 1
        later = [serial_of(server, pki) for _ in range(5)]
    assert client.failures == []
    first = client.serials[0]
    new_ones = {serial for serial in client.serials if serial != first}
    assert len(new_ones) == 1  # the one new certificate (Prefork: old ones may come between)
    assert set(later) == new_ones


def serial_of(server: Server[Any, Any], pki: PKI) -> str:
    """The serial number of the certificate a new connection is served with."""
    with tls_connect(server, pki.client_context()) as conn:
        return str((conn.getpeercert() or {})["serialNumber"])


def test_a_reload_that_cannot_load_the_files_keeps_the_old_certificate(
    make_server: MakeServer,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
    pki: PKI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if strategy_case.name != "ThreadPool" or stream_case.name != "tcp":
        pytest.skip("the context source is shared by every strategy: one case is enough")
    tls = write_pair(pki.ca.issue_cert("127.0.0.1", "localhost"), tmp_path)
    server = tls_server(make_server, strategy_case, stream_case, tls)
    with serve_in_thread(server):
        before = tls_connect(server, pki.client_context())
        with before:
            serial = (before.getpeercert() or {})["serialNumber"]
        Path(tls.certfile).write_text("not a certificate\n")
        assert not server.reload_tls()
        with tls_connect(server, pki.client_context()) as after:
            assert (after.getpeercert() or {})["serialNumber"] == serial
            after.sendall(b"describe\n")
            assert json.loads(read_all(after))["server_name"] == "localhost"
    assert any("tls.certfile" in record.getMessage() for record in caplog.records)
