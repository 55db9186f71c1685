"""``WrappingTransport``: what a transport wrapping another one shares (TLS, PROXY protocol).

A wrapper listens exactly as its inner transport does: it delegates the endpoint (``activate``,
``address``, ``fileno``, ``close``) and shares its counters; it only changes what ``bind`` reads
from the config and what ``receive`` makes of each accepted request.
"""

from __future__ import annotations

from typing import Generic, Protocol

from typedserve.requests import AddrT_co
from typedserve.transports.base import TransportStats

__all__ = ["Endpoint", "WrappingTransport"]


class Endpoint(Protocol[AddrT_co]):
    """The listening side of a transport, as a wrapper delegates it."""

    stats: TransportStats

    def activate(self) -> None:
        """Start listening."""

    @property
    def address(self) -> AddrT_co:
        """The bound address."""

    def fileno(self) -> int:
        """The listening socket's fd."""

    def close(self) -> None:
        """Release the endpoint."""


class WrappingTransport(Generic[AddrT_co]):
    """The endpoint half of a wrapping transport: everything delegated to ``inner``."""

    def __init__(self, inner: Endpoint[AddrT_co]) -> None:
        self.endpoint = inner
        self.stats: TransportStats = inner.stats  # the inner transport's counters

    def activate(self) -> None:
        """Listen (the inner transport)."""
        self.endpoint.activate()

    @property
    def address(self) -> AddrT_co:
        """The inner transport's bound address."""
        return self.endpoint.address

    def fileno(self) -> int:
        """The listening socket's fd."""
        return self.endpoint.fileno()

    def close(self) -> None:
        """Close the inner transport."""
        self.endpoint.close()
