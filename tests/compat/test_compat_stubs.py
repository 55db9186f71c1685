"""``stubs/socketserver.pyi`` is compat's stub under the stdlib's name, kept equal to it."""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPAT_STUB = ROOT / "typedserve" / "compat" / "__init__.pyi"
STDLIB_NAME_STUB = ROOT / "stubs" / "socketserver.pyi"
BEGIN = "# typedserve.compat only: begin"
END = "# typedserve.compat only: end"


def _body(path: Path) -> str:
    """The stub's text after its module docstring."""
    text = path.read_text()
    docstring = ast.parse(text).body[0]
    assert isinstance(docstring, ast.Expr), f"{path.name} starts with its docstring"
    assert isinstance(docstring.value, ast.Constant)
    assert isinstance(docstring.value.value, str)
    assert docstring.end_lineno is not None
    return "".join(text.splitlines(keepends=True)[docstring.end_lineno :])


def _without_compat_only(text: str) -> str:
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if line.startswith(BEGIN):
            assert not skipping, "nested compat-only blocks"
            skipping = True
        if not skipping:
            kept.append(line)
        if line.startswith(END):
            assert skipping, f"{END} without {BEGIN}"
            skipping = False
    assert not skipping, f"{BEGIN} without {END}"
    return "".join(kept)


def test_the_stdlib_name_stub_is_the_compat_stub() -> None:
    """Equal but for the docstrings and the block marked as compat-only (install/uninstall),
    which ends compat's stub."""
    compat = _body(COMPAT_STUB)
    assert BEGIN in compat
    expected = _without_compat_only(compat).rstrip("\n") + "\n"  # the block ends the stub
    actual = _body(STDLIB_NAME_STUB)
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            "typedserve/compat/__init__.pyi (compat-only block removed)",
            "stubs/socketserver.pyi",
        )
    )
    assert actual == expected, f"copy the change to stubs/socketserver.pyi:\n{diff}"


def test_the_compat_only_block_holds_what_the_stdlib_module_lacks() -> None:
    import socketserver

    compat = _body(COMPAT_STUB)
    block = compat[compat.index(BEGIN) : compat.index(END)]
    names = {node.name for node in ast.parse(block).body if isinstance(node, ast.FunctionDef)}
    assert names == {"install", "uninstall"}
    assert not any(hasattr(socketserver, name) for name in names)
