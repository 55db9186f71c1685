"""Scale-out behind a real HAProxy: ``examples/deploy/haproxy.cfg`` as shipped (addresses from
the environment) in front of three ``typedserve serve --proxy-protocol required`` processes.
Several client threads send 3,000 requests round-robin; one backend gets SIGTERM mid-run and
drains. Every request is served, each backend served some, the client is seen through the PROXY
v2 header, and HAProxy's health check reports the drained backend down."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.commands.processes import ROOT, Running
from tests.strategies.haproxy_support import free_port, haproxy_process

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
        reason="haproxy is not installed (.ci/run installs it)",
    ),
]

CONFIG = ROOT / "examples" / "deploy" / "haproxy.cfg"
BACKENDS = 3
CLIENTS = 6
REQUESTS = 3_000
DRAIN_AFTER = 1_000
"""Replies received before the second backend is sent SIGTERM."""
CLIENT_HOST = "127.0.0.2"
WAIT = 30.0


class Load:
    """``CLIENTS`` threads sending ``REQUESTS`` requests between them through the balancer,
    each on a new connection from :data:`CLIENT_HOST`; the replies, and an event set once
    :data:`DRAIN_AFTER` have arrived."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replies: list[bytes] = []
        self.failures: list[str] = []
        self.reached = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"test-client-{n}")
            for n in range(CLIENTS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(WAIT * 4)
        assert not any(t.is_alive() for t in self._threads), "a client thread did not end"

    def _run(self, n: int) -> None:
        for i in range(n, REQUESTS, CLIENTS):
            line = b"r%d" % i
            try:
                reply = self._ask(line)
            except OSError as exc:
                reply, failure = b"", f"{line!r}: {exc!r}"
            else:
                failure = (
                    ""
                    if reply.endswith(b" %s %s\n" % (CLIENT_HOST.encode(), line))
                    else (f"{line!r}: got {reply!r}")
                )
            with self._lock:
                self.replies.append(reply)
                if failure:
                    self.failures.append(failure)
                if len(self.replies) >= DRAIN_AFTER:
                    self.reached.set()

    def _ask(self, line: bytes) -> bytes:
        address = ("127.0.0.1", self.port)
        with socket.create_connection(
            address, timeout=WAIT, source_address=(CLIENT_HOST, 0)
        ) as conn:
            conn.sendall(line + b"\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            return data


@contextlib.contextmanager
def haproxy_log(directory: Path) -> Iterator[socket.socket]:
    """The datagram socket HAProxy logs to (``TYPEDSERVE_HAPROXY_LOG``): its syslog lines."""
    path = directory / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(str(path))
        log.settimeout(WAIT)
        yield log


def wait_for_log(log: socket.socket, text: bytes) -> bytes:
    """Read HAProxy's log lines (each wait bounded) until one contains ``text``."""
    for _ in range(1_000):
        line = log.recv(65_536)
        if text in line:
            return line
    raise AssertionError(f"HAProxy never logged {text!r}")


def test_three_backends_behind_haproxy_lose_nothing_when_one_drains(
    launch: Callable[..., Running], tmp_path: Path
) -> None:
    backends = [
        launch(
            *["-m", "typedserve", "serve", "tests.commands.cluster_app:WhoAmI", "--port", "0"],
            *["--strategy", "pool", "--proxy-protocol", "required"],
            port_pattern=r"serving ProxyProtocol on 127\.0\.0\.1:(\d+)",
        )
        for _ in range(BACKENDS)
    ]
    frontend = free_port()
    env = {
        "TYPEDSERVE_FRONTEND": f"127.0.0.1:{frontend}",
        "TYPEDSERVE_HAPROXY_LOG": str(tmp_path / "log.sock"),
    }
    env |= {f"TYPEDSERVE_BACKEND_{n + 1}": f"127.0.0.1:{b.port}" for n, b in enumerate(backends)}
    with haproxy_log(tmp_path) as log, haproxy_process(CONFIG, tmp_path, env):
        load = Load(frontend)
        load.start()
        try:
            assert load.reached.wait(WAIT), "the first requests did not get through"
            status, output = backends[1].stop(signal.SIGTERM)  # drains, then exits
            assert status == 0, output
            wait_for_log(log, b"typedserve/app2 is DOWN")
        finally:
            load.join()
    assert load.failures == []
    assert len(load.replies) == REQUESTS
    served = Counter(reply.split(b" ", 1)[0] for reply in load.replies)
    pids = {str(b.process.pid).encode() for b in backends}
    assert set(served) == pids, served  # each backend served some
    for backend in (backends[0], backends[2]):
        status, output = backend.stop(signal.SIGTERM)
        assert status == 0, output
