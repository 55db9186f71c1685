"""The transport ``typedserve serve`` gives a handler class, from the address and the config.

The address picks the base transport (TCP, UDP, Unix stream or datagram; an inherited fd by its
family). The config's tables wrap it, innermost first: ``[proxy_protocol]`` in a
:class:`~typedserve.transports.proxied.ProxyProtocolTransport` (the header comes first on the
wire), then ``[tls]`` in a :class:`~typedserve.transports.tls.TLSTransport`. A server factory
builds its own transport: :func:`check_factory_transport` says when the config asks for a
wrapper the factory left out.
"""

from __future__ import annotations

from typing import Any

from typedserve.config import ServerConfig
from typedserve.errors import TypedServeError
from typedserve.requests import InetSockAddr, UnixDatagramPeer, UnixSockAddr
from typedserve.server import Server
from typedserve.transports import (
    TCPTransport,
    UDPTransport,
    UnixDatagramTransport,
    UnixStreamTransport,
)
from typedserve.transports.proxied import ProxyProtocolTransport
from typedserve.transports.proxied_datagram import ProxyProtocolDatagramTransport
from typedserve.transports.tls import TLSTransport

__all__ = ["ADDRESSES", "base_transport", "check_factory_transport", "wrap_for_config"]

ADDRESSES: dict[type, object] = {
    TCPTransport: InetSockAddr,
    UDPTransport: InetSockAddr,
    UnixStreamTransport: UnixSockAddr,
    UnixDatagramTransport: UnixDatagramPeer,
}
"""The peer address type of each base transport (what its requests carry)."""


def base_transport(*, datagram: bool, unix: bool) -> Any:
    """A new transport for datagrams or streams, on a Unix socket or inet."""
    if datagram:
        return UnixDatagramTransport() if unix else UDPTransport()
    return UnixStreamTransport() if unix else TCPTransport()


def wrap_for_config(transport: Any, config: ServerConfig, target: str, datagram: bool) -> Any:
    """``transport`` wrapped as the config's ``[proxy_protocol]`` and ``[tls]`` tables ask
    (both keep the inner transport's addresses)."""
    if config.proxy_protocol is not None and config.proxy_protocol.mode != "off":
        if isinstance(transport, UDPTransport):
            transport = ProxyProtocolDatagramTransport(transport)
        elif datagram:
            raise TypedServeError(
                f"{target} serves Unix datagrams: PROXY protocol headers are read on streams "
                "and UDP only (drop the [proxy_protocol] table or --proxy-protocol)"
            )
        else:
            transport = ProxyProtocolTransport(transport)
    if config.tls is not None:
        if datagram:
            raise TypedServeError(f"{target} serves datagrams: TLS needs a stream (no DTLS)")
        transport = TLSTransport(transport)
    return transport


def check_factory_transport(spec: str, server: Server[Any, Any], config: ServerConfig) -> None:
    """A config table that needs a wrapper (``[tls]``, ``[proxy_protocol]``) the server a
    factory built does not have is a mistake: say which, and how to fix it."""
    layers: list[object] = []
    transport: object = server.transport
    while transport is not None:
        layers.append(transport)
        transport = getattr(transport, "inner", None)
    kind = type(server.transport).__name__
    if config.tls is not None and not any(isinstance(t, TLSTransport) for t in layers):
        raise TypedServeError(
            f"the config has a [tls] table but {spec}(config) built a {kind}: wrap it in a "
            "TLSTransport, or drop the table"
        )
    proxy = config.proxy_protocol
    readers = (ProxyProtocolTransport, ProxyProtocolDatagramTransport)
    if (
        proxy is not None
        and proxy.mode != "off"
        and not any(isinstance(t, readers) for t in layers)
    ):
        raise TypedServeError(
            f"the config has a [proxy_protocol] table but {spec}(config) built a {kind}: wrap "
            "its transport in a ProxyProtocolTransport (UDP: ProxyProtocolDatagramTransport), "
            "or drop the table"
        )
