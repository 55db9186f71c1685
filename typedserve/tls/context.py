"""The server-side :class:`ssl.SSLContext` built from a :class:`~typedserve.tls.config.TLSConfig`.

:func:`build_context` reads every file the config names (certificates, keys, the client CA, the
password file) and returns a ready context; whatever cannot be used is a
:class:`~typedserve.errors.ConfigError` naming the field, the file and the reason, raised before
anything is served. :class:`TLSContextSource` holds the current context for a running server and
rebuilds it on :meth:`~TLSContextSource.reload` (new certificates without a restart).

What every context built here does, beyond the config:

- ``ssl.PROTOCOL_TLS_SERVER`` with Python's defaults (no SSLv3, TLS 1.0 or 1.1; compression
  off, server cipher preference), and renegotiation refused (``OP_NO_RENEGOTIATION``): a client
  cannot make the server redo the handshake's work mid-connection.
- Session tickets are off (``OP_NO_TICKET``): Python never rotates the ticket key, so a key
  that lived as long as the process would let one leak decrypt every ticketed session. Clients
  still resume from the server's session cache, which lives in each process (a ``fork`` child
  or a ``prefork`` worker has its own).
- No system CA store: only ``client_ca`` verifies client certificates.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, NoReturn

from typedserve.errors import ConfigError
from typedserve.tls.config import CertKeyPair, TLSConfig

__all__ = ["TLSContextSource", "build_context"]

logger = logging.getLogger("typedserve.server")

_VERIFY_MODES: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_VERSIONS: Final = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")
_ENCRYPTED = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED")


def build_context(tls: TLSConfig, *, environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A server-side context that serves what ``tls`` says, its files read now.

    ``environ`` is where ``tls.password_env`` is looked up (``None``: ``os.environ``). With
    ``tls.sni``, each listed name gets a context of its own with the same settings, chosen by
    the returned context's ``sni_callback``; a client that asks for no name or another name
    gets ``tls.certfile``.

    Raises :class:`~typedserve.errors.ConfigError`, one line naming the field
    (``tls.keyfile``, ``tls.sni["a.example"].certfile``), the file and the reason: a file
    missing or unreadable, no certificate or key in it, a key that does not match its
    certificate, an encrypted key without a password or with a wrong one, a password variable
    not set, a cipher string that selects nothing, a client CA file without a certificate.
    """
    password = _password(tls, os.environ if environ is None else environ)
    default = _context_for(tls)
    _load_pair(default, "tls", CertKeyPair(certfile=tls.certfile, keyfile=tls.keyfile), password)
    if tls.sni:
        by_name = {}
        for name, pair in tls.sni.items():
            by_name[name] = _context_for(tls)
            _load_pair(by_name[name], f'tls.sni["{name}"]', pair, password)
        default.sni_callback = _ByServerName(by_name)
    return default


