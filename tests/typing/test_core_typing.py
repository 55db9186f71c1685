"""mypy --strict accepts correct wiring of the core API and rejects each kind of wrong wiring.

The cases are files in ``cases/`` named ``core_*.py`` (excluded from the main mypy and ruff
runs). A line ending in ``# E: <code>`` must get exactly that mypy error code, and the message
must contain the text after a further ``:`` when one is given; every other line must get no
error. One mypy run covers every case file (mypy is slow; it runs with the project's
``mypy.ini``: strict, the stubs path, the pydantic plugin).
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).parents[2]
CASES = Path(__file__).parent / "cases"
CASE_FILES = sorted(CASES.glob("core_*.py"))
_MARKER = re.compile(r"#\s*E:\s*(?P<code>[\w-]+)(?::\s*(?P<text>.*?))?\s*$")
_REPORTED = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[\w-]+)\]$"
)


@dataclass(frozen=True)
class Expected:
    """One marked line: the error code mypy must report there, and part of its message."""

    file: str
    line: int
    code: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.code}"


def _markers(path: Path) -> list[Expected]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _MARKER.search(line)
        if match:
            found.append(Expected(path.name, number, match["code"], match["text"] or ""))
    return found


EXPECTED = [marker for path in CASE_FILES for marker in _markers(path)]

Reported = dict[tuple[str, int], list[tuple[str, str]]]


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Reported:
    """mypy's errors in every core case file, by (file name, line): one run for the module."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    with contextlib.chdir(ROOT):  # mypy.ini's paths (stubs, package bases) are relative
        stdout, stderr, _ = api.run(
            [
                "--config-file",
                "mypy.ini",
                "--no-incremental",
                "--cache-dir",
                str(cache),
                "--no-error-summary",
                "--show-error-codes",
                *(str(path.relative_to(ROOT)) for path in CASE_FILES),
            ]
        )
    assert not stderr, stderr
    errors: Reported = defaultdict(list)
    for line in stdout.splitlines():
        match = _REPORTED.match(line)
        if match:
            errors[Path(match["file"]).name, int(match["line"])].append(
                (match["code"], match["message"])
            )
        else:
            assert ": note:" in line, f"unexpected mypy output: {line}"
    return dict(errors)


@pytest.mark.timeout(300)
def test_correct_wiring_passes_strict(reported: Reported) -> None:
    errors = {key: value for key, value in reported.items() if key[0] == "core_wiring_ok.py"}
    assert errors == {}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("expected", EXPECTED, ids=str)
def test_wrong_wiring_is_rejected(expected: Expected, reported: Reported) -> None:
    errors = reported.get((expected.file, expected.line), [])
    assert [code for code, _ in errors] == [expected.code], errors
    assert expected.text in errors[0][1]


@pytest.mark.timeout(300)
def test_no_error_is_reported_on_an_unmarked_line(reported: Reported) -> None:
    marked = {(marker.file, marker.line) for marker in EXPECTED}
    unexpected = {key: value for key, value in reported.items() if key not in marked}
    assert unexpected == {}


def test_the_error_cases_are_really_there() -> None:
    # A case file whose markers were lost would pass vacuously.
    assert len(EXPECTED) >= 15
    assert {marker.code for marker in EXPECTED} >= {"arg-type", "attr-defined", "call-arg"}
