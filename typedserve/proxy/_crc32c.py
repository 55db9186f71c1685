"""CRC32C (Castagnoli), as the ``CRC32C`` TLV uses it (RFC 4960, appendix B), in pure Python:
a v2 header is at most 64 KiB and carries a checksum rarely, so a table lookup per byte is
enough, and no C extension is needed."""

from __future__ import annotations

__all__ = ["crc32c"]


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # the reflected polynomial
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc32c(data: bytes) -> int:
    """The CRC32C of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
