"""Fixtures of the strategy conformance suite (the cases and the gate live in ``support``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.strategies.support import (
    STRATEGY_CASES,
    TRANSPORT_CASES,
    WAIT,
    Gate,
    StrategyCase,
    TransportCase,
)
from typedserve import InetAddress, Server, ServerConfig, UnixAddress
from typedserve.testing import LeakCheck


@pytest.fixture(params=STRATEGY_CASES, ids=str)
def strategy_case(request: pytest.FixtureRequest) -> StrategyCase:
    """Every strategy of the suite."""
    case: StrategyCase = request.param
    return case


@pytest.fixture(params=TRANSPORT_CASES, ids=str)
def transport_case(request: pytest.FixtureRequest) -> TransportCase:
    """TCP, UDP and Unix stream."""
    case: TransportCase = request.param
    return case


@pytest.fixture(params=[c for c in TRANSPORT_CASES if c.stream], ids=str)
def stream_case(request: pytest.FixtureRequest) -> TransportCase:
    """The stream transports only (for behaviour that needs a connection)."""
    case: TransportCase = request.param
    return case


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A fresh gate, closed (releasing every handler) at the end of the test."""
    instance = Gate()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def leak_check(short_tmp_dir: Path) -> Iterator[LeakCheck]:
    """Fds, threads, child processes and socket files must be back to baseline at the end."""
    check = LeakCheck(socket_dirs=[short_tmp_dir], wait=WAIT).start()
    yield check
    check.check()


MakeServer = Callable[..., Server[Any, Any]]


@pytest.fixture
def make_server(
    leak_check: LeakCheck, gate: Gate, short_tmp_dir: Path, strategy_case: StrategyCase
) -> Iterator[MakeServer]:
    """Build a server for a transport case with the case's strategy and the command handler.

    Keyword arguments override config fields (``limits``, ``timeouts``, ``backlog``, ``tls``,
    ``shutdown``, ``proxy_protocol``, ``access_log``), the handler (``handler=``, e.g. the
    case's ``framed_handler``) or the strategy (``strategy=``, an instance), or pass server
    options (``on_busy``). Servers still open at the end are closed before the leak check.
    """
    made: list[Server[Any, Any]] = []

    def make(transport_case: TransportCase, **options: Any) -> Server[Any, Any]:
        address: Any = (
            UnixAddress(path=str(short_tmp_dir / f"s{len(made)}.sock"))
            if transport_case.name == "unix"
            else InetAddress()
        )
        config_fields = {
            k: options.pop(k)
            for k in (
                "limits",
                "timeouts",
                "backlog",
                "shutdown",
                "tls",
                "proxy_protocol",
                "access_log",
            )
            if k in options
        }
        default_handler = (
            strategy_case.stream_handler
            if transport_case.stream
            else strategy_case.datagram_handler
        )
        server: Server[Any, Any] = Server(
            config=ServerConfig(address=address, **config_fields),
            transport=transport_case.transport(),
            handler=options.pop("handler", default_handler),
            strategy=options.pop("strategy", None) or strategy_case.make(),
            state={"gate": gate.address},
            **options,
        )
        made.append(server)
        return server

    yield make
    gate.release()
    for server in made:
        server.close(grace=WAIT)