class TLSContextSource:
    """The current context of a TLS server, rebuilt from its config on :meth:`reload`.

    A transport takes :attr:`context` for each new connection; connections already open keep
    the context they started with. Creating the source builds the first context, so a bad
    config fails there (:class:`~typedserve.errors.ConfigError`), before serving.

    Threads: :meth:`reload` builds the new context aside and then replaces the old one in a
    single attribute assignment, so it may run on any thread (a signal handler's deferred
    callback, an admin thread) while others read :attr:`context`; it takes no lock. Two
    reloads at once both read the files; the later assignment wins.
    """

    def __init__(self, tls: TLSConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self._tls = tls
        self._environ = environ
        self._context = build_context(tls, environ=environ)

    @property
    def config(self) -> TLSConfig:
        """The config every context of this source is built from."""
        return self._tls

    @property
    def context(self) -> ssl.SSLContext:
        """The context for new connections: the last one built successfully."""
        return self._context

    def reload(self) -> bool:
        """Rebuild the context from the config, re-reading every file; ``True`` if it replaced
        the current one.

        On failure the current context stays, the reason is logged on ``typedserve.server``
        (one ERROR line naming the field, the file and the reason) and this returns ``False``;
        it never raises :class:`~typedserve.errors.ConfigError`.
        """
        try:
            context = build_context(self._tls, environ=self._environ)
        except ConfigError as exc:
            logger.error("TLS reload failed, keeping the current certificates: %s", exc)
            return False
        self._context = context
        logger.info("TLS certificates reloaded from %s", self._tls.certfile)
        return True


# -- building one context -------------------------------------------------------------------


def _context_for(tls: TLSConfig) -> ssl.SSLContext:
    """A context with every setting of ``tls`` but the certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.minimum_version]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    if tls.ciphers is not None:
        try:
            context.set_ciphers(tls.ciphers)
        except ssl.SSLError:
            _refuse("tls.ciphers", tls.ciphers, "OpenSSL selects no cipher for this string")
    if tls.client_ca is not None:
        _read("tls.client_ca", tls.client_ca)
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except ssl.SSLError as exc:
            _refuse("tls.client_ca", tls.client_ca, f"no CA certificate in it ({_why(exc)})")
        except OSError as exc:
            _refuse("tls.client_ca", tls.client_ca, f"cannot read it: {exc.strerror or exc}")
    context.verify_mode = _VERIFY_MODES[tls.client_auth]
    if tls.alpn:
        context.set_alpn_protocols(list(tls.alpn))
    return context


class _Password:
    """The password of the encrypted keys, and where it came from (for messages)."""

    def __init__(self, value: bytes, source: str) -> None:
        self.value = value
        self.source = source


def _password(tls: TLSConfig, environ: Mapping[str, str]) -> _Password | None:
    if tls.password_env is not None:
        name = tls.password_env
        text = environ.get(name)
        if not text:
            state = "is empty" if text == "" else "is not set"
            _refuse("tls.password_env", name, f"the environment variable {name} {state}")
        return _Password(os.fsencode(text), f"tls.password_env ({name})")
    if tls.password_file is not None:
        lines = _read("tls.password_file", tls.password_file).splitlines()
        if not lines or not lines[0]:
            _refuse("tls.password_file", tls.password_file, "its first line is empty")
        return _Password(lines[0], f"tls.password_file ({str(tls.password_file)!r})")
    return None


class _PasswordNeeded(Exception):
    """Raised by the password callback when no password is configured: without a callback,
    OpenSSL would prompt for one on the terminal."""


def _no_password() -> bytes:
    raise _PasswordNeeded


def _load_pair(
    context: ssl.SSLContext, field: str, pair: CertKeyPair, password: _Password | None
) -> None:
    cert_field = f"{field}.certfile"
    key_field, key_path = (f"{field}.keyfile", pair.keyfile) if pair.keyfile else (cert_field, None)
    cert_pem = _read(cert_field, pair.certfile)
    key_pem = cert_pem if key_path is None else _read(key_field, key_path)
    key_where = pair.certfile if key_path is None else key_path
    if _CERTIFICATE not in cert_pem:
        _refuse(cert_field, pair.certfile, "no PEM certificate in it (BEGIN CERTIFICATE)")
    if not _PRIVATE_KEY.search(key_pem):
        fix = "" if key_path else f"; set {field}.keyfile or append the key to this file"
        _refuse(key_field, key_where, f"no PEM private key in it{fix}")
    encrypted = _ENCRYPTED.search(key_pem) is not None
    needs_password = "the key is encrypted: set tls.password_env or tls.password_file"
    if encrypted and password is None:
        _refuse(key_field, key_where, needs_password)
    supply: bytes | Callable[[], bytes] = _no_password if password is None else password.value
    try:
        context.load_cert_chain(pair.certfile, key_path, password=supply)
    except _PasswordNeeded:
        _refuse(key_field, key_where, needs_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            mismatch = f"the key does not match the certificate in {cert_field} ({pair.certfile})"
            _refuse(key_field, key_where, mismatch)
        if encrypted and password is not None:
            _refuse(key_field, key_where, f"cannot decrypt the key with {password.source}")
        _refuse(cert_field, pair.certfile, f"OpenSSL cannot load it with its key: {_why(exc)}")
    except (OSError, ValueError) as exc:  # a file replaced meanwhile; a password too long
        _refuse(cert_field, pair.certfile, f"cannot load it with its key: {exc}")


def _read(field: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _refuse(field, path, f"cannot read it: {exc.strerror or exc}")


def _why(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc).replace("_", " ").lower()


def _refuse(field: str, value: str | Path, reason: str) -> NoReturn:
    shown = str(value)
    raise ConfigError(
        f"invalid TLS config: {field} = {shown!r}: {reason}", ((field, shown, reason),)
    )


# -- choosing a certificate by server name --------------------------------------------------


class _ByServerName:
    """The ``sni_callback``: switch the connection to the context of the name the client asked
    for (an exact name first, then ``*.`` and the name's parent); else leave the default."""

    def __init__(self, contexts: Mapping[str, ssl.SSLContext]) -> None:
        self._contexts = dict(contexts)

    def context_for(self, server_name: str) -> ssl.SSLContext | None:
        """The context for ``server_name``, or ``None`` for the default one."""
        name = server_name.lower().rstrip(".")
        exact = self._contexts.get(name)
        if exact is not None:
            return exact
        _, dot, parent = name.partition(".")
        return self._contexts.get(f"*.{parent}") if dot and "." in parent else None

    def __call__(
        self, connection: ssl.SSLObject, server_name: str | None, _default: ssl.SSLContext
    ) -> None:
        if server_name is not None:
            chosen = self.context_for(server_name)
            if chosen is not None:
                connection.context = chosen
