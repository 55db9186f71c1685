"""The strategy seam: where and how each request runs, and who owns the loop.

Two protocols. :class:`LoopOwner` is what the server needs from any strategy: its
``run``/``drain``/``close`` hooks and its bounds; ``AsyncIO`` is one (it runs its own event
loop over the transport). :class:`Strategy` is a loop owner that also **dispatches**: the
server's own selector loop hands it requests. Every built-in strategy but ``AsyncIO`` is one.

**Dispatching.** The server's loop calls, from the loop thread only:

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

``serial`` (a class attribute, default ``False``): ``True`` declares that ``submit`` runs
``serve`` on the loop thread and returns when it is done, one request at a time (``Inline``).
The server then tracks the running request in one attribute instead of a per-thread table,
and a drain from another thread cuts it when it holds the loop past the grace.

**Hooks with defaults** (inherit them, and ``capacity``/``process_slots``, by subclassing
:class:`Strategy`):

- ``attach(host)``: called once by ``Server.bind()`` on the binding thread, before any submit.
  ``host`` is the server as strategies see it (:class:`~typedserve.host.LoopHost`): config,
  transport, handler factory, context, error policy, counters, the default loop and drain,
  and the loop's selector. Default: nothing.
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

**Pulling** (optional, :class:`Pulling`): a strategy that can lend some of its threads to
receive datagrams themselves. While its loop runs, the server then gives a datagram socket to
as many as it serves at once, ``limit`` at most (``pull(work, limit)``: each runs
``work(started, ended)`` until it returns), instead of receiving each datagram on the loop
thread and submitting it (see :mod:`typedserve._pulling`). ``started()`` and ``ended()``
(called under the server's lock, one at a time) bracket each datagram in ``in_flight``.
``ThreadPool`` is one.

Errors: an exception out of ``run`` or ``drain`` propagates out of ``serve_forever`` or
``shutdown``; a strategy reports handler errors only through ``serve``/``host.report``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from typedserve.drain import DrainReport
from typedserve.host import ListenerOnDrain, LoopHost
from typedserve.requests import Request

__all__ = ["ListenerOnDrain", "LoopOwner", "Pulling", "Strategy"]

T = TypeVar("T", bound=Request)


class LoopOwner(Protocol):
    """A strategy that owns the loop: the server calls these (see the module docstring).

    The hooks receive a :class:`~typedserve.host.LoopHost`; a strategy that runs its own loop
    may declare that it needs only a :class:`~typedserve.host.Host` (``AsyncIO`` does).
    """

    @property
    def in_flight(self) -> int:
        """Requests submitted and not finished."""

    @property
    def capacity(self) -> int | None:
        """The most requests held at once; ``None``: no bound of its own."""

    @property
    def process_slots(self) -> int:
        """How many processes besides the server's may serve at once (forked children,
        workers): each gets a row of the shared counters. 0: all in this process."""

    def attach(self, host: LoopHost[Any]) -> None:
        """Learn about the server before the first request (``Server.bind``)."""

    def run(self, host: LoopHost[Any]) -> None:
        """Own the loop until ``host.stopping``."""

    def drain(self, host: LoopHost[Any], grace: float) -> DrainReport:
        """Drain gracefully within ``grace`` seconds."""

    def close(self, timeout: float | None = None) -> int:
        """Release threads and processes, waiting up to ``timeout``; return requests left."""


@runtime_checkable
class Strategy(Protocol):
    """A dispatching strategy: see the module docstring for the contract.

    Subclass it to inherit the defaults of ``serial``, ``capacity``, ``process_slots``,
    ``attach``, ``run`` and ``drain``.
    """

    serial: ClassVar[bool] = False
    """Whether ``submit`` serves on the loop thread, one request at a time."""

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

    def attach(self, host: LoopHost[Any]) -> None:
        """Learn about the server before the first submit (default: nothing to learn)."""
        return None

    def run(self, host: LoopHost[Any]) -> None:
        """Own the loop until ``host.stopping`` (default: the server's own loop)."""
        host.run_loop()

    def drain(self, host: LoopHost[Any], grace: float) -> DrainReport:
        """Drain gracefully within ``grace`` seconds (default: the server's own drain)."""
        return host.drain(grace)


@runtime_checkable
class Pulling(Protocol):
    """A strategy whose threads can receive datagrams themselves (see the module docstring)."""

    def pull(
        self, work: Callable[[Callable[[], None], Callable[[], None]], None], limit: int | None
    ) -> None:
        """Run ``work(started, ended)`` on as many of the strategy's threads as it serves requests
        at once, ``limit`` at most (each returns when the server stops pulling);
        ``started``/``ended`` bracket each request in ``in_flight``."""
