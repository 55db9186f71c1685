"""``ServerConfig``: every tunable of a server, validated and frozen, and the loaders that build it.

Config is data: it holds no sockets and no threads. A server is built from one ``ServerConfig``;
the same config can be loaded from several sources, which are layered with this precedence
(each layer overrides the ones before it, field by field)::

    defaults  <  TOML file  <  environment (TYPEDSERVE_*)  <  explicit overrides (CLI flags)

Use :meth:`ServerConfig.load` for the layered load, or the single-source constructors
:meth:`ServerConfig.from_toml`, :meth:`ServerConfig.from_env` and
:meth:`ServerConfig.with_overrides`. Invalid input raises :class:`~typedserve.errors.ConfigError`
whose message names the field (dotted path), the value and the rule, one line per problem.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from typedserve._config_model import _NONE_FROM_TEXT, _Model
from typedserve._config_model import NONE_TEXT as NONE_TEXT
from typedserve._config_sources import (
    address_kind,
    config_error,
    dotted_layer,
    env_layer,
    merge,
    read_toml,
)
from typedserve.access_log.config import AccessLogConfig
from typedserve.metrics.config import MetricsConfig
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.tls.config import TLSConfig

__all__ = [
    "Address",
    "FDAddress",
    "InetAddress",
    "Limits",
    "ServerConfig",
    "ShutdownConfig",
    "Timeouts",
    "UnixAddress",
]

_UNIX_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]
OptionalSeconds = Annotated[PositiveSeconds | None, _NONE_FROM_TEXT]
"""Seconds, or ``None`` (which disables the timeout); text says ``none``."""

_MODE_MAX = 0o7777
_OCTAL = re.compile(r"(?:0[oO])?([0-7]+)")


def _mode_from_text(value: object) -> object:
    """A file mode given as text is octal: ``"0660"``, ``"660"`` and ``"0o660"`` are 0o660."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "file_mode", "a file mode is an integer or octal digits, not a boolean"
        )
    if not isinstance(value, str):
        return value
    match = _OCTAL.fullmatch(value.strip())
    if match is None:
        raise PydanticCustomError(
            "file_mode", "a file mode in text is octal digits, such as '0660', '660' or '0o660'"
        )
    return _mode_in_range(int(match[1], 8))


def _mode_in_range(mode: int) -> int:
    if not 0 <= mode <= _MODE_MAX:
        raise PydanticCustomError(
            "file_mode", f"a file mode is from 0 to 0o7777, this one is {mode:#o}"
        )
    return mode


FileMode = Annotated[
    int,
    BeforeValidator(_mode_from_text),
    AfterValidator(_mode_in_range),
    PlainSerializer(lambda mode: f"{mode:#o}", return_type=str, when_used="json"),
]
"""Permission bits (``0o660``): an ``int`` stays as given, text is read as octal (see
:func:`_mode_from_text`); at most ``0o7777``. A JSON dump writes it in octal (``"0o660"``)."""


class InetAddress(_Model, frozen=True):
    """An IPv4 or IPv6 host and port, for the TCP and UDP transports.

    ``host`` is a literal address or a name resolved at bind time (``"::"`` and ``"::1"`` select
    IPv6). ``port=0`` asks the kernel for a free port; the server reports the real one.
    ``dual_stack`` (IPv6 hosts only) clears ``IPV6_V6ONLY`` so one socket also accepts IPv4.
    """

    kind: Literal["inet"] = "inet"
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=0, ge=0, le=65_535)
    dual_stack: bool = False

    @field_validator("dual_stack")
    @classmethod
    def _dual_stack_needs_ipv6(cls, dual_stack: bool, info: ValidationInfo) -> bool:
        host = info.data.get("host")
        if dual_stack and host is not None and ":" not in host:
            raise ValueError(f"dual_stack=True needs an IPv6 host such as '::', got host={host!r}")
        return dual_stack


