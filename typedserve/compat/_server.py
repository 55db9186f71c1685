"""The base and socket servers of :mod:`typedserve.compat`: the stdlib ``socketserver`` hooks.

Every hook is called exactly when, as often as and with the arguments that CPython's
``socketserver`` uses, so old subclasses keep working. ``serve_forever`` and
``handle_request`` run on the core's :class:`~typedserve._reactor.Reactor` through
:class:`~typedserve.compat._loop.HookLoop`, woken by the
:class:`~typedserve._lifecycle.StopSignal` of the running ``serve_forever`` call when
``shutdown()`` is called (or ``_BaseServer__shutdown_request`` is set); a bind failure is the
stdlib's own exception with a note naming the address; default error reports also go to the
``typedserve.compat`` logger.
``DIFFERENCES.md`` lists every intentional difference.

The module globals the stdlib's methods use at run time (``socket``, ``threading``, ``sys``,
``time``) are read from the public module (``typedserve.compat``, which ``install()`` makes
``socketserver``) when a method runs, so ``mock.patch("socketserver.time")`` and the like
reach compat's methods as they reach the stdlib's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import traceback
from typing import TYPE_CHECKING, Any

import typedserve.compat as _ss  # the public module: its globals are patch targets
from typedserve._lifecycle import NEVER, StopSignal
from typedserve.compat._errors import add_bind_note
from typedserve.compat._loop import HookLoop

__all__ = [
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "UnixDatagramServer",
    "UnixStreamServer",
]

_PUBLIC_MODULE = "typedserve.compat"

logger = logging.getLogger(_PUBLIC_MODULE)
"""Where default ``handle_error`` reports go, besides stderr (see DIFFERENCES.md)."""
logger.addHandler(logging.NullHandler())
logger.propagate = False

_FLAG = "_BaseServer__shutdown_request"

_SERVING: dict[int, StopSignal] = {}
"""``id(server)`` -> the stop signal its running ``serve_forever`` call's Reactor listens to.

