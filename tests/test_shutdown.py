"""Stopping a server: from another thread, from a handler, before it started, and draining."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import pytest

from typedserve import ServerClosedError, StreamHandler
from typedserve.drain import DrainReport
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.conftest import MakeServer, TransportCase
    from typedserve import Server

pytestmark = pytest.mark.timeout(10)

WAIT = 5.0


class Echo(StreamHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def ping(server: Server[Any, Any]) -> bytes:
    with connect(server) as client:
        client.sendall(b"ping\n")
        return client.recv(100)


class LoopThread:
    """``serve_forever`` on a thread of its own, for tests that stop it by hand."""

    def __init__(self, server: Server[Any, Any]) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, name="test-loop")

    def __enter__(self) -> LoopThread:
        self.thread.start()
        assert self.server.wait_serving(WAIT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.request_shutdown()
        self.thread.join(WAIT)

    def stopped(self) -> bool:
        self.thread.join(WAIT)
        return not self.thread.is_alive()


def test_shutdown_from_another_thread_stops_the_loop_and_waits_for_it(
    cases: dict[str, TransportCase], strategy_name: str, make_server: MakeServer
) -> None:
    server = make_server(cases["tcp4"], Echo, strategy=strategy_name)
    with LoopThread(server) as loop:
        assert ping(server) == b"ping\n"
        server.shutdown()
        # shutdown() returned, so the loop has already left serve_forever.
        assert not server.wait_serving(0)
        assert loop.stopped()
        server.shutdown()  # idempotent, and does not block with no loop running


def test_close_from_another_thread_stops_the_loop_and_releases_the_server(
    cases: dict[str, TransportCase], strategy_name: str, make_server: MakeServer
) -> None:
    server = make_server(cases["tcp4"], Echo, strategy=strategy_name)
    with LoopThread(server) as loop:
        assert ping(server) == b"ping\n"
        server.close()
        assert loop.stopped()
    with pytest.raises(ServerClosedError):
        server.fileno()
    with pytest.raises(ServerClosedError):
        server.serve_forever()


class StopsTheServer(StreamHandler[dict[str, Any]]):
    """Replies, then stops the server in the way ``state["how"]`` names."""

    speaks_first = True  # the client only reads

    def handle(self) -> None:
        self.wfile.write(b"bye\n")
        how = self.state["how"]
        if how == "context.shutdown":
            self.context.shutdown()
        elif how == "server.shutdown":
            self.state["server"].shutdown()
        else:
            self.state["server"].close()
        self.state["returned"] = True


@pytest.mark.parametrize("how", ["context.shutdown", "server.shutdown", "server.close"])
def test_stopping_from_a_handler_does_not_deadlock(
    cases: dict[str, TransportCase],
    in_process_strategy_name: str,
    make_server: MakeServer,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state: dict[str, Any] = {"how": how}
    server = make_server(
        cases["tcp4"], StopsTheServer, strategy=in_process_strategy_name, state=state
    )
    state["server"] = server

    def client() -> None:
        with connect(server) as sock:
            state["reply"] = sock.recv(100)

    client_thread = threading.Thread(target=client)
    client_thread.start()
    server.serve_forever()  # on this thread: returns once the handler asked it to stop
    client_thread.join(WAIT)
    server.close()
    assert state["returned"] is True
    assert state["reply"] == b"bye\n"
    assert server.stats().errors == 0, caplog.text
    if how == "server.close":
        with pytest.raises(ServerClosedError):
            server.fileno()


def test_shutdown_before_serve_forever_is_not_lost(
    cases: dict[str, TransportCase], strategy_name: str, make_server: MakeServer
) -> None:
    server = make_server(cases["tcp4"], Echo, strategy=strategy_name)
    server.shutdown()  # no loop yet: must return at once
    server.serve_forever()  # the pending shutdown makes this return at once
    # The shutdown was consumed: the server serves normally afterwards.
    with serve_in_thread(server):
        assert ping(server) == b"ping\n"


def test_serve_forever_twice_at_once_is_refused(
    cases: dict[str, TransportCase], make_server: MakeServer
) -> None:
    server = make_server(cases["tcp4"], Echo)
    with serve_in_thread(server), pytest.raises(RuntimeError, match="already serving"):
        server.serve_forever()


class Blocking(StreamHandler[dict[str, Any]]):
    """Signals ``started``, waits for ``release``, then replies and records it."""

    speaks_first = True  # the client sends nothing: it waits for the reply

    def handle(self) -> None:
        self.state["started"].set()
        released = self.state["release"].wait(WAIT)
        self.wfile.write(b"done\n" if released else b"timed out\n")
        self.state["order"].append("handler finished")


def blocking_state() -> dict[str, Any]:
    return {"started": threading.Event(), "release": threading.Event(), "order": []}


def test_close_waits_for_requests_in_flight(
    cases: dict[str, TransportCase], make_server: MakeServer
) -> None:
    state = blocking_state()
    server = make_server(cases["tcp4"], Blocking, strategy="ThreadPerRequest", state=state)
    loop = LoopThread(server).__enter__()
    with connect(server) as client:
        assert state["started"].wait(WAIT)

        def close() -> None:
            server.close(grace=WAIT)
            state["order"].append("close returned")

        closer = threading.Thread(target=close)
        closer.start()
        assert loop.stopped()  # the loop stops first; close() then drains the request
        state["release"].set()
        closer.join(WAIT)
        assert client.recv(100) == b"done\n"
    assert state["order"] == ["handler finished", "close returned"]


class WaitsForTheClient(StreamHandler[threading.Event]):
    """Signals it started, then waits for a byte the client never sends."""

    speaks_first = True  # runs without waiting for the client's first byte

    def handle(self) -> None:
        self.state.set()
        self.rfile.read(1)


def test_close_cuts_requests_still_running_after_the_grace_period_and_says_so(
    cases: dict[str, TransportCase],
    in_process_strategy_name: str,
    make_server: MakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = threading.Event()
    server = make_server(
        cases["tcp4"], WaitsForTheClient, strategy=in_process_strategy_name, state=started
    )
    reports: list[DrainReport | None] = []
    closer = threading.Thread(target=lambda: reports.append(server.close(grace=0.05)))
    caplog.set_level(logging.WARNING, logger="typedserve.server")
    with LoopThread(server):
        client = connect(server)
        try:
            assert started.wait(WAIT)
            closer.start()
            closer.join(3.0)  # bounded: a close that ignores the grace period fails here
            assert not closer.is_alive(), "close(grace=0.05) did not return"
            assert client.recv(100) == b""  # cut: the connection was closed under the handler
        finally:
            client.close()  # lets a stuck handler (and so a stuck close) finish
            if closer.ident is not None:
                closer.join(WAIT)
    [report] = reports
    assert report is not None and report.cut == 1
    assert "1 request(s) still running after the 0.1 s grace period were cut" in caplog.text
