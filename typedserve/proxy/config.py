"""``ProxyProtocolConfig``: the ``proxy_protocol`` table of a server's config.

It says whether connections start with a PROXY protocol header, which versions are read,
which upstreams (load balancers) may send one, and how long the header may take. It is read by
:class:`~typedserve.transports.proxied.ProxyProtocolTransport`; a server whose transport is not
wrapped in one ignores it.

In TOML::

    [proxy_protocol]
    mode = "required"
    versions = [1, 2]
    trusted = ["10.0.0.0/8", "127.0.0.1/32"]
    timeout = 3

From the environment: ``TYPEDSERVE_PROXY_PROTOCOL__MODE=optional``,
``TYPEDSERVE_PROXY_PROTOCOL__TRUSTED=10.0.0.0/8,::1/128`` (text is split on commas, as is
``VERSIONS=1,2``).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from typedserve._config_model import _Model

__all__ = ["DEFAULT_TRUSTED", "ProxyMode", "ProxyProtocolConfig"]

ProxyMode = Literal["off", "optional", "required"]
"""``"required"``: every connection must start with a header from a trusted upstream, or it is
refused. ``"optional"``: a connection that starts with no header (its first bytes are not a
PROXY signature) is served as is, with its real peer; one that sends a header must send a
valid one, from a trusted upstream. ``"off"``: no header is read (the wrapper is a pass-through,
so a deployment can switch it by config)."""

DEFAULT_TRUSTED: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
"""The upstreams trusted by default: loopback only (a balancer on the same host)."""


def _split_text(value: object) -> object:
    """Text (an environment variable) lists the items separated by commas."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _network(text: str) -> str:
    """A CIDR network (``10.0.0.0/8``, ``::1/128``) or a single address; host bits may be set."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise PydanticCustomError(
            "network", "an IP network in CIDR form, such as '10.0.0.0/8' or '::1/128'"
        ) from None
    return text


class ProxyProtocolConfig(_Model, frozen=True):
    """How a server reads PROXY protocol headers: the ``proxy_protocol`` table of a
    :class:`~typedserve.config.ServerConfig` (see the module docstring).

    Example::

        ProxyProtocolConfig(mode="required", trusted=("10.0.0.0/8",), timeout=3.0)
    """

    mode: ProxyMode = "required"
    """Whether a header is required, optional or not read (:data:`ProxyMode`)."""
    versions: tuple[Literal[1, 2], ...] = (1, 2)
    """The protocol versions accepted; a header of another version is refused. Text: ``1,2``."""
    trusted: tuple[Annotated[str, AfterValidator(_network)], ...] = DEFAULT_TRUSTED
    """The networks of the upstreams allowed to send a header (CIDR). A connection from any
    other address that sends one is refused and counted in ``stats().proxy_refused``; with
    ``mode="optional"`` it may still connect without a header. At least one network: write
    ``["0.0.0.0/0", "::/0"]`` to trust every peer (only behind a firewall that lets nothing
    else reach the port). Unix-socket upstreams are trusted when ``trust_unix`` is true
    (the socket file's permissions decide who may connect)."""
    trust_unix: bool = True
    """Whether a peer on a Unix socket may send a header."""
    timeout: float = Field(default=5.0, gt=0, le=3_600)
    """Seconds a connection may take to send its whole header, counted from when it is
    served; a connection still sending then is closed and counted in
    ``stats().proxy_refused``."""

    @field_validator("trusted", mode="before")
    @classmethod
    def _trusted_text(cls, value: object) -> object:
        return _split_text(value)

    @field_validator("versions", mode="before")
    @classmethod
    def _versions_text(cls, value: object) -> object:
        value = _split_text(value)
        if isinstance(value, tuple):
            return tuple(int(v) if isinstance(v, str) and v.isdigit() else v for v in value)
        return value

    @field_validator("versions")
    @classmethod
    def _distinct_versions(cls, versions: tuple[Literal[1, 2], ...]) -> tuple[Literal[1, 2], ...]:
        if not versions:
            raise PydanticCustomError("versions", "at least one version: [1], [2] or [1, 2]")
        return tuple(sorted(set(versions)))

    @field_validator("trusted")
    @classmethod
    def _some_trusted(cls, trusted: tuple[str, ...]) -> tuple[str, ...]:
        if not trusted:  # an empty list must not read as "everyone", nor silently as "no one"
            raise PydanticCustomError(
                "trusted",
                "at least one network; ['0.0.0.0/0', '::/0'] trusts every peer, and "
                "mode='off' reads no header",
            )
        return trusted

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted` as ``ipaddress`` networks."""
        return tuple(ipaddress.ip_network(text, strict=False) for text in self.trusted)
