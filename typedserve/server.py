"""``Server``: a config, a transport, a strategy and a handler, and their life cycle.

``Server`` composes the parts and owns the life cycle (bind, serve, stop, drain, close); the
work is done by smaller pieces it wires together:

- :class:`~typedserve._serving.Serving`: what happens to one request (access policy, busy
  hook, the handler life cycle, error reporting, counting);
- :class:`~typedserve._loop.SelectorLoop`: the selector loop and drain, for every strategy
  that dispatches (``strategy.submit``); a strategy that owns the loop (``AsyncIO``,
  ``Prefork``'s supervisor) replaces it through ``strategy.run``;
- :class:`~typedserve._server_host.ServerHost`: the view of the server strategies get;
- :class:`~typedserve._lifecycle.Lifecycle`: the phase (unbound, idle, serving, draining,
  drained, closed) and its legal transitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, cast, overload

from typedserve._lifecycle import Lifecycle, Phase, StopSignal
from typedserve._loop import SelectorLoop
from typedserve._server_host import ServerHost
from typedserve._serving import Serving
from typedserve.admission import AdmissionPolicy
from typedserve.config import ServerConfig
from typedserve.context import ServerContext, StateT
from typedserve.counters import Counters
from typedserve.drain import BusyPolicy, DrainReport, log_report
from typedserve.errors import ServerClosedError, StrategyMismatchError
from typedserve.handlers import HandlerFactory
from typedserve.policies import AccessPolicy, ErrorPolicy, log_error
from typedserve.requests import Datagram, PeerAddress, RequestT, StreamRequest
from typedserve.strategies.base import LoopOwner, Strategy
from typedserve.strategies.inline import Inline
from typedserve.transports.base import Transport

if TYPE_CHECKING:
    from typedserve.aio.handlers import AsyncHandlerFactory
    from typedserve.aio.stream import AsyncStream
    from typedserve.strategies.aio import AsyncIO

__all__ = ["Server", "ServerStats"]

logger = logging.getLogger("typedserve.server")

RELEASE_WAIT = 2.0  # after a drain: how long close() waits for cut requests' threads to end


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A snapshot of a server's counters."""

    accepted: int
    """Requests received from the transport."""
    refused: int
    """Requests the access policy refused."""
    rejected: int
    """Requests turned away by the overload policy (``limits.overload="reject"``) or refused
    from the backlog during a drain."""
    errors: int
    """Requests whose handler raised (reported to the error policy), or lost with a worker."""
    slow_clients: int
    """Connections closed because they sent nothing within ``timeouts.first_byte``."""
    in_flight: int
    """Requests accepted and not finished: running, or queued in the strategy."""
    truncated: int
    """Oversized datagrams (see ``limits.truncated``), seen by this process's transport."""