class UnixAddress(_Model, frozen=True):
    """A Unix-domain socket path (or an abstract name written as ``@name``).

    ``mode`` is applied to the socket file after bind (e.g. ``0o660``); given as text (an
    environment variable, a TOML string, a CLI flag) it is octal: ``"0660"``, ``"660"`` and
    ``"0o660"`` all mean ``0o660``, while an integer is taken as is (TOML ``mode = 0o660``; a
    bare ``660`` is decimal). Above ``0o7777`` is an error. ``stale`` says what to do
    with an existing file at ``path``: ``"probe"`` (default) connects to it first and removes it
    only if nothing is listening, ``"error"`` refuses to touch it. A live socket of another
    process is never removed. The file is unlinked when the server closes.
    """

    kind: Literal["unix"] = "unix"
    path: str = Field(min_length=1)
    mode: Annotated[FileMode | None, _NONE_FROM_TEXT] = None
    stale: Literal["probe", "error"] = "probe"

    @property
    def is_abstract(self) -> bool:
        """Whether this names a Linux abstract-namespace socket (no file on disk)."""
        return self.path.startswith("@")

    @property
    def sockaddr(self) -> str:
        """The address in the form ``socket.bind`` takes."""
        return "\0" + self.path[1:] if self.is_abstract else self.path

    @field_validator("path")
    @classmethod
    def _fits_sun_path(cls, path: str) -> str:
        size = len(os.fsencode(path))
        if size > _UNIX_PATH_MAX:
            raise ValueError(
                f"a Unix socket path is at most {_UNIX_PATH_MAX} bytes, this one is {size}; "
                "use a shorter directory or an abstract name ('@name')"
            )
        if "\0" in path:
            raise ValueError("must not contain NUL bytes; write abstract names as '@name'")
        return path


