"""``ServerConfig``: validation messages, the layered loaders and their precedence."""

from __future__ import annotations

import os
import stat
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from typedserve import (
    ConfigError,
    FDAddress,
    InetAddress,
    Server,
    ServerConfig,
    StreamHandler,
    Timeouts,
    TLSConfig,
    UnixAddress,
    UnixStreamTransport,
)
from typedserve.metrics.config import MetricsConfig

pytestmark = pytest.mark.timeout(30)


# -- validation: every message names the field, the value and the rule ------------------------

BAD_CONFIGS: dict[str, tuple[dict[str, Any], str, object, str]] = {
    "port out of range": (
        {"address": {"port": 70_000}},
        "address.port",
        70_000,
        "less than or equal to 65535",
    ),
    "negative port": ({"address": {"port": -1}}, "address.port", -1, "greater than or equal to 0"),
    "unknown field": ({"backlgo": 5}, "backlgo", 5, "Extra inputs are not permitted"),
    "unknown nested field": (
        {"timeouts": {"idel": 5}},
        "timeouts.idel",
        5,
        "Extra inputs are not permitted",
    ),
    "unix path too long": (
        {"address": {"kind": "unix", "path": "/" + "x" * 120}},
        "address.path",
        "/" + "x" * 120,
        "at most 107 bytes, this one is 121",
    ),
    "dual_stack on an IPv4 host": (
        {"address": {"host": "127.0.0.1", "dual_stack": True}},
        "address.dual_stack",
        True,
        "dual_stack=True needs an IPv6 host such as '::', got host='127.0.0.1'",
    ),
    "wrong type": ({"backlog": "many"}, "backlog", "many", "valid integer"),
    "unknown address kind": (
        {"address": {"kind": "tcp", "port": 1}},
        "address",
        {"kind": "tcp", "port": 1},
        "kind must be 'inet', 'unix' or 'fd'",
    ),
    "non-positive timeout": ({"timeouts": {"idle": 0}}, "timeouts.idle", 0, "greater than 0"),
    "unknown truncation policy": (
        {"limits": {"truncated": "clip"}},
        "limits.truncated",
        "clip",
        "'drop' or 'flag'",
    ),
    "unix mode out of range": (
        {"address": {"path": "/tmp/x.sock", "mode": 0o17777}},
        "address.mode",
        0o17777,
        "a file mode is from 0 to 0o7777, this one is 0o17777",
    ),
    "unix mode in text that is not octal": (
        {"address": {"path": "/tmp/x.sock", "mode": "0o789"}},
        "address.mode",
        "0o789",
        "octal digits, such as '0660', '660' or '0o660'",
    ),
    "an empty string for None": (
        {"timeouts": {"request": ""}},
        "timeouts.request",
        "",
        "to unset this field write 'none'",
    ),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_invalid_config_names_field_value_and_rule(case: str) -> None:
    data, field, value, rule = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_data(data, source="server.toml")
    message = str(caught.value)
    assert message.splitlines()[0] == "invalid server config (server.toml):"
    assert f"  {field} = {value!r}: " in message
    assert rule in message
    [(problem_field, problem_value, problem_rule)] = caught.value.problems
    assert (problem_field, problem_value) == (field, value)
    assert rule in problem_rule


@pytest.mark.timeout(10)
def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_data({"backlog": -1, "timeouts": {"poll": -2}, "nope": 1})
    assert sorted(field for field, _, _ in caught.value.problems) == [
        "backlog",
        "nope",
        "timeouts.poll",
    ]
    assert len(str(caught.value).splitlines()) == 4


@pytest.mark.timeout(10)
def test_a_missing_required_field_says_so_without_quoting_its_parent() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_data({"address": {"kind": "unix"}})
    [line] = str(caught.value).splitlines()[1:]
    assert line.startswith("  address.path = ")
    assert "Field required" in line
    assert "'kind'" not in line  # the value shown is the field's, not the enclosing table


@pytest.mark.timeout(10)
def test_unix_path_must_not_contain_nul() -> None:
    with pytest.raises(pydantic.ValidationError, match="must not contain NUL"):
        UnixAddress(path="a\0b")


@pytest.mark.timeout(10)
def test_config_is_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.backlog = 1  # type: ignore[misc]  # the point: assignment is rejected


@pytest.mark.timeout(10)
def test_address_kind_is_inferred_from_its_keys() -> None:
    assert isinstance(ServerConfig.from_data({"address": {"path": "@x"}}).address, UnixAddress)
    assert isinstance(ServerConfig.from_data({"address": {"fd": 3}}).address, FDAddress)
    assert isinstance(ServerConfig.from_data({"address": {"port": 1}}).address, InetAddress)


# -- loaders and precedence: defaults < TOML < environment < overrides --------------------------


TOML = """
backlog = 10
reuse_port = true

[address]
host = "::1"
port = 1000

[timeouts]
idle = 5.0
request = 50.0
"""


@pytest.fixture
def toml_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(TOML)
    return path


@pytest.mark.timeout(10)
def test_layers_override_field_by_field_in_documented_order(toml_file: Path) -> None:
    environ = {
        "TYPEDSERVE_ADDRESS__PORT": "2000",  # env beats TOML
        "TYPEDSERVE_BACKLOG": "20",  # env beats TOML, overrides beat env
        "TYPEDSERVE_TIMEOUTS__IDLE": "6",
        "OTHER_VARIABLE": "ignored",
    }
    config = ServerConfig.load(
        toml=toml_file, environ=environ, overrides={"backlog": 30, "timeouts.request": 70}
    )
    assert config.address == InetAddress(host="::1", port=2000)  # host from TOML
    assert config.backlog == 30
    assert config.reuse_port is True  # TOML beats the default
    assert config.reuse_address is True  # the default, no layer sets it
    assert config.timeouts == Timeouts(idle=6, request=70)


@pytest.mark.timeout(10)
def test_each_layer_alone(toml_file: Path) -> None:
    assert ServerConfig.load(environ={}) == ServerConfig()
    assert ServerConfig.load(toml=toml_file, environ={}) == ServerConfig.from_toml(toml_file)
    assert ServerConfig.from_toml(toml_file).address == InetAddress(host="::1", port=1000)
    env = {"TYPEDSERVE_ADDRESS__PORT": "2000"}
    assert ServerConfig.load(environ=env) == ServerConfig.from_env(env)
    assert ServerConfig.load(environ={}, overrides={"backlog": 3}) == ServerConfig(backlog=3)


@pytest.mark.timeout(10)
def test_load_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYPEDSERVE_BACKLOG", "77")
    assert ServerConfig.load().backlog == 77
    assert ServerConfig.from_env().backlog == 77
    assert ServerConfig.load(environ={}).backlog == ServerConfig().backlog


@pytest.mark.timeout(10)
def test_a_layer_naming_another_address_kind_replaces_the_address(toml_file: Path) -> None:
    config = ServerConfig.load(
        toml=toml_file, environ={}, overrides={"address.kind": "unix", "address.path": "@a"}
    )
    assert config.address == UnixAddress(path="@a")  # no stray host/port from the TOML file


@pytest.mark.timeout(10)
def test_errors_name_the_layers_they_came_from(toml_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid server config \(env\):\n  address.port = 'x'"):
        ServerConfig.from_env({"TYPEDSERVE_ADDRESS__PORT": "x"})
    with pytest.raises(ConfigError, match=rf"\({toml_file} < env < overrides\)"):
        ServerConfig.load(
            toml=toml_file, environ={"TYPEDSERVE_BACKLOG": "1"}, overrides={"backlog": -1}
        )
    with pytest.raises(ConfigError, match=r"\(overrides\):\n  address.port = 65536"):
        ServerConfig().with_overrides({"address.port": 65_536})


@pytest.mark.timeout(10)
def test_unreadable_and_invalid_toml_files_are_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"{missing}: cannot read the config file"):
        ServerConfig.from_toml(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("backlog = = 1\n")
    with pytest.raises(ConfigError, match=f"{broken}: not valid TOML"):
        ServerConfig.from_toml(broken)


@pytest.mark.timeout(10)
def test_a_dotted_path_through_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"backlog\.size: 'backlog' is a value, not a table"):
        ServerConfig().with_overrides({"backlog": 1, "backlog.size": 2})


# -- a file mode is octal, from every source ----------------------------------------------------

OCTAL_SPELLINGS = ["0660", "660", "0o660", "0O660", " 0660 "]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", OCTAL_SPELLINGS)
def test_a_mode_from_the_environment_is_octal(text: str) -> None:
    environ = {"TYPEDSERVE_ADDRESS__PATH": "/tmp/x.sock", "TYPEDSERVE_ADDRESS__MODE": text}
    assert ServerConfig.from_env(environ).address == UnixAddress(path="/tmp/x.sock", mode=0o660)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("toml", "mode"),
    [
        ('mode = "0660"', 0o660),
        ('mode = "660"', 0o660),
        ('mode = "0o660"', 0o660),
        ("mode = 0o660", 0o660),  # a TOML integer in octal notation
        ("mode = 432", 432),  # integers stay integers: 432 == 0o660
        ("mode = 660", 660),  # ... so a bare 660 is decimal (0o1224), as TOML says
    ],
)
def test_a_mode_from_a_toml_string_is_octal_and_an_integer_stays_one(
    tmp_path: Path, toml: str, mode: int
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(f'[address]\npath = "/tmp/x.sock"\n{toml}\n')
    address = ServerConfig.from_toml(path).address
    assert isinstance(address, UnixAddress)
    assert address.mode == mode


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", OCTAL_SPELLINGS)
def test_a_mode_from_explicit_overrides_is_octal(text: str) -> None:
    # The explicit layer is where the command line's flags go, as strings.
    config = ServerConfig.load(
        environ={}, overrides={"address.path": "/tmp/x.sock", "address.mode": text}
    )
    assert config.address == UnixAddress(path="/tmp/x.sock", mode=0o660)
    unix = ServerConfig(address=UnixAddress(path="/tmp/x.sock", mode=0o600))
    assert unix.with_overrides({"address.mode": text}).address == config.address


@pytest.mark.timeout(10)
def test_a_mode_in_python_is_an_int_or_octal_text() -> None:
    assert UnixAddress(path="/tmp/x.sock", mode=0o660).mode == 0o660
    assert UnixAddress(path="/tmp/x.sock", mode=432).mode == 0o660
    assert UnixAddress.model_validate({"path": "/tmp/x.sock", "mode": "0660"}).mode == 0o660
    assert UnixAddress(path="/tmp/x.sock", mode=0o7777).mode == 0o7777
    assert UnixAddress(path="/tmp/x.sock", mode=0).mode == 0


BAD_MODES: list[object] = [
    0o10000,
    -1,
    "0o10000",
    "17777",
    "-660",
    "0660x",
    "8",
    "0x1b0",
    "6_60",
    "0o",
    True,
    660.5,
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("mode", BAD_MODES, ids=repr)
def test_a_bad_mode_is_a_config_error_naming_the_field(mode: object) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_data({"address": {"path": "/tmp/x.sock", "mode": mode}})
    [(field, value, _)] = caught.value.problems
    assert (field, value) == ("address.mode", mode)
    with pytest.raises(ConfigError, match=r"\(env\):\n  address.mode = "):
        ServerConfig.from_env(
            {"TYPEDSERVE_ADDRESS__PATH": "/tmp/x.sock", "TYPEDSERVE_ADDRESS__MODE": str(mode)}
        )


@pytest.mark.timeout(10)
def test_a_json_dump_writes_the_mode_in_octal_and_reads_it_back() -> None:
    config = ServerConfig(address=UnixAddress(path="/tmp/x.sock", mode=0o660))
    assert '"mode":"0o660"' in config.model_dump_json()
    assert config.model_dump()["address"]["mode"] == 0o660  # a Python dump keeps the int
    assert ServerConfig.model_validate_json(config.model_dump_json()) == config


@pytest.mark.timeout(30)
def test_the_command_line_reads_the_mode_in_octal_and_none_from_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[address]\npath = "/tmp/x.sock"\nmode = "0600"\n[timeouts]\nrequest = 30\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TYPEDSERVE_")}
    environ |= {"TYPEDSERVE_ADDRESS__MODE": "0660", "TYPEDSERVE_TIMEOUTS__REQUEST": "none"}
    result = subprocess.run(
        [sys.executable, "-m", "typedserve", "check-config", str(path)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert '"mode": "0o660"' in result.stdout  # printed in octal, read as octal
    assert '"request": null' in result.stdout


@pytest.mark.timeout(10)
def test_an_octal_mode_from_the_environment_is_the_socket_file_mode(
    unix_socket_path: str,
) -> None:
    environ = {"TYPEDSERVE_ADDRESS__PATH": unix_socket_path, "TYPEDSERVE_ADDRESS__MODE": "0660"}
    config = ServerConfig.load(environ=environ)
    with Server(config=config, transport=UnixStreamTransport(), handler=Quiet):
        assert stat.S_IMODE(os.lstat(unix_socket_path).st_mode) == 0o660


class Quiet(StreamHandler):
    """A handler that is never called (the server is only bound)."""

    def handle(self) -> None:
        """Nothing to do."""


# -- resetting a value to None: the one spelling is ``none`` --------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("spelling", ["none", "None", "NONE", " none "])
def test_the_environment_resets_a_toml_value_to_none(tmp_path: Path, spelling: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        '[address]\npath = "/tmp/x.sock"\nmode = "0600"\n'
        "[timeouts]\nidle = 5.0\nrequest = 30.0\n[limits]\nmax_in_flight = 8\n"
    )
    from_toml = ServerConfig.load(toml=path, environ={})
    assert from_toml.timeouts == Timeouts(idle=5.0, request=30.0)
    assert from_toml.limits.max_in_flight == 8
    environ = {
        "TYPEDSERVE_TIMEOUTS__IDLE": spelling,
        "TYPEDSERVE_TIMEOUTS__REQUEST": spelling,
        "TYPEDSERVE_LIMITS__MAX_IN_FLIGHT": spelling,
        "TYPEDSERVE_ADDRESS__MODE": spelling,
    }
    config = ServerConfig.load(toml=path, environ=environ)
    assert config.timeouts == Timeouts(idle=None, request=None)
    assert config.limits.max_in_flight is None
    assert config.address == UnixAddress(path="/tmp/x.sock", mode=None)


@pytest.mark.timeout(10)
def test_explicit_overrides_and_toml_strings_say_none_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[timeouts]\nfirst_byte = "none"\n')  # TOML has no null: the same word
    assert ServerConfig.from_toml(path).timeouts.first_byte is None
    config = ServerConfig.load(toml=path, environ={}, overrides={"timeouts.request": "none"})
    assert config.timeouts == Timeouts(first_byte=None, request=None)
    assert ServerConfig().with_overrides({"timeouts.request": None}).timeouts.request is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ["", "  ", "null", "Null", "nil", "0"])
def test_other_spellings_of_none_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_env(
            {"TYPEDSERVE_TIMEOUTS__REQUEST": text, "TYPEDSERVE_LIMITS__MAX_IN_FLIGHT": text}
        )
    problems = {field: value for field, value, _ in caught.value.problems}
    assert problems == {"timeouts.request": text, "limits.max_in_flight": text}
    if text.strip().lower() in ("", "null"):
        assert "to unset this field write 'none'" in str(caught.value)


# -- properties -------------------------------------------------------------------------------

ports = st.integers(min_value=0, max_value=65_535)
seconds = st.none() | st.floats(min_value=0.001, max_value=86_400)
inet = st.builds(
    InetAddress,
    host=st.sampled_from(["127.0.0.1", "::1", "localhost", "0.0.0.0"]),
    port=ports,
)
unix = st.builds(
    UnixAddress,
    path=st.text(string.ascii_letters + "/._-", min_size=1, max_size=100),
    mode=st.none() | st.integers(0, 0o7777),
    stale=st.sampled_from(["probe", "error"]),
)
files = (
    st.text(string.ascii_letters + "/._-", min_size=1, max_size=40)
    .filter(lambda text: text.lower() not in ("none", "null"))  # how text spells None, or not
    .map(Path)
)
tls = st.builds(
    TLSConfig,
    certfile=files.filter(lambda path: path != Path(".")),
    keyfile=st.none() | files.filter(lambda path: path != Path(".")),
    alpn=st.lists(st.sampled_from(["h2", "http/1.1", "acme-tls/1"]), max_size=3).map(tuple),
    minimum_version=st.sampled_from(["TLSv1.2", "TLSv1.3"]),
    ciphers=st.none() | st.sampled_from(["ECDHE+AESGCM", "HIGH:!aNULL"]),
)
configs = st.builds(
    ServerConfig,
    address=inet | unix,
    backlog=st.integers(0, 65_535),
    reuse_port=st.booleans(),
    timeouts=st.builds(
        Timeouts,
        idle=seconds,
        first_byte=seconds,
        request=seconds,
        poll=seconds,
        handshake=seconds,
    ),
    tls=st.none() | tls,
    metrics=st.builds(
        MetricsConfig,
        duration_histogram=st.booleans(),
        buckets=st.lists(
            st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=20, unique=True
        ).map(lambda bounds: tuple(sorted(bounds))),
    ),
)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; ``None`` timeouts are kept (they are not all
    defaults: ``timeouts.first_byte`` and ``timeouts.request`` default to a number)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif value is not None or prefix == "timeouts.":
            flat[prefix + key] = value
    return flat


@given(configs)
def test_a_dumped_config_validates_back_to_itself(config: ServerConfig) -> None:
    assert ServerConfig.from_data(config.model_dump()) == config
    assert ServerConfig.from_data(config.model_dump(mode="json")) == config


@given(configs)
def test_dotted_overrides_rebuild_any_config(config: ServerConfig) -> None:
    overrides = flatten(config.model_dump())
    assert ServerConfig().with_overrides(overrides) == config


def as_text(dotted: str, value: object) -> str:
    """How a person writes ``value`` in an environment variable: ``none``, a mode in octal."""
    if value is None:
        return "none"
    if dotted == "address.mode":
        return f"{value:o}"
    if dotted == "tls.alpn":
        assert isinstance(value, tuple)
        return ",".join(value) or "none"
    if dotted == "metrics.buckets":
        assert isinstance(value, tuple)
        return ",".join(map(repr, value))
    return str(value)


@given(configs)
def test_environment_strings_rebuild_any_config(config: ServerConfig) -> None:
    environ = {
        "TYPEDSERVE_" + dotted.upper().replace(".", "__"): as_text(dotted, value)
        for dotted, value in flatten(config.model_dump()).items()
    }
    assert ServerConfig.from_env(environ) == config


@given(base=configs, port=ports)
def test_an_override_changes_only_its_field(base: ServerConfig, port: int) -> None:
    changed = base.with_overrides({"address.kind": "inet", "address.port": port})
    assert isinstance(changed.address, InetAddress)
    assert changed.address.port == port
    assert changed.model_dump(exclude={"address"}) == base.model_dump(exclude={"address"})


@given(st.integers().filter(lambda n: not 0 <= n <= 65_535))
def test_any_port_out_of_range_is_rejected_by_name(port: int) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig().with_overrides({"address.port": port})
    assert [(f, v) for f, v, _ in caught.value.problems] == [("address.port", port)]
