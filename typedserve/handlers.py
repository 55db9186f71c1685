"""Handlers: the user's code for one request, generic over the request type.

Life cycle, run by the server on whichever thread or process the strategy chose::

    handler = HandlerClass(request, context)
    try:
        handler.setup()
        handler.handle()
        handler.finish()     # only when setup and handle returned normally
    finally:
        handler.close()      # always: release what setup acquired

``finish`` completes the response (``StreamHandler`` flushes ``wfile``, ``DatagramHandler`` sends
the reply), so it is skipped after an error: a half-built reply is never sent. ``close``
releases resources and runs even after an exception, so nothing leaks. An exception from any
step goes to the server's error policy (logged with the peer by default); the server goes on.

This is the seed documentation's contract ("if setup or handle raise an exception, finish will
not be called"). Today's stdlib ``socketserver`` calls ``finish`` in a ``finally`` instead, so
a ``StreamRequestHandler`` flushes a half-written reply after an error; ``typedserve.compat``
keeps that stdlib behaviour for old code, and the typed API splits the two jobs.
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeAlias, cast

from typing_extensions import Buffer

from typedserve.context import ServerContext, StateT
from typedserve.framing import Framing
from typedserve.requests import AddrT, Datagram, RequestT, StreamRequest

__all__ = [
    "DatagramHandler",
    "Handler",
    "HandlerFactory",
    "HandlerLike",
    "RequestT",
    "StreamHandler",
]


class HandlerLike(Protocol):
    """What the server calls on the object a handler factory returns."""

    def setup(self) -> None:
        """Prepare for :meth:`handle`."""

    def handle(self) -> None:
        """Serve the request."""

    def finish(self) -> None:
        """Complete the response after a successful :meth:`handle`."""

    def close(self) -> None:
        """Release resources; runs after every request, failed or not."""


HandlerFactory: TypeAlias = Callable[[RequestT, ServerContext[StateT]], HandlerLike]
"""Builds the handler for one request; a :class:`Handler` subclass is one.

A ``ServerContext`` is covariant in its state, so a factory written for a
``ServerContext[Store]`` serves a server whose state is any ``Store``."""


def declared_framing(factory: object) -> Framing | None:
    """The framing a handler factory declares (``StreamHandler.framing``), if any."""
    framing = getattr(factory, "framing", None)
    return framing if isinstance(framing, Framing) else None


def declares_speaks_first(factory: object) -> bool:
    """Whether a handler factory declares that its protocol starts with the server talking."""
    return getattr(factory, "speaks_first", False) is True


class Handler(ABC, Generic[RequestT, StateT]):
    """Base class of handlers for requests of type ``RequestT``, with shared state ``StateT``.

    Subclass :class:`StreamHandler` or :class:`DatagramHandler` (or ``Handler[MyRequest, S]``
    for a custom transport) and implement :meth:`handle`. One instance serves one request.

    ``speaks_first``: the protocol starts with the server talking (an SMTP or FTP banner), so
    a new connection is handed to a worker at once instead of waiting, in the server's loop,
    for the client's first byte (``timeouts.first_byte``).
    """

    speaks_first: ClassVar[bool] = False

    def __init__(self, request: RequestT, context: ServerContext[StateT]) -> None:
        self.request: RequestT = request
        self.context: ServerContext[StateT] = context

    @property
    def state(self) -> StateT:
        """The shared state object injected into the server (``Server(state=...)``)."""
        return self.context.state

    def setup(self) -> None:
        """Called before :meth:`handle`. The default does nothing."""

    @abstractmethod
    def handle(self) -> None:
        """Serve the request: all the work happens here."""

    def finish(self) -> None:
        """Called after :meth:`handle` returned normally. The default does nothing."""

    def close(self) -> None:
        """Called last, always, even after an exception. The default does nothing."""


class SocketWriter(io.BufferedIOBase):
    """An unbuffered, write-only binary file over a socket: every ``write`` is one ``sendall``.

    ``sendall`` completes writes that a signal interrupted (PEP 475), so ``write`` always
    consumes the whole buffer or raises. ``fileno()`` is the socket's.
    """

    def __init__(self, sock: socket.socket, deadline: float | None = None) -> None:
        self._sock = sock
        self._deadline = deadline

    def writable(self) -> bool:
        """Always true."""
        return True

    def write(self, data: Buffer) -> int:
        """Send all of ``data``; returns its length."""
        if self._deadline is not None:
            _arm_deadline(self._sock, self._deadline)
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno()


class _DeadlineSocketIO(io.RawIOBase):
    """Raw socket I/O that fails with ``TimeoutError`` once the request deadline has passed."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        _arm_deadline(self._sock, self._deadline)
        return self._sock.recv_into(buffer)

    def write(self, data: Buffer) -> int:
        _arm_deadline(self._sock, self._deadline)
        return self._sock.send(data)

    def fileno(self) -> int:
        return self._sock.fileno()


