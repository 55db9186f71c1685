"""The request-duration histogram at the unit level: its columns in the shared
counters (bucketing, sums across rows and across a real fork, thread safety), the observer's
outcome filter and its factory in the observer seam, the ``metrics`` config table, and the
import rules of ``typedserve.metrics`` (end to end: ``test_scrape.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from typedserve import ConfigError, Server, ServerConfig, StreamHandler, TCPTransport
from typedserve.counters import ACCEPTED, Counters, DurationTotals
from typedserve.errors import StateError
from typedserve.metrics import (
    DEFAULT_BUCKETS,
    RECORDED_OUTCOMES,
    DurationHistogram,
    MetricsConfig,
    duration_observer,
)
from typedserve.observe import OUTCOMES, RequestObserver, observers_for

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


class Idle(StreamHandler):
    def handle(self) -> None:
        pass


# -- the columns in the counters --------------------------------------------------------------


def test_a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() -> None:
    counters = Counters(durations=(0.1, 1.0))
    for seconds in (0.0, 0.1, 0.100001, 1.0, 1.5, -0.2):  # a bound is "at most" (le)
        counters.observe_duration(seconds)
    durations = counters.totals().durations
    assert durations is not None
    assert (durations.bounds, durations.counts) == ((0.1, 1.0), (3, 2, 1))
    assert durations.sum == pytest.approx(2.700001)  # a negative duration counts as 0
    assert durations.count == 6
    assert durations.cumulative() == [(0.1, 3), (1.0, 5), (float("inf"), 6)]


def test_the_columns_follow_the_fields_and_leave_them_alone() -> None:
    counters = Counters(durations=(0.5,))
    counters.row[ACCEPTED] += 2
    counters.observe_duration(0.25)
    totals = counters.totals()
    assert (totals.accepted, totals.finished, totals.in_flight) == (2, 0, 2)
    assert totals.durations is not None
    assert totals.durations.counts == (1, 0)


def test_without_durations_there_are_no_columns_and_nothing_to_observe() -> None:
    counters = Counters(processes=2)
    assert counters.durations is None
    assert counters.totals().durations is None
    with pytest.raises(StateError, match="no duration histogram"):
        counters.observe_duration(0.1)
    with pytest.raises(ConfigError, match=r"metrics\.duration_histogram"):
        DurationHistogram(counters)


def test_each_row_has_its_own_columns_and_the_totals_sum_them() -> None:
    counters = Counters(processes=3, durations=(1.0,))
    for row, seconds in enumerate((0.5, 2.0, 0.25, 3.0)):
        counters.use_row(row)
        counters.observe_duration(seconds)
    durations = counters.totals().durations
    assert durations is not None
    assert durations.counts == (2, 2)
    assert durations.sum == pytest.approx(5.75)


def test_a_forked_child_records_into_the_parents_memory() -> None:
    """As a ForkPerRequest child or a Prefork worker does: its own row, read by the parent."""
    counters = Counters(processes=2, durations=(0.01, 0.1))
    counters.observe_duration(0.005)
    pid = os.fork()
    if pid == 0:  # the child: its row, then out without the parent's clean-up
        status = 1
        try:
            counters.use_row(2)
            for seconds in (0.05, 0.05, 7.0):
                counters.observe_duration(seconds)
            status = 0
        finally:
            os._exit(status)
    assert os.waitpid(pid, 0)[1] == 0
    durations = counters.totals().durations
    assert durations is not None
    assert durations.counts == (1, 2, 1)
    assert durations.sum == pytest.approx(7.105)
    counters.close()


def test_threads_recording_at_once_lose_no_observation() -> None:
    counters = Counters(processes=1, durations=(0.001, 0.01))
    histogram = DurationHistogram(counters)
    start = threading.Barrier(8)

    def record() -> None:
        start.wait()
        for n in range(2_000):
            histogram.request_ended(None, "completed", 0.0, (0.0005, 0.005, 0.5)[n % 3])

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    durations = counters.totals().durations
    assert durations is not None
    assert durations.counts == (8 * 667, 8 * 667, 8 * 666)
    counters.close()


# -- the observer ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_only_served_outcomes_are_recorded(outcome: str) -> None:
    counters = Counters(durations=DEFAULT_BUCKETS)
    DurationHistogram(counters).request_ended(None, outcome, 10.0, 10.02)
    durations = counters.totals().durations
    assert durations is not None
    served = outcome in ("completed", "error", "disconnect", "cut", "slow")
    assert durations.count == (1 if served else 0)
    assert (outcome in RECORDED_OUTCOMES) == served


def test_the_observer_factory_follows_the_config() -> None:
    off = ServerConfig()
    on = ServerConfig(metrics=MetricsConfig(duration_histogram=True))
    assert duration_observer(off, Counters()) is None
    assert duration_observer(on, Counters()) is None  # counters made without the columns
    counters = Counters(durations=on.metrics.buckets)
    observer: RequestObserver | None = duration_observer(on, counters)  # the seam's protocol
    assert isinstance(observer, DurationHistogram)
    assert observers_for(off, Counters()) is None
    seam = observers_for(on, counters)  # what a server with the histogram on is given
    assert seam is not None
    seam.request_ended(None, "completed", 1.0, 1.25)  # type: ignore[arg-type]  # not read
    durations = counters.totals().durations
    assert durations is not None
    assert (durations.count, durations.sum) == (1, 0.25)


def test_a_server_has_the_columns_only_with_the_histogram_on() -> None:
    on = ServerConfig().with_overrides({"metrics.duration_histogram": "true"})
    with Server(config=ServerConfig(), transport=TCPTransport(), handler=Idle) as plain:
        assert plain.stats().request_durations is None
    with Server(config=on, transport=TCPTransport(), handler=Idle) as timed:
        durations = timed.stats().request_durations
    assert durations == DurationTotals(DEFAULT_BUCKETS, (0,) * (len(DEFAULT_BUCKETS) + 1), 0.0)


# -- the config table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buckets", "field", "rule"),
    [
        ([0.1, 0.1], "metrics.buckets", "strictly increasing: 0.1 follows 0.1"),
        ("1,0.5", "metrics.buckets", "strictly increasing: 0.5 follows 1.0"),
        ([], "metrics.buckets", "at least one bucket bound"),
        ([0.5, -1], "metrics.buckets.1", "greater than 0"),
        ([0, 1], "metrics.buckets.0", "greater than 0"),
        ([1, float("inf")], "metrics.buckets.1", "finite"),
        ("0.1,soon", "metrics.buckets.1", "valid number"),
    ],
)
def test_bad_buckets_are_rejected_naming_the_field(buckets: object, field: str, rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_data({"metrics": {"duration_histogram": True, "buckets": buckets}})
    ((named, _, message),) = caught.value.problems
    assert named == field
    assert rule in message
    assert f"  {field} = " in str(caught.value)


def test_the_table_comes_from_toml_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("[metrics]\nduration_histogram = true\nbuckets = [0.01, 1, 10]\n")
    assert ServerConfig.from_toml(path).metrics == MetricsConfig(
        duration_histogram=True, buckets=(0.01, 1.0, 10.0)
    )
    environ = {"TYPEDSERVE_METRICS__DURATION_HISTOGRAM": "yes", "TYPEDSERVE_METRICS__BUCKETS": "2"}
    config = ServerConfig.from_env(environ)
    assert config.metrics.histogram == (2.0,)
    assert ServerConfig().metrics.histogram is None  # off by default


# -- imports -----------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_typedserve_does_not_import_prometheus_client() -> None:
    done = _python(
        "import sys, typedserve\n"
        "from typedserve import Server, ServerConfig\n"
        "from typedserve.metrics import MetricsConfig, DurationHistogram\n"
        "ServerConfig(metrics=MetricsConfig(duration_histogram=True))\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"


@pytest.mark.parametrize(
    "statement",
    [
        "from typedserve.metrics import ServerCollector",
        "import typedserve.metrics.collector",
        "from typedserve.metrics import MetricsEndpoint",
    ],
)
def test_without_prometheus_client_the_error_names_the_extra(statement: str) -> None:
    done = _python(
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if it were not installed\n"
        "from typedserve import MissingDependencyError, ServerConfig\n"
        "from typedserve.metrics import MetricsConfig  # the config needs no prometheus_client\n"
        "try:\n"
        f"    {statement}\n"
        "except MissingDependencyError as exc:\n"
        "    assert isinstance(exc, ImportError) and exc.name == 'prometheus_client'\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "typedserve.metrics needs prometheus_client: pip install 'typedserve[prometheus]'\n"
    )
