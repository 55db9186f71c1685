"""How the ``typedserve`` command stops: SIGINT/SIGTERM, the drain, and the bound on the exit.

:func:`run_until_signal` serves servers until a signal (or the main server's loop returning),
then drains and closes them; :func:`serve_until_signal` adds what the command may do because it
owns the process (exiting without handler threads that ignored their cut). The stop sequence,
its deadlines and the exit statuses are described in :mod:`typedserve.cli`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
import typing
from collections.abc import Sequence
from types import FrameType
from typing import Final, TypeAlias

from typedserve.cli.readiness import Readiness
from typedserve.errors import StateError
from typedserve.requests import PeerAddress, Request
from typedserve.server import Server
from typedserve.strategies.base import LoopOwner

__all__ = ["STOP_MARGIN", "format_address", "run_until_signal", "serve_until_signal"]

logger = logging.getLogger("typedserve.cli")

AnyServer: TypeAlias = Server[Request, object, PeerAddress, LoopOwner]
"""Any server (``Server`` is covariant: this is the widest one)."""

STOP_MARGIN: Final = 5.0
"""Seconds past ``shutdown.grace`` within which the ``typedserve`` command's process exits once
the stop began (see :mod:`typedserve.cli`)."""

_INTERRUPT_AFTER = 1.0  # past the grace: interrupt a main-thread loop its cut did not free
_EXIT_AFTER = STOP_MARGIN - 1.0  # past the grace: exit, leaving a second for the exit itself


def run_until_signal(servers: Sequence[AnyServer]) -> int:
    """Serve every server (the first on this thread) until SIGINT/SIGTERM; close all.

    Must run on the main thread: it installs SIGINT and SIGTERM handlers (restored on return).
    The stop is the sequence :mod:`typedserve.cli` describes. It begins at the first signal,
    or when the first server's loop returns (e.g. a handler called ``context.shutdown()``), and
    drains every server with its own ``shutdown.grace``. A handler holding this thread one
    second past the grace is interrupted; a second signal, or servers still not stopped 4 s
    after the largest grace, end the process at once (``os._exit(1)``). Threads still running
    once the servers are closed (a ``ThreadPerRequest`` handler that ignored its cut) are the
    caller's: the interpreter waits for them at exit unless they are daemon threads. Returns 0,
    or 1 if a server's loop on another thread failed (logged, and every server stopped); an
    exception from the first server's loop propagates once every server is closed.
    """
    return _run_until_signal(servers).status


def _run_until_signal(servers: Sequence[AnyServer]) -> _Stop:
    if threading.current_thread() is not threading.main_thread():
        raise StateError("run_until_signal() installs signal handlers: call it on the main thread")
    primary, *others = servers
    stop = _Stop(servers)
    previous = {sig: signal.signal(sig, stop.on_signal) for sig in _STOP_SIGNALS}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: _reload_tls(servers))
    threads = [
        threading.Thread(target=stop.serve_other, args=(server,), name=f"typedserve-{index}")
        for index, server in enumerate(others, 1)
    ]
    try:
        stop.start()
        for thread in threads:
            thread.start()
        for server in servers:
            print(f"typedserve: serving {_describe(server)}", file=sys.stderr, flush=True)
        stop.serve_main(primary)
    finally:
        try:
            stop.begin()
            stop.wait_drained()
            for thread in threads:
                if thread.ident is not None:
                    thread.join()
            for server in servers:
                server.close()
            print("typedserve: stopped", file=sys.stderr, flush=True)
        finally:
            stop.finish()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            stop.release()
    return stop


def _reload_tls(servers: Sequence[AnyServer]) -> None:
    """SIGHUP: re-read every TLS server's certificate files, on a thread of its own (the
    signal interrupts the main thread anywhere). A ``Prefork`` server's own SIGHUP handler,
    installed while it supervises, also restarts its workers."""
    threading.Thread(
        target=lambda: [server.reload_tls() for server in servers],
        name="typedserve-reload",
        daemon=True,
    ).start()


def serve_until_signal(servers: Sequence[AnyServer]) -> int:
    """:func:`run_until_signal` for the command, which owns the whole process: threads still
    running when the servers are closed (handler threads that ignored their cut) get until 4 s
    after the grace, then the process exits without them, with the same status."""
    stop = _run_until_signal(servers)
    deadline = (stop.deadline or time.monotonic()) + _EXIT_AFTER
    lingering = [
        thread
        for thread in threading.enumerate()
        if not thread.daemon and thread is not threading.current_thread()
    ]
    for thread in lingering:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [thread.name for thread in lingering if thread.is_alive()]
    if left:
        _exit_now(
            stop.status,
            f"{len(left)} thread(s) still running {_EXIT_AFTER:g} s after the grace although "
            f"their requests were cut ({', '.join(left)}); exiting without them",
        )
    return stop.status


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_BEGIN = 0  # wake-up byte: begin the stop (the main loop returned); a signal sends its number
_DONE = 255  # wake-up byte: every server is closed


class _HeldPastGrace(BaseException):
    """Raised on the main thread in a loop that a handler held past the grace and its cut."""


class _Stop:
    """The stop sequence of :func:`run_until_signal` (see :mod:`typedserve.cli`).

    Threads: the signal handler runs on the main thread and only writes a byte to a pipe (no
    lock, so it cannot deadlock with the code it interrupted). The ``typedserve-stop`` thread,
    started before serving (so no thread starts in a signal handler), reads the pipe: at the
    first byte it starts one ``typedserve-drain`` thread per server calling
    ``server.shutdown(grace)``, then watches the deadlines and for a second signal. The main
    thread joins the drain threads, closes the servers, then joins the stop thread. Under
    systemd (``$NOTIFY_SOCKET``), a ``typedserve-ready`` thread sends ``READY=1`` once every
    loop runs; the first drain sends ``STOPPING=1`` (:class:`~typedserve.cli.readiness.Readiness`).
    """

    def __init__(self, servers: Sequence[AnyServer]) -> None:
        self.status = 0
        """0, or 1 once a server's loop failed."""
        self.deadline: float | None = None
        """When the largest grace ends (``time.monotonic()``), once the stop began."""
        self._servers = servers
        self._grace = max(server.config.shutdown.grace for server in servers)
        # Open before the signal handlers are installed, so no signal is lost before start().
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watcher = threading.Thread(target=self._watch, name="typedserve-stop")
        self._drains: list[threading.Thread] = []
        self._drains_started = threading.Event()
        self._main = threading.get_ident()
        self._in_loop = False  # the main thread is serving (only it writes this)
        self._interrupting = False  # the next signal on the main thread is the watcher's
        self._begun_at: float | None = None  # when the stop was asked for, first
        self._readiness = Readiness(servers)  # READY=1 / STOPPING=1 to systemd

    # -- the main thread ----------------------------------------------------------------------

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The SIGINT/SIGTERM handler (main thread): tell the watcher, or interrupt the loop."""
        if self._interrupting:
            self._interrupting = False
            if self._in_loop:
                raise _HeldPastGrace("the stop interrupted a handler that held the main thread")
            return
        self._ask(signum)

    def start(self) -> None:
        """Start the watcher thread (it reads any signal that came before), and the wait for
        every loop that tells systemd the service is ready."""
        self._watcher.start()
        self._readiness.start()

    def serve_main(self, server: AnyServer) -> None:
        """Serve ``server`` on this (the main) thread until its loop stops."""
        try:
            self._in_loop = True
            try:
                server.serve_forever()
            finally:
                self._in_loop = False
        except _HeldPastGrace:  # the stop goes on as if the loop had returned
            logger.warning("where the handler was interrupted:", exc_info=True)

    def serve_other(self, server: AnyServer) -> None:
        """Serve ``server`` on a thread of its own; a failure stops every server."""
        try:
            server.serve_forever()
        except Exception:
            logger.exception("serving %s failed; stopping every server", _describe(server))
            self.status = 1
            self._ask(_BEGIN)

    def begin(self) -> None:
        """Begin the stop if no signal did yet: drain every server."""
        self._ask(_BEGIN)

    def wait_drained(self) -> None:
        """Wait until every server's ``shutdown(grace)`` returned."""
        if not self._watcher.is_alive() and not self._drains_started.is_set():
            self._start_drains()  # no watcher (it could not start): drain from here
        self._drains_started.wait()
        for drain in self._drains:
            drain.join()

    def finish(self) -> None:
        """Every server is closed: tell the watcher and join it (and the readiness thread)."""
        self._poke(_DONE)
        if self._watcher.is_alive():
            self._watcher.join()
        self._readiness.close()

    def release(self) -> None:
        """Close the wake-up pipe (once the signal handlers are restored)."""
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- the watcher thread -------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            first = self._next_byte(None)
            self._start_drains()
            cause = (
                "" if first in (None, _BEGIN, _DONE) else f"{signal.Signals(first).name} received: "
            )
            print(
                f"typedserve: {cause}stopping; requests in flight have up to {self._grace:g} s "
                "(SIGINT or SIGTERM again exits at once)",
                file=sys.stderr,
                flush=True,
            )
            if first != _DONE:
                self._watch_deadlines()
        except Exception:
            logger.exception("the stop watcher failed")
        finally:
            self._drains_started.set()

    def _start_drains(self) -> None:
        if self._drains_started.is_set():
            return
        self._readiness.stopping()
        self.deadline = (self._begun_at or time.monotonic()) + self._grace
        self._drains = [
            threading.Thread(target=_drain, args=(server,), name="typedserve-drain")
            for server in self._servers
        ]
        for drain in self._drains:
            drain.start()
        self._drains_started.set()

    def _watch_deadlines(self) -> None:
        """Until the main thread is done: interrupt it if a handler holds it past the grace,
        exit if the stop outlasts its bound, exit at once on a second signal."""
        assert self.deadline is not None
        interrupt_at = self.deadline + _INTERRUPT_AFTER
        exit_at = self.deadline + _EXIT_AFTER
        while True:
            now = time.monotonic()
            if now >= exit_at:
                _exit_now(1, f"the servers did not stop {_EXIT_AFTER:g} s after the grace")
            if now >= interrupt_at:
                interrupt_at = exit_at
                self._interrupt_main()
            received = self._next_byte(min(interrupt_at, exit_at) - now)
            if received == _DONE:
                return
            if received not in (None, _BEGIN):
                name = signal.Signals(received).name
                _exit_now(1, f"{name} again: exiting now, without waiting for requests in flight")

    def _interrupt_main(self) -> None:
        if not self._in_loop:
            return
        print(
            f"typedserve: a handler still holds the main thread {_INTERRUPT_AFTER:g} s after the "
            "grace although its connection was cut; interrupting it",
            file=sys.stderr,
            flush=True,
        )
        self._interrupting = True
        signal.pthread_kill(self._main, signal.SIGTERM)

    # -- both -----------------------------------------------------------------------------------

    def _ask(self, value: int) -> None:
        """Tell the watcher; the first request starts the clock (the watcher may wake late)."""
        if self._begun_at is None:
            self._begun_at = time.monotonic()
        self._poke(value)

    def _poke(self, value: int) -> None:
        # Full: the watcher has plenty to read already. Closed (-1): everything is over.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, bytes((value,)))

    def _next_byte(self, timeout: float | None) -> int | None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1)):
            return None
        return os.read(self._wake_r, 1)[0]


def _exit_now(status: int, message: str) -> typing.NoReturn:
    """End the process at once (after flushing stdio), waiting for nothing."""
    print(f"typedserve: {message}", file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(status)


def _drain(server: AnyServer) -> None:
    """Stop ``server`` gracefully with its own grace (the drain report is logged)."""
    try:
        server.shutdown(server.config.shutdown.grace)
    except Exception:
        logger.exception("draining %s failed", _describe(server))


def _describe(server: AnyServer) -> str:
    kind = type(server.transport).__name__.removesuffix("Transport")
    return f"{kind} on {format_address(server.address)} with {type(server.strategy).__name__}"


def format_address(address: PeerAddress) -> str:
    """``host:port`` (``[host]:port`` for IPv6) for an inet address; a Unix path as it is."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)
