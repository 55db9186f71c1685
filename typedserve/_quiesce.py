"""Quiescing a listening socket for a drain: what is queued, and no new connections.

A drain must serve what was queued when the stop came and must reset nobody. The kernel keeps
completing handshakes on a listening socket until it is closed, and closing it resets every
connection it completed that the server did not accept; a client that saw its ``connect``
succeed then reads ``ECONNRESET``. So before its last passes over the queue a drain stops the
kernel from establishing new connections:

- **TCP**: a classic BPF socket filter on the listener drops incoming SYNs (and only them):
  a new client's SYN goes unanswered (it retries, then gets ``ECONNREFUSED`` once the listener
  is closed: refused at connect time, never reset after it), while the final ACKs of
  handshakes already answered still complete, into the queue the drain empties.
  ``TCP_INFO`` on a listener gives the length of its accept queue: what was queued at the stop.
- **Unix stream**: ``listen(0)``: new connectors wait in ``connect`` (or get ``EAGAIN``) and
  are refused when the listener closes; one connection may still slip into the queue.
- Anything else (datagram sockets, unknown kinds): nothing to do.

Every function takes the listener's fd, works on a temporary socket object over it (never
closing it) and never raises: a drain goes on with whatever could be done.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Callable, Iterator

__all__ = ["hold_new_connections", "queued_connections", "release_new_connections"]

_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
_TCP_FLAGS = 13  # offset of the flags byte in the TCP header (a TCP socket filter sees it at 0)
_SYN, _ACK = 0x02, 0x10
# ldb [13]; and #(SYN|ACK); jeq #SYN, drop, keep; drop: ret #0; keep: ret #-1
_DROP_SYN = (
    (0x30, 0, 0, _TCP_FLAGS),
    (0x54, 0, 0, _SYN | _ACK),
    (0x15, 0, 1, _SYN),
    (0x06, 0, 0, 0),
    (0x06, 0, 0, 0xFFFFFFFF),
)
_PROGRAM = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in _DROP_SYN))
_FPROG = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(_PROGRAM))  # struct sock_fprog


@contextlib.contextmanager
def _view(fd: int) -> Iterator[socket.socket]:
    sock = socket.socket(fileno=fd)
    try:
        yield sock
    finally:
        sock.detach()


def _is_tcp_listener(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM


def queued_connections(fd: int) -> int | None:
    """How many connections wait in a TCP listener's accept queue; ``None`` if unknown."""
    try:
        with _view(fd) as sock:
            if not _is_tcp_listener(sock):
                return None
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < 28:
        return None
    return int(struct.unpack_from("8B5I", info)[12])  # tcpi_unacked: the accept queue length


def hold_new_connections(fd: int, backlog: int) -> Callable[[], None] | None:
    """Stop the kernel from establishing new connections on the listener ``fd`` (see the
    module docstring); return the function that undoes it (for a server that serves again),
    or ``None`` when there was nothing to hold (not a stream listener, or it failed)."""
    try:
        with _view(fd) as sock:
            if _is_tcp_listener(sock):
                sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, _FPROG)
                return lambda: release_new_connections(fd, backlog)
            if sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM:
                sock.listen(0)
                return lambda: release_new_connections(fd, backlog)
    except OSError:
        pass
    return None


def release_new_connections(fd: int, backlog: int) -> None:
    """Let the kernel establish new connections on the listener ``fd`` again, whoever held
    them: the filter and the queue length belong to the socket, which processes forked from
    one another share (a Prefork worker's drain holds the supervisor's listener too)."""
    with contextlib.suppress(OSError), _view(fd) as sock:
        if _is_tcp_listener(sock):
            sock.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)  # ENOENT if none: fine
        elif sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM:
            sock.listen(backlog)
