"""The server as a strategy sees it, cut by need into two narrow protocols.

- :class:`Host`: what any strategy that runs requests needs: the config, the transport, the
  handler factory and context, the counters, the request observers, admission (``admit``,
  ``reject``), error reporting, and the stop signal. An event-loop strategy (``AsyncIO``)
  needs nothing more.
- :class:`LoopHost`: adds the server's own selector loop and drain, and the few operations a
  strategy that forks needs (watch fds in the loop, release the listener, start afresh in a
  forked process).

Both are implemented by the server (``typedserve._server_host``); strategies only see these.
Everything is called on the thread running the strategy's ``run``/``drain`` unless noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeAlias

from typedserve.config import ServerConfig
from typedserve.context import ServerContext
from typedserve.counters import Counters
from typedserve.drain import DrainReport
from typedserve.handlers import HandlerFactory
from typedserve.observe import RequestObserver
from typedserve.requests import PeerAddress, RequestT
from typedserve.transports.base import Transport

__all__ = ["Host", "ListenerOnDrain", "LoopHost"]

ListenerOnDrain: TypeAlias = Literal["refuse", "share", "leave"]
"""What a drain does with the listening socket (see :meth:`LoopHost.drain`)."""


class Host(Protocol[RequestT]):
    """What every strategy may use (see the module docstring)."""

    @property
    def config(self) -> ServerConfig:
        """The server's config."""

    @property
    def transport(self) -> Transport[RequestT]:
        """The bound, activated transport (its socket is the listening endpoint)."""

    @property
    def handler(self) -> HandlerFactory[RequestT, Any]:
        """The handler factory: ``handler(request, context)`` builds one request's handler."""

    @property
    def context(self) -> ServerContext[object]:
        """The context every handler receives (its state's type is the server's)."""

    @property
    def counters(self) -> Counters:
        """The shared counters ``Server.stats()`` reads (see :mod:`typedserve.counters`)."""

    @property
    def observer(self) -> RequestObserver | None:
        """Who hears of each admitted request's end (:mod:`typedserve.observe`); ``None``: no
        one, and the strategy must then spend nothing on it. A strategy that ends requests
        outside ``serve``, ``admit`` and ``reject`` (an event loop's tasks, a dead child) calls
        it once per request, before closing the connection."""

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested (any thread may set it)."""

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (any thread, or a signal handler) when a stop is requested.

        Called at once if a stop is already pending. Callbacks must not block.
        """

    def admit(self, request: RequestT, *, opened: bool = False) -> bool:
        """Count ``request`` as accepted and apply the access policy; a refused one is closed.

        ``opened=True``, once a strategy has opened a request counted at accept: apply the
        policy that waited for the opening (a transport whose ``verify_after_open`` is true:
        the client a PROXY header names); a refused request is closed and counted as refused,
        not finished. ``True`` when no policy waits."""

    def reject(self, request: RequestT) -> bool:
        """Turn an admitted request away: the busy hook, then a clean refusal; counted.

        Returns ``True`` when the connection is still open (our FIN sent): the caller must
        then *linger*, reading and discarding until the peer's EOF (or a short bound), and
        close the request, so the peer reads the busy reply and never a reset."""

    def report(self, exc: BaseException, peer: PeerAddress) -> None:
        """Count an error and pass it to the server's error policy (never raises)."""


class LoopHost(Host[RequestT], Protocol[RequestT]):
    """A :class:`Host` with the server's own loop and drain, for dispatching strategies."""

    @property
    def grace(self) -> float | None:
        """The grace of the requested graceful shutdown, ``None`` for a plain stop."""

    def request_stop(self, grace: float | None = None) -> None:
        """Ask the loop to stop (and to drain with ``grace`` if not ``None``); any thread."""

    def run_loop(self) -> None:
        """The server's own selector loop, dispatching through the strategy, until stopping."""

    def drain(self, grace: float, listener: ListenerOnDrain = "refuse") -> DrainReport:
        """The server's own drain for dispatching strategies (see ``Strategy.drain``).

        ``listener`` says what happens to the listening socket: ``"refuse"`` (the server is
        stopping) holds new connections (the kernel stops establishing them), serves what was
        queued at the stop and refuses later arrivals cleanly; ``"share"`` (a prefork worker
        stopping on a socket its supervisor owns) does the same without holding the socket,
        which is the supervisor's decision;
        ``"leave"`` (a worker retiring while others share its socket) stops watching it and
        takes nothing.
        """

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the loop thread whenever ``fd`` is readable (while looping)."""

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (before closing it)."""

    def after_fork(
        self, *, loop: bool, keep_listener: bool = True, rebind: ServerConfig | None = None
    ) -> None:
        """In a forked child, right after the fork: drop what belongs to the parent.

        ``loop=True`` (a worker that will run the loop): a new selector and wake-up pair
        replace the inherited ones (kernel objects the two processes would otherwise share);
        with ``rebind``, the inherited listener is closed (fd only) and a new one is bound for
        that config (a worker binding its own ``SO_REUSEPORT`` socket). ``loop=False`` (a
        child serving one request): the loop's fds are closed, and so is the listening socket
        unless ``keep_listener`` (a datagram's reply goes out through it).
        """
