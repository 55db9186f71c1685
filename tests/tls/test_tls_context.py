"""``build_context`` and ``TLSContextSource``: real handshakes with the context a config builds,
and a ``ConfigError`` naming the field, the file and the reason for each file that cannot serve.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tls.conftest import PASSWORD, PKI, handshake, server_refusal
from typedserve import ConfigError, TLSConfig, build_context
from typedserve.tls.config import CertKeyPair
from typedserve.tls.context import TLSContextSource

pytestmark = pytest.mark.timeout(30)


def _tls(pki: PKI, **fields: Any) -> TLSConfig:
    return TLSConfig(certfile=pki.default.cert, keyfile=pki.default.key, **fields)


def _sni(pki: PKI) -> dict[str, CertKeyPair]:
    return {
        name: CertKeyPair(certfile=pair.cert, keyfile=pair.key)
        for name, pair in (("a.example", pki.a), ("b.example", pki.b), ("*.wild.example", pki.wild))
    }


# -- a valid config serves ------------------------------------------------------------------


def test_a_valid_config_builds_a_context_that_serves(pki: PKI) -> None:
    context = build_context(_tls(pki))
    assert context.verify_mode == ssl.CERT_NONE
    with handshake(context, pki.client_context(), "localhost") as ends:
        assert ends.served_names() == {"localhost"}
        ends.client.sendall(b"ping")
        assert ends.server.recv(4) == b"ping"
        assert ends.server.version() in ("TLSv1.2", "TLSv1.3")


def test_every_context_refuses_renegotiation_and_sends_no_tickets(pki: PKI) -> None:
    context = build_context(_tls(pki))
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_NO_TICKET
    assert context.options & ssl.OP_NO_COMPRESSION


def test_the_key_may_be_in_the_certfile(pki: PKI) -> None:
    context = build_context(TLSConfig(certfile=pki.combined))
    with handshake(context, pki.client_context(), "127.0.0.1") as ends:
        assert "localhost" in ends.served_names()


@pytest.mark.parametrize(
    ("server_name", "served"),
    [
        ("a.example", "a.example"),
        ("b.example", "b.example"),
        ("x.wild.example", "*.wild.example"),
        ("c.example", "localhost"),  # a name sni does not list: the default certificate
        (None, "localhost"),  # no name asked for
    ],
)
def test_sni_picks_the_certificate_by_name(pki: PKI, server_name: str | None, served: str) -> None:
    context = build_context(_tls(pki, sni=_sni(pki)))
    client = pki.client_context()
    client.check_hostname = served != "localhost"  # the default cert does not name c.example
    with handshake(context, client, server_name) as ends:
        assert served in ends.served_names()


def test_a_wildcard_covers_one_label_only(pki: PKI) -> None:
    context = build_context(_tls(pki, sni=_sni(pki)))
    client = pki.client_context()
    client.check_hostname = False
    for name in ("wild.example", "a.b.wild.example"):
        with handshake(context, client, name) as ends:
            assert ends.served_names() == {"localhost"}


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["http/1.1"], "http/1.1"), (["http/1.1", "h2"], "h2"), (["spdy/3"], None)],
)
def test_alpn_is_negotiated_in_the_servers_order_or_left_out(
    pki: PKI, offered: list[str], chosen: str | None
) -> None:
    context = build_context(_tls(pki, alpn=("h2", "http/1.1"), sni=_sni(pki)))
    client = pki.client_context()
    client.set_alpn_protocols(offered)
    for name in ("localhost", "a.example"):  # the default context and an SNI one
        with handshake(context, client, name) as ends:
            assert ends.client.selected_alpn_protocol() == chosen
            assert ends.server.selected_alpn_protocol() == chosen


@pytest.mark.parametrize("server_name", ["localhost", "a.example"])
def test_client_auth_required_refuses_a_client_without_a_certificate(
    pki: PKI, server_name: str
) -> None:
    context = build_context(_tls(pki, client_ca=pki.ca_file, client_auth="required", sni=_sni(pki)))
    failure = server_refusal(context, pki.client_context(), server_name)
    assert isinstance(failure, ssl.SSLError)
    assert "CERTIFICATE" in str(failure).upper()
    with handshake(context, pki.client_context(with_cert=True), server_name) as ends:
        peer = ends.server.getpeercert()
        assert peer is not None
        assert ((("commonName", "client"),)) in peer["subject"]


def test_client_auth_optional_verifies_a_certificate_if_one_is_sent(pki: PKI) -> None:
    context = build_context(_tls(pki, client_ca=pki.ca_file, client_auth="optional"))
    assert context.verify_mode == ssl.CERT_OPTIONAL
    with handshake(context, pki.client_context(), "localhost") as ends:
        assert ends.server.getpeercert() is None
    with handshake(context, pki.client_context(with_cert=True), "localhost") as ends:
        assert ends.server.getpeercert()


def test_minimum_version_and_ciphers_apply(pki: PKI) -> None:
    old_client = pki.client_context()
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    tls13 = build_context(_tls(pki, minimum_version="TLSv1.3"))
    assert isinstance(server_refusal(tls13, old_client, "localhost"), ssl.SSLError)
    gcm = build_context(_tls(pki, ciphers="ECDHE+AESGCM"))
    with handshake(gcm, old_client, "localhost") as ends:
        name, version, _ = ends.client.cipher() or ("", "", 0)
        assert version == "TLSv1.2"
        assert "GCM" in name


# -- the key's password ---------------------------------------------------------------------


def test_the_password_comes_from_the_named_environment_variable(pki: PKI) -> None:
    tls = TLSConfig(certfile=pki.default.cert, keyfile=pki.encrypted_key, password_env="KEY_PW")
    context = build_context(tls, environ={"KEY_PW": PASSWORD.decode()})
    with handshake(context, pki.client_context(), "localhost") as ends:
        assert "localhost" in ends.served_names()


def test_the_password_comes_from_the_first_line_of_a_file(pki: PKI, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(PASSWORD + b"\n")
    tls = TLSConfig(certfile=pki.default.cert, keyfile=pki.encrypted_key, password_file=secret)
    with handshake(build_context(tls), pki.client_context(), "localhost") as ends:
        assert "localhost" in ends.served_names()


def _refusal(tls: TLSConfig, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build_context(tls, environ={} if environ is None else environ)
    message = str(caught.value)
    assert "\n" not in message, "one line: it is logged as one"
    assert "Traceback" not in message
    return caught.value


def test_password_mistakes_name_the_field_the_file_and_the_reason(pki: PKI, tmp_path: Path) -> None:
    def encrypted(**password: Any) -> TLSConfig:
        return TLSConfig(certfile=pki.default.cert, keyfile=pki.encrypted_key, **password)

    key = repr(str(pki.encrypted_key))
    no_password = _refusal(encrypted())
    assert f"tls.keyfile = {key}: the key is encrypted: set tls.password_env" in str(no_password)
    unset = _refusal(encrypted(password_env="KEY_PW"))
    assert "tls.password_env = 'KEY_PW': the environment variable KEY_PW is not set" in str(unset)
    wrong = _refusal(encrypted(password_env="KEY_PW"), {"KEY_PW": "wrong"})
    assert f"tls.keyfile = {key}: cannot decrypt the key with tls.password_env (KEY_PW)" in str(
        wrong
    )
    missing = tmp_path / "no-such-password"
    absent = _refusal(encrypted(password_file=missing))
    assert f"tls.password_file = {str(missing)!r}: cannot read it: No such file" in str(absent)


# -- every file that cannot serve is named ----------------------------------------------------


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pem"
    path.write_text("not a certificate\n")
    return path


Fields = Callable[[PKI, Path], dict[str, Any]]
Shown = Callable[[PKI, Path], object]

# case -> (the tls table, the field named, the value shown (a path), the reason)
MISTAKES: dict[str, tuple[Fields, str, Shown, str]] = {
    "missing certfile": (
        lambda pki, tmp: {"certfile": tmp / "nope.pem", "keyfile": pki.default.key},
        "tls.certfile",
        lambda pki, tmp: tmp / "nope.pem",
        "cannot read it: No such file or directory",
    ),
    "missing keyfile": (
        lambda pki, tmp: {"certfile": pki.default.cert, "keyfile": tmp / "nope.key"},
        "tls.keyfile",
        lambda pki, tmp: tmp / "nope.key",
        "cannot read it: No such file or directory",
    ),
    "a directory": (
        lambda pki, tmp: {"certfile": tmp, "keyfile": pki.default.key},
        "tls.certfile",
        lambda pki, tmp: tmp,
        "cannot read it: Is a directory",
    ),
    "key of another certificate": (
        lambda pki, tmp: {"certfile": pki.default.cert, "keyfile": pki.a.key},
        "tls.keyfile",
        lambda pki, tmp: pki.a.key,
        "the key does not match the certificate in tls.certfile",
    ),
    "not a certificate": (
        lambda pki, tmp: {"certfile": _garbage(tmp), "keyfile": pki.default.key},
        "tls.certfile",
        lambda pki, tmp: tmp / "garbage.pem",
        "no PEM certificate in it",
    ),
    "a certificate as the key": (
        lambda pki, tmp: {"certfile": pki.default.cert, "keyfile": pki.a.cert},
        "tls.keyfile",
        lambda pki, tmp: pki.a.cert,
        "no PEM private key in it",
    ),
    "no keyfile and no key in the certfile": (
        lambda pki, tmp: {"certfile": pki.default.cert},
        "tls.certfile",
        lambda pki, tmp: pki.default.cert,
        "no PEM private key in it; set tls.keyfile or append the key to this file",
    ),
    "client CA without a certificate": (
        lambda pki, tmp: {
            "certfile": pki.default.cert,
            "keyfile": pki.default.key,
            "client_ca": _garbage(tmp),
            "client_auth": "required",
        },
        "tls.client_ca",
        lambda pki, tmp: tmp / "garbage.pem",
        "no CA certificate in it",
    ),
    "missing client CA": (
        lambda pki, tmp: {
            "certfile": pki.default.cert,
            "keyfile": pki.default.key,
            "client_ca": tmp / "ca.pem",
        },
        "tls.client_ca",
        lambda pki, tmp: tmp / "ca.pem",
        "cannot read it: No such file or directory",
    ),
    "a cipher string that selects nothing": (
        lambda pki, tmp: {
            "certfile": pki.default.cert,
            "keyfile": pki.default.key,
            "ciphers": "NO-SUCH-CIPHER",
        },
        "tls.ciphers",
        lambda pki, tmp: "NO-SUCH-CIPHER",
        "OpenSSL selects no cipher for this string",
    ),
    "an SNI key missing": (
        lambda pki, tmp: {
            "certfile": pki.default.cert,
            "keyfile": pki.default.key,
            "sni": {"a.example": {"certfile": pki.a.cert, "keyfile": tmp / "a.key"}},
        },
        'tls.sni["a.example"].keyfile',
        lambda pki, tmp: tmp / "a.key",
        "cannot read it: No such file or directory",
    ),
    "an SNI key of another certificate": (
        lambda pki, tmp: {
            "certfile": pki.default.cert,
            "keyfile": pki.default.key,
            "sni": {"a.example": {"certfile": pki.a.cert, "keyfile": pki.b.key}},
        },
        'tls.sni["a.example"].keyfile',
        lambda pki, tmp: pki.b.key,
        'the key does not match the certificate in tls.sni["a.example"].certfile',
    ),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_each_unusable_file_is_a_config_error_naming_field_file_and_reason(
    pki: PKI, tmp_path: Path, case: str
) -> None:
    fields, field, value, reason = MISTAKES[case]
    error = _refusal(TLSConfig.model_validate(fields(pki, tmp_path)))
    shown = str(value(pki, tmp_path))
    assert f"invalid TLS config: {field} = {shown!r}: {reason}" in str(error)
    assert error.problems[0][:2] == (field, shown)


# -- reload ---------------------------------------------------------------------------------


def test_reload_keeps_the_old_context_on_a_bad_file_and_switches_on_a_good_one(
    pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki.a.cert, cert)
    shutil.copy(pki.a.key, key)
    source = TLSContextSource(TLSConfig(certfile=cert, keyfile=key))
    first = source.context
    client = pki.client_context()
    client.check_hostname = False

    shutil.copy(pki.b.key, key)  # the key of another certificate: unusable with server.pem
    with caplog.at_level(logging.ERROR, logger="typedserve.server"):
        assert source.reload() is False
    assert source.context is first
    [record] = [r for r in caplog.records if r.name == "typedserve.server"]
    assert record.levelno == logging.ERROR
    line = record.getMessage()
    assert "\n" not in line
    assert f"tls.keyfile = {str(key)!r}: the key does not match" in line
    with handshake(source.context, client, "a.example") as ends:
        assert ends.served_names() == {"a.example"}

    shutil.copy(pki.b.cert, cert)  # now the pair matches: b.example
    done = threading.Event()
    results: list[bool] = []

    def reload_elsewhere() -> None:  # a reload from another thread (an admin endpoint, say)
        results.append(source.reload())
        done.set()

    threading.Thread(target=reload_elsewhere).start()
    assert done.wait(10)
    assert results == [True]
    assert source.context is not first
    with handshake(source.context, client, "b.example") as ends:
        assert ends.served_names() == {"b.example"}


def test_a_source_refuses_a_bad_config_at_once(pki: PKI, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls\.certfile = .*nope\.pem.*No such file"):
        TLSContextSource(TLSConfig(certfile=tmp_path / "nope.pem"))
