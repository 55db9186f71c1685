"""The layer order stated in ``typedserve/__init__.py`` holds: no module imports a higher layer.

Each module is placed in a layer by the longest matching name prefix below; an import of a
``typedserve`` module (at any depth, ``TYPE_CHECKING`` blocks included) must name a module of
the same layer or a lower one. Within a layer, modules may import each other (acyclically).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import typedserve

ROOT = Path(typedserve.__file__).parent

# Lowest first; must match the prose in typedserve/__init__.py.
LAYERS: list[tuple[str, ...]] = [
    (
        "typedserve.errors",
        "typedserve.activation",
        "typedserve._wakeup",
        "typedserve.framing",
        "typedserve.proxy",
        "typedserve.config",
        "typedserve._config_model",
        "typedserve._config_sources",
        "typedserve.tls.config",
        "typedserve.access_log.config",
        "typedserve.requests",
        "typedserve.tls.info",
        "typedserve.counters",
        "typedserve.admission",
        "typedserve.metrics.config",
        "typedserve.metrics.histogram",
    ),
    (
        "typedserve.transports",
        "typedserve.tls",
        "typedserve.context",
        "typedserve.policies",
        "typedserve.drain",
        "typedserve.handlers",
        "typedserve.stats",
        "typedserve.options",
        "typedserve.systemd",
        "typedserve.observe",
        "typedserve.access_log",
        "typedserve.logformat",
    ),
    ("typedserve.host",),
    ("typedserve.strategies", "typedserve.aio"),
    (
        "typedserve._lifecycle",
        "typedserve._reactor",
        "typedserve._serving",
        "typedserve._parking",
        "typedserve._pulling",
        "typedserve._watches",
        "typedserve._loop",
    ),
    (
        "typedserve.server",
        "typedserve.server_factory",
        "typedserve._server_params",
        "typedserve._server_host",
    ),
    (
        "typedserve.compat",
        "typedserve.compat_proxy",
        "typedserve.testing",
        "typedserve.cli",
        "typedserve.demo",
        "typedserve.metrics",
        "typedserve.__main__",
        "typedserve",
    ),
]


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the prose")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "typedserve" or name.startswith("typedserve.")}


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    upward = sorted(name for name in imported(path) if layer_of(name) > own)
    assert not upward, f"{module} (layer {own}) imports higher layers: {upward}"


def test_the_prose_names_every_layer() -> None:
    doc = typedserve.__doc__ or ""
    for prefixes in LAYERS[:-1]:
        for prefix in prefixes:
            assert prefix.removeprefix("typedserve.") in doc, f"{prefix} missing from the prose"
