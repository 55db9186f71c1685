"""Datagrams received by the strategy's own threads (``ThreadPool``, ``Prefork``'s workers):
counted exactly, bounded, drained without loss, and served again after a stop.

See ``typedserve/_pulling.py``: while the loop runs, the pool's threads receive from the socket
themselves. These tests try to break what that must keep: every datagram accepted ends as
finished, refused or rejected (never lost between a thread and the drain), no more requests run
than the limit, a stop hands the socket back so a later ``serve_forever`` serves again, and a
transport whose ``receive`` is its own keeps being called.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from typedserve import (
    Datagram,
    DrainReport,
    Limits,
    Prefork,
    Server,
    ServerConfig,
    ThreadPool,
    UDPTransport,
    UnixDatagramTransport,
    _pulling,
)
from typedserve.config import UnixAddress
from typedserve.testing import serve_in_thread

from .conftest import MakeServer
from .support import STRATEGY_CASES, WAIT, CommandDatagram, Gate, StrategyCase, TransportCase

pytestmark = pytest.mark.timeout(60)

UDP = TransportCase("udp", UDPTransport, False)
PULLING = [case for case in STRATEGY_CASES if case.name in ("ThreadPool", "Prefork")]


@pytest.fixture(params=PULLING, ids=str)
def strategy_case(request: pytest.FixtureRequest) -> StrategyCase:
    """The strategies whose threads receive datagrams themselves."""
    case: StrategyCase = request.param
    return case


def client_for(server: Server[Any, Any]) -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(WAIT)
    client.connect(server.address[:2])
    return client


def ask(server: Server[Any, Any], payload: bytes) -> bytes:
    with client_for(server) as client:
        client.send(payload)
        return client.recv(65_536)


def run_clients(client: Callable[[int], None], count: int) -> None:
    """Run ``client(n)`` for n in ``range(count)`` on threads at once; re-raise a failure."""
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            client(n)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert not failures, failures


def test_every_datagram_is_counted_once_across_threads(make_server: MakeServer) -> None:
    """Four clients, 250 requests each, one at a time per client: every reply is its own and
    the counters add up exactly (accepted == finished, nothing in flight)."""
    server = make_server(UDP)

    def client(n: int) -> None:
        with client_for(server) as conn:
            for i in range(250):
                payload = b"echo:%d-%d" % (n, i)
                conn.send(payload)
                assert conn.recv(100) == payload[5:]

    with serve_in_thread(server):
        run_clients(client, 4)
    stats = server.stats()  # after the close: a handler's reply precedes its end's count
    assert (stats.accepted, stats.in_flight, stats.errors) == (1000, 0, 0)


def test_no_more_run_at_once_than_the_limit(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase
) -> None:
    """With ``limits.max_in_flight=2`` and the pool's threads receiving, two handlers hold;
    the other datagrams wait in the socket (not accepted) until one ends."""
    if strategy_case.name == "Prefork":
        pytest.skip("Prefork applies the limit per worker (see test_conformance)")
    server = make_server(UDP, limits=Limits(max_in_flight=2), strategy=ThreadPool(max_workers=4))
    with serve_in_thread(server):
        clients = [client_for(server) for _ in range(4)]
        try:
            for client in clients:
                client.send(b"gate")
            gate.wait_started(2)
            assert server.stats().in_flight == 2
            gate.release()
            gate.wait_started(2)  # the two that waited in the socket
            gate.release()
            for client in clients:
                assert client.recv(10) == b"done"
        finally:
            for client in clients:
                client.close()
        assert server.stats().accepted == 4


def test_a_drain_under_a_flood_loses_nothing_it_accepted(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    """A client keeps sending while the server stops and drains: every datagram the server
    took from the socket is finished, rejected or refused (none is left in flight or lost
    between a receiving thread and the drain), and every thread the pool lent comes back (the
    leak check)."""
    server = make_server(UDP)
    flooding = threading.Event()
    stop = threading.Event()
    sent, replies = [0], [0]

    def flood() -> None:
        with client_for(server) as conn:
            conn.setblocking(False)
            for _ in range(1_000_000):  # bounded: the test ends it long before
                if stop.is_set():
                    return
                try:
                    conn.send(b"echo:x")
                    sent[0] += 1
                except OSError:  # the receive buffer is full, or the server is gone (ICMP)
                    pass
                try:
                    while conn.recv(100):
                        replies[0] += 1
                except OSError:
                    pass
                if sent[0] >= 200 and replies[0]:  # the server is serving the flood
                    flooding.set()

    flooder = threading.Thread(target=flood)
    with serve_in_thread(server):
        flooder.start()
        assert flooding.wait(WAIT)
        server.shutdown(grace=WAIT)
    stop.set()
    flooder.join(WAIT)
    stats = server.stats()
    assert stats.in_flight == 0  # accepted == finished + rejected + refused, exactly
    assert 0 < replies[0] <= stats.accepted - stats.rejected
    assert stats.errors == 0


def test_serving_again_after_a_stop_takes_the_socket_back(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    """A stop hands the socket back to the loop; a second ``serve_forever`` lends it again.

    Prefork forks new workers each run; the old ones drain after a plain ``shutdown()``, and
    a draining worker refuses what it reads from the shared socket: a new run waits for them
    to exit before it forks (the datagram sent here once went to a draining worker)."""
    server = make_server(UDP)
    server.bind()
    strategy = server.strategy
    for round_ in range(3):
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            assert server.wait_serving(WAIT)
            if isinstance(strategy, Prefork):
                assert strategy.wait_ready(WAIT)
            assert ask(server, b"echo:%d" % round_) == b"%d" % round_
        finally:
            server.shutdown()
            thread.join(WAIT)
        assert not thread.is_alive()
    assert server.stats().accepted == 3


def test_a_refused_datagram_is_counted_and_not_served(make_server: MakeServer) -> None:
    """The access policy runs on the receiving thread: a refused datagram gets no reply and is
    counted as refused; the allowed one is served."""

    def allow(request: Datagram[Any]) -> bool:
        return not request.payload.startswith(b"echo:no")

    server = make_server(UDP, verify_request=allow)
    server.bind()
    with client_for(server) as client:
        with serve_in_thread(server):
            client.send(b"echo:no")
            client.send(b"echo:yes")
            assert client.recv(10) == b"yes"
        client.settimeout(0)
        with pytest.raises(BlockingIOError):  # the server is closed: nothing else came
            client.recv(10)
    stats = server.stats()
    assert (stats.accepted, stats.refused, stats.in_flight) == (2, 1, 0)


class LateUDP(UDPTransport):
    """Each pulling thread's receive is held, once it has ``echo:late``, until ``release`` is
    set: the test sets it as the stop begins, so that datagram is a stopped round's leftover."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    def receiver(self) -> Callable[[], Datagram[Any] | None] | None:
        receive = super().receiver()
        if receive is None:
            return None

        def held_receive() -> Datagram[Any] | None:
            datagram = receive()
            if datagram is not None and datagram.payload == b"echo:late":
                self.holding.set()
                assert self.release.wait(WAIT), "the stop never began"
            return datagram

        return held_receive


