"""Drains reset nobody: every client of a draining server is served, refused with the busy
reply and an orderly end, or never connected; none reads ``ECONNRESET``.

Each test runs for every strategy of the suite over TCP and Unix stream sockets, with the leak
check of ``make_server``. Clients arrive on a thread of their own (:class:`Arrivals`) while the
server drains, and every outcome is classified and matched against the drain's report.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from tests.strategies.conftest import MakeServer
from tests.strategies.support import TRANSPORT_CASES, WAIT, Gate, StrategyCase, TransportCase
from typedserve import DrainReport, Limits, Prefork, Server, ShutdownConfig
from typedserve.testing import connect, serve_in_thread

pytestmark = pytest.mark.timeout(60)

BUSY = b"BUSY\n"
CONNECT_TIMEOUT = 0.5
"""How long an arrival waits for its connection: a draining TCP listener drops SYNs (a Unix
one has no room in its queue), so the connection is never established and ``connect`` times
out (or is refused once the listener is closed). It also paces the arrivals."""
NEVER_ESTABLISHED = (ConnectionRefusedError, TimeoutError, BlockingIOError, FileNotFoundError)
STREAM_TRANSPORTS = {case.name: case for case in TRANSPORT_CASES if case.stream}
ARRIVING = 4
"""Arrivals made while the drain is held open (by requests waiting at the gate)."""


def busy(request: Any) -> None:
    """The busy hook: one line the arrivals recognise."""
    request.socket.sendall(BUSY)


@dataclass
class Outcomes:
    """What happened to each arrival."""

    completed: int = 0  # the full reply, then EOF
    refused: int = 0  # BUSY, then EOF
    never: int = 0  # not established: refused or timed out at connect time
    reset: list[str] = field(default_factory=list)  # ECONNRESET or EPIPE: must never happen
    other: list[str] = field(default_factory=list)  # anything else: must never happen either

    @property
    def settled(self) -> int:
        return self.completed + self.refused + self.never + len(self.reset) + len(self.other)


class Arrivals:
    """Clients arriving one after another on a thread, each sending ``echo:<n>`` and reading to
    EOF; outcomes in :attr:`outcomes`.

    The first ``early`` connect, then the thread waits for :meth:`go`; after it, clients keep
    arriving until :meth:`stop_arriving` (or ``limit`` arrivals), and the thread ends once
    every established one has ended (:meth:`finish` waits for that, bounded). Nothing sleeps:
    a connection that is not established takes up to :data:`CONNECT_TIMEOUT` to fail, which
    paces the arrivals during a drain (a Unix connect waits through ``SO_SNDTIMEO``).
    """

    def __init__(self, address: Any, family: int, *, early: int, limit: int = 200) -> None:
        self.address = address
        self.family = family
        self.early = early
        self.limit = limit
        self.outcomes = Outcomes()
        self._changed = threading.Condition()
        self._go = threading.Event()
        self._no_more = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._received: dict[int, bytes] = {}
        self._connected = self._attempts = 0
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-arrivals", daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_arriving()
        self._thread.join(WAIT + CONNECT_TIMEOUT)

    def go(self) -> None:
        self._go.set()

    def wait_connected(self, count: int) -> bool:
        """Wait until ``count`` arrivals are established (and have sent their request)."""
        return self._wait(lambda: self._connected >= count)

    def wait_attempts(self, count: int) -> bool:
        """Wait until ``count`` arrivals have tried to connect (whatever came of it)."""
        return self._wait(lambda: self._attempts >= count)

    def wait_settled(self, count: int) -> bool:
        """Wait until ``count`` arrivals have an outcome."""
        return self._wait(lambda: self.outcomes.settled >= count)

    def _wait(self, reached: Callable[[], bool]) -> bool:
        with self._changed:
            return self._changed.wait_for(reached, WAIT)

    def stop_arriving(self) -> None:
        """No more arrivals (those established are still read to their end)."""
        self._go.set()
        self._no_more.set()

    def finish(self) -> Outcomes:
        """Stop arriving, wait (bounded) for the established arrivals to end; the outcomes."""
        self.stop_arriving()
        self._thread.join(WAIT + CONNECT_TIMEOUT)
        assert not self._thread.is_alive(), "the arrivals thread did not end"
        if self._failure is not None:
            raise self._failure
        return self.outcomes

    def _run(self) -> None:
        try:
            for index in range(self.limit):
                if index == self.early:
                    while not self._go.wait(0.05):
                        self._read(0)
                if self._no_more.is_set():
                    break
                self._arrive(index)
                self._read(0)
            self._read_to_the_end()
        except BaseException as exc:  # raised again by finish()
            self._failure = exc
        finally:
            for key in list(self._selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]  # sockets only
            self._selector.close()

    @staticmethod
    def family_of(case: TransportCase) -> int:
        return socket.AF_UNIX if case.name == "unix" else socket.AF_INET

    @staticmethod
    def try_connect(client: socket.socket, address: Any) -> bool:
        """Connect within :data:`CONNECT_TIMEOUT`; ``False`` if never established."""
        if client.family == socket.AF_UNIX:  # a blocking connect waits for room, this long
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(CONNECT_TIMEOUT))
        else:
            client.settimeout(CONNECT_TIMEOUT)
        try:
            client.connect(address)
        except NEVER_ESTABLISHED:
            return False
        return True

    def _arrive(self, index: int) -> None:
        client = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            established = self.try_connect(client, self.address)
            if established:
                client.sendall(b"echo:%d\n" % index)
        except OSError as exc:
            client.close()
            self._settle_error(index, exc, attempt=True)
            return
        if not established:
            client.close()
            self._settle(lambda o: setattr(o, "never", o.never + 1), attempt=True)
            return
        client.setblocking(False)
        self._selector.register(client, selectors.EVENT_READ, index)
        self._received[index] = b""
        with self._changed:
            self._connected += 1
            self._attempts += 1
            self._changed.notify_all()

    def _read(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            client: socket.socket = key.fileobj  # type: ignore[assignment]  # sockets only
            index: int = key.data
            try:
                data = client.recv(4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                self._end(client)
                self._settle_error(index, exc)
                continue
            if data:
                self._received[index] += data
                continue
            self._end(client)
            self._settle_reply(index, self._received.pop(index))

    def _read_to_the_end(self) -> None:
        """Wait (bounded) for every established arrival to end."""
        for _ in range(int(WAIT / 0.05)):
            if not self._selector.get_map():
                return
            self._read(0.05)
        unended = [key.data for key in self._selector.get_map().values()]
        self._settle(lambda o: o.other.extend(f"{i}: no end after {WAIT} s" for i in unended))

    def _end(self, client: socket.socket) -> None:
        self._selector.unregister(client)
        client.close()

    def _settle_reply(self, index: int, data: bytes) -> None:
        if data == b"%d\n" % index:
            self._settle(lambda o: setattr(o, "completed", o.completed + 1))
        elif data == BUSY:
            self._settle(lambda o: setattr(o, "refused", o.refused + 1))
        else:
            self._settle(lambda o: o.other.append(f"{index}: {data!r} then EOF"))

    def _settle_error(self, index: int, exc: OSError, *, attempt: bool = False) -> None:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            self._settle(lambda o: o.reset.append(f"{index}: {exc!r}"), attempt=attempt)
        else:
            self._settle(lambda o: o.other.append(f"{index}: {exc!r}"), attempt=attempt)

    def _settle(self, record: Callable[[Outcomes], object], *, attempt: bool = False) -> None:
        with self._changed:
            record(self.outcomes)
            self._attempts += attempt
            self._changed.notify_all()


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))


def hold(server: Server[Any, Any], gate: Gate, count: int) -> list[socket.socket]:
    """``count`` requests running and waiting at the gate, started one at a time (see
    ``test_conformance.hold``: a ``Prefork`` worker may park more than it has threads)."""
    clients = []
    for _ in range(count):
        client = connect(server, timeout=WAIT)
        clients.append(client)
        client.sendall(b"gate\n")
        gate.wait_started(1)
    return clients


def read_to_eof(client: socket.socket) -> bytes:
    return b"".join(iter(lambda: client.recv(4096), b""))


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_a_drain_under_arrivals_resets_nobody(
    request: pytest.FixtureRequest,
    make_server: MakeServer,
    gate: Gate,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
    how: Literal["shutdown", "close"],
) -> None:
    """Requests held in flight at the gate, a ``gate`` request and two others queued while the
    loop is stopped, and clients arriving all through ``shutdown(grace)`` (or
    ``close(grace)``), held open by the gate: each client is served (and counted in
    ``completed``), refused with BUSY and an orderly end (counted in ``backlog_refused``), or
    never established. None is reset, and nothing is cut.

    Inline holds no request in flight (its handler would hold the stop too); a Prefork worker
    drains as soon as the loop stops, so nothing queues before its drain.
    """
    if stream_case.name == "unix":
        # Not strict: it usually holds. A Unix listener's queue length cannot be read (TCP's
        # comes from TCP_INFO), so the drain bounds its backlog pass by the configured backlog,
        # and listen(0) still lets one arrival at a time in: under arrivals that never stop the
        # pass can keep serving late arrivals while earlier ones wait past their 10 s timeout.
        request.applymarker(
            pytest.mark.xfail(strict=False, reason="Unix listeners: queued-at-stop is unknown")
        )
    server = make_server(stream_case, on_busy=busy, shutdown=ShutdownConfig(grace=WAIT))
    in_flight = 0 if strategy_case.name == "Inline" else min(strategy_case.concurrency, 2)
    queues = strategy_case.name != "Prefork"
    reports: list[DrainReport | None] = []

    def stop() -> None:
        drain = server.shutdown if how == "shutdown" else server.close
        reports.append(drain(grace=WAIT))

    stopper = threading.Thread(target=stop, name="test-stopper")
    family = Arrivals.family_of(stream_case)
    with serve_in_thread(server), contextlib.ExitStack() as clients:
        held = [clients.enter_context(client) for client in hold(server, gate, in_flight)]
        server.shutdown()  # the loop stops; held requests go on; new connections queue
        if queues:  # first in the queue, so the drain starts it whatever its capacity
            held.append(clients.enter_context(connect(server, timeout=WAIT)))
            held[-1].sendall(b"gate\n")
        early = 2 if queues else 0
        with Arrivals(server.address, family, early=early) as arrivals:
            assert arrivals.wait_connected(early)
            stopper.start()
            arrivals.go()
            if queues:  # the drain serves the queued gate request: it has begun
                gate.wait_started(1)
            else:
                assert arrivals.wait_settled(1), arrivals.outcomes
            assert arrivals.wait_attempts(early + ARRIVING), arrivals.outcomes
            arrivals.stop_arriving()
            gate.release()
            replies = [read_to_eof(client) for client in held]
            stopper.join(WAIT + 5)
            assert not stopper.is_alive(), f"{how}(grace={WAIT}) did not return"
            outcomes = arrivals.finish()
    assert replies == [b"done\n"] * len(held)
    assert outcomes.reset == [], outcomes
    assert outcomes.other == [], outcomes
    [report] = reports
    assert report is not None
    assert report.cut == 0
    assert report.completed == len(held) + outcomes.completed, (report, outcomes)
    assert report.backlog_refused == outcomes.refused, (report, outcomes)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(STREAM_TRANSPORTS["tcp"], id="tcp"),
        pytest.param(
            STREAM_TRANSPORTS["unix"],
            id="unix",
            marks=pytest.mark.xfail(
                strict=True,
                reason="a drained Unix listener is held with listen(0), which leaves room for "
                "one connection in its queue: the kernel establishes it, and Server.close() "
                "closes the listener without refusing it (server.py would have to shut the "
                "listener down for reading, SHUT_RD, which refuses new connects for good, then "
                "refuse what is queued, before closing it)",
            ),
        ),
    ],
)
def test_a_client_arriving_between_a_drain_and_close_is_not_reset(
    make_server: MakeServer, strategy_case: StrategyCase, case: TransportCase
) -> None:
    """After ``shutdown(grace)`` returned, the listener stays open (the server could serve
    again) until ``close()``: a client connecting meanwhile must not be established only to be
    reset when the listener closes. It is never established, or refused cleanly."""
    server = make_server(case, on_busy=busy)
    with serve_in_thread(server):
        assert server.shutdown(grace=WAIT) == DrainReport()
        with socket.socket(Arrivals.family_of(case), socket.SOCK_STREAM) as late:
            established = Arrivals.try_connect(late, server.address)
            if established:
                late.sendall(b"echo:late\n")
            server.close()
            if established:
                assert read_to_eof(late) in (b"", BUSY)  # not ECONNRESET


def test_a_refused_client_that_sends_after_the_busy_reply_reads_a_clean_end(
    make_server: MakeServer, gate: Gate, strategy_case: StrategyCase, stream_case: TransportCase
) -> None:
    """At ``max_in_flight`` with ``overload="reject"``, a client reads BUSY, only then sends
    its request, and reads to EOF: the server lingers (reads and discards until our end), so
    the late request does not make it reset the connection under the busy reply.

    Three clients are refused before any of them sends: the server's loop refuses them one
    after the other, so once the last has its BUSY, the server is done with the refusals of
    the others (a server that closed them at once has closed them by then)."""
    if strategy_case.name == "Inline":
        pytest.skip("an Inline handler held at the gate holds the loop: nobody is refused")
    one = Prefork(workers=1, threads_per_worker=1) if strategy_case.name == "Prefork" else None
    server = make_server(
        stream_case, on_busy=busy, limits=Limits(max_in_flight=1, overload="reject"), strategy=one
    )
    with serve_in_thread(server):
        [held] = hold(server, gate, 1)
        with held:
            refused = []
            try:
                for _ in range(3):
                    refused.append(connect(server, timeout=WAIT))
                    assert refused[-1].recv(len(BUSY)) == BUSY
                for index, client in enumerate(refused):
                    client.sendall(b"echo:%d\n" % index)  # too late: the server said BUSY
                    assert read_to_eof(client) == b""  # an orderly end, no ECONNRESET
                    client.sendall(b"more")  # the server still reads and discards: no EPIPE
            finally:
                for client in refused:
                    client.close()
            gate.release()
            assert read_to_eof(held) == b"done\n"
        stats = server.stats()
    assert stats.rejected == 3


class _DrainStarted(logging.Handler):
    """Sets an event when the selector loop logs that its drain has begun."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("draining "):
            self.event.set()


