"""The mix-ins of :mod:`typedserve.compat` and the servers combining them, as in ``socketserver``.

``ForkingMixIn`` forks a child per request and reaps it from ``service_actions`` and
``handle_timeout``; ``ThreadingMixIn`` starts a thread per request and tracks the non-daemon
ones in ``_threads`` (a :class:`_Threads` list, or :class:`_NoThreads`) so that
``server_close`` can join them. Listed before the server class, as in the stdlib.

``os`` and ``threading`` are read from the public module when a method runs, as the stdlib's
methods read its globals, so patching ``socketserver.os`` or ``socketserver.threading.Thread``
reaches them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import typedserve.compat as _ss  # the public module: its globals are patch targets
from typedserve.compat._server import TCPServer, UDPServer, UnixDatagramServer, UnixStreamServer

__all__ = [
    "ForkingMixIn",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "ForkingUnixDatagramServer",
    "ForkingUnixStreamServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
    "_NoThreads",
    "_Threads",
]

_PUBLIC_MODULE = "typedserve.compat"


class ForkingMixIn:
    """Mix-in that handles each request in a child process (list it before the server class).

    ``active_children`` is ``None`` until the first fork, then the set of child pids not yet
    reaped; at most ``max_children`` run at once; ``server_close`` waits for them when
    ``block_on_close`` is true.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children: int = 40
    # If true, server_close() waits until all child processes complete.
    block_on_close: bool = True

    def collect_children(self, *, blocking: bool = False) -> None:
        """Reap children that have exited (all of them, waiting, if ``blocking``)."""
        children = self.active_children
        if children is None:
            return
        os = _ss.os
        # Above max_children, wait for any child (waitpid(-1) reaps in one call per child,
        # but may reap children this server did not spawn, so only here).
        while len(children) >= self.max_children:
            try:
                pid, _ = os.waitpid(-1, 0)
                children.discard(pid)
            except ChildProcessError:
                children.clear()  # no children at all
            except OSError:
                break
        flags = 0 if blocking else os.WNOHANG
        for pid in children.copy():
            try:
                reaped, _ = os.waitpid(pid, flags)
                children.discard(reaped)  # 0 (still running) is never a member
            except ChildProcessError:
                children.discard(pid)  # someone else reaped it
            except OSError:
                pass

    def handle_timeout(self) -> None:
        """Reap exited children after ``timeout`` seconds without a request."""
        self.collect_children()

    def service_actions(self) -> None:
        """Reap exited children on every turn of the ``serve_forever`` loop."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork; the child finishes the request and exits, the parent closes its copy."""
        server: Any = self
        os = _ss.os
        pid = os.fork()
        if pid:
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            server.close_request(request)
            return
        # Child process: this must never return, hence os._exit().
        status = 1
        try:
            server.finish_request(request, client_address)
            status = 0
        except Exception:
            server.handle_error(request, client_address)
        finally:
            try:
                server.shutdown_request(request)
            finally:
                os._exit(status)

    def server_close(self) -> None:
        """Close the server, then reap children (waiting for them if ``block_on_close``)."""
        super().server_close()  # type: ignore[misc]  # a mix-in: the next class is a server
        self.collect_children(blocking=self.block_on_close)


class _Threads(list[threading.Thread]):
    """The joinable list of a threading server's non-daemon request threads.

    Threads leave it as soon as they finish (and, as in the stdlib, dead ones are reaped
    whenever one is added), so it never accumulates.
    """

    def __init__(self, iterable: Iterable[threading.Thread] = (), /) -> None:
        super().__init__(iterable)
        self._lock = threading.Lock()

    def append(self, thread: threading.Thread) -> None:
        """Reap finished threads, then track ``thread`` unless it is a daemon."""
        self.reap()
        if thread.daemon:
            return
        with self._lock:
            super().append(thread)

    def pop_all(self) -> list[threading.Thread]:
        """Remove and return every tracked thread."""
        with self._lock:
            self[:], result = [], self[:]
        return result

    def join(self) -> None:
        """Wait for every tracked thread."""
        for thread in self.pop_all():
            thread.join()

    def reap(self) -> None:
        """Drop the threads that have finished."""
        with self._lock:
            self[:] = (thread for thread in self if thread.is_alive())

    def discard(self, thread: threading.Thread) -> None:
        """Forget ``thread`` (a request thread calls this as it ends)."""
        with self._lock:
            if thread in self:
                self.remove(thread)


