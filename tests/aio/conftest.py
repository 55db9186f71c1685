"""Fixtures of the AsyncIO suite: a server of async handlers on each event loop.

Every test that takes ``loop_name`` runs on the stdlib loop and, when uvloop is installed, on
uvloop too. ``aio_server`` builds a bound server (closed at teardown) for a transport case of
the shared matrix (``stream_case`` / ``datagram_case`` from ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from typedserve import Server, ServerConfig
from typedserve.aio import uvloop_available
from typedserve.aio.loops import LoopName
from typedserve.strategies import AsyncIO

if TYPE_CHECKING:
    from tests.conftest import TransportCase

LOOPS: list[LoopName] = ["asyncio", "uvloop"] if uvloop_available() else ["asyncio"]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> LoopName:
    """Each event loop implementation available here."""
    name: LoopName = request.param
    return name


class MakeAioServer(Protocol):
    """The ``aio_server`` fixture: build and bind an AsyncIO server for a transport case."""

    def __call__(
        self, case: TransportCase, handler: Any, *, state: object = None, **config: Any
    ) -> Server[Any, Any]: ...


@pytest.fixture
def aio_server(short_tmp_dir: Path, loop_name: LoopName) -> Iterator[MakeAioServer]:
    """A factory of bound AsyncIO servers on ``loop_name``; each is closed at teardown.

    Keyword arguments are ``ServerConfig`` fields.
    """
    servers: list[Server[Any, Any]] = []

    def make(
        case: TransportCase, handler: Any, *, state: object = None, **config: Any
    ) -> Server[Any, Any]:
        server: Server[Any, Any] = Server(
            config=ServerConfig(address=case.address(short_tmp_dir), **config),
            transport=case.transport(),
            handler=handler,
            state=state,
            strategy=AsyncIO(loop=loop_name),
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
