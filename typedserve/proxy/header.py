"""The values a PROXY protocol header parses into: :class:`ProxyHeader`, :class:`ProxySSL`,
:class:`NeedMore`, and the TLV type numbers (:class:`TLVType`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, TypeAlias

from typedserve.errors import ProxyProtocolError
from typedserve.requests import IPv4SockAddr, IPv6SockAddr, UnixSockAddr

__all__ = [
    "TLV",
    "NeedMore",
    "ProxyAddress",
    "ProxyCommand",
    "ProxyFamily",
    "ProxyHeader",
    "ProxySSL",
    "TLVType",
]

ProxyCommand: TypeAlias = Literal["PROXY", "LOCAL"]
"""``"PROXY"``: the connection is relayed for the client named in the header. ``"LOCAL"`` (v2
only): the proxy opened it on its own (a health check); use the real endpoints."""

ProxyFamily: TypeAlias = Literal[
    "TCP4", "TCP6", "UDP4", "UDP6", "UNIX_STREAM", "UNIX_DGRAM", "UNKNOWN"
]
"""The relayed connection's protocol and address family. v1 has ``TCP4``, ``TCP6`` and
``UNKNOWN``; v2 has all seven (its ``UNSPEC`` byte, ``0x00``, is reported as ``UNKNOWN``)."""

ProxyAddress: TypeAlias = IPv4SockAddr | IPv6SockAddr | UnixSockAddr
"""An endpoint of the relayed connection, typed as the ``socket`` module would return it:
``(host, port)`` for ``TCP4``/``UDP4``, ``(host, port, 0, 0)`` for ``TCP6``/``UDP6`` (the
header carries no flow info or scope id), and for ``UNIX_*`` a path ``str`` (``""`` for an
unnamed socket) or an abstract name (``bytes`` starting with a NUL byte)."""

TLV: TypeAlias = tuple[int, bytes]
"""One type-length-value entry as it was on the wire: ``(type, value)``."""


class TLVType(IntEnum):
    """The registered v2 TLV types (``PP2_TYPE_*``) and SSL sub-types (``PP2_SUBTYPE_SSL_*``).

    Types ``0xE0``-``0xEF`` are reserved for applications and ``0xF0``-``0xF7`` for
    experiments: :class:`ProxyHeader` keeps those (and any other) in ``tlvs`` as raw bytes.
    """

    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    SSL_VERSION = 0x21
    SSL_CN = 0x22
    SSL_CIPHER = 0x23
    SSL_SIG_ALG = 0x24
    SSL_KEY_ALG = 0x25
    NETNS = 0x30


UNIQUE_ID_MAX = 128
"""The longest ``UNIQUE_ID`` value, in bytes, that the specification allows."""

_CLIENT_SSL = 0x01
_CLIENT_CERT_CONN = 0x02
_CLIENT_CERT_SESS = 0x04


def split_tlvs(block: bytes, where: str) -> tuple[TLV, ...]:
    """``block`` cut into its TLVs; :class:`ProxyProtocolError` if one overruns the block."""
    tlvs: list[TLV] = []
    offset = 0
    while offset < len(block):
        if len(block) - offset < 3:
            raise ProxyProtocolError(
                f"malformed TLV in {where}: {len(block) - offset} byte(s) left at offset "
                f"{offset}, too few for a TLV's 3-byte type and length"
            )
        kind, size = block[offset], int.from_bytes(block[offset + 1 : offset + 3], "big")
        end = offset + 3 + size
        if end > len(block):
            raise ProxyProtocolError(
                f"malformed TLV in {where}: type {kind:#04x} at offset {offset} says "
                f"{size} bytes, but only {len(block) - offset - 3} are left"
            )
        tlvs.append((kind, block[offset + 3 : end]))
        offset = end
    return tuple(tlvs)


def join_tlvs(tlvs: tuple[TLV, ...]) -> bytes:
    """The wire form of ``tlvs`` (each value at most 65535 bytes)."""
    return b"".join(bytes((kind,)) + len(value).to_bytes(2, "big") + value for kind, value in tlvs)


def _first(tlvs: tuple[TLV, ...], kind: int) -> bytes | None:
    return next((value for k, value in tlvs if k == kind), None)


def _decode(kind: TLVType, value: bytes) -> str:
    encoding = _ENCODINGS[kind]
    try:
        return value.decode(encoding)
    except UnicodeDecodeError:
        raise ProxyProtocolError(
            f"malformed TLV: {kind.name} ({kind.value:#04x}) is not {encoding} text: {value[:40]!r}"
        ) from None


def _text(tlvs: tuple[TLV, ...], kind: TLVType) -> str | None:
    value = _first(tlvs, kind)
    return None if value is None else _decode(kind, value)


def _check_texts(tlvs: tuple[TLV, ...], kinds: frozenset[TLVType]) -> None:
    for kind, value in tlvs:
        if kind in kinds:
            _decode(TLVType(kind), value)


# The registered types whose value is text, and its encoding (per the specification).
_ENCODINGS: dict[TLVType, str] = {
    TLVType.AUTHORITY: "utf-8",
    TLVType.NETNS: "ascii",
    TLVType.SSL_VERSION: "ascii",
    TLVType.SSL_CN: "utf-8",
    TLVType.SSL_CIPHER: "ascii",
    TLVType.SSL_SIG_ALG: "ascii",
    TLVType.SSL_KEY_ALG: "ascii",
}
_TOP_TEXTS = frozenset({TLVType.AUTHORITY, TLVType.NETNS})
_SSL_TEXTS = frozenset(_ENCODINGS) - _TOP_TEXTS


@dataclass(frozen=True, slots=True)
class ProxySSL:
    """The ``SSL`` TLV (``0x20``): how the client reached the proxy over TLS.

    ``client`` holds the ``PP2_CLIENT_*`` bits (read them through :attr:`tls`,
    :attr:`cert_in_connection` and :attr:`cert_in_session`); ``verify`` is the proxy's
    certificate verification result, 0 for success (or for no certificate: see
    :attr:`cert_verified`); ``tlvs`` are the sub-TLVs, raw, read through the typed properties.

    Example::

        ssl = ProxySSL(client=0x01, verify=0, tlvs=((TLVType.SSL_VERSION, b"TLSv1.3"),))
        assert ssl.tls and ssl.version == "TLSv1.3"
        assert ProxySSL.from_bytes(ssl.to_bytes()) == ssl
    """

    client: int
    verify: int
    tlvs: tuple[TLV, ...] = ()

    @classmethod
    def from_bytes(cls, value: bytes) -> ProxySSL:
        """Parse an ``SSL`` TLV's value; :class:`ProxyProtocolError` if it is malformed."""
        if len(value) < 5:
            raise ProxyProtocolError(
                f"malformed TLV: SSL (0x20) is {len(value)} bytes, shorter than its 5-byte "
                "client and verify fields"
            )
        tlvs = split_tlvs(value[5:], "SSL")
        _check_texts(tlvs, _SSL_TEXTS)
        return cls(value[0], int.from_bytes(value[1:5], "big"), tlvs)

    def to_bytes(self) -> bytes:
        """The TLV value: what :meth:`from_bytes` parses."""
        return bytes((self.client,)) + self.verify.to_bytes(4, "big") + join_tlvs(self.tlvs)

    @property
    def tls(self) -> bool:
        """Whether the client connected over TLS (``PP2_CLIENT_SSL``)."""
        return bool(self.client & _CLIENT_SSL)

    @property
    def cert_in_connection(self) -> bool:
        """Whether the client sent a certificate on this connection (``PP2_CLIENT_CERT_CONN``)."""
        return bool(self.client & _CLIENT_CERT_CONN)

    @property
    def cert_in_session(self) -> bool:
        """Whether the client sent a certificate at least once in this TLS session
        (``PP2_CLIENT_CERT_SESS``)."""
        return bool(self.client & _CLIENT_CERT_SESS)

    @property
    def cert_verified(self) -> bool:
        """Whether the client presented a certificate and the proxy verified it: a
        certificate bit is set and ``verify`` is 0 (proxies also send 0 when there was no
        certificate, so ``verify`` alone does not say)."""
        return (self.cert_in_connection or self.cert_in_session) and self.verify == 0

    @property
    def version(self) -> str | None:
        """The TLS version (``SSL_VERSION``, ``0x21``), e.g. ``"TLSv1.3"``."""
        return _text(self.tlvs, TLVType.SSL_VERSION)

    @property
    def cn(self) -> str | None:
        """The Common Name of the client certificate's subject (``SSL_CN``, ``0x22``)."""
        return _text(self.tlvs, TLVType.SSL_CN)

    @property
    def cipher(self) -> str | None:
        """The cipher (``SSL_CIPHER``, ``0x23``), e.g. ``"ECDHE-RSA-AES128-GCM-SHA256"``."""
        return _text(self.tlvs, TLVType.SSL_CIPHER)

    @property
    def sig_alg(self) -> str | None:
        """The signature algorithm of the proxy's certificate (``SSL_SIG_ALG``, ``0x24``)."""
        return _text(self.tlvs, TLVType.SSL_SIG_ALG)

    @property
    def key_alg(self) -> str | None:
        """The key algorithm of the proxy's certificate (``SSL_KEY_ALG``, ``0x25``), e.g.
        ``"RSA2048"``."""
        return _text(self.tlvs, TLVType.SSL_KEY_ALG)


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed PROXY protocol header: who the relayed connection is really from and to.

    ``length`` is exactly how many bytes the header occupied at the start of the data given to
    :func:`~typedserve.proxy.parse`: consume that many, and the application's bytes follow.
    ``source`` and ``destination`` are ``None`` when the header names no endpoints (a
    ``LOCAL`` command, or the ``UNKNOWN`` family): use the real connection's then.

    ``tlvs`` (v2 only) are every TLV in wire order, raw, unknown types and ``NOOP`` padding
    included; the properties read the registered ones (the first of a type, if it repeats).
    A header returned by ``parse`` has been checked: its properties do not raise, and its
    ``CRC32C``, if any, matched.

    Example::

        header = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\\r\\nGET /")
        assert header.source == ("192.168.0.1", 56324) and header.length == 47
    """

    version: Literal[1, 2]
    command: ProxyCommand
    family: ProxyFamily
    source: ProxyAddress | None
    destination: ProxyAddress | None
    length: int
    tlvs: tuple[TLV, ...] = ()

    def tlv(self, kind: int) -> bytes | None:
        """The value of the first TLV of type ``kind``, or ``None`` if there is none."""
        return _first(self.tlvs, kind)

    @property
    def alpn(self) -> bytes | None:
        """The ALPN protocol the client negotiated with the proxy (``ALPN``, ``0x01``), e.g.
        ``b"h2"``."""
        return _first(self.tlvs, TLVType.ALPN)

    @property
    def authority(self) -> str | None:
        """The host name the client asked for, usually its TLS SNI (``AUTHORITY``, ``0x02``)."""
        return _text(self.tlvs, TLVType.AUTHORITY)

    @property
    def crc32c(self) -> int | None:
        """The header's CRC32C checksum (``CRC32C``, ``0x03``), verified by ``parse``."""
        value = _first(self.tlvs, TLVType.CRC32C)
        return None if value is None else int.from_bytes(value, "big")

    @property
    def unique_id(self) -> bytes | None:
        """The proxy's opaque id of the connection, at most 128 bytes (``UNIQUE_ID``,
        ``0x05``)."""
        return _first(self.tlvs, TLVType.UNIQUE_ID)

    @property
    def ssl(self) -> ProxySSL | None:
        """How the client reached the proxy over TLS (``SSL``, ``0x20``), with its sub-TLVs."""
        value = _first(self.tlvs, TLVType.SSL)
        return None if value is None else ProxySSL.from_bytes(value)

    @property
    def netns(self) -> str | None:
        """The network namespace the proxy accepted the connection in (``NETNS``, ``0x30``)."""
        return _text(self.tlvs, TLVType.NETNS)


