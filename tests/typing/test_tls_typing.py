"""mypy accepts TLS servers and handlers written for them, and rejects DTLS (a datagram
transport wrapped), a datagram handler on a TLS transport and an unchecked ``request.tls``.

Each case file in ``cases/`` named ``tls_*.py`` is checked with the project's mypy config
(strict). A line ending in ``# E: <code>`` must get exactly that error code; every other line
must get none. So a case proves both that the right wiring type-checks and that the wrong
wiring does not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")  # a dev dependency

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).parents[2]
_EXPECTED = re.compile(r"#\s*E:\s*([\w-]+)\s*$")
_REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def _expected(path: Path) -> dict[int, set[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTED.search(line)
        if match:
            found[number].add(match.group(1))
    return dict(found)


@pytest.fixture(scope="module")
def reported() -> dict[str, dict[int, set[str]]]:
    """mypy's errors for every TLS case, by file name and line (one mypy run)."""
    files = sorted(str(path) for path in CASES.glob("tls_*.py"))
    stdout, stderr, _ = api.run(
        ["--config-file", str(ROOT / "mypy.ini"), "--no-error-summary", *files]
    )
    assert not stderr, stderr
    errors: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for line in stdout.splitlines():
        match = _REPORTED.match(line)
        if match:
            errors[Path(match["file"]).name][int(match["line"])].add(match["code"])
        else:
            assert ": note:" in line, f"unexpected mypy output: {line}"
    return {name: dict(lines) for name, lines in errors.items()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("tls_*.py")))
def test_mypy_reports_exactly_the_marked_errors(
    case: str, reported: dict[str, dict[int, set[str]]]
) -> None:
    assert reported.get(case, {}) == _expected(CASES / case)


@pytest.mark.timeout(300)
def test_the_error_cases_really_expect_errors() -> None:
    # A case file whose markers were lost would pass vacuously.
    assert len(_expected(CASES / "tls_pairing_errors.py")) >= 3
