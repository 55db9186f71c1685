"""Attaching an accepted connection to the event loop, for the AsyncIO request table.

:func:`attach` hands the socket to ``loop.connect_accepted_socket`` with the table's stream as
its protocol; for a :class:`~typedserve.transports.tls.TLSStreamRequest` it first waits (with no
handshake, like the selector loop's first-byte wait) for the ClientHello, then lets the loop run
its own non-blocking TLS handshake within ``timeouts.handshake``. A failed handshake is reported
as a :class:`~typedserve.errors.HandshakeError` (counted, one INFO line), as the selector loop's
serving threads report theirs. :func:`has_input` is the table's one-peek check for input that is
already there.

A connection from a ``ProxyProtocolTransport`` (alone or under TLS) first has its PROXY header
read on the loop (:func:`read_proxy_header`: peeks when the socket is readable, never an
application byte, within ``proxy_protocol.timeout``); then the access policy that waited for
it runs (``host.admit(request, opened=True)``), and the stream's ``peer`` becomes the client
the header names.
A refused header is reported as a :class:`~typedserve.errors.ProxyProtocolError` (counted in
``proxy_refused``, one INFO line). :func:`opens_first` tells the table which requests these
are: it attaches them before serving or parking them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

from typedserve.aio.recv_into import RecvIntoStream
from typedserve.aio.stream import AsyncStream
from typedserve.aio.tls_stream import TLSAsyncStream
from typedserve.counters import FINISHED, SLOW
from typedserve.errors import HandshakeError, ProxyProtocolError
from typedserve.host import Host
from typedserve.observe import Outcome, outcome_of
from typedserve.requests import StreamRequest
from typedserve.transports.proxied import ProxiedStreamRequest
from typedserve.transports.proxied_datagram import ProxiedDatagram
from typedserve.transports.tls import TLSStreamRequest

__all__ = [
    "Refused",
    "attach",
    "has_input",
    "new_stream",
    "open_datagram",
    "opens_first",
    "read_proxy_header",
]

Refused = Literal["refused"]
""":func:`attach`'s answer for a connection the access policy refused after its PROXY header
(closed, and counted as refused: not as finished)."""

logger = logging.getLogger("typedserve.server")

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


def has_input(sock: socket.socket) -> bool:
    """Whether the peer sent something (or closed, or reset) already: one non-blocking peek."""
    sock.setblocking(False)  # the loop needs it so anyway; with a timeout, recv would wait
    try:
        sock.recv(1, _PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset: the handler sees it
    return True


def new_stream(
    loop: asyncio.AbstractEventLoop,
    ready: asyncio.Future[None],
    request: StreamRequest[Any],
    idle: float | None,
    recv_buffer: memoryview | None,
) -> AsyncStream[Any]:
    """The protocol object ``request``'s connection will be attached as: a TLS stream (no
    half-close, its own buffers), a stream reading into the table's ``recv_buffer`` (the stdlib
    loop), or a plain one."""
    peer, deadline = request.peer, request.deadline
    if isinstance(request, TLSStreamRequest):
        return TLSAsyncStream(loop, ready, peer, idle=idle, deadline=deadline)
    if recv_buffer is None:
        return AsyncStream(loop, ready, peer, idle=idle, deadline=deadline)
    return RecvIntoStream(loop, ready, peer, recv_buffer=recv_buffer, idle=idle, deadline=deadline)


def opens_first(request: StreamRequest[Any]) -> ProxiedStreamRequest | None:
    """The PROXY request to open before ``request`` is attached (itself, or the one under its
    TLS), or ``None``."""
    if isinstance(request, ProxiedStreamRequest):
        return request
    inner = getattr(request, "_inner", None)  # a TLS request's own, when its transport opens it
    return inner if isinstance(inner, ProxiedStreamRequest) else None


async def attach(
    loop: asyncio.AbstractEventLoop,
    request: StreamRequest[Any],
    stream: AsyncStream[Any],
    first_byte: float | None,
    host: Host[Any],
    ended: Callable[[Outcome], None] | None = None,
) -> bool | Refused:
    """Attach ``request``'s connection to ``loop`` as ``stream`` (TLS: after its ClientHello,
    within ``first_byte`` seconds, handshake included; PROXY: after its header, see the module
    docstring); ``False`` if that failed: the socket is then closed, and a TLS or PROXY failure
    reported (a silent TLS client counted as slow). ``"refused"``: see :data:`Refused`.
    ``ended`` (the server's observers, if any) hears the outcome of a failure before the close
    (``cut``: cancelled)."""
    sock = request.socket
    proxied = opens_first(request)
    if proxied is not None:
        try:
            await read_proxy_header(loop, proxied)
        except (ProxyProtocolError, OSError) as exc:
            host.report(exc, request.peer)
            _close(sock, ended, outcome_of(exc))
            return False
        except BaseException:
            _close(sock, ended, "cut")
            raise
        if proxied is not request:  # TLS over PROXY: the TLS request names the client too
            _set_peer(request, proxied.peer)
        header = proxied.proxy
        if header is None:  # mode="optional", and the connection started without one
            stream.peer = proxied.peer
        else:
            stream.relayed(header, proxied.peer, proxied.upstream)
        if not host.admit(request, opened=True):
            return "refused"
    try:
        if isinstance(request, TLSStreamRequest):  # the loop's own TLS: the handshake here
            if first_byte is not None and not await _readable(loop, sock, first_byte):
                host.counters.add(SLOW)  # sent no ClientHello: as on a plain connection
                _close(sock, ended, "slow")
                return False
            if sock.family != socket.AF_UNIX:  # as the selector loop's TLS (and asyncio's TCP)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.connect_accepted_socket(
                lambda: stream,
                sock,
                ssl=request.context,
                ssl_handshake_timeout=request.handshake_timeout,
            )
        else:
            await loop.connect_accepted_socket(lambda: stream, sock)
    except (OSError, TimeoutError) as exc:  # reset before the loop saw it, or TLS failed
        outcome: Outcome = "disconnect"
        if isinstance(request, TLSStreamRequest):
            host.report(HandshakeError(_handshake_failure(exc)), request.peer)
            outcome = "handshake_failed"
        else:
            logger.debug("could not attach the connection from %r: %s", request.peer, exc)
        _close(sock, ended, outcome)
        return False
    except BaseException:
        _close(sock, ended, "cut")
        raise
    return True


def _close(sock: socket.socket, ended: Callable[[Outcome], None] | None, outcome: Outcome) -> None:
    """Close a connection that could not be attached, reporting ``outcome`` first."""
    if ended is not None:
        ended(outcome)
    sock.close()


async def read_proxy_header(loop: asyncio.AbstractEventLoop, request: ProxiedStreamRequest) -> None:
    """Read ``request``'s PROXY header without blocking the loop, as
    ``ProxiedStreamRequest.open`` does on a thread: :class:`ProxyProtocolError` if it fails."""
    reader = request.reader()
    if reader is None:
        return
    sock = request.socket
    sock.setblocking(False)
    ends = loop.time() + reader.timeout
    while True:
        left = ends - loop.time()
        if left <= 0 or not await _readable(loop, sock, left):
            raise reader.timed_out()
        try:
            data = sock.recv(reader.size, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not data:
            raise reader.ended()
        consume, done, header = reader.peeked(data)
        while consume > 0:  # peeked already: in the socket's buffer, received at once
            got = len(sock.recv(consume))
            if not got:
                raise reader.ended()
            consume -= got
        if done:
            request.opened(header)
            return


_set_peer = vars(StreamRequest)["peer"].__set__


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket, timeout: float) -> bool:
    """Wait until ``sock`` has input (or an end); ``False`` after ``timeout`` seconds."""
    fd = sock.fileno()
    ready: asyncio.Future[bool] = loop.create_future()

    def settle(value: bool) -> None:
        if not ready.done():
            ready.set_result(value)

    loop.add_reader(fd, settle, True)
    timer = loop.call_later(timeout, settle, False)
    try:
        return await ready
    finally:
        loop.remove_reader(fd)
        timer.cancel()


def _handshake_failure(exc: BaseException) -> str:
    """The reason a TLS handshake on the event loop failed, as the selector loop words it."""
    if isinstance(exc, TimeoutError) or "handshake is taking longer" in str(exc):
        return "timed out (timeouts.handshake)"
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    return str(reason or exc or type(exc).__name__)


def open_datagram(request: ProxiedDatagram, host: Host[Any]) -> bool:
    """Parse a datagram's PROXY header (in memory: on the loop) and apply the access policy
    that waited for it; ``False``: it ends here (counted finished and reported, or refused)."""
    try:
        request.open()
    except ProxyProtocolError as exc:
        host.report(exc, request.peer)
        host.counters.add(FINISHED)
        observer = host.observer
        if observer is not None:
            observer.request_ended(request, "proxy_refused", now := time.monotonic(), now)
        return False
    return host.admit(request, opened=True)
