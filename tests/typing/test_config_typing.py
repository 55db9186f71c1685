"""The config models are frozen for mypy too, with the pydantic plugin and without it.

A model declared ``frozen`` only through ``model_config`` is frozen at run time and for the
pydantic mypy plugin, but plain mypy (reading pydantic's ``dataclass_transform``) sees a
mutable class: ``ServerConfig().backlog = 3`` type-checked. ``frozen=True`` as a class keyword
on every model is what both read. The case file ``cases/config_frozen.py`` is checked twice: with
the project's ``mypy.ini`` (which enables the plugin: asserted below) and with the same
settings minus the plugin. A line ending in ``# E: <code>: <text>`` must get exactly that error
code with ``<text>`` in its message; every other line none.
"""

from __future__ import annotations

import configparser
import contextlib
import re
from collections import defaultdict
from pathlib import Path

import pytest
from mypy import api

from typedserve import config as config_module
from typedserve._config_model import _Model
from typedserve.access_log import config as access_log_config_module
from typedserve.metrics import config as metrics_config_module
from typedserve.proxy import config as proxy_config_module
from typedserve.tls import config as tls_config_module

ROOT = Path(__file__).parents[2]
CASE = Path(__file__).parent / "cases" / "config_frozen.py"
_MARKER = re.compile(r"#\s*E:\s*(?P<code>[\w-]+)(?::\s*(?P<text>.*?))?\s*$")
_REPORTED = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[\w-]+)\]$"
)
_PLUGIN = "pydantic.mypy"

Errors = dict[int, list[tuple[str, str]]]


def _markers() -> dict[int, tuple[str, str]]:
    found = {}
    for number, line in enumerate(CASE.read_text().splitlines(), start=1):
        match = _MARKER.search(line)
        if match:
            found[number] = (match["code"], match["text"] or "")
    return found


def _project_config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "mypy.ini")
    return parser


def _without_plugin(path: Path) -> Path:
    """The project's mypy settings with the pydantic plugin (and its section) removed."""
    parser = _project_config()
    parser.remove_option("mypy", "plugins")
    parser.remove_section("pydantic-mypy")
    parser.remove_option("mypy", "files")  # the case file is named on the command line
    parser.set("mypy", "mypy_path", str(ROOT / parser.get("mypy", "mypy_path")))
    with path.open("w") as file:
        parser.write(file)
    return path


def _run_mypy(config_file: Path, cache: Path) -> Errors:
    with contextlib.chdir(ROOT):  # mypy.ini's relative paths (stubs) are relative to it
        stdout, stderr, _ = api.run(
            [
                "--config-file",
                str(config_file),
                "--no-incremental",
                "--cache-dir",
                str(cache),
                "--no-error-summary",
                "--show-error-codes",
                str(CASE.relative_to(ROOT)),
            ]
        )
    assert not stderr, stderr
    errors: Errors = defaultdict(list)
    for line in stdout.splitlines():
        match = _REPORTED.match(line)
        if match:
            assert Path(match["file"]).name == CASE.name, line
            errors[int(match["line"])].append((match["code"], match["message"]))
        else:
            assert ": note:" in line, f"unexpected mypy output: {line}"
    return dict(errors)


@pytest.fixture(scope="module", params=["with the pydantic plugin", "without the plugin"])
def reported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Errors:
    """mypy's errors in the case file, by line, for one of the two configurations."""
    tmp = tmp_path_factory.mktemp("mypy")
    if request.param == "with the pydantic plugin":
        config_file = ROOT / "mypy.ini"
    else:
        config_file = _without_plugin(tmp / "mypy-no-plugin.ini")
    return _run_mypy(config_file, tmp / "cache")


def test_the_project_config_enables_the_pydantic_plugin() -> None:
    # Otherwise the "with" run would test the same thing as the "without" run.
    plugins = _project_config().get("mypy", "plugins", fallback="")
    assert _PLUGIN in [name.strip() for name in plugins.split(",")]


@pytest.mark.timeout(300)
def test_assigning_to_a_config_field_is_a_type_error(reported: Errors) -> None:
    expected = _markers()
    assert set(reported) == set(expected), reported
    for line, (code, text) in expected.items():
        [(reported_code, message)] = reported[line]
        assert (reported_code, text in message) == (code, True), (line, message)


def test_every_config_model_is_in_the_case_file() -> None:
    models = {
        name
        for module in (
            config_module,
            tls_config_module,
            proxy_config_module,
            access_log_config_module,
            metrics_config_module,
        )
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, _Model) and value is not _Model
    }
    marked = set(re.findall(r'defined in "(\w+)" is read-only', CASE.read_text()))
    assert models == marked
    assert len(models) == 12
