"""``TLSConfig`` as data: validation messages, the ``[tls]`` table from TOML, the environment,
dotted overrides and the ``serve`` flags, and ``timeouts.handshake``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tls.conftest import PKI
from typedserve import ConfigError, ServerConfig, TLSConfig
from typedserve.tls.config import CertKeyPair

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def _problems(data: dict[str, Any]) -> list[tuple[str, object, str]]:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_data(data)
    return list(caught.value.problems)


# -- validation -------------------------------------------------------------------------------

BAD_TLS: dict[str, tuple[dict[str, Any], str, object, str]] = {
    "no certfile": ({}, "tls.certfile", None, "Field required"),
    "empty certfile": ({"certfile": ""}, "tls.certfile", "", "a file path, not empty"),
    "client_auth without a CA": (
        {"client_auth": "required"},
        "tls.client_auth",
        "required",
        "client_auth='required' verifies client certificates: set client_ca",
    ),
    "optional client_auth without a CA": (
        {"client_auth": "optional"},
        "tls.client_auth",
        "optional",
        "set client_ca",
    ),
    "two password sources": (
        {"password_env": "PW", "password_file": "pw.txt"},
        "tls.password_file",
        "pw.txt",
        "set password_env or password_file, not both",
    ),
    "not a variable name": (
        {"password_env": "MY PW"},
        "tls.password_env",
        "MY PW",
        "the name of an environment variable",
    ),
    "empty ALPN protocol": ({"alpn": ["h2", ""]}, "tls.alpn.1", "", "1 to 255 printable ASCII"),
    "non-ASCII ALPN protocol": ({"alpn": ["hé"]}, "tls.alpn.0", "hé", "printable ASCII"),
    "long ALPN protocol": ({"alpn": ["x" * 256]}, "tls.alpn.0", "x" * 256, "1 to 255"),
    "old TLS": (
        {"minimum_version": "TLSv1.1"},
        "tls.minimum_version",
        "TLSv1.1",
        "'TLSv1.2' or 'TLSv1.3'",
    ),
    "empty ciphers": ({"ciphers": ""}, "tls.ciphers", "", "to unset this field write 'none'"),
    "uppercase server name": (
        {"sni": {"A.example": {"certfile": "a.pem"}}},
        'tls.sni["A.example"]',
        "A.example",
        "a lowercase DNS name such as 'api.example.com', or a wildcard such as "
        "'*.example.com' (write 'a.example')",
    ),
    "wildcard over a top-level domain": (
        {"sni": {"*.com": {"certfile": "a.pem"}}},
        'tls.sni["*.com"]',
        "*.com",
        "a wildcard covers one label under at least two",
    ),
    "IP address as a server name": (
        {"sni": {"10.0.0.1": {"certfile": "a.pem"}}},
        'tls.sni["10.0.0.1"]',
        "10.0.0.1",
        "an IP address is never sent as a server name",
    ),
    "SNI pair without a certfile": (
        {"sni": {"a.example": {"keyfile": "a.key"}}},
        'tls.sni["a.example"].certfile',
        None,
        "Field required",
    ),
    "unknown TLS field": ({"verify": True}, "tls.verify", True, "Extra inputs are not permitted"),
}


@pytest.mark.parametrize("case", sorted(BAD_TLS))
def test_an_invalid_tls_table_names_the_field_and_the_rule(case: str) -> None:
    fields, field, value, rule = BAD_TLS[case]
    data = {"certfile": "server.pem", **fields} if case != "no certfile" else fields
    problems = _problems({"tls": data})
    assert [p[0] for p in problems] == [field]
    [(_, shown, message)] = problems
    if value is not None:
        assert shown == value
    assert rule in message


def test_a_valid_table_is_frozen_values_and_opens_no_file() -> None:
    tls = TLSConfig.model_validate(
        {
            "certfile": "/nonexistent/server.pem",  # files are read by build_context only
            "client_ca": "/nonexistent/ca.pem",
            "client_auth": "required",
            "alpn": ["h2", "http/1.1"],
            "sni": {"*.example.com": {"certfile": "/nonexistent/wild.pem"}},
        }
    )
    assert tls.certfile == Path("/nonexistent/server.pem")
    assert tls.alpn == ("h2", "http/1.1")
    assert tls.sni == {"*.example.com": CertKeyPair(certfile=Path("/nonexistent/wild.pem"))}
    with pytest.raises(ValueError, match="frozen"):
        tls.certfile = Path("other.pem")  # type: ignore[misc]  # the point of the test


def test_timeouts_handshake_defaults_to_ten_seconds_and_may_be_unbounded() -> None:
    assert ServerConfig().timeouts.handshake == 10.0
    assert ServerConfig().tls is None
    unbounded = ServerConfig.from_env({"TYPEDSERVE_TIMEOUTS__HANDSHAKE": "none"})
    assert unbounded.timeouts.handshake is None
    problems = _problems({"timeouts": {"handshake": 0}})
    assert problems[0][:2] == ("timeouts.handshake", 0)


# -- loading ----------------------------------------------------------------------------------

TOML = """
[timeouts]
handshake = 5