class Server(Generic[RequestT, StateT]):
    """A server made of a config, a transport, a strategy and a handler.

    Example::

        server = Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo,
                        strategy=ThreadPerRequest())
        with server:
            server.serve_forever()

    The handler must accept the transport's request type: a ``DatagramHandler`` with a
    ``TCPTransport`` is a type error. ``state`` is shared with every handler through
    ``handler.context.state`` (its type is checked against the handler's ``StateT``).

    Resource handling: the server binds and activates the transport on construction (unless
    ``bind=False``; then call :meth:`bind`), and :meth:`close` (or leaving the ``with`` block)
    shuts the loop down, waits up to ``config.shutdown.grace`` for requests in flight, and
    closes the transport. Each request is closed by the server after its handler's ``close``.

    Error handling: a handler exception goes to ``handle_error`` (default: logged on
    ``typedserve.server`` with the peer and traceback) and the server keeps serving; an
    exception from ``verify_request`` is reported the same way and refuses the request.
    ``EMFILE``, ``ENFILE``, ``ENOBUFS`` and ``ENOMEM`` from accept are logged (WARNING) and
    survived by pausing accepts for 10 ms, doubling up to 1 s while they persist;
    ``ECONNABORTED`` is ignored. Other accept errors propagate out of :meth:`serve_forever`.

    Threads: :meth:`serve_forever` and :meth:`handle_request` run on the caller's thread (one at
    a time); :meth:`shutdown` and :meth:`close` may be called from any thread, including from
    a handler and from a signal handler.
    """

    # Async handlers pair with AsyncIO only, and synchronous ones with the other strategies:
    # AsyncIO is not a ``Strategy`` (it has no ``submit``), so each pairing matches one group.
    @overload
    def __init__(
        self: Server[StreamRequest, None],
        *,
        config: ServerConfig,
        transport: Transport[StreamRequest],
        handler: AsyncHandlerFactory[AsyncStream, None],
        strategy: AsyncIO,
        verify_request: AccessPolicy[StreamRequest] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[StreamRequest] | None = None,
        bind: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self: Server[StreamRequest, StateT],
        *,
        config: ServerConfig,
        transport: Transport[StreamRequest],
        handler: AsyncHandlerFactory[AsyncStream, StateT],
        state: StateT,
        strategy: AsyncIO,
        verify_request: AccessPolicy[StreamRequest] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[StreamRequest] | None = None,
        bind: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self: Server[Datagram, None],
        *,
        config: ServerConfig,
        transport: Transport[Datagram],
        handler: AsyncHandlerFactory[Datagram, None],
        strategy: AsyncIO,
        verify_request: AccessPolicy[Datagram] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[Datagram] | None = None,
        bind: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self: Server[Datagram, StateT],
        *,
        config: ServerConfig,
        transport: Transport[Datagram],
        handler: AsyncHandlerFactory[Datagram, StateT],
        state: StateT,
        strategy: AsyncIO,
        verify_request: AccessPolicy[Datagram] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[Datagram] | None = None,
        bind: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self: Server[RequestT, None],
        *,
        config: ServerConfig,
        transport: Transport[RequestT],
        handler: HandlerFactory[RequestT, None],
        strategy: Strategy | None = None,
        verify_request: AccessPolicy[RequestT] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[RequestT] | None = None,
        bind: bool = True,
    ) -> None: ...

    @overload
    def __init__(
        self,
        *,
        config: ServerConfig,
        transport: Transport[RequestT],
        handler: HandlerFactory[RequestT, StateT],
        state: StateT,
        strategy: Strategy | None = None,
        verify_request: AccessPolicy[RequestT] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[RequestT] | None = None,
        bind: bool = True,
    ) -> None: ...

    def __init__(
        self,
        *,
        config: ServerConfig,
        transport: Transport[Any],
        handler: HandlerFactory[RequestT, Any] | AsyncHandlerFactory[Any, Any],
        state: Any = None,
        strategy: Strategy | AsyncIO | None = None,
        verify_request: AccessPolicy[Any] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        on_busy: BusyPolicy[Any] | None = None,
        bind: bool = True,
    ) -> None:
        self.config = config
        self.transport: Transport[RequestT] = transport
        self.strategy: LoopOwner = Inline() if strategy is None else strategy
        self.state = state
        self._on_timeout = on_timeout
        # Only a dispatching strategy (one with ``submit``) runs on the server's own loop; an
        # async factory only ever reaches AsyncIO (the overloads), which casts it back.
        self._dispatch: Strategy | None = (
            self.strategy if isinstance(self.strategy, Strategy) else None
        )
        self._serving: Serving[RequestT] = Serving(
            cast("HandlerFactory[RequestT, Any]", handler),
            Counters(self.strategy.process_slots),
            verify=verify_request,
            on_busy=on_busy,
            on_error=log_error if handle_error is None else handle_error,
            first_byte=config.timeouts.first_byte,
            serial=self._dispatch is not None and self._dispatch.serial,
        )
        self._host = ServerHost(self)
        self._life = Lifecycle()
        self._stop = StopSignal()
        self._loop: SelectorLoop[RequestT] | None = None
        self._context: ServerContext[Any] | None = None
        self._drain_lock = threading.Lock()
        self._last_report: DrainReport | None = None
        if bind:
            self.bind()

    # -- life cycle ----------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind and activate the transport (done by the constructor unless ``bind=False``)."""
        with self._life.lock:
            if self._life.phase is not Phase.UNBOUND:
                if self._life.phase is Phase.CLOSED or self._life.closing:
                    raise ServerClosedError("the server is closed")
                return
            self.transport.bind(self.config)
            try:
                self.transport.activate()
                if self._dispatch is not None:
                    self._loop = self._new_loop()
                    self._loop.set_listening(True)
            except BaseException:
                self.transport.close()
                raise
            self._context = self._serving.context = ServerContext(
                config=self.config,
                address=self.transport.address,
                state=self.state,
                shutdown=self.request_shutdown,
            )
            self._life.move(Phase.IDLE)
        self.strategy.attach(self._host)

    def _new_loop(self) -> SelectorLoop[RequestT]:
        assert self._dispatch is not None
        policy = AdmissionPolicy.for_server(self.config, self._dispatch.capacity)
        return SelectorLoop(
            self.transport, self._dispatch, self._serving, policy, self.config.backlog, self._stop
        )

    def _loop_or_raise(self) -> SelectorLoop[RequestT]:
        if self._loop is None:
            raise ServerClosedError("the server is not bound, or its strategy owns the loop")
        return self._loop

    def close(self, grace: float | None = None) -> DrainReport | None:
        """Stop serving, drain gracefully, release everything; return the drain's report.

        Drains as :meth:`shutdown` does with ``grace`` (default ``config.shutdown.grace``)
        unless a drain already ran since the loop last stopped, then releases the strategy's
        threads or processes, the transport and the loop's fds. Idempotent: a second call
        returns ``None``. Called from a handler of this server, it only asks the loop to stop
        and returns ``None``; the loop closes the server (draining) when it exits.
        """
        life = self._life
        with life.lock:
            if life.phase is Phase.CLOSED or life.closing:
                return None
            life.closing = True
            if life.phase is Phase.SERVING and (life.owns_loop() or self._serving.in_handler()):
                # A handler (on the loop thread or a request thread) cannot wait for itself:
                # the loop closes the server once it has stopped.
                self._close_pending = True
                self._stop.request()
                return None
        report = None
        if life.phase is not Phase.UNBOUND:
            report = self._graceful(self.config.shutdown.grace if grace is None else grace)
        left = self.strategy.close(RELEASE_WAIT)
        if left:
            logger.warning("%d request(s) still running after being cut; not waiting", left)
        self.transport.close()
        if self._loop is not None:
            self._loop.close()
        with life.lock:
            life.move(Phase.CLOSED)
        return report

    _close_pending = False

    def __enter__(self) -> Self:
        """Bind if needed; the server is closed when the block ends."""
        self.bind()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the server."""
        self.close()

    # -- the loop ------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve requests until :meth:`shutdown` is called.

        Runs ``strategy.run(host)`` on this thread: by default the server's own selector loop.
        A :meth:`shutdown` that arrived while no loop was running makes the next call return
        at once (and is then consumed), so a shutdown is never lost in a start-up race.
        """
        self._life.start_loop()
        try:
            self.strategy.run(self._host)
        finally:
            self._leave_loop()

    def handle_request(self, timeout: float | None = -1.0) -> bool:
        """Wait for one request and dispatch it; return whether one was dispatched.

        ``timeout`` defaults to ``config.timeouts.poll`` (``None``: wait forever). When it
        expires with no request, the ``on_timeout`` hook runs and ``False`` is returned.
        """
        if self._dispatch is None:
            raise StrategyMismatchError(
                f"{self.strategy!r} owns the loop: use serve_forever(), not handle_request()"
            )
        if timeout is not None and timeout < 0:
            timeout = self.config.timeouts.poll
        deadline = None if timeout is None else time.monotonic() + timeout
        self._life.start_loop()
        try:
            loop = self._loop_or_raise()
            while not self._stop.requested:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                if loop.run_once(loop.poll_timeout(remaining), limit=1):
                    return True
        finally:
            self._leave_loop()
        if self._on_timeout is not None:
            self._on_timeout()
        return False

    def _leave_loop(self) -> None:
        with self._life.lock:
            self._stop.clear()
            self._life.move(Phase.IDLE)
        if self._close_pending:  # close() was called from a handler on this thread
            self._close_pending = False
            self._life.closing = False
            self.close()

    def request_shutdown(self) -> None:
        """Ask the loop to stop after the current batch, without waiting (any thread, signals)."""
        self._stop.request()

    @overload
    def shutdown(self) -> None: ...

    @overload
    def shutdown(self, grace: float) -> DrainReport | None: ...

    def shutdown(self, grace: float | None = None) -> DrainReport | None:
        """Stop :meth:`serve_forever`; with ``grace``, also drain and report.

        Without ``grace``: returns as soon as the loop has stopped; requests in flight go on
        (a later :meth:`close` drains them). Returns at once when called from the loop's own
        thread (a handler under ``Inline``, or a signal handler): the loop stops after the
        current request. Returns at once if no loop is running (the next
        :meth:`serve_forever` will then return immediately).

        With ``grace`` (seconds), on a thread other than the loop's: stops accepting at once,
        waits for the loop to return, then drains on this thread: connections already waiting
        in the kernel backlog are accepted and served (turned away through the busy hook when
        the strategy is full), requests in flight get until the deadline, what still runs then
        is cut (its connection shut down, its worker stopped), and arrivals during the drain
        are refused cleanly rather than reset. Returns the :class:`DrainReport` (also logged).
        From the loop's own thread it only asks for the stop and returns ``None``.
        """
        if grace is None:
            self._stop.request()
            if self._life.phase is Phase.SERVING and not self._life.owns_loop():
                self._life.idle.wait()
            return None
        return self._graceful(grace)

    def _graceful(self, grace: float) -> DrainReport | None:
        """Stop the loop, then drain on this thread within ``grace``; the report."""
        self._stop.request(grace)
        life = self._life
        if life.owns_loop():
            return None
        deadline = time.monotonic() + grace
        cut_early = 0
        if not life.idle.wait(grace):
            # A handler holds the loop thread (Inline) past the grace period: cut it, so the
            # loop gets back to see the stop instead of keeping this drain waiting forever.
            cut_early = self._serving.cut_running()
            life.idle.wait()
        with self._drain_lock:  # a concurrent shutdown(grace)/close() waits for this drain
            with life.lock:
                if life.phase is Phase.DRAINED:
                    return self._last_report
                if life.phase is not Phase.IDLE:  # another loop started meanwhile: it stops
                    return None
                life.move(Phase.DRAINING)
            try:
                left = max(0.0, deadline - time.monotonic())
                report = self.strategy.drain(self._host, left) + DrainReport(cut=cut_early)
            finally:
                with life.lock:
                    life.move(Phase.DRAINED)
            self._last_report = report
        log_report(report, self.address, grace)
        return report

    def wait_serving(self, timeout: float | None = None) -> bool:
        """Wait until a loop (:meth:`serve_forever` or :meth:`handle_request`) is running.

        Returns ``False`` if none started within ``timeout`` seconds. Once it returns ``True``,
        :meth:`shutdown` from another thread waits for that loop to stop. For tests and
        supervisors: clients may connect as soon as the server is bound, without waiting.
        """
        return self._life.serving.wait(timeout)

    # -- introspection ---------------------------------------------------------------------------

    @property
    def address(self) -> PeerAddress:
        """The bound address (the real port when the config asked for port 0)."""
        return self.transport.address

    @property
    def context(self) -> ServerContext[StateT]:
        """The context handlers receive (after :meth:`bind`)."""
        if self._context is None:
            raise ServerClosedError("the server is not bound")
        return self._context

    def fileno(self) -> int:
        """The transport's fd, for use with ``select`` alongside other servers."""
        return self.transport.fileno()

    def stats(self) -> ServerStats:
        """A snapshot of the counters, summed over every process serving for this server."""
        totals = self._serving.counters.totals()
        return ServerStats(
            accepted=totals.accepted,
            refused=totals.refused,
            rejected=totals.rejected,
            errors=totals.errors,
            slow_clients=totals.slow_clients,
            in_flight=totals.in_flight,
            truncated=self.transport.stats.truncated,
        )

    def __repr__(self) -> str:
        phase = self._life.phase.value
        return (
            f"<Server {type(self.transport).__name__} {self.address!r} "
            f"{type(self.strategy).__name__} {phase}>"
        )