def _arm_deadline(sock: socket.socket, deadline: float) -> None:
    """Refuse an operation once the request deadline has passed. An operation already blocked
    then is ended by the server, which cuts the connection of a request past its deadline
    (within the loop's sweep period): the socket keeps no timeout of its own, so each
    ``recv``/``send`` stays one system call (a timeout would put a ``poll`` before each)."""
    if time.monotonic() >= deadline:
        raise TimeoutError("the request deadline (timeouts.request) has passed")


class StreamHandler(Handler[StreamRequest[AddrT], StateT], Generic[StateT, AddrT]):
    """A handler for stream connections with file-like ``rfile`` and ``wfile``.

    ``StreamHandler[S]`` has shared state of type ``S``; ``StreamHandler[S, A]`` also names the
    address type of its transport, so ``self.request.peer`` and ``self.request.local`` are
    ``A``: ``InetSockAddr`` for ``TCPTransport``, ``UnixSockAddr`` for
    ``UnixStreamTransport``. Left out, it is the ``PeerAddress`` union (any stream transport).

    Class attributes tune each connection: ``rbufsize`` (``rfile`` buffer, ``-1`` for the
    default), ``wbufsize`` (``0``: every ``wfile.write`` is sent at once; otherwise buffered and
    flushed by :meth:`finish`), ``nodelay`` (disable Nagle's algorithm on TCP), and ``timeout``
    (seconds per socket operation; ``None`` keeps the config's ``timeouts.idle``). Reads and
    writes through ``rfile``/``wfile`` also honour the config's ``timeouts.request`` deadline.
    ``rfile`` and ``wfile`` are opened the first time they are used, so a handler that works on
    ``self.request.socket`` directly pays nothing for them; assigning either in a ``setup``
    override replaces it. ``framing`` declares how requests are delimited (see below).

    Example of a framed handler (a worker is busy only while a complete line is served)::

        class Echo(StreamHandler):
            framing = Lines(max_length=4096)

            def handle(self) -> None:
                self.wfile.write(self.rfile.readline())
    """

    rbufsize: ClassVar[int] = -1
    wbufsize: ClassVar[int] = 0
    nodelay: ClassVar[bool] = False
    timeout: ClassVar[float | None] = None
    framing: ClassVar[Framing | None] = None
    """How requests are delimited (:mod:`typedserve.framing`), or ``None``. With a framing, the
    server's loop assembles each request before a worker sees it, ``rfile`` reads exactly that
    request, one handler instance serves each request, and the connection waits in the loop
    (holding no worker) between requests. ``None``: the handler reads the socket itself."""

    # The files are opened on first use: many handlers never touch them (they work on
    # request.socket directly), and opening them costs a few microseconds per connection and
    # about 5 KiB per idle one. They live in plain attributes with class defaults, so
    # finish() and close() see what was opened or assigned with two cheap reads.
    _rfile: io.BufferedIOBase | None = None
    _wfile: io.BufferedIOBase | None = None
    _finished = False

    def setup(self) -> None:
        """Apply the socket options (``timeout``, ``nodelay``)."""
        if self.timeout is not None:
            self.request.socket.settimeout(self.timeout)
        if self.nodelay and self.request.socket.family != socket.AF_UNIX:
            self.request.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _open_rfile(self) -> io.BufferedIOBase:
        frame = self.request.frame
        if frame is not None:
            return io.BytesIO(frame)
        sock, deadline = self.request.socket, self.request.deadline
        # Always a BufferedReader, so ``read(n)`` returns n bytes (or EOF) as BufferedIOBase
        # promises: makefile("rb", 0) alone would be a raw SocketIO with short reads.
        # ``rbufsize=0`` becomes a 1-byte buffer, which never reads ahead of the caller.
        size = io.DEFAULT_BUFFER_SIZE if self.rbufsize < 0 else max(self.rbufsize, 1)
        raw: io.RawIOBase = (
            cast(io.RawIOBase, sock.makefile("rb", 0))
            if deadline is None
            else _DeadlineSocketIO(sock, deadline)
        )
        return io.BufferedReader(raw, size)

    def _open_wfile(self) -> io.BufferedIOBase:
        sock, deadline = self.request.socket, self.request.deadline
        if self.wbufsize == 0:
            return SocketWriter(sock, deadline)
        if deadline is None:
            return cast(io.BufferedIOBase, sock.makefile("wb", self.wbufsize))
        return io.BufferedWriter(_DeadlineSocketIO(sock, deadline), self.wbufsize)

    @property
    def rfile(self) -> io.BufferedIOBase:
        """The connection's input, buffered (opened on first use; assignable)."""
        if self._rfile is None:
            self._rfile = self._open_rfile()
        return self._rfile

    @rfile.setter
    def rfile(self, file: io.BufferedIOBase) -> None:
        self._rfile = file

    @property
    def wfile(self) -> io.BufferedIOBase:
        """The connection's output (opened on first use; assignable; see ``wbufsize``)."""
        if self._wfile is None:
            self._wfile = self._open_wfile()
        return self._wfile

    @wfile.setter
    def wfile(self, file: io.BufferedIOBase) -> None:
        self._wfile = file

    def finish(self) -> None:
        """Flush ``wfile`` (an override must call ``super().finish()``)."""
        wfile = self._wfile
        if wfile is not None and not wfile.closed:
            wfile.flush()
        self._finished = True

    def close(self) -> None:
        """Close ``rfile`` and ``wfile`` (the server closes the socket itself).

        If :meth:`finish` did not run (``setup`` or ``handle`` failed), what is still buffered
        in ``wfile`` is discarded, not sent: a half-built reply never reaches the client.
        """
        rfile, wfile = self._rfile, self._wfile
        if rfile is None and wfile is None:
            return  # neither was used: nothing to close
        raw = getattr(wfile, "raw", None)
        if not self._finished and raw is not None:
            raw.close()  # a buffered file whose raw stream is closed skips the flush on close
        for file in (wfile, rfile):
            if file is not None:
                # An unflushable wfile after a failed handle: that error was already reported.
                with contextlib.suppress(OSError):
                    file.close()


