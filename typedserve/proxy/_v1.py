"""Version 1: one text line, ``PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\\r\\n``.

Each field is checked as soon as it is complete (followed by a space), and the field still
arriving as far as its characters and length go, so a line that cannot become valid is
rejected before its CRLF arrives.
"""

from __future__ import annotations

import socket
from typing import Final

from typedserve.errors import ProxyProtocolError
from typedserve.proxy.header import NeedMore, ProxyAddress, ProxyFamily, ProxyHeader

__all__ = ["V1_MAX_LENGTH", "V1_MIN_LENGTH", "V1_SIGNATURE", "ipv4_text", "ipv6_text", "parse_v1"]

V1_SIGNATURE: Final = b"PROXY "
"""How a v1 header starts."""

V1_MAX_LENGTH: Final = 107
"""The longest v1 line the specification allows, CRLF included."""

V1_MIN_LENGTH: Final = 15
"""The shortest v1 line: ``PROXY UNKNOWN\r\n``."""

_PROTOCOLS: Final = (b"TCP4", b"TCP6", b"UNKNOWN")
_WHAT: Final = ("source address", "destination address", "source port", "destination port")
_IPV4_CHARS: Final = frozenset(b"0123456789.")
_IPV6_CHARS: Final = frozenset(b"0123456789abcdefABCDEF:.")
_DIGITS: Final = frozenset(b"0123456789")
# The longest text of an address (INET_ADDRSTRLEN and INET6_ADDRSTRLEN, less the NUL).
_MAX_TEXT: Final = {b"TCP4": 15, b"TCP6": 45}


def parse_v1(data: bytes) -> ProxyHeader | NeedMore:
    """Parse ``data``, which starts with :data:`V1_SIGNATURE`: a header once its CRLF is in,
    else :class:`NeedMore` or :class:`ProxyProtocolError` (for the bytes so far)."""
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(
                f"v1 line too long: no CRLF in its first {V1_MAX_LENGTH} bytes (the longest "
                f"line the protocol allows, CRLF included): {data[:60]!r}..."
            )
        _read_line(data.removesuffix(b"\r"), complete=False)
        return NeedMore(max(V1_MIN_LENGTH, len(data) + (1 if data.endswith(b"\r") else 2)))
    family, source, destination = _read_line(data[:end], complete=True)
    return ProxyHeader(1, "PROXY", family, source, destination, end + 2)


def _read_line(
    line: bytes, *, complete: bool
) -> tuple[ProxyFamily, ProxyAddress | None, ProxyAddress | None]:
    """Check a line (without its CRLF; ``complete=False``: only its beginning is in, the last
    field may be partial) and, if complete, return its family and endpoints."""
    fields = line.split(b" ")[1:]  # fields[0] is the protocol
    protocol, rest = fields[0], fields[1:]
    if not rest and not complete:
        if not any(known.startswith(protocol) for known in _PROTOCOLS):
            raise _bad_protocol(protocol)
        return "UNKNOWN", None, None
    if protocol == b"UNKNOWN":  # the rest of the line is to be ignored, whatever it holds
        return "UNKNOWN", None, None
    if protocol not in _PROTOCOLS:
        raise _bad_protocol(protocol)
    hosts: list[str] = []
    ports: list[int] = []
    for index, field in enumerate(rest[:4]):
        partial = not complete and index == len(rest) - 1
        if index < 2:
            hosts.append(_address(protocol, field, _WHAT[index], partial=partial))
        else:
            ports.append(_port(field, _WHAT[index], partial=partial))
    if len(rest) > 4 or (complete and len(rest) < 4):
        raise ProxyProtocolError(
            f"bad v1 line: {len(rest)} field(s) after {protocol.decode()}, expected 4 (source "
            "address, destination address, source port, destination port) separated by "
            f"single spaces: {line[:60]!r}"
        )
    if not complete:
        return "UNKNOWN", None, None
    if protocol == b"TCP4":
        return "TCP4", (hosts[0], ports[0]), (hosts[1], ports[1])
    return "TCP6", (hosts[0], ports[0], 0, 0), (hosts[1], ports[1], 0, 0)


def _bad_protocol(protocol: bytes) -> ProxyProtocolError:
    return ProxyProtocolError(
        f"bad v1 protocol {protocol[:20]!r}: expected TCP4, TCP6 or UNKNOWN after 'PROXY '"
    )


def _address(protocol: bytes, field: bytes, what: str, *, partial: bool) -> str:
    """The address in ``field``, in the form ``socket`` returns it (``""`` if partial)."""
    chars = _IPV4_CHARS if protocol == b"TCP4" else _IPV6_CHARS
    fits = len(field) <= _MAX_TEXT[protocol] and chars.issuperset(field)
    host = None
    if fits and not partial:
        host = ipv4_text(field) if protocol == b"TCP4" else ipv6_text(field)
    if not fits or (host is None and not partial):
        example = "192.168.0.1 (no leading zeros)" if protocol == b"TCP4" else "2001:db8::1"
        raise ProxyProtocolError(
            f"bad v1 {what} {field[:50]!r}: {protocol.decode()} needs an "
            f"IPv{protocol[-1:].decode()} address like {example}"
        )
    return host or ""


def ipv4_text(field: bytes) -> str | None:
    """``field`` as an IPv4 address if it is one in the strict form v1 requires, else None."""
    parts = field.split(b".")
    if len(parts) != 4 or not all(_decimal(part, 255) for part in parts):
        return None
    return field.decode("ascii")


def ipv6_text(field: bytes) -> str | None:
    """``field`` as an IPv6 address, in the form ``socket`` gives (compressed), or None."""
    try:
        packed = socket.inet_pton(socket.AF_INET6, field.decode("ascii"))
    except (OSError, ValueError):  # not an address; non-ASCII or NUL characters
        return None
    return socket.inet_ntop(socket.AF_INET6, packed)


def _port(field: bytes, what: str, *, partial: bool) -> int:
    """The port in ``field`` (0 if partial)."""
    ok = (
        _DIGITS.issuperset(field) and len(field) <= 5 and not (len(field) > 1 and field[0] == 48)
        if partial
        else _decimal(field, 65535)
    )
    if not ok:
        raise ProxyProtocolError(
            f"bad v1 {what} {field[:50]!r}: expected a decimal number 0-65535 without leading zeros"
        )
    return int(field) if field and not partial else 0


def _decimal(text: bytes, maximum: int) -> bool:
    """Whether ``text`` is a decimal in ``0..maximum`` without leading zeros."""
    return (
        0 < len(text) <= len(str(maximum))
        and _DIGITS.issuperset(text)
        and (text == b"0" or text[0] != 48)  # 48: b"0"
        and int(text) <= maximum
    )
