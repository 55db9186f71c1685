"""``typedserve.proxy.parse``: every family, command and TLV of both versions, whole or split at
any byte; each error named as soon as the bytes prove it; never a byte past the header."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from tests.proxy.support import APP, SIGNATURE, crc32c_bitwise, inet, recv_reader, tlv, unix, v2
from typedserve.errors import ConfigError, ProxyProtocolError
from typedserve.proxy import (
    ALL_VERSIONS,
    NeedMore,
    ProxyHeader,
    ProxySSL,
    TLVType,
    parse,
)
from typedserve.proxy._crc32c import crc32c

pytestmark = pytest.mark.timeout(120)

A4, A6 = socket.AF_INET, socket.AF_INET6
TCP4 = inet(A4, "192.168.0.1", "192.168.0.11", 56324, 443)
TCP6 = inet(A6, "2001:db8::1", "2001:db8::2", 4000, 443)
SSL = ProxySSL(
    client=0x07,
    verify=0,
    tlvs=(
        (TLVType.SSL_VERSION, b"TLSv1.3"),
        (TLVType.SSL_CN, "Ünïcode CN".encode()),
        (TLVType.SSL_CIPHER, b"TLS_AES_128_GCM_SHA256"),
        (TLVType.SSL_SIG_ALG, b"RSA-SHA256"),
        (TLVType.SSL_KEY_ALG, b"RSA2048"),
        (0x26, b"x25519"),  # a sub-type newer than the specification: kept raw
    ),
)
ALL_TLVS = (
    (TLVType.ALPN, b"h2"),
    (TLVType.AUTHORITY, "bücher.example".encode()),
    (TLVType.NOOP, b"\0\0\0"),
    (TLVType.UNIQUE_ID, bytes(range(128))),
    (TLVType.SSL, SSL.to_bytes()),
    (TLVType.NETNS, b"blue"),
    (0xE0, b"custom"),
    (0x06, b""),  # an unregistered type, empty: kept raw
)
ALL_TLV_BYTES = b"".join(tlv(kind, value) for kind, value in ALL_TLVS)
SRC4, DST4 = ("192.168.0.1", 56324), ("192.168.0.11", 443)
SRC6, DST6 = ("2001:db8::1", 4000, 0, 0), ("2001:db8::2", 443, 0, 0)
FFFF = ":".join(["FFFF"] * 8)


VALID: dict[str, tuple[bytes, tuple[object, ...]]] = {
    "v1 TCP4": (
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        (1, "PROXY", "TCP4", SRC4, DST4, ()),
    ),
    "v1 TCP4 extremes": (
        b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        (1, "PROXY", "TCP4", ("0.0.0.0", 0), ("255.255.255.255", 65535), ()),
    ),
    "v1 TCP6": (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n",
        (1, "PROXY", "TCP6", SRC6, DST6, ()),
    ),
    "v1 TCP6 longest, normalised": (
        f"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 {FFFF} 65535 65535\r\n".encode(),
        (1, "PROXY", "TCP6", ("2001:db8::1", 65535, 0, 0), (FFFF.lower(), 65535, 0, 0), ()),
    ),
    "v1 TCP6 IPv4-mapped": (
        b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
        (1, "PROXY", "TCP6", ("::ffff:192.0.2.1", 1, 0, 0), ("::1", 2, 0, 0), ()),
    ),
    "v1 UNKNOWN": (b"PROXY UNKNOWN\r\n", (1, "PROXY", "UNKNOWN", None, None, ())),
    "v1 UNKNOWN, 107 bytes, rest ignored": (
        f"PROXY UNKNOWN {FFFF} {FFFF} 65535 65535\r\n".encode(),
        (1, "PROXY", "UNKNOWN", None, None, ()),
    ),
    "v2 TCP4": (v2(0x21, 0x11, TCP4), (2, "PROXY", "TCP4", SRC4, DST4, ())),
    "v2 UDP4": (v2(0x21, 0x12, TCP4), (2, "PROXY", "UDP4", SRC4, DST4, ())),
    "v2 TCP6": (v2(0x21, 0x21, TCP6), (2, "PROXY", "TCP6", SRC6, DST6, ())),
    "v2 UDP6": (v2(0x21, 0x22, TCP6), (2, "PROXY", "UDP6", SRC6, DST6, ())),
    "v2 UNIX_STREAM paths": (
        v2(0x21, 0x31, unix(b"/run/client.sock", "/run/sérveur".encode())),
        (2, "PROXY", "UNIX_STREAM", "/run/client.sock", "/run/sérveur", ()),
    ),
    "v2 UNIX_DGRAM abstract and unnamed": (
        v2(0x21, 0x32, unix(b"\0abstract", b"")),
        (2, "PROXY", "UNIX_DGRAM", b"\0abstract", "", ()),
    ),
    "v2 UNIX path of 108 bytes, no NUL": (
        v2(0x21, 0x31, unix(b"/" + b"p" * 107, b"/x")),
        (2, "PROXY", "UNIX_STREAM", "/" + "p" * 107, "/x", ()),
    ),
    "v2 UNSPEC": (v2(0x21, 0x00), (2, "PROXY", "UNKNOWN", None, None, ())),
    "v2 UNSPEC with TLVs": (
        v2(0x21, 0x00, tlv(0x05, b"id")),
        (2, "PROXY", "UNKNOWN", None, None, ((5, b"id"),)),
    ),
    "v2 LOCAL": (v2(0x20, 0x00), (2, "LOCAL", "UNKNOWN", None, None, ())),
    "v2 LOCAL with addresses: not reported": (
        v2(0x20, 0x11, TCP4 + tlv(0x01, b"h2")),
        (2, "LOCAL", "TCP4", None, None, ((1, b"h2"),)),
    ),
    "v2 LOCAL with a short block: family ignored": (
        v2(0x20, 0x21, b"\xff" * 5),
        (2, "LOCAL", "TCP6", None, None, ()),
    ),
    "v2 every TLV": (
        v2(0x21, 0x11, TCP4 + ALL_TLV_BYTES),
        (2, "PROXY", "TCP4", SRC4, DST4, ALL_TLVS),
    ),
}


def expected(case: str) -> ProxyHeader:
    wire, (version, command, family, src, dst, tlvs) = VALID[case]
    return ProxyHeader(version, command, family, src, dst, len(wire), tlvs)  # type: ignore[arg-type]  # the table's loose types


@pytest.mark.parametrize("case", VALID)
def test_a_whole_header_parses_and_its_length_is_exact(case: str) -> None:
    wire = VALID[case][0]
    assert parse(wire) == expected(case)
    assert parse(wire + APP) == expected(case)  # the application's bytes are not looked at
    assert parse(bytearray(wire + APP)) == parse(memoryview(wire + APP)) == expected(case)


@pytest.mark.parametrize("case", VALID)
def test_every_prefix_needs_more_and_every_longer_buffer_gives_the_same_header(case: str) -> None:
    wire = VALID[case][0]
    stream = wire + APP
    for end in range(len(wire)):
        result = parse(stream[:end])
        assert isinstance(result, NeedMore), (end, result)
        assert end < result.at_least <= len(wire)  # reading up to at_least is always safe
        assert result.total in (None, len(wire))
    for end in range(len(wire), len(stream) + 1):
        assert parse(stream[:end]) == expected(case)


@pytest.mark.parametrize("case", VALID)
@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_a_reader_that_consumes_what_it_reads_stops_exactly_at_the_header(
    case: str, chunk: int
) -> None:
    wire = VALID[case][0]
    assert recv_reader(wire + APP, chunk) == expected(case)


def test_a_v2_header_says_its_exact_length_from_its_16th_byte() -> None:
    wire = VALID["v2 every TLV"][0]
    assert parse(wire[:15]) == NeedMore(at_least=16)
    assert parse(wire[:16]) == NeedMore(at_least=len(wire), total=len(wire))


def test_a_v1_line_needs_at_least_its_crlf() -> None:
    assert parse(b"") == NeedMore(at_least=15)
    assert parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 22") == NeedMore(at_least=33)
    assert parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 22\r") == NeedMore(at_least=33)


# -- the TLVs --------------------------------------------------------------------------------


def test_the_registered_tlvs_are_read_through_typed_properties() -> None:
    parsed = parse(VALID["v2 every TLV"][0])
    assert isinstance(parsed, ProxyHeader)
    assert parsed.alpn == b"h2"
    assert parsed.authority == "bücher.example"
    assert parsed.unique_id == bytes(range(128))
    assert parsed.netns == "blue"
    assert parsed.crc32c is None
    assert parsed.tlv(0xE0) == b"custom" and parsed.tlv(0x06) == b"" and parsed.tlv(0xE1) is None
    assert parsed.ssl == SSL
    ssl = parsed.ssl
    assert (ssl.tls, ssl.cert_in_connection, ssl.cert_in_session, ssl.cert_verified) == (
        True,
        True,
        True,
        True,
    )
    assert (ssl.version, ssl.cn, ssl.cipher, ssl.sig_alg, ssl.key_alg) == (
        "TLSv1.3",
        "Ünïcode CN",
        "TLS_AES_128_GCM_SHA256",
        "RSA-SHA256",
        "RSA2048",
    )


def test_a_header_without_tlvs_has_none_of_them() -> None:
    parsed = parse(VALID["v1 TCP4"][0])
    assert isinstance(parsed, ProxyHeader)
    assert (parsed.alpn, parsed.authority, parsed.crc32c, parsed.unique_id) == (None,) * 4
    assert (parsed.ssl, parsed.netns, parsed.tlvs) == (None, None, ())


@pytest.mark.parametrize(
    ("client", "verify", "verified"),
    [(0x01, 0, False), (0x03, 0, True), (0x05, 0, True), (0x03, 1, False), (0x00, 0, False)],
)
def test_a_certificate_is_verified_only_if_one_was_sent_and_verify_is_zero(
    client: int, verify: int, verified: bool
) -> None:
    assert ProxySSL(client, verify).cert_verified is verified
    assert ProxySSL(client, verify).tls is bool(client & 1)


def test_a_crc32c_is_verified_and_reported() -> None:
    wire = v2(0x21, 0x11, TCP4 + tlv(0x01, b"h2"), crc=True)
    parsed = parse(wire + APP)
    assert isinstance(parsed, ProxyHeader)
    assert parsed.crc32c == int.from_bytes(wire[-4:], "big") and parsed.length == len(wire)


def test_the_table_crc32c_is_the_bitwise_definition() -> None:
    assert crc32c(b"123456789") == crc32c_bitwise(b"123456789") == 0xE3069283
    sample = bytes(range(256)) * 3
    assert crc32c(sample) == crc32c_bitwise(sample)


# -- errors, each as soon as the bytes prove it ----------------------------------------------


@dataclass(frozen=True)
class Bad:
    data: bytes
    at: int  # the shortest prefix that proves it (shorter ones need more)
    match: str
    bad_signature: bool = False
    versions: frozenset[int] = ALL_VERSIONS


def bad(data: bytes, proof: bytes | None, match: str, **kwargs: object) -> Bad:
    """``proof``: the prefix of ``data`` that proves the fault (``None``: all of it)."""
    at = len(data) if proof is None else len(proof)
    assert data.startswith(proof or b"")
    return Bad(data, at, match, **kwargs)  # type: ignore[arg-type]  # test table


L4 = b"PROXY TCP4 "
CRC_OK = v2(0x21, 0x11, TCP4, crc=True)
BAD: dict[str, Bad] = {
    "HTTP request": bad(
        b"GET / HTTP/1.1\r\n", b"G", "not a PROXY protocol header", bad_signature=True
    ),
    "lowercase proxy": bad(b"proxy TCP4 ", b"p", "not a PROXY", bad_signature=True),
    "PROXY without its space": bad(b"PROXYTCP4", b"PROXYT", "not a PROXY", bad_signature=True),
    "TLS ClientHello": bad(b"\x16\x03\x01\x02\x00", b"\x16", "not a PROXY", bad_signature=True),
    "v2 signature broken": bad(
        SIGNATURE[:5] + b"X", SIGNATURE[:5] + b"X", "not a PROXY", bad_signature=True
    ),
    "v2 refused": bad(
        v2(0x21, 0x00),
        b"\r",
        r"v2 header refused.*versions=\[1\]",
        bad_signature=True,
        versions=frozenset({1}),
    ),
    "v1 refused": bad(
        b"PROXY UNKNOWN\r\n",
        b"P",
        r"v1 header refused.*versions=\[2\]",
        bad_signature=True,
        versions=frozenset({2}),
    ),
    "bad protocol": bad(b"PROXY TCP5 1.2.3.4", b"PROXY TCP5", r"bad v1 protocol b'TCP5'"),
    "lowercase protocol": bad(b"PROXY tcp4 ", b"PROXY t", "bad v1 protocol"),
    "UNKNOWN run on": bad(b"PROXY UNKNOWNX\r\n", b"PROXY UNKNOWNX", "bad v1 protocol"),
    "no protocol": bad(b"PROXY \r\n", None, "bad v1 protocol b''"),
    "leading zero in an octet": bad(
        L4 + b"192.168.01.1 1.2.3.4 1 2\r\n",
        L4 + b"192.168.01.1 ",
        r"bad v1 source address b'192\.168\.01\.1'.*no leading zeros",
    ),
    "octet over 255": bad(
        L4 + b"1.2.3.256 1.2.3.4 1 2\r\n", L4 + b"1.2.3.256 ", "bad v1 source address"
    ),
    "three octets": bad(
        L4 + b"1.2.3.4 1.2.3 1 2\r\n", L4 + b"1.2.3.4 1.2.3 ", "bad v1 destination address"
    ),
    "IPv6 under TCP4": bad(L4 + b"::1 ::1 1 2\r\n", L4 + b":", "TCP4 needs an IPv4 address"),
    "IPv4 text too long": bad(L4 + b"1" * 20, L4 + b"1" * 16, "bad v1 source address"),
    "IPv4 under TCP6": bad(
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", b"PROXY TCP6 1.2.3.4 ", "TCP6 needs an IPv6 address"
    ),
    "bad IPv6": bad(
        b"PROXY TCP6 2001:db8:::1 ::1 1 2\r\n", b"PROXY TCP6 2001:db8:::1 ", "bad v1 source address"
    ),
    "IPv6 scope": bad(
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", b"PROXY TCP6 fe80::1%", "bad v1 source address"
    ),
    "double space": bad(L4 + b" 1.2.3.4 1.2.3.4 1 2\r\n", L4 + b" ", "bad v1 source address b''"),
    "leading zero in a port": bad(
        L4 + b"1.2.3.4 5.6.7.8 080 443\r\n", L4 + b"1.2.3.4 5.6.7.8 08", "bad v1 source port b'08"
    ),
    "port over 65535": bad(
        L4 + b"1.2.3.4 5.6.7.8 65536 443\r\n",
        L4 + b"1.2.3.4 5.6.7.8 65536 ",
        "bad v1 source port.*0-65535",
    ),
    "port not a number": bad(
        L4 + b"1.2.3.4 5.6.7.8 1 https\r\n", L4 + b"1.2.3.4 5.6.7.8 1 h", "bad v1 destination port"
    ),
    "port over 65535 at the CRLF": bad(
        L4 + b"1.2.3.4 5.6.7.8 1 99999\r\n", None, "bad v1 destination port"
    ),
    "a field missing": bad(
        L4 + b"1.2.3.4 5.6.7.8 1\r\n", None, r"bad v1 line: 3 field\(s\) after TCP4, expected 4"
    ),
    "a field too many": bad(
        L4 + b"1.2.3.4 5.6.7.8 1 2 3\r\n", L4 + b"1.2.3.4 5.6.7.8 1 2 ", "5 field"
    ),
    "LF alone": bad(L4 + b"1.2.3.4 5.6.7.8 1 2\n", None, "bad v1 destination port"),
    "CR alone": bad(L4 + b"1.2.3.4 5.6.7.8 1 2\rX", None, "bad v1 destination port"),
    "line too long": bad(
        b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
        b"PROXY UNKNOWN " + b"x" * 93,
        "v1 line too long: no CRLF in its first 107 bytes",
    ),
    "v2 version 1": bad(
        v2(0x11, 0x11, TCP4), SIGNATURE + b"\x11", r"unknown v2 version 1: byte 13 is 0x11"
    ),
    "v2 version 3": bad(v2(0x31, 0x11, TCP4), SIGNATURE + b"\x31", "unknown v2 version 3"),
    "v2 command 2": bad(
        v2(0x22, 0x11, TCP4), SIGNATURE + b"\x22", r"unknown v2 command 0x2: byte 13 is 0x22"
    ),
    "v2 command 0xf": bad(v2(0x2F, 0x11, TCP4), SIGNATURE + b"\x2f", "unknown v2 command 0xf"),
    "v2 family 0x13": bad(
        v2(0x21, 0x13, TCP4),
        SIGNATURE + b"\x21\x13",
        r"unknown v2 address family and transport 0x13 \(byte 14\)",
    ),
    "v2 family 0x41": bad(
        v2(0x21, 0x41, TCP4), SIGNATURE + b"\x21\x41", "unknown v2 address family"
    ),
    "v2 family 0x01": bad(v2(0x20, 0x01), SIGNATURE + b"\x20\x01", "unknown v2 address family"),
    "v2 TCP4 block short": bad(
        v2(0x21, 0x11, TCP4[:11]),
        SIGNATURE + b"\x21\x11\x00\x0b",
        r"v2 address block too short: TCP4 needs 12 bytes.*says 11",
    ),
    "v2 TCP6 block of 12": bad(
        v2(0x21, 0x21, TCP4), SIGNATURE + b"\x21\x21\x00\x0c", "TCP6 needs 36 bytes"
    ),
    "v2 UNIX block short": bad(
        v2(0x21, 0x32, bytes(200)), SIGNATURE + b"\x21\x32\x00\xc8", "UNIX_DGRAM needs 216"
    ),
    "v2 TLV header cut": bad(
        v2(0x21, 0x11, TCP4 + b"\x01\x00"),
        None,
        r"malformed TLV in the v2 header: 2 byte\(s\) left at offset 0",
    ),
    "v2 TLV overruns": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x02, b"x" * 10)[:-7]),
        None,
        "malformed TLV in the v2 header: type 0x02 at offset 0 says 10 bytes, but only 3",
    ),
    "v2 TLV overruns (LOCAL)": bad(
        v2(0x20, 0x00, b"\x04\x00\x09"), None, "says 9 bytes, but only 0"
    ),
    "CRC32C mismatch": bad(
        CRC_OK[:27] + b"\xff" + CRC_OK[28:], None, r"v2 CRC32C mismatch: the header states 0x"
    ),
    "CRC32C of 3 bytes": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x03, b"abc")), None, r"CRC32C \(0x03\) is 3 bytes, not 4"
    ),
    "two CRC32Cs": bad(v2(0x21, 0x11, TCP4 + tlv(0x03, bytes(4)) * 2), None, "2 CRC32C TLVs"),
    "UNIQUE_ID of 129 bytes": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x05, bytes(129))),
        None,
        r"UNIQUE_ID \(0x05\) is 129 bytes, more than 128",
    ),
    "AUTHORITY not UTF-8": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x02, b"\xff")), None, r"AUTHORITY \(0x02\) is not utf-8 text"
    ),
    "NETNS not ASCII": bad(
        v2(0x21, 0x00, tlv(0x30, "é".encode())), None, r"NETNS \(0x30\) is not ascii"
    ),
    "SSL too short": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x20, b"\x01\0\0\0")),
        None,
        r"SSL \(0x20\) is 4 bytes, shorter than its 5-byte",
    ),
    "SSL sub-TLV overruns": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x20, b"\x01\0\0\0\0" + b"\x21\x00\x09TLS")),
        None,
        "malformed TLV in SSL: type 0x21",
    ),
    "SSL_CIPHER not ASCII": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x20, b"\x01\0\0\0\0" + tlv(0x23, b"\x80"))),
        None,
        r"SSL_CIPHER \(0x23\) is not ascii",
    ),
    "SSL_CN not UTF-8": bad(
        v2(0x21, 0x11, TCP4 + tlv(0x20, b"\x01\0\0\0\0" + tlv(0x22, b"\xc3"))),
        None,
        r"SSL_CN \(0x22\) is not utf-8",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_each_fault_is_named_as_soon_as_the_bytes_prove_it(case: str) -> None:
    fault = BAD[case]
    for end in range(fault.at):
        result = parse(fault.data[:end], versions=fault.versions)  # type: ignore[arg-type]  # wider on purpose
        assert isinstance(result, NeedMore), (end, result)
    for end in range(fault.at, len(fault.data) + 1):
        data = fault.data[:end] + (APP if end == len(fault.data) else b"")
        with pytest.raises(ProxyProtocolError, match=fault.match) as caught:
            parse(data, versions=fault.versions)  # type: ignore[arg-type]  # wider on purpose
        assert caught.value.bad_signature is fault.bad_signature
        assert isinstance(caught.value, ValueError)


def test_a_v2_header_longer_than_max_v2_length_is_refused_at_its_length_field() -> None:
    wire = v2(0x21, 0x11, TCP4 + tlv(0x04, bytes(100)))
    assert isinstance(parse(wire, max_v2_length=len(wire)), ProxyHeader)
    with pytest.raises(ProxyProtocolError, match=r"v2 length overflow: .* 131 bytes \(16 \+ 115\)"):
        parse(wire[:16], max_v2_length=len(wire) - 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"versions": frozenset()}, "versions"),
        ({"versions": {3}}, "versions"),
        ({"versions": {True}}, "versions"),
        ({"max_v2_length": 15}, "max_v2_length"),
        ({"max_v2_length": 65552}, "max_v2_length"),
        ({"max_v2_length": 100.0}, "max_v2_length"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"parse\({field}=\.\.\.\) must be"):
        parse(b"PROXY", **kwargs)  # type: ignore[arg-type]  # the wrong values under test


def test_versions_accepts_any_collection() -> None:
    assert parse(b"PROXY UNKNOWN\r\n", versions=[1]) == parse(b"PROXY UNKNOWN\r\n")
    assert parse(b"\r\n", versions=(2,)) == NeedMore(at_least=16)  # type: ignore[arg-type]  # a literal tuple reads as tuple[int]
