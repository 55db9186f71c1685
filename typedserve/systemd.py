"""Telling the service manager (systemd) how the service is doing: ``sd_notify`` and its watchdog.

The protocol (``sd_notify(3)``): one datagram of newline-separated ``VARIABLE=value`` lines,
sent to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written
``@name``). When the variable is unset (not run by systemd as ``Type=notify``) nothing is sent
and :func:`notify` returns ``False``. No dependency: a datagram socket per message.

What typedserve sends, and where:

- ``READY=1``, ``MAINPID=<pid>`` and ``STATUS=...`` (:func:`notify_ready`): the
  ``typedserve serve``/``demo`` command, once every server's loop is running (a ``Prefork``
  supervisor is the main process: its pid is the ``MAINPID``). Running servers yourself, call
  :func:`notify_ready` once each one's ``wait_serving()`` returned.
- ``STOPPING=1`` and ``STATUS=...`` (:func:`notify_stopping`): the command, when its stop (the
  drain) begins, at the first SIGINT/SIGTERM.
- ``STATUS=``: one line summing the servers' counters (:func:`status_line`).
- ``WATCHDOG=1``: when the unit sets ``WatchdogSec=``, systemd passes ``WATCHDOG_USEC`` (and
  ``WATCHDOG_PID``, which must be this process: a forked worker never pings). Every serving loop
  of the process (the selector loop of a dispatching strategy, the ``Prefork`` supervisor's, the
  ``AsyncIO`` event loop) takes part through :func:`heartbeat`: it *beats* from its own thread
  each time round, waking at least every half ``WATCHDOG_USEC``; the process pings every half
  ``WATCHDOG_USEC`` only if every loop beat since the last ping. A timer thread would ping
  while the loops are stuck; here a stuck loop (a handler holding an ``Inline`` loop, a blocked
  event loop) stops the pings, and systemd restarts the service.

A unit using all of this (``examples/deploy/``)::

    [Service]
    Type=notify
    NotifyAccess=main
    WatchdogSec=10
    ExecStart=/usr/bin/typedserve serve app:Handler --fd systemd --fdname web

Errors: a failed send is logged on ``typedserve.systemd`` (WARNING the first time, then DEBUG)
and :func:`notify` returns ``False``; it never raises for the network.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol, Self

from typedserve.stats import ServerStats

__all__ = [
    "Heartbeat",
    "Watchdog",
    "heartbeat",
    "notify",
    "notify_ready",
    "notify_stopping",
    "status_line",
]

logger = logging.getLogger("typedserve.systemd")

_failed_before = False


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (``"READY=1"``, ``"STATUS=..."``) to ``$NOTIFY_SOCKET`` as one
    message; whether it was sent (``False``: no socket to send to, or the send failed)."""
    global _failed_before
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        level = logging.DEBUG if _failed_before else logging.WARNING
        _failed_before = True
        logger.log(level, "cannot notify the service manager at %s: %s", target, exc)
        return False
    return True


def notify_ready(status: str | None = None) -> bool:
    """``READY=1`` with ``MAINPID`` (this process) and ``status`` (a ``STATUS=`` line)."""
    lines = ["READY=1", f"MAINPID={os.getpid()}"]
    return notify(*lines, *_status(status))


def notify_stopping(status: str | None = None) -> bool:
    """``STOPPING=1``, with ``status`` (a ``STATUS=`` line): the drain begins."""
    return notify("STOPPING=1", *_status(status))


def _status(status: str | None) -> list[str]:
    return [] if status is None else ["STATUS=" + " ".join(status.split())]


def status_line(stats: Iterable[ServerStats], prefix: str = "serving") -> str:
    """``"serving 2 server(s): 10 accepted, 1 in flight, 0 errors, 0 rejected"``: the counters
    of ``stats`` summed, for ``STATUS=``."""
    every = list(stats)
    total = {
        name: sum(getattr(one, name) for one in every)
        for name in ("accepted", "in_flight", "errors", "rejected")
    }
    return (
        f"{prefix} {len(every)} server(s): {total['accepted']} accepted, "
        f"{total['in_flight']} in flight, {total['errors']} errors, {total['rejected']} rejected"
    )


