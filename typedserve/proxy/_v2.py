"""Version 2: a binary header, a 16-byte fixed part then an address block and TLVs.

The fixed part: the 12-byte signature, the version and command byte, the family and
transport byte, and the big-endian length of what follows. Each of these is checked as soon
as its byte is in, so a bad header is rejected before the rest of it arrives.
"""

from __future__ import annotations

import os
import socket
from typing import Final

from typedserve.errors import ProxyProtocolError
from typedserve.proxy._crc32c import crc32c
from typedserve.proxy.header import (
    TLV,
    NeedMore,
    ProxyAddress,
    ProxyCommand,
    ProxyFamily,
    ProxyHeader,
    TLVType,
    check_registered_tlvs,
    split_tlvs,
)

__all__ = [
    "ADDRESS_SIZES",
    "COMMANDS",
    "FAMILIES",
    "V2_FIXED_LENGTH",
    "V2_MAX_LENGTH",
    "V2_SIGNATURE",
    "parse_v2",
]

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
"""The 12 bytes a v2 header starts with."""

V2_FIXED_LENGTH: Final = 16
"""The fixed part of a v2 header: signature, version and command, family, length."""

V2_MAX_LENGTH: Final = V2_FIXED_LENGTH + 0xFFFF
"""The longest v2 header: its 16-bit length field says at most 65535 bytes follow."""

COMMANDS: Final[dict[int, ProxyCommand]] = {0x0: "LOCAL", 0x1: "PROXY"}
"""The command (low nibble of byte 13) -> its name."""

FAMILIES: Final[dict[int, ProxyFamily]] = {
    0x00: "UNKNOWN",
    0x11: "TCP4",
    0x12: "UDP4",
    0x21: "TCP6",
    0x22: "UDP6",
    0x31: "UNIX_STREAM",
    0x32: "UNIX_DGRAM",
}
"""The family and transport byte (byte 14) -> its name; any other byte is refused."""

ADDRESS_SIZES: Final[dict[ProxyFamily, int]] = {
    "UNKNOWN": 0,
    "TCP4": 12,
    "UDP4": 12,
    "TCP6": 36,
    "UDP6": 36,
    "UNIX_STREAM": 216,
    "UNIX_DGRAM": 216,
}
"""The size of each family's address block: two addresses, and two ports for TCP/UDP."""

_UNIX_PATH: Final = 108  # bytes per Unix address (sun_path)


def parse_v2(data: bytes | bytearray | memoryview, max_length: int) -> ProxyHeader | NeedMore:
    """Parse ``data``, which starts with :data:`V2_SIGNATURE`: a header once all of it is in,
    else :class:`NeedMore` or :class:`ProxyProtocolError` (for the bytes so far)."""
    fixed = bytes(data[:V2_FIXED_LENGTH])
    command = _command(fixed[12]) if len(fixed) > 12 else "PROXY"
    family = _family(fixed[13]) if len(fixed) > 13 else "UNKNOWN"
    if len(fixed) < V2_FIXED_LENGTH:
        return NeedMore(V2_FIXED_LENGTH)
    size = int.from_bytes(fixed[14:16], "big")
    total = V2_FIXED_LENGTH + size
    if total > max_length:
        raise ProxyProtocolError(
            f"v2 length overflow: the header says it is {total} bytes (16 + {size}), more "
            f"than max_v2_length={max_length} allows"
        )
    address_size = ADDRESS_SIZES[family]
    if size < address_size and command == "PROXY":
        raise ProxyProtocolError(
            f"v2 address block too short: {family} needs {address_size} bytes of addresses, "
            f"but the length field says {size} bytes follow"
        )
    if len(data) < total:
        return NeedMore(total, total)
    header = bytes(data[:total])
    if size < address_size:  # LOCAL ignores the family: nothing to skip, nothing to read
        return ProxyHeader(2, command, family, None, None, total)
    tlvs = split_tlvs(header[V2_FIXED_LENGTH + address_size :], "the v2 header")
    check_registered_tlvs(tlvs)
    _check_crc32c(header, V2_FIXED_LENGTH + address_size, tlvs)
    if command == "LOCAL" or family == "UNKNOWN":
        return ProxyHeader(2, command, family, None, None, total, tlvs)
    source, destination = _addresses(family, header[V2_FIXED_LENGTH:])
    return ProxyHeader(2, command, family, source, destination, total, tlvs)


def _command(byte: int) -> ProxyCommand:
    if byte >> 4 != 2:
        raise ProxyProtocolError(
            f"unknown v2 version {byte >> 4}: byte 13 is {byte:#04x}, and 2 is the only "
            "version of the binary header (0x20 LOCAL, 0x21 PROXY)"
        )
    command = COMMANDS.get(byte & 0x0F)
    if command is None:
        raise ProxyProtocolError(
            f"unknown v2 command {byte & 0x0F:#x}: byte 13 is {byte:#04x}; expected 0x20 "
            "(LOCAL) or 0x21 (PROXY)"
        )
    return command


def _family(byte: int) -> ProxyFamily:
    family = FAMILIES.get(byte)
    if family is None:
        known = ", ".join(f"{value:#04x} ({name})" for value, name in FAMILIES.items())
        raise ProxyProtocolError(
            f"unknown v2 address family and transport {byte:#04x} (byte 14); expected one "
            f"of {known}"
        )
    return family


def _check_crc32c(header: bytes, offset: int, tlvs: tuple[TLV, ...]) -> None:
    """Verify the CRC32C TLV, if any: the checksum of the header with its own field zeroed."""
    for kind, value in tlvs:
        if kind == TLVType.CRC32C:
            field = offset + 3
            computed = crc32c(header[:field] + bytes(4) + header[field + 4 :])
            stated = int.from_bytes(value, "big")
            if computed != stated:
                raise ProxyProtocolError(
                    f"v2 CRC32C mismatch: the header states {stated:#010x}, its bytes sum to "
                    f"{computed:#010x}: it was corrupted or altered on the way"
                )
        offset += 3 + len(value)


def _addresses(family: ProxyFamily, block: bytes) -> tuple[ProxyAddress, ProxyAddress]:
    if family in ("UNIX_STREAM", "UNIX_DGRAM"):
        return _unix(block[:_UNIX_PATH]), _unix(block[_UNIX_PATH : 2 * _UNIX_PATH])
    if family in ("TCP4", "UDP4"):
        width, af = 4, socket.AF_INET
    else:
        width, af = 16, socket.AF_INET6
    hosts = socket.inet_ntop(af, block[:width]), socket.inet_ntop(af, block[width : 2 * width])
    ports = block[2 * width : 2 * width + 2], block[2 * width + 2 : 2 * width + 4]
    source_port, destination_port = (int.from_bytes(port, "big") for port in ports)
    if width == 4:
        return (hosts[0], source_port), (hosts[1], destination_port)
    return (hosts[0], source_port, 0, 0), (hosts[1], destination_port, 0, 0)


def _unix(raw: bytes) -> str | bytes:
    """A Unix address as ``socket`` gives it: a path up to its NUL, or an abstract name
    (``bytes`` starting with NUL; the padding NULs after it are dropped), ``""`` if empty."""
    if raw[:1] == b"\0":
        return raw.rstrip(b"\0") or ""
    return os.fsdecode(raw.split(b"\0", 1)[0])
