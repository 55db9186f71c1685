"""Turning an ``OSError`` from bind/listen into a :class:`BindError` that names the address."""

from __future__ import annotations

import errno

from typedserve.errors import BindError

__all__ = ["bind_error"]

_HINTS = {
    errno.EADDRINUSE: "address already in use (another socket is bound there; stop it, pick "
    "another port, or use port 0)",
    errno.EACCES: "permission denied (ports below 1024 need privileges; for Unix sockets check "
    "the directory's permissions)",
    errno.EADDRNOTAVAIL: "address not available (the host is not an address of this machine)",
    errno.ENOENT: "no such directory for the socket file",
}


def bind_error(exc: OSError, where: str) -> BindError:
    """A :class:`BindError` for ``exc``, raised while binding or activating ``where``."""
    reason = _HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    return BindError(exc.errno, f"cannot bind {where}: {reason}", where)
