"""Shared fixtures of the core suite: the transport x strategy matrix and a server factory.

Every behaviour test that can run on several transports or strategies takes the
``transport_case`` (or ``stream_case`` / ``datagram_case``) and ``strategy_name`` fixtures
instead of copying itself per combination. Strategies are discovered from
``typedserve.strategies.__all__``: a new strategy joins every parametrised test by being
exported there (add a factory to ``_STRATEGY_ARGS`` if it needs constructor arguments).

Test modules import the types below only under ``TYPE_CHECKING`` (pytest imports conftest
files itself); the values reach them through fixtures.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest

import typedserve.strategies
from typedserve import (
    FDAddress,
    InetAddress,
    Server,
    ServerConfig,
    TCPTransport,
    UDPTransport,
    UnixAddress,
    UnixDatagramTransport,
    UnixStreamTransport,
)
from typedserve.config import Address
from typedserve.handlers import HandlerFactory
from typedserve.policies import AccessPolicy, ErrorPolicy
from typedserve.strategies import Strategy
from typedserve.testing.plugin import short_tmp_dir as short_tmp_dir
from typedserve.testing.plugin import typedserve_leak_check as typedserve_leak_check
from typedserve.testing.plugin import unix_socket_path as unix_socket_path
from typedserve.transports import Transport

# The plugin's fixtures, re-exported: the pytest11 entry point registers the plugin only when
# typedserve is installed, and registering it here as well would clash with that.


def pytest_configure(config: pytest.Config) -> None:
    """Register this suite's markers."""
    config.addinivalue_line(
        "markers",
        "strategy_xfail(name, reason): a known bug of one strategy; that parametrisation is "
        "a strict xfail (it must fail until the bug is fixed)",
    )


# Fixtures naming one strategy (``strategy_case`` of tests/strategies: its str() is the name).
_STRATEGY_PARAMS = ("strategy_name", "in_process_strategy_name", "strategy_case")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply ``strategy_xfail`` marks to the parametrisations running the named strategy."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for mark in item.iter_markers("strategy_xfail"):
            if mark.args[0] in (str(params[name]) for name in _STRATEGY_PARAMS if name in params):
                item.add_marker(pytest.mark.xfail(strict=True, reason=mark.kwargs["reason"]))


# -- strategies ----------------------------------------------------------------------------------

_STRATEGY_ARGS: dict[str, Callable[[], Strategy]] = {
    # Strategies whose constructor needs arguments: name -> factory with test-sized arguments.
}

_OUT_OF_PROCESS = frozenset({"ForkPerRequest", "Prefork"})
"""Strategies whose handlers run in another process: tests that observe handler side effects
in this process (events, shared state, caplog) skip them."""


def _discover_strategies() -> dict[str, Callable[[], Strategy]]:
    found: dict[str, Callable[[], Strategy]] = {}
    for name in typedserve.strategies.__all__:
        cls = getattr(typedserve.strategies, name)
        if name == "Strategy" or not isinstance(cls, type):
            continue
        if not hasattr(cls, "submit"):  # owns the loop and serves async handlers (tests/aio)
            continue
        found[name] = _STRATEGY_ARGS.get(name, cls)
    return found


STRATEGIES = _discover_strategies()
IN_PROCESS_STRATEGIES = sorted(set(STRATEGIES) - _OUT_OF_PROCESS)


@pytest.fixture(params=sorted(STRATEGIES))
def strategy_name(request: pytest.FixtureRequest) -> str:
    """The name of each strategy exported by ``typedserve.strategies``."""
    name: str = request.param
    return name


@pytest.fixture
def strategy_in_process(strategy_name: str) -> bool:
    """Whether the ``strategy_name`` strategy runs handlers in this process."""
    return strategy_name not in _OUT_OF_PROCESS


@pytest.fixture(params=IN_PROCESS_STRATEGIES)
def in_process_strategy_name(request: pytest.FixtureRequest) -> str:
    """Each strategy whose handlers run in this process (threads or the loop thread)."""
    name: str = request.param
    return name


# -- transports ----------------------------------------------------------------------------------

_abstract_names = itertools.count()


def _abstract(tag: str) -> str:
    return f"@typedserve-test-{os.getpid()}-{tag}-{next(_abstract_names)}"


def _inherited(family: int, socktype: int) -> FDAddress:
    """A bound socket whose fd is handed over to the transport (which then owns it).

    A Unix one gets an abstract name: the transport did not create a file, so it would
    rightly not unlink one.
    """
    sock = socket.socket(family, socktype)
    if family == socket.AF_UNIX:
        sock.bind(_abstract("inherited").replace("@", "\0", 1))
    else:
        sock.bind(("127.0.0.1", 0))
    return FDAddress(fd=sock.detach())


@dataclass(frozen=True)
class TransportCase:
    """One way to listen: a transport class and a factory for a matching address.

    ``address(tmp)`` may create resources (an inherited socket); ``tmp`` is a short directory
    for Unix socket files.
    """

    name: str
    kind: Literal["stream", "datagram"]
    transport: Callable[[], Transport[Any]]
    address: Callable[[Path], Address]
    family: int

    def __str__(self) -> str:
        return self.name


