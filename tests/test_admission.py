"""The admission policy with plain numbers and errnos: no sockets, no clocks."""

from __future__ import annotations

import errno
from typing import Literal

import pytest

from typedserve.admission import (
    RESOURCE_ERRNOS,
    AcceptBackoff,
    Admission,
    AdmissionPolicy,
)
from typedserve.config import Limits, ServerConfig


@pytest.mark.parametrize(
    ("max_in_flight", "capacity", "expected"),
    [(None, None, None), (8, None, 8), (None, 4, 4), (8, 4, 4), (3, 16, 3)],
)
def test_the_limit_is_the_smaller_of_the_config_and_the_strategy(
    max_in_flight: int | None, capacity: int | None, expected: int | None
) -> None:
    config = ServerConfig(limits=Limits(max_in_flight=max_in_flight))
    assert AdmissionPolicy.for_server(config, capacity).limit == expected


@pytest.mark.parametrize("overload", ["pause", "reject"])
def test_below_the_limit_every_request_is_served(overload: Literal["pause", "reject"]) -> None:
    config = ServerConfig(limits=Limits(max_in_flight=2, overload=overload))
    policy = AdmissionPolicy.for_server(config, None)
    assert [policy.decide(n) for n in (0, 1)] == [Admission.SERVE, Admission.SERVE]
    assert not policy.full(1)


def test_at_the_limit_pause_or_reject_as_configured() -> None:
    pause = AdmissionPolicy(limit=2, pause_when_full=True)
    reject = AdmissionPolicy(limit=2, pause_when_full=False)
    assert [pause.decide(n) for n in (2, 5)] == [Admission.PAUSE, Admission.PAUSE]
    assert [reject.decide(n) for n in (2, 5)] == [Admission.REJECT, Admission.REJECT]
    assert pause.full(2) and reject.full(3)


def test_without_a_limit_nothing_is_ever_full() -> None:
    policy = AdmissionPolicy(limit=None)
    assert policy.decide(10**9) is Admission.SERVE
    assert not policy.full(10**9)


@pytest.mark.parametrize("code", sorted(RESOURCE_ERRNOS))
def test_resource_errors_back_off_doubling_to_a_ceiling_then_reset(code: int) -> None:
    backoff = AcceptBackoff()
    delays = [backoff.failed(OSError(code, "out of something")) for _ in range(10)]
    assert delays[:4] == [0.01, 0.02, 0.04, 0.08]
    assert delays[-1] == 1.0 and max(delays) == 1.0
    backoff.succeeded()
    assert backoff.delay == 0.0
    assert backoff.failed(OSError(code, "again")) == 0.01


@pytest.mark.parametrize("code", [errno.EBADF, errno.EINVAL, errno.ENOTSOCK])
def test_other_accept_errors_are_not_the_loops_to_survive(code: int) -> None:
    backoff = AcceptBackoff()
    error = OSError(code, "broken")
    with pytest.raises(OSError) as raised:
        backoff.failed(error)
    assert raised.value is error
    assert backoff.delay == 0.0
