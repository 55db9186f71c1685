"""Opening hostile connections: the fd budget, many connections at once, silent clients and
resetting clients (see :mod:`typedserve.testing.hostile`)."""

from __future__ import annotations

import errno
import os
import resource
import socket
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeAlias

from typedserve.errors import ConfigError
from typedserve.requests import PeerAddress

__all__ = ["ConnectAddress", "connect_many", "fd_budget", "resetting_client", "silent_clients"]

ConnectAddress: TypeAlias = (
    tuple[str, int] | tuple[str, int, int, int] | str | bytes | os.PathLike[str]
)
"""Where hostile clients connect: an inet address tuple or a Unix socket path (see
:mod:`typedserve.testing.hostile`)."""

# A wildcard bind accepts connections on loopback; connect there.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def fd_budget(*, reserve: int = 64) -> int:
    """How many more file descriptors this process may open, keeping ``reserve`` spare.

    It is the soft ``RLIMIT_NOFILE`` minus the fds open now minus ``reserve`` (never below 0).
    A server running in the same process takes one more fd per connection it accepts: give
    clients at most half of the budget then. Linux only (it counts ``/proc/self/fd``).

    Example::

        clients = min(1000, fd_budget() // 2)
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 1 << 20 if soft == resource.RLIM_INFINITY else soft
    return max(0, limit - len(os.listdir("/proc/self/fd")) - reserve)


def connect_many(
    address: ConnectAddress,
    count: int,
    *,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
    reserve: int = 64,
) -> list[socket.socket]:
    """``count`` new stream connections to ``address``; the caller closes them.

    Before opening any, checks that ``count`` fits in :func:`fd_budget` ``(reserve=reserve)``
    and raises :class:`OSError` (``EMFILE``) naming the budget and the fix if it does not, rather
    than failing halfway with the process out of fds. ``timeout`` applies to connecting and
    to every later operation on each socket (``None``: blocking). Connections are made one
    after the other; if one fails, those already open are closed and the error propagates.
    Note that a server that does not accept leaves connections in its backlog: past the
    backlog, ``connect`` may wait for ``timeout`` and fail.

    Example::

        clients = connect_many(server.address, 100)
        try:
            ...
        finally:
            for client in clients:
                client.close()
    """
    if count < 0:
        raise ConfigError.for_argument("connect_many", "count", count, ">= 0")
    budget = fd_budget(reserve=reserve)
    if count > budget:
        raise OSError(
            errno.EMFILE,
            f"connect_many: {count} connections need {count} fds but only {budget} are free "
            f"(RLIMIT_NOFILE minus open fds minus reserve={reserve}); ask for fewer or raise "
            "the limit (ulimit -n)",
        )
    target, inferred = _resolve(address)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_connect(target, family or inferred, timeout))
    except BaseException:
        _close_all(sockets)
        raise
    return sockets


@contextmanager
def silent_clients(
    address: ConnectAddress,
    count: int,
    *,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
) -> Iterator[list[socket.socket]]:
    """``count`` connections that send nothing, closed (FIN) when the block ends.

    They are the cheapest attack on a server that gives each connection a worker before it
    has a request. The sockets are yielded so the test can observe them (``recv`` what the
    server says, see whether it closed them); they are blocking with ``timeout``. Works for
    TCP (IPv4 and IPv6) and Unix stream sockets; see :func:`connect_many` for the fd budget.

    Example::

        with silent_clients(server.address, 32):
            with connect(server) as client:   # a real client is still served
                ...
    """
    sockets = connect_many(address, count, family=family, timeout=timeout)
    try:
        yield sockets
    finally:
        _close_all(sockets)


def resetting_client(
    address: ConnectAddress,
    data: bytes = b"partial",
    *,
    family: socket.AddressFamily | None = None,
    timeout: float | None = 5.0,
) -> PeerAddress:
    """Connect, send ``data``, then close with ``SO_LINGER`` 0, which sends a TCP RST.

    The server sees ``ECONNRESET`` on its next read or write (or, if it had not accepted the
    connection yet, a reset connection from ``accept``) and must survive it. Returns the
    client's local address, i.e. the peer address the server saw. Unix sockets have no RST: the
    server sees an ordinary close there (``ECONNRESET`` only if it had unread data for us).

    Example::

        resetting_client(server.address, b"GET / HTTP/1.1\\r\\n")
        with connect(server) as client: ...   # the server still serves
    """
    target, inferred = _resolve(address)
    client = _connect(target, family or inferred, timeout)
    try:
        local: PeerAddress = client.getsockname()
        if data:
            client.sendall(data)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        client.close()
    return local


def _resolve(
    address: ConnectAddress,
) -> tuple[str | bytes | tuple[object, ...], socket.AddressFamily]:
    if isinstance(address, tuple):
        host = _WILDCARDS.get(address[0], address[0])
        family = socket.AF_INET6 if len(address) == 4 or ":" in host else socket.AF_INET
        return (host, *address[1:]), family
    if isinstance(address, bytes):
        return address, socket.AF_UNIX
    return os.fspath(address), socket.AF_UNIX


def _connect(
    target: str | bytes | tuple[object, ...], family: socket.AddressFamily, timeout: float | None
) -> socket.socket:
    client = socket.socket(family, socket.SOCK_STREAM)
    try:
        client.settimeout(timeout)
        client.connect(target)
    except BaseException:
        client.close()
        raise
    return client


def _close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
