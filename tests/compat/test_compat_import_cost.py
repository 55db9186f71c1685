"""Importing ``typedserve.compat`` loads compat and the two core modules it uses, nothing more.

Each check runs in a fresh interpreter (the test process has imported everything already).
A behaviour, not a timing: which modules are in ``sys.modules`` afterwards. The package
``typedserve`` stays importable name by name (``from typedserve import X``), lazily.
"""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import pytest

import typedserve

from .support import run_python

pytestmark = pytest.mark.timeout(60)

PACKAGE_INIT = Path(typedserve.__file__)

# What `import typedserve.compat` may load of typedserve: compat, the Reactor it waits on, the
# StopSignal that wakes it (in _lifecycle, which raises typedserve.errors), the wake-up pair.
COMPAT_NEEDS = {
    "typedserve",
    "typedserve.compat",
    "typedserve.compat._errors",
    "typedserve.compat._handlers",
    "typedserve.compat._install",
    "typedserve.compat._loop",
    "typedserve.compat._mixins",
    "typedserve.compat._server",
    "typedserve._lifecycle",
    "typedserve._reactor",
    "typedserve._wakeup",
    "typedserve.errors",
}
NEVER = ("pydantic", "pydantic_core", "typing_extensions", "asyncio", "dataclasses")


def _loaded_after(statements: str, *args: str) -> list[str]:
    code = textwrap.dedent(
        """
        import json, sys
        before = set(sys.modules)
        {statements}
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    ).format(statements=textwrap.dedent(statements).strip())
    loaded: list[str] = json.loads(run_python(code, *args).splitlines()[-1])
    return loaded


@pytest.mark.parametrize("impl", ["stdlib", "compat"])
def test_importing_the_module_does_not_import_pydantic(impl: str) -> None:
    module = "socketserver" if impl == "stdlib" else "typedserve.compat"
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    assert not [name for name in loaded if name.split(".")[0] in NEVER], loaded


def test_compat_loads_only_what_it_uses() -> None:
    loaded = _loaded_after("import typedserve.compat")
    ours = {name for name in loaded if name.split(".")[0] == "typedserve"}
    assert ours == COMPAT_NEEDS
    for absent in ("typedserve.strategies", "typedserve.config", "typedserve.server"):
        assert absent not in loaded


def test_installed_http_server_loads_only_what_compat_uses() -> None:
    loaded = _loaded_after(
        """
        import typedserve.compat
        typedserve.compat.install()
        import http.server
        """
    )
    assert {name for name in loaded if name.split(".")[0] == "typedserve"} == COMPAT_NEEDS
    assert not [name for name in loaded if name.split(".")[0] in NEVER], loaded


def test_the_package_alone_loads_nothing_else() -> None:
    loaded = _loaded_after("import typedserve")
    assert [name for name in loaded if name.startswith("typedserve")] == ["typedserve"]


def test_every_export_imports_from_the_package() -> None:
    """``from typedserve import X`` for each X in ``__all__``, and ``dir()`` lists them all."""
    out = run_python(
        textwrap.dedent(
            """
            import json, typedserve
            listed = dir(typedserve)  # before any export is imported
            for name in typedserve.__all__:
                exec(f"from typedserve import {name}")
            print(json.dumps([listed, typedserve.__all__]))
            """
        )
    )
    listed, exported = json.loads(out.splitlines()[-1])
    assert exported == typedserve.__all__
    assert set(exported) <= set(listed)


def test_exports_are_the_modules_objects() -> None:
    from importlib import import_module

    exports: dict[str, str] = vars(typedserve)["_EXPORTS"]
    for name, module in exports.items():
        assert getattr(typedserve, name) is getattr(import_module(module), name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'typedserve' has no attribute 'Nope'"):
        typedserve.Nope  # type: ignore[attr-defined]  # noqa: B018  # mypy: no such export


def test_exports_imports_and_all_agree() -> None:
    """``__all__``, the lazy map and the ``TYPE_CHECKING`` imports list the same names.

    Adding an export is a line in each; this says which one is missing.
    """
    tree = ast.parse(PACKAGE_INIT.read_text())
    checked: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                assert statement.module is not None
                for alias in statement.names:
                    checked[alias.asname or alias.name] = statement.module
    exports: dict[str, str] = vars(typedserve)["_EXPORTS"]
    assert checked == exports, "the TYPE_CHECKING imports and _EXPORTS differ"
    assert sorted(typedserve.__all__) == sorted(exports), "__all__ and _EXPORTS differ"
