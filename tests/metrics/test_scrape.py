"""``/metrics`` scraped with curl and parsed by ``prometheus_client`` equals ``server.stats()``
after a known number of requests (completed, refused by the access policy, handler errors), for
every strategy, the process ones (ForkPerRequest, Prefork with 2 workers) summed over their
processes; several servers in one registry; the histogram's family."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.metrics.scrape import Samples, as_stats, needs_curl, of_server, scrape, stats_dict
from typedserve import (
    AllowNetworks,
    AsyncIO,
    ConfigError,
    ForkPerRequest,
    Inline,
    Prefork,
    Server,
    ServerConfig,
    StreamHandler,
    TCPTransport,
    ThreadPerRequest,
    ThreadPool,
    UDPTransport,
)
from typedserve.aio import AsyncHandler, AsyncStream
from typedserve.handlers import DatagramHandler
from typedserve.metrics import (
    DurationHistogram,
    MetricsConfig,
    MetricsEndpoint,
    ServerCollector,
    register,
    unregister,
)
from typedserve.testing import LeakCheck, connect, serve_in_thread

pytestmark = [pytest.mark.timeout(60), needs_curl]

WAIT = 10.0
ALLOWED = "127.0.0.1"
REFUSED_FROM = "127.0.0.2"  # another loopback address: the access policy refuses it


def _reply(line: bytes) -> bytes:
    command = line.strip()
    if command == b"boom":
        raise RuntimeError("boom (on purpose)")
    return b"%d %s\n" % (os.getpid(), command)


class Commands(StreamHandler):
    """One line: ``boom`` raises; ``hold`` answers ``held PID``, waits for a second line, then
    answers ``released``; anything else is answered ``PID LINE``."""

    def handle(self) -> None:
        """Answer one command."""
        line = self.rfile.readline()
        if line.strip() == b"hold":
            self.wfile.write(b"held %d\n" % os.getpid())
            self.wfile.flush()
            self.rfile.readline()
            self.wfile.write(b"released\n")
            return
        self.wfile.write(_reply(line))


class AsyncCommands(AsyncHandler[AsyncStream]):
    """:class:`Commands` on the event loop."""

    async def handle(self) -> None:
        """Answer one command."""
        line = await self.request.readline()
        if line.strip() == b"hold":
            self.request.write(b"held %d\n" % os.getpid())
            await self.request.drain()
            await self.request.readline()
            self.request.write(b"released\n")
        else:
            self.request.write(_reply(line))
        await self.request.drain()


STRATEGIES: dict[str, Callable[[], Any]] = {
    "Inline": Inline,
    "ThreadPool": lambda: ThreadPool(max_workers=4),
    "ThreadPerRequest": ThreadPerRequest,
    "AsyncIO": lambda: AsyncIO(loop="asyncio"),
    "ForkPerRequest": lambda: ForkPerRequest(max_children=4),
    # One thread per worker: while one worker holds a request the other takes the rest, so
    # both workers' rows of the counters have something to sum.
    "Prefork": lambda: Prefork(workers=2, threads_per_worker=1),
}


@pytest.fixture
def leak_check() -> Iterator[None]:
    check = LeakCheck(wait=WAIT).start()
    yield
    check.check()


def _quiet(exc: BaseException, peer: object) -> None:
    """The error policy: the errors are on purpose (they are still counted)."""


def _server(strategy: Any, config: ServerConfig | None = None, **options: Any) -> Server[Any, Any]:
    handler: Any = AsyncCommands if isinstance(strategy, AsyncIO) else Commands
    return Server(
        config=config or ServerConfig(),
        transport=TCPTransport(),
        handler=handler,
        strategy=strategy,
        verify_request=AllowNetworks([f"{ALLOWED}/32"]),
        handle_error=_quiet,
        **options,
    )


def _ask(server: Server[Any, Any], command: bytes, source: str = ALLOWED) -> bytes:
    """One command over a new connection from ``source``; what came back until EOF (``b""``
    for a closed or reset connection)."""
    with socket.socket() as client:
        client.settimeout(WAIT)
        client.bind((source, 0))
        client.connect(server.address)
        data = b""
        try:
            client.sendall(command + b"\n")
            while chunk := client.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        return data


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def scrape_once(registry: CollectorRegistry) -> Samples:
    """Scrape ``registry`` through a short-lived endpoint."""
    with MetricsEndpoint("127.0.0.1", 0, registry) as endpoint:
        return scrape(endpoint.url)


def _read_line(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and (chunk := client.recv(1)):
        data += chunk
    return data


@pytest.mark.parametrize("histogram", [False, True], ids=["counters", "histogram"])
@pytest.mark.parametrize("strategy_name", list(STRATEGIES))
def test_scraped_values_equal_stats_after_known_requests(
    leak_check: None, strategy_name: str, histogram: bool
) -> None:
    """3 answered, 2 handler errors, 2 refused by the access policy (and, but for Inline, one
    held while the others run): every counter and the gauge, scraped, are ``stats()``; with
    ``metrics.duration_histogram``, the histogram holds every served request (not the refused
    ones), recorded in whichever process served it."""
    config = ServerConfig(metrics=MetricsConfig(duration_histogram=histogram))
    server = _server(STRATEGIES[strategy_name](), config)
    registry = CollectorRegistry()
    register(server, registry, name="commands")
    with serve_in_thread(server), MetricsEndpoint("127.0.0.1", 0, registry) as endpoint:
        pids = set()
        held = None
        if strategy_name != "Inline":  # Inline would hold its only thread, the loop's
            held = connect(server, timeout=WAIT)
            held.sendall(b"hold\n")
            reply = _read_line(held)
            assert reply.startswith(b"held ")
            pids.add(int(reply.split()[1]))
        for n in range(3):
            pid, echoed = _ask(server, b"echo%d" % n).split()
            assert echoed == b"echo%d" % n
            pids.add(int(pid))
        assert [_ask(server, b"boom") for _ in range(2)] == [b"", b""]
        assert [_ask(server, b"echo", source=REFUSED_FROM) for _ in range(2)] == [b"", b""]
        if held is not None:
            held.sendall(b"go\n")
            assert _read_line(held) == b"released\n"
            held.close()
        assert server.shutdown(grace=WAIT) is not None  # drained: every request counted
        stats = server.stats()
        scraped = of_server(
            scrape(endpoint.url),
            "commands",
            transport="TCPTransport",
            strategy=type(server.strategy).__name__,
        )
    accepted = 7 if held is None else 8
    assert (stats.accepted, stats.refused, stats.errors, stats.in_flight) == (accepted, 2, 2, 0)
    assert as_stats(scraped) == stats_dict(stats)
    durations = stats.request_durations
    prefix = "typedserve_request_duration_seconds"
    if not histogram:
        assert durations is None
        assert f"{prefix}_count" not in scraped
    else:
        assert durations is not None
        served = accepted - stats.refused  # completed, held and failed: not the refused
        assert durations.count == served == scraped[f"{prefix}_count"]
        assert scraped[f"{prefix}_sum"] == pytest.approx(durations.sum)
        cumulative = {_le(bound): n for bound, n in durations.cumulative()}
        assert {le: scraped[f"{prefix}_bucket{{{le}}}"] for le in cumulative} == cumulative
    if strategy_name == "Prefork":
        assert len(pids) == 2, "both workers served, so their rows were summed"


def test_two_servers_in_one_registry_have_their_own_labels(leak_check: None) -> None:
    """A TCP server with a thread pool and a UDP one inline, registered under their names:
    each series carries its server's name, transport and strategy, and its own values."""

    class Upper(DatagramHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read().upper())

    tcp = _server(ThreadPool(max_workers=2))
    udp = Server(config=ServerConfig(), transport=UDPTransport(), handler=Upper)
    registry = CollectorRegistry()
    collector = register(tcp, registry, name="api")
    assert register(udp, registry, name="dns") is collector  # one collector per registry
    assert collector.names == ("api", "dns")
    endpoint = MetricsEndpoint("127.0.0.1", 0, registry)
    with serve_in_thread(tcp), serve_in_thread(udp), endpoint:
        assert _ask(tcp, b"x").endswith(b" x\n")
        with connect(udp, timeout=WAIT) as client:
            for _ in range(3):
                client.send(b"ping")
                assert client.recv(100) == b"PING"
        tcp.shutdown(grace=WAIT)
        udp.shutdown(grace=WAIT)
        samples = scrape(endpoint.url)
    api = of_server(samples, "api", transport="TCPTransport", strategy="ThreadPool")
    dns = of_server(samples, "dns", transport="UDPTransport", strategy="Inline")
    assert as_stats(api) == stats_dict(tcp.stats())
    assert as_stats(dns) == stats_dict(udp.stats())
    assert (api["typedserve_accepted_total"], dns["typedserve_accepted_total"]) == (1, 3)
    assert unregister("dns", registry)
    assert not unregister("dns", registry)
    assert of_server(scrape_once(registry), "dns") == {}


