"""Creating and binding listening sockets, with errors that name the address and the fix."""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from typedserve.activation import give_back, peek, take
from typedserve.config import Address, FDAddress, InetAddress, ServerConfig, UnixAddress
from typedserve.errors import BindError, TransportMismatchError, TypedServeError
from typedserve.transports.bind_errors import bind_error
from typedserve.transports.unix_files import bind_unix

__all__ = ["Listener", "describe_family", "listens_on_unix", "open_listener"]


@dataclass(slots=True)
class Listener:
    """A bound socket and what must be undone when it closes."""

    socket: socket.socket
    cleanup: Callable[[], None] | None = field(default=None)


def open_listener(
    config: ServerConfig, socktype: int, families: Collection[int], owner: str
) -> Listener:
    """Create and bind the socket ``config.address`` names, for a transport called ``owner``.

    ``families`` are the address families the transport accepts; an inherited fd of another
    family or type raises :class:`TransportMismatchError`. Failures raise :class:`BindError`.
    """
    address = config.address
    if isinstance(address, InetAddress):
        _require(socket.AF_INET in families, owner, "an inet (host/port) address")
        return Listener(_bind_inet(address, socktype, config))
    if isinstance(address, UnixAddress):
        _require(socket.AF_UNIX in families, owner, "a Unix path")
        sock, cleanup = bind_unix(address, socktype)
        return Listener(sock, cleanup)
    return Listener(_adopt_fd(address, socktype, families, owner))


def listens_on_unix(address: Address) -> bool:
    """Whether ``address`` is a Unix socket: a path, or an inherited fd of family ``AF_UNIX``
    (looked at, not taken; an fd that cannot be read is not, and binding says why)."""
    if not isinstance(address, FDAddress):
        return isinstance(address, UnixAddress)
    try:
        fd = peek(address.name) if address.fd == "systemd" else address.fd
        probe = socket.socket(fileno=fd)
    except (OSError, TypedServeError):
        return False
    try:
        return probe.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_UNIX
    except OSError:
        return False
    finally:
        probe.detach()


def describe_family(family: int, socktype: int) -> str:
    """``"AF_INET/SOCK_STREAM"`` and the like, for messages."""
    return f"{socket.AddressFamily(family).name}/{socket.SocketKind(socktype).name}"


def _require(ok: bool, owner: str, what: str) -> None:
    if not ok:
        raise TransportMismatchError(f"{owner} cannot listen on {what}")


def _bind_inet(address: InetAddress, socktype: int, config: ServerConfig) -> socket.socket:
    where = (
        f"[{address.host}]:{address.port}"
        if ":" in address.host
        else (f"{address.host}:{address.port}")
    )
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, socket.AF_UNSPEC, socktype, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(
            None, f"cannot bind {where}: cannot resolve the host ({exc})", where
        ) from None
    family, _, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        # SO_REUSEADDR on a datagram socket lets a second server share the port silently on
        # Linux, so it is only set on stream sockets (where it just skips TIME_WAIT).
        if config.reuse_address and socktype == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if config.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            only_v6 = 0 if address.dual_stack else 1
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, only_v6)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise bind_error(exc, where) from None
    return sock


def _adopt_fd(
    address: FDAddress, socktype: int, families: Collection[int], owner: str
) -> socket.socket:
    if address.fd != "systemd":
        return _adopt(address.fd, f"inherited fd {address.fd}", socktype, families, owner)
    fd = take(address.name)
    label = "" if address.name is None else f" ({address.name!r})"
    try:
        return _adopt(fd, f"systemd's fd {fd}{label}", socktype, families, owner)
    except BaseException:
        give_back(fd)
        raise


def _adopt(
    fd: int, where: str, socktype: int, families: Collection[int], owner: str
) -> socket.socket:
    try:
        probe = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(
            exc.errno, f"cannot use {where}: not an open socket ({exc})", where
        ) from None
    try:
        # Read the family and type from the socket itself: never assume them.
        family = probe.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        actual_type = probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError as exc:
        probe.detach()
        raise BindError(exc.errno, f"cannot use {where}: {exc.strerror}", where) from None
    wanted = {socket.AF_INET, socket.AF_INET6} if socket.AF_INET in families else set(families)
    if family not in wanted or actual_type != socktype:
        probe.detach()  # the fd is the parent's: leave it open
        expected = "/".join(sorted(socket.AddressFamily(f).name for f in wanted))
        raise TransportMismatchError(
            f"{where} is an {describe_family(family, actual_type)} socket, but {owner} needs "
            f"{expected} with {socket.SocketKind(socktype).name}"
        )
    return probe
