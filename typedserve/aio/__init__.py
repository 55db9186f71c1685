"""Async handlers and the stream they read, served by the ``AsyncIO`` strategy.

::

    from typedserve import Server, ServerConfig, TCPTransport
    from typedserve.aio import AsyncHandler, AsyncStream
    from typedserve.strategies import AsyncIO

    class Echo(AsyncHandler[AsyncStream]):
        async def handle(self) -> None:
            async for line in self.request:
                self.request.write(line)

    with Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo,
                strategy=AsyncIO()) as server:
        server.serve_forever()
"""

from typedserve.aio.handlers import AsyncHandler, AsyncHandlerFactory, AsyncHandlerLike
from typedserve.aio.loops import LoopName, uvloop_available
from typedserve.aio.stream import DEFAULT_LIMIT, AsyncStream

__all__ = [
    "DEFAULT_LIMIT",
    "AsyncHandler",
    "AsyncHandlerFactory",
    "AsyncHandlerLike",
    "AsyncStream",
    "LoopName",
    "uvloop_available",
]
