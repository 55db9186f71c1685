"""Code written against the typed API sees no ``Any`` from typedserve.

The examples (``examples/*.py``) and ``cases/anyfree_*.py`` (handler, async handler and server
code touching every handler-facing attribute) are checked with the project's mypy config plus
``disallow_any_expr`` (no expression whose type contains ``Any``), ``disallow_any_explicit``,
``disallow_any_decorated`` and ``disallow_any_unimported`` for those modules only: typedserve
itself may use ``Any`` inside, but none of it may reach the code using it.
"""

from __future__ import annotations

import configparser
import contextlib
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).parents[2]
CASES = Path(__file__).parent / "cases"
_NO_ANY = {
    "disallow_any_expr": "True",
    "disallow_any_explicit": "True",
    "disallow_any_decorated": "True",
    "disallow_any_unimported": "True",
}


def _config(tmp_path: Path) -> Path:
    """mypy.ini with the no-``Any`` flags for the examples and the ``anyfree_`` cases."""
    config = configparser.ConfigParser()
    config.read(ROOT / "mypy.ini")
    config["mypy"]["mypy_path"] = str(ROOT / config["mypy"]["mypy_path"])
    config["mypy-examples.*"] = _NO_ANY
    config["mypy-tests.typing.cases.*"] = _NO_ANY  # only anyfree_* files are passed
    path = tmp_path / "mypy.ini"
    with path.open("w") as file:
        config.write(file)
    return path


def _mypy(config: Path, cache: Path, *files: str) -> tuple[str, str, int]:
    options = ["--config-file", str(config), "--no-incremental", "--cache-dir", str(cache)]
    return api.run([*options, "--no-error-summary", *files])


@pytest.mark.timeout(300)
def test_examples_and_handler_code_see_no_any(tmp_path: Path) -> None:
    files = sorted((ROOT / "examples").glob("*.py")) + sorted(CASES.glob("anyfree_*.py"))
    assert len(files) >= 5
    with contextlib.chdir(ROOT):  # the modules are named from here (explicit package bases)
        stdout, stderr, status = _mypy(
            _config(tmp_path), tmp_path / "cache", *(str(p.relative_to(ROOT)) for p in files)
        )
    assert not stderr, stderr
    assert (status, stdout) == (0, "")


@pytest.mark.timeout(300)
def test_the_check_reports_an_any_in_a_checked_module(tmp_path: Path) -> None:
    # Without this, a config section that matched no module would pass vacuously.
    probe = tmp_path / "examples" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("import json\n\nvalue = json.loads('1')\n")
    with contextlib.chdir(tmp_path):
        stdout, _, status = _mypy(_config(tmp_path), tmp_path / "cache", "examples/probe.py")
    assert status == 1
    assert 'examples/probe.py:3: error: Expression has type "Any"' in stdout
