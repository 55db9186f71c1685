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

A process that lives on after the fork (a prefork worker) has a wider problem: it also holds
whatever **other threads** of the parent had open at that instant, for as long as it lives.
The classic case is ``subprocess``: while a thread is inside ``subprocess.run``, the parent
holds the write end of the exec-status pipe (and the child's ends of its stdio pipes); a
process forked then keeps them open, so ``subprocess.run`` waits for an EOF that only comes
when that process exits. :class:`FdBaseline` and :func:`release_inherited_fds` let such a
process drop every fd it was not meant to get (the rule is the caller's to state; see
:mod:`typedserve.strategies.prefork.worker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Collection, Container, Iterator, Mapping
from dataclasses import dataclass, field

from typedserve.requests import PeerAddress

__all__ = [
    "FdBaseline",
    "close_inherited_clients",
    "describe_status",
    "flush_stdio",
    "release_inherited_fds",
]

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


_FdIdentity = tuple[int, int]  # (st_dev, st_ino): what an fd number points at


@dataclass(frozen=True)
class FdBaseline:
    """This process's fds at one moment, by identity (device and inode), for
    :func:`release_inherited_fds`: a later fd with the same number and identity was already
    there. Empty (nothing is "already there") unless made by :meth:`take`."""

    identities: Mapping[int, _FdIdentity] = field(default_factory=dict)

    @classmethod
    def take(cls) -> FdBaseline:
        """The fds open now (Linux: ``/proc/self/fd``; elsewhere an empty baseline)."""
        return cls({fd: identity for fd, identity, _ in _open_fds()})


def release_inherited_fds(baseline: FdBaseline, keep: Collection[int] = ()) -> list[int]:
    """In a freshly forked child (one thread): release the fds it was not meant to inherit.

    Kept: the fds in ``keep``; stdio (0, 1, 2 and whatever ``sys.stdin``/``stdout``/``stderr``
    use); the files and sockets of ``logging`` handlers; fds marked inheritable (PEP 446: the
    application's own "children get this"); and every other fd that is in ``baseline`` with the
    same identity, except pipes. Released: everything else, i.e. pipes (whoever made them and
    whenever) and any fd opened since the baseline was taken.

    Releasing points the fd at ``/dev/null`` (``dup2``) rather than closing it: the copy of the
    pipe or socket is dropped all the same, but the number stays taken, so an object of the
    parent's that still holds it (a file, a socket) can never reach a connection accepted
    later under a reused number. Returns the released fds. Linux only; elsewhere nothing is
    released.
    """
    kept = set(keep) | _stdio_fds() | _logging_fds()
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        null = -1
    released = []
    try:
        for fd, identity, is_pipe in list(_open_fds()):
            if fd == null or fd in kept or _inheritable(fd):
                continue
            if not is_pipe and baseline.identities.get(fd) == identity:
                continue
            if null >= 0:
                os.dup2(null, fd, inheritable=False)
            else:
                os.close(fd)
            released.append(fd)
    finally:
        if null >= 0:
            os.close(null)
    return released


def _open_fds() -> Iterator[tuple[int, _FdIdentity, bool]]:
    """Each open fd: its number, identity, and whether it is a pipe (or FIFO)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        try:
            info = os.fstat(fd)
        except OSError:  # the fd listdir used, since closed
            continue
        yield fd, (info.st_dev, info.st_ino), stat.S_ISFIFO(info.st_mode)


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:
        return False


def _stdio_fds() -> set[int]:
    fds = {0, 1, 2}
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        fds.update(_fileno_of(stream))
    return fds


def _logging_fds() -> set[int]:
    """The fds of every ``logging`` handler's stream or socket (those it has opened so far)."""
    loggers = [logging.getLogger()] + [
        item
        for item in logging.Logger.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    handlers = {handler for item in loggers for handler in item.handlers}
    if logging.lastResort is not None:
        handlers.add(logging.lastResort)
    fds: set[int] = set()
    for handler in handlers:
        for attribute in ("stream", "sock", "socket"):  # StreamHandler, SocketHandler, SysLog
            fds.update(_fileno_of(getattr(handler, attribute, None)))
    return fds


def _fileno_of(thing: object) -> set[int]:
    fileno = getattr(thing, "fileno", None)
    if not callable(fileno):
        return set()
    try:
        fd = fileno()
    except Exception:  # closed, detached, or not backed by an fd: nothing to keep
        return set()
    return {fd} if isinstance(fd, int) and fd >= 0 else set()
