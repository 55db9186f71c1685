"""The Prefork restart-rate limit, sans-IO: time is a number passed in."""

from __future__ import annotations

import pytest

from typedserve.strategies.prefork.restarts import RestartLimit


def test_replacements_within_the_limit_start_at_once_and_each_counts_once() -> None:
    limit = RestartLimit(3, window=10.0)
    for now in (0.0, 1.0, 2.0):
        assert limit.delay(now) == 0.0
        assert limit.delay(now) == 0.0  # asking again is not a start
        limit.record(now)
    assert limit.delay(3.0) == 7.0  # the start at 0.0 leaves the window at 10.0


def test_a_delayed_replacement_may_start_once_the_oldest_leaves_the_window() -> None:
    limit = RestartLimit(2, window=10.0)
    limit.record(0.0)
    limit.record(4.0)
    assert limit.delay(9.0) == 1.0
    assert limit.delay(10.0) == 0.0
    limit.record(10.0)
    assert limit.delay(11.0) == 3.0  # now 4.0 is the oldest


def test_a_limit_of_zero_never_allows_a_replacement() -> None:
    assert RestartLimit(0, window=10.0).delay(0.0) is None


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        RestartLimit(-1, window=1.0)
