"""Bind errors for the compat servers: a :class:`BindError` that is also the stdlib's exception.

The stdlib lets the ``OSError`` from ``socket.bind`` propagate, and callers catch it by class
(``except PermissionError``, ``except FileNotFoundError``) or test ``errno``. The error raised
here keeps all of that (same ``OSError`` subclass, ``errno``, ``strerror`` and the start of
``str()``), is a :class:`typedserve.errors.BindError`, and its message names the address.
"""

from __future__ import annotations

import socket
from typing import Any

from typedserve.errors import BindError

__all__ = ["CompatBindError", "compat_bind_error"]


class CompatBindError(BindError):
    """A bind failure of a compat server; ``str()`` is the stdlib's, plus the address."""

    def __init__(
        self, errno: int | None, strerror: str | None, address: object = None, detail: str = ""
    ) -> None:
        super().__init__(errno, strerror or "", address)
        self.detail = detail

    def __str__(self) -> str:
        base = f"[Errno {self.errno}] {self.strerror}" if self.errno is not None else "bind failed"
        return f"{base} ({self.detail})" if self.detail else base


class PermissionBindError(CompatBindError, PermissionError):
    """``EACCES``/``EPERM`` while binding: also a :class:`PermissionError`."""


class FileNotFoundBindError(CompatBindError, FileNotFoundError):
    """``ENOENT`` while binding a Unix socket: also a :class:`FileNotFoundError`."""


class NotADirectoryBindError(CompatBindError, NotADirectoryError):
    """``ENOTDIR`` while binding a Unix socket: also a :class:`NotADirectoryError`."""


class FileExistsBindError(CompatBindError, FileExistsError):
    """``EEXIST`` while binding: also a :class:`FileExistsError`."""


_BY_CLASS: dict[type[OSError], type[CompatBindError]] = {
    PermissionError: PermissionBindError,
    FileNotFoundError: FileNotFoundBindError,
    NotADirectoryError: NotADirectoryBindError,
    FileExistsError: FileExistsBindError,
}

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


def compat_bind_error(exc: OSError, address: Any, sock: Any) -> OSError:
    """The error to raise for ``exc`` from ``sock.bind(address)``.

    Errors the stdlib never names an address for (a non-``OSError`` subclass such as
    ``socket.gaierror`` or a ``TimeoutError``) are returned unchanged.
    """
    cls = _BY_CLASS.get(type(exc), CompatBindError if type(exc) is OSError else None)
    if cls is None:
        return exc
    try:
        kind = _KINDS.get((sock.family, sock.type), "socket")
    except (AttributeError, OSError):
        kind = "socket"
    detail = f"cannot bind {kind} server to {describe_address(address)}"
    return cls(exc.errno, exc.strerror, address, detail)
