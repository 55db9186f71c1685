"""Prometheus metrics for typedserve servers (``pip install 'typedserve[prometheus]'``).

Example::

    from prometheus_client import REGISTRY
    from typedserve.metrics import MetricsEndpoint, register

    register(server, name="api")                 # its stats() in the default registry
    with MetricsEndpoint("127.0.0.1", 9100, REGISTRY):
        server.serve_forever()                   # curl http://127.0.0.1:9100/metrics

- :mod:`typedserve.metrics.collector` (layer 7): :class:`ServerCollector`, a
  ``prometheus_client`` collector computing every counter and gauge of ``server.stats()``
  (and the request-duration histogram) at scrape time, so serving pays nothing for it;
  :func:`register` and :func:`unregister` keep one per registry.
- :mod:`typedserve.metrics.exposition` (layer 7): :class:`MetricsEndpoint`, the HTTP endpoint
  a scraper reads (``typedserve serve --metrics HOST:PORT`` starts one).
- :mod:`typedserve.metrics.config` (layer 1, values only): :class:`MetricsConfig`, the
  ``metrics`` table of a :class:`~typedserve.config.ServerConfig`.
- :mod:`typedserve.metrics.histogram` (layer 1): :class:`DurationHistogram`, the request
  observer that records each request's duration in the server's shared counters.

``prometheus_client`` is imported by the first two only, when they are first used: this
package imports nothing itself (``typedserve.config`` needs ``typedserve.metrics.config``), and
``import typedserve`` never imports ``prometheus_client``. Without it installed, using them
raises :class:`~typedserve.errors.MissingDependencyError` naming the extra to install.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typedserve.metrics.collector import ServerCollector, register, unregister
    from typedserve.metrics.config import DEFAULT_BUCKETS, MetricsConfig
    from typedserve.metrics.exposition import MetricsEndpoint
    from typedserve.metrics.histogram import RECORDED_OUTCOMES, DurationHistogram, duration_observer

_EXPORTS: dict[str, str] = {
    "DEFAULT_BUCKETS": "typedserve.metrics.config",
    "DurationHistogram": "typedserve.metrics.histogram",
    "MetricsConfig": "typedserve.metrics.config",
    "MetricsEndpoint": "typedserve.metrics.exposition",
    "RECORDED_OUTCOMES": "typedserve.metrics.histogram",
    "ServerCollector": "typedserve.metrics.collector",
    "duration_observer": "typedserve.metrics.histogram",
    "register": "typedserve.metrics.collector",
    "unregister": "typedserve.metrics.collector",
}

__all__ = [
    "DEFAULT_BUCKETS",
    "RECORDED_OUTCOMES",
    "DurationHistogram",
    "MetricsConfig",
    "MetricsEndpoint",
    "ServerCollector",
    "duration_observer",
    "register",
    "unregister",
]

if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any name as an export

    def __getattr__(name: str) -> object:
        """Import an export on first use, from the module defining it."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's names, the exports not yet imported included."""
    return sorted({*globals(), *__all__})
