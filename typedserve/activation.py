"""Socket activation: the listening sockets a service manager (systemd) passed to this process.

The protocol (``sd_listen_fds(3)``): the sockets are fds ``3 .. 3 + LISTEN_FDS - 1``;
``LISTEN_PID`` is the process they are meant for (a process that merely inherited the
variables must not touch them); ``LISTEN_FDNAMES`` (optional) names them in order,
colon-separated, from each socket's ``FileDescriptorName=`` (systemd's default: the socket
unit's name; ``unknown`` when the variable is absent).

:func:`take` reads the variables once per process, on first use, into a module-level table,
then removes ``LISTEN_FDS``, ``LISTEN_PID`` and ``LISTEN_FDNAMES`` from ``os.environ`` so no
child process inherits them (a child of a ``fork`` strategy that runs a program, say), and
sets ``FD_CLOEXEC`` on every passed fd, as ``sd_listen_fds(1)`` does. Several servers of one
process each take their own socket from the same table, by name
(``FDAddress(fd="systemd", name="web")``); an fd no server takes stays open (close-on-exec).

Errors: no socket activation, or sockets meant for another process: :class:`BindError`; a
name that was not passed, or several sockets and no name: :class:`ConfigError` listing the
names that were passed; the same socket taken twice: :class:`BindError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Final

from typedserve.errors import BindError, ConfigError

__all__ = [
    "LISTEN_FDS_START",
    "PassedSockets",
    "forget",
    "give_back",
    "passed_sockets",
    "peek",
    "take",
]

LISTEN_FDS_START: Final = 3
"""The first fd passed by socket activation (``SD_LISTEN_FDS_START``)."""

_VARIABLES: Final = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_WHERE: Final = "systemd"


@dataclass(slots=True)
class PassedSockets:
    """The sockets passed to this process: ``names[i]`` names fd ``fds[i]``; ``taken`` are the
    fds a server adopted. ``problem`` says why there are none (no activation, another
    process's), ``None`` when the variables were for this process."""

    fds: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    taken: set[int] = field(default_factory=set)
    problem: str | None = None

    def listing(self) -> str:
        """``'web' (fd 3), 'admin' (fd 4)``: for messages."""
        return ", ".join(
            f"{name!r} (fd {fd})" for fd, name in zip(self.fds, self.names, strict=True)
        )


_lock = threading.Lock()
_table: PassedSockets | None = None


def passed_sockets(environ: MutableMapping[str, str] | None = None) -> PassedSockets:
    """The process's table of passed sockets, read (and the variables removed) on first use.

    ``environ`` is ``os.environ`` unless given (tests). Once variables meant for this process
    were read, the table is kept; until then (none set, or another process's) each use reads
    the environment again.
    """
    global _table
    with _lock:
        if _table is not None:
            return _table
        source = os.environ if environ is None else environ
        passed = "LISTEN_PID" in source
        table = _read(source, os.getpid())
        if passed and "LISTEN_PID" not in source:  # they were ours: read once, now removed
            _table = table
        return table


def take(name: str | None) -> int:
    """Claim the passed socket called ``name`` (the first not yet taken of that name), or the
    only one passed when ``name`` is ``None``; the caller owns the fd from now on.

    Raises :class:`BindError` (no activation, another process's sockets, already taken) or
    :class:`ConfigError` (no such name; several sockets and no name), naming what was passed.
    """
    return _claim(name, take=True)


def peek(name: str | None) -> int:
    """The fd :func:`take` would return now, without claiming it (raises as it does)."""
    return _claim(name, take=False)


def _claim(name: str | None, *, take: bool) -> int:
    table = passed_sockets()
    with _lock:
        if table.problem is not None:
            raise BindError(None, f"fd='systemd' needs socket activation: {table.problem}", _WHERE)
        fd = _choose(table, name)
        if take:
            table.taken.add(fd)
        return fd


def give_back(fd: int) -> None:
    """Return a socket :func:`take` gave out but the caller could not use (another server may
    take it); it stays open."""
    table = passed_sockets()
    with _lock:
        table.taken.discard(fd)


def _choose(table: PassedSockets, name: str | None) -> int:
    if name is None:
        if len(table.fds) > 1:
            raise ConfigError(
                f"address.name: {len(table.fds)} sockets were passed ({table.listing()}); "
                "say which one with address.name (--fdname)"
            )
        candidates = list(table.fds)
    else:
        candidates = [fd for fd, own in zip(table.fds, table.names, strict=True) if own == name]
        if not candidates:
            raise ConfigError(
                f"address.name: no socket named {name!r} was passed; the passed sockets "
                f"(LISTEN_FDNAMES) are {table.listing()}"
            )
    free = [fd for fd in candidates if fd not in table.taken]
    if not free:
        what = "the passed socket" if name is None else f"the socket named {name!r}"
        raise BindError(
            None,
            f"{what} (fd {candidates[0]}) is already taken by another server of this process",
            _WHERE,
        )
    return free[0]


def _read(environ: MutableMapping[str, str], pid: int) -> PassedSockets:
    listen_pid, count = environ.get("LISTEN_PID"), environ.get("LISTEN_FDS")
    if listen_pid is None or count is None:
        return PassedSockets(problem="LISTEN_PID/LISTEN_FDS are not set for this process")
    if listen_pid.strip() != str(pid):
        # Another process's sockets (we inherited the variables): leave them and their fds.
        return PassedSockets(
            problem=f"LISTEN_PID={listen_pid} is another process's, not this one's ({pid}): "
            "the sockets are not for us"
        )
    names_text = environ.get("LISTEN_FDNAMES")
    for variable in _VARIABLES:
        environ.pop(variable, None)
    if not count.strip().isdigit():
        return PassedSockets(problem=f"LISTEN_FDS={count!r} is not a number of sockets")
    fds = tuple(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)))
    if not fds:
        return PassedSockets(problem="LISTEN_FDS=0: no socket was passed")
    names = ("unknown",) * len(fds) if names_text is None else tuple(names_text.split(":"))
    if len(names) != len(fds):
        return PassedSockets(
            problem=f"LISTEN_FDNAMES={names_text!r} names {len(names)} socket(s), "
            f"but LISTEN_FDS={count}"
        )
    for fd in fds:
        try:
            os.set_inheritable(fd, False)  # FD_CLOEXEC, as sd_listen_fds does
        except OSError as exc:
            return PassedSockets(problem=f"fd {fd} of LISTEN_FDS={count} is not open ({exc})")
    return PassedSockets(fds, names)


def forget() -> None:
    """Drop the table, so the next use reads the environment again (tests)."""
    global _table
    with _lock:
        _table = None
