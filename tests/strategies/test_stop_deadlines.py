"""Stops are bounded: ``shutdown(grace=g)`` and ``close(grace=g)`` return within ``g`` plus a
fixed bound, whatever the handlers do.

The documented bound here is :data:`BOUND`: ``g + 5`` seconds (a drain cuts what still runs
at ``g``; closing then waits up to ``RELEASE_WAIT`` (2 s) for cut threads, a
``ForkPerRequest`` drain up to 1 s for cut children). Each stop runs on a thread joined with
that timeout: a stop that ignores the grace fails the join instead of hanging the test. Every
strategy of the suite, with the leak check of ``make_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, Literal

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import WAIT, Gate, StrategyCase, TransportCase
from typedserve import DrainReport, Server, StreamHandler
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.testing import connect, serve_in_thread

pytestmark = pytest.mark.timeout(30)

MARGIN = 5.0
"""How long past its grace a stop may take (see the module docstring)."""


def stop_within_bound(
    server: Server[Any, Any], how: Literal["shutdown", "close"], grace: float
) -> DrainReport:
    """``server.shutdown(grace)`` or ``server.close(grace)`` on a thread; fail unless it
    returns within ``grace + MARGIN``; the report."""
    reports: list[DrainReport | None] = []
    failures: list[BaseException] = []

    def stop() -> None:
        try:
            drain = server.shutdown if how == "shutdown" else server.close
            reports.append(drain(grace=grace))
        except BaseException as exc:
            failures.append(exc)

    stopper = threading.Thread(target=stop, name="test-stopper", daemon=True)
    stopper.start()
    stopper.join(grace + MARGIN)
    assert not stopper.is_alive(), f"{how}(grace={grace}) still running after {grace + MARGIN} s"
    if failures:
        raise failures[0]
    [report] = reports
    assert report is not None
    return report


def send_hold(
    server: Server[Any, Any], count: int, gate: Gate | None = None
) -> list[socket.socket]:
    """``count`` connections each sending ``hold`` (its handler blocks reading until cut).

    With ``gate``, one at a time, each once the previous handler runs (see
    ``test_conformance.hold``: a ``Prefork`` worker may park more than it has threads)."""
    clients = []
    for _ in range(count):
        client = connect(server, timeout=WAIT)
        clients.append(client)
        client.sendall(b"hold\n")
        if gate is not None:
            gate.wait_started(1)
    return clients


def read_to_eof(client: socket.socket) -> bytes:
    return b"".join(iter(lambda: client.recv(4096), b""))


GRACE = 0.5


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_a_stop_returns_within_the_bound_when_handlers_never_end(
    make_server: MakeServer,
    gate: Gate,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
    how: Literal["shutdown", "close"],
) -> None:
    """As many handlers as the strategy runs at once block reading their connection (until
    it is cut); Inline also has seven more queued in the backlog. The stop cuts the running
    ones at the grace, refuses the queued ones, and returns within the bound."""
    server = make_server(stream_case)
    running = strategy_case.concurrency
    queued = 7 if strategy_case.name == "Inline" else 0
    with serve_in_thread(server), contextlib.ExitStack() as stack:
        held = [stack.enter_context(client) for client in send_hold(server, running, gate)]
        waiting = [stack.enter_context(client) for client in send_hold(server, queued)]
        report = stop_within_bound(server, how, GRACE)
        for client in held + waiting:
            assert read_to_eof(client) == b""  # cut, or refused: an end, never a reset
    assert report.cut == running
    assert report.completed == 0
    assert report.backlog_refused == queued


class Slow(StreamHandler[dict[str, Any]]):
    """Reads its line, takes a second whatever happens to its connection (nothing to cut),
    then replies."""

    def handle(self) -> None:
        self.rfile.readline()
        threading.Event().wait(1.0)  # busy with something else than the client
        self.wfile.write(b"slow\n")


class AsyncSlow(AsyncHandler[AsyncStream, dict[str, Any]]):
    async def handle(self) -> None:
        await self.request.readline()
        await asyncio.sleep(1.0)  # busy with something else than the client
        self.request.write(b"slow\n")
        await self.request.drain()


SLOW_REQUESTS = 8
SLOW_GRACE = 2.0


@pytest.mark.timeout(40)
@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_a_stop_with_one_second_requests_queued_returns_within_the_bound(
    make_server: MakeServer,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
    how: Literal["shutdown", "close"],
) -> None:
    """Eight requests that each take a second, sent at once (Inline runs one and queues seven
    in the backlog): ``grace=2`` serves what fits and refuses or cuts the rest, and returns
    within the bound (it used to serve all eight, one after the other, past the grace)."""
    if stream_case.name != "tcp":
        pytest.skip("the deadline logic is the transport's business only through the backlog")
    handler: Callable[..., Any] = AsyncSlow if strategy_case.name == "AsyncIO" else Slow
    server = make_server(stream_case, handler=handler)
    with serve_in_thread(server), contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(server, timeout=WAIT)) for _ in range(SLOW_REQUESTS)]
        for client in clients:
            client.sendall(b"go\n")
        stop_within_bound(server, how, SLOW_GRACE)
        replies = [read_to_eof(client) for client in clients]
    # Served, or refused or cut with an orderly end (read_to_eof raises on a reset).
    assert all(reply in (b"slow\n", b"") for reply in replies), replies
