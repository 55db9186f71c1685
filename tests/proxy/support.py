"""Test-side helpers for the PROXY protocol: a raw v2 writer and a bit-by-bit CRC32C, written
apart from typedserve's own encoder and table-driven CRC so each checks the other, and a reader
that consumes only what ``NeedMore`` allows."""

from __future__ import annotations

import socket

from typedserve.proxy import NeedMore, ProxyHeader, parse

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
APP = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"  # what the client sends after the header


def crc32c_bitwise(data: bytes) -> int:
    """CRC32C one bit at a time, straight from the definition (RFC 4960, appendix B)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def tlv(kind: int, value: bytes) -> bytes:
    """One TLV on the wire."""
    return bytes((kind,)) + len(value).to_bytes(2, "big") + value


def v2(
    ver_cmd: int, family: int, body: bytes = b"", *, length: int | None = None, crc: bool = False
) -> bytes:
    """A raw v2 header: signature, the two bytes as given, ``length`` (default: the body's),
    the body; ``crc=True`` appends a correct CRC32C TLV."""
    if crc:
        body += tlv(0x03, bytes(4))
    size = len(body) if length is None else length
    data = SIGNATURE + bytes((ver_cmd, family)) + size.to_bytes(2, "big") + body
    if crc:
        data = data[:-4] + crc32c_bitwise(data).to_bytes(4, "big")
    return data


def inet(af: socket.AddressFamily, src: str, dst: str, sport: int, dport: int) -> bytes:
    """An address block for TCP/UDP over IPv4 or IPv6."""
    return (
        socket.inet_pton(af, src)
        + socket.inet_pton(af, dst)
        + sport.to_bytes(2, "big")
        + dport.to_bytes(2, "big")
    )


def unix(src: bytes, dst: bytes) -> bytes:
    """An address block for AF_UNIX: each address NUL-padded to 108 bytes."""
    return src.ljust(108, b"\0") + dst.ljust(108, b"\0")


def recv_reader(stream: bytes, chunk: int) -> ProxyHeader:
    """Read the header off ``stream`` as a transport without ``MSG_PEEK`` would: never more than
    ``NeedMore.at_least`` bytes in all (and at most ``chunk`` per read), so it must end holding
    exactly the header, ``stream[len(buffer):]`` untouched."""
    buffer = b""
    while True:
        result = parse(buffer)
        if isinstance(result, ProxyHeader):
            assert result.length == len(buffer), "a reader consumed bytes past the header"
            return result
        assert isinstance(result, NeedMore)
        assert result.at_least > len(buffer)
        if result.total is not None:
            assert result.total == result.at_least
        wanted = min(chunk, result.at_least - len(buffer))
        more = stream[len(buffer) : len(buffer) + wanted]
        assert more, f"the stream ended inside the header: {buffer!r} -> {result}"
        buffer += more
