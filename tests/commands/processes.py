"""Running typedserve commands and examples as real processes, for the tests beside this."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_STARTUP_SECONDS = 20.0


@dataclass
class Running:
    """A server process that announced its port on stdout."""

    process: subprocess.Popen[str]
    port: int
    banner: str

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig``, wait (bounded) and return the exit status and the rest of the output."""
        self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=20)
        return self.process.returncode, out

    def expect(self, pattern: str) -> str:
        """Read output (bounded) until it matches ``pattern``; return what was read."""
        text, _ = _read_until(self.process, re.compile(pattern))
        return text


def _read_until(process: subprocess.Popen[str], pattern: re.Pattern[str]) -> tuple[str, int]:
    assert process.stdout is not None
    deadline = time.monotonic() + _STARTUP_SECONDS
    text = ""
    # Raw reads of the pipe, not readline(): two lines arriving together would leave the second
    # in the text wrapper's buffer, where select() cannot see it.
    fd = process.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk.decode(errors="replace")
            match = pattern.search(text)
            if match:
                group = match.group(1) if match.groups() else ""
                return text, int(group) if group.isdigit() else 0
    raise AssertionError(f"no output matched {pattern.pattern!r}; output so far:\n{text}")


def start_process(started: list[subprocess.Popen[str]], *args: str, port_pattern: str) -> Running:
    """Start ``python ARGS...`` and wait (bounded) until its output matches ``port_pattern``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(process)
    banner, port = _read_until(process, re.compile(port_pattern))
    return Running(process, port, banner)


def tcp_roundtrip(port: int, data: bytes) -> bytes:
    """Send ``data`` to 127.0.0.1:``port``, half-close, read the reply to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)
