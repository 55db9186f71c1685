""":func:`encode_v1` and :func:`encode_v2`: the header a proxy sends, for tests and for code
that relays connections. What they produce, :func:`~typedserve.proxy.parse` accepts."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Literal

from typedserve.errors import ConfigError
from typedserve.proxy._crc32c import crc32c as checksum
from typedserve.proxy._v1 import ipv4_text, ipv6_text
from typedserve.proxy._v2 import (
    COMMANDS,
    FAMILIES,
    V2_MAX_LENGTH,
    V2_SIGNATURE,
)
from typedserve.proxy.header import TLV, ProxyAddress, ProxyCommand, ProxyFamily, TLVType
from typedserve.requests import InetSockAddr

__all__ = ["encode_v1", "encode_v2"]

_FAMILY_BYTES: dict[ProxyFamily, int] = {name: value for value, name in FAMILIES.items()}
_COMMAND_BITS: dict[ProxyCommand, int] = {name: value for value, name in COMMANDS.items()}
_UNIX_PATH = 108


def encode_v1(
    family: Literal["TCP4", "TCP6", "UNKNOWN"],
    source: InetSockAddr | None = None,
    destination: InetSockAddr | None = None,
) -> bytes:
    """A version 1 header line: ``PROXY TCP4 <source> <destination> <ports>\\r\\n``.

    ``source`` and ``destination`` are socket addresses (only host and port are carried: an
    IPv6 address's flow info and scope id are not), both given for ``TCP4`` and ``TCP6`` and
    neither for ``UNKNOWN``. A host is an address of the family, never a name; an IPv6
    address is written compressed, as ``socket`` writes it. A wrong argument raises
    :class:`~typedserve.errors.ConfigError`.

    Example::

        assert encode_v1("TCP4", ("192.168.0.1", 56324), ("192.168.0.11", 443)) == (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\\r\\n"
        )
        assert encode_v1("UNKNOWN") == b"PROXY UNKNOWN\\r\\n"
    """
    if family == "UNKNOWN":
        _no_addresses("encode_v1", source, destination)
        return b"PROXY UNKNOWN\r\n"
    if family not in ("TCP4", "TCP6"):
        raise ConfigError.for_argument("encode_v1", "family", family, "TCP4, TCP6 or UNKNOWN")
    (source_host, source_port), (destination_host, destination_port) = (
        _inet("encode_v1", name, family, address)
        for name, address in (("source", source), ("destination", destination))
    )
    line = f"PROXY {family} {source_host} {destination_host} {source_port} {destination_port}"
    return line.encode("ascii") + b"\r\n"


def encode_v2(
    family: ProxyFamily = "UNKNOWN",
    source: ProxyAddress | None = None,
    destination: ProxyAddress | None = None,
    *,
    command: ProxyCommand = "PROXY",
    tlvs: Iterable[TLV] = (),
    crc32c: bool = False,
) -> bytes:
    """A version 2 (binary) header.

    ``source`` and ``destination`` are socket addresses of ``family`` (as in
    :data:`~typedserve.proxy.ProxyAddress`), both given or, for ``UNKNOWN`` or a ``LOCAL``
    command, both omitted (the address block is then empty). ``tlvs`` are written in order,
    as given; :class:`~typedserve.proxy.ProxySSL` ``.to_bytes()`` builds an ``SSL`` value.
    ``crc32c=True`` appends a ``CRC32C`` TLV holding the header's checksum. A wrong argument,
    or a header longer than the 16-bit length field can say, raises
    :class:`~typedserve.errors.ConfigError`.

    Example::

        data = encode_v2("TCP4", ("10.0.0.1", 4000), ("10.0.0.2", 443),
                         tlvs=[(TLVType.AUTHORITY, b"example.com")], crc32c=True)
        header = parse(data)
        assert header.authority == "example.com" and header.length == len(data)
    """
    if family not in _FAMILY_BYTES:
        raise ConfigError.for_argument("encode_v2", "family", family, "a ProxyFamily")
    if command not in _COMMAND_BITS:
        raise ConfigError.for_argument("encode_v2", "command", command, "PROXY or LOCAL")
    if family == "UNKNOWN" or (command == "LOCAL" and source is None and destination is None):
        _no_addresses("encode_v2", source, destination)
        block = b""
    else:
        block = _address_block(family, source, destination)
    entries = _check_tlvs(tlvs, crc32c)
    if crc32c:
        entries.append((TLVType.CRC32C, bytes(4)))
    body = block + b"".join(bytes((kind,)) + len(v).to_bytes(2, "big") + v for kind, v in entries)
    if 16 + len(body) > V2_MAX_LENGTH:
        raise ConfigError.for_argument(
            "encode_v2", "tlvs", f"<{len(body)} bytes>", "at most 65535 bytes with the addresses"
        )
    fixed = bytes((0x20 | _COMMAND_BITS[command], _FAMILY_BYTES[family]))
    header = V2_SIGNATURE + fixed + len(body).to_bytes(2, "big") + body
    if crc32c:  # the checksum covers the header with its own field still zero, as now
        header = header[:-4] + checksum(header).to_bytes(4, "big")
    return header


def _no_addresses(owner: str, source: object, destination: object) -> None:
    for name, value in (("source", source), ("destination", destination)):
        if value is not None:
            raise ConfigError.for_argument(owner, name, value, "None for this family/command")


def _inet(owner: str, name: str, family: str, address: object) -> tuple[str, int]:
    """The host (normalised) and port of ``address``, an IPv4 or IPv6 socket address."""
    ipv4 = family in ("TCP4", "UDP4")
    rule = f"an IPv{4 if ipv4 else 6} socket address (host, port{'' if ipv4 else ', ...'})"
    if not isinstance(address, tuple) or len(address) not in ((2,) if ipv4 else (2, 4)):
        raise ConfigError.for_argument(owner, name, address, rule)
    host, port = address[0], address[1]
    text = None
    if isinstance(host, str) and host.isascii():
        text = ipv4_text(host.encode()) if ipv4 else ipv6_text(host.encode())
    if text is None or type(port) is not int or not 0 <= port <= 0xFFFF:
        raise ConfigError.for_argument(owner, name, address, rule)
    return text, port


def _address_block(family: ProxyFamily, source: object, destination: object) -> bytes:
    if family in ("UNIX_STREAM", "UNIX_DGRAM"):
        return _unix("source", source) + _unix("destination", destination)
    af = socket.AF_INET if family in ("TCP4", "UDP4") else socket.AF_INET6
    (source_host, source_port), (destination_host, destination_port) = (
        _inet("encode_v2", name, family, address)
        for name, address in (("source", source), ("destination", destination))
    )
    block = socket.inet_pton(af, source_host) + socket.inet_pton(af, destination_host)
    return block + source_port.to_bytes(2, "big") + destination_port.to_bytes(2, "big")


def _unix(name: str, address: object) -> bytes:
    """A Unix address padded to 108 bytes: a path (``str``, no NUL) or an abstract name
    (``bytes``: a NUL, then a name not ending in NUL)."""
    raw = None
    if isinstance(address, str) and "\0" not in address:
        raw = os.fsencode(address)
    elif isinstance(address, bytes) and address[:1] == b"\0" and address[-1:] != b"\0":
        raw = address
    if raw is None or len(raw) > _UNIX_PATH:
        rule = "a Unix path (str) or an abstract name (bytes), at most 108 bytes"
        raise ConfigError.for_argument("encode_v2", name, address, rule)
    return raw.ljust(_UNIX_PATH, b"\0")


def _check_tlvs(tlvs: Iterable[TLV], crc32c: bool) -> list[TLV]:
    entries = list(tlvs)
    for entry in entries:
        kind, value = entry
        valid_value = isinstance(value, bytes) and len(value) <= 0xFFFF
        valid_kind = isinstance(kind, int) and not isinstance(kind, bool) and 0 <= kind <= 0xFF
        if not (valid_kind and valid_value):
            rule = "(type, value) pairs: a type 0-255 and bytes of at most 65535"
            raise ConfigError.for_argument("encode_v2", "tlvs", entry, rule)
        if crc32c and kind == TLVType.CRC32C:
            rule = "no CRC32C TLV when crc32c=True (which adds it)"
            raise ConfigError.for_argument("encode_v2", "tlvs", entry, rule)
    return entries
