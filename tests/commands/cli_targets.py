"""Handlers and factories the command-line tests serve (``tests.commands.cli_targets:NAME``).

The stream handlers greet each connection with ``ready`` once their handler runs, so a test
knows the request is in flight (not waiting in the backlog) before it signals the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from typing import Any

from typedserve import Server, ServerConfig, TCPTransport
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.config import InetAddress
from typedserve.handlers import Handler, StreamHandler
from typedserve.host import LoopHost
from typedserve.requests import Datagram, StreamRequest
from typedserve.strategies import Inline

READY = b"ready\n"


class Greeter(StreamHandler):
    """Say ``ready``, then echo lines until the client closes (or the connection is cut)."""

    speaks_first = True  # it greets: clients wait for its READY line

    def handle(self) -> None:
        """Greet, then copy lines back."""
        self.wfile.write(READY)
        for line in self.rfile:
            self.wfile.write(line)


class Sleeper(StreamHandler):
    """Say ``ready``, then work far longer than any grace without touching the connection."""

    speaks_first = True  # it greets: clients wait for its READY line

    def handle(self) -> None:
        """Greet, then sleep (a cut connection does not wake it)."""
        self.wfile.write(READY)
        time.sleep(3600)


class Stubborn(StreamHandler):
    """Say ``ready``, then sleep forever, swallowing every exception (even the stop's)."""

    speaks_first = True  # it greets: clients wait for its READY line

    def handle(self) -> None:
        """Greet, then never return."""
        self.wfile.write(READY)
        while True:
            with contextlib.suppress(BaseException):
                time.sleep(3600)


class AsyncGreeter(AsyncHandler[AsyncStream]):
    """:class:`Greeter` as an async handler."""

    speaks_first = True  # it greets: clients wait for its READY line

    async def handle(self) -> None:
        """Greet, then copy lines back."""
        self.request.write(READY)
        await self.request.drain()
        async for line in self.request:
            self.request.write(line)
            await self.request.drain()


class AsyncBlocker(AsyncHandler[AsyncStream]):
    """Say ``ready``, then block the event loop (a handler bug the stop must survive)."""

    speaks_first = True  # it greets: clients wait for its READY line

    async def handle(self) -> None:
        """Greet, then sleep without awaiting."""
        self.request.write(READY)
        await self.request.drain()
        await asyncio.sleep(0)
        time.sleep(3600)


class AsyncDatagramEcho(AsyncHandler[Datagram]):
    """Answer each datagram with its own bytes, asynchronously."""

    async def handle(self) -> None:
        """Reply with the payload."""
        self.request.reply(self.request.payload)


class AnyRequestEcho(AsyncHandler[Any]):
    """An async handler that does not name its request type: ``--udp`` decides."""

    speaks_first = True  # it greets: clients wait for its READY line

    async def handle(self) -> None:
        """Reply to a datagram with its payload (a stream gets a greeting)."""
        if isinstance(self.request, Datagram):
            self.request.reply(self.request.payload)
        else:
            self.request.write(READY)


class AsyncByMistake(StreamHandler):
    """A synchronous handler whose ``handle`` was written ``async def`` by mistake."""

    async def handle(self) -> None:  # type: ignore[override]  # the mistake under test
        """Would never run: the synchronous server does not await it."""


class SyncByMistake(AsyncHandler[AsyncStream]):
    """An async handler whose ``handle`` was written without ``async`` by mistake."""

    def handle(self) -> None:  # type: ignore[override]  # the mistake under test
        """Would return no awaitable to the event loop."""


class Tally(StreamHandler[Counter[str]]):
    """A handler that needs shared state, which only a factory can give it."""

    def handle(self) -> None:
        """Count the connection."""
        self.state["connections"] += 1


class Custom(Datagram):
    """A request type no transport of the command line produces."""


class CustomHandler(Handler[Custom]):
    """A handler for :class:`Custom` requests."""

    def handle(self) -> None:
        """Do nothing."""


class NotAHandler:
    """A class that is neither a handler nor a server factory."""


NOT_CALLABLE = 42
"""A module attribute that is neither a handler class nor a factory."""


def failing_factory(config: ServerConfig) -> Server[Any, Any]:
    """A factory whose own code fails."""
    raise RuntimeError("the database is not reachable")


def no_server_factory(config: ServerConfig) -> object:
    """A factory that returns something other than a server."""
    return "not a server"


def two_argument_factory(config: ServerConfig, store: object) -> Server[Any, Any]:
    """A factory that needs more than the config."""
    raise AssertionError("never called")


class BrokenLoop(Inline):
    """A strategy whose loop fails as soon as it starts."""

    def run(self, host: LoopHost[Any]) -> None:
        """Fail."""
        raise RuntimeError("the loop broke")


def servers_one_broken() -> list[Server[StreamRequest, None]]:
    """Two servers for ``run_until_signal``: the second one's loop fails at once."""
    config = ServerConfig(address=InetAddress(host="127.0.0.1", port=0))
    good = Server(config=config, transport=TCPTransport(), handler=Greeter, strategy=Inline())
    broken = Server(config=config, transport=TCPTransport(), handler=Greeter, strategy=BrokenLoop())
    return [good, broken]


def block_on_import() -> None:
    """Say so, then wait forever: imported from :mod:`tests.commands.blocking_import`."""
    print("importing: waiting forever", flush=True)
    threading.Event().wait()
