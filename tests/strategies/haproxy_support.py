"""A real HAProxy in front of a test server: a generated ``mode tcp`` config, one frontend per
PROXY protocol version (``send-proxy``, ``send-proxy-v2``, health checks on), started as a
subprocess and stopped at the end, every wait bounded. Readiness is HAProxy's own ``READY=1``
(``-Ws``, the systemd notify protocol) on a datagram socket of ours: no polling, no sleep."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from typedserve.requests import PeerAddress

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
WAIT = 10.0


@dataclass(frozen=True)
class Balancer:
    """A running HAProxy: the frontend port of each PROXY protocol version."""

    ports: dict[int, int]


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago (HAProxy binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_line(backend: PeerAddress, option: str) -> str:
    where = f"{backend[0]}:{backend[1]}" if isinstance(backend, tuple) else str(backend)
    return f"    server app {where} {option} check check-send-proxy inter 200ms\n"


def config_text(backend: PeerAddress, ports: dict[int, int]) -> str:
    """The HAProxy config: a frontend per version, relaying to ``backend`` with its header."""
    text = (
        "global\n    maxconn 200\n"
        "defaults\n    mode tcp\n    timeout connect 5s\n"
        "    timeout client 20s\n    timeout server 20s\n"
    )
    for version, port in ports.items():
        option = "send-proxy" if version == 1 else "send-proxy-v2"
        text += f"frontend fe_v{version}\n    bind 127.0.0.1:{port}\n"
        text += f"    default_backend be_v{version}\n"
        text += f"backend be_v{version}\n" + _server_line(backend, option)
    return text


@contextlib.contextmanager
def run_haproxy(backend: PeerAddress, directory: Path) -> Iterator[Balancer]:
    """Start HAProxy relaying to ``backend``; yield once it is ready; stop it (SIGTERM, then
    SIGKILL past the bound) and reap it at the end."""
    ports = {1: free_port(), 2: free_port()}
    config = directory / "haproxy.cfg"
    config.write_text(config_text(backend, ports))
    with haproxy_process(config, directory):
        yield Balancer(ports)


@contextlib.contextmanager
def haproxy_process(
    config: Path, directory: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``haproxy -Ws -f config`` with ``env`` added to the environment; yield once it is
    ready (its ``READY=1`` on a notify socket in ``directory``); stop and reap it at the end."""
    notify_path = directory / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(WAIT)
        full_env = {**os.environ, **(env or {}), "NOTIFY_SOCKET": str(notify_path)}
        process = subprocess.Popen(
            [HAPROXY, "-Ws", "-f", str(config)],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            while b"READY=1" not in notify.recv(4096):  # each wait bounded by WAIT
                pass
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(WAIT)
            if process.stderr is not None:
                process.stderr.close()
            notify_path.unlink(missing_ok=True)


def through(balancer: Balancer, version: int, line: bytes, source: str = "127.0.0.2") -> bytes:
    """Connect to the balancer's ``version`` frontend from ``source``, send ``line``, read the
    reply until the end."""
    address = ("127.0.0.1", balancer.ports[version])
    with socket.create_connection(address, timeout=WAIT, source_address=(source, 0)) as conn:
        conn.sendall(line)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65_536):
            chunks.append(chunk)
        return b"".join(chunks)
