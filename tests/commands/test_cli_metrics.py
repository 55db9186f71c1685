"""``typedserve serve --metrics HOST:PORT``: ``/metrics`` scraped with curl while the command
serves (a Prefork server with 2 workers, summed), and its mistakes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.commands.processes import ROOT, Running, tcp_roundtrip
from tests.metrics.scrape import needs_curl, of_server, scrape
from typedserve.metrics import DEFAULT_BUCKETS

pytestmark = [pytest.mark.timeout(60), needs_curl]

_READY = (
    r"metrics on http://127\.0\.0\.1:(\d+)/metrics[\s\S]*"
    r"serving TCP on 127\.0\.0\.1:(\d+) with Prefork"
)


def test_serve_with_metrics_exposes_the_summed_stats_of_its_workers(
    launch: Callable[..., Running],
) -> None:
    server = launch(
        "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", "--port", "0",
        "--strategy", "prefork", "--workers", "2",
        "--metrics", "127.0.0.1:0", "--metrics-histogram",
        port_pattern=_READY,
    )  # fmt: skip
    match = re.search(_READY, server.banner)
    assert match is not None
    served_port = int(match[2])
    for n in range(5):
        assert tcp_roundtrip(served_port, b"line %d\n" % n) == b"line %d\n" % n
    url = f"http://127.0.0.1:{server.port}/metrics"
    samples = scrape(url)
    name = f"127.0.0.1:{served_port}"  # the default name: the server's address
    values = of_server(samples, name, transport="TCPTransport", strategy="Prefork")
    # Each answered connection was accepted by a worker, in its own row of the counters.
    assert values["typedserve_accepted_total"] == 5
    assert values["typedserve_errors_total"] == 0
    assert values["typedserve_in_flight"] in (0, 1)  # the last one may still be closing
    # --metrics-histogram: every answered request, recorded by the worker that served it
    # (before it closed the connection), exposed with the default buckets.
    prefix = "typedserve_request_duration_seconds"
    bounds = [key for key in values if key.startswith(f"{prefix}_bucket")]
    assert len(bounds) == len(DEFAULT_BUCKETS) + 1
    assert values[f"{prefix}_count"] == values[f"{prefix}_bucket{{+Inf}}"] == 5
    # prometheus_client's default registry: the process's own collectors are there too.
    assert any(sample == "python_info" for sample, _ in samples)
    status, output = server.stop()
    assert status == 0, output
    assert "typedserve: stopped" in output


def test_a_metrics_address_that_cannot_be_bound_is_exit_2_naming_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "-m", "typedserve", "serve", "typedserve.demo:StreamEcho",
                "--port", "0", "--metrics", f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"typedserve: --metrics 127.0.0.1:{port}: cannot listen there")
    assert "Traceback" not in result.stderr
