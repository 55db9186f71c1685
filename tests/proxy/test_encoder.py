"""``encode_v1`` and ``encode_v2`` write the bytes of the specification (checked against bytes
written by hand and by the test-side writer) and reject what a header cannot carry."""

from __future__ import annotations

import socket

import pytest

from tests.proxy.support import inet, tlv, unix, v2
from typedserve.errors import ConfigError
from typedserve.proxy import ProxySSL, TLVType, encode_v1, encode_v2

pytestmark = pytest.mark.timeout(120)

SRC4, DST4 = ("192.168.0.1", 56324), ("192.168.0.11", 443)


def test_encode_v1_writes_the_specification_lines() -> None:
    assert encode_v1("TCP4", SRC4, DST4) == b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    assert encode_v1("TCP6", ("2001:DB8:0::1", 1, 0, 0), ("::1", 2)) == (
        b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
    )
    assert encode_v1("UNKNOWN") == b"PROXY UNKNOWN\r\n"


def test_encode_v2_writes_the_specification_bytes() -> None:
    by_hand = (
        b"\r\n\r\n\x00\r\nQUIT\n"  # signature
        b"\x21\x11\x00\x0c"  # version 2, PROXY; TCP over IPv4; 12 bytes follow
        b"\xc0\xa8\x00\x01\xc0\xa8\x00\x0b\xdc\x04\x01\xbb"  # addresses, ports 56324 and 443
    )
    assert encode_v2("TCP4", SRC4, DST4) == by_hand
    assert encode_v2(command="LOCAL") == b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
    assert encode_v2("TCP4", command="LOCAL") == v2(0x20, 0x11)  # LOCAL: no addresses needed


def test_encode_v2_writes_every_family_tlvs_in_order_and_the_checksum() -> None:
    a6 = ("2001:db8::1", 4000, 0, 0), ("2001:db8::2", 443, 0, 0)
    block6 = inet(socket.AF_INET6, "2001:db8::1", "2001:db8::2", 4000, 443)
    assert encode_v2("UDP6", *a6) == v2(0x21, 0x22, block6)
    assert encode_v2("UNIX_DGRAM", b"\0abs", "/p") == v2(0x21, 0x32, unix(b"\0abs", b"/p"))
    ssl = ProxySSL(1, 0, ((TLVType.SSL_VERSION, b"TLSv1.2"),))
    tlvs = [(TLVType.ALPN, b"h2"), (TLVType.SSL, ssl.to_bytes()), (0xE5, b"")]
    body = inet(socket.AF_INET, "192.168.0.1", "192.168.0.11", 56324, 443)
    body += b"".join(tlv(kind, value) for kind, value in tlvs)
    assert encode_v2("TCP4", SRC4, DST4, tlvs=tlvs, crc32c=True) == v2(0x21, 0x11, body, crc=True)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: encode_v1("UDP4", SRC4, DST4), r"encode_v1\(family=\.\.\.\)"),  # type: ignore[arg-type]
        (lambda: encode_v1("UNKNOWN", SRC4), r"encode_v1\(source=\.\.\.\) must be None"),
        (lambda: encode_v1("TCP4", SRC4), r"encode_v1\(destination=\.\.\.\) must be an IPv4"),
        (lambda: encode_v1("TCP4", ("::1", 1), DST4), "source"),
        (lambda: encode_v1("TCP4", ("01.2.3.4", 1), DST4), "source"),
        (lambda: encode_v1("TCP4", ("localhost", 1), DST4), "source"),
        (lambda: encode_v1("TCP4", SRC4, ("1.2.3.4", 65536)), "destination"),
        (lambda: encode_v1("TCP4", SRC4, ("1.2.3.4", True)), "destination"),
        (lambda: encode_v1("TCP6", ("fe80::1%eth0", 1, 0, 0), DST4), "source"),
        (lambda: encode_v1("TCP6", ("::1", 1, 0), ("::1", 1)), "source"),  # type: ignore[arg-type]
        (lambda: encode_v2("TCP5"), r"encode_v2\(family=\.\.\.\)"),  # type: ignore[arg-type]
        (lambda: encode_v2(command="HEALTH"), r"encode_v2\(command=\.\.\.\)"),  # type: ignore[arg-type]
        (lambda: encode_v2("TCP4", SRC4), "destination"),
        (lambda: encode_v2("UNKNOWN", SRC4, DST4), "must be None"),
        (lambda: encode_v2("UNIX_STREAM", "a\0b", "/x"), "source"),
        (lambda: encode_v2("UNIX_STREAM", "/" * 109, "/x"), "at most 108 bytes"),
        (lambda: encode_v2("UNIX_STREAM", b"/not-abstract", "/x"), "source"),
        (lambda: encode_v2("UNIX_STREAM", b"\0trailing\0", "/x"), "source"),
        (lambda: encode_v2("UNIX_STREAM", ("1.2.3.4", 1), "/x"), "source"),
        (lambda: encode_v2(tlvs=[(256, b"")]), r"encode_v2\(tlvs=\.\.\.\)"),
        (lambda: encode_v2(tlvs=[(1, "text")]), "tlvs"),  # type: ignore[list-item]
        (lambda: encode_v2(tlvs=[(1, bytes(65536))]), "tlvs"),
        (lambda: encode_v2(tlvs=[(3, bytes(4))], crc32c=True), "no CRC32C TLV when crc32c=True"),
        (lambda: encode_v2(tlvs=[(4, bytes(65533))]), "at most 65535 bytes"),
    ],
)
def test_what_a_header_cannot_carry_is_a_config_error(call: object, match: str) -> None:
    assert callable(call)
    with pytest.raises(ConfigError, match=match):
        call()
