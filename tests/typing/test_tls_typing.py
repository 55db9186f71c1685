"""mypy accepts TLS (and PROXY protocol) servers and handlers written for them, and rejects
DTLS (a datagram transport wrapped), a datagram handler on a TLS transport and an unchecked
``request.tls``: the case files ``cases/tls_*.py``, marked in place (see ``marked``)."""

from __future__ import annotations

import pytest

pytest.importorskip("mypy.api")  # a dev dependency

from tests.typing.marked import CASES, expected, reported


@pytest.fixture(scope="module")
def errors() -> dict[str, dict[int, set[str]]]:
    """mypy's errors for every case of this module (one mypy run)."""
    return reported(CASES.glob("tls_*.py"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("tls_*.py")))
def test_mypy_reports_exactly_the_marked_errors(
    case: str, errors: dict[str, dict[int, set[str]]]
) -> None:
    assert errors.get(case, {}) == expected(CASES / case)


def test_the_error_cases_really_expect_errors() -> None:
    # A case file whose markers were lost would pass vacuously.
    assert len(expected(CASES / "tls_pairing_errors.py")) >= 3
