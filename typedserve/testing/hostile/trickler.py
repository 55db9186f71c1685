"""The :class:`Trickler`: connections that send one byte per interval (slowloris), and what
the server did to them (see :mod:`typedserve.testing.hostile`)."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from typedserve.errors import ConfigError, StateError
from typedserve.requests import PeerAddress
from typedserve.testing.hostile.connections import ConnectAddress, _close_all, connect_many

__all__ = ["ClosedByServer", "Trickler", "trickling_clients"]

_READ_SIZE = 65536
_READS_PER_ROUND = 16  # per readable connection and round: keeps one chatty server bounded


@dataclass(frozen=True)
class ClosedByServer:
    """One trickling connection that the server closed, as the :class:`Trickler` saw it.

    ``index`` is its position in :attr:`Trickler.local_addresses`; ``local`` its local address
    (the peer address the server saw). ``how`` is ``"eof"`` for an orderly close (FIN) and
    ``"reset"`` for ``ECONNRESET``/``EPIPE`` (a server closing with unread trickled bytes
    resets). ``at`` is the :func:`time.monotonic` time the trickler noticed, at most one
    interval after the close. ``sent`` and ``received`` count the bytes the connection had
    sent and received by then.
    """

    index: int
    local: PeerAddress
    how: Literal["eof", "reset"]
    at: float
    sent: int
    received: int


class Trickler:
    """``count`` connections that each send one byte of ``payload`` every ``interval`` seconds.

    One background thread (``typedserve-trickler``) drives all the connections for at most
    ``rounds`` rounds (default: ``len(payload)``). Each round it notices which connections
    the server closed (recording a :class:`ClosedByServer` and closing its end), sends the
    next payload byte on every other connection, then waits ``interval`` on an
    :class:`threading.Event`, which :meth:`stop` sets, so stopping is immediate. Once the
    payload is sent, later rounds only watch. After the last round the thread ends; the
    connections stay open, unwatched, until :meth:`stop`. Bytes the server sends are read
    and counted, never answered.

    Connections are made by :meth:`start`, on the caller's thread, so connection errors
    surface there. Use it as a context manager (start on entry, stop on exit) or call
    :meth:`start` and :meth:`stop`. Synchronise with :meth:`wait_rounds` and
    :meth:`wait_closed`, which block (bounded by their ``timeout``) until the thread has made
    progress, never with ``sleep``.

    Resource handling: the trickler owns its sockets and its thread; :meth:`stop` joins the
    thread and closes every socket still open. Error handling: an unexpected error on the
    thread ends it and is raised again by :meth:`stop`.

    Example::

        with Trickler(server.address, 20, interval=0.1) as trickler:
            assert trickler.wait_closed(20, timeout=10), trickler.closed
        assert all(c.how in ("eof", "reset") for c in trickler.closed)
    """

    def __init__(
        self,
        address: ConnectAddress,
        count: int,
        *,
        payload: bytes = b"x" * 1024,
        interval: float = 1.0,
        rounds: int | None = None,
        family: socket.AddressFamily | None = None,
        timeout: float | None = 5.0,
    ) -> None:
        if count < 1:
            raise ConfigError.for_argument("Trickler", "count", count, ">= 1")
        if not payload:
            raise ConfigError.for_argument("Trickler", "payload", payload, "non-empty bytes")
        if interval < 0:
            raise ConfigError.for_argument("Trickler", "interval", interval, ">= 0")
        if rounds is not None and rounds < 1:
            raise ConfigError.for_argument("Trickler", "rounds", rounds, ">= 1 or None")
        self.address = address
        self.count = count
        self.payload = payload
        self.interval = interval
        self.rounds = len(payload) if rounds is None else rounds
        self.family = family
        self.timeout = timeout
        self._sockets: list[socket.socket | None] = []
        self._local: tuple[PeerAddress, ...] = ()
        self._sent = [0] * count
        self._received = [0] * count
        self._closed: list[ClosedByServer] = []
        self._rounds_done = 0
        self._finished = False
        self._failure: BaseException | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        """:func:`time.monotonic` when the connections were open and the thread started."""

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Open the connections and start the thread; raise if a connection fails."""
        if self._thread is not None or self._stopping.is_set():
            raise StateError("a Trickler starts once")
        sockets = connect_many(self.address, self.count, family=self.family, timeout=self.timeout)
        thread = threading.Thread(target=self._run, name="typedserve-trickler", daemon=True)
        try:
            for sock in sockets:
                sock.setblocking(False)
            self._local = tuple(sock.getsockname() for sock in sockets)
            self._sockets = list(sockets)
            self.started_at = time.monotonic()
            thread.start()
        except BaseException:
            self._sockets = []
            _close_all(sockets)
            raise
        self._thread = thread
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (immediately), join it, close every connection; idempotent.

        Raises :class:`TimeoutError` if the thread does not end within ``timeout`` (it never
        blocks, so that is a bug), or the error that ended the thread, if one did.
        """
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the trickler's thread did not stop within {timeout} s")
        _close_all(sock for sock in self._sockets if sock is not None)
        self._sockets = [None] * len(self._sockets)
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def __enter__(self) -> Self:
        """Start."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop. An error of the block takes precedence over one of the thread, which is
        then added to the block's error as a note."""
        try:
            self.stop()
        except BaseException as failure:
            if exc is None:
                raise
            exc.add_note(f"and the trickler failed too: {failure!r}")

    # -- what it saw -----------------------------------------------------------------------------

    @property
    def local_addresses(self) -> tuple[PeerAddress, ...]:
        """Each connection's local address (the server's view of its peer), by index."""
        return self._local

    @property
    def closed(self) -> tuple[ClosedByServer, ...]:
        """The connections the server closed so far, in the order the trickler noticed."""
        with self._changed:
            return tuple(self._closed)

    @property
    def closed_count(self) -> int:
        """How many connections the server has closed so far."""
        with self._changed:
            return len(self._closed)

    @property
    def open_count(self) -> int:
        """How many connections the trickler holds open now (0 before start and after stop)."""
        return sum(sock is not None for sock in self._sockets)

    @property
    def rounds_done(self) -> int:
        """How many rounds the thread has completed (a round sends a byte per connection)."""
        with self._changed:
            return self._rounds_done

    @property
    def running(self) -> bool:
        """Whether the thread is still running rounds."""
        return self._thread is not None and self._thread.is_alive()

    def wait_closed(self, count: int | None = None, *, timeout: float) -> bool:
        """Wait until the server has closed ``count`` connections (default: all of them).

        Returns ``False`` if ``timeout`` seconds pass first, or the thread ends (rounds done,
        stopped or failed) first.
        """
        wanted = self.count if count is None else count
        return self._wait_until(lambda: len(self._closed) >= wanted, timeout)

    def wait_rounds(self, rounds: int, *, timeout: float) -> bool:
        """Wait until ``rounds`` rounds are done; ``False`` on timeout or if the thread ended."""
        return self._wait_until(lambda: self._rounds_done >= rounds, timeout)

    def _wait_until(self, reached: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            self._changed.wait_for(lambda: reached() or self._finished, timeout)
            return reached()

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            for index, sock in enumerate(self._sockets):
                if sock is not None:
                    selector.register(sock, selectors.EVENT_READ, index)
            for round_ in range(self.rounds):
                self._notice_closes(selector)
                if not selector.get_map():
                    break  # the server closed everything: nothing left to watch
                if round_ < len(self.payload):
                    self._send_byte(selector, self.payload[round_ : round_ + 1])
                with self._changed:
                    self._rounds_done = round_ + 1
                    self._changed.notify_all()
                if self._stopping.wait(self.interval):
                    break
            else:
                self._notice_closes(selector)
        except BaseException as exc:  # raised again by stop(), never lost
            self._failure = exc
        finally:
            selector.close()
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def _notice_closes(self, selector: selectors.BaseSelector) -> None:
        for key, _ in selector.select(0):
            index: int = key.data
            sock = self._sockets[index]
            assert sock is not None  # closed ones are unregistered
            for _ in range(_READS_PER_ROUND):
                try:
                    data = sock.recv(_READ_SIZE)
                except BlockingIOError:
                    break
                except (ConnectionResetError, BrokenPipeError):
                    self._record_close(selector, index, "reset")
                    break
                if not data:
                    self._record_close(selector, index, "eof")
                    break
                self._received[index] += len(data)

    def _send_byte(self, selector: selectors.BaseSelector, byte: bytes) -> None:
        for index, sock in enumerate(self._sockets):
            if sock is None:
                continue
            try:
                self._sent[index] += sock.send(byte)
            except BlockingIOError:
                continue  # the server reads nothing and the buffers are full: hold on
            except (ConnectionResetError, BrokenPipeError):
                self._record_close(selector, index, "reset")

    def _record_close(
        self, selector: selectors.BaseSelector, index: int, how: Literal["eof", "reset"]
    ) -> None:
        sock = self._sockets[index]
        assert sock is not None
        selector.unregister(sock)
        sock.close()
        self._sockets[index] = None
        record = ClosedByServer(
            index=index,
            local=self._local[index],
            how=how,
            at=time.monotonic(),
            sent=self._sent[index],
            received=self._received[index],
        )
        with self._changed:
            self._closed.append(record)
            self._changed.notify_all()


@contextmanager
def trickling_clients(
    address: ConnectAddress,
    count: int,
    *,
    payload: bytes = b"x" * 1024,
    interval: float = 1.0,
    rounds: int | None = None,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
) -> Iterator[Trickler]:
    """A started :class:`Trickler` for the length of a block, stopped on exit.

    Example::

        with trickling_clients(server.address, 8, interval=0.05) as trickler:
            with connect(server) as client: ...   # still served while 8 clients trickle
        print(trickler.closed_count, "closed by the server")
    """
    with Trickler(
        address,
        count,
        payload=payload,
        interval=interval,
        rounds=rounds,
        family=family,
        timeout=timeout,
    ) as trickler:
        yield trickler
