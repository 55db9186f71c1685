"""``MetricsEndpoint``: the HTTP endpoint Prometheus scrapes (``GET /metrics``).

``prometheus_client``'s own handler (content negotiation, gzip, ``name[]`` filters) served by
a :mod:`typedserve.compat` threading server on a daemon thread of its own (its ``shutdown``
returns at once, where the stdlib's waits up to half a second). The endpoint reads the
registry at each request; it never touches the servers it exposes otherwise.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from typedserve.compat import ThreadingTCPServer
from typedserve.errors import MissingDependencyError

try:
    from prometheus_client.exposition import MetricsHandler
    from prometheus_client.registry import REGISTRY, CollectorRegistry
except ImportError as exc:
    raise MissingDependencyError(
        "typedserve.metrics needs prometheus_client: pip install 'typedserve[prometheus]'",
        name="prometheus_client",
    ) from exc

__all__ = ["MetricsEndpoint"]


class _HTTPServer(ThreadingTCPServer):
    daemon_threads = True  # a scrape in progress never holds the process at exit
    block_on_close = False
    allow_reuse_address = True


class _HTTP6Server(_HTTPServer):
    address_family = socket.AF_INET6


class MetricsEndpoint:
    """Serve ``registry``'s metrics over HTTP on ``host:port`` (port 0: any free port) until
    :meth:`close`; the socket is bound and the thread started by the constructor (an
    ``OSError`` if the address cannot be bound).

    Example::

        with MetricsEndpoint("127.0.0.1", 9100) as endpoint:
            print(endpoint.url)                  # http://127.0.0.1:9100/metrics
            server.serve_forever()
    """

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        handler: Any = MetricsHandler.factory(registry)
        server_class = _HTTP6Server if ":" in host else _HTTPServer
        self._server = server_class((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="typedserve-metrics", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when 0 was asked for)."""
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` (an IPv6 host in brackets)."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def close(self) -> None:
        """Stop serving and close the socket (a scrape in progress finishes on its thread);
        later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> MetricsEndpoint:
        """The endpoint itself; it is closed when the block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the endpoint."""
        self.close()