# -- the watchdog ---------------------------------------------------------------------------------


class Watchdog:
    """Sends ``WATCHDOG=1`` (through ``send``) every ``interval`` seconds, as long as every
    enrolled :class:`Heartbeat` beat since the last ping. Thread-safe: each loop beats from its
    own thread."""

    def __init__(self, interval: float, send: Callable[[], object]) -> None:
        self.interval = interval
        self._send = send
        self._lock = threading.Lock()
        self._enrolled: set[Heartbeat] = set()
        self._beaten: set[Heartbeat] = set()
        self._due = time.monotonic() + interval

    def enrol(self, heart: Heartbeat) -> None:
        """Count ``heart`` among the loops that must beat."""
        with self._lock:
            self._enrolled.add(heart)

    def leave(self, heart: Heartbeat) -> None:
        """Stop waiting for ``heart`` (its loop returned)."""
        with self._lock:
            self._enrolled.discard(heart)
            self._beaten.discard(heart)

    def beat(self, heart: Heartbeat, now: float) -> float:
        """``heart`` is alive at ``now``: ping if due and every loop beat; seconds until the
        next beat is needed."""
        with self._lock:
            self._beaten.add(heart)
            if now >= self._due and self._enrolled <= self._beaten:
                self._beaten.clear()
                self._due = now + self.interval
                self._send()
            wait = self._due - now
        # Past due, a loop has not beaten yet: it pings when it does; wait a whole interval.
        return wait if wait > 0 else self.interval


class _Cancellable(Protocol):
    def cancel(self) -> None: ...


class Heartbeat:
    """One loop's part in the :class:`Watchdog` (a no-op without one): enrolled while the
    ``with`` block runs; :meth:`beat` from the loop's own thread, each time round."""

    def __init__(self, watchdog: Watchdog | None) -> None:
        self._watchdog = watchdog

    def __enter__(self) -> Self:
        """Enrol this loop."""
        if self._watchdog is not None:
            self._watchdog.enrol(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """The loop returned: the watchdog stops waiting for it."""
        if self._watchdog is not None:
            self._watchdog.leave(self)

    def beat(self, timeout: float | None) -> float | None:
        """The loop is alive; ``timeout`` (the loop's next wait; ``None``: forever), shortened
        to when it must beat again."""
        if self._watchdog is None:
            return timeout
        wait = self._watchdog.beat(self, time.monotonic())
        return wait if timeout is None else min(timeout, wait)

    def keep_beating(
        self, call_later: Callable[[float, Callable[[], None]], _Cancellable]
    ) -> Callable[[], None]:
        """Beat from an event loop (``loop.call_later``) until the returned function is
        called: the beats run on the loop's thread, so a blocked loop stops them."""
        handle: _Cancellable | None = None

        def tick() -> None:
            nonlocal handle
            wait = self.beat(None)
            handle = None if wait is None else call_later(wait, tick)

        tick()
        return lambda: handle.cancel() if handle is not None else None


_watchdogs: dict[int, Watchdog | None] = {}  # by pid: a forked child reads its own
_watchdogs_lock = threading.Lock()


def heartbeat() -> Heartbeat:
    """A :class:`Heartbeat` for a serving loop of this process, in the process's watchdog
    (``WATCHDOG_USEC``, for this pid; read on first use); a no-op one without a watchdog."""
    pid = os.getpid()
    with _watchdogs_lock:
        if pid not in _watchdogs:
            _watchdogs[pid] = _watchdog_from_env(pid)
        return Heartbeat(_watchdogs[pid])


def _watchdog_from_env(pid: int) -> Watchdog | None:
    usec, owner = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (owner is not None and owner.strip() != str(pid)):
        return None
    try:
        interval = int(usec) / 2_000_000
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not a number of microseconds: no watchdog", usec)
        return None
    if interval <= 0:
        return None
    logger.debug("systemd watchdog: pinging every %.3f s while every loop beats", interval)
    return Watchdog(interval, lambda: notify("WATCHDOG=1"))
