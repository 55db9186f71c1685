"""Async handlers: the user's coroutine code for one request, served by the ``AsyncIO`` strategy.

Same life cycle as the synchronous :class:`~typedserve.handlers.Handler`, with every step a
coroutine run on the server's event loop::

    handler = HandlerClass(request, context)
    try:
        await handler.setup()
        await handler.handle()
        await handler.finish()     # only when setup and handle returned normally
    finally:
        await handler.close()      # always

The request is an :class:`~typedserve.aio.stream.AsyncStream` for stream transports (TCP,
Unix stream) and a :class:`~typedserve.requests.Datagram` for datagram transports (UDP, Unix
datagram). An exception from any step goes to the server's error policy (logged with the
peer by default) and the server goes on. Handler code must not block the loop: use ``await``
for I/O and ``asyncio.to_thread`` for blocking calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeAlias

from typing_extensions import TypeVar

from typedserve.context import ServerContext, StateT

__all__ = ["AsyncHandler", "AsyncHandlerFactory", "AsyncHandlerLike"]

RequestT = TypeVar("RequestT")
"""An async handler's request type: ``AsyncStream`` or ``Datagram``."""


class AsyncHandlerLike(Protocol):
    """What the ``AsyncIO`` strategy awaits on the object an async handler factory returns."""

    async def setup(self) -> None:
        """Prepare for :meth:`handle`."""

    async def handle(self) -> None:
        """Serve the request."""

    async def finish(self) -> None:
        """Complete the response after a successful :meth:`handle`."""

    async def close(self) -> None:
        """Release resources; runs after every request, failed or not."""


AsyncHandlerFactory: TypeAlias = Callable[[RequestT, ServerContext[StateT]], AsyncHandlerLike]
"""Builds the async handler for one request; an :class:`AsyncHandler` subclass is one."""


class AsyncHandler(ABC, Generic[RequestT, StateT]):
    """Base class of async handlers for requests of type ``RequestT``, with shared state ``StateT``.

    ``RequestT`` is :class:`~typedserve.aio.stream.AsyncStream` or
    :class:`~typedserve.requests.Datagram`. Implement ``async def handle``. One instance serves
    one request, on the server's event loop thread; ``state`` is shared by every request on that
    one thread, so it needs no lock (but must not be awaited on half-updated).

    Example::

        class Echo(AsyncHandler[AsyncStream]):
            async def handle(self) -> None:
                async for line in self.request:
                    self.request.write(line)

    ``speaks_first``: the protocol starts with the server talking (or the handler acts before
    the client sends anything), so it starts at once instead of after the client's first byte
    (``timeouts.first_byte``).
    """

    speaks_first: ClassVar[bool] = False

    def __init__(self, request: RequestT, context: ServerContext[StateT]) -> None:
        self.request: RequestT = request
        self.context: ServerContext[StateT] = context

    @property
    def state(self) -> StateT:
        """The shared state object injected into the server (``Server(state=...)``)."""
        return self.context.state

    async def setup(self) -> None:
        """Awaited before :meth:`handle`. The default does nothing."""

    @abstractmethod
    async def handle(self) -> None:
        """Serve the request: all the work happens here."""

    async def finish(self) -> None:
        """Awaited after :meth:`handle` returned normally. The default does nothing."""

    async def close(self) -> None:
        """Awaited last, always, even after an error or a cancel. The default does nothing."""
