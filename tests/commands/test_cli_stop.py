"""The command's stop with hostile peers connected: SIGTERM ends the process, status 0, within
``shutdown.grace`` + ``STOP_MARGIN`` for every strategy; a second signal exits at once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.commands.cli_targets import READY
from tests.commands.processes import ROOT, Running
from typedserve.cli import STOP_MARGIN

pytestmark = pytest.mark.timeout(60)

GRACE = 1.0
BOUND = GRACE + STOP_MARGIN
"""How long a stopped server may take to exit (the documented bound): the test fails past it."""

_GREETERS = [
    ("inline", "Greeter"),
    ("threads", "Greeter"),
    ("pool", "Greeter"),
    ("fork", "Greeter"),
    ("prefork", "Greeter"),
    ("asyncio", "AsyncGreeter"),
]


def _config(tmp_path: Path, grace: float = GRACE) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(f'[address]\nhost = "127.0.0.1"\nport = 0\n[shutdown]\ngrace = {grace}\n')
    return path


def _serve(launch: Callable[..., Running], config: Path, handler: str, strategy: str) -> Running:
    return launch(
        "-m", "typedserve", "serve", f"tests.commands.cli_targets:{handler}",
        "--config", str(config), "--strategy", strategy,
        port_pattern=r"typedserve: serving TCP on 127\.0\.0\.1:(\d+)",
    )  # fmt: skip


@contextlib.contextmanager
def _in_flight(port: int) -> Iterator[socket.socket]:
    """A connection whose handler is running (it said ``ready``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        greeting = b""
        while len(greeting) < len(READY) and (chunk := conn.recv(len(READY) - len(greeting))):
            greeting += chunk
        assert greeting == READY
        yield conn


@contextlib.contextmanager
def _trickling(conn: socket.socket) -> Iterator[None]:
    """Send one byte every 50 ms, never a whole line, until the server cuts the connection."""
    stop = threading.Event()

    def trickle() -> None:
        with contextlib.suppress(OSError):
            while not stop.wait(0.05):
                conn.send(b"x")

    thread = threading.Thread(target=trickle, name="trickling-client")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _ended_by_server(conn: socket.socket) -> bool:
    """Whether the server ended the connection (EOF or reset) rather than leaving it open."""
    conn.settimeout(10)
    try:
        while conn.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def _sigterm_and_wait(server: Running) -> str:
    server.process.send_signal(signal.SIGTERM)
    out, _ = server.process.communicate(timeout=BOUND)
    assert server.process.returncode == 0, out
    assert "stopping; requests in flight have up to 1 s" in out, out
    assert "typedserve: stopped" in out, out
    return out


@pytest.mark.parametrize("client", ["silent", "trickling"])
@pytest.mark.parametrize(("strategy", "handler"), _GREETERS)
def test_sigterm_cuts_a_hostile_client_at_the_grace_and_exits_0(
    launch: Callable[..., Running], tmp_path: Path, strategy: str, handler: str, client: str
) -> None:
    server = _serve(launch, _config(tmp_path), handler, strategy)
    with _in_flight(server.port) as conn:
        with _trickling(conn) if client == "trickling" else contextlib.nullcontext():
            _sigterm_and_wait(server)
        assert _ended_by_server(conn)


@pytest.mark.parametrize(
    ("strategy", "handler", "said"),
    [
        ("inline", "Sleeper", "interrupting it"),
        ("asyncio", "AsyncBlocker", "interrupting it"),
        ("threads", "Sleeper", "exiting without them"),
    ],
)
def test_sigterm_exits_within_the_bound_when_a_handler_ignores_its_cut(
    launch: Callable[..., Running], tmp_path: Path, strategy: str, handler: str, said: str
) -> None:
    server = _serve(launch, _config(tmp_path), handler, strategy)
    with _in_flight(server.port) as conn:
        out = _sigterm_and_wait(server)
        assert said in out
        if said == "interrupting it" and strategy == "inline":
            assert "where the handler was interrupted" in out
        assert _ended_by_server(conn)


def test_the_stop_begins_on_sigint_too(launch: Callable[..., Running], tmp_path: Path) -> None:
    server = _serve(launch, _config(tmp_path), "Greeter", "inline")
    with _in_flight(server.port) as conn:
        server.process.send_signal(signal.SIGINT)
        out, _ = server.process.communicate(timeout=BOUND)
        assert server.process.returncode == 0, out
        assert "typedserve: SIGINT received: stopping" in out
        assert _ended_by_server(conn)


def test_a_second_signal_exits_1_without_waiting_for_the_grace(
    launch: Callable[..., Running], tmp_path: Path
) -> None:
    server = _serve(launch, _config(tmp_path, grace=600), "Greeter", "inline")
    with _in_flight(server.port) as conn:
        server.process.send_signal(signal.SIGTERM)
        server.expect(r"SIGTERM received: stopping; requests in flight have up to 600 s")
        server.process.send_signal(signal.SIGINT)
        out, _ = server.process.communicate(timeout=STOP_MARGIN)  # far less than the grace
        assert server.process.returncode == 1, out
        assert "typedserve: SIGINT again: exiting now" in out
        assert _ended_by_server(conn)


def test_a_handler_that_swallows_the_interrupt_ends_with_status_1_within_the_bound(
    launch: Callable[..., Running], tmp_path: Path
) -> None:
    server = _serve(launch, _config(tmp_path), "Stubborn", "inline")
    with _in_flight(server.port) as conn:
        server.process.send_signal(signal.SIGTERM)
        out, _ = server.process.communicate(timeout=BOUND)
        assert server.process.returncode == 1, out
        assert "interrupting it" in out
        assert "typedserve: the servers did not stop 4 s after the grace" in out
        assert _ended_by_server(conn)


def test_a_server_loop_failing_stops_every_server_with_status_1() -> None:
    script = (
        "from typedserve.cli import run_until_signal\n"
        "from tests.commands.cli_targets import servers_one_broken\n"
        "raise SystemExit(run_until_signal(servers_one_broken()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert "failed; stopping every server" in result.stderr
    assert "RuntimeError: the loop broke" in result.stderr
    assert "typedserve: stopped" in result.stderr
