"""``TLSAsyncStream``: an :class:`~typedserve.aio.stream.AsyncStream` over TLS."""

from __future__ import annotations

import asyncio
import ssl

from typedserve.aio.stream import AsyncStream
from typedserve.requests import AddrT_co
from typedserve.tls.info import SERVER_NAME, TLSInfo

__all__ = ["TLSAsyncStream"]


class TLSAsyncStream(AsyncStream[AddrT_co]):
    """An :class:`AsyncStream` over TLS (a ``TLSTransport``'s connection): TLS has no
    half-close, so the end of the peer's data ends the connection (replies already written
    are still flushed)."""

    __slots__ = ("_ssl",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the connection's SSL object: what TLS negotiated outlives the transport."""
        self._ssl: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        super().connection_made(transport)

    @property
    def tls(self) -> TLSInfo | None:
        """What TLS negotiated on this connection (also once it is closed)."""
        conn = getattr(self, "_ssl", None)
        return None if conn is None else TLSInfo.of(conn, getattr(conn, SERVER_NAME, None))

    def eof_received(self) -> bool:
        """Record the end of the peer's data; the TLS transport then closes."""
        super().eof_received()
        return False
