"""The old-style corpus type-checks under ``mypy --strict`` through every stub it can meet.

``typeshed``: ``import socketserver`` read from typeshed (mypy's own stdlib stubs, nothing on
the path); ``stubs``: through ``stubs/socketserver.pyi``, compat's stub under the stdlib's
name (mypy.ini's ``mypy_path = stubs``, as a project that adopts it would have); ``compat``:
a copy importing ``typedserve.compat as socketserver``, read from compat's own stub.
"""

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


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module's runs (mypy rechecks what a different path changes)."""
    return tmp_path_factory.mktemp("mypy-cache")


def _config_without_stubs(tmp_path: Path) -> Path:
    """mypy.ini without ``mypy_path``: ``import socketserver`` then reads typeshed's stub."""
    lines = (ROOT / "mypy.ini").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.replace(" ", "").startswith("mypy_path=")]
    assert len(kept) == len(lines) - 1, "mypy.ini should set mypy_path = stubs"
    config = tmp_path / "mypy.ini"
    config.write_text("".join(kept))
    return config


def _mypy(
    target: Path, cache: Path, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config or ROOT / "mypy.ini"),
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


@pytest.mark.parametrize("impl", ["typeshed", "stubs", "compat"])
def test_corpus_type_checks(impl: str, tmp_path: Path, cache: Path) -> None:
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
    config = _config_without_stubs(tmp_path) if impl == "typeshed" else None
    done = _mypy(target, cache, config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_compat_stub_is_what_mypy_sees(tmp_path: Path, cache: Path) -> None:
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
    done = _mypy(probe, cache)
    out = done.stdout
    assert done.returncode == 0, out
    assert 'Revealed type is "int"' in out, out
    assert "typedserve.compat.TCPServer" in out, out  # generic handler: only the stub has it
    assert "typedserve.errors.BindError" in out, out


PROBE = """\
from __future__ import annotations
import socketserver
reveal_type(socketserver.StreamRequestHandler.wbufsize)
def f(h: socketserver.StreamRequestHandler[socketserver.TCPServer]) -> None:
    reveal_type(h.server)
"""


def test_the_stdlib_name_stub_is_what_mypy_sees(tmp_path: Path, cache: Path) -> None:
    """With ``stubs`` on mypy's path, ``import socketserver`` is typed by compat's stub."""
    pytest.importorskip("mypy")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    done = _mypy(probe, cache)
    out = done.stdout
    assert done.returncode == 0, out
    assert 'Revealed type is "int"' in out, out
    assert 'Revealed type is "socketserver.TCPServer"' in out, out  # only this stub is generic
    # Without it, typeshed's stub is read: its handlers take no type argument.
    done = _mypy(probe, cache, _config_without_stubs(tmp_path))
    assert done.returncode == 1, done.stdout
    assert '"StreamRequestHandler" expects no type arguments' in done.stdout, done.stdout
