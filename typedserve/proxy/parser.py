""":func:`parse`: bytes in, a :class:`~typedserve.proxy.ProxyHeader` or :class:`NeedMore` out."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, Literal

from typedserve.errors import ConfigError, ProxyProtocolError
from typedserve.proxy._v1 import V1_MAX_LENGTH, V1_MIN_LENGTH, V1_SIGNATURE, parse_v1
from typedserve.proxy._v2 import V2_FIXED_LENGTH, V2_MAX_LENGTH, V2_SIGNATURE, parse_v2
from typedserve.proxy.header import NeedMore, ProxyHeader

__all__ = ["ALL_VERSIONS", "parse"]

ALL_VERSIONS: Final[frozenset[Literal[1, 2]]] = frozenset({1, 2})
"""Both versions of the protocol: :func:`parse`'s default ``versions``."""

_SIGNATURES: Final = {1: V1_SIGNATURE, 2: V2_SIGNATURE}
_MIN_LENGTHS: Final = {1: V1_MIN_LENGTH, 2: V2_FIXED_LENGTH}


def parse(
    data: bytes | bytearray | memoryview,
    *,
    versions: Collection[Literal[1, 2]] = ALL_VERSIONS,
    max_v2_length: int = V2_MAX_LENGTH,
) -> ProxyHeader | NeedMore:
    """Parse the PROXY protocol header at the start of ``data`` (the bytes received so far).

    Returns a :class:`~typedserve.proxy.ProxyHeader` once the whole header is in (its
    ``length`` says how many bytes of ``data`` it occupied; the bytes after it are the
    application's and are not looked at), or :class:`~typedserve.proxy.NeedMore` while the
    bytes so far are a valid beginning of one. Call it again with more bytes: it keeps no
    state, so ``data`` must be everything received since the connection opened.

    Raises :class:`~typedserve.errors.ProxyProtocolError` as soon as the bytes prove the
    header wrong, before the rest of it arrives: a peer that does not speak the protocol is
    told apart by its first byte (``bad_signature`` is then true), a bad v1 field once that
    field is complete (or is already too long or holds a wrong character), a bad v2 version,
    command, family or length at its byte. ``versions`` are the versions accepted (a header
    of another is refused as a bad signature); ``max_v2_length`` bounds a v2 header's total
    length (at most 65551, the most its 16-bit length field can say), so a reader can bound
    the bytes it buffers. Bad arguments raise :class:`~typedserve.errors.ConfigError`.

    A reader that consumes what it reads must not read past the header: it can read up to
    ``NeedMore.at_least`` bytes in total, or peek (``MSG_PEEK``) and then consume exactly
    ``length`` bytes.

    Example::

        data = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\\r\\n"
        assert parse(data[:20]) == NeedMore(at_least=22)
        header = parse(data + b"GET / HTTP/1.1\\r\\n")
        assert isinstance(header, ProxyHeader) and header.length == len(data)
        assert header.source == ("2001:db8::1", 4000, 0, 0)
    """
    allowed = _check_arguments(versions, max_v2_length)
    head = bytes(data[: len(V2_SIGNATURE)])
    candidates = [version for version in sorted(allowed) if _starts_like(version, head)]
    if not candidates:
        raise _bad_signature(head, allowed)
    version = candidates[0]
    if len(candidates) > 1 or len(head) < len(_SIGNATURES[version]):
        return NeedMore(min(_MIN_LENGTHS[v] for v in candidates))
    if version == 1:
        return parse_v1(bytes(data[:V1_MAX_LENGTH]))
    return parse_v2(data, max_v2_length)


def _check_arguments(versions: Collection[int], max_v2_length: int) -> frozenset[int]:
    allowed = frozenset(versions)
    if not allowed or not allowed <= ALL_VERSIONS or any(type(v) is not int for v in allowed):
        raise ConfigError.for_argument(
            "parse", "versions", versions, "a non-empty collection of 1 and/or 2"
        )
    if type(max_v2_length) is not int or not V2_FIXED_LENGTH <= max_v2_length <= V2_MAX_LENGTH:
        raise ConfigError.for_argument(
            "parse", "max_v2_length", max_v2_length, f"an int in {V2_FIXED_LENGTH}..{V2_MAX_LENGTH}"
        )
    return allowed


def _starts_like(version: int, head: bytes) -> bool:
    """Whether ``head`` (up to 12 bytes) is, or begins, the signature of ``version``."""
    signature = _SIGNATURES[version]
    return signature.startswith(head[: len(signature)])


def _bad_signature(head: bytes, allowed: frozenset[int]) -> ProxyProtocolError:
    refused = [v for v in sorted(ALL_VERSIONS - allowed) if _starts_like(v, head)]
    if refused:
        return ProxyProtocolError(
            f"PROXY protocol v{refused[0]} header refused: {head!r} starts like one, but "
            f"versions={sorted(allowed)} allows only v{min(allowed)}",
            bad_signature=True,
        )
    expected = " or ".join(f"{_SIGNATURES[v]!r} (v{v})" for v in sorted(allowed))
    return ProxyProtocolError(
        f"not a PROXY protocol header: the data starts with {head!r}, expected {expected}; "
        "is the peer a client that does not speak the PROXY protocol?",
        bad_signature=True,
    )
