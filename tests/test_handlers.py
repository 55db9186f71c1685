"""Handler behaviour a user observes: life cycle, rfile/wfile, socket options, datagram replies."""

from __future__ import annotations

import io
import socket
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from typedserve import StreamHandler, Timeouts
from typedserve.testing import connect, serve_in_thread

if TYPE_CHECKING:
    from tests.conftest import MakeServer, TransportCase

pytestmark = pytest.mark.timeout(10)

WAIT = 5.0  # bound on every event wait; a healthy run never gets near it

# Exercise both file implementations: plain socket files, and deadline-aware ones.
DEADLINE_MODES = {"no-deadline": Timeouts(request=None), "deadline": Timeouts(request=60)}


@pytest.fixture(params=sorted(DEADLINE_MODES))
def timeouts(request: pytest.FixtureRequest) -> Timeouts:
    """Timeouts with and without a request deadline (which changes how rfile/wfile are built)."""
    return DEADLINE_MODES[request.param]


class Events:
    """Events a handler and the test use to take turns."""

    def __init__(self) -> None:
        self.written = threading.Event()
        self.checked = threading.Event()


# -- life cycle ------------------------------------------------------------------------------


class Recorder(StreamHandler[list[str]]):
    fail_in: ClassVar[str] = ""
    speaks_first = True  # the client only reads

    def setup(self) -> None:
        self.state.append("setup")
        super().setup()
        self._maybe_fail("setup")

    def handle(self) -> None:
        self.state.append("handle")
        self.wfile.write(b"partial reply")
        self._maybe_fail("handle")

    def finish(self) -> None:
        self.state.append("finish")
        super().finish()

    def close(self) -> None:
        self.state.append("close")
        super().close()

    def _maybe_fail(self, step: str) -> None:
        if self.fail_in == step:
            raise RuntimeError(f"failed in {step}")


class BufferedRecorder(Recorder):
    wbufsize = 65_536


@pytest.mark.parametrize(
    ("fail_in", "calls"),
    [
        ("", ["setup", "handle", "finish", "close"]),
        ("setup", ["setup", "close"]),
        ("handle", ["setup", "handle", "close"]),
    ],
)
def test_life_cycle_skips_finish_after_an_error_and_always_closes(
    stream_case: TransportCase,
    in_process_strategy_name: str,
    make_server: MakeServer,
    fail_in: str,
    calls: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = type("H", (BufferedRecorder,), {"fail_in": fail_in})
    state: list[str] = []
    server = make_server(stream_case, handler, strategy=in_process_strategy_name, state=state)
    with serve_in_thread(server), connect(server) as client:
        reply = b"".join(iter(lambda: client.recv(100), b""))
    # A failed handle never sends its half-built (buffered) reply.
    assert reply == (b"partial reply" if not fail_in else b"")
    assert state == calls
    assert server.stats().errors == (1 if fail_in else 0)


# -- StreamHandler files ---------------------------------------------------------------------


class Conversation(StreamHandler[Events]):
    """Greets, then echoes one line: proves wfile writes go out before the handler returns."""

    speaks_first = True  # it does not wait for the client

    def handle(self) -> None:
        self.wfile.write(b"hello\n")
        self.wfile.write(self.rfile.readline().upper())


def test_unbuffered_wfile_sends_each_write_at_once(
    stream_case: TransportCase,
    strategy_name: str,
    make_server: MakeServer,
    timeouts: Timeouts,
) -> None:
    server = make_server(stream_case, Conversation, strategy=strategy_name, timeouts=timeouts)
    with serve_in_thread(server), connect(server) as client:
        reader = client.makefile("rb")
        assert reader.readline() == b"hello\n"  # before the client said anything
        client.sendall(b"line one\nline two\n")
        assert reader.readline() == b"LINE ONE\n"
        assert reader.read() == b""  # the second line was buffered in rfile, then dropped
        reader.close()


class BufferedWriter(StreamHandler[Events]):
    speaks_first = True  # it does not wait for the client
    wbufsize = 8192

    def handle(self) -> None:
        self.wfile.write(b"buffered")
        self.state.written.set()
        assert self.state.checked.wait(WAIT)


def test_buffered_wfile_is_sent_by_finish(
    stream_case: TransportCase,
    in_process_strategy_name: str,
    make_server: MakeServer,
    timeouts: Timeouts,
) -> None:
    events = Events()
    server = make_server(
        stream_case,
        BufferedWriter,
        strategy=in_process_strategy_name,
        state=events,
        timeouts=timeouts,
    )
    with serve_in_thread(server), connect(server) as client:
        assert events.written.wait(WAIT)
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(100)  # written, but still in wfile's buffer
        client.setblocking(True)
        events.checked.set()
        assert client.recv(100) == b"buffered"


class ReadsExactly(StreamHandler):
    rbufsize = 0

    def handle(self) -> None:
        size = int(self.rfile.readline())
        self.wfile.write(self.rfile.read(size)[::-1])


def test_rfile_reads_across_packets(
    stream_case: TransportCase, make_server: MakeServer, timeouts: Timeouts
) -> None:
    payload = bytes(range(256)) * 1000
    server = make_server(stream_case, ReadsExactly, timeouts=timeouts)
    with serve_in_thread(server), connect(server) as client:
        client.sendall(b"%d\n" % len(payload))
        for start in range(0, len(payload), 4096):
            client.sendall(payload[start : start + 4096])
        client.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: client.recv(65_536), b""))
    assert reply == payload[::-1]


