"""Prefork in a program with other threads: a worker forked while another thread is inside
``subprocess.run`` must not hold that subprocess's pipes (``subprocess.run`` would wait for the
worker to exit, and the worker for the program to stop the server). ``serve_in_thread``
returns only once every worker is up, so a test's own clients never overlap the first forks;
and whenever a worker is forked (first ones, replacements, a rolling restart), it releases
the fds it was not given (see :mod:`typedserve.strategies.prefork.worker`)."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.strategies.support import WAIT, CommandStream
from typedserve import InetAddress, Prefork, Server, ServerConfig, TCPTransport
from typedserve.strategies._forked import FdBaseline, release_inherited_fds
from typedserve.testing import LeakCheck, serve_in_thread

pytestmark = pytest.mark.timeout(60)

# A real client in its own process, as a user's test runs curl or socat: one echo request.
CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as conn:
    conn.sendall(b"echo:" + sys.argv[2].encode() + b"\\n")
    reply = b""
    while not reply.endswith(b"\\n") and (chunk := conn.recv(100)):
        reply += chunk
sys.stdout.write(reply.decode())
"""


def prefork_server(workers: int = 2) -> Server[Any, Any]:
    return Server(
        config=ServerConfig(address=InetAddress()),
        transport=TCPTransport(),
        handler=CommandStream,
        strategy=Prefork(workers=workers, threads_per_worker=2),
        state={},
    )


def run_client(port: int, text: str, **options: Any) -> str:
    done: subprocess.CompletedProcess[bytes] = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CLIENT, str(port), text],
        capture_output=True,
        timeout=WAIT,
        check=True,
        **options,
    )
    return done.stdout.decode()


def prefork_of(server: Server[Any, Any]) -> Prefork:
    assert isinstance(server.strategy, Prefork)
    return server.strategy


def test_serve_in_thread_then_subprocess_run_never_hangs() -> None:
    with LeakCheck(wait=WAIT):
        for n in range(50):
            with serve_in_thread(prefork_server()) as server:
                assert len(prefork_of(server).pids) == 2  # serving means every worker is up
                assert run_client(server.address[1], f"run {n}") == f"run {n}\n"


# -- forks made deterministically while subprocess.run has its pipes open ---------------------


class DuringSubprocessFork:
    """Calls an action in this process while ``subprocess`` forks a child, i.e. while the
    parent holds the child's exec-status pipe and stdio pipes: the window in which a worker
    forked by another thread used to inherit them.

    ``subprocess`` runs the interpreter's before-fork hooks when given a ``preexec_fn``; the
    hook is registered once per process (it cannot be removed) and acts only when armed, on
    the arming thread, once.
    """

    _registered = False
    _action: Callable[[], None] | None = None
    _thread: int | None = None

    @classmethod
    def run_client(cls, action: Callable[[], None], port: int, text: str) -> str:
        """Run the client subprocess, calling ``action`` in the window; return its output."""
        if not cls._registered:
            os.register_at_fork(before=cls._before_fork)
            cls._registered = True
        cls._action, cls._thread = action, threading.get_ident()
        try:
            # Without the fix, this is where the test hangs (until pytest-timeout): Popen
            # waits for EOF on the exec-status pipe, and a worker holds its write end.
            return run_client(port, text, preexec_fn=_nothing)
        finally:
            cls._action = cls._thread = None

    @classmethod
    def _before_fork(cls) -> None:
        action = cls._action
        if action is not None and cls._thread == threading.get_ident():
            cls._action = None
            action()


def _nothing() -> None:
    """A ``preexec_fn`` that does nothing (it makes ``subprocess`` run the fork hooks)."""


def test_first_workers_forked_while_a_subprocess_starts_leave_its_pipes_alone() -> None:
    server = prefork_server()
    outcome: list[bool] = []
    with LeakCheck(wait=WAIT), contextlib.ExitStack() as stack:
        stack.callback(server.close)

        def start_serving() -> None:  # the workers are forked right now, in this window
            stack.enter_context(serve_in_thread(server))
            outcome.append(len(prefork_of(server).pids) == 2)

        port = server.address[1]
        assert DuringSubprocessFork.run_client(start_serving, port, "first") == "first\n"
        assert outcome == [True]


