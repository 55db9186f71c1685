"""Unix socket file hygiene: stale-file probing, mode, and unlinking only what we created."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable

from typedserve.config import UnixAddress
from typedserve.errors import BindError
from typedserve.transports.bind_errors import bind_error

__all__ = ["bind_unix"]


def bind_unix(
    address: UnixAddress, socktype: int
) -> tuple[socket.socket, Callable[[], None] | None]:
    """Bind a Unix socket at ``address``; return it and the cleanup that unlinks its file.

    Before binding, an existing file at the path is removed only if it is a socket that nobody
    listens on (a probe connect is refused). A live socket, or a file that is not a socket,
    raises :class:`BindError`. The cleanup unlinks the path only while it is still the file
    this call created (same device and inode), so a successor's socket is never removed.
    """
    where = f"unix:{address.path}"
    if not address.is_abstract:
        _clear_stale(address, socktype, where)
    sock = socket.socket(socket.AF_UNIX, socktype)
    try:
        sock.bind(address.sockaddr)
        if address.is_abstract:
            return sock, None
        if address.mode is not None:
            os.chmod(address.path, address.mode)
        made = os.stat(address.path)
    except OSError as exc:
        sock.close()
        raise bind_error(exc, where) from None
    return sock, lambda: _unlink_if_ours(address.path, made.st_dev, made.st_ino)


def _clear_stale(address: UnixAddress, socktype: int, where: str) -> None:
    try:
        info = os.lstat(address.path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BindError(exc.errno, f"cannot bind {where}: {exc.strerror}", where) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise BindError(
            errno.EEXIST,
            f"cannot bind {where}: the path exists and is not a socket; refusing to remove it",
            where,
        )
    if address.stale == "error":
        raise BindError(
            errno.EADDRINUSE,
            f"cannot bind {where}: a socket file already exists (stale='error'); remove it "
            "or set stale='probe'",
            where,
        )
    if _is_live(address.path, socktype):
        raise BindError(
            errno.EADDRINUSE,
            f"cannot bind {where}: address already in use (a live server answers there)",
            where,
        )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address.path)


def _is_live(path: str, socktype: int) -> bool:
    probe = socket.socket(socket.AF_UNIX, socktype)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # EAGAIN: a listener with a full backlog; EPROTOTYPE: bound with another type. Both
        # mean someone owns it. Anything else: leave the file alone and say so.
        if exc.errno in (errno.EAGAIN, errno.EPROTOTYPE, errno.EINPROGRESS):
            return True
        raise BindError(
            exc.errno, f"cannot bind unix:{path}: probing the existing socket failed: {exc}", path
        ) from None
    finally:
        probe.close()
    return True


def _unlink_if_ours(path: str, device: int, inode: int) -> None:
    try:
        info = os.lstat(path)
        if info.st_dev == device and info.st_ino == inode:
            os.unlink(path)
    except FileNotFoundError:
        pass
