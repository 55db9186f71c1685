"""``TLSAsyncStream``: an :class:`~typedserve.aio.stream.AsyncStream` over TLS."""

from __future__ import annotations

from typedserve.aio.stream import AsyncStream
from typedserve.requests import AddrT_co

__all__ = ["TLSAsyncStream"]


class TLSAsyncStream(AsyncStream[AddrT_co]):
    """An :class:`AsyncStream` over TLS (a ``TLSTransport``'s connection): TLS has no
    half-close, so the end of the peer's data ends the connection (replies already written
    are still flushed)."""

    __slots__ = ()

    def eof_received(self) -> bool:
        """Record the end of the peer's data; the TLS transport then closes."""
        super().eof_received()
        return False
