"""The request handler classes of :mod:`typedserve.compat`, as in the stdlib ``socketserver``.

``socket`` is read from the public module when ``setup()`` runs, as the stdlib reads its
global, so patching ``socketserver.socket`` reaches it.
"""

from __future__ import annotations

import contextlib
from io import BufferedIOBase, BytesIO
from typing import TYPE_CHECKING, Any

import typedserve.compat as _ss  # the public module: its globals are patch targets

if TYPE_CHECKING:
    import socket

_PUBLIC_MODULE = "typedserve.compat"

__all__ = [
    "BaseRequestHandler",
    "DatagramRequestHandler",
    "StreamRequestHandler",
    "_SocketWriter",
]


class BaseRequestHandler:
    """Base class of request handlers: one instance per request.

    The constructor stores ``request``, ``client_address`` and ``server``, then calls
    ``setup()``, ``handle()`` and (always, once ``setup()`` returned) ``finish()``.
    """

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        """Handle the request: ``setup()``, ``handle()``, then ``finish()`` in a ``finally``."""
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        """Called before ``handle()``. The default does nothing."""

    def handle(self) -> None:
        """Serve the request. The default does nothing."""

    def finish(self) -> None:
        """Called after ``handle()``, even if it raised. The default does nothing."""


class StreamRequestHandler(BaseRequestHandler):
    """Handler for stream sockets: ``rfile`` reads the request, ``wfile`` writes the reply."""

    # rfile is buffered (reading byte by byte from a socket is slow); wfile is unbuffered by
    # default so replies need no flush().
    rbufsize: int = -1
    wbufsize: int = 0
    # A timeout to apply to the request socket, if not None.
    timeout: float | None = None
    # Disable the Nagle algorithm for this socket (use only when wbufsize != 0).
    disable_nagle_algorithm: bool = False

    def setup(self) -> None:
        """Apply ``timeout``/``disable_nagle_algorithm`` and create ``rfile`` and ``wfile``."""
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            sockets = _ss.socket  # the module
            self.connection.setsockopt(sockets.IPPROTO_TCP, sockets.TCP_NODELAY, True)
        self.rfile: Any = self.connection.makefile("rb", self.rbufsize)
        self.wfile: Any
        if self.wbufsize == 0:
            self.wfile = _SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        """Flush ``wfile`` (ignoring a final socket error), then close both files."""
        if not self.wfile.closed:
            # A final socket error, such as ECONNABORTED, is ignored.
            with contextlib.suppress(OSError):
                self.wfile.flush()
        self.wfile.close()
        self.rfile.close()


class _SocketWriter(BufferedIOBase):
    """An unbuffered writable ``BufferedIOBase`` over a socket: every write is a ``sendall``.

    ``sendall`` resumes after signals (PEP 475), so a write is never partial; ``fileno()`` is
    the socket's. The stdlib's class, method for method.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        """Always true."""
        return True

    def write(self, b: Any) -> int:  # the stdlib's parameter name
        """Send all of ``b``; return its size in bytes."""
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno()


class DatagramRequestHandler(BaseRequestHandler):
    """Handler for datagram sockets: ``rfile`` holds the packet, ``wfile`` collects the reply."""

    def setup(self) -> None:
        """Split the request into ``packet`` and ``socket``; create ``rfile`` and ``wfile``."""
        self.packet, self.socket = self.request
        self.rfile: Any = BytesIO(self.packet)
        self.wfile: Any = BytesIO()

    def finish(self) -> None:
        """Send what was written to ``wfile`` back to the client."""
        self.socket.sendto(self.wfile.getvalue(), self.client_address)


# Presented as members of the public module, like the stdlib's of ``socketserver``.
for _cls in (BaseRequestHandler, StreamRequestHandler, _SocketWriter, DatagramRequestHandler):
    _cls.__module__ = _PUBLIC_MODULE
del _cls
