"""Process strategies beyond the conformance suite: supervision, signals, reaping, limits."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.strategies.support import WAIT, CommandStream, Gate
from typedserve import (
    DrainReport,
    ForkPerRequest,
    InetAddress,
    Prefork,
    Server,
    ServerConfig,
    TCPTransport,
)
from typedserve.requests import Request
from typedserve.testing import LeakCheck, connect, serve_in_thread

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
R = TypeVar("R", bound=Request)


@pytest.fixture
def leak_check() -> Iterator[None]:
    check = LeakCheck(wait=WAIT).start()
    yield
    check.check()


def tcp_server(strategy: Any, gate: Gate) -> Server[Any, Any]:
    return Server(
        config=ServerConfig(address=InetAddress()),
        transport=TCPTransport(),
        handler=CommandStream,
        strategy=strategy,
        state={"gate": gate.address},
    )


def ask(server_or_port: Server[Any, Any] | int, command: bytes) -> bytes:
    """One command over a new connection; ``b""`` if the server closed or reset it."""
    if isinstance(server_or_port, int):
        client = socket.create_connection(("127.0.0.1", server_or_port), timeout=WAIT)
    else:
        client = connect(server_or_port, timeout=WAIT)
    with client:
        return send_and_read(client, command)


def send_and_read(client: socket.socket, command: bytes) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        client.sendall(command + b"\n")
        while not data.endswith(b"\n") and (chunk := client.recv(4096)):
            data += chunk
    return data.rstrip(b"\n")


def hold(port: int, gate: Gate, count: int) -> tuple[list[socket.socket], list[int]]:
    """``count`` requests held at the gate: their client sockets and their handlers' pids.

    One at a time: each connects only once the previous handler runs. A worker whose threads
    are all busy has stopped accepting by then, so with one thread per worker each request
    lands in a different worker. (Connected all at once, one worker could accept several
    before any sent its bytes, parking them until they do.)"""
    clients, pids = [], []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        clients.append(client)
        client.sendall(b"gate\n")
        pids += gate.wait_started(1)
    return clients, pids


# -- Prefork ---------------------------------------------------------------------------------


def test_prefork_replaces_a_killed_worker_and_loses_only_its_requests(
    leak_check: None, gate: Gate
) -> None:
    prefork = Prefork(workers=2, threads_per_worker=1)  # one held request fills a worker
    server = tcp_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        clients, pids = hold(server.address[1], gate, 2)
        assert sorted(pids) == sorted(prefork.pids)  # one request in each worker
        victim, survivor = pids
        os.kill(victim, signal.SIGKILL)
        assert prefork.wait_ready(WAIT, replacing=[victim])
        assert survivor in prefork.pids
        gate.release()
        replies = [send_and_read(client, b"") for client in clients]
        for client in clients:
            client.close()
        assert sorted(replies) == [b"", b"done"]  # the victim's request is lost, not the other
        assert [ask(server, b"echo:%d" % n) for n in range(20)] == [b"%d" % n for n in range(20)]
    assert server.stats().errors == 1  # the lost request, counted by the supervisor


def test_prefork_replaces_as_many_dead_workers_as_max_restarts_allows(
    leak_check: None, gate: Gate
) -> None:
    prefork = Prefork(workers=1, threads_per_worker=1, max_restarts=3, restart_window=3600)
    server = tcp_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        for _ in range(3):  # each replacement counts once against the limit
            (victim,) = prefork.pids
            os.kill(victim, signal.SIGKILL)
            assert prefork.wait_ready(WAIT, replacing=[victim])
        assert ask(server, b"echo:still") == b"still"


def test_a_worker_forked_while_a_client_is_open_does_not_keep_that_connection_open(
    leak_check: None, gate: Gate
) -> None:
    prefork = Prefork(workers=2, threads_per_worker=1)
    server = tcp_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        client = connect(server, timeout=WAIT)
        client.sendall(b"hold\n")
        (serving,) = gate.wait_started(1)
        (other,) = [pid for pid in prefork.pids if pid != serving]
        os.kill(other, signal.SIGKILL)  # its replacement is forked while the client is open
        assert prefork.wait_ready(WAIT, replacing=[other])
        client.close()
        gate.wait_ended()  # the handler saw EOF: no worker holds a copy of the client's end
        report = server.shutdown(grace=WAIT)
    assert report is not None
    assert report.cut == 0


def test_a_single_threaded_worker_hears_the_stop_while_its_handler_runs(
    leak_check: None, gate: Gate
) -> None:
    prefork = Prefork(workers=1, threads_per_worker=1)
    server = tcp_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        client = connect(server, timeout=WAIT)
        client.sendall(b"hold\n")
        gate.wait_started(1)
        report = server.shutdown(grace=0.01)
        assert client.recv(10) == b""
        client.close()
    # The worker cut its request at the deadline and reported it; had its loop been stuck in
    # the handler, the supervisor would have killed it, losing the request as an error.
    assert report == DrainReport(completed=0, cut=1, backlog_refused=0)
    assert server.stats().errors == 0


def test_prefork_rolling_restart_replaces_every_worker_without_refusing_clients(
    leak_check: None, gate: Gate
) -> None:
    prefork = Prefork(workers=2)
    server = tcp_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        old = prefork.pids
        prefork.restart_workers()
        for n in range(20):  # served throughout, by old or new workers
            assert ask(server, b"echo:%d" % n) == b"%d" % n
        assert prefork.wait_ready(WAIT, replacing=old)
        assert ask(server, b"echo:new") == b"new"


def test_prefork_serves_again_after_each_plain_stop(leak_check: None, gate: Gate) -> None:
    """``serve_forever`` after ``shutdown()``, three times: each run forks new workers into
    free counters slots (two per position). The third run used to find none (IndexError): the
    first run's workers had exited but were reaped only at close."""
    prefork = Prefork(workers=2)
    server = tcp_server(prefork, gate)
    server.bind()
    try:
        for run in range(3):
            thread = threading.Thread(target=server.serve_forever)
            thread.start()
            try:
                assert server.wait_serving(WAIT) and prefork.wait_ready(WAIT)
                assert ask(server, b"echo:%d" % run) == b"%d" % run
            finally:
                server.shutdown()
                thread.join(WAIT)
            assert not thread.is_alive()
    finally:
        server.close()


