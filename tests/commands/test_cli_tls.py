"""``typedserve serve`` over TLS: the ``--certfile``/``--keyfile`` flags, and SIGHUP re-reading
the certificate files (a plain threads server, and a ``Prefork`` one whose workers roll)."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from tests.commands.processes import ROOT, Running

pytestmark = pytest.mark.timeout(60)

_READY = r"serving TLS on 127\.0\.0\.1:(\d+)"
_ATTEMPTS = 200  # connections tried while waiting for the new certificate (each a handshake)


def write_pair(cert: trustme.LeafCert, directory: Path) -> tuple[Path, Path]:
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return certfile, keyfile


def echo_serial(port: int, context: ssl.SSLContext) -> str:
    """One TLS echo round trip; the serial number of the certificate the server presented."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"ping\n")
        assert conn.recv(100) == b"ping\n"
        return str((conn.getpeercert() or {})["serialNumber"])


@pytest.mark.parametrize("strategy", ["threads", "prefork"])
def test_sighup_reloads_the_certificate_files(
    launch: Callable[..., Running], tmp_path: Path, strategy: str
) -> None:
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    certfile, keyfile = write_pair(ca.issue_cert("127.0.0.1"), tmp_path)
    server = launch(
        *["-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--port", "0"],
        *["--strategy", strategy, "--certfile", str(certfile), "--keyfile", str(keyfile)],
        port_pattern=_READY,
    )
    first = echo_serial(server.port, client)
    write_pair(ca.issue_cert("127.0.0.1"), tmp_path)
    server.process.send_signal(signal.SIGHUP)
    server.expect(r"TLS certificates reloaded")
    serials = [echo_serial(server.port, client) for _ in range(3)]
    for _ in range(_ATTEMPTS):  # Prefork: the old workers may take a few more connections
        if serials[-1] != first:
            break
        serials.append(echo_serial(server.port, client))
    assert serials[-1] != first
    status, output = server.stop(signal.SIGTERM)
    assert status == 0, output


def test_a_bad_certificate_file_is_exit_status_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    done = subprocess.run(
        [
            *[sys.executable, "-m", "typedserve", "serve", "typedserve.demo:StreamEcho"],
            *["--port", "0", "--certfile", str(bad), "--keyfile", str(bad)],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "tls.certfile" in done.stderr and str(bad) in done.stderr
