"""``Server``: a config, a transport, a strategy and a handler, and their life cycle; the work
is done by ``_serving`` (one request), ``_loop`` (the selector loop, drains), ``_server_host``
(the strategies' view) and ``_lifecycle`` (the phase). See ARCHITECTURE.md."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, Self, cast, overload

from typing_extensions import Unpack

from typedserve._lifecycle import Lifecycle, Phase, StopSignal
from typedserve._loop import SelectorLoop
from typedserve._server_host import ServerHost
from typedserve._server_params import AddressT_co, DispatchT, PeerT, StrategyT_co
from typedserve._serving import Serving
from typedserve.config import ServerConfig
from typedserve.context import ServerContext, StateT, StateT_co
from typedserve.counters import Counters
from typedserve.drain import RELEASE_WAIT, DrainReport, log_report
from typedserve.errors import ServerClosedError, StrategyMismatchError
from typedserve.handlers import HandlerFactory
from typedserve.options import ServerOptions
from typedserve.requests import AddrT, Datagram, PeerAddress, Request, RequestT, StreamRequest
from typedserve.stats import ServerStats
from typedserve.strategies.base import Strategy
from typedserve.strategies.inline import Inline
from typedserve.transports.base import RequestT_co, Transport
from typedserve.transports.quiesce import release_new_connections

if TYPE_CHECKING:
    from typedserve.aio.handlers import AsyncHandlerFactory
    from typedserve.aio.stream import AsyncStream
    from typedserve.strategies.aio import AsyncIO

__all__ = ["AddressT_co", "Server", "ServerOptions", "ServerStats", "StrategyT_co"]

logger = logging.getLogger("typedserve.server")


class Server(Generic[RequestT_co, StateT_co, AddressT_co, StrategyT_co]):
    """A server made of a config, a transport, a strategy and a handler.

    Example::

        server = Server(config=ServerConfig(), transport=TCPTransport(), handler=Echo,
                        strategy=ThreadPerRequest())
        with server:
            server.serve_forever()

    The handler must accept the transport's request type: a ``DatagramHandler`` with a
    ``TCPTransport`` is a type error. ``state`` is shared with every handler through
    ``handler.context.state`` (its type is checked against the handler's ``StateT``: an
    instance of it, or of a subclass or an implementation of it).

    Typing: ``Server[RequestT, StateT, AddressT, StrategyT]``, inferred from the arguments and
    covariant in all four; ``AddressT`` and ``StrategyT`` left out of an annotation mean any.

    Resources: the transport is bound on construction (unless ``bind=False``: call
    :meth:`bind`); :meth:`close` (or leaving the ``with`` block) drains and releases it all.
    Errors: a handler's or ``verify_request``'s exception goes to ``handle_error`` (default:
    logged with the peer) and the server keeps serving; accept errors meaning "out of fds or
    memory" pause accepting (:mod:`typedserve.admission`); other accept errors propagate out
    of :meth:`serve_forever`. Threads: :meth:`serve_forever` and :meth:`handle_request` run on
    the caller's thread, one at a time; :meth:`shutdown` and :meth:`close` on any thread, a
    handler's or a signal handler's included.
    """

    @overload
    def __init__(
        self: Server[StreamRequest[PeerT], None, AddrT, AsyncIO],
        *,
        config: ServerConfig,
        transport: Transport[StreamRequest[PeerT], AddrT],
        handler: AsyncHandlerFactory[AsyncStream[PeerT], None],
        strategy: AsyncIO,
        **options: Unpack[ServerOptions[StreamRequest[PeerT]]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[StreamRequest[PeerT], StateT, AddrT, AsyncIO],
        *,
        config: ServerConfig,
        transport: Transport[StreamRequest[PeerT], AddrT],
        handler: AsyncHandlerFactory[AsyncStream[PeerT], StateT],
        state: StateT,
        strategy: AsyncIO,
        **options: Unpack[ServerOptions[StreamRequest[PeerT]]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[Datagram[PeerT], None, AddrT, AsyncIO],
        *,
        config: ServerConfig,
        transport: Transport[Datagram[PeerT], AddrT],
        handler: AsyncHandlerFactory[Datagram[PeerT], None],
        strategy: AsyncIO,
        **options: Unpack[ServerOptions[Datagram[PeerT]]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[Datagram[PeerT], StateT, AddrT, AsyncIO],
        *,
        config: ServerConfig,
        transport: Transport[Datagram[PeerT], AddrT],
        handler: AsyncHandlerFactory[Datagram[PeerT], StateT],
        state: StateT,
        strategy: AsyncIO,
        **options: Unpack[ServerOptions[Datagram[PeerT]]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[RequestT, None, AddrT, DispatchT],
        *,
        config: ServerConfig,
        transport: Transport[RequestT, AddrT],
        handler: HandlerFactory[RequestT, None],
        strategy: DispatchT | None = None,
        **options: Unpack[ServerOptions[RequestT]],
    ) -> None: ...

    @overload
    def __init__(
        self: Server[RequestT, StateT, AddrT, DispatchT],
        *,
        config: ServerConfig,
        transport: Transport[RequestT, AddrT],
        handler: HandlerFactory[RequestT, StateT],
        state: StateT,
        strategy: DispatchT | None = None,
        **options: Unpack[ServerOptions[RequestT]],
    ) -> None: ...

    def __init__(
        self,
        *,
        config: ServerConfig,
        transport: Transport[Any, Any],
        handler: HandlerFactory[Any, Any] | AsyncHandlerFactory[Any, Any],
        state: Any = None,
        strategy: Strategy | AsyncIO | None = None,
        **options: Unpack[ServerOptions[Any]],
    ) -> None:
        self.config = config
        self.transport: Transport[RequestT_co, AddressT_co] = transport
        chosen = strategy or Inline()  # the overloads made its type StrategyT (Inline if none)
        self.strategy: StrategyT_co = cast("StrategyT_co", chosen)
        self.state: StateT_co = state
        self._on_timeout = options.get("on_timeout")
        # Only a dispatching strategy runs on the server's loop; AsyncIO casts its factory back.
        self._dispatch: Strategy | None = chosen if isinstance(chosen, Strategy) else None
        counters = Counters(self.strategy.process_slots, config.metrics.histogram)
        serial = self._dispatch is not None and self._dispatch.serial
        factory = cast("HandlerFactory[RequestT_co, Any]", handler)
        self._serving = Serving(factory, config, options, counters, serial, transport)
        self._host = ServerHost(self)
        self._life = Lifecycle()
        self._stop = StopSignal()
        self._loop: SelectorLoop[RequestT_co] | None = None
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
        """Drain as :meth:`shutdown` does with ``grace`` (default ``config.shutdown.grace``;
        skipped if a drain ran since the loop stopped), release the strategy's threads or
        processes, the transport and the loop; return the report. A second call returns
        ``None``; so does a call from a handler, which only asks the loop to stop (the loop
        closes the server, draining, when it exits)."""
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

    def handle_request(
        self: Server[Request, object, PeerAddress, Strategy], timeout: float | None = -1.0
    ) -> bool:
        """Wait for one request and dispatch it; return whether one was dispatched.

        ``timeout`` defaults to ``config.timeouts.poll`` (``None``: wait forever); when it
        expires, the ``on_timeout`` hook runs and ``False`` is returned. On an ``AsyncIO``
        server (it owns its loop) a type error, and :class:`StrategyMismatchError` at run time.
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
    def shutdown(self, grace: None = None) -> None: ...

    @overload
    def shutdown(self, grace: float) -> DrainReport | None: ...

    @overload
    def shutdown(self, grace: float | None) -> DrainReport | None: ...

    def shutdown(self, grace: float | None = None) -> DrainReport | None:
        """Stop :meth:`serve_forever`; with ``grace``, also drain and report.

        Without ``grace``: returns once the loop has stopped (at once from the loop's own
        thread; if no loop runs, the next one returns at once); requests in flight go on until
        :meth:`close` drains them. With ``grace`` (seconds), from another thread: stop, then
        drain on this thread (README "Stopping": the queued are served, the running get until
        the deadline and are cut then, later arrivals are refused cleanly); the report.
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
        """Wait until a loop (:meth:`serve_forever`, :meth:`handle_request`) runs; ``False`` if
        none did within ``timeout``. After ``True``, :meth:`shutdown` waits for that loop."""
        return self._life.serving.wait(timeout)

    @property
    def address(self) -> AddressT_co:
        """The bound address (with the real port for port 0), typed by the transport; before
        :meth:`bind` the built-in transports raise :class:`ServerClosedError`."""
        return self.transport.address

    @property
    def context(self) -> ServerContext[StateT_co]:
        """The context handlers receive (after :meth:`bind`)."""
        if self._serving.context is None:
            raise ServerClosedError("the server is not bound")
        return self._serving.context

    def fileno(self) -> int:
        """The transport's fd, for use with ``select`` alongside other servers."""
        return self.transport.fileno()

    def reload_tls(self) -> bool:
        """Re-read the TLS files (``TLSTransport.reload``; ``Prefork`` restarts its workers, which
        keep their context); ``False``: no TLS, or the files did not load (logged; old kept)."""
        if not getattr(self.transport, "reload", bool)():
            return False
        getattr(self.strategy, "restart_workers", bool)()
        return True

    def stats(self) -> ServerStats:
        """A snapshot of the counters, summed over every process serving for this server."""
        totals = self._serving.counters.totals()
        return ServerStats.of(totals, truncated=self.transport.stats.truncated)

    def __repr__(self) -> str:
        address = "(no address)" if self._life.phase is Phase.UNBOUND else repr(self.address)
        kinds = f"{type(self.transport).__name__} {address} {type(self.strategy).__name__}"
        return f"<Server {kinds} {self._life.phase.value}>"
