"""The ``typedserve`` command: demo, serve, check-config, and graceful signals."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.commands.processes import ROOT, Running, tcp_roundtrip

pytestmark = pytest.mark.timeout(60)

_DEMO_READY = r"nc -N \S+ (\d+)[\s\S]*Press Ctrl-C to stop"


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
    assert tcp_roundtrip(demo.port, b"hello\nworld\n") == b"hello\nworld\n"
    assert _udp_roundtrip(demo.port, b"ping") == b"ping"
    status, output = demo.stop(sig)
    assert status == 0, output
    assert "typedserve: stopped" in output


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is installed by .ci/run")
def test_demo_with_tls_makes_a_certificate_and_echoes_over_tls(
    launch: Callable[..., Running],
) -> None:
    """``demo --tls`` prints the s_client line with the certificate it made; a client that
    trusts that certificate (hostname checked: 127.0.0.1) gets its lines back; UDP stays plain;
    the certificate is removed on exit."""
    demo = launch(
        "-m",
        "typedserve",
        "demo",
        "--tls",
        "--port",
        "0",
        port_pattern=r"openssl s_client -connect \S+:(\d+) -CAfile \S+ [\s\S]*Press Ctrl-C to stop",
    )
    match = re.search(r"-CAfile (\S+)", demo.banner)
    assert match is not None
    cafile = Path(match[1])
    context = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", demo.port), timeout=10)
    with raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"over tls\n")
        assert conn.recv(100) == b"over tls\n"
    assert _udp_roundtrip(demo.port, b"ping") == b"ping"
    status, output = demo.stop(signal.SIGTERM)
    assert status == 0, output
    assert not cafile.exists()


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
    assert tcp_roundtrip(server.port, b"x\n") == b"x\n"
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
    assert tcp_roundtrip(server.port, b"SET k v\nGET k\n") == b"OK\nVALUE v\n"
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


def test_serve_an_async_handler_picks_asyncio(launch: Callable[..., Running]) -> None:
    server = launch(
        "-m", "typedserve", "serve", "tests.commands.cli_targets:AsyncGreeter", "--port", "0",
        port_pattern=r"serving TCP on 127\.0\.0\.1:(\d+) with AsyncIO",
    )  # fmt: skip
    assert tcp_roundtrip(server.port, b"async\n") == b"ready\nasync\n"
    assert server.stop()[0] == 0


def test_serve_an_async_handler_with_strategy_asyncio(launch: Callable[..., Running]) -> None:
    server = launch(
        "-m", "typedserve", "serve", "tests.commands.cli_targets:AsyncGreeter",
        "--port", "0", "--strategy", "asyncio",
        port_pattern=r"serving TCP on 127\.0\.0\.1:(\d+) with AsyncIO",
    )  # fmt: skip
    assert tcp_roundtrip(server.port, b"a\nb\n") == b"ready\na\nb\n"
    assert server.stop()[0] == 0


def test_serve_an_async_datagram_handler_picks_udp(launch: Callable[..., Running]) -> None:
    server = launch(
        "-m", "typedserve", "serve", "tests.commands.cli_targets:AsyncDatagramEcho",
        "--port", "0",
        port_pattern=r"serving UDP on 127\.0\.0\.1:(\d+) with AsyncIO",
    )  # fmt: skip
    assert _udp_roundtrip(server.port, b"adgram") == b"adgram"
    assert server.stop()[0] == 0


@pytest.mark.parametrize(("flags", "kind"), [(["--udp"], "UDP"), ([], "TCP")])
def test_udp_decides_for_a_handler_that_does_not_name_its_request_type(
    launch: Callable[..., Running], flags: list[str], kind: str
) -> None:
    server = launch(
        "-m", "typedserve", "serve", "tests.commands.cli_targets:AnyRequestEcho",
        "--port", "0", *flags,
        port_pattern=rf"serving {kind} on 127\.0\.0\.1:(\d+) with AsyncIO",
    )  # fmt: skip
    if kind == "UDP":
        assert _udp_roundtrip(server.port, b"any") == b"any"
    else:
        assert tcp_roundtrip(server.port, b"") == b"ready\n"
    assert server.stop()[0] == 0


_TARGETS = "tests.commands.cli_targets"
_ECHO = "typedserve.demo:StreamEcho"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # The target.
        (["nosuchmodule:X"], "cannot import 'nosuchmodule': No module named 'nosuchmodule'"),
        (["typedserve.demo:Nope"], "module 'typedserve.demo' has no attribute 'Nope'"),
        (["typedserve.demo"], "expected MODULE:ATTR"),
        ([":StreamEcho"], "expected MODULE:ATTR"),
        (["os:getcwd"], "os:getcwd is not a factory(config) -> Server: too many positional"),
        ([f"{_TARGETS}:NOT_CALLABLE"], "NOT_CALLABLE is an object of type int, not a handler"),
        ([f"{_TARGETS}:NotAHandler"], "NotAHandler is a class but not a handler"),
        (["socketserver:StreamRequestHandler"], "is a class but not a handler"),
        ([f"{_TARGETS}:failing_factory"], "failing_factory(config) raised RuntimeError: the"),
        ([f"{_TARGETS}:no_server_factory"], "returned 'not a server', not a typedserve Server"),
        ([f"{_TARGETS}:two_argument_factory"], "missing a required argument: 'store'"),
        (["typedserve.handlers:StreamHandler"], "StreamHandler is abstract: it does not implement"),
        ([f"{_TARGETS}:AsyncByMistake"], "AsyncByMistake.handle is `async def` but the class"),
        ([f"{_TARGETS}:SyncByMistake"], "SyncByMistake.handle is not a coroutine function"),
        ([f"{_TARGETS}:CustomHandler"], "CustomHandler handles Custom requests"),
        ([f"{_TARGETS}:Tally"], "Tally expects shared state (collections.Counter[str])"),
        # Flags that do not fit the target.
        ([_ECHO, "--udp"], "StreamEcho is a stream handler; it cannot serve --udp"),
        ([f"{_TARGETS}:AsyncGreeter", "--udp"], "it cannot serve --udp"),
        (
            [_ECHO, "--strategy", "asyncio"],
            "StreamEcho is a synchronous handler: --strategy asyncio",
        ),
        (
            [f"{_TARGETS}:AsyncGreeter", "--strategy", "threads"],
            "runs only with --strategy asyncio",
        ),
        (
            [f"{_TARGETS}:AsyncGreeter", "--strategy", "prefork"],
            "runs only with --strategy asyncio",
        ),
        ([_ECHO, "--strategy", "pool", "--workers", "0"], "--workers must be at least 1, got 0"),
        (
            [_ECHO, "--strategy", "prefork", "--workers", "-3"],
            "--workers must be at least 1, got -3",
        ),
        ([_ECHO, "--strategy", "threads", "--workers", "4"], "--strategy threads has no size"),
        ([_ECHO, "--workers", "4"], "--strategy threads has no size"),
        ([f"{_TARGETS}:AsyncGreeter", "--workers", "2"], "--strategy asyncio has no size"),
        (["examples.kv_store:build_server", "--strategy", "pool"], "--strategy cannot change it"),
        # The config.
        ([_ECHO, "--config", "/nonexistent/server.toml"], "cannot read the config file"),
        ([_ECHO, "--unix", "/tmp/x.sock", "--port", "1"], "--unix cannot be combined"),
        ([_ECHO, "--port", "70000"], "address.port = 70000"),
        # PROXY protocol.
        ([_ECHO, "--proxy-trusted", "10.0.0.300/8"], "an IP network in CIDR form"),
        (
            [
                "typedserve.demo:DatagramEcho",
                "--unix",
                "/tmp/x.sock",
                "--proxy-protocol",
                "required",
            ],
            "PROXY protocol headers are read on streams and UDP only",
        ),
        (
            ["examples.kv_store:build_server", "--port", "0", "--proxy-protocol", "required"],
            "wrap its transport in a ProxyProtocolTransport",
        ),
        # Metrics.
        ([_ECHO, "--metrics", "9100"], "--metrics: expected HOST:PORT"),
        ([_ECHO, "--metrics", "127.0.0.1:99999"], "--metrics: expected HOST:PORT with a port"),
        ([_ECHO, "--metrics", "::1:9100"], "(e.g. 127.0.0.1:9100, [::1]:9100), got '::1:9100'"),
        ([_ECHO, "--metrics-histogram"], "--metrics-histogram needs --metrics HOST:PORT"),
    ],
)
def test_serve_mistakes_get_one_clear_line_before_binding(args: list[str], message: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if not {"--port", "--unix"} & set(args):  # binding first would say "already in use"
            args = [*args, "--host", "127.0.0.1", "--port", str(taken.getsockname()[1])]
        result = subprocess.run(
            [sys.executable, "-m", "typedserve", "serve", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("typedserve: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 2, result.stderr  # config: a header + the field


def test_verbose_shows_the_traceback_of_a_failing_factory() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "typedserve",
            "-v",
            "serve",
            "tests.commands.cli_targets:failing_factory",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert 'raise RuntimeError("the database is not reachable")' in result.stderr


def test_an_unknown_strategy_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "typedserve", "serve", _ECHO, "--strategy", "gevent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "argument --strategy: invalid choice: 'gevent'" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_before_serving_exits_130_without_a_traceback(
    launch: Callable[..., Running],
) -> None:
    importing = launch(
        "-m", "typedserve", "serve", "tests.commands.blocking_import:Anything",
        port_pattern=r"importing: waiting forever",
    )  # fmt: skip
    status, out = importing.stop(signal.SIGINT)
    assert status == 130, out
    assert "typedserve: interrupted" in out
    assert "Traceback" not in out


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
