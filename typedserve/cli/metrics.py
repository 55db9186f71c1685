"""``typedserve serve --metrics HOST:PORT``: Prometheus metrics of the served servers.

``--metrics`` serves ``/metrics`` (:class:`~typedserve.metrics.MetricsEndpoint`) on that
address for as long as the command serves, with every server's ``stats()`` registered in
``prometheus_client``'s default registry (beside its process and Python collectors) under the
server's address; the command prints where it listens. ``--metrics-histogram`` also keeps the
request-duration histogram (``metrics.duration_histogram``, which a config file may set
instead). Both need ``pip install 'typedserve[prometheus]'``; a bad value, a missing
``prometheus_client`` or an address that cannot be bound is a one-line error naming the flag
(exit status 2), checked before any server is bound (the endpoint is bound first).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from typedserve.errors import TypedServeError
from typedserve.server import Server

if TYPE_CHECKING:
    from typedserve.metrics.exposition import MetricsEndpoint

__all__ = ["CommandMetrics", "add_metrics_flags", "metrics_address", "metrics_overrides"]

_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})")


def add_metrics_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics`` and ``--metrics-histogram`` to ``serve``'s flags."""
    group = parser.add_argument_group("Prometheus metrics (pip install 'typedserve[prometheus]')")
    group.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve /metrics on this address ([::1]:9100 for IPv6; port 0: any free port)",
    )
    group.add_argument(
        "--metrics-histogram",
        action="store_true",
        help="also keep the request-duration histogram (metrics.duration_histogram = true)",
    )


class CommandMetrics:
    """What ``--metrics`` and ``--metrics-histogram`` do for one run of ``serve``.

    The constructor checks the flags (and that ``prometheus_client`` is there); :meth:`start`
    binds the endpoint, before any server is bound, so a taken address binds nothing;
    :meth:`expose` registers the servers and prints the URL; :meth:`close` stops the endpoint.
    Each does nothing without ``--metrics``. Mistakes raise naming the flag.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.address = metrics_address(args)
        """The host and port asked for; ``None``: no ``--metrics``."""
        self.endpoint: MetricsEndpoint | None = None
        """The endpoint, once started."""

    def start(self) -> None:
        """Serve ``/metrics`` on the address (the default registry, no server in it yet)."""
        if self.address is None:
            return
        from typedserve.metrics.exposition import MetricsEndpoint

        host, port = self.address
        try:
            self.endpoint = MetricsEndpoint(host, port)
        except OSError as exc:
            raise TypedServeError(f"--metrics {host}:{port}: cannot listen there: {exc}") from None

    def expose(self, servers: Sequence[Server[Any, Any]]) -> None:
        """Register ``servers`` (each under its address) and print where ``/metrics`` is."""
        if self.endpoint is None:
            return
        from typedserve.metrics.collector import register

        for server in servers:
            register(server)
        print(f"typedserve: metrics on {self.endpoint.url}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Stop serving ``/metrics`` (after the servers stopped)."""
        if self.endpoint is not None:
            self.endpoint.close()


def metrics_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """The host and port ``--metrics`` asks for (``None``: no metrics), once the value and
    ``prometheus_client`` are checked; raises naming the flag."""
    text: str | None = args.metrics
    if text is None:
        if args.metrics_histogram:
            raise TypedServeError(
                "--metrics-histogram needs --metrics HOST:PORT (where the histogram is served)"
            )
        return None
    match = _ADDRESS.fullmatch(text.strip())
    port = int(match["port"]) if match else -1
    if match is None or port > 65_535:
        raise TypedServeError(
            f"--metrics: expected HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:9100, "
            f"[::1]:9100), got {text!r}"
        )
    import typedserve.metrics.collector  # noqa: F401  # MissingDependencyError now, not later

    return match["v6"] or match["host"], port


def metrics_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--metrics-histogram`` (``serve`` only) as a config field."""
    return {"metrics.duration_histogram": True} if getattr(args, "metrics_histogram", 0) else {}