class FDAddress(_Model, frozen=True):
    """An already-open listening socket inherited from the parent process (``fd``).

    Its family and type are read from the socket itself and checked against the transport.
    ``fd="systemd"`` takes a socket passed by systemd socket activation (``LISTEN_FDS``, see
    :mod:`typedserve.activation`): the one whose ``LISTEN_FDNAMES`` entry (the socket unit's
    ``FileDescriptorName=``) is ``name``, or, without ``name``, the only one passed.
    Ownership: once bound, the server owns the fd and closes it on close (pass a
    ``sock.detach()``-ed fd, or ``os.dup`` it, if you keep a socket object for it); when the
    transport rejects it (wrong family or type), the fd is left open for the caller.
    """

    kind: Literal["fd"] = "fd"
    fd: Annotated[int, Field(ge=0)] | Literal["systemd"]
    name: str | None = Field(default=None, min_length=1, max_length=255)
    """With ``fd="systemd"``: which passed socket, by its ``LISTEN_FDNAMES`` entry."""

    @field_validator("name")
    @classmethod
    def _systemd_name(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is None:
            return None
        if info.data.get("fd", "systemd") != "systemd":
            raise PydanticCustomError(
                "fd_name", "a name selects a socket passed by systemd: it needs fd='systemd'"
            )
        if ":" in name or not (name.isascii() and name.isprintable()):
            raise PydanticCustomError(
                "fd_name", "a socket name is printable ASCII without ':' (FileDescriptorName=)"
            )
        return name


Address = Annotated[
    Annotated[InetAddress, Tag("inet")]
    | Annotated[UnixAddress, Tag("unix")]
    | Annotated[FDAddress, Tag("fd")],
    Discriminator(
        address_kind,
        custom_error_type="address_kind",
        custom_error_message="kind must be 'inet', 'unix' or 'fd'",
    ),
]
"""Where the server listens: a union tagged by ``kind`` (``inet``, ``unix``, ``fd``); when
``kind`` is left out it is inferred from the keys (``path``: unix, ``fd``: fd, else inet)."""


class Timeouts(_Model, frozen=True):
    """Per-connection deadlines, in seconds; ``None`` disables one (in text, such as an
    environment variable over a TOML value: ``none``, see :data:`NONE_TEXT`).

    - ``idle``: the longest a single read or write on a connection may wait.
    - ``first_byte`` (default 10): how long a connection may stay silent before a request
      (after it connects, and between the requests of a framed handler). The connection waits
      in the server's loop, holding no worker; when the time is up it is closed and counted in
      ``stats().slow_clients``. Handlers that declare ``speaks_first`` are not held.
    - ``request`` (default 60): the budget of one request: from accept (or, for a framed
      handler, from the request's first byte) to the end of its handler. A framed request must
      arrive whole within it; an unframed handler's ``rfile``/``wfile`` raise ``TimeoutError``
      past it, and the loop shuts down the connection of a handler still running after it
      (within a second). Either way the request counts as a slow client, not an error. Set it
      to ``None`` for long-lived connections (streams, chat, tunnels).
    - ``poll``: how long :meth:`Server.handle_request` waits for a request before calling the
      ``on_timeout`` hook.
    - ``handshake`` (default 10): how long a TLS handshake (``ServerConfig.tls``) may take,
      from the client's first byte (until then ``first_byte`` applies); a client still
      handshaking then is closed and counted in ``stats().handshake_failures``. Unused
      without TLS.
    """

    idle: OptionalSeconds = None
    first_byte: OptionalSeconds = 10.0
    request: OptionalSeconds = 60.0
    poll: OptionalSeconds = None
    handshake: OptionalSeconds = 10.0


class Limits(_Model, frozen=True):
    """Resource limits.

    ``max_in_flight`` bounds the requests accepted and not finished (running or queued in the
    strategy); a strategy's own capacity, if smaller, wins; ``None`` (text: ``none``) leaves
    only the strategy's. At the limit, ``overload`` decides,
    the same way for every strategy: ``"pause"`` (default) stops accepting until a request
    finishes, so the kernel backlog holds the rest (backpressure); ``"reject"`` accepts and turns
    each extra request away through the server's ``on_busy`` hook, then closes it cleanly.
    ``max_datagram_size`` is the largest datagram accepted whole; a larger one is
    ``truncated``: ``"drop"`` (default) logs and counts it, ``"flag"`` delivers the first
    ``max_datagram_size`` bytes with ``Datagram.truncated`` set.
    """

    max_in_flight: Annotated[Annotated[int, Field(ge=1)] | None, _NONE_FROM_TEXT] = None
    overload: Literal["pause", "reject"] = "pause"
    max_datagram_size: int = Field(default=65_507, ge=1, le=16 * 1024 * 1024)
    truncated: Literal["drop", "flag"] = "drop"


class ShutdownConfig(_Model, frozen=True):
    """How long closing the server waits for requests in flight (``grace`` seconds)."""

    grace: float = Field(default=5.0, ge=0, le=3_600)


class ServerConfig(_Model, frozen=True):
    """The validated, frozen configuration of one server.

    Example::

        config = ServerConfig(address=InetAddress(host="::", port=8000, dual_stack=True))
        config = ServerConfig.load(toml="server.toml", overrides={"address.port": 9000})
    """

    address: Address = Field(default_factory=InetAddress)
    backlog: int = Field(default=socket.SOMAXCONN, ge=0, le=65_535)
    reuse_address: bool = True
    reuse_port: bool = False
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    tls: Annotated[TLSConfig | None, _NONE_FROM_TEXT] = None
    """TLS for a stream server (:class:`~typedserve.tls.config.TLSConfig`); ``None`` (text:
    ``none``) serves plain TCP or Unix streams."""
    proxy_protocol: Annotated[ProxyProtocolConfig | None, _NONE_FROM_TEXT] = None
    """How a ``ProxyProtocolTransport`` reads PROXY protocol headers
    (:class:`~typedserve.proxy.config.ProxyProtocolConfig`); ``None``: its defaults (required,
    from loopback upstreams). Other transports ignore it."""
    access_log: AccessLogConfig = Field(default_factory=AccessLogConfig)
    """The access log (:class:`~typedserve.access_log.config.AccessLogConfig`): off unless
    ``enabled``; one INFO record per request on ``typedserve.access``."""
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    """Metrics beyond the counters: the request-duration histogram
    (:class:`~typedserve.metrics.config.MetricsConfig`)."""

    # -- loaders ---------------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = "config") -> ServerConfig:
        """Validate a nested mapping (the shape of the TOML file); errors name ``source``."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error(exc, source) from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> ServerConfig:
        """Load a TOML file whose tables mirror the fields (``[address]``, ``[timeouts]``...)."""
        return cls.from_data(read_toml(Path(path)), source=str(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        """Load from ``TYPEDSERVE_*`` variables: ``__`` separates levels.

        ``TYPEDSERVE_BACKLOG=128``, ``TYPEDSERVE_ADDRESS__PORT=8000``,
        ``TYPEDSERVE_TIMEOUTS__IDLE=30``. Values are strings, converted by the field's type.
        """
        return cls.from_data(env_layer(os.environ if environ is None else environ), source="env")

    def with_overrides(self, overrides: Mapping[str, Any]) -> ServerConfig:
        """A copy with dotted-path fields replaced (``{"address.port": 0}``), re-validated."""
        data = merge(self.model_dump(), dotted_layer(overrides))
        return type(self).from_data(data, source="overrides")

    @classmethod
    def load(
        cls,
        *,
        toml: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ServerConfig:
        """Layer defaults < ``toml`` < ``environ`` (``TYPEDSERVE_*``) < ``overrides``.

        ``environ=None`` reads ``os.environ``; pass ``{}`` to ignore the environment.
        """
        data: dict[str, Any] = {}
        sources = []
        if toml is not None:
            data = merge(data, read_toml(Path(toml)))
            sources.append(str(toml))
        env = env_layer(os.environ if environ is None else environ)
        if env:
            data = merge(data, env)
            sources.append("env")
        if overrides:
            data = merge(data, dotted_layer(overrides))
            sources.append("overrides")
        return cls.from_data(data, source=" < ".join(sources) or "defaults")
