"""Under systemd's own tools: ``systemd-socket-activate`` passes named Unix sockets (and runs
the command in its own pid, as systemd does), a test-owned datagram socket is the
``NOTIFY_SOCKET`` and receives what the command tells the service manager.

`.ci/run` installs ``systemd-socket-activate`` (Debian's ``systemd``); elsewhere the tests skip.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.commands.processes import ROOT, Running

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        shutil.which("systemd-socket-activate") is None,
        reason="systemd-socket-activate is not installed",
    ),
]

_WATCHDOG_USEC = 200_000

_SERVE_WEB = ("serve", "typedserve.demo:StreamEcho", "--fd", "systemd", "--fdname", "web")
"""The command of ``examples/deploy/typedserve-echo.service``."""

Activate = Callable[..., Running]
"""The ``activate`` fixture: ``activate(*command)``."""


@pytest.fixture
def notifications(short_tmp_dir: Path) -> Iterator[socket.socket]:
    """The ``NOTIFY_SOCKET`` the command is given (``short_tmp_dir/notify.sock``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(short_tmp_dir / "notify.sock"))
        receiver.settimeout(10)
        yield receiver


@pytest.fixture
def activate(short_tmp_dir: Path) -> Iterator[Activate]:
    """``activate(*command)``: run ``python COMMAND...`` under ``systemd-socket-activate``
    listening on ``web.sock`` and ``admin.sock`` (``--fdname=web:admin``); killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*command: str) -> Running:
        sockets = [f"--listen={short_tmp_dir / name}.sock" for name in ("web", "admin")]
        passed = {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "NOTIFY_SOCKET": str(short_tmp_dir / "notify.sock"),
            "WATCHDOG_USEC": str(_WATCHDOG_USEC),
        }
        args = [
            "systemd-socket-activate", *sockets, "--fdname=web:admin",
            *(f"--setenv={name}={value}" for name, value in passed.items()),
            sys.executable, *command,
        ]  # fmt: skip
        # The activator execs the command: its pid (the shell's, which execs it) is the
        # service's, which the watchdog variable must name.
        script = f'exec {shlex.join(args[:1])} --setenv=WATCHDOG_PID="$$" {shlex.join(args[1:])}'
        process = subprocess.Popen(
            ["sh", "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        running = Running(process, 0, "")
        # Both sockets are open before the command runs (at the first connection).
        running.expect(r"Listening on \S+web\.sock as 3")
        return running

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)


def _echo(path: Path, line: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(line)
        return client.makefile("rb").readline()


def _until(receiver: socket.socket, first_line: str) -> list[str]:
    """Messages received (each waited for, bounded) up to the first starting ``first_line``."""
    seen: list[str] = []
    while not (seen and seen[-1].startswith(first_line)):
        seen.append(receiver.recv(4096).decode())
    return seen


def test_serve_on_a_named_socket_tells_systemd_ready_watchdog_stopping(
    activate: Activate, notifications: socket.socket, short_tmp_dir: Path
) -> None:
    server = activate("-m", "typedserve", *_SERVE_WEB)
    assert _echo(short_tmp_dir / "web.sock", b"hello\n") == b"hello\n"  # starts the command
    ready = _until(notifications, "READY=1")[-1].splitlines()
    assert ready[:2] == ["READY=1", f"MAINPID={server.process.pid}"]
    assert ready[2].startswith("STATUS=serving 1 server(s): ")
    assert _until(notifications, "WATCHDOG=1")[-1] == "WATCHDOG=1"
    server.process.send_signal(signal.SIGTERM)
    stopping = _until(notifications, "STOPPING=1")
    assert set(stopping[:-1]) <= {"WATCHDOG=1"}
    assert stopping[-1].startswith("STOPPING=1\nSTATUS=stopping 1 server(s): 1 accepted")
    out, _ = server.process.communicate(timeout=20)
    assert server.process.returncode == 0, out
    assert "serving UnixStream on" in server.banner + out


def test_two_servers_of_one_process_take_their_own_sockets(
    activate: Activate, notifications: socket.socket, short_tmp_dir: Path
) -> None:
    server = activate(str(Path(__file__).with_name("two_named_sockets.py")))
    assert _echo(short_tmp_dir / "web.sock", b"to web\n") == b"to web\n"
    assert _echo(short_tmp_dir / "admin.sock", b"to admin\n") == b"to admin\n"
    ready = _until(notifications, "READY=1")[-1]
    assert "STATUS=serving 2 server(s)" in ready
    status, out = server.stop()
    assert status == 0, out
    assert _until(notifications, "STOPPING=1")[-1].startswith("STOPPING=1")


def test_an_unknown_name_exits_2_naming_the_sockets_passed(
    activate: Activate, short_tmp_dir: Path
) -> None:
    server = activate(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--fdname", "api",
    )  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(short_tmp_dir / "web.sock"))  # starts the command
        out, _ = server.process.communicate(timeout=20)
    assert server.process.returncode == 2, out
    assert "no socket named 'api' was passed" in out
    assert "'web' (fd 3), 'admin' (fd 4)" in out


def _unit(name: str) -> dict[str, str]:
    text = (ROOT / "examples" / "deploy" / name).read_text()
    lines = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in lines if not key.startswith("#")}


def test_the_deploy_units_run_what_is_tested_here() -> None:
    service, socket_unit = _unit("typedserve-echo.service"), _unit("typedserve-echo.socket")
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "typedserve" and tuple(command[1:]) == _SERVE_WEB
    assert socket_unit["FileDescriptorName"] == "web"
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert float(service["WatchdogSec"]) > 0