[tls]
certfile = "/etc/app/server.pem"
keyfile = "/etc/app/server.key"
password_env = "APP_KEY_PW"
client_ca = "/etc/app/ca.pem"
client_auth = "optional"
alpn = ["h2", "http/1.1"]
minimum_version = "TLSv1.3"
ciphers = "ECDHE+AESGCM"

[tls.sni."api.example.com"]
certfile = "/etc/app/api.pem"
keyfile = "/etc/app/api.key"

[tls.sni."*.example.org"]
certfile = "/etc/app/org.pem"
"""


def test_the_tls_table_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(TOML)
    config = ServerConfig.load(toml=path, environ={})
    assert config.timeouts.handshake == 5.0
    assert config.tls == TLSConfig(
        certfile=Path("/etc/app/server.pem"),
        keyfile=Path("/etc/app/server.key"),
        password_env="APP_KEY_PW",
        client_ca=Path("/etc/app/ca.pem"),
        client_auth="optional",
        alpn=("h2", "http/1.1"),
        minimum_version="TLSv1.3",
        ciphers="ECDHE+AESGCM",
        sni={
            "api.example.com": CertKeyPair(
                certfile=Path("/etc/app/api.pem"), keyfile=Path("/etc/app/api.key")
            ),
            "*.example.org": CertKeyPair(certfile=Path("/etc/app/org.pem")),
        },
    )


def test_the_environment_sets_tls_fields_over_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(TOML)
    environ = {
        "TYPEDSERVE_TLS__CERTFILE": "/run/new.pem",
        "TYPEDSERVE_TLS__KEYFILE": "none",  # the key is in the new certfile
        "TYPEDSERVE_TLS__ALPN": "http/1.1, h2",
        "TYPEDSERVE_TLS__CLIENT_AUTH": "required",
    }
    config = ServerConfig.load(toml=path, environ=environ)
    assert config.tls is not None
    assert config.tls.certfile == Path("/run/new.pem")
    assert config.tls.keyfile is None
    assert config.tls.alpn == ("http/1.1", "h2")
    assert config.tls.client_auth == "required"
    assert config.tls.client_ca == Path("/etc/app/ca.pem")  # from the file
    assert "api.example.com" in config.tls.sni
    assert ServerConfig.load(toml=path, environ={"TYPEDSERVE_TLS": "none"}).tls is None


def test_tls_from_the_environment_alone_and_from_dotted_overrides() -> None:
    config = ServerConfig.from_env(
        {"TYPEDSERVE_TLS__CERTFILE": "s.pem", "TYPEDSERVE_TLS__PASSWORD_FILE": "pw"}
    )
    assert config.tls == TLSConfig(certfile=Path("s.pem"), password_file=Path("pw"))
    overridden = config.with_overrides({"tls.minimum_version": "TLSv1.3", "tls.alpn": "none"})
    assert overridden.tls is not None
    assert overridden.tls.minimum_version == "TLSv1.3"
    assert overridden.tls.alpn == ()
    problems = _problems(ServerConfig().model_dump() | {"tls": {"keyfile": "k.pem"}})
    assert problems[0][0] == "tls.certfile"


def test_a_dumped_tls_config_validates_back_to_itself(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(TOML)
    config = ServerConfig.load(toml=path, environ={})
    assert ServerConfig.from_data(config.model_dump()) == config
    assert ServerConfig.model_validate_json(config.model_dump_json()) == config


def test_importing_the_config_does_not_import_ssl() -> None:
    code = "import sys, typedserve.config; print('ssl' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "False"


# -- the serve flags --------------------------------------------------------------------------


def _serve(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "typedserve", "serve", "typedserve.demo:StreamEcho", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_flags_set_tls_and_the_files_are_read_before_binding(
    pki: PKI, tmp_path: Path
) -> None:
    # The flags reach the config, and the files are read up front: a key of another
    # certificate is refused by name, exit 2 (on port 0, binding would have succeeded and the
    # server would have run until the subprocess timeout).
    mismatched = _serve(
        "--port", "0", "--certfile", str(pki.default.cert), "--keyfile", str(pki.a.key)
    )  # fmt: skip
    assert mismatched.returncode == 2, mismatched.stderr
    assert mismatched.stderr.startswith("typedserve: invalid TLS config: tls.keyfile = ")
    assert f"{str(pki.a.key)!r}: the key does not match" in mismatched.stderr
    assert len(mismatched.stderr.splitlines()) == 1
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("no CA here\n")
    no_ca = _serve("--port", "0", "--certfile", str(pki.combined), "--client-ca", str(bad_ca))
    assert no_ca.returncode == 2, no_ca.stderr
    assert f"tls.client_ca = {str(bad_ca)!r}: no CA certificate in it" in no_ca.stderr
    key_only = _serve("--port", "0", "--keyfile", str(pki.default.key))
    assert key_only.returncode == 2
    assert "tls.certfile = (not set): Field required" in key_only.stderr
