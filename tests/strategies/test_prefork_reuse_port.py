"""Prefork with ``reuse_port=True``: one SO_REUSEPORT socket per worker position, owned by the
supervisor, so neither a dead worker nor a rolling restart resets a queued connection."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.strategies.support import WAIT, CommandStream, Gate
from tests.strategies.test_drain_hostile import Arrivals, busy
from tests.strategies.test_processes import send_and_read
from typedserve import (
    DrainReport,
    InetAddress,
    Prefork,
    Server,
    ServerConfig,
    ShutdownConfig,
    TCPTransport,
)
from typedserve.testing import LeakCheck, serve_in_thread

pytestmark = pytest.mark.timeout(60)

CLIENTS = 24
"""Connections made while one worker is stopped: each lands on either position's socket (by a
hash of its addresses), so all 24 miss the stopped one with odds of 2**-24."""

ARRIVALS = 100_000
"""An upper bound on arrivals only: each test stops them once it has seen what it waits for."""


@pytest.fixture
def leak_check() -> Iterator[None]:
    check = LeakCheck(wait=WAIT).start()
    yield
    check.check()


def reuse_port_server(prefork: Prefork, gate: Gate) -> Server[Any, Any]:
    return Server(
        config=ServerConfig(
            address=InetAddress(), reuse_port=True, shutdown=ShutdownConfig(grace=WAIT)
        ),
        transport=TCPTransport(),
        handler=CommandStream,
        strategy=prefork,
        state={"gate": gate.address},
        on_busy=busy,
    )


def test_a_dead_workers_queue_waits_for_its_replacement(leak_check: None, gate: Gate) -> None:
    prefork = Prefork(workers=2, threads_per_worker=2)
    server = reuse_port_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        port = server.address[1]
        victim = prefork.pids[0]
        os.kill(victim, signal.SIGSTOP)  # alive, accepting nothing: its socket's queue fills
        os.waitid(os.P_PID, victim, os.WSTOPPED | os.WNOWAIT)  # (the supervisor reaps it)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)]
        clients += [
            socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(CLIENTS - 1)
        ]
        try:
            os.kill(victim, signal.SIGKILL)  # with connections queued on its position's socket
            assert prefork.wait_ready(WAIT, replacing=[victim])
            replacement = {pid for pid in prefork.pids}
            pids = [int(send_and_read(client, b"pid") or b"0") for client in clients]
        finally:
            for client in clients:
                client.close()
    assert 0 not in pids, "a queued connection was reset"
    assert set(pids) <= replacement
    # Some landed on the dead worker's socket and were served by its replacement.
    assert len(set(pids)) == 2


def test_a_rolling_restart_under_arrivals_resets_nobody(leak_check: None, gate: Gate) -> None:
    prefork = Prefork(workers=2, threads_per_worker=2)
    server = reuse_port_server(prefork, gate)
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        address = ("127.0.0.1", server.address[1])
        with Arrivals(address, socket.AF_INET, early=0, limit=ARRIVALS) as arrivals:
            arrivals.go()
            assert arrivals.wait_settled(5)
            old = prefork.pids
            prefork.restart_workers()
            assert prefork.wait_ready(WAIT, replacing=old)
            settled = arrivals.outcomes.settled
            assert arrivals.wait_settled(settled + 10)  # served by the new generation alone
            outcomes = arrivals.finish()
    assert outcomes.reset == []
    assert outcomes.other == []
    assert outcomes.never == 0
    assert outcomes.completed == outcomes.settled


def test_a_drain_under_arrivals_resets_nobody(leak_check: None, gate: Gate) -> None:
    """Each worker serves what its position's socket queued at the stop; the supervisor holds
    every socket, so later arrivals are refused with BUSY or never established, not reset."""
    prefork = Prefork(workers=2, threads_per_worker=2)
    server = reuse_port_server(prefork, gate)
    reports: list[DrainReport | None] = []
    stopper = threading.Thread(target=lambda: reports.append(server.shutdown(grace=WAIT)))
    with serve_in_thread(server):
        assert prefork.wait_ready(WAIT)
        address = ("127.0.0.1", server.address[1])
        with Arrivals(address, socket.AF_INET, early=0, limit=ARRIVALS) as arrivals:
            arrivals.go()
            assert arrivals.wait_settled(5)
            attempted = arrivals.outcomes.settled
            stopper.start()
            assert arrivals.wait_attempts(attempted + 20)  # during the drain, and after it
            stopper.join(WAIT + 5)
            assert not stopper.is_alive()
            outcomes = arrivals.finish()
    assert outcomes.reset == [], outcomes
    assert outcomes.other == [], outcomes
    [report] = reports
    assert report is not None
    assert report.cut == 0
