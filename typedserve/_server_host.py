"""``ServerHost``: the :class:`~typedserve.host.LoopHost` a server hands its strategy.

A thin view: each member forwards to the part of the server that owns it (the config, the
:class:`~typedserve._serving.Serving` of requests, the :class:`~typedserve._loop.SelectorLoop`,
the stop signal), so strategies never see ``Server`` itself.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic

from typedserve._loop import SelectorLoop
from typedserve.config import ServerConfig
from typedserve.context import ServerContext
from typedserve.counters import Counters
from typedserve.drain import DrainReport
from typedserve.errors import ServerClosedError
from typedserve.handlers import HandlerFactory
from typedserve.host import ListenerOnDrain
from typedserve.observe import RequestObserver
from typedserve.requests import PeerAddress, RequestT
from typedserve.transports.base import Transport

if TYPE_CHECKING:
    from typedserve.server import Server

__all__ = ["ServerHost"]


class ServerHost(Generic[RequestT]):
    """The strategy's view of one server (implements :class:`~typedserve.host.LoopHost`)."""

    __slots__ = ("_server",)

    def __init__(self, server: Server[RequestT, Any]) -> None:
        self._server = server

    def new_loop(self) -> SelectorLoop[RequestT]:
        """A new selector loop for the server's dispatching strategy, watching the listener."""
        server = self._server
        assert server._dispatch is not None
        loop = SelectorLoop(
            server.transport, server._dispatch, server._serving, server.config, server._stop
        )
        loop.set_listening(True)
        return loop

    def loop(self) -> SelectorLoop[RequestT]:
        """The server's selector loop (for dispatching strategies, once bound)."""
        loop = self._server._loop
        if loop is None:
            raise ServerClosedError("the server is not bound, or its strategy owns the loop")
        return loop

    # -- Host ------------------------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The server's config."""
        return self._server.config

    @property
    def transport(self) -> Transport[RequestT]:
        """The bound transport."""
        return self._server.transport

    @property
    def handler(self) -> HandlerFactory[RequestT, Any]:
        """The handler factory."""
        return self._server._serving.factory

    @property
    def context(self) -> ServerContext[object]:
        """The handlers' context."""
        return self._server.context

    @property
    def counters(self) -> Counters:
        """The shared counters."""
        return self._server._serving.counters

    @property
    def observer(self) -> RequestObserver | None:
        """The server's request observers, if any."""
        return self._server._serving.observer

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._server._stop.requested

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a stop is requested (at once if one is pending)."""
        self._server._stop.on_stop(callback)

    def admit(self, request: RequestT, *, opened: bool = False) -> bool:
        """Count and verify ``request`` (``opened``: apply the policy that waited for its
        opening)."""
        serving = self._server._serving
        return serving.verified_after_open(request) if opened else serving.admit(request)

    def reject(self, request: RequestT) -> bool:
        """Turn ``request`` away cleanly; whether the caller must linger, then close it."""
        return self._server._serving.reject(request, linger=False)

    def report(self, exc: BaseException, peer: PeerAddress) -> None:
        """Count and report an error."""
        self._server._serving.report(exc, peer)

    # -- LoopHost --------------------------------------------------------------------------------

    @property
    def grace(self) -> float | None:
        """The grace of a requested graceful stop."""
        return self._server._stop.grace

    def request_stop(self, grace: float | None = None) -> None:
        """Ask the loop to stop (with ``grace``: drain afterwards)."""
        self._server._stop.request(grace)

    def run_loop(self) -> None:
        """Run the selector loop until stopping."""
        self.loop().run()

    def drain(self, grace: float, listener: ListenerOnDrain = "refuse") -> DrainReport:
        """The selector loop's drain."""
        return self.loop().drain(grace, listener)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Watch ``fd`` in the loop."""
        self.loop().watch(fd, callback)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd``."""
        loop = self._server._loop
        if loop is not None:
            loop.unwatch(fd)

    def after_fork(
        self, *, loop: bool, keep_listener: bool = True, rebind: ServerConfig | None = None
    ) -> None:
        """Drop what belongs to the parent (see ``LoopHost.after_fork``)."""
        server = self._server
        old = self.loop()
        old.abandon()  # only this process's fds: the parent's epoll instance is untouched
        server._loop = None
        if not loop:
            if not keep_listener:
                _close_fd_only(server.transport)
            return
        if rebind is not None:
            _close_fd_only(server.transport)
            server.transport.bind(rebind)
            server.transport.activate()
        server._loop = self.new_loop()


def _close_fd_only(transport: Transport[Any]) -> None:
    """Close this process's copy of the listening fd without the transport's cleanup (which
    would unlink a Unix socket file another process still serves). Idempotent."""
    try:
        fd = transport.fileno()
    except ServerClosedError:
        return
    sock = getattr(transport, "socket", None)
    if isinstance(sock, socket.socket):
        sock.detach()  # the socket object forgets the fd, so it never closes a reused number
    if fd >= 0:
        os.close(fd)
