"""``AccessLog``: the request observer that writes one access record per admitted request.

Each record goes to the ``typedserve.access`` logger at INFO, from the thread or process that
ended the request (a ``ForkPerRequest`` child, a ``Prefork`` worker: their inherited handlers
write it). The library configures no handler: the application's logging config decides where
records go (``typedserve serve`` puts them on stderr, in text or JSON). The fields (see
:data:`~typedserve.access_log.config.FIELDS`) are attributes of the record (``extra``), so a
formatter can render them (:class:`typedserve.logformat.JsonFormatter` does); the message is one
line of text, or the fields as one JSON object (``access_log.format``).
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

from typedserve.access_log.config import AccessLogConfig
from typedserve.access_log.tcp_info import stream_bytes
from typedserve.observe import Outcome
from typedserve.requests import Datagram, PeerAddress, Request
from typedserve.tls.info import TLSInfo

__all__ = ["ACCESS_LOGGER", "AccessLog", "access_fields", "describe_address", "text_line"]

ACCESS_LOGGER = logging.getLogger("typedserve.access")
"""Where access records go (INFO). It has no handler of its own: records propagate to the
root logger's, as any library's do."""

_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
}


class AccessLog:
    """Writes one INFO record per request to ``logger`` (default ``typedserve.access``), as
    ``config`` says (text line or JSON object; the fields are always the record's ``extra``).

    Nothing is read (no ``TCP_INFO``, no address lookup) while the logger would drop the
    record (its effective level is above INFO)."""

    def __init__(self, config: AccessLogConfig, logger: logging.Logger = ACCESS_LOGGER) -> None:
        self.config = config
        self.logger = logger
        self._json = config.format == "json"
        self._template = config.template

    def request_ended(
        self, request: Request, outcome: Outcome, started: float, ended: float
    ) -> None:
        """Write the request's record (a :class:`~typedserve.observe.RequestObserver`)."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        fields = access_fields(request, outcome, started, ended)
        if self._json:
            message = json.dumps(fields, separators=(",", ":"))
        else:
            message = text_line(fields, self._template)
        logger.info(message, extra=fields)

    def __repr__(self) -> str:
        return f"AccessLog({self.config.format}, logger={self.logger.name!r})"


def access_fields(
    request: Request, outcome: Outcome, started: float, ended: float
) -> dict[str, Any]:
    """The fields of ``request``'s access record (``None`` where a transport cannot tell; see
    the README's "Access log and logging" for what each transport reports)."""
    bytes_in: int | None = None
    bytes_out: int | None = None
    sock: socket.socket | None = getattr(request, "socket", None)
    local: object = None
    if isinstance(request, Datagram):
        bytes_in = len(request.payload)  # the reply's size is not kept: None
    else:
        frame = getattr(request, "frame", None)
        if frame is not None:  # one request of a kept-alive connection: its frame
            bytes_in = len(frame)
        elif sock is not None:
            bytes_in, bytes_out = stream_bytes(sock)
    if sock is not None:
        try:
            local = sock.getsockname()
        except OSError:  # closed already (a refusal whose peer had gone)
            local = None
    upstream = None
    if getattr(request, "proxy", None) is not None:  # a PROXY header named another client
        upstream = describe_address(getattr(request, "upstream", None))
    fields: dict[str, Any] = {
        "peer": describe_address(request.peer),
        "local": describe_address(local),
        "upstream": upstream,
        "outcome": outcome,
        "duration_ms": round((ended - started) * 1000.0, 3),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
    }
    fields.update(_tls_fields(request))
    return fields


def _tls_fields(request: Request) -> dict[str, str | None]:
    try:
        info = getattr(request, "tls", None)
    except Exception:  # a TLS request whose handshake did not complete
        info = None
    if not isinstance(info, TLSInfo):
        return dict.fromkeys(("tls_version", "tls_cipher", "tls_sni", "tls_client"))
    certificate = info.peer_certificate
    client = None
    if certificate is not None:
        client = ",".join(
            f"{_SHORT_NAMES.get(key, key)}={value}" for key, value in certificate.subject
        )
    return {
        "tls_version": info.version or None,
        "tls_cipher": info.cipher or None,
        "tls_sni": info.server_name,
        "tls_client": client,
    }


def describe_address(address: PeerAddress | object) -> str | None:
    """An address as the access log writes it: ``host:port`` (``[host]:port`` for IPv6), a
    Unix path, ``@name`` for an abstract name; ``None`` for an unnamed Unix socket or none."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    if isinstance(address, bytes):
        if address.startswith(b"\0"):
            return "@" + address[1:].decode(errors="backslashreplace")
        return address.decode(errors="backslashreplace") or None
    if isinstance(address, str):
        return address or None
    return None


_DEFAULT_LINE = "{peer} -> {local} {outcome} {duration_ms:.3f}ms in={bytes_in} out={bytes_out}"


def text_line(fields: dict[str, Any], template: str | None = None) -> str:
    """The text form of a record: ``template`` (``str.format`` over the fields, ``-`` for a
    missing value) or the built-in line, which adds ``via UPSTREAM`` behind a PROXY header and
    ``tls=VERSION CIPHER sni=NAME client=SUBJECT`` on TLS."""
    shown = {key: "-" if value is None else value for key, value in fields.items()}
    if template is not None:
        return template.format_map(shown)
    line = _DEFAULT_LINE.format_map(shown)
    if fields["upstream"] is not None:
        line += f" via {shown['upstream']}"
    if fields["tls_version"] is not None:
        line += (
            f" tls={shown['tls_version']} {shown['tls_cipher']} sni={shown['tls_sni']}"
            f" client={shown['tls_client']}"
        )
    return line