def test_prefork_with_reuse_port_serves_from_replacements_and_a_rolling_restart(
    leak_check: None, gate: Gate
) -> None:
    prefork = Prefork(workers=2)
    server = Server(
        config=ServerConfig(address=InetAddress(), reuse_port=True),
        transport=TCPTransport(),
        handler=CommandStream,
        strategy=prefork,
        state={"gate": gate.address},
    )
    with serve_in_thread(server):
        port = server.address[1]  # each worker binds its own socket to it
        assert ask(port, b"echo:first") == b"first"
        victim = prefork.pids[0]
        os.kill(victim, signal.SIGKILL)  # its socket stays, the supervisor's, for the replacement
        assert prefork.wait_ready(WAIT, replacing=[victim])
        old = prefork.pids
        prefork.restart_workers()
        assert prefork.wait_ready(WAIT, replacing=old)
        assert [ask(port, b"echo:%d" % n) for n in range(20)] == [b"%d" % n for n in range(20)]


def probe_draining(port: int) -> bool:
    """Whether a new client shows the server draining: turned away with BUSY, or not even
    established (a draining listener holds new connections; they are refused at its close)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as client:
            return send_and_read(client, b"echo:probe") == b"BUSY"
    except (TimeoutError, ConnectionRefusedError):
        return True


def test_sigterm_to_the_supervisor_drains_every_worker(gate: Gate) -> None:
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.strategies.prefork_app", str(gate.address[1])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert app.stdout is not None
        port = int(app.stdout.readline().split()[1])
        clients, pids = hold(port, gate, 2)
        app.send_signal(signal.SIGTERM)
        for _ in range(10_000):  # until a new client is turned away or held: draining
            if probe_draining(port):
                break
        gate.release()
        assert [send_and_read(client, b"") for client in clients] == [b"done", b"done"]
        for client in clients:
            client.close()
        _, errors = app.communicate(timeout=WAIT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            app.kill()
        app.wait(WAIT)
    assert app.returncode == 0, errors.decode()
    # Both held requests completed (and probes taken from the backlog, if any); nothing was cut.
    completed = re.search(rb"drained .* (\d+) completed", errors)
    assert completed is not None, errors.decode()
    assert int(completed[1]) >= 2
    assert b"cut" not in errors
    for pid in pids:  # every worker was reaped by the supervisor before it exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_finish_their_requests_and_exit_when_the_supervisor_is_killed(gate: Gate) -> None:
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.strategies.prefork_app", str(gate.address[1])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    pidfds: list[int] = []
    try:
        assert app.stdout is not None
        port = int(app.stdout.readline().split()[1])
        clients, pids = hold(port, gate, 2)
        pidfds = [os.pidfd_open(pid) for pid in set(pids)]
        app.kill()  # no drain order: its workers see their control pipes reach EOF
        app.wait(WAIT)
        gate.release()
        assert [send_and_read(client, b"") for client in clients] == [b"done", b"done"]
        for client in clients:
            client.close()
        for pidfd in pidfds:  # readable once the worker has exited
            readable, _, _ = select.select([pidfd], [], [], WAIT)
            assert readable, "a worker outlived its supervisor"
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
        with contextlib.suppress(ProcessLookupError):
            app.kill()
        app.wait(WAIT)
        assert app.stdout is not None
        app.stdout.close()


# -- ForkPerRequest --------------------------------------------------------------------------


class CountingFork(ForkPerRequest):
    """Records the most children ever running at once."""

    peak = 0

    def submit(self, serve: Callable[[R], None], request: R) -> None:
        super().submit(serve, request)
        self.peak = max(self.peak, self.in_flight)


def test_a_thousand_forked_requests_leave_no_zombie_and_respect_max_children(
    leak_check: None, gate: Gate
) -> None:
    strategy = CountingFork(max_children=4)
    server = tcp_server(strategy, gate)
    failures: list[BaseException] = []

    def client(base: int) -> None:
        try:
            for n in range(base, base + 125):
                assert ask(server, b"echo:%d" % n) == b"%d" % n
        except BaseException as exc:
            failures.append(exc)

    with serve_in_thread(server):
        threads = [threading.Thread(target=client, args=(k * 125,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 5)
    assert not failures
    assert 1 <= strategy.peak <= 4
    stats = server.stats()
    assert (stats.accepted, stats.in_flight, stats.errors) == (1000, 0, 0)
    # leak_check: no child is left, zombies included (they are read from /proc).


def test_max_children_blocks_new_work_instead_of_forking_more(leak_check: None, gate: Gate) -> None:
    strategy = ForkPerRequest(max_children=2)
    server = tcp_server(strategy, gate)
    with serve_in_thread(server):
        clients, _ = hold(server.address[1], gate, 2)
        with connect(server, timeout=WAIT) as third:
            third.sendall(b"echo:third\n")  # waits in the kernel backlog
            assert (strategy.in_flight, server.stats().accepted) == (2, 2)
            gate.release()
            assert send_and_read(third, b"") == b"third"
        assert [send_and_read(client, b"") for client in clients] == [b"done", b"done"]
        for client in clients:
            client.close()
