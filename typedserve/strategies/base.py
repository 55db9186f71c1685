"""The strategy seam: where and how each request runs, and who owns the loop.

**Dispatching** (every strategy). The server's loop calls, from the loop thread only:

- ``submit(serve, request)`` once per accepted request. The strategy arranges for
  ``serve(request)`` to run exactly once (inline, on a thread, in a child process...). ``serve``
  never raises: it runs the handler, reports errors to the server's error policy, updates the
  counters and releases the request. Ownership of ``request`` passes to the strategy with the
  call; if ``submit`` raises, it stays with the server (which reports and closes it).
- ``in_flight``: requests submitted and not yet finished (queued ones included).
- ``capacity``: the most requests the strategy can hold at once (``None``: unbounded). The
  server's limit is the smaller of this and ``limits.max_in_flight``; at the limit it applies
  ``limits.overload`` (pause accepting, or reject through the busy hook).
- ``process_slots``: how many other processes may serve requests at once (each writes its own
  row of the shared :class:`~typedserve.counters.Counters`); 0 for in-process strategies.
- ``notify_when_available(callback)``: call ``callback()`` once, from any thread, when the next
  request finishes (or at once if none is in flight). Used to resume accepting and to drain.
- ``close(timeout)``: stop taking work and release every thread or process the strategy
  started, waiting up to ``timeout`` seconds (``None``: forever); return how many requests were
  still running then. Called once, after the drain (so normally nothing is left).

**Hooks with defaults** (inherit them, and ``capacity``/``process_slots``, by subclassing
:class:`Strategy`):

- ``attach(host)``: called once by ``Server.bind()`` on the binding thread, before any submit.
  ``host`` is the server as strategies see it (:class:`ServerHost`): config, transport, handler
  factory, context, error policy, counters, the default loop and drain, and the loop's
  selector. Default: nothing.
- ``run(host)``: **the loop-ownership hook.** ``Server.serve_forever()`` does nothing but call
  ``strategy.run(host)`` on its thread. The default is ``host.run_loop()``: the server's own
  selector loop, which dispatches through ``submit``. A strategy that owns the loop replaces
  it: a supervisor forks workers that each call ``host.run_loop()``; an event-loop strategy runs
  its own loop over ``host.transport``. Either way ``run`` must return soon after
  ``host.stopping`` becomes true (``host.on_stop(callback)`` tells it, from any thread or a
  signal handler); work in flight may continue until ``drain``.
- ``drain(host, grace)``: called after ``run`` returned, when a graceful shutdown is asked for
  (``Server.shutdown(grace=...)``, ``Server.close()``), on the thread that owns the loop then.
  Stop accepting for good, deal with the backlog, let work in flight finish until
  ``grace`` seconds have passed, cut what remains, and return a
  :class:`~typedserve.drain.DrainReport`. The default is ``host.drain(grace)``, which does all
  that through ``in_flight``/``notify_when_available`` for any dispatching strategy.

Errors: an exception out of ``run`` or ``drain`` propagates out of ``serve_forever`` or
``shutdown``; a strategy reports handler errors only through ``serve``/``host.report``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

from typedserve.config import ServerConfig
from typedserve.context import ServerContext
from typedserve.counters import Counters
from typedserve.drain import DrainReport
from typedserve.handlers import HandlerFactory
from typedserve.requests import PeerAddress, RequestT
from typedserve.transports.base import Transport

__all__ = ["ListenerOnDrain", "ServerHost", "Strategy"]

ListenerOnDrain: TypeAlias = Literal["refuse", "leave", "release"]
"""What a drain does with the listening socket (see :meth:`ServerHost.drain`)."""

T = TypeVar("T")


class ServerHost(Protocol[RequestT]):
    """The server as a strategy sees it: what a loop owner needs to serve without ``Server``.

    Everything is called on the thread running ``run``/``drain`` unless noted.
    """

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
    def context(self) -> ServerContext[Any]:
        """The context every handler receives."""

    @property
    def counters(self) -> Counters:
        """The shared counters ``Server.stats()`` reads (see :mod:`typedserve.counters`)."""

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested (any thread may set it)."""

    @property
    def grace(self) -> float | None:
        """The grace of the requested graceful shutdown, ``None`` for a plain stop."""

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (any thread, or a signal handler) when a stop is requested.

        Called at once if a stop is already pending. Callbacks must not block.
        """

    def request_stop(self, grace: float | None = None) -> None:
        """Ask the loop to stop (and to drain with ``grace`` if not ``None``); any thread."""

    def admit(self, request: RequestT) -> bool:
        """Count ``request`` as accepted and apply the access policy; a refused one is closed."""

    def serve(self, request: RequestT) -> None:
        """Run the handler life cycle for an admitted request and close it. Never raises.

        Safe on any thread or in a child process; counts the request as finished.
        """

    def reject(self, request: RequestT) -> None:
        """Turn an admitted request away: the busy hook, then a clean close; counted."""

    def report(self, exc: BaseException, peer: PeerAddress) -> None:
        """Count an error and pass it to the server's error policy (never raises)."""

    def run_loop(self) -> None:
        """The server's own selector loop, dispatching through the strategy, until stopping."""

    def drain(self, grace: float, listener: ListenerOnDrain = "refuse") -> DrainReport:
        """The server's own drain for dispatching strategies (see :meth:`Strategy.drain`).

        ``listener`` says what happens to the listening socket: ``"refuse"`` (the server is
        stopping) serves the backlog and refuses later arrivals; ``"leave"`` (a worker
        retiring while others share its socket) stops watching it and takes nothing;
        ``"release"`` (a worker retiring from a ``SO_REUSEPORT`` group) serves its own
        backlog, then closes its socket so the kernel sends new connections to the others.
        """

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the loop thread whenever ``fd`` is readable (while looping)."""

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (before closing it)."""

    def close_in_child(self, keep_listener: bool) -> None:
        """In a forked child that will not loop: close this process's copies of the loop's fds.

        The listening socket is kept when ``keep_listener`` is true (a datagram's reply goes
        out through it); it is closed without unlinking a Unix socket file.
        """

    def renew_loop(self) -> None:
        """In a forked child that will run the loop: replace the selector and wake-up pair
        inherited from the parent (kernel objects the two processes would otherwise share)."""

    def release_listener(self) -> None:
        """Stop watching and close this process's copy of the listening socket (fd only, no
        cleanup); a supervisor whose workers bind their own ``SO_REUSEPORT`` sockets."""

    def rebind(self, config: ServerConfig) -> None:
        """Replace the listening endpoint with a new one bound for ``config`` (a prefork worker
        binding its own ``SO_REUSEPORT`` socket). Closes this process's old copy."""


