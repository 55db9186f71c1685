"""Scraping ``/metrics`` as Prometheus would: the real ``curl`` binary, then
``prometheus_client``'s own text parser (for the tests beside this)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import fields

import pytest
from prometheus_client.parser import text_string_to_metric_families

from typedserve.stats import ServerStats

COUNTERS = tuple(
    f.name for f in fields(ServerStats) if f.name not in ("in_flight", "request_durations")
)
"""The ``ServerStats`` fields exposed as ``typedserve_<field>_total`` counters."""

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by .ci/run")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Each sample's value by its name and its labels."""


def fetch(url: str) -> str:
    """``GET url`` with curl (fails on an HTTP error); the body."""
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "--max-time", "10", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def scrape(url: str) -> Samples:
    """Every sample of the exposition at ``url``, parsed by ``prometheus_client``."""
    samples: Samples = {}
    for family in text_string_to_metric_families(fetch(url)):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def of_server(samples: Samples, name: str, **labels: str) -> dict[str, float]:
    """The samples whose ``server`` label is ``name`` (and that have ``labels``), by sample
    name; a histogram bucket as ``NAME_bucket{le}``."""
    found: dict[str, float] = {}
    for (sample, sample_labels), value in samples.items():
        given = dict(sample_labels)
        if given.get("server") != name or any(given.get(k) != v for k, v in labels.items()):
            continue
        key = f"{sample}{{{given['le']}}}" if "le" in given else sample
        found[key] = value
    return found


def as_stats(values: dict[str, float]) -> dict[str, float]:
    """The ``ServerStats`` fields a server's samples give (counters and the gauge)."""
    stats = {name: values[f"typedserve_{name}_total"] for name in COUNTERS}
    stats["in_flight"] = values["typedserve_in_flight"]
    return stats


def stats_dict(stats: ServerStats) -> dict[str, float]:
    """The counters and the gauge of ``stats``, as :func:`as_stats` gives them."""
    return {name: float(getattr(stats, name)) for name in (*COUNTERS, "in_flight")}