def test_a_rolling_restart_while_a_subprocess_starts_leaves_its_pipes_alone() -> None:
    outcome: list[bool] = []
    with LeakCheck(wait=WAIT), serve_in_thread(prefork_server()) as server:
        prefork = prefork_of(server)
        old = prefork.pids

        def restart() -> None:  # the new workers are forked in the window
            prefork.restart_workers()
            outcome.append(prefork.wait_ready(WAIT, replacing=old))

        port = server.address[1]
        assert DuringSubprocessFork.run_client(restart, port, "rolled") == "rolled\n"
        assert outcome == [True]


def test_a_replacement_forked_while_a_subprocess_starts_leaves_its_pipes_alone() -> None:
    outcome: list[bool] = []
    with LeakCheck(wait=WAIT), serve_in_thread(prefork_server()) as server:
        prefork = prefork_of(server)

        def replace() -> None:  # the replacement is forked in the window
            victim = prefork.pids[0]
            os.kill(victim, signal.SIGKILL)
            outcome.append(prefork.wait_ready(WAIT, replacing=[victim]))

        port = server.address[1]
        assert DuringSubprocessFork.run_client(replace, port, "again") == "again\n"
        assert outcome == [True]


# -- the rule, on a plain fork ------------------------------------------------------------------


@pytest.fixture
def file_logger(tmp_path: Path) -> Iterator[logging.FileHandler]:
    """A logging handler writing to a file (a worker keeps its fd)."""
    handler = logging.FileHandler(tmp_path / "worker.log")
    log = logging.getLogger("tests.prefork.fds")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        handler.close()


def test_a_forked_child_releases_what_it_was_not_given(
    file_logger: logging.FileHandler,
) -> None:
    with contextlib.ExitStack() as stack:
        app_socket, app_peer = socket.socketpair()  # the application's state: kept
        old_pipe = os.pipe()  # a pipe, even an old one: released
        given_pipe = os.pipe()
        os.set_inheritable(given_pipe[1], True)  # marked for children: kept
        baseline = FdBaseline.take()
        new_socket, new_peer = socket.socketpair()  # opened after the baseline: released
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        for sock in (app_socket, app_peer, new_socket, new_peer):
            stack.callback(sock.close)
        for fd in (*old_pipe, *given_pipe, report_r, report_w, go_r, go_w):
            stack.callback(_close_quietly, fd)
        assert file_logger.stream is not None
        log_fd = file_logger.stream.fileno()
        should_go = {*old_pipe, given_pipe[0], new_socket.fileno(), new_peer.fileno()}
        should_stay = {0, 1, 2, app_socket.fileno(), app_peer.fileno(), given_pipe[1], log_fd}

        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child reports through the pipe)
            code = 1
            try:
                gone = release_inherited_fds(baseline, keep={report_w, go_r})
                os.write(report_w, " ".join(map(str, gone)).encode() + b"\n")
                os.read(go_r, 1)  # alive until the parent has looked at its pipes
                code = 0
            finally:
                os._exit(code)
        os.close(report_w)
        released = {int(word) for word in _read_within_wait(report_r).split()}
        # The child lives on, yet the parent's pipe sees EOF once the parent closes its end.
        os.close(old_pipe[1])
        assert _read_within_wait(old_pipe[0]) == b""
        os.write(go_w, b"x")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

    assert should_go <= released
    assert not should_stay & released
    assert go_r not in released


def _read_within_wait(fd: int) -> bytes:
    """One read of ``fd`` (``b""``: EOF), failing the test if nothing comes within WAIT."""
    readable, _, _ = select.select([fd], [], [], WAIT)
    assert readable, f"fd {fd}: neither data nor EOF within {WAIT} s"
    return os.read(fd, 4096)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