Kept here, not in the server, so that the instance ``__dict__`` holds what the stdlib's does.
An entry lives only while that call runs (the server is alive then, so its id is unique).
"""


class BaseServer:
    """Base class of the servers: the request loop and the hooks subclasses override.

    Methods for the caller: ``serve_forever(poll_interval)``, ``shutdown()``,
    ``handle_request()``, ``fileno()`` (supplied by subclasses). Hooks: ``server_bind``,
    ``server_activate``, ``get_request``, ``handle_timeout``, ``verify_request``,
    ``server_close``, ``process_request``, ``shutdown_request``, ``close_request``,
    ``service_actions``, ``handle_error``, ``finish_request``.
    """

    timeout: float | None = None
    # Provided by subclasses, as in the stdlib: TCPServer creates ``socket`` (a socket-less
    # server calling handle_request() needs one); declared here for the type checker.
    socket: socket.socket

    def __init__(self, server_address: Any, RequestHandlerClass: Any) -> None:
        """Store the address and the handler class. May be extended, do not override."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.__is_shut_down = _ss.threading.Event()
        self.__shutdown_request = False

    # ``_BaseServer__shutdown_request`` is a de-facto API: handlers and signal handlers set it
    # to stop ``serve_forever``, and code reads it, even as ``vars(server)[...]``. The value
    # lives in the instance ``__dict__`` under that very key, as in the stdlib. This property
    # (a data descriptor, so it wins over the instance dict) reads it from there, and its
    # setter writes it there and then requests (or clears) the stop signal of a running
    # ``serve_forever``, so a true value wakes the loop at once. A value written straight
    # into ``__dict__`` is still what the loop reads, at its next poll as in the stdlib.
    @property
    def __shutdown_request(self) -> Any:
        try:
            return self.__dict__[_FLAG]
        except KeyError:  # BaseServer.__init__ never ran: the stdlib's AttributeError
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {_FLAG!r}", name=_FLAG, obj=self
            ) from None

    @__shutdown_request.setter
    def __shutdown_request(self, value: Any) -> None:
        self.__dict__[_FLAG] = value
        stop = _SERVING.get(id(self))
        if stop is None:  # no serve_forever running: it will read the flag when it starts
            return
        if value:
            stop.request()
        else:
            stop.clear()

    def server_activate(self) -> None:
        """Called by the constructor to activate the server. May be overridden."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle one request at a time until :meth:`shutdown`.

        ``service_actions()`` runs after each wait, which lasts at most ``poll_interval``
        seconds; ``self.timeout`` is ignored. The wait is the core's Reactor, so
        ``shutdown()``, or setting ``_BaseServer__shutdown_request``, ends it at once (from a
        signal handler, see ``DIFFERENCES.md``).
        """
        self.__is_shut_down.clear()
        stop = _SERVING[id(self)] = StopSignal()
        try:
            with HookLoop(self, stop) as loop:
                loop.serve_forever(poll_interval, lambda: self.__shutdown_request)
        finally:
            if _SERVING.get(id(self)) is stop:
                del _SERVING[id(self)]
            self.__shutdown_request = False
            self.__is_shut_down.set()

    def shutdown(self) -> None:
        """Stop the ``serve_forever`` loop and wait until it has finished.

        The loop stops at once, not at its next poll. As in the stdlib, this waits for a
        ``serve_forever`` call to end: call it from another thread than the loop's (or it
        deadlocks), and only if ``serve_forever`` runs or will run.
        """
        self.__shutdown_request = True
        self.__is_shut_down.wait()

    def service_actions(self) -> None:
        """Called by the ``serve_forever`` loop after each wait. May be overridden."""

    def handle_request(self) -> None:
        """Handle one request, waiting at most ``self.timeout`` (or the socket's timeout).

        Calls ``handle_timeout()`` (and returns what it returns) if none arrives in time. As
        in the stdlib, a shutdown request does not interrupt it.
        """
        # Support people who used socket.settimeout() to escape handle_request before
        # self.timeout was available.
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else _ss.time() + timeout
        with HookLoop(self, NEVER) as loop:
            return loop.handle_request(timeout, deadline)

    # What subclasses provide (as in the stdlib, BaseServer itself defines none of them):
    # ``fileno`` and ``get_request``, and ``socket`` (declared at the top of the class).
    if TYPE_CHECKING:

        def fileno(self) -> int:
            """The file descriptor the loop waits on."""

        def get_request(self) -> tuple[Any, Any]:
            """Accept one request: ``(request, client_address)``."""

    def _handle_request_noblock(self) -> None:
        """Handle one request; the server's fd has been reported readable."""
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        if self.verify_request(request, client_address):
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except:
                self.shutdown_request(request)
                raise
        else:
            self.shutdown_request(request)

    def handle_timeout(self) -> None:
        """Called when ``handle_request`` saw no request within the timeout."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return true to process the request, false to drop it. May be overridden."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Finish the request, then shut it down; the mix-ins override this."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Clean up the server. May be overridden."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Finish one request by instantiating ``RequestHandlerClass``."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """Shut down and close one request."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Clean up one request."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report an exception raised while processing a request; the server carries on.

        Prints the stdlib's report to ``sys.stderr`` and also logs it, with the traceback,
        to the ``typedserve.compat`` logger (which does not propagate unless configured to).
        """
        stderr = _ss.sys.stderr
        print("-" * 40, file=stderr)
        print("Exception occurred during processing of request from", client_address, file=stderr)
        traceback.print_exc()
        print("-" * 40, file=stderr)
        logger.error(
            "Exception occurred during processing of request from %s",
            client_address,
            exc_info=True,
        )

    def __enter__(self) -> Any:
        """Return the server itself."""
        return self

    def __exit__(self, *args: object) -> None:
        """Call ``server_close()``."""
        self.server_close()


class TCPServer(BaseServer):
    """A synchronous server on a stream socket, by default TCP over IPv4."""

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size: int = 5
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False

    def __init__(
        self, server_address: Any, RequestHandlerClass: Any, bind_and_activate: bool = True
    ) -> None:
        """Create the socket and, unless told not to, bind and activate it.

        May be extended, do not override. On failure ``server_close()`` runs before the
        exception propagates.
        """
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = _ss.socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Apply the reuse options and bind ``self.socket`` to ``server_address``.

        A failure raises the ``OSError`` that ``socket.bind`` raised, unchanged but for a note
        (``__notes__``, shown in tracebacks) naming the server kind and the address.
        """
        sockets = _ss.socket  # the module
        if self.allow_reuse_address and hasattr(sockets, "SO_REUSEADDR"):
            self.socket.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(sockets, "SO_REUSEPORT"):
            self.socket.setsockopt(sockets.SOL_SOCKET, sockets.SO_REUSEPORT, 1)
        try:
            self.socket.bind(self.server_address)
        except OSError as exc:
            add_bind_note(exc, self.server_address, self.socket)
            raise
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Listen, with a backlog of ``request_queue_size``."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Close the listening socket."""
        self.socket.close()

    def fileno(self) -> int:
        """The current ``self.socket``'s file descriptor."""
        return self.socket.fileno()

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection from the current ``self.socket``."""
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        """Shut the connection down for writing (errors ignored), then close it."""
        # Explicitly shut down: close() only releases this reference. Some platforms raise
        # ENOTCONN here.
        with contextlib.suppress(OSError):
            request.shutdown(_ss.socket.SHUT_WR)
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Close the connection."""
        request.close()


class UDPServer(TCPServer):
    """A synchronous server on a datagram socket, by default UDP over IPv4."""

    allow_reuse_address: bool = False
    allow_reuse_port: bool = False
    socket_type: int = socket.SOCK_DGRAM
    max_packet_size: int = 8192

    def get_request(self) -> tuple[Any, Any]:
        """Receive one datagram: ``((data, self.socket), client_address)``."""
        data, client_addr = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_addr

    def server_activate(self) -> None:
        """Nothing to do: datagram sockets do not listen."""

    def shutdown_request(self, request: Any) -> None:
        """Nothing to shut down; calls ``close_request``."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Nothing to close: the socket is the server's."""


class UnixStreamServer(TCPServer):
    """A synchronous server on a Unix stream socket."""

    address_family: int = socket.AF_UNIX


class UnixDatagramServer(UDPServer):
    """A synchronous server on a Unix datagram socket."""

    address_family: int = socket.AF_UNIX


# The classes present themselves as members of the public module, as the stdlib's do of
# ``socketserver`` (reprs, pickles by reference and stubtest all use the public path).
for _cls in (BaseServer, TCPServer, UDPServer, UnixStreamServer, UnixDatagramServer):
    _cls.__module__ = _PUBLIC_MODULE
del _cls
