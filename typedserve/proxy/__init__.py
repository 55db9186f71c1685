"""The PROXY protocol (HAProxy's, versions 1 and 2), as a sans-IO parser.

A proxy or load balancer in front of a server (HAProxy, nginx, AWS NLB, ...) can prepend to
each connection a header saying who the client really is: the server sees the proxy's address
as its peer, the header carries the client's. This package parses that header from plain
bytes; it opens no socket and keeps no state, so it is tested with byte strings and works
under any I/O model.

The model
---------
:func:`parse` takes every byte received so far and returns one of:

* a :class:`ProxyHeader`: the header is complete; its ``length`` is exactly how many bytes it
  took, and what follows is the application's;
* :class:`NeedMore`: the bytes are a valid beginning; read more (``at_least`` says how many
  bytes in total can be read without reading past the header) and call again;

or raises :class:`~typedserve.errors.ProxyProtocolError` as soon as the bytes cannot begin a
valid header. A peer that does not speak the protocol is told apart by its first byte
(``bad_signature`` is true): a v1 header starts with ``PROXY``, a v2 header with ``\\r\\n``.
Accept the header only from proxies you trust, and only where a proxy is configured: a
client that may send one can claim any address::

    data = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\\r\\nGET / HTTP/1.1\\r\\n"
    assert parse(data[:10]) == NeedMore(at_least=15)
    header = parse(data)
    assert header == ProxyHeader(
        version=1, command="PROXY", family="TCP4", source=("192.168.0.1", 56324),
        destination=("192.168.0.11", 443), length=47,
    )
    assert data[header.length:] == b"GET / HTTP/1.1\\r\\n"

Where the specification leaves room
-----------------------------------
* v1: addresses and ports are strict (no leading zeros, single spaces, a CRLF within 107
  bytes); an IPv6 address is anything ``inet_pton`` reads (the ``::ffff:1.2.3.4`` form too),
  reported compressed as ``socket`` writes it. After ``UNKNOWN`` the line is not looked at.
* v2: a family byte outside the seven defined is refused, even with ``LOCAL``. ``LOCAL``
  headers and the ``UNKNOWN`` family report no addresses; with ``LOCAL``, an address block
  shorter than the family's is accepted (the family is to be ignored) and then no TLV is
  read. Otherwise TLVs follow the address block; they must tile the rest of the header
  exactly, registered ones must hold what the specification says (text where it is text,
  a 4-byte ``CRC32C``, at most one of it, a ``UNIQUE_ID`` of at most 128 bytes, a
  well-formed ``SSL`` with its sub-TLVs), and a ``CRC32C`` must match.

:func:`encode_v1` and :func:`encode_v2` write headers, for tests and for relaying code.
"""

from typedserve.proxy._v1 import V1_MAX_LENGTH
from typedserve.proxy._v2 import V2_MAX_LENGTH, V2_SIGNATURE
from typedserve.proxy.encoder import encode_v1, encode_v2
from typedserve.proxy.header import (
    TLV,
    NeedMore,
    ProxyAddress,
    ProxyCommand,
    ProxyFamily,
    ProxyHeader,
    ProxySSL,
    TLVType,
)
from typedserve.proxy.parser import ALL_VERSIONS, parse

__all__ = [
    "ALL_VERSIONS",
    "TLV",
    "V1_MAX_LENGTH",
    "V2_MAX_LENGTH",
    "V2_SIGNATURE",
    "NeedMore",
    "ProxyAddress",
    "ProxyCommand",
    "ProxyFamily",
    "ProxyHeader",
    "ProxySSL",
    "TLVType",
    "encode_v1",
    "encode_v2",
    "parse",
]