class Strategy(Protocol):
    """How requests run: see the module docstring for the contract.

    Subclass it to inherit the defaults of ``capacity``, ``attach``, ``run`` and ``drain``.
    """

    def submit(self, serve: Callable[[T], None], request: T) -> None:
        """Run ``serve(request)`` once, here or elsewhere."""

    @property
    def in_flight(self) -> int:
        """Requests submitted and not finished."""

    @property
    def capacity(self) -> int | None:
        """The most requests held at once; ``None`` (the default): no bound of its own."""
        return None

    @property
    def process_slots(self) -> int:
        """How many processes besides the server's may serve at once (forked children,
        workers): each gets a row of the shared counters. Default 0: all in this process."""
        return 0

    def notify_when_available(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when a request finishes (at once if none is in flight)."""

    def close(self, timeout: float | None = None) -> int:
        """Release threads and processes, waiting up to ``timeout``; return requests left."""

    def attach(self, host: ServerHost[Any]) -> None:
        """Learn about the server before the first submit (default: nothing to learn)."""
        return None

    def run(self, host: ServerHost[Any]) -> None:
        """Own the loop until ``host.stopping`` (default: the server's own loop)."""
        host.run_loop()

    def drain(self, host: ServerHost[Any], grace: float) -> DrainReport:
        """Drain gracefully within ``grace`` seconds (default: the server's own drain)."""
        return host.drain(grace)