@pytest.mark.parametrize("framed", [False, True], ids=["unframed", "framed"])
def test_a_client_that_connected_before_the_stop_and_sends_during_the_drain_is_served(
    make_server: MakeServer,
    strategy_case: StrategyCase,
    stream_case: TransportCase,
    framed: bool,
) -> None:
    """A client connects, the drain begins, only then does it send its request: it is served
    (the drain waits for it, up to ``PENDING_WAIT``), not refused. This is every client that
    connected just before a stop or a worker's rolling restart. A client that stays silent is
    refused with the busy reply and a clean end once ``PENDING_WAIT`` has passed (AsyncIO: a
    clean end only; its silent connections keep no request for the busy hook)."""
    if not strategy_case.in_process:
        pytest.skip("the drain runs in a worker process: no log here")
    if framed and strategy_case.name == "AsyncIO":
        pytest.skip(
            "an async keep-alive handler waits for its next line in its own task, which the "
            "drain cannot tell from a request in progress: it is cancelled at the deadline"
        )
    handler = {"handler": strategy_case.framed_handler} if framed else {}
    server = make_server(stream_case, on_busy=busy, **handler)
    started = _DrainStarted()
    log = logging.getLogger("typedserve.server")
    log.addHandler(started)
    level = log.level
    log.setLevel(logging.DEBUG)
    try:
        with serve_in_thread(server):
            early = connect(server, timeout=WAIT)
            silent = connect(server, timeout=WAIT)
            with early, silent:
                # Both are accepted (and parked, waiting for their first byte) once a request
                # made after them has been served: the loop takes connections in order.
                assert ask_once(server, b"echo:probe") == b"probe"
                stopping = threading.Thread(target=server.shutdown, kwargs={"grace": WAIT})
                stopping.start()
                try:
                    assert started.event.wait(WAIT)
                    early.sendall(b"echo:early\n")
                    assert read_to_eof(early) == b"early\n"
                    refusal = b"" if strategy_case.name == "AsyncIO" else BUSY
                    assert read_to_eof(silent) == refusal  # after PENDING_WAIT, cleanly
                finally:
                    stopping.join(WAIT)
    finally:
        log.removeHandler(started)
        log.setLevel(level)
    assert server.stats().rejected == 1


def ask_once(server: Server[Any, Any], command: bytes) -> bytes:
    """One request on a new connection: its reply line, without the newline (a framed
    handler keeps the connection open after it)."""
    with connect(server, timeout=WAIT) as client:
        client.sendall(command + b"\n")
        reply = b""
        while not reply.endswith(b"\n") and (chunk := client.recv(4096)):
            reply += chunk
        return reply.rstrip(b"\n")
