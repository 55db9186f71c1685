"""Bind errors of the compat servers: the stdlib's own exception, with a note naming the address.

The stdlib lets the ``OSError`` from ``socket.bind`` propagate, and callers catch it by class
(``except PermissionError``), test ``errno``, or compare ``str()``/``repr()``/``args``. Compat
raises that very exception object, unchanged, and only adds a note (PEP 678
``add_note``), which tracebacks print after the message and which no attribute that code
reads includes: ``cannot bind TCP server to 127.0.0.1:8000``.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["add_bind_note", "describe_address"]

_KINDS = {
    (socket.AF_INET, socket.SOCK_STREAM): "TCP",
    (socket.AF_INET6, socket.SOCK_STREAM): "TCP",
    (socket.AF_INET, socket.SOCK_DGRAM): "UDP",
    (socket.AF_INET6, socket.SOCK_DGRAM): "UDP",
    (socket.AF_UNIX, socket.SOCK_STREAM): "Unix stream",
    (socket.AF_UNIX, socket.SOCK_DGRAM): "Unix datagram",
}


def describe_address(address: Any) -> str:
    """``127.0.0.1:80``, ``[::1]:80`` or the Unix path, for messages."""
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    if isinstance(address, bytes):
        return address.decode(errors="backslashreplace")
    return str(address)


def add_bind_note(exc: OSError, address: Any, sock: Any) -> None:
    """Note on ``exc`` (raised by ``sock.bind(address)``) which server and address it was.

    Nothing else about ``exc`` changes: class, ``str``, ``repr``, ``args``, ``errno`` stay
    the stdlib's.
    """
    try:
        kind = _KINDS.get((sock.family, sock.type), "socket")
    except (AttributeError, OSError):
        kind = "socket"
    exc.add_note(f"cannot bind {kind} server to {describe_address(address)}")
