"""Case files checked by mypy, whose expected errors are marked in place.

A line ending in ``# E: <code>`` must get exactly that error code; every other line must get
none. So a case file proves both that the right code type-checks and that the wrong code does
not. Every file is checked with the project's mypy config (strict) in one mypy run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from mypy import api

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).parents[2]
_EXPECTED = re.compile(r"#\s*E:\s*([\w-]+)\s*$")
_REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def expected(path: Path) -> dict[int, set[str]]:
    """The error codes marked in ``path``, by line number."""
    found: dict[int, set[str]] = defaultdict(set)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTED.search(line)
        if match:
            found[number].add(match.group(1))
    return dict(found)


def reported(paths: Iterable[Path]) -> dict[str, dict[int, set[str]]]:
    """mypy's error codes for ``paths``, by file name and line (one mypy run)."""
    files = sorted(str(path) for path in paths)
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
