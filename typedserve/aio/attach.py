"""Attaching an accepted connection to the event loop, for the AsyncIO request table.

:func:`attach` hands the socket to ``loop.connect_accepted_socket`` with the table's stream as
its protocol; for a :class:`~typedserve.transports.tls.TLSStreamRequest` it first waits (with no
handshake, like the selector loop's first-byte wait) for the ClientHello, then lets the loop run
its own non-blocking TLS handshake within ``timeouts.handshake``. A failed handshake is reported
as a :class:`~typedserve.errors.HandshakeError` (counted, one INFO line), as the selector loop's
serving threads report theirs. :func:`has_input` is the table's one-peek check for input that is
already there.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from typedserve.aio.stream import AsyncStream
from typedserve.counters import SLOW
from typedserve.errors import HandshakeError
from typedserve.host import Host
from typedserve.requests import StreamRequest
from typedserve.transports.tls import TLSStreamRequest

__all__ = ["attach", "has_input"]

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


async def attach(
    loop: asyncio.AbstractEventLoop,
    request: StreamRequest[Any],
    stream: AsyncStream[Any],
    first_byte: float | None,
    host: Host[Any],
) -> bool:
    """Attach ``request``'s connection to ``loop`` as ``stream`` (TLS: after its ClientHello,
    within ``first_byte`` seconds, handshake included); ``False`` if that failed: the socket is
    then closed, and a TLS failure reported (a silent TLS client counted as slow)."""
    sock = request.socket
    try:
        if isinstance(request, TLSStreamRequest):  # the loop's own TLS: the handshake here
            if first_byte is not None and not await _readable(loop, sock, first_byte):
                host.counters.add(SLOW)  # sent no ClientHello: as on a plain connection
                sock.close()
                return False
            await loop.connect_accepted_socket(
                lambda: stream,
                sock,
                ssl=request.context,
                ssl_handshake_timeout=request.handshake_timeout,
            )
        else:
            await loop.connect_accepted_socket(lambda: stream, sock)
    except (OSError, TimeoutError) as exc:  # reset before the loop saw it, or TLS failed
        if isinstance(request, TLSStreamRequest):
            host.report(HandshakeError(_handshake_failure(exc)), request.peer)
        else:
            logger.debug("could not attach the connection from %r: %s", request.peer, exc)
        sock.close()
        return False
    except BaseException:
        sock.close()
        raise
    return True


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
