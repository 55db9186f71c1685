"""What a process forked to serve (a request child, a prefork worker) does with what it inherited.

``fork`` copies every fd of the parent, not only the ones the child needs. Most are harmless
(the child never touches them), except one kind: **the client end of a connection to this very
server**, held by a client in the parent's process (a test, a benchmark, a health check, an
application talking to itself). While the child holds its copy, closing the client in the
parent does not close the connection, so a handler reading until EOF never gets it: the
request never ends (a ``ForkPerRequest`` child then waits to be cut at the drain's deadline; a
prefork worker's handler blocks until the worker is killed). :func:`close_inherited_clients`
closes those copies right after the fork. It runs in the child only and never shuts a socket
down (that would end the parent's connection too): it closes the child's fd, nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import sys
from collections.abc import Container

from typedserve.requests import PeerAddress

__all__ = ["close_inherited_clients", "describe_status", "flush_stdio"]

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def close_inherited_clients(server: PeerAddress, keep: Container[int] = ()) -> int:
    """Close this process's copies of stream sockets connected to ``server`` (the listening
    address), except the fds in ``keep``; return how many were closed.

    A socket counts when its peer is ``server`` (the Unix path, or host and port; for a
    wildcard host, the port and a peer on the socket's own address, which is how a process
    reaches a server on its own machine). Linux only (it lists ``/proc/self/fd``); elsewhere,
    and on any error, nothing is closed.
    """
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    closed = 0
    for name in names:
        fd = int(name)
        if fd in keep:
            continue
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            probe = socket.socket(fileno=fd)
        except OSError:  # closed meanwhile (the fd listdir used), or not a usable socket
            continue
        try:
            ours = probe.type == socket.SOCK_STREAM and _is_client_of(probe, server)
        finally:
            probe.detach()  # the probe must never close the fd itself
        if ours:
            os.close(fd)
            closed += 1
    return closed


def _is_client_of(sock: socket.socket, server: PeerAddress) -> bool:
    try:
        peer = sock.getpeername()
    except OSError:  # listening, or not connected
        return False
    if isinstance(server, (str, bytes)) or isinstance(peer, (str, bytes)):
        return bool(peer) and peer == server
    if not isinstance(server, tuple) or not isinstance(peer, tuple) or peer[1] != server[1]:
        return False
    if server[0] not in _WILDCARDS:
        return bool(peer[0] == server[0])
    try:
        return bool(peer[0] == sock.getsockname()[0])
    except OSError:
        return False


def flush_stdio() -> None:
    """Flush ``sys.stdout``/``sys.stderr`` (before a fork, so buffered output is not doubled,
    and before ``os._exit``, which skips it)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def describe_status(status: int) -> str:
    """A ``waitpid`` status in words: ``killed by SIGKILL``, ``exit status 70``."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