class CannedInput(StreamHandler[dict[str, Any]]):
    """Replaces ``rfile`` in ``setup`` (without calling ``super().setup()``)."""

    speaks_first = True  # it does not wait for the client

    def setup(self) -> None:
        self.rfile = io.BytesIO(b"canned line\n")

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())

    def close(self) -> None:
        super().close()
        self.state["rfile closed"] = self.rfile.closed
        self.state["wfile closed"] = self.wfile.closed


def test_files_assigned_in_setup_replace_the_connection_files_and_are_closed(
    stream_case: TransportCase, in_process_strategy_name: str, make_server: MakeServer
) -> None:
    seen: dict[str, Any] = {}
    server = make_server(stream_case, CannedInput, strategy=in_process_strategy_name, state=seen)
    with serve_in_thread(server), connect(server) as client:
        reply = b"".join(iter(lambda: client.recv(100), b""))
    assert reply == b"CANNED LINE\n"  # wfile still opened on the connection, on first use
    assert seen == {"rfile closed": True, "wfile closed": True}


class SocketOptions(StreamHandler[dict[str, Any]]):
    speaks_first = True  # it does not wait for the client
    nodelay = True
    timeout = 7.5

    def handle(self) -> None:
        sock = self.request.socket
        if sock.family != socket.AF_UNIX:
            self.state["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.state["timeout"] = sock.gettimeout()
        self.wfile.write(b"done")


def test_nodelay_and_timeout_class_attributes_apply(
    stream_case: TransportCase, in_process_strategy_name: str, make_server: MakeServer
) -> None:
    seen: dict[str, Any] = {}
    server = make_server(stream_case, SocketOptions, strategy=in_process_strategy_name, state=seen)
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(4) == b"done"
    assert seen["timeout"] == 7.5
    if stream_case.family != socket.AF_UNIX:
        assert seen["nodelay"] != 0  # Nagle disabled on TCP; ignored on Unix sockets


class DefaultOptions(StreamHandler[dict[str, Any]]):
    speaks_first = True  # it does not wait for the client

    def handle(self) -> None:
        sock = self.request.socket
        self.state["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.state["timeout"] = sock.gettimeout()


@pytest.mark.parametrize(
    ("timeouts_", "expected"),
    [
        (Timeouts(request=None), None),
        (Timeouts(), None),  # the request budget is the loop's cut, not a socket timeout
        (Timeouts(idle=9, request=None), 9),
        (Timeouts(idle=9, request=4), 9),
    ],
)
def test_accepted_sockets_get_the_idle_timeout_and_keep_nagle_by_default(
    make_server: MakeServer,
    cases: dict[str, TransportCase],
    timeouts_: Timeouts,
    expected: float | None,
) -> None:
    seen: dict[str, Any] = {}
    server = make_server(cases["tcp4"], DefaultOptions, state=seen, timeouts=timeouts_)
    with serve_in_thread(server), connect(server) as client:
        assert client.recv(1) == b""
    assert seen == {"nodelay": 0, "timeout": expected}
