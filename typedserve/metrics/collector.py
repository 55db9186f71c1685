"""``ServerCollector``: a ``prometheus_client`` collector of servers' ``stats()``.

At each scrape it calls ``server.stats()`` for every server it holds (the shared counters,
summed over the processes of ``ForkPerRequest`` and ``Prefork``) and yields one family per
field, a sample per server: nothing is recorded while serving. Every family has the labels
``server`` (the name the server was added under), ``transport`` and ``strategy`` (class names):

- ``typedserve_<field>_total`` (counter): each counter of ``ServerStats`` (``accepted``,
  ``refused``, ``rejected``, ``errors``, ``disconnects``, ``slow_clients``...);
- ``typedserve_in_flight`` (gauge): ``ServerStats.in_flight``;
- ``typedserve_request_duration_seconds`` (histogram: ``_bucket``, ``_sum``, ``_count``):
  ``ServerStats.request_durations``, for the servers with ``metrics.duration_histogram`` on.

The help text of each is the documentation of its ``ServerStats`` field.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import re
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Final

from typedserve.errors import ConfigError, MissingDependencyError
from typedserve.server import Server
from typedserve.stats import ServerStats

try:
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:
    raise MissingDependencyError(
        "typedserve.metrics needs prometheus_client: pip install 'typedserve[prometheus]'",
        name="prometheus_client",
    ) from exc

__all__ = ["ServerCollector", "register", "unregister"]

AnyServer = Server[Any, Any]

PREFIX: Final = "typedserve_"
"""Every metric's name starts with it."""
GAUGES: Final = frozenset({"in_flight"})
"""The ``ServerStats`` fields that are gauges (a level, not a count); the other ``int`` fields
are counters."""
HISTOGRAM: Final = "request_duration_seconds"
"""The histogram's name after :data:`PREFIX`."""
HISTOGRAM_HELP: Final = (
    "How long the requests served took, in seconds, from the server taking a request to the "
    "end of its handler (metrics.duration_histogram; refused and rejected requests are not in it)."
)
"""The histogram's help text."""
LABELS: Final = ("server", "transport", "strategy")
"""Every family's labels: the name a server was added under, its transport's and its
strategy's class names."""


class ServerCollector(Collector):
    """Exposes the ``stats()`` of named servers (see the module docstring).

    ``ServerCollector(server, name="api")`` holds one server; :meth:`add` adds more (each
    name once: the series of one registry must be distinct), :meth:`remove` drops one. Register
    it in a registry (``registry.register(collector)``), or let :func:`register` keep one per
    registry. Thread-safe: servers may be added while a scrape runs.
    """

    def __init__(self, server: AnyServer | None = None, *, name: str | None = None) -> None:
        self._lock = threading.Lock()
        self._servers: dict[str, AnyServer] = {}
        if server is not None:
            self.add(server, name=name)

    def add(self, server: AnyServer, *, name: str | None = None) -> str:
        """Expose ``server`` under ``name`` (default: its address, ``host:port`` or the Unix
        path); return the name. A name already held is a :class:`ConfigError`."""
        if name is None:
            name = default_name(server)
        if not name:
            raise ConfigError.for_argument("ServerCollector.add", "name", name, "not empty")
        with self._lock:
            if name in self._servers:
                raise ConfigError(
                    f"a server named {name!r} is already registered: give each server in a "
                    "registry its own name (name=...)",
                    (("name", name, "unique in its registry"),),
                )
            self._servers[name] = server
        return name

    def remove(self, name: str) -> bool:
        """Stop exposing the server added as ``name``; ``False`` if there was none."""
        with self._lock:
            return self._servers.pop(name, None) is not None

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the servers exposed, in the order they were added."""
        with self._lock:
            return tuple(self._servers)

    def describe(self) -> Iterable[Metric]:
        """The families this collector yields, without samples (a registry checks their names
        against its other collectors')."""
        families, histogram = _families()
        return [*families, histogram]

    def collect(self) -> Iterable[Metric]:
        """Every family, with a sample per server (``server.stats()`` read now)."""
        with self._lock:
            servers = list(self._servers.items())
        if not servers:
            return []
        families, histogram = _families()
        with_durations = False
        for name, server in servers:
            stats = server.stats()
            labels = [name, type(server.transport).__name__, type(server.strategy).__name__]
            for family, field in zip(families, _FIELDS, strict=True):
                family.add_metric(labels, getattr(stats, field))
            durations = stats.request_durations
            if durations is not None:
                with_durations = True
                buckets = [(_le(bound), n) for bound, n in durations.cumulative()]
                histogram.add_metric(labels, buckets, durations.sum)
        return [*families, histogram] if with_durations else families


def _families() -> tuple[list[CounterMetricFamily | GaugeMetricFamily], HistogramMetricFamily]:
    """A new, empty family per counter and gauge of ``ServerStats``, and the histogram's."""
    docs = field_docs()
    families: list[CounterMetricFamily | GaugeMetricFamily] = []
    for field in _FIELDS:
        kind = GaugeMetricFamily if field in GAUGES else CounterMetricFamily
        families.append(kind(PREFIX + field, docs[field], labels=LABELS))
    return families, HistogramMetricFamily(PREFIX + HISTOGRAM, HISTOGRAM_HELP, labels=LABELS)


_FIELDS: Final = tuple(
    field.name for field in dataclasses.fields(ServerStats) if field.name != "request_durations"
)


@functools.cache
def field_docs() -> dict[str, str]:
    """Each ``ServerStats`` field's documentation (the string under it) on one line, as a
    metric's help text; a field without one (or without source to read) gets its name."""
    docs = {field.name: f"ServerStats.{field.name}" for field in dataclasses.fields(ServerStats)}
    try:
        source = inspect.getsource(ServerStats)
    except (OSError, TypeError):
        return docs
    body = ast.parse(inspect.cleandoc(source)).body[0]
    assert isinstance(body, ast.ClassDef)
    for statement, following in zip(body.body, body.body[1:], strict=False):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            text = str(following.value.value).replace("``", "")
            docs[statement.target.id] = re.sub(r"\s+", " ", text).strip()
    return docs


def _le(bound: float) -> str:
    """A bucket's ``le`` label as Prometheus clients write it: ``0.5``, ``1.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def default_name(server: AnyServer) -> str:
    """A server's name when none is given: its address (``127.0.0.1:8000``, ``[::1]:8000``,
    a Unix path)."""
    address = server.address
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return address.decode(errors="replace") if isinstance(address, bytes) else str(address)


_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, ServerCollector] = (
    weakref.WeakKeyDictionary()
)
_COLLECTORS_LOCK = threading.Lock()


def register(
    server: AnyServer, registry: CollectorRegistry = REGISTRY, name: str | None = None
) -> ServerCollector:
    """Expose ``server`` in ``registry`` (default: ``prometheus_client``'s global one) under
    ``name`` (default: its address); return the registry's typedserve collector, made and
    registered on first use. Several servers share it, each under its own name: a name
    already registered there is a :class:`ConfigError`."""
    with _COLLECTORS_LOCK:
        collector = _COLLECTORS.get(registry)
        if collector is None:
            collector = _COLLECTORS[registry] = ServerCollector()
            registry.register(collector)
    collector.add(server, name=name)
    return collector


def unregister(name: str, registry: CollectorRegistry = REGISTRY) -> bool:
    """Stop exposing the server registered as ``name`` in ``registry``; ``False`` if none
    was."""
    with _COLLECTORS_LOCK:
        collector = _COLLECTORS.get(registry)
    return collector is not None and collector.remove(name)
