"""``RecvIntoStream``: an :class:`~typedserve.aio.stream.AsyncStream` the stdlib's selector
loop reads into one buffer shared by the request table."""

from __future__ import annotations

import asyncio

from typedserve.aio.stream import AsyncStream
from typedserve.requests import AddrT_co

__all__ = ["RecvIntoStream"]


class RecvIntoStream(AsyncStream[AddrT_co], asyncio.BufferedProtocol):
    """An :class:`AsyncStream` that the loop reads into a buffer shared by the whole table.

    For the stdlib's selector loop, whose transport otherwise allocates a fresh 256 KiB
    ``bytes`` for every ``recv`` and shrinks it to the size received: past glibc's mmap
    threshold, that is an ``mmap``, an ``mremap`` and an ``munmap`` per message. Here the
    transport ``recv_into``\\ s ``recv_buffer`` and the stream copies out just the bytes received
    (so what a read returns is still the caller's own ``bytes``). One loop thread uses the
    buffer, one read at a time, so a table shares one. uvloop reads into its own buffer and
    needs none of this.
    """

    __slots__ = ("_recv_buffer",)

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
        peer: AddrT_co,
        *,
        recv_buffer: memoryview,
        idle: float | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__(loop, ready, peer, idle=idle, deadline=deadline)
        self._recv_buffer = recv_buffer

    def get_buffer(self, sizehint: int) -> memoryview:
        """The shared buffer the transport receives into (called by the event loop)."""
        return self._recv_buffer

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived in the shared buffer: take a copy of them as ``data_received``."""
        self.data_received(bytes(self._recv_buffer[:nbytes]))
