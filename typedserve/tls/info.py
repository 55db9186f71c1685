"""``TLSInfo``: what a TLS handshake negotiated, as handler code reads it (``request.tls``).

A value read once from the connection's ``ssl`` object when the handshake completes
(:meth:`TLSInfo.of` takes an ``ssl.SSLSocket`` or an ``ssl.SSLObject``, so the selector loop's
blocking sockets and AsyncIO's transports give the same value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import ssl

__all__ = ["SERVER_NAME", "PeerCertificate", "TLSInfo"]

SERVER_NAME = "_typedserve_server_name"
"""The attribute a ``TLSTransport``'s SNI callback sets on a connection's ``ssl`` object: the name
the client asked for (the server side of ``ssl`` has no accessor for it)."""

_Names: TypeAlias = tuple[tuple[str, str], ...]


def _flatten(rdns: Any) -> _Names:
    """``getpeercert()``'s subject or issuer (a tuple of RDNs, each a tuple of pairs) as pairs."""
    return tuple((str(key), str(value)) for rdn in rdns or () for key, value in rdn)


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The client's certificate, as verified during the handshake (mutual TLS).

    ``subject`` and ``issuer`` are ``(attribute, value)`` pairs in certificate order (e.g.
    ``("commonName", "alice")``); ``subject_alt_names`` are ``(type, value)`` pairs (e.g.
    ``("DNS", "client.example")``); dates are as OpenSSL prints them
    (``"Nov 29 12:00:00 2026 GMT"``; ``ssl.cert_time_to_seconds`` converts them). ``der`` is
    the certificate itself, for anything this does not parse.
    """

    subject: _Names
    issuer: _Names
    serial_number: str
    not_before: str
    not_after: str
    subject_alt_names: _Names
    der: bytes

    @property
    def common_name(self) -> str | None:
        """The subject's (last) ``commonName``, if it has one."""
        names = [value for key, value in self.subject if key == "commonName"]
        return names[-1] if names else None


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What the handshake of a TLS connection negotiated.

    ``server_name`` is the name the client asked for with SNI (``None``: it sent none);
    ``alpn`` the application protocol both chose (``None``: none offered or none in common);
    ``peer_certificate`` the client's verified certificate when ``tls.client_auth`` asked for
    one and it sent one (``None`` otherwise).
    """

    version: str
    """The protocol version: ``"TLSv1.3"`` or ``"TLSv1.2"``."""
    cipher: str
    """The cipher suite's OpenSSL name (e.g. ``"TLS_AES_256_GCM_SHA384"``)."""
    alpn: str | None
    server_name: str | None
    peer_certificate: PeerCertificate | None

    @classmethod
    def of(cls, conn: ssl.SSLSocket | ssl.SSLObject, server_name: str | None = None) -> TLSInfo:
        """Read a completed handshake from ``conn`` (an ``SSLSocket`` or ``SSLObject``)."""
        cipher = conn.cipher()
        parsed: dict[str, Any] | None = conn.getpeercert()
        peer = None
        if parsed:  # empty when no certificate was asked for, or none was sent
            peer = PeerCertificate(
                subject=_flatten(parsed.get("subject")),
                issuer=_flatten(parsed.get("issuer")),
                serial_number=str(parsed.get("serialNumber", "")),
                not_before=str(parsed.get("notBefore", "")),
                not_after=str(parsed.get("notAfter", "")),
                subject_alt_names=tuple(
                    (str(kind), str(value)) for kind, value in parsed.get("subjectAltName", ())
                ),
                der=conn.getpeercert(True) or b"",
            )
        return cls(
            version=conn.version() or "",
            cipher=cipher[0] if cipher else "",
            alpn=conn.selected_alpn_protocol(),
            server_name=server_name,
            peer_certificate=peer,
        )
