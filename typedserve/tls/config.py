"""``TLSConfig``: the ``tls`` table of a server's config, as validated values (no :mod:`ssl`).

The model checks the shape of the values only: paths are paths, names are names, the options
fit together. It does not open the files: a config may be validated on a machine other than
the server's (``typedserve check-config`` on a laptop), and a certificate may be replaced
between validation and use. Like ``UnixAddress.path``, whose directory is not checked either,
the files are checked where they are used: :func:`typedserve.tls.context.build_context` reads
each one and names the field, the path and the reason when one cannot be used. Relative paths
are relative to the server's working directory when the context is built (or reloaded).

The password of an encrypted key is never part of the config (which is dumped, logged and
passed around): ``password_env`` or ``password_file`` says where to read it.

In TOML::

    [tls]
    certfile = "/etc/myapp/server.pem"
    keyfile = "/etc/myapp/server.key"
    client_ca = "/etc/myapp/clients-ca.pem"
    client_auth = "required"
    alpn = ["h2", "http/1.1"]

    [tls.sni."api.example.com"]
    certfile = "/etc/myapp/api.pem"
    keyfile = "/etc/myapp/api.key"

From the environment: ``TYPEDSERVE_TLS__CERTFILE=...``, ``TYPEDSERVE_TLS__ALPN=h2,http/1.1``
(text is split on commas). ``sni`` entries are named by dotted server names, which a dotted
path or a variable name cannot spell: set them in TOML or in Python.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from typedserve._config_model import _NONE_FROM_TEXT, _Model

__all__ = ["CertKeyPair", "ClientAuth", "TLSConfig", "TLSVersion"]

ClientAuth = Literal["none", "optional", "required"]
"""Whether the server asks for a client certificate: ``"none"`` does not ask, ``"optional"``
asks and verifies one if the client sends it, ``"required"`` refuses a client without a valid
one (the handshake fails)."""

TLSVersion = Literal["TLSv1.2", "TLSv1.3"]
"""The oldest protocol version a server accepts."""


def _path_text(value: object) -> object:
    """A path given as text is not empty (``Path("")`` would be the working directory) and has
    no NUL byte."""
    if isinstance(value, str | Path):
        text = str(value)
        if not text.strip() or text == ".":
            raise PydanticCustomError("file_path", "a file path, not empty")
        if "\0" in text:
            raise PydanticCustomError("file_path", "a file path must not contain NUL bytes")
    return value


_FilePath = Annotated[Path, BeforeValidator(_path_text)]
_OptionalFilePath = Annotated[_FilePath | None, _NONE_FROM_TEXT]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SERVER_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


def _server_name(name: str) -> str:
    """A lowercase DNS name (ASCII, IDNs as ``xn--`` A-labels), or ``*.`` and at least two
    labels; not an IP address, which a client never sends as a server name (RFC 6066)."""
    if not _SERVER_NAME.fullmatch(name) or len(name) > 253:
        hint = f" (write {name.lower()!r})" if name.lower() != name else ""
        raise PydanticCustomError(
            "server_name",
            "a server name is a lowercase DNS name such as 'api.example.com', or a wildcard "
            f"such as '*.example.com'{hint}",
        )
    if name.startswith("*.") and name.count(".") < 2:
        raise PydanticCustomError(
            "server_name", "a wildcard covers one label under at least two: '*.example.com'"
        )
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    raise PydanticCustomError(
        "server_name", "an IP address is never sent as a server name; use the default cert"
    )


ServerName = Annotated[str, AfterValidator(_server_name)]
"""A name a client asks for (SNI): ``a.example.com``, or ``*.example.com`` (see
:attr:`TLSConfig.sni`)."""


def _alpn_from_text(value: object) -> object:
    """Text (an environment variable) lists the protocols separated by commas; ``none`` is no
    protocol."""
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return ()
        return tuple(part.strip() for part in value.split(","))
    return value


def _alpn_protocol(protocol: str) -> str:
    """An ALPN protocol id is 1 to 255 bytes of printable ASCII (RFC 7301)."""
    if not protocol.isascii() or not protocol.isprintable() or not 1 <= len(protocol) <= 255:
        raise PydanticCustomError(
            "alpn_protocol", "an ALPN protocol is 1 to 255 printable ASCII characters, e.g. 'h2'"
        )
    return protocol


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise PydanticCustomError(
            "env_name", "the name of an environment variable, such as 'MYAPP_KEY_PASSWORD'"
        )
    return name


class CertKeyPair(_Model, frozen=True):
    """A certificate chain and its private key: what the server presents for one server name.

    Both are PEM files; the files are read when the context is built, not here.
    """

    certfile: _FilePath
    """The certificate, followed by the intermediate certificates that lead to the CA."""
    keyfile: _OptionalFilePath = None
    """The private key; ``None`` (text: ``none``): the key is in ``certfile``, after the
    certificates."""


class TLSConfig(_Model, frozen=True):
    """How a stream server speaks TLS: the ``tls`` table of a
    :class:`~typedserve.config.ServerConfig`.

    Example::

        TLSConfig(certfile=Path("server.pem"), keyfile=Path("server.key"), alpn=("h2",))

    Files are checked when the context is built (see the module docstring), so a config that
    validates may still be refused then, by a :class:`~typedserve.errors.ConfigError` naming
    the field, the file and the reason.
    """

    certfile: _FilePath
    """The server's certificate chain (PEM): the default one, presented to a client that asks
    for no server name or for a name ``sni`` does not list."""
    keyfile: _OptionalFilePath = None
    """The private key of ``certfile`` (PEM); ``None``: the key is in ``certfile``."""
    password_env: Annotated[Annotated[str, AfterValidator(_env_name)] | None, _NONE_FROM_TEXT] = (
        None
    )
    """The name of an environment variable holding the password of an encrypted key (that of
    ``keyfile`` and of every ``sni`` key). The password itself is never in the config."""
    password_file: _OptionalFilePath = None
    """A file holding that password instead (its first line; a final newline is not part of
    it). At most one of ``password_env`` and ``password_file``."""
    client_ca: _OptionalFilePath = None
    """The CA certificates (PEM) that client certificates are verified against; needed when
    ``client_auth`` is not ``"none"``."""
    client_auth: ClientAuth = "none"
    """Whether to ask for a client certificate (:data:`ClientAuth`)."""
    alpn: tuple[Annotated[str, AfterValidator(_alpn_protocol)], ...] = ()
    """The application protocols offered, most preferred first (``("h2", "http/1.1")``); the
    server picks the first one the client also offers, or none. Text: ``h2,http/1.1``."""
    minimum_version: TLSVersion = "TLSv1.2"
    """The oldest TLS version accepted (TLS 1.0 and 1.1 are never accepted)."""
    ciphers: Annotated[Annotated[str, Field(min_length=1)] | None, _NONE_FROM_TEXT] = None
    """An OpenSSL cipher string (``"ECDHE+AESGCM"``) for TLS 1.2; TLS 1.3 suites are OpenSSL's.
    ``None``: Python's defaults. A string that selects no cipher is refused when the context is
    built."""
    sni: dict[ServerName, CertKeyPair] = Field(default_factory=dict)
    """Server name -> the certificate and key presented to a client that asks for it (SNI).
    Names are lowercase; ``*.example.com`` matches one label (``a.example.com``, not
    ``example.com`` nor ``a.b.example.com``), and an exact name wins over a wildcard. Every
    other client gets ``certfile``."""

    @field_validator("alpn", mode="before")
    @classmethod
    def _alpn_text(cls, value: object) -> object:
        return _alpn_from_text(value)

    @field_validator("password_file")
    @classmethod
    def _one_password_source(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is not None and info.data.get("password_env") is not None:
            raise PydanticCustomError(
                "password_source", "set password_env or password_file, not both"
            )
        return path

    @field_validator("client_auth")
    @classmethod
    def _client_auth_needs_a_ca(cls, client_auth: ClientAuth, info: ValidationInfo) -> ClientAuth:
        if client_auth != "none" and "client_ca" in info.data and info.data["client_ca"] is None:
            raise PydanticCustomError(
                "client_auth",
                f"client_auth={client_auth!r} verifies client certificates: set client_ca to "
                "the CA file they are verified against",
            )
        return client_auth
