"""Prefork in a program with other threads: a worker forked while another thread is inside
``subprocess.run`` must not hold that subprocess's pipes (``subprocess.run`` would wait for the
worker to exit, and the worker for the program to stop the server). ``serve_in_thread``
returns only once every worker is up, so a test's own clients never overlap the first forks."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.strategies.support import WAIT, CommandStream
from typedserve import InetAddress, Prefork, Server, ServerConfig, TCPTransport
from typedserve.testing import LeakCheck, serve_in_thread

pytestmark = pytest.mark.timeout(60)

# A real client in its own process, as a user's test runs curl or socat: one echo request.
CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as conn:
    conn.sendall(b"echo:" + sys.argv[2].encode() + b"\\n")
    reply = b""
    while not reply.endswith(b"\\n") and (chunk := conn.recv(100)):
        reply += chunk
sys.stdout.write(reply.decode())
"""


def prefork_server(workers: int = 2) -> Server[Any, Any]:
    return Server(
        config=ServerConfig(address=InetAddress()),
        transport=TCPTransport(),
        handler=CommandStream,
        strategy=Prefork(workers=workers, threads_per_worker=2),
        state={},
    )


def run_client(port: int, text: str, **options: Any) -> str:
    done: subprocess.CompletedProcess[bytes] = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CLIENT, str(port), text],
        capture_output=True,
        timeout=WAIT,
        check=True,
        **options,
    )
    return done.stdout.decode()


def prefork_of(server: Server[Any, Any]) -> Prefork:
    assert isinstance(server.strategy, Prefork)
    return server.strategy


def test_serve_in_thread_then_subprocess_run_never_hangs() -> None:
    with LeakCheck(wait=WAIT):
        for n in range(50):
            with serve_in_thread(prefork_server()) as server:
                assert len(prefork_of(server).pids) == 2  # serving means every worker is up
                assert run_client(server.address[1], f"run {n}") == f"run {n}\n"
