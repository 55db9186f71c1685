"""``connect``: a client socket for a server under test, whatever its transport."""

from __future__ import annotations

import socket
from typing import Any

from typedserve.server import Server

__all__ = ["connect"]

# A wildcard bind accepts connections on loopback; connect there.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def connect(server: Server[Any, Any], *, timeout: float | None = 5.0) -> socket.socket:
    """A new client socket connected to ``server``, of the server socket's family and type.

    Stream servers get an established connection. Datagram sockets are ``connect``-ed, so
    ``send``/``recv`` talk to the server only; a Unix datagram client is auto-bound to a
    unique abstract name, so the server can reply to it. ``timeout`` applies to every
    operation on the socket (``None``: blocking). The caller closes the socket.

    Example::

        with connect(server) as client:
            client.sendall(b"hello\\n")
    """
    family, socktype = _kind_of(server.fileno())
    address = server.address
    if family in (socket.AF_INET, socket.AF_INET6):
        host = _WILDCARDS.get(address[0], address[0])
        address = (host, address[1], *address[2:])
    client = socket.socket(family, socktype)
    try:
        client.settimeout(timeout)
        if family == socket.AF_UNIX and socktype == socket.SOCK_DGRAM:
            client.bind("")  # Linux autobind: a unique abstract address to reply to
        client.connect(address)
    except BaseException:
        client.close()
        raise
    return client


def _kind_of(fd: int) -> tuple[int, int]:
    probe = socket.socket(fileno=fd)  # reads family and type from the kernel
    try:
        return probe.family, probe.type
    finally:
        probe.detach()  # the fd belongs to the server
