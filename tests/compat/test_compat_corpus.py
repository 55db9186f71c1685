"""The old-style corpus type-checks under ``mypy --strict`` against both implementations."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "compat_corpus"
IMPORT = re.compile(r"^import socketserver$", re.MULTILINE)


def _mypy(target: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "mypy.ini"),
            "--strict",
            "--python-version",
            version,
            "--cache-dir",
            str(cache),
            str(target),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@pytest.mark.parametrize("impl", ["stdlib", "compat"])
def test_corpus_type_checks(impl: str, tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    sources = sorted(CORPUS.glob("*.py"))
    assert len(sources) >= 3
    target = tmp_path / "corpus"
    target.mkdir()
    for source in sources:
        text = source.read_text()
        assert IMPORT.search(text), f"{source.name} must import socketserver"
        if impl == "compat":
            text = IMPORT.sub("import typedserve.compat as socketserver", text)
        (target / source.name).write_text(text)
    done = _mypy(target, tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_compat_stub_is_what_mypy_sees(tmp_path: Path) -> None:
    """The stub (not the implementation) types typedserve.compat, and the package still works."""
    pytest.importorskip("mypy")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import typedserve.compat\n"
        "import typedserve.errors\n"
        "reveal_type(typedserve.compat.StreamRequestHandler.wbufsize)\n"
        "def f(h: typedserve.compat.StreamRequestHandler[typedserve.compat.TCPServer]) -> None:\n"
        "    reveal_type(h.server)\n"
        "reveal_type(typedserve.errors.BindError)\n"
    )
    done = _mypy(probe, tmp_path / "cache")
    out = done.stdout
    assert done.returncode == 0, out
    assert 'Revealed type is "int"' in out, out
    assert "typedserve.compat.TCPServer" in out, out  # generic handler: only the stub has it
    assert "typedserve.errors.BindError" in out, out
