"""``Server``: the loop that joins a transport, a strategy and a handler.

The loop waits on a selector holding the transport's fd and a wake-up fd, so
:meth:`Server.shutdown` takes effect at once instead of at the next poll interval. For each
readiness event it takes a bounded batch of requests from the transport, applies the access
policy and the overload policy, and hands each to the strategy, which runs the handler
somewhere. The strategy may own the loop instead (``Strategy.run``); the server then only
offers it a :class:`~typedserve.strategies.base.ServerHost` view of itself.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import get_ident
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, cast, overload

from typedserve._wakeup import Waker
from typedserve.config import ServerConfig
from typedserve.context import ServerContext, StateT
from typedserve.counters import ACCEPTED, ERRORS, FINISHED, REFUSED, REJECTED, SLOW, Counters
from typedserve.drain import BusyPolicy, DrainReport, cut, log_report, refuse
from typedserve.errors import ServerClosedError
from typedserve.handlers import HandlerFactory
from typedserve.policies import AccessPolicy, ErrorPolicy, log_error
from typedserve.requests import Datagram, PeerAddress, RequestT, StreamRequest
from typedserve.strategies.base import ListenerOnDrain, Strategy
from typedserve.strategies.inline import Inline
from typedserve.transports.base import Transport

if TYPE_CHECKING:
    from typedserve.aio.handlers import AsyncHandlerFactory
    from typedserve.aio.stream import AsyncStream
    from typedserve.strategies.aio import AsyncIO

__all__ = ["Server", "ServerStats"]

logger = logging.getLogger("typedserve.server")

# Accept errors that mean "the process or the kernel is out of something": survived by
# pausing the listening socket for a while (it stays readable, so retrying at once would spin).
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACKOFF_FIRST = 0.01
_BACKOFF_MAX = 1.0
_BATCH = 16  # requests taken per readiness event, so one busy listener cannot starve wake-ups
_RELEASE_WAIT = 2.0  # after a drain: how long close() waits for cut requests' threads to end
_LISTENER = "listener"
_WAKER = "waker"


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
        # AsyncIO owns the loop (it never receives ``submit``) and has every other member the
        # server calls; handle_request() refuses loop owners without ``submit``.
        self.strategy: Strategy = Inline() if strategy is None else cast(Strategy, strategy)
        self.state = state
        # An async factory only ever reaches AsyncIO (the overloads), which casts it back.
        self._factory = cast("HandlerFactory[RequestT, Any]", handler)
        self._verify: AccessPolicy[RequestT] | None = verify_request
        self._on_error: ErrorPolicy = log_error if handle_error is None else handle_error
        self._on_timeout = on_timeout
        self._on_busy: BusyPolicy[RequestT] | None = on_busy
        self._first_byte = config.timeouts.first_byte
        limits = (config.limits.max_in_flight, self.strategy.capacity)
        self._limit = min((n for n in limits if n is not None), default=None)
        self._pause_when_full = config.limits.overload == "pause"
        self._counters = Counters(self.strategy.process_slots)
        # Requests running in this process, by the thread serving each: a drain cuts them, and
        # close() knows it was called from a handler when its thread is a key (one dict store
        # per request, where a thread-local flag would cost two slower attribute writes).
        self._live: dict[int, RequestT] = {}
        # Inline serves every request on the loop thread, one at a time, and a drain on
        # another thread starts only after the loop stopped. So its running request fits in
        # one attribute, and the loop thread is the only writer of the finished count: no
        # lock. Per datagram, the dict and the lock would cost ~1.5k instructions (~6%).
        self._serial = type(self.strategy) is Inline
        self._serial_request: RequestT | None = None
        self._host = _Host(self)
        self._context: ServerContext[Any] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._waker = Waker()
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._stopped = threading.Event()
        self._stopped.set()
        self._serving = threading.Event()
        self._loop_thread: int | None = None
        self._shutdown_requested = False
        self._grace: float | None = None
        self._stop_callbacks: list[Callable[[], None]] = []
        self._drained = False
        self._report_last: DrainReport | None = None
        self._draining = False
        self._cutting = False  # past a drain's deadline: queued requests close without a handler
        self._closed = False
        self._listening = False
        self._paused = False
        self._resume_at: float | None = None
        self._backoff = 0.0
        if bind:
            try:
                self.bind()
            except BaseException:
                self._waker.close()  # the host makes a cycle: do not leave the fds to the GC
                raise

    # -- life cycle ----------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind and activate the transport (done by the constructor unless ``bind=False``)."""
        if self._closed:
            raise ServerClosedError("the server is closed")
        if self._selector is not None:
            return
        self.transport.bind(self.config)
        try:
            self.transport.activate()
            selector = selectors.DefaultSelector()
            selector.register(self._waker.fileno(), selectors.EVENT_READ, _WAKER)
        except BaseException:
            self.transport.close()
            raise
        self._selector = selector
        self._context = ServerContext(
            config=self.config,
            address=self.transport.address,
            state=self.state,
            shutdown=self.request_shutdown,
        )
        self._set_listening(True)
        self.strategy.attach(self._host)

    def close(self, grace: float | None = None) -> DrainReport | None:
        """Stop serving, drain gracefully, release everything; return the drain's report.

        Drains as :meth:`shutdown` does with ``grace`` (default ``config.shutdown.grace``)
        unless a drain already ran since the loop last stopped, then releases the strategy's
        threads or processes, the transport and the loop's fds. Idempotent: a second call
        returns ``None``. Called from a handler of this server, it only asks the loop to stop
        and returns ``None``; the loop closes the server (draining) when it exits.
        """
        with self._lock:
            if self._closed:
                return None
            in_handler = threading.get_ident() in self._live
            if self._loop_thread == threading.get_ident() or (
                in_handler and self._loop_thread is not None
            ):
                # A handler (on the loop thread or a request thread) cannot wait for itself:
                # the loop closes the server once it has stopped.
                self._close_pending = True
                self.request_shutdown()
                return None
            self._closed = True
        report = None
        if self._selector is not None:
            grace = self.config.shutdown.grace if grace is None else grace
            report = self._graceful(grace)
        left = self.strategy.close(_RELEASE_WAIT)
        if left:
            logger.warning("%d request(s) still running after being cut; not waiting", left)
        self.transport.close()
        if self._selector is not None:
            self._selector.close()
        self._waker.close()
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
        self._enter_loop()
        try:
            self.strategy.run(self._host)
        finally:
            self._leave_loop()

    def handle_request(self, timeout: float | None = -1.0) -> bool:
        """Wait for one request and dispatch it; return whether one was dispatched.

        ``timeout`` defaults to ``config.timeouts.poll`` (``None``: wait forever). When it
        expires with no request, the ``on_timeout`` hook runs and ``False`` is returned.
        """
        if not hasattr(self.strategy, "submit"):
            raise TypeError(
                f"{self.strategy!r} owns the loop: use serve_forever(), not handle_request()"
            )
        if timeout is not None and timeout < 0:
            timeout = self.config.timeouts.poll
        deadline = None if timeout is None else time.monotonic() + timeout
        self._enter_loop()
        try:
            while not self._shutdown_requested:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                if self._run_once(self._poll_timeout(remaining), limit=1):
                    return True
        finally:
            self._leave_loop()
        if self._on_timeout is not None:
            self._on_timeout()
        return False

    def request_shutdown(self) -> None:
        """Ask the loop to stop after the current batch, without waiting (any thread, signals)."""
        self._request_stop(None)

    def _request_stop(self, grace: float | None) -> None:
        if grace is not None:
            self._grace = grace
        self._shutdown_requested = True
        self._waker.wake()
        for callback in list(self._stop_callbacks):
            callback()

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
            self.request_shutdown()
            running = self._loop_thread
            if running is not None and running != threading.get_ident():
                self._stopped.wait()
            return None
        return self._graceful(grace)

    def _graceful(self, grace: float) -> DrainReport | None:
        self._request_stop(grace)
        if self._loop_thread == threading.get_ident():
            return None
        deadline = time.monotonic() + grace
        cut_early = 0
        if not self._stopped.wait(grace):
            # A handler holds the loop thread (Inline) past the grace period: cut it, so the
            # loop gets back to see the stop instead of keeping this drain waiting forever.
            live = self._running_requests()
            cut_early = len(live)
            for request in live:
                cut(request)
            self._stopped.wait()
        with self._drain_lock:  # a concurrent shutdown(grace)/close() waits for this drain
            if self._drained:
                return self._report_last
            with self._lock:
                if self._loop_thread is not None:  # another loop started meanwhile: it stops
                    return None
                self._loop_thread = threading.get_ident()  # own the selector for the drain
            try:
                left = max(0.0, deadline - time.monotonic())
                report = self.strategy.drain(self._host, left) + DrainReport(cut=cut_early)
            finally:
                with self._lock:
                    self._loop_thread = None
            self._drained, self._report_last = True, report
        log_report(report, self.address, grace)
        return report

    def wait_serving(self, timeout: float | None = None) -> bool:
        """Wait until a loop (:meth:`serve_forever` or :meth:`handle_request`) is running.

        Returns ``False`` if none started within ``timeout`` seconds. Once it returns ``True``,
        :meth:`shutdown` from another thread waits for that loop to stop. For tests and
        supervisors: clients may connect as soon as the server is bound, without waiting.
        """
        return self._serving.wait(timeout)

    def _enter_loop(self) -> None:
        with self._lock:
            if self._closed or self._selector is None:
                raise ServerClosedError("the server is closed or not bound")
            if self._loop_thread is not None:
                raise RuntimeError("this server is already serving on another thread")
            self._loop_thread = threading.get_ident()
            self._drained = self._cutting = False
            self._stopped.clear()
            self._serving.set()

    def _leave_loop(self) -> None:
        with self._lock:
            self._shutdown_requested = False
            self._grace = None
            self._loop_thread = None
            self._serving.clear()
            self._stopped.set()
        if self._close_pending:  # close() was called from a handler on this thread
            self._close_pending = False
            self.close()

    def _poll_timeout(self, timeout: float | None) -> float | None:
        if self._resume_at is None:
            return timeout
        wait = max(0.0, self._resume_at - time.monotonic())
        return wait if timeout is None else min(wait, timeout)

    def _run_loop(self) -> None:
        while not self._shutdown_requested:
            self._run_once(self._poll_timeout(None))

    def _run_once(self, timeout: float | None, limit: int = _BATCH) -> int:
        """Wait once for readiness and dispatch up to ``limit`` requests; return how many."""
        assert self._selector is not None
        dispatched = 0
        for key, _ in self._selector.select(timeout):
            data = key.data
            if data is _LISTENER:
                dispatched += self._dispatch_ready(limit)
            elif data is _WAKER:
                self._waker.drain()
            else:
                data()  # an fd a strategy watches (e.g. a child's pidfd)
        if self._resume_at is not None and time.monotonic() >= self._resume_at:
            self._resume_at = None
            self._set_listening(True)
        if self._paused:
            self._maybe_resume()
        return dispatched

    def _dispatch_ready(self, limit: int) -> int:
        if self._draining:
            self._refuse_backlog()
            return 0
        # Everything the loop touches per request is bound once here, not looked up each time.
        receive, strategy, submit, serve = (
            self.transport.receive,
            self.strategy,
            self.strategy.submit,
            self._serve,
        )
        verify, row, cap = self._verify, self._counters.row, self._limit
        dispatched = 0
        while dispatched < limit and not self._shutdown_requested:
            full = cap is not None and strategy.in_flight >= cap
            if full and self._pause_when_full:
                self._pause()
                break
            try:
                request = receive()
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise
                self._back_off(exc)
                break
            if request is None:
                break
            if self._backoff:
                self._backoff = 0.0
            row[ACCEPTED] += 1
            if verify is not None and not self._verified(verify, request):
                continue
            if full:
                self._reject(request)
                continue
            try:
                submit(serve, request)
            except Exception as exc:
                self._submit_failed(exc, request)
            dispatched += 1
        return dispatched

    def _submit_failed(self, exc: Exception, request: RequestT) -> None:
        """``submit`` raised: the request is still the server's to report and close."""
        self._report(exc, request)
        self.transport.close_request(request)
        self._counters.add(FINISHED)

    def _admit(self, request: RequestT) -> bool:
        self._counters.row[ACCEPTED] += 1
        verify = self._verify
        return verify is None or self._verified(verify, request)

    def _verified(self, verify: AccessPolicy[RequestT], request: RequestT) -> bool:
        try:
            allowed = verify(request)
        except Exception as exc:
            self._report(exc, request)
            allowed = False
        if not allowed:
            self._counters.row[REFUSED] += 1
            self.transport.close_request(request)
        return allowed

    def _reject(self, request: RequestT) -> None:
        """Turn an admitted request away: busy hook, clean close (loop thread)."""
        self._counters.row[REJECTED] += 1
        if self._on_busy is not None:
            try:
                self._on_busy(request)
            except Exception as exc:
                self._report(exc, request)
        refuse(request, self.transport.close_request)

    def _serve(self, request: RequestT) -> None:
        """Run the handler life cycle for one request (on the strategy's thread) and close it."""
        if self._cutting:  # queued behind the drain's deadline: release it unserved
            self.transport.close_request(request)
            self._counters.add(FINISHED)
            return
        serial = self._serial
        if serial:
            self._serial_request = request
        else:
            thread = get_ident()
            self._live[thread] = request
        try:
            if self._first_byte is not None and not self.transport.wait_first_byte(
                request, self._first_byte
            ):
                self._counters.add(SLOW)
                logger.debug("closed %r: nothing received within timeouts.first_byte", request)
                return
            handler = self._factory(request, self._context)  # type: ignore[arg-type]  # set by bind()
            try:
                handler.setup()
                handler.handle()
                handler.finish()
            finally:
                handler.close()
        except Exception as exc:
            self._report(exc, request)
        finally:
            if serial:
                self._serial_request = None
            else:
                del self._live[thread]
            self.transport.close_request(request)
            # counters.add(FINISHED), inlined: the bare acquire/release pair (around a
            # statement that cannot raise) costs half of a call plus a ``with`` block.
            counters = self._counters
            if serial:
                counters.row[FINISHED] += 1
            else:
                counters.lock.acquire()
                counters.row[FINISHED] += 1
                counters.lock.release()

    def _running_requests(self) -> list[RequestT]:
        """The requests whose handlers run in this process now, on any thread."""
        running = list(self._live.values())
        serial = self._serial_request
        if serial is not None:
            running.append(serial)
        return running

    def _report(self, exc: BaseException, request: object) -> None:
        self._report_peer(exc, getattr(request, "peer", None))

    def _report_peer(self, exc: BaseException, peer: PeerAddress) -> None:
        self._counters.add(ERRORS)
        try:
            self._on_error(exc, peer)
        except Exception:
            logger.exception("the error policy itself failed while reporting %r", exc)

    # -- draining --------------------------------------------------------------------------------

    def _drain(self, grace: float, listener: ListenerOnDrain = "refuse") -> DrainReport:
        """The default drain (see :meth:`shutdown` and ``ServerHost.drain``), on the thread
        that owns the loop now."""
        deadline = time.monotonic() + grace
        strategy, row = self.strategy, self._counters.row
        self._resume_at, self._paused = None, False
        backlog = listener != "leave"
        self._set_listening(backlog)
        in_flight_before, refused_before = strategy.in_flight, row[REJECTED]
        taken = self._take_backlog(deadline) if backlog else 0
        if listener == "release":
            self._host.release_listener()
            backlog = False
        self._draining = True
        try:
            while strategy.in_flight and (left := deadline - time.monotonic()) > 0:
                strategy.notify_when_available(self._waker.wake)
                if strategy.in_flight:
                    self._run_once(left)
            still_running = strategy.in_flight
            self._cutting = bool(still_running)
            for request in self._running_requests():
                cut(request)
            if backlog:
                self._refuse_backlog()
        finally:
            self._draining = False
        completed = in_flight_before + taken - still_running
        return DrainReport(completed, still_running, row[REJECTED] - refused_before)

    def _take_backlog(self, deadline: float) -> int:
        """Serve what was already queued when the stop came (bounded by the backlog size);
        return how many requests were dispatched."""
        self._shutdown_requested = False  # let _dispatch_ready run; nothing else loops now
        budget = total = max(self.config.backlog, _BATCH)
        try:
            while budget > 0 and time.monotonic() < deadline:
                taken = self._dispatch_ready(min(budget, _BATCH))
                if not taken or self._paused:
                    break
                budget -= taken
        finally:
            self._shutdown_requested = True
        if self._paused:  # the strategy is full: what is still queued will be refused
            self._paused = False
            self._set_listening(True)
        return total - budget

    def _refuse_backlog(self) -> None:
        """Take every request waiting in the backlog and refuse it cleanly (bounded)."""
        for _ in range(max(self.config.backlog, _BATCH)):
            try:
                request = self.transport.receive()
            except OSError:
                return
            if request is None:
                return
            if self._admit(request):
                self._reject(request)

    # -- accepting, pausing and backing off ------------------------------------------------------

    def _set_listening(self, on: bool) -> None:
        if on == self._listening or self._selector is None:
            return
        if on:
            self._selector.register(self.transport.fileno(), selectors.EVENT_READ, _LISTENER)
        else:
            self._selector.unregister(self.transport.fileno())
        self._listening = on

    def _pause(self) -> None:
        self._paused = True
        self._set_listening(False)
        self.strategy.notify_when_available(self._waker.wake)
        self._maybe_resume()  # a request may have finished before the callback was registered

    def _maybe_resume(self) -> None:
        if self._limit is None or self.strategy.in_flight < self._limit:
            self._paused = False
            if self._resume_at is None:
                self._set_listening(True)

    def _back_off(self, exc: OSError) -> None:
        self._backoff = min(_BACKOFF_MAX, self._backoff * 2 or _BACKOFF_FIRST)
        logger.warning(
            "accept on %s failed: %s; pausing accepts for %.0f ms",
            self.transport.address,
            exc.strerror,
            self._backoff * 1000,
        )
        self._resume_at = time.monotonic() + self._backoff
        self._set_listening(False)

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
        totals = self._counters.totals()
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
        state = "closed" if self._closed else ("serving" if self._loop_thread else "idle")
        return (
            f"<Server {type(self.transport).__name__} {self.address!r} "
            f"{type(self.strategy).__name__} {state}>"
        )


