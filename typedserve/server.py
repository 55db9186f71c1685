"""``Server``: the loop that joins a transport, a strategy and a handler.

The loop waits on a selector holding the transport's fd and a wake-up fd, so
:meth:`Server.shutdown` takes effect at once instead of at the next poll interval. For each
readiness event it takes a bounded batch of requests from the transport, applies the access
policy, and hands each to the strategy, which runs the handler somewhere.
"""

from __future__ import annotations

import errno
import logging
import selectors
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, overload

from typedserve._wakeup import Waker
from typedserve.config import ServerConfig
from typedserve.context import ServerContext, StateT
from typedserve.errors import ServerClosedError
from typedserve.handlers import HandlerFactory
from typedserve.policies import AccessPolicy, ErrorPolicy, log_error
from typedserve.requests import PeerAddress, RequestT
from typedserve.strategies.base import Strategy
from typedserve.strategies.inline import Inline
from typedserve.transports.base import Transport

__all__ = ["Server", "ServerStats"]

logger = logging.getLogger("typedserve.server")

# Accept errors that mean "the process or the kernel is out of something": survived by
# pausing the listening socket for a while (it stays readable, so retrying at once would spin).
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACKOFF_FIRST = 0.01
_BACKOFF_MAX = 1.0
_BATCH = 16  # requests taken per readiness event, so one busy listener cannot starve wake-ups
_LISTENER = "listener"
_WAKER = "waker"


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A snapshot of a server's counters."""

    accepted: int
    """Requests received from the transport."""
    refused: int
    """Requests the access policy refused."""
    errors: int
    """Requests whose handler raised (reported to the error policy)."""
    slow_clients: int
    """Connections closed because they sent nothing within ``timeouts.first_byte``."""
    in_flight: int
    """Requests running now."""
    truncated: int
    """Oversized datagrams (see ``limits.truncated``)."""


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
        bind: bool = True,
    ) -> None: ...

    def __init__(
        self,
        *,
        config: ServerConfig,
        transport: Transport[RequestT],
        handler: HandlerFactory[RequestT, Any],
        state: Any = None,
        strategy: Strategy | None = None,
        verify_request: AccessPolicy[RequestT] | None = None,
        handle_error: ErrorPolicy | None = None,
        on_timeout: Callable[[], None] | None = None,
        bind: bool = True,
    ) -> None:
        self.config = config
        self.transport = transport
        self.strategy: Strategy = Inline() if strategy is None else strategy
        self.state = state
        self._factory = handler
        self._verify = verify_request
        self._on_error: ErrorPolicy = log_error if handle_error is None else handle_error
        self._on_timeout = on_timeout
        self._first_byte = config.timeouts.first_byte
        self._limit = config.limits.max_concurrent
        self._context: ServerContext[Any] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._waker = Waker()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stopped.set()
        self._serving = threading.Event()
        self._handling = threading.local()  # .active: this thread is running one of our handlers
        self._loop_thread: int | None = None
        self._shutdown_requested = False
        self._closed = False
        self._listening = False
        self._paused = False
        self._resume_at: float | None = None
        self._backoff = 0.0
        self._accepted = self._refused = self._errors = self._slow = 0
        if bind:
            self.bind()

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

    def close(self, grace: float | None = None) -> None:
        """Stop serving, wait for requests in flight, release everything. Idempotent.

        Waits up to ``grace`` seconds (default ``config.shutdown.grace``) for running requests;
        any still running then are logged. Called from a handler of this server, it only asks
        the loop to stop; the loop closes the server when it exits.
        """
        with self._lock:
            if self._closed:
                return
            in_handler = getattr(self._handling, "active", False)
            if self._loop_thread == threading.get_ident() or (
                in_handler and self._loop_thread is not None
            ):
                # A handler (on the loop thread or a request thread) cannot wait for itself:
                # the loop closes the server once it has stopped.
                self._close_pending = True
                self.request_shutdown()
                return
            self._closed = True
        if self._loop_thread is not None:
            self.shutdown()
        grace = self.config.shutdown.grace if grace is None else grace
        left = self.strategy.close(grace)
        if left:
            logger.warning("%d request(s) still running after the %.1f s grace period", left, grace)
        self.transport.close()
        if self._selector is not None:
            self._selector.close()
        self._waker.close()

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

        A :meth:`shutdown` that arrived while no loop was running makes the next call return
        at once (and is then consumed), so a shutdown is never lost in a start-up race.
        """
        self._enter_loop()
        try:
            while not self._shutdown_requested:
                self._run_once(self._poll_timeout(None))
        finally:
            self._leave_loop()

    def handle_request(self, timeout: float | None = -1.0) -> bool:
        """Wait for one request and dispatch it; return whether one was dispatched.

        ``timeout`` defaults to ``config.timeouts.poll`` (``None``: wait forever). When it
        expires with no request, the ``on_timeout`` hook runs and ``False`` is returned.
        """
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
        self._shutdown_requested = True
        self._waker.wake()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait until it has returned.

        Returns at once when called from the loop's own thread (a handler under ``Inline``, or
        a signal handler): the loop stops after the current request. Returns at once if no loop
        is running (the next :meth:`serve_forever` will then return immediately).
        """
        self.request_shutdown()
        running = self._loop_thread
        if running is not None and running != threading.get_ident():
            self._stopped.wait()

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
            self._stopped.clear()
            self._serving.set()

    def _leave_loop(self) -> None:
        with self._lock:
            self._shutdown_requested = False
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

    def _run_once(self, timeout: float | None, limit: int = _BATCH) -> int:
        """Wait once for readiness and dispatch up to ``limit`` requests; return how many."""
        assert self._selector is not None
        dispatched = 0
        for key, _ in self._selector.select(timeout):
            if key.data is _WAKER:
                self._waker.drain()
            else:
                dispatched += self._dispatch_ready(limit)
        if self._resume_at is not None and time.monotonic() >= self._resume_at:
            self._resume_at = None
            self._set_listening(True)
        if self._paused:
            self._maybe_resume()
        return dispatched

    def _dispatch_ready(self, limit: int) -> int:
        transport, strategy, verify = self.transport, self.strategy, self._verify
        dispatched = 0
        while dispatched < limit and not self._shutdown_requested:
            if self._limit is not None and strategy.in_flight >= self._limit:
                self._pause()
                break
            try:
                request = transport.receive()
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise
                self._back_off(exc)
                break
            if request is None:
                break
            self._backoff = 0.0
            self._accepted += 1
            if verify is not None and not self._verified(verify, request):
                continue
            try:
                strategy.submit(self._serve, request)
            except Exception as exc:
                self._report(exc, request)
                transport.close_request(request)
                continue
            dispatched += 1
        return dispatched

    def _verified(self, verify: AccessPolicy[RequestT], request: RequestT) -> bool:
        try:
            allowed = verify(request)
        except Exception as exc:
            self._report(exc, request)
            allowed = False
        if not allowed:
            self._refused += 1
            self.transport.close_request(request)
        return allowed

    def _serve(self, request: RequestT) -> None:
        """Run the handler life cycle for one request (on the strategy's thread) and close it."""
        self._handling.active = True
        try:
            if self._first_byte is not None and not self.transport.wait_first_byte(
                request, self._first_byte
            ):
                self._slow += 1
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
            self._handling.active = False
            self.transport.close_request(request)

    def _report(self, exc: BaseException, request: object) -> None:
        with self._lock:
            self._errors += 1
        peer: PeerAddress = getattr(request, "peer", None)
        try:
            self._on_error(exc, peer)
        except Exception:
            logger.exception("the error policy itself failed while reporting %r", exc)

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
        """A snapshot of the counters."""
        return ServerStats(
            accepted=self._accepted,
            refused=self._refused,
            errors=self._errors,
            slow_clients=self._slow,
            in_flight=self.strategy.in_flight,
            truncated=self.transport.stats.truncated,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("serving" if self._loop_thread else "idle")
        return (
            f"<Server {type(self.transport).__name__} {self.address!r} "
            f"{type(self.strategy).__name__} {state}>"
        )
