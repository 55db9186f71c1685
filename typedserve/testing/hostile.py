"""Hostile peers: clients that try to break a server's promises, for tests and benchmarks.

Real sockets over loopback (TCP over IPv4 or IPv6, or Unix stream sockets), each behaving the
way slow, stuck or rude clients do:

- :func:`silent_clients` connect and send nothing: they hold a connection (and, in a naive
  server, a worker) for free;
- :class:`Trickler` / :func:`trickling_clients` send one byte per interval per connection, so
  a request never completes (slowloris), and record when the server closes them;
- :func:`resetting_client` sends a little and resets the connection (TCP RST);
- :func:`connect_many` and :func:`fd_budget` open many connections without running the test
  process out of file descriptors halfway.

Addresses are what ``socket.connect`` takes, or what a server reports as its address: a
``(host, port)`` tuple (a wildcard host such as ``"0.0.0.0"`` or ``"::"`` means loopback), an
IPv6 ``(host, port, flow, scope)`` tuple, or a Unix socket path (``str``, ``bytes`` for an
abstract name, or a path object). The family is inferred from the address unless given.

Resource handling: every socket is closed by whoever opened it: the context managers on exit,
:meth:`Trickler.stop` for a trickler, the caller for :func:`connect_many`. Every loop is bounded
and nothing sleeps: a trickler paces itself with :meth:`threading.Event.wait`, so stopping it is
immediate. Example::

    with serve_in_thread(make_server()) as server, trickling_clients(
        server.address, 10, interval=0.05
    ) as trickler:
        assert trickler.wait_closed(10, timeout=5)  # the server cut all ten
"""

from __future__ import annotations

import errno
import os
import resource
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, TypeAlias

from typedserve.errors import ConfigError, StateError
from typedserve.requests import PeerAddress

__all__ = [
    "ClosedByServer",
    "ConnectAddress",
    "Trickler",
    "connect_many",
    "fd_budget",
    "resetting_client",
    "silent_clients",
    "trickling_clients",
]

ConnectAddress: TypeAlias = (
    tuple[str, int] | tuple[str, int, int, int] | str | bytes | os.PathLike[str]
)
"""Where hostile clients connect: an inet address tuple or a Unix socket path (see above)."""

# A wildcard bind accepts connections on loopback; connect there.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_READ_SIZE = 65536
_READS_PER_ROUND = 16  # per readable connection and round: keeps one chatty server bounded


def fd_budget(*, reserve: int = 64) -> int:
    """How many more file descriptors this process may open, keeping ``reserve`` spare.

    It is the soft ``RLIMIT_NOFILE`` minus the fds open now minus ``reserve`` (never below 0).
    A server running in the same process takes one more fd per connection it accepts: give
    clients at most half of the budget then. Linux only (it counts ``/proc/self/fd``).

    Example::

        clients = min(1000, fd_budget() // 2)
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 1 << 20 if soft == resource.RLIM_INFINITY else soft
    return max(0, limit - len(os.listdir("/proc/self/fd")) - reserve)


def connect_many(
    address: ConnectAddress,
    count: int,
    *,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
    reserve: int = 64,
) -> list[socket.socket]:
    """``count`` new stream connections to ``address``; the caller closes them.

    Before opening any, checks that ``count`` fits in :func:`fd_budget` ``(reserve=reserve)``
    and raises :class:`OSError` (``EMFILE``) naming the budget and the fix if it does not, rather
    than failing halfway with the process out of fds. ``timeout`` applies to connecting and
    to every later operation on each socket (``None``: blocking). Connections are made one
    after the other; if one fails, those already open are closed and the error propagates.
    Note that a server that does not accept leaves connections in its backlog: past the
    backlog, ``connect`` may wait for ``timeout`` and fail.

    Example::

        clients = connect_many(server.address, 100)
        try:
            ...
        finally:
            for client in clients:
                client.close()
    """
    if count < 0:
        raise ConfigError.for_argument("connect_many", "count", count, ">= 0")
    budget = fd_budget(reserve=reserve)
    if count > budget:
        raise OSError(
            errno.EMFILE,
            f"connect_many: {count} connections need {count} fds but only {budget} are free "
            f"(RLIMIT_NOFILE minus open fds minus reserve={reserve}); ask for fewer or raise "
            "the limit (ulimit -n)",
        )
    target, inferred = _resolve(address)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_connect(target, family or inferred, timeout))
    except BaseException:
        _close_all(sockets)
        raise
    return sockets


@contextmanager
def silent_clients(
    address: ConnectAddress,
    count: int,
    *,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
) -> Iterator[list[socket.socket]]:
    """``count`` connections that send nothing, closed (FIN) when the block ends.

    They are the cheapest attack on a server that gives each connection a worker before it
    has a request. The sockets are yielded so the test can observe them (``recv`` what the
    server says, see whether it closed them); they are blocking with ``timeout``. Works for
    TCP (IPv4 and IPv6) and Unix stream sockets; see :func:`connect_many` for the fd budget.

    Example::

        with silent_clients(server.address, 32):
            with connect(server) as client:   # a real client is still served
                ...
    """
    sockets = connect_many(address, count, family=family, timeout=timeout)
    try:
        yield sockets
    finally:
        _close_all(sockets)


def resetting_client(
    address: ConnectAddress,
    data: bytes = b"partial",
    *,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
) -> PeerAddress:
    """Connect, send ``data``, then close with ``SO_LINGER`` 0, which sends a TCP RST.

    The server sees ``ECONNRESET`` on its next read or write (or, if it had not accepted the
    connection yet, a reset connection from ``accept``) and must survive it. Returns the
    client's local address, i.e. the peer address the server saw. Unix sockets have no RST: the
    server sees an ordinary close there (``ECONNRESET`` only if it had unread data for us).

    Example::

        resetting_client(server.address, b"GET / HTTP/1.1\\r\\n")
        with connect(server) as client: ...   # the server still serves
    """
    target, inferred = _resolve(address)
    client = _connect(target, family or inferred, timeout)
    try:
        local: PeerAddress = client.getsockname()
        if data:
            client.sendall(data)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        client.close()
    return local


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


def _resolve(
    address: ConnectAddress,
) -> tuple[str | bytes | tuple[object, ...], socket.AddressFamily]:
    if isinstance(address, tuple):
        host = _WILDCARDS.get(address[0], address[0])
        family = socket.AF_INET6 if len(address) == 4 or ":" in host else socket.AF_INET
        return (host, *address[1:]), family
    if isinstance(address, bytes):
        return address, socket.AF_UNIX
    return os.fspath(address), socket.AF_UNIX


def _connect(
    target: str | bytes | tuple[object, ...], family: socket.AddressFamily, timeout: float | None
) -> socket.socket:
    client = socket.socket(family, socket.SOCK_STREAM)
    try:
        client.settimeout(timeout)
        client.connect(target)
    except BaseException:
        client.close()
        raise
    return client


def _close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
