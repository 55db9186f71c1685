"""``typedserve.proxy.parse`` under generated input: random and mutated bytes raise nothing but
``ProxyProtocolError`` and never claim a byte past the data; encoded headers parse back."""

from __future__ import annotations

import os
import socket
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.proxy.support import APP, SIGNATURE, recv_reader
from tests.proxy.test_header import BAD, VALID
from typedserve.errors import ProxyProtocolError
from typedserve.proxy import (
    ALL_VERSIONS,
    TLV,
    NeedMore,
    ProxyAddress,
    ProxyCommand,
    ProxyFamily,
    ProxyHeader,
    ProxySSL,
    TLVType,
    encode_v1,
    encode_v2,
    parse,
)

pytestmark = pytest.mark.timeout(120)

MANY = settings(max_examples=1000, deadline=None)

versions_st = st.sampled_from([ALL_VERSIONS, frozenset({1}), frozenset({2})])


def check_invariants(data: bytes, versions: frozenset[Literal[1, 2]]) -> ProxyHeader | None:
    """Parse ``data``: the only error is ProxyProtocolError, a header fits in the data and
    parses the same from exactly its own bytes, a NeedMore asks for more than there is."""
    try:
        result = parse(data, versions=versions)
    except ProxyProtocolError:
        return None
    if isinstance(result, NeedMore):
        assert result.at_least > len(data)
        assert result.total in (None, result.at_least)
        return None
    assert 0 < result.length <= len(data)
    assert parse(data[: result.length], versions=versions) == result
    assert isinstance(parse(data[: result.length - 1], versions=versions), NeedMore)
    return result


# A few beginnings that get random bytes past the signature checks.
PREFIXES = [b"", b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN", SIGNATURE]
PREFIXES += [
    SIGNATURE + bytes((command, family))
    for command in (0x20, 0x21)
    for family in (0x00, 0x11, 0x21, 0x31)
]


@MANY
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=300), versions=versions_st)
def test_random_bytes_raise_only_proxy_protocol_errors(
    prefix: bytes, tail: bytes, versions: frozenset[Literal[1, 2]]
) -> None:
    check_invariants(prefix + tail, versions)


SEEDS = [wire for wire, _ in VALID.values()] + [fault.data for fault in BAD.values()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid or faulty header with a few bytes replaced, inserted or deleted, maybe cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)) + draw(st.sampled_from([b"", APP])))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if action == "insert":
            data.insert(index, byte)
        elif index < len(data):
            if action == "replace":
                data[index] = byte
            else:
                del data[index]
    return bytes(data[: draw(st.integers(0, len(data)))])


@MANY
@given(data=mutated(), versions=versions_st)
def test_mutated_headers_raise_only_proxy_protocol_errors(
    data: bytes, versions: frozenset[Literal[1, 2]]
) -> None:
    check_invariants(data, versions)


# -- round trips -----------------------------------------------------------------------------

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda ip: socket.inet_ntop(socket.AF_INET6, ip.packed))
# As ``parse`` reports a path: the bytes through ``os.fsdecode`` (undecodable bytes become
# escapes; a lone surrogate of any other kind is no path at all, ``os.fsencode`` refuses it).
unix_path = st.binary(max_size=108).filter(lambda raw: b"\0" not in raw).map(os.fsdecode)
unix_abstract = st.binary(min_size=1, max_size=107).filter(lambda name: name[-1] != 0)
unix_address = st.one_of(unix_path, unix_abstract.map(lambda name: b"\0" + name))


def addresses(family: ProxyFamily) -> st.SearchStrategy[ProxyAddress]:
    """A socket address of ``family``, in the form ``parse`` reports it."""
    if family in ("TCP4", "UDP4"):
        return st.tuples(ipv4, ports)
    if family in ("TCP6", "UDP6"):
        return st.tuples(ipv6, ports, st.just(0), st.just(0))
    return unix_address


def text_tlv(kind: TLVType, alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[TLV]:
    return st.text(alphabet, max_size=30).map(lambda text: (kind, text.encode()))


ascii_chars = st.characters(max_codepoint=127)
ssl_value = st.builds(
    lambda client, verify, subs: ProxySSL(client, verify, tuple(subs)).to_bytes(),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.lists(
        st.one_of(
            text_tlv(TLVType.SSL_VERSION, ascii_chars),
            text_tlv(TLVType.SSL_CN, st.characters(blacklist_categories=["Cs"])),
            text_tlv(TLVType.SSL_CIPHER, ascii_chars),
            st.tuples(st.integers(0x26, 0xFF), st.binary(max_size=10)),
        ),
        max_size=4,
    ),
)
tlv_entries = st.lists(
    st.one_of(
        st.tuples(st.just(TLVType.ALPN), st.binary(max_size=20)),
        text_tlv(TLVType.AUTHORITY, st.characters(blacklist_categories=["Cs"])),
        st.tuples(st.just(TLVType.NOOP), st.binary(max_size=20)),
        st.tuples(st.just(TLVType.UNIQUE_ID), st.binary(max_size=128)),
        st.tuples(st.just(TLVType.SSL), ssl_value),
        text_tlv(TLVType.NETNS, ascii_chars),
        st.tuples(st.integers(0xE0, 0xFF), st.binary(max_size=20)),
    ),
    max_size=5,
)


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[ProxyHeader, bool]:
    """A header as ``parse`` would report it, and whether to add a CRC32C."""
    family: ProxyFamily = draw(
        st.sampled_from(["TCP4", "TCP6", "UDP4", "UDP6", "UNIX_STREAM", "UNIX_DGRAM", "UNKNOWN"])
    )
    command: ProxyCommand = draw(st.sampled_from(["PROXY", "LOCAL"]))
    if family == "UNKNOWN":
        source = destination = None
    else:
        source, destination = draw(addresses(family)), draw(addresses(family))
    tlvs = tuple((int(kind), value) for kind, value in draw(tlv_entries))
    return ProxyHeader(2, command, family, source, destination, 0, tlvs), draw(st.booleans())


@MANY
@given(v2_headers())
def test_encode_v2_then_parse_gives_the_header_back(case: tuple[ProxyHeader, bool]) -> None:
    want, crc = case
    wire = encode_v2(
        want.family,
        want.source,
        want.destination,
        command=want.command,
        tlvs=want.tlvs,
        crc32c=crc,
    )
    got = parse(wire + APP)
    assert isinstance(got, ProxyHeader) and got.length == len(wire)
    assert got.tlvs[: len(want.tlvs)] == want.tlvs
    assert (got.crc32c is not None) is crc and len(got.tlvs) == len(want.tlvs) + crc
    local = want.command == "LOCAL"
    assert got.source == (None if local else want.source)
    assert got.destination == (None if local else want.destination)
    assert (got.version, got.command, got.family) == (2, want.command, want.family)
    assert recv_reader(wire + APP, chunk=64) == got


@MANY
@given(
    family=st.sampled_from(["TCP4", "TCP6", "UNKNOWN"]),
    data=st.data(),
)
def test_encode_v1_then_parse_gives_the_header_back(
    family: Literal["TCP4", "TCP6", "UNKNOWN"], data: st.DataObject
) -> None:
    source = destination = None
    if family != "UNKNOWN":
        source, destination = data.draw(addresses(family)), data.draw(addresses(family))
    wire = encode_v1(family, source, destination)  # type: ignore[arg-type]  # drawn per family
    assert len(wire) <= 107
    assert parse(wire + APP) == ProxyHeader(1, "PROXY", family, source, destination, len(wire))