def test_a_datagram_taken_as_the_stop_comes_is_served_by_the_drain_at_once(
    make_server: MakeServer,
    gate: Gate,
    strategy_case: StrategyCase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two handlers hold; a third thread receives a datagram just as the stop begins. It goes
    back to the loop, and the drain serves it at once, while the two are still running: the
    drain's first wait does not block on a wake-up that its own read of parked connections
    consumed (it once waited the whole grace, then refused it).

    The stop's wait for the threads to leave their receive is where ``release`` is set (the
    one white-box hook here: nothing outside shows a stop between its start and its end)."""
    if strategy_case.name == "Prefork":
        pytest.skip("the hook is in this process: a ThreadPool of three")
    transport = LateUDP()
    quiet = _pulling._Round.quiet

    def quiet_and_release(self: _pulling._Round) -> bool:
        transport.release.set()  # the round is stopped: what is received now is left over
        return quiet(self)

    monkeypatch.setattr(_pulling._Round, "quiet", quiet_and_release)
    server = make_server(
        TransportCase("udp", lambda: transport, False),
        strategy=ThreadPool(max_workers=3, max_pending=0),
        on_busy=lambda datagram: datagram.reply(b"BUSY"),
    )
    reports: list[DrainReport | None] = []
    with serve_in_thread(server):
        held = [client_for(server) for _ in range(2)]
        late = client_for(server)
        try:
            for client in held:
                client.send(b"gate")
                gate.wait_started(1)
            late.send(b"echo:late")
            assert transport.holding.wait(WAIT)
            stopper = threading.Thread(target=lambda: reports.append(server.shutdown(grace=WAIT)))
            stopper.start()
            assert late.recv(100) == b"late"  # before the two held ones end
            gate.release()
            assert [client.recv(10) for client in held] == [b"done", b"done"]
            stopper.join(WAIT)
        finally:
            for client in [*held, late]:
                client.close()
    assert reports == [DrainReport(completed=3, cut=0, backlog_refused=0)]


class CountingUDP(UDPTransport):
    """A transport with a ``receive`` of its own: the server must keep calling it."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    def receive(self) -> Datagram[Any] | None:
        datagram = super().receive()
        if datagram is not None:
            self.received += 1
        return datagram


def test_a_transport_with_its_own_receive_is_received_by_the_loop(
    make_server: MakeServer, strategy_case: StrategyCase
) -> None:
    if strategy_case.name == "Prefork":
        pytest.skip("the count would be in the workers' processes")
    transport = CountingUDP()
    server = make_server(TransportCase("udp", lambda: transport, False))
    with serve_in_thread(server):
        for i in range(5):
            assert ask(server, b"echo:%d" % i) == b"%d" % i
    assert transport.received == 5


@pytest.fixture
def unix_dgram_server(short_tmp_dir: Path) -> Iterator[Server[Any, Any]]:
    config = ServerConfig(
        address=UnixAddress(path=str(short_tmp_dir / "big.sock")),
        limits=Limits(max_datagram_size=200_000),
    )
    server: Server[Any, Any] = Server(
        config=config,
        transport=UnixDatagramTransport(),
        strategy=ThreadPool(max_workers=4),
        handler=CommandDatagram,
        state={},
    )
    with serve_in_thread(server):
        yield server


def test_large_datagrams_on_several_threads_keep_their_own_bytes(
    unix_dgram_server: Server[Any, Any], short_tmp_dir: Path
) -> None:
    """Above 64 KiB each receiving thread reads into a buffer of its own: two clients sending
    80 KB datagrams at once each get their own bytes back (two: a third 80 KB reply could
    find the server's send buffer full)."""

    def client(n: int) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as conn:
            conn.bind(str(short_tmp_dir / f"c{n}.sock"))
            conn.settimeout(WAIT)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            conn.connect(unix_dgram_server.address)
            for i in range(40):
                body = bytes([n * 40 + i]) * 80_000
                conn.send(b"echo:" + body)
                assert conn.recv(200_000) == body

    run_clients(client, 2)
    assert unix_dgram_server.stats().accepted == 80
