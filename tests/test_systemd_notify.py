"""sd_notify in-process: messages reach a test-owned ``NOTIFY_SOCKET``, and the watchdog pings
only while every serving loop beats."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from typedserve import (
    InetAddress,
    Inline,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    notify,
    notify_ready,
    notify_stopping,
)
from typedserve import systemd as sd
from typedserve.stats import ServerStats

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def notify_socket(short_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket named by ``NOTIFY_SOCKET``; no watchdog read yet in this process."""
    path = short_tmp_dir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setattr(sd, "_watchdogs", {})
        yield receiver


def _messages(receiver: socket.socket) -> list[str]:
    """What is queued now, without waiting."""
    found = []
    receiver.setblocking(False)
    try:
        while True:
            found.append(receiver.recv(4096).decode())
    except BlockingIOError:
        return found
    finally:
        receiver.settimeout(10)


def test_without_a_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_ready_and_stopping_reach_the_socket(notify_socket: socket.socket) -> None:
    assert notify_ready("serving  1 server(s)\nof many")
    assert notify_socket.recv(4096).decode() == (
        f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving 1 server(s) of many"
    )
    assert notify_stopping("stopping")
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_an_abstract_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"typedserve-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("STATUS=abstract")
        assert receiver.recv(4096) == b"STATUS=abstract"


def test_a_failed_send_is_logged_not_raised(
    short_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_tmp_dir / "nobody.sock"))
    monkeypatch.setattr(sd, "_failed_before", False)
    assert notify("READY=1") is False
    assert "cannot notify the service manager" in caplog.text


def test_the_status_line_sums_the_counters() -> None:
    one = ServerStats(3, 0, 1, 2, 0, 0, 0, 1, 0)
    other = ServerStats(4, 0, 0, 0, 0, 0, 0, 0, 0)
    assert sd.status_line([one, other]) == (
        "serving 2 server(s): 7 accepted, 1 in flight, 2 errors, 1 rejected"
    )


def test_the_watchdog_pings_only_when_every_loop_beat() -> None:
    pings: list[float] = []
    dog = sd.Watchdog(1.0, lambda: pings.append(1))
    start = dog._due - 1.0
    with sd.Heartbeat(dog) as first, sd.Heartbeat(dog) as second:
        assert dog.beat(first, start + 0.5) == pytest.approx(0.5)
        assert dog.beat(first, start + 1.1) == 1.0  # due, but the other loop has not beaten
        assert pings == []
        dog.beat(second, start + 1.2)  # now both did: one ping, the next due a second later
        assert pings == [1]
        assert dog.beat(first, start + 1.5) == pytest.approx(0.7)
        dog.beat(first, start + 2.3)  # the second loop is stuck: no ping
        dog.beat(first, start + 3.3)
        assert pings == [1]
    dog.beat(sd.Heartbeat(dog), start + 4)  # not enrolled: it still pings on its own
    assert pings == [1, 1]


def test_no_watchdog_for_another_pid(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    with sd.heartbeat() as pulse:
        assert pulse.beat(None) is None and pulse.beat(3.0) == 3.0


class Hold(StreamHandler):
    """Holds the loop thread (an Inline server) until the test lets it go."""

    entered = threading.Event()
    release = threading.Event()

    def handle(self) -> None:
        Hold.entered.set()
        assert Hold.release.wait(10)
        self.wfile.write(self.rfile.readline())


def test_a_serving_loop_pings_and_a_stuck_one_does_not(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 50 ms while the loop beats
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    config = ServerConfig(address=InetAddress())
    server = Server(config=config, transport=TCPTransport(), handler=Hold, strategy=Inline())
    thread = threading.Thread(target=server.serve_forever)
    with server:
        thread.start()
        try:
            assert notify_socket.recv(4096) == b"WATCHDOG=1"
            with socket.create_connection(("127.0.0.1", server.address[1]), timeout=10) as client:
                client.sendall(b"held\n")
                assert Hold.entered.wait(10)
                _messages(notify_socket)  # pings sent before the handler took the loop
                notify_socket.settimeout(0.5)  # ten intervals: the stuck loop must not ping
                with pytest.raises(TimeoutError):
                    notify_socket.recv(4096)
                notify_socket.settimeout(10)
                Hold.release.set()
                assert client.makefile("rb").readline() == b"held\n"
            assert notify_socket.recv(4096) == b"WATCHDOG=1"  # serving again: pinging again
        finally:
            Hold.release.set()
            server.shutdown()
            thread.join(10)
