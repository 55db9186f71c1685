"""The ``SO_REUSEPORT`` listeners of a :class:`~typedserve.strategies.prefork.Prefork` with
``config.reuse_port``: one per worker position, all owned by the supervisor.

The kernel spreads new connections over the sockets of a ``SO_REUSEPORT`` group by a hash of
each connection's addresses, and each socket has its own accept queue. A socket that leaves the
group (closed) resets what waits in its queue, and between a worker's last ``accept`` and its
``close`` more may arrive. So no socket leaves while the server serves: the supervisor binds
``workers`` sockets (position 0 is the server's own), and the worker at position *p* serves
socket *p*. A worker that dies leaves its queue waiting in the supervisor's socket for its
replacement; a rolling restart's new worker shares the socket with the worker it replaces,
which stops taking from it (as workers sharing one socket do). The sockets close with the
supervisor.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from typedserve.config import FDAddress, ServerConfig
from typedserve.errors import ServerClosedError
from typedserve.host import LoopHost
from typedserve.transports.bind_errors import bind_error
from typedserve.transports.binding import open_listener
from typedserve.transports.quiesce import hold_new_connections, release_new_connections

__all__ = ["PortGroup"]


class PortGroup:
    """The supervisor's ``SO_REUSEPORT`` sockets, by worker position (supervisor's loop thread).

    Without ``reuse_port`` the group is empty and every worker serves the server's socket.
    """

    def __init__(self) -> None:
        self._extra: list[socket.socket] = []  # positions 1..workers-1; 0 is the server's own
        self._host: LoopHost[Any] | None = None

    def open(self, host: LoopHost[Any], workers: int) -> None:
        """Bind the missing positions' sockets on the server's port (``reuse_port`` only)."""
        self._host = host
        if not host.config.reuse_port:
            return
        address = host.transport.address
        assert isinstance(address, tuple)  # Prefork.attach allows reuse_port on inet only
        config = host.config.with_overrides({"address.port": address[1]})
        while len(self._extra) < workers - 1:
            sock = open_listener(config, socket.SOCK_STREAM, {socket.AF_INET}, "Prefork").socket
            try:
                sock.listen(config.backlog)
            except OSError as exc:
                sock.close()
                raise bind_error(exc, str(address)) from None
            self._extra.append(sock)

    def rebind_for(self, position: int) -> ServerConfig | None:
        """The config a worker at ``position`` rebinds its transport with (adopting its
        position's socket), or ``None``: it serves the server's socket as inherited."""
        host = self._host
        if host is None or position == 0 or position > len(self._extra):
            return None
        fd = self._extra[position - 1].fileno()
        return host.config.model_copy(update={"address": FDAddress(fd=fd)})

    def forget_in_child(self, keep: ServerConfig | None) -> None:
        """In a new worker: close the sockets of other positions (``keep``: this worker's
        rebind config, whose fd it adopts next). The socket objects forget their fds first, so
        none ever closes a number reused later."""
        own = keep.address.fd if keep is not None and isinstance(keep.address, FDAddress) else -1
        for sock in self._extra:
            fd = sock.detach()
            if fd != own:
                os.close(fd)
        self._extra = []

    def fds(self) -> list[int]:
        """Every socket the workers serve: the server's own, then the positions'."""
        host = self._host
        if host is None:
            return []
        try:
            own = [host.transport.fileno()]
        except ServerClosedError:  # closed with the server
            own = []
        return own + [sock.fileno() for sock in self._extra]

    def hold(self) -> None:
        """A stop: the kernel stops establishing new connections on every socket (each worker's
        drain serves its queue and refuses later arrivals cleanly)."""
        for fd in self.fds():
            hold_new_connections(fd)

    def release(self) -> None:
        """Serving again after a stop: every socket listens with the config's backlog."""
        host = self._host
        if host is None:
            return
        for fd in self.fds():
            if fd >= 0:
                release_new_connections(fd, host.config.backlog)

    def close(self) -> None:
        """Close the positions' sockets (the server closes its own)."""
        for sock in self._extra:
            with contextlib.suppress(OSError):
                sock.close()
        self._extra = []
