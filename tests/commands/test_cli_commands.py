"""The ``typedserve`` command: demo, serve, check-config, and graceful signals."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.commands.processes import ROOT, Running

pytestmark = pytest.mark.timeout(60)

_DEMO_READY = r"nc -N \S+ (\d+)[\s\S]*Press Ctrl-C to stop"


def _tcp_roundtrip(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def _udp_roundtrip(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65536)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_answers_tcp_and_udp_then_stops_cleanly(
    launch: Callable[..., Running], sig: signal.Signals
) -> None:
    demo = launch(
        "-m",
        "typedserve",
        "demo",
        "--port",
        "0",
        port_pattern=r"nc -N \S+ (\d+)[\s\S]*Press Ctrl-C to stop",
    )
    assert _tcp_roundtrip(demo.port, b"hello\nworld\n") == b"hello\nworld\n"
    assert _udp_roundtrip(demo.port, b"ping") == b"ping"
    status, output = demo.stop(sig)
    assert status == 0, output
    assert "typedserve: stopped" in output


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is installed by .ci/run")
def test_demo_talks_to_socat(launch: Callable[..., Running]) -> None:
    demo = launch("-m", "typedserve", "demo", "--port", "0", port_pattern=_DEMO_READY)
    answer = subprocess.run(
        ["socat", "-t5", "-", f"TCP:127.0.0.1:{demo.port}"],
        input=b"over socat\n",
        capture_output=True,
        timeout=20,
        check=True,
    )
    assert answer.stdout == b"over socat\n"
    udp = subprocess.run(
        ["socat", "-t2", "-", f"UDP:127.0.0.1:{demo.port}"],
        input=b"udp via socat",
        capture_output=True,
        timeout=20,
        check=True,
    )
    assert udp.stdout == b"udp via socat"


def test_demo_on_a_taken_port_names_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "typedserve", "demo", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    assert "address already in use" in result.stderr


def test_serve_a_handler_class_with_flags(launch: Callable[..., Running]) -> None:
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho",
        "--host", "127.0.0.1", "--port", "0", "--strategy", "inline",
        port_pattern=r"serving TCP on 127\.0\.0\.1:(\d+) with Inline",
    )  # fmt: skip
    assert _tcp_roundtrip(server.port, b"x\n") == b"x\n"
    status, output = server.stop()
    assert status == 0, output


def test_serve_a_datagram_handler_picks_udp(launch: Callable[..., Running]) -> None:
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:DatagramEcho", "--port", "0",
        port_pattern=r"serving UDP on 127\.0\.0\.1:(\d+)",
    )  # fmt: skip
    assert _udp_roundtrip(server.port, b"d") == b"d"
    assert server.stop()[0] == 0


def test_serve_a_factory_with_a_config_file(launch: Callable[..., Running], tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('[address]\nkind = "inet"\nhost = "127.0.0.1"\nport = 0\n')
    server = launch(
        "-m", "typedserve", "serve", "examples.kv_store:build_server", "--config", str(config),
        port_pattern=r"serving TCP on 127\.0\.0\.1:(\d+)",
    )  # fmt: skip
    assert _tcp_roundtrip(server.port, b"SET k v\nGET k\n") == b"OK\nVALUE v\n"
    assert server.stop()[0] == 0


def test_serve_on_a_unix_socket(launch: Callable[..., Running], tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--unix", str(path),
        port_pattern=r"serving UnixStream on ",
    )  # fmt: skip
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        conn.sendall(b"unix\n")
        assert conn.recv(100) == b"unix\n"
    assert server.stop()[0] == 0
    assert not path.exists(), "the socket file is unlinked on close"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "nosuchmodule:X"], "cannot import 'nosuchmodule'"),
        (["serve", "typedserve.demo:Nope"], "has no attribute 'Nope'"),
        (["serve", "typedserve.demo"], "expected MODULE:ATTR"),
        (["serve", "typedserve.demo:StreamEcho", "--udp"], "cannot serve --udp"),
        (["serve", "typedserve.demo:StreamEcho", "--port", "70000"], "address.port = 70000"),
    ],
)
def test_serve_errors_are_clear(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "typedserve", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_check_config_prints_the_effective_config(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("backlog = 64\n[timeouts]\nidle = 30\n")
    result = subprocess.run(
        [sys.executable, "-m", "typedserve", "check-config", str(good)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert '"backlog": 64' in result.stdout
    assert '"idle": 30.0' in result.stdout


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('backlog = -1\ncolour = "red"\n[address]\nport = 99999\n')
    result = subprocess.run(
        [sys.executable, "-m", "typedserve", "check-config", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "backlog = -1: Input should be greater than or equal to 0" in result.stderr
    assert "colour = 'red': Extra inputs are not permitted" in result.stderr
    assert "address.port = 99999: Input should be less than or equal to 65535" in result.stderr
