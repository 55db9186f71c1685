"""``AsyncStream``: one stream connection as an ``asyncio.Protocol`` with awaitable reads.

The stream *is* the protocol object the event loop calls, so a connection costs one transport,
this object and the handler's task: no ``StreamReader``/``StreamWriter`` pair on top. Incoming
bytes land in one ``bytearray``. A read that has to wait, awaited by the handler's own task,
*parks* it (see :mod:`typedserve.aio.resumable`), and ``data_received`` resumes the handler in
place, handing over the received ``bytes`` unchanged when nothing else is buffered (the common
case of request/response protocols): a message costs the handler no loop round trip, no future
and no task wake-up. A read awaited in any other task waits on a future as usual. ``write`` is
the transport's own ``write`` and ``drain`` returns a future that is already done while the
transport is not paused, so neither adds a frame. Writing, draining and closing live in the
base class :class:`~typedserve.aio.write_side.WriteSide`; this module is the read side.

Timeouts are enforced by the server's periodic sweep (see :mod:`typedserve.aio.table`), not by a
timer per read: a waiting read or drain records when it must give up (``_expires``), and the
sweep fails the waiter with ``TimeoutError`` once that time has passed.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Callable, Generator
from typing import Any, Final, cast

from typedserve.aio.resumable import PARK, ResumableTask
from typedserve.aio.write_side import NO_EXPIRY as _NO_EXPIRY
from typedserve.aio.write_side import WriteSide
from typedserve.errors import FramingError, StateError
from typedserve.proxy import ProxyHeader
from typedserve.requests import AddrT_co
from typedserve.tls.info import SERVER_NAME, TLSInfo

__all__ = ["DEFAULT_LIMIT", "AsyncStream"]

DEFAULT_LIMIT: Final = 64 * 1024
"""The default longest line :meth:`AsyncStream.readline` accepts, and half the read buffer."""

_HIGH_WATER: Final = 2 * DEFAULT_LIMIT  # pause reading from the socket above this many bytes


class AsyncStream(WriteSide[AddrT_co]):
    """A connected stream socket served on an event loop, as the request of an async handler.

    ``AddrT_co`` is the type of its addresses, as for a
    :class:`~typedserve.requests.StreamRequest`: name it (``AsyncStream[InetSockAddr]``) for a
    typed ``peer``; the ``PeerAddress`` union when not named.

    Reads: :meth:`read`, :meth:`readexactly`, :meth:`readuntil`, :meth:`readline` and
    ``async for line in stream`` (same meaning and exceptions as ``asyncio.StreamReader``).
    Writes: :meth:`write` buffers in the transport (sent at once when the socket can take it);
    await :meth:`drain` after large writes so a slow peer cannot make the buffer grow without
    bound. The server closes the connection after the handler's ``close`` (buffered writes are
    still delivered), so handler code need not call :meth:`close`.

    Timeouts: a read or drain that waits longer than the config's ``timeouts.idle``, or past
    the ``timeouts.request`` deadline, raises ``TimeoutError``; after the request deadline every
    read, write and drain raises it. A connection reset by the peer raises
    ``ConnectionResetError`` (or the socket error) from reads, writes and drains.

    Example::

        class Echo(AsyncHandler[AsyncStream]):
            async def handle(self) -> None:
                while data := await self.request.read(65536):
                    self.request.write(data)
                    await self.request.drain()
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "_lost",
        "_on_lost",
        "_parked",
        "_read_error",
        "_read_paused",
        "_relayed",
        "_runner",
        "_waiter",
        "_want",
        "deadline",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
        peer: AddrT_co,
        *,
        idle: float | None = None,
        deadline: float | None = None,
    ) -> None:
        self.peer: AddrT_co = peer
        """The remote address, as ``accept()`` returned it."""
        self.deadline: float | None = deadline
        """The ``time.monotonic()`` value by which the request must end (``timeouts.request``)."""
        self._loop = loop
        self._idle = idle
        self._on_lost: Callable[[AsyncStream], object] | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._read_error: BaseException | None = None
        self._write_error: BaseException | None = None
        self._waiter: asyncio.Future[bytes] | None = None  # a read waiting in another task
        self._runner: ResumableTask | None = None  # the task serving this stream
        self._parked = False  # a read of the runner's coroutine is parked (waits in place)
        self._done = ready
        self._ready = self._drain_open  # what drain is while not paused
        self.write = self._write_unconnected
        self.drain = self._ready
        self._want = 0  # >0: the pending read is resolved with up to this many bytes
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._expires = _NO_EXPIRY  # monotonic time at which the current wait times out
        self._expired = ""  # the name of the timeout that ``_expires`` stands for

    # -- reading -------------------------------------------------------------------------------

    @types.coroutine
    def read(self, n: int = -1) -> Generator[object, bytes | None, bytes]:
        """Up to ``n`` bytes as soon as any are available; ``b""`` at end of stream.

        ``n=-1`` reads until the end of the stream.
        """
        # A generator-based coroutine (the fast path parks without a frame of its own):
        # ``await stream.read(n)`` is bytes. It yields to the task that runs it (object), and
        # is sent None by asyncio, or the bytes received when it is resumed from a park.
        if self._read_error is not None:
            raise self._read_error
        if n > 0 and not self._buffer and not self._eof:
            # The common case of a request/response protocol: the read is resumed with the
            # next chunk itself (see data_received). Awaited by the stream's own task, it parks
            # right here (the checks are _wait's, minus those that cannot fail in that case).
            runner = self._runner
            if (
                runner is not None
                and runner.stepping
                and self._waiter is None
                and self._idle is None
            ):
                self._want = n
                self._parked = True
                try:
                    data: bytes = yield PARK  # type: ignore[assignment]  # see above: bytes
                finally:
                    self._parked = False
                return data
            return (yield from self._wait(n))
        available: bytes = yield from self._read_available(n)
        return available

    async def _read_available(self, n: int) -> bytes:
        if n < 0:
            while not self._eof:
                await self._wait(0)
            return self._take(len(self._buffer))
        if not self._buffer:
            return b"" if n == 0 or self._eof else await self._wait(n)
        return self._take(min(n, len(self._buffer)))

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ``asyncio.IncompleteReadError`` if the stream ends first."""
        if n < 0:
            raise ValueError("readexactly() needs a non-negative size")
        if self._read_error is not None:
            raise self._read_error
        while len(self._buffer) < n:
            if self._eof:
                partial = self._take(len(self._buffer))
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait(0)
        return self._take(n)

    async def readuntil(self, separator: bytes = b"\n", *, limit: int = DEFAULT_LIMIT) -> bytes:
        """Bytes up to and including ``separator``.

        Raises ``asyncio.IncompleteReadError`` (with the partial data, which is consumed) if the
        stream ends first, and ``asyncio.LimitOverrunError`` (consuming nothing) if ``limit``
        bytes arrive without the separator.
        """
        if not separator:
            raise ValueError("the separator must not be empty")
        if self._read_error is not None:
            raise self._read_error
        buffer, start = self._buffer, 0
        while True:
            found = buffer.find(separator, start)
            if found >= 0:
                end = found + len(separator)
                if end > limit:
                    raise asyncio.LimitOverrunError("separator found after the limit", found)
                return self._take(end)
            if len(buffer) > limit:
                raise asyncio.LimitOverrunError("no separator within the limit", limit)
            if self._eof:
                raise asyncio.IncompleteReadError(self._take(len(buffer)), None)
            start = max(0, len(buffer) - len(separator) + 1)
            await self._wait(0)

    async def readline(self, *, limit: int = DEFAULT_LIMIT) -> bytes:
        """One line including ``b"\\n"``, the rest of the stream at its end, or ``b""``.

        Raises :class:`~typedserve.errors.FramingError` (a ``ValueError``, as
        ``asyncio.StreamReader`` raises) and discards the buffered data for a line longer than
        ``limit``.
        """
        try:
            return await self.readuntil(b"\n", limit=limit)
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError:
            size = len(self._take(len(self._buffer)))
            raise FramingError(
                f"a line from {self.peer!r} is longer than {limit} bytes", limit=limit, size=size
            ) from None

    def at_eof(self) -> bool:
        """Whether the peer has finished sending and everything received has been read."""
        return self._eof and not self._buffer

    def __aiter__(self) -> AsyncStream:
        """Iterate over lines (see :meth:`readline`) until the end of the stream."""
        return self

    async def __anext__(self) -> bytes:
        """The next line; ``StopAsyncIteration`` at the end of the stream."""
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def _take(self, n: int) -> bytes:
        buffer = self._buffer
        if n >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:n])
            del buffer[:n]
        if self._read_paused and len(buffer) <= DEFAULT_LIMIT and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()
        return data

    @types.coroutine
    def _wait(self, want: int) -> Generator[Any, Any, bytes]:
        """Wait for the next ``data_received`` (or EOF, loss, timeout).

        With ``want > 0`` (a :meth:`read` into an empty buffer) it returns the data itself, at
        most ``want`` bytes; otherwise ``b""`` once more data is buffered. Awaited by the
        coroutine of the stream's own task it parks, and ``data_received`` resumes it in place
        (see :mod:`typedserve.aio.resumable`); awaited in any other task it waits on a future.
        """
        waiter = self._waiter
        if self._parked or (waiter is not None and not waiter.done()):
            raise StateError(f"another task is already reading from {self.peer!r}")
        if self._read_paused:  # the reader needs more than the high-water mark: let it in
            self._read_paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        if self._idle is not None and self._expires == _NO_EXPIRY:
            self._expires, self._expired = time.monotonic() + self._idle, "idle"
        if self._lost:
            return b""
        self._want = want
        runner = self._runner
        if runner is not None and runner.stepping:
            self._parked = True
            try:
                data: bytes = yield PARK
            finally:
                self._parked = False
            return data
        waiter = self._waiter = self._loop.create_future()
        return (yield from waiter)

    # -- asyncio.Protocol callbacks (run by the event loop) ------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Attach the transport (called once by the event loop)."""
        self._transport = cast(asyncio.Transport, transport)
        if self._write_error is None:
            self.write = self._transport.write

    def data_received(self, data: bytes) -> None:
        """Hand ``data`` to a waiting :meth:`read`, or buffer it and wake the reader."""
        if self._parked and len(data) <= self._want:
            # The common case (a read waits on an empty buffer): resume it with the data itself.
            runner = self._runner
            assert runner is not None
            self._expires = _NO_EXPIRY
            if runner.resume(data):
                return
        buffer = self._buffer
        waiter = self._waiter
        if self._parked:  # resume the reader, with the buffer as it would find it later
            runner = self._runner
            assert runner is not None
            want = self._want
            self._expires = _NO_EXPIRY
            if not want:
                buffer += data
                runner.resume(b"")
            elif len(data) <= want:
                if runner.resume(data):
                    return
                buffer += data  # the parked reader was cancelled
            else:
                buffer += memoryview(data)[want:]
                if not runner.resume(data[:want]):
                    buffer[:0] = data[:want]
        elif waiter is None:
            buffer += data
        else:
            self._waiter = None
            self._expires = _NO_EXPIRY
            want = self._want
            if waiter.done():  # the reader was cancelled
                buffer += data
            elif not want:
                buffer += data
                waiter.set_result(b"")
            elif len(data) <= want:  # the buffer is empty while a read waits
                waiter.set_result(data)
                return
            else:
                waiter.set_result(data[:want])
                buffer += memoryview(data)[want:]
        if len(buffer) > _HIGH_WATER and not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        """Record the end of the peer's data; keep the connection open for replies."""
        self._eof = True
        self._wake(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """Record the loss: pending reads end (or raise ``exc``), writes and drains raise."""
        self._lost = self._eof = True
        if exc is not None and self._read_error is None:
            self._read_error = exc
        write_error = self._write_error
        if write_error is None:
            write_error = exc or ConnectionResetError(f"the connection to {self.peer!r} is closed")
            self._fail_writes(write_error)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(write_error)
        if self._on_lost is not None:
            self._on_lost(self)
        self._wake(self._read_error)  # a parked reader may run at once
        # Last: forget the transport. It refers back to this stream (a TLS transport through
        # its SSL protocol), and that cycle would keep the transport and its buffers (256 KiB
        # per TLS connection) alive until the cyclic GC ran: memory held for nothing, and
        # glibc's malloc, never seeing a large block freed, kept mmapping each TLS read (uvloop
        # TLS echo 2.7x slower than with the cycle broken).
        self._transport = None

    # -- timeouts (called by the server's sweep) -------------------------------------------------

    def _wake(self, exc: BaseException | None) -> None:
        if self._parked:
            runner = self._runner
            assert runner is not None
            if exc is None:
                runner.resume(b"")
            else:
                runner.throw(exc)
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if waiter.done():
                pass
            elif exc is None:
                waiter.set_result(b"")
            else:
                waiter.set_exception(exc)

    def _expire_if_due(self, now: float) -> None:
        """Fail a wait whose timeout has passed; after the request deadline, fail every call."""
        deadline = self.deadline
        if deadline is not None and now >= deadline and self._write_error is None:
            exc = TimeoutError("the request deadline (timeouts.request) has passed")
            self._read_error = exc
            self._fail_writes(exc)
        elif self._expires != _NO_EXPIRY and now >= self._expires:
            exc = TimeoutError(
                f"nothing happened on the connection within timeouts.{self._expired}"
            )
        else:
            return
        self._expires = _NO_EXPIRY
        self._wake(exc)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def _wait_first_byte(self, expires: float) -> bool:
        """Wait until the peer sent something or closed; ``False`` if ``expires`` passed first."""
        if self._buffer or self._eof:
            return True
        self._expires, self._expired = expires, "first_byte"
        try:
            await self._wait(0)
        except TimeoutError:
            return False
        except OSError:
            pass  # reset before the first byte: the handler sees the error on its first read
        return True

    @property
    def tls(self) -> TLSInfo | None:
        """What TLS negotiated on this connection (a ``TLSTransport``'s), ``None`` if plain."""
        transport = self._transport
        conn = None if transport is None else transport.get_extra_info("ssl_object")
        return None if conn is None else TLSInfo.of(conn, getattr(conn, SERVER_NAME, None))

    @property
    def proxy(self) -> ProxyHeader | None:
        """The PROXY protocol header the connection began with, ``None`` if direct."""
        relayed: tuple[ProxyHeader, AddrT_co] | None = getattr(self, "_relayed", None)
        return None if relayed is None else relayed[0]

    @property
    def upstream(self) -> AddrT_co:
        """The real peer: :attr:`peer` if direct, else the load balancer."""
        relayed: tuple[ProxyHeader, AddrT_co] | None = getattr(self, "_relayed", None)
        return self.peer if relayed is None else relayed[1]

    def relayed(self, header: ProxyHeader, client: object, upstream: object) -> None:
        """Record the PROXY ``header`` read before attaching (the server does, once): ``client``
        is the :attr:`peer`, ``upstream`` the balancer. A direct connection pays nothing."""
        self.peer = cast("AddrT_co", client)  # addresses of the transport's own kind
        self._relayed = (header, upstream)

    def __repr__(self) -> str:
        state = "closed" if self._lost else ("eof" if self._eof else "open")
        return f"<AsyncStream {self.peer!r} {state} buffered={len(self._buffer)}>"
