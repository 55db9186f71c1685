"""``Server``: a config, a transport, a strategy and a handler, and their life cycle.

The work is done by the pieces it wires together (see ARCHITECTURE.md): ``_serving`` (one
request), ``_loop`` (the selector loop and drain), ``_server_host`` (the strategies' view) and
``_lifecycle`` (the phase and its legal transitions).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, Self, cast, overload

from typing_extensions import Unpack

from typedserve._lifecycle import Lifecycle, Phase, StopSignal
from typedserve._loop import SelectorLoop
from typedserve._server_host import ServerHost
from typedserve._serving import Serving
from typedserve.config import ServerConfig
from typedserve.context import ServerContext, StateT
from typedserve.counters import Counters
from typedserve.drain import RELEASE_WAIT, DrainReport, log_report
from typedserve.errors import ServerClosedError, StrategyMismatchError
from typedserve.handlers import HandlerFactory
from typedserve.options import ServerOptions
from typedserve.requests import Datagram, PeerAddress, RequestT, StreamRequest
from typedserve.stats import ServerStats
from typedserve.strategies.base import LoopOwner, Strategy
from typedserve.strategies.inline import Inline
from typedserve.transports.base import Transport
from typedserve.transports.quiesce import release_new_connections

if TYPE_CHECKING:
    from typedserve.aio.handlers import AsyncHandlerFactory
    from typedserve.aio.stream import AsyncStream
    from typedserve.strategies.aio import AsyncIO

__all__ = ["Server", "ServerOptions", "ServerStats"]

logger = logging.getLogger("typedserve.server")


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
    ``typedserve.server`` with the peer and traceback) and the server keeps serving; so does
    one from ``verify_request``, which refuses the request. Accept errors that mean "out of
    fds or memory" pause accepting (see :mod:`typedserve.admission`); ``ECONNABORTED`` is
    ignored; other accept errors propagate out of :meth:`serve_forever`.

    Threads: :meth:`serve_forever` and :meth:`handle_request` run on the caller's thread (one at
    a time); :meth:`shutdown` and :meth:`close` may be called from any thread, including from
    a handler and from a signal handler.
    """

    # Async handlers pair with AsyncIO (not a ``Strategy``: no ``submit``), sync ones with others.
    @overload
    def __init__(
        self: Server[StreamRequest, None],
        *,
        config: ServerConfig,
        transport: Transport[StreamRequest],
        handler: AsyncHandlerFactory[AsyncStream, None],
        strategy: AsyncIO,
        **options: Unpack[ServerOptions[StreamRequest]],
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
        **options: Unpack[ServerOptions[StreamRequest]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[Datagram, None],
        *,
        config: ServerConfig,
        transport: Transport[Datagram],
        handler: AsyncHandlerFactory[Datagram, None],
        strategy: AsyncIO,
        **options: Unpack[ServerOptions[Datagram]],
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
        **options: Unpack[ServerOptions[Datagram]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[RequestT, None],
        *,
        config: ServerConfig,
        transport: Transport[RequestT],
        handler: HandlerFactory[RequestT, None],
        strategy: Strategy | None = None,
        **options: Unpack[ServerOptions[RequestT]],
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
        **options: Unpack[ServerOptions[RequestT]],
    ) -> None: ...

    def __init__(
        self,
        *,
        config: ServerConfig,
        transport: Transport[Any],
        handler: HandlerFactory[RequestT, Any] | AsyncHandlerFactory[Any, Any],
        state: Any = None,
        strategy: Strategy | AsyncIO | None = None,
        **options: Unpack[ServerOptions[Any]],
    ) -> None:
        self.config = config
        self.transport: Transport[RequestT] = transport
        self.strategy: LoopOwner = Inline() if strategy is None else strategy
        self.state = state
        self._on_timeout = options.get("on_timeout")
        # Only a dispatching strategy runs on the server's loop; AsyncIO casts its factory back.
        self._dispatch: Strategy | None = (
            self.strategy if isinstance(self.strategy, Strategy) else None
        )
        counters = Counters(self.strategy.process_slots)
        serial = self._dispatch is not None and self._dispatch.serial
        factory = cast("HandlerFactory[RequestT, Any]", handler)
        self._serving: Serving[RequestT] = Serving(factory, config, options, counters, serial)
        self._host = ServerHost(self)
        self._life = Lifecycle()
        self._stop = StopSignal()
        self._loop: SelectorLoop[RequestT] | None = None
        if options.get("bind", True):
            self.bind()

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
                    self._loop = self._host.new_loop()
            except BaseException:
                self.transport.close()
                raise
            address, shutdown = self.transport.address, self.request_shutdown
            self._serving.context = ServerContext(self.config, address, self.state, shutdown)
            self._life.move(Phase.IDLE)
        self.strategy.attach(self._host)

    def close(self, grace: float | None = None) -> DrainReport | None:
        """Stop serving, drain gracefully, release everything; return the drain's report.

        Drains as :meth:`shutdown` does with ``grace`` (default ``config.shutdown.grace``)
        unless a drain already ran since the loop last stopped, then releases the strategy's
        threads or processes, the transport and the loop's fds. Idempotent: a second call
        returns ``None``. Called from a handler of this server, it only asks the loop to stop
        and returns ``None``; the loop closes the server (draining) when it exits.
        """
        life = self._life
        if not life.begin_close(self._serving.in_handler()):
            self._stop.request()  # in a handler, or closed already: the loop closes on exit
            return None
        report = None
        if life.phase is not Phase.UNBOUND:
            report = self._graceful(self.config.shutdown.grace if grace is None else grace)
        self.transport.close()  # first: the kernel must not queue connections while we wait
        left = self.strategy.close(RELEASE_WAIT)
        if left:
            logger.warning("%d request(s) still running after being cut; not waiting", left)
        if self._loop is not None:
            self._loop.close()
        with life.lock:
            life.move(Phase.CLOSED)
        return report

    def __enter__(self) -> Self:
        """Bind if needed; the server is closed when the block ends."""
        self.bind()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the server."""
        self.close()

    def serve_forever(self) -> None:
        """Serve requests until :meth:`shutdown` is called.

        Runs ``strategy.run(host)`` on this thread: by default the server's own selector loop.
        A :meth:`shutdown` that arrived while no loop was running makes the next call return
        at once (and is then consumed), so a shutdown is never lost in a start-up race.
        """
        self._start_loop()
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
        self._start_loop()
        try:
            if self._host.loop().serve_one(timeout):
                return True
        finally:
            self._leave_loop()
        if self._on_timeout is not None:
            self._on_timeout()
        return False

    def _start_loop(self) -> None:
        drained = self._life.start_loop() is Phase.DRAINED
        # A drain (here, or in a worker sharing the socket) held new connections: let them in.
        release_new_connections(self.transport.fileno(), self.config.backlog)
        if drained:
            self._serving.cutting = False
            if self._loop is not None:
                self._loop.resume_after_drain()

    def _leave_loop(self) -> None:
        if self._life.end_loop(self._stop):  # close() was called from a handler meanwhile
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

        Without ``grace``: returns once the loop has stopped (at once from the loop's own
        thread, or if no loop runs: the next :meth:`serve_forever` then returns at once);
        requests in flight go on until :meth:`close` drains them.

        With ``grace`` (seconds), from another thread: stops accepting, waits for the loop to
        return, then drains on this thread (see README "Stopping"): what was queued at the stop
        is served, requests in flight get until the deadline, what still runs then is cut, and
        later arrivals are refused cleanly. Returns the :class:`DrainReport` (also logged).
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
        if self._life.owns_loop():
            return None
        report, fresh = self._life.drain(
            grace, lambda left: self.strategy.drain(self._host, left), self._serving.cut_running
        )
        if fresh and report is not None:
            log_report(report, self.address, grace)
        return report

    def wait_serving(self, timeout: float | None = None) -> bool:
        """Wait until a loop (:meth:`serve_forever` or :meth:`handle_request`) is running.

        Returns ``False`` if none started within ``timeout`` seconds. Once it returns ``True``,
        :meth:`shutdown` from another thread waits for that loop to stop. For tests and
        supervisors: clients may connect as soon as the server is bound, without waiting.
        """
        return self._life.serving.wait(timeout)

    @property
    def address(self) -> PeerAddress:
        """The bound address (the real port when the config asked for port 0)."""
        return self.transport.address

    @property
    def context(self) -> ServerContext[StateT]:
        """The context handlers receive (after :meth:`bind`)."""
        if self._serving.context is None:
            raise ServerClosedError("the server is not bound")
        return self._serving.context

    def fileno(self) -> int:
        """The transport's fd, for use with ``select`` alongside other servers."""
        return self.transport.fileno()

    def stats(self) -> ServerStats:
        """A snapshot of the counters, summed over every process serving for this server."""
        totals = self._serving.counters.totals()
        return ServerStats.of(totals, truncated=self.transport.stats.truncated)

    def __repr__(self) -> str:
        parts = type(self.transport).__name__, self.address, type(self.strategy).__name__
        return "<Server {} {!r} {} {}>".format(*parts, self._life.phase.value)