class _NoThreads:
    """The degenerate ``_Threads`` of a server that does not wait for its threads."""

    def append(self, thread: threading.Thread) -> None:
        """Track nothing."""

    def join(self) -> None:
        """Wait for nothing."""


_Thread = threading.Thread


class _RequestThread(_Thread):
    """A request thread that removes itself from its server's ``_threads`` when it ends."""

    def __init__(self, threads: Callable[[], object], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner_threads = threads

    def run(self) -> None:
        """Run the target, then leave the server's ``_threads``."""
        try:
            super().run()
        finally:
            threads = self._owner_threads()
            if isinstance(threads, _Threads):
                threads.discard(self)


class ThreadingMixIn:
    """Mix-in that handles each request in a new thread (list it before the server class).

    ``daemon_threads`` makes the threads daemons; with ``block_on_close`` (the default)
    ``server_close`` joins the non-daemon threads still running, tracked in ``_threads``.
    """

    # Decides how threads will act upon termination of the main process.
    daemon_threads: bool = False
    # If true, server_close() waits until all non-daemonic threads terminate.
    block_on_close: bool = True
    # Used by server_close() to wait for every request thread.
    _threads: _Threads | _NoThreads = _NoThreads()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Finish the request in the thread; errors go to ``handle_error``; then shut it down."""
        server: Any = self
        try:
            server.finish_request(request, client_address)
        except Exception:
            server.handle_error(request, client_address)
        finally:
            server.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a new thread to process the request."""
        if self.block_on_close:
            vars(self).setdefault("_threads", _Threads())
        factory = _ss.threading.Thread
        thread: threading.Thread
        if factory is _Thread:
            thread = _RequestThread(
                lambda: self._threads,
                target=self.process_request_thread,
                args=(request, client_address),
            )
        else:  # patched: call it as the stdlib does (the thread stays until reaped)
            thread = factory(target=self.process_request_thread, args=(request, client_address))
        thread.daemon = self.daemon_threads
        self._threads.append(thread)
        thread.start()

    def server_close(self) -> None:
        """Close the server, then join the request threads still running."""
        super().server_close()  # type: ignore[misc]  # a mix-in: the next class is a server
        self._threads.join()


class ForkingUDPServer(ForkingMixIn, UDPServer):
    """``ForkingMixIn`` + ``UDPServer``."""


class ForkingTCPServer(ForkingMixIn, TCPServer):
    """``ForkingMixIn`` + ``TCPServer``."""


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """``ThreadingMixIn`` + ``UDPServer``."""


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """``ThreadingMixIn`` + ``TCPServer``."""


class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
    """``ThreadingMixIn`` + ``UnixStreamServer``."""


class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
    """``ThreadingMixIn`` + ``UnixDatagramServer``."""


class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
    """``ForkingMixIn`` + ``UnixStreamServer`` (exported on Python 3.12 and later)."""


class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
    """``ForkingMixIn`` + ``UnixDatagramServer`` (exported on Python 3.12 and later)."""


# The classes present themselves as members of the public module, as the stdlib's do of
# ``socketserver`` (reprs, pickles by reference and stubtest all use the public path).
for _cls in (
    ForkingMixIn,
    _Threads,
    _NoThreads,
    ThreadingMixIn,
    ForkingUDPServer,
    ForkingTCPServer,
    ThreadingUDPServer,
    ThreadingTCPServer,
    ThreadingUnixStreamServer,
    ThreadingUnixDatagramServer,
    ForkingUnixStreamServer,
    ForkingUnixDatagramServer,
):
    _cls.__module__ = _PUBLIC_MODULE
del _cls