def test_a_name_registered_twice_is_an_error_naming_it() -> None:
    with _server(Inline()) as first, _server(Inline()) as second:
        registry = CollectorRegistry()
        register(first, registry, name="api")
        with pytest.raises(ConfigError, match="a server named 'api' is already registered"):
            register(second, registry, name="api")
        default = register(second, registry).names[-1]  # default: the address
        assert default == f"127.0.0.1:{second.address[1]}"
        with pytest.raises(ConfigError, match="already registered"):
            ServerCollector(first, name="x").add(second, name="x")


def test_the_histogram_family_sums_the_shared_bucket_columns() -> None:
    """With ``metrics.duration_histogram`` the server's counters have bucket columns; what a
    :class:`DurationHistogram` records there (as the request observer does) is exposed as
    ``typedserve_request_duration_seconds``, cumulative, with its count and sum."""
    config = ServerConfig().with_overrides(
        {"metrics.duration_histogram": True, "metrics.buckets": "0.01,0.1,1"}
    )
    with Server(config=config, transport=TCPTransport(), handler=Commands) as server:
        histogram = DurationHistogram(server._serving.counters)  # the observer seam's part
        for seconds in (0.005, 0.05, 0.05, 0.5, 5.0):
            histogram.request_ended(None, "completed", 100.0, 100.0 + seconds)
        histogram.request_ended(None, "refused", 100.0, 107.0)  # not recorded
        registry = CollectorRegistry()
        register(server, registry, name="timed")
        values = of_server(scrape_once(registry), "timed")
        durations = server.stats().request_durations
    assert durations is not None
    assert durations.counts == (1, 2, 1, 1)
    prefix = "typedserve_request_duration_seconds"
    buckets = {le: values[f"{prefix}_bucket{{{le}}}"] for le in ("0.01", "0.1", "1.0", "+Inf")}
    assert buckets == {"0.01": 1, "0.1": 3, "1.0": 4, "+Inf": 5}
    assert values[f"{prefix}_count"] == 5 == durations.count
    assert values[f"{prefix}_sum"] == pytest.approx(5.605) == pytest.approx(durations.sum)
