"""``Parking``: stream connections the loop holds, with no worker, until they have work.

A worker (thread, process) is the scarce resource of a bounded strategy; a slow or silent
client must not hold one. So the selector loop parks connections in its own selector:

- **waiting for the first byte**: a new connection is handed to the strategy only once the
  client has sent something (or closed); one that stays silent for ``timeouts.first_byte`` is
  closed and counted in ``stats().slow_clients``. Handlers that declare ``speaks_first`` skip
  this (the server talks first).
- **assembling a frame**: when the handler declares its framing (``StreamHandler.framing``),
  the loop reads the connection (non-blocking) into a sans-IO :class:`~typedserve.framing.Framer`
  and hands the strategy one :class:`~typedserve.requests.FramedRequest` per complete frame. A
  frame must be complete within ``timeouts.request`` of its first byte, and the next one must
  start within ``timeouts.first_byte`` of the previous reply, or the connection is closed and
  counted as slow. While a frame is served the connection is out of the selector (one request
  at a time per connection); its handler's ``request.close()`` gives it back.
- **lingering after a refusal**: a connection turned away (busy reply, FIN sent) is read and
  discarded until the peer closes or :data:`LINGER` seconds pass, then closed: closing with
  unread input would reset the connection and destroy the busy reply.

Everything runs on the loop thread, except :meth:`Parking.give_back` (any thread). Deadlines
are enforced by :meth:`Parking.sweep`, which the loop calls at least every :attr:`period`.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from typedserve._reactor import Reactor
from typedserve._serving import Serving
from typedserve.counters import ACCEPTED, FINISHED, SLOW
from typedserve.drain import LINGER
from typedserve.errors import FramingError
from typedserve.framing import Framer, Framing
from typedserve.observe import Outcome
from typedserve.requests import FramedRequest, StreamRequest

__all__ = ["LINGER", "Parking"]

logger = logging.getLogger("typedserve.server")


_WAIT, _FRAME, _LINGER = 0, 1, 2  # what a parked connection waits for
_READ = 65_536
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


class _Parked:
    """One connection the loop holds."""

    __slots__ = ("conn", "counted", "deadline", "framer", "mode", "request", "started", "timeout")

    def __init__(self, request: StreamRequest, mode: int, framer: Framer | None) -> None:
        self.request = request
        self.conn = request.socket
        self.mode = mode
        self.framer = framer
        self.timeout = self.conn.gettimeout()  # restored when a worker gets the connection
        self.deadline: float | None = None
        self.started: float | None = None  # when the frame being assembled began
        self.counted = True  # its pending request is counted as accepted (not yet finished)


class Parking:
    """The connections one selector loop holds (see the module docstring)."""

    def __init__(
        self,
        reactor: Reactor,
        serving: Serving[Any],
        ready: Callable[[StreamRequest], None],
        *,
        first_byte: float | None,
        budget: float | None,
        framing: Framing | None,
    ) -> None:
        self._reactor = reactor
        self._serving = serving
        self._ready = ready
        self._first_byte = first_byte
        self._budget = budget
        self._framing = framing
        self._read = min(_READ, framing.max_frame + 1) if framing is not None else _READ
        self._parked: dict[int, _Parked] = {}  # by fd: in the selector
        self._out: dict[int, _Parked] = {}  # by id(socket): a frame being served
        self._returned: collections.deque[FramedRequest] = collections.deque()
        self._probe = select.poll()
        self._peeked = bytearray(1)  # where a readiness peek puts the byte it copies
        self.closing = False  # draining: connections given back are closed, not parked
        shortest = min((t for t in (first_byte, budget) if t is not None), default=1.0)
        self.period = min(1.0, max(0.01, shortest / 10))
        """How often :meth:`sweep` must run for deadlines to hold (within this much)."""

    @property
    def held(self) -> int:
        """Connections parked (waiting, assembling, lingering) or out with a worker."""
        return len(self._parked) + len(self._out)

    # -- arrivals --------------------------------------------------------------------------------

    def arrived(self, request: StreamRequest) -> bool:
        """A connection just accepted and admitted: ``True`` if it is ready for a worker now
        (an unframed handler and input already there); otherwise the loop holds it."""
        if self._framing is None:
            conn = request.socket
            if not conn.gettimeout():  # blocking: peek without waiting, one system call
                try:
                    conn.recv_into(self._peeked, 1, _PEEK)
                    return True  # input (or EOF) is there
                except BlockingIOError:
                    pass
                except OSError:
                    return True  # reset: the handler sees it
            elif self._readable(conn):
                return True
            self._hold(_Parked(request, _WAIT, None), _after(self._first_byte))
            return False
        entry = _Parked(request, _FRAME, self._framing.new_framer())
        entry.conn.setblocking(False)
        if self._readable(entry.conn):
            self._on_readable(entry)  # often the whole request is there already
        else:
            self._hold(entry, _after(self._first_byte))
        return False

    def linger(self, request: StreamRequest) -> None:
        """Hold a refused connection (FIN sent) until the peer closes or :data:`LINGER` passes."""
        entry = _Parked(request, _LINGER, None)
        entry.counted = False
        self._hold(entry, _after(LINGER))

    def _readable(self, conn: socket.socket) -> bool:
        """Whether ``conn`` has input (or EOF, or an error) now; never waits. (A peek would
        wait first on a socket with a timeout: CPython polls before each call then.)"""
        probe, fd = self._probe, conn.fileno()
        probe.register(fd, select.POLLIN)
        ready = probe.poll(0)
        probe.unregister(fd)
        return bool(ready)

    def _hold(self, entry: _Parked, deadline: float | None) -> None:
        entry.deadline = deadline
        if entry.mode is not _FRAME:
            entry.conn.setblocking(False)
        fd = entry.conn.fileno()
        self._parked[fd] = entry
        self._reactor.watch(fd, lambda: self._on_readable(entry))

    def _release(self, entry: _Parked) -> None:
        """Take ``entry`` out of the selector (it goes to a worker, or is closed)."""
        fd = entry.conn.fileno()
        if self._parked.get(fd) is entry:
            del self._parked[fd]
            self._reactor.unwatch(fd)

    # -- input -----------------------------------------------------------------------------------

    def _on_readable(self, entry: _Parked) -> None:
        if entry.mode is _WAIT:  # the first byte (or EOF): the handler takes it from here
            self._release(entry)
            entry.conn.settimeout(entry.timeout)
            self._ready(entry.request)
            return
        try:
            data = entry.conn.recv(self._read)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # reset by the peer: as good as closed
        if entry.mode is _LINGER:
            if not data:
                self._drop(entry, "rejected")  # not counted: reported when it was refused
            return
        assert entry.framer is not None
        if data and entry.started is None:
            entry.started = time.monotonic()
            entry.deadline = None if self._budget is None else entry.started + self._budget
        entry.framer.feed(data)
        self._next_frame(entry)

    def _next_frame(self, entry: _Parked) -> None:
        """Dispatch the next complete frame, or wait for more input, or end the connection."""
        framer = entry.framer
        assert framer is not None
        try:
            frame = framer.next_frame()
        except FramingError as exc:
            logger.warning("closed the connection from %r: %s", entry.request.peer, exc)
            self._drop(entry, "error")
            return
        if frame is None:
            if framer.at_eof:
                self._drop(entry, "disconnect")  # a pending request: its peer left first
            elif entry.conn.fileno() not in self._parked:
                if entry.started is None:  # between requests: the next must begin in time
                    self._hold(entry, _after(self._first_byte))
                else:  # mid-frame: it must be complete within the request budget
                    self._hold(entry, entry.deadline)
            return
        self._release(entry)
        started = entry.started if entry.started is not None else time.monotonic()
        deadline = None if self._budget is None else started + self._budget
        if not entry.counted:
            self._serving.counters.row[ACCEPTED] += 1
        entry.counted = False
        entry.started = None
        request = entry.request
        framed = FramedRequest(request.socket, request.peer, deadline, frame, self.give_back)
        self._out[id(entry.conn)] = entry
        entry.conn.settimeout(entry.timeout)
        self._ready(framed)

    # -- connections coming back from workers ----------------------------------------------------

    def give_back(self, request: FramedRequest) -> None:
        """A framed request's handler is done (any thread): the loop takes the connection."""
        self._returned.append(request)
        self._reactor.waker.wake()

    def take_returns(self) -> None:
        """Park the connections given back since the last call (loop thread)."""
        returned = self._returned
        while returned:
            request = returned.popleft()
            entry = self._out.pop(id(request.socket), None)
            if entry is None:
                continue
            if self.closing or entry.conn.fileno() < 0:
                _close(entry.conn)
                continue
            entry.conn.setblocking(False)
            self._next_frame(entry)  # a pipelined frame may be buffered already

    # -- deadlines, drains and closing -----------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Close the parked connections whose deadline has passed (counted as slow)."""
        expired = [e for e in self._parked.values() if e.deadline is not None and e.deadline <= now]
        for entry in expired:
            if entry.mode is not _LINGER:
                self._serving.counters.add(SLOW)
                logger.debug("closed %r: too slow (timeouts.first_byte/request)", entry.request)
            self._drop(entry, "slow")

    def _drop(self, entry: _Parked, outcome: Outcome) -> None:
        """Close a parked connection; its pending request, if counted, ends as finished (and
        is reported to the observers with ``outcome``)."""
        self._release(entry)
        if entry.counted:
            self._serving.counters.add(FINISHED)
            if self._serving.observer is not None:
                self._serving.observe(entry.request, outcome, self._parked_since(entry, outcome))
        _close(entry.conn)

    def _parked_since(self, entry: _Parked, outcome: Outcome) -> float | None:
        """When a parked request began, for its observers: a slow one when it was parked (or
        its frame began); any other ends now (``None``)."""
        if outcome != "slow":
            return None
        if entry.started is not None:
            return entry.started
        if entry.deadline is None or self._first_byte is None:
            return None
        return entry.deadline - self._first_byte

    def begin_drain(self, *, read: bool = True) -> None:
        """A drain starts: from now on nothing new is parked. Serve complete requests already
        here and close idle keep-alive connections; with ``read`` (the drain's deadline has not
        passed) a connection whose request is pending (no first byte yet, or a frame begun)
        stays parked, to be served if it completes before :meth:`refuse_pending`; without,
        it is refused now."""
        self.closing = True
        if read:
            self._reactor.wait_once(0)  # read what already arrived
        for entry in list(self._parked.values()):
            if entry.mode is _LINGER:
                continue
            if not _is_pending(entry):  # not counted: no request of its own to report
                self._release(entry)
                _close(entry.conn)  # idle between requests: an orderly end
            elif not read:
                self._refuse(entry)

    @property
    def pending(self) -> int:
        """Parked connections whose request has begun or is promised (a client that connected
        has not sent its first byte yet, or a frame is incomplete)."""
        return sum(1 for entry in self._parked.values() if _is_pending(entry))

    def refuse_pending(self) -> None:
        """Turn away the pending requests still parked (busy hook, FIN, linger)."""
        for entry in [entry for entry in self._parked.values() if _is_pending(entry)]:
            self._refuse(entry)

    def _refuse(self, entry: _Parked) -> None:
        self._release(entry)
        if not entry.counted:
            self._serving.counters.row[ACCEPTED] += 1
        entry.conn.settimeout(entry.timeout)
        self._serving.reject(entry.request)

    @property
    def lingering(self) -> int:
        """Refused connections still being read before their close."""
        return sum(1 for entry in self._parked.values() if entry.mode is _LINGER)

    def abandon(self) -> None:
        """In a forked child: close this process's copies of the parked connections, leaving
        the connections themselves (the parent's) untouched: no shutdown, no counting."""
        for entry in self._parked.values():
            entry.conn.close()
        self._parked.clear()
        self.closing = True

    def close(self) -> None:
        """Close every connection still parked (the server is closing)."""
        for entry in list(self._parked.values()):
            self._drop(entry, "cut")
        self.closing = True


def _is_pending(entry: _Parked) -> bool:
    if entry.mode is _LINGER:
        return False
    return entry.counted or (entry.framer is not None and entry.framer.buffered > 0)


def _close(conn: socket.socket) -> None:
    try:  # noqa: SIM105
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    conn.close()


def _after(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