def check_registered_tlvs(tlvs: tuple[TLV, ...]) -> None:
    """Raise :class:`ProxyProtocolError` if a registered TLV's value is malformed (the
    checksum's value is checked by the parser, which has the header's bytes)."""
    crcs = [value for kind, value in tlvs if kind == TLVType.CRC32C]
    if len(crcs) > 1:
        raise ProxyProtocolError(
            f"malformed TLV: {len(crcs)} CRC32C TLVs (0x03); a header has at most one checksum"
        )
    if crcs and len(crcs[0]) != 4:
        raise ProxyProtocolError(f"malformed TLV: CRC32C (0x03) is {len(crcs[0])} bytes, not 4")
    for kind, value in tlvs:
        if kind == TLVType.UNIQUE_ID and len(value) > UNIQUE_ID_MAX:
            raise ProxyProtocolError(
                f"malformed TLV: UNIQUE_ID (0x05) is {len(value)} bytes, more than {UNIQUE_ID_MAX}"
            )
        if kind == TLVType.SSL:
            ProxySSL.from_bytes(value)
    _check_texts(tlvs, _TOP_TEXTS)


@dataclass(frozen=True, slots=True)
class NeedMore:
    """:func:`~typedserve.proxy.parse`'s answer when the bytes so far are a valid beginning.

    ``at_least`` is a lower bound of the header's total length, always more than the bytes
    given: reading until that many bytes are in hand never consumes application data, so a
    reader without ``MSG_PEEK`` can ``recv(at_least - len(data))`` safely. ``total`` is the
    exact length once it is known (a v2 header, from its 16th byte), else ``None``; a v1
    line's length is known only at its CRLF, so ``at_least`` grows a byte or two at a time.
    """

    at_least: int
    total: int | None = None
