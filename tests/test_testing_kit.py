"""``typedserve.testing``: the kit users test their servers with must itself be trustworthy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from typedserve import (
    InetAddress,
    Server,
    ServerClosedError,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
)
from typedserve.testing import LeakCheck, LeakError, assert_no_leaks, connect, serve_in_thread

pytestmark = pytest.mark.timeout(10)

WAIT = 5.0


class Hello(StreamHandler):
    speaks_first = True  # the client only reads

    def handle(self) -> None:
        self.wfile.write(b"hello")


class WaitsForRelease(StreamHandler[tuple[threading.Event, threading.Event]]):
    speaks_first = True  # the client only reads

    def handle(self) -> None:
        started, release = self.state
        started.set()
        release.wait(WAIT)


def hello_server() -> Server[StreamRequest, None]:
    return Server(config=ServerConfig(), transport=TCPTransport(), handler=Hello)


# -- serve_in_thread -------------------------------------------------------------------------


def test_serve_in_thread_serves_then_stops_and_closes() -> None:
    with LeakCheck(), serve_in_thread(hello_server()) as server:
        assert server.wait_serving(0)
        with connect(server) as client:
            assert client.recv(5) == b"hello"
    assert not server.wait_serving(0)
    with pytest.raises(ServerClosedError):
        server.fileno()


def test_serve_in_thread_stops_even_when_the_block_raises() -> None:
    with LeakCheck(), pytest.raises(KeyError), serve_in_thread(hello_server()) as server:
        raise KeyError("test failure")
    with pytest.raises(ServerClosedError):
        server.fileno()


def test_serve_in_thread_reports_a_loop_that_does_not_stop_in_time() -> None:
    started, release = threading.Event(), threading.Event()
    server = Server(
        config=ServerConfig(),
        transport=TCPTransport(),
        handler=WaitsForRelease,
        state=(started, release),
    )
    try:
        with (
            pytest.raises(TimeoutError, match=r"did not stop within 0\.2 s"),
            serve_in_thread(server, timeout=0.2),
            connect(server),
        ):
            assert started.wait(WAIT)  # the Inline handler holds the loop until release
    finally:
        release.set()
        server.shutdown()
        server.close()


def test_serve_in_thread_raises_what_serve_forever_raised() -> None:
    server = hello_server()
    server.close()
    with pytest.raises(ServerClosedError), serve_in_thread(server):
        pytest.fail("the block must not run when the loop could not start")


def test_serve_in_thread_copes_with_a_shutdown_requested_earlier() -> None:
    server = hello_server()
    server.shutdown()  # consumed by the next loop, which returns at once
    with serve_in_thread(server, timeout=WAIT):
        pass
    with pytest.raises(ServerClosedError):
        server.fileno()


# -- connect -------------------------------------------------------------------------------


def test_connect_reaches_wildcard_binds_over_loopback() -> None:
    for host in ("0.0.0.0", "::"):
        config = ServerConfig(address=InetAddress(host=host))
        server = Server(config=config, transport=TCPTransport(), handler=Hello)
        with serve_in_thread(server), connect(server) as client:
            assert client.recv(5) == b"hello"


# -- leak checks -----------------------------------------------------------------------------


def test_leak_check_passes_when_everything_is_released(short_tmp_dir: Path) -> None:
    with LeakCheck(socket_dirs=[short_tmp_dir]):
        sock = socket.socket()
        thread = threading.Thread(target=lambda: None)
        thread.start()
        sock.close()  # the thread ends by itself: the check joins it


def test_leak_check_reports_an_open_fd() -> None:
    check = LeakCheck(wait=0.2).start()
    leaked = socket.socket()
    try:
        with pytest.raises(LeakError) as caught:
            check.check()
        [item] = caught.value.leaks["fds"]
        assert item.startswith(f"{leaked.fileno()} -> socket:[")
    finally:
        leaked.close()
    check.check()


def test_leak_check_reports_a_thread_still_running() -> None:
    stop = threading.Event()
    check = LeakCheck(wait=0.2).start()
    thread = threading.Thread(target=stop.wait, name="leaky-thread")
    thread.start()
    try:
        with pytest.raises(LeakError, match="leaky-thread"):
            check.check()
    finally:
        stop.set()
        thread.join()
    check.check()


def test_leak_check_reports_an_unreaped_child() -> None:
    check = LeakCheck(wait=0.2).start()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        with pytest.raises(LeakError) as caught:
            check.check()  # exited or not, a child nobody waited for is still there
        assert caught.value.leaks["children"] == [str(child.pid)]
    finally:
        child.wait()
    check.check()


def test_leak_check_reports_a_socket_file_left_behind(short_tmp_dir: Path) -> None:
    path = short_tmp_dir / "left.sock"
    with (
        pytest.raises(LeakError, match=r"left\.sock"),
        assert_no_leaks(socket_dirs=[short_tmp_dir], wait=0.2),
        socket.socket(socket.AF_UNIX) as sock,
    ):
        sock.bind(str(path))
    os.unlink(path)


def test_leak_check_does_not_mask_the_blocks_own_error() -> None:
    with pytest.raises(ZeroDivisionError), LeakCheck(wait=0.2):
        socket.socket()  # leaked, but the block's error is what matters
        1 / 0  # noqa: B018


def test_leak_check_must_be_started() -> None:
    with pytest.raises(RuntimeError, match="start"):
        LeakCheck().check()


# -- fixtures --------------------------------------------------------------------------------


def test_unix_socket_path_is_short_and_free(unix_socket_path: str, short_tmp_dir: Path) -> None:
    assert len(os.fsencode(unix_socket_path)) < 60
    assert Path(unix_socket_path).parent == short_tmp_dir
    assert not os.path.exists(unix_socket_path)


def test_leak_check_fixture_is_started(typedserve_leak_check: LeakCheck) -> None:
    assert typedserve_leak_check.baseline is not None
    assert typedserve_leak_check.leaks() == {}