class DatagramHandler(Handler[Datagram[AddrT], StateT], Generic[StateT, AddrT]):
    """A handler for datagrams with ``rfile`` over the payload and ``wfile`` for the reply.

    ``DatagramHandler[S]`` has shared state of type ``S``; ``DatagramHandler[S, A]`` also names
    the type of ``self.request.peer``: ``InetSockAddr`` for ``UDPTransport``,
    ``UnixDatagramPeer`` for ``UnixDatagramTransport``. Left out, it is the ``PeerAddress``
    union (any datagram transport).

    What :meth:`handle` writes to ``wfile`` is sent back as one datagram by :meth:`finish`; if
    nothing was written, nothing is sent (call ``self.request.reply(b"")`` for an empty reply).
    Both files are opened the first time they are used.
    """

    _rfile: io.BytesIO | None = None
    _wfile: io.BytesIO | None = None

    @property
    def rfile(self) -> io.BytesIO:
        """The payload, as a file (opened on first use; assignable)."""
        if self._rfile is None:
            self._rfile = io.BytesIO(self.request.payload)
        return self._rfile

    @rfile.setter
    def rfile(self, file: io.BytesIO) -> None:
        self._rfile = file

    @property
    def wfile(self) -> io.BytesIO:
        """The reply being built (opened on first use; assignable)."""
        if self._wfile is None:
            self._wfile = io.BytesIO()
        return self._wfile

    @wfile.setter
    def wfile(self, file: io.BytesIO) -> None:
        self._wfile = file

    def finish(self) -> None:
        """Send what was written to ``wfile``, if anything, as one reply."""
        wfile = self._wfile
        if wfile is not None:
            reply = wfile.getvalue()
            if reply:
                self.request.reply(reply)