TRANSPORT_CASES = [
    TransportCase("tcp4", "stream", TCPTransport, lambda _: InetAddress(), socket.AF_INET),
    TransportCase(
        "tcp6", "stream", TCPTransport, lambda _: InetAddress(host="::1"), socket.AF_INET6
    ),
    TransportCase(
        "tcp-dual",
        "stream",
        TCPTransport,
        lambda _: InetAddress(host="::", dual_stack=True),
        socket.AF_INET6,
    ),
    TransportCase("udp4", "datagram", UDPTransport, lambda _: InetAddress(), socket.AF_INET),
    TransportCase(
        "udp6", "datagram", UDPTransport, lambda _: InetAddress(host="::1"), socket.AF_INET6
    ),
    TransportCase(
        "unix-stream",
        "stream",
        UnixStreamTransport,
        lambda tmp: UnixAddress(path=str(tmp / "s.sock")),
        socket.AF_UNIX,
    ),
    TransportCase(
        "unix-dgram",
        "datagram",
        UnixDatagramTransport,
        lambda tmp: UnixAddress(path=str(tmp / "d.sock")),
        socket.AF_UNIX,
    ),
    TransportCase(
        "unix-abstract-stream",
        "stream",
        UnixStreamTransport,
        lambda _: UnixAddress(path=_abstract("s")),
        socket.AF_UNIX,
    ),
    TransportCase(
        "unix-abstract-dgram",
        "datagram",
        UnixDatagramTransport,
        lambda _: UnixAddress(path=_abstract("d")),
        socket.AF_UNIX,
    ),
    TransportCase(
        "fd-tcp",
        "stream",
        TCPTransport,
        lambda _: _inherited(socket.AF_INET, socket.SOCK_STREAM),
        socket.AF_INET,
    ),
    TransportCase(
        "fd-udp",
        "datagram",
        UDPTransport,
        lambda _: _inherited(socket.AF_INET, socket.SOCK_DGRAM),
        socket.AF_INET,
    ),
    TransportCase(
        "fd-unix-stream",
        "stream",
        UnixStreamTransport,
        lambda _: _inherited(socket.AF_UNIX, socket.SOCK_STREAM),
        socket.AF_UNIX,
    ),
]
STREAM_CASES = [case for case in TRANSPORT_CASES if case.kind == "stream"]
DATAGRAM_CASES = [case for case in TRANSPORT_CASES if case.kind == "datagram"]


@pytest.fixture(params=TRANSPORT_CASES, ids=str)
def transport_case(request: pytest.FixtureRequest) -> TransportCase:
    """Every transport x address kind."""
    case: TransportCase = request.param
    return case


@pytest.fixture(params=STREAM_CASES, ids=str)
def stream_case(request: pytest.FixtureRequest) -> TransportCase:
    """Every stream transport x address kind."""
    case: TransportCase = request.param
    return case


@pytest.fixture(params=DATAGRAM_CASES, ids=str)
def datagram_case(request: pytest.FixtureRequest) -> TransportCase:
    """Every datagram transport x address kind."""
    case: TransportCase = request.param
    return case


def _diagonal(cases: list[TransportCase]) -> list[tuple[TransportCase, str]]:
    """Every case with ``Inline``, and every other in-process strategy with the first case."""
    pairs = [(case, "Inline") for case in cases]
    return pairs + [(cases[0], name) for name in IN_PROCESS_STRATEGIES if name != "Inline"]


@pytest.fixture(params=_diagonal(STREAM_CASES), ids=lambda pair: f"{pair[0]}-{pair[1]}")
def stream_case_and_strategy(request: pytest.FixtureRequest) -> tuple[TransportCase, str]:
    """A cheaper matrix for slow tests: each stream case once, each in-process strategy once."""
    pair: tuple[TransportCase, str] = request.param
    return pair


@pytest.fixture
def cases() -> dict[str, TransportCase]:
    """Every transport case by name, for tests that need one particular kind."""
    return {case.name: case for case in TRANSPORT_CASES}


# -- building servers ----------------------------------------------------------------------------


class MakeServer(Protocol):
    """The ``make_server`` fixture: build (and bind) a server, closed at teardown."""

    def __call__(
        self,
        case: TransportCase,
        handler: HandlerFactory[Any, Any],
        *,
        strategy: str | Strategy | None = None,
        state: object = None,
        verify_request: AccessPolicy[Any] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        **config: Any,
    ) -> Server[Any, Any]: ...


@pytest.fixture
def make_server(short_tmp_dir: Path) -> Iterator[MakeServer]:
    """A factory of bound servers for a transport case; each is closed at teardown.

    ``strategy`` is a name from the strategy list (or an instance; default ``Inline``);
    ``state``, ``verify_request``, ``handle_error`` and ``on_timeout`` go to ``Server``; other
    keyword arguments are ``ServerConfig`` fields (``timeouts=Timeouts(...)`` and so on).
    """
    servers: list[Server[Any, Any]] = []

    def make(
        case: TransportCase,
        handler: HandlerFactory[Any, Any],
        *,
        strategy: str | Strategy | None = None,
        state: object = None,
        verify_request: AccessPolicy[Any] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        **config: Any,
    ) -> Server[Any, Any]:
        chosen = STRATEGIES[strategy]() if isinstance(strategy, str) else strategy
        server: Server[Any, Any] = Server(
            config=ServerConfig(address=case.address(short_tmp_dir), **config),
            transport=case.transport(),
            handler=handler,
            strategy=chosen,
            state=state,
            verify_request=verify_request,
            handle_error=handle_error,
            on_timeout=on_timeout,
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