class _Host(Generic[RequestT]):
    """The :class:`~typedserve.strategies.base.ServerHost` a server hands its strategy."""

    __slots__ = ("_server",)

    def __init__(self, server: Server[RequestT, Any]) -> None:
        self._server = server

    @property
    def config(self) -> ServerConfig:
        return self._server.config

    @property
    def transport(self) -> Transport[RequestT]:
        return self._server.transport

    @property
    def handler(self) -> HandlerFactory[RequestT, Any]:
        return self._server._factory

    @property
    def context(self) -> ServerContext[Any]:
        return self._server.context

    @property
    def counters(self) -> Counters:
        return self._server._counters

    @property
    def stopping(self) -> bool:
        return self._server._shutdown_requested

    @property
    def grace(self) -> float | None:
        return self._server._grace

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._server._stop_callbacks.append(callback)
        if self._server._shutdown_requested:
            callback()

    def request_stop(self, grace: float | None = None) -> None:
        self._server._request_stop(grace)

    def admit(self, request: RequestT) -> bool:
        return self._server._admit(request)

    def serve(self, request: RequestT) -> None:
        self._server._serve(request)

    def reject(self, request: RequestT) -> None:
        self._server._reject(request)

    def report(self, exc: BaseException, peer: PeerAddress) -> None:
        self._server._report_peer(exc, peer)

    def run_loop(self) -> None:
        self._server._run_loop()

    def drain(self, grace: float, listener: ListenerOnDrain = "refuse") -> DrainReport:
        return self._server._drain(grace, listener)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        selector = self._server._selector
        if selector is None:
            raise ServerClosedError("the server is not bound")
        selector.register(fd, selectors.EVENT_READ, callback)

    def unwatch(self, fd: int) -> None:
        selector = self._server._selector
        if selector is not None:
            selector.unregister(fd)

    def close_in_child(self, keep_listener: bool) -> None:
        server = self._server
        if server._selector is not None:
            server._selector.close()
            server._selector = None
        server._waker.close()
        if not keep_listener:
            _close_fd_only(server.transport)

    def renew_loop(self) -> None:
        server = self._server
        old = server._selector
        if old is None:
            raise ServerClosedError("the server is not bound")
        old.close()  # only this process's fd: the parent's epoll instance is untouched
        server._waker.close()
        server._waker = Waker()
        server._selector = selectors.DefaultSelector()
        server._selector.register(server._waker.fileno(), selectors.EVENT_READ, _WAKER)
        if server._listening:
            server._selector.register(server.transport.fileno(), selectors.EVENT_READ, _LISTENER)

    def release_listener(self) -> None:
        self._server._set_listening(False)
        _close_fd_only(self._server.transport)

    def rebind(self, config: ServerConfig) -> None:
        server = self._server
        self.release_listener()
        server.transport.bind(config)
        server.transport.activate()
        server._set_listening(True)


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
