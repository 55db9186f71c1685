"""``StreamTransport``: the shared accept logic of TCP and Unix stream transports."""

from __future__ import annotations

import socket
import time
from typing import ClassVar, Generic

from typedserve.config import ServerConfig
from typedserve.errors import ServerClosedError
from typedserve.requests import AddrT_co, StreamRequest, new_stream_request
from typedserve.transports.base import TransportStats
from typedserve.transports.bind_errors import bind_error
from typedserve.transports.binding import open_listener

__all__ = ["StreamTransport"]


class StreamTransport(Generic[AddrT_co]):
    """A listening stream socket; each accepted connection is a :class:`StreamRequest` whose
    addresses have the type ``AddrT_co``, as has the transport's :attr:`address`.

    Accepted sockets are blocking, with the config's ``timeouts.idle`` as their timeout (the
    request budget is enforced by the server's loop, which cuts a request past it, so a plain
    ``recv`` stays one system call). Subclasses fix the address families.
    """

    families: ClassVar[frozenset[int]] = frozenset({socket.AF_INET, socket.AF_INET6})

    def __init__(self) -> None:
        self.stats = TransportStats()
        self._socket: socket.socket | None = None
        self._cleanup: object = None
        self._backlog = socket.SOMAXCONN
        self._timeout: float | None = None
        self._request_seconds: float | None = None
        self._address: AddrT_co | None = None
        self._kind = (int(socket.AF_INET), int(socket.SOCK_STREAM), 0)  # of accepted sockets

    @property
    def socket(self) -> socket.socket:
        """The listening socket (after :meth:`bind`)."""
        if self._socket is None:
            raise ServerClosedError(f"{type(self).__name__} is not bound")
        return self._socket

    def bind(self, config: ServerConfig) -> None:
        """Create and bind the listening socket for ``config.address``."""
        listener = open_listener(config, socket.SOCK_STREAM, self.families, type(self).__name__)
        self._socket, self._cleanup = listener.socket, listener.cleanup
        self._backlog = config.backlog
        idle, request = config.timeouts.idle, config.timeouts.request
        # Only ``idle`` bounds each socket operation: the request budget is enforced by the
        # loop's sweep (a cut), so a blocking recv stays one syscall (no poll before it).
        self._timeout = idle
        self._request_seconds = request
        self._address = self._socket.getsockname()
        self._kind = (int(self._socket.family), int(self._socket.type), self._socket.proto)

    def activate(self) -> None:
        """Listen with the config's backlog; the listening socket becomes non-blocking."""
        sock = self.socket
        try:
            sock.listen(self._backlog)
        except OSError as exc:
            raise bind_error(exc, str(self._address)) from None
        sock.setblocking(False)

    @property
    def address(self) -> AddrT_co:
        """The bound address (``getsockname()`` of the listening socket), once bound."""
        address = self._address
        if address is None:
            raise ServerClosedError(f"{type(self).__name__} is not bound")
        return address

    def fileno(self) -> int:
        """The listening socket's fd."""
        return self.socket.fileno()

    def receive(self) -> StreamRequest[AddrT_co] | None:
        """Accept one connection, or ``None`` when none is pending or it was aborted."""
        listener = self._socket
        if listener is None:
            raise ServerClosedError(f"{type(self).__name__} is not bound")
        try:
            # socket.accept() does the same, but converts the listener's family and type to
            # enums through two properties on every call (~1 us); they are fixed at bind().
            fd, peer = listener._accept()  # type: ignore[attr-defined]  # accept()'s primitive
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        family, kind, proto = self._kind
        conn = socket.socket(family, kind, proto, fd)
        if self._timeout is not None:
            conn.settimeout(self._timeout)
        seconds = self._request_seconds
        return new_stream_request(
            conn, peer, None if seconds is None else time.monotonic() + seconds
        )

    def close(self) -> None:
        """Close the listening socket and run the address's cleanup (unlink a Unix file)."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        cleanup, self._cleanup = self._cleanup, None
        if callable(cleanup):
            cleanup()
