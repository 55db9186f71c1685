"""``Serving``: what the server does with one request, whatever loop took it.

- :meth:`Serving.admit` counts a request taken from the transport and applies the access
  policy; :meth:`Serving.reject` turns one away (busy hook, clean refusal). Loop thread.
- :meth:`Serving.serve` runs the handler life cycle (``setup`` → ``handle`` → ``finish``,
  ``close`` always) and closes the request; it never raises. Strategy's thread or process.
  A transport's ``open_request`` (a TLS handshake, a PROXY protocol header) runs first there;
  with a transport whose ``verify_after_open`` is true, the access policy runs after it (on
  the client a PROXY header names) instead of in :meth:`Serving.admit`.
- :meth:`Serving.cut_running` cuts every request whose handler runs in this process now (a
  drain's deadline). Any thread.

Counting: every admitted request ends in exactly one of ``refused``, ``rejected`` or
``finished`` (see :mod:`typedserve.counters`), and is reported once to the server's observers
(:mod:`typedserve.observe`), if any, with its outcome, just before its connection is closed.
Without observers ``serve`` is the plain life cycle; with them it is
:meth:`Serving._serve_observed`, the same written out with the clock reads and the report (so a
server without observers pays nothing for them). What a handler raises is counted in ``errors``
and goes to the error policy, except network events (a peer's reset, a broken pipe), counted
in ``disconnects`` and logged as one INFO line (:meth:`Serving.report`): every strategy
reports through it, in whichever process serves (forked children and prefork workers write
their own row of the shared counters; ``AsyncIO`` through ``host.report``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from threading import get_ident
from typing import Any, Generic, cast

from typedserve.config import ServerConfig
from typedserve.context import ServerContext
from typedserve.counters import (
    ACCEPTED,
    DISCONNECTS,
    ERRORS,
    FINISHED,
    HANDSHAKE_FAILURES,
    PROXY_REFUSED,
    REFUSED,
    REJECTED,
    SLOW,
    Counters,
)
from typedserve.drain import BusyPolicy
from typedserve.errors import ConfigError, HandshakeError, ProxyProtocolError
from typedserve.handlers import HandlerFactory, declared_framing
from typedserve.observe import Outcome, RequestObserver, observers_for, outcome_of
from typedserve.options import ServerOptions
from typedserve.policies import (
    AccessPolicy,
    ErrorPolicy,
    is_disconnect,
    log_disconnect,
    log_error,
    log_handshake_failure,
    log_proxy_refusal,
)
from typedserve.requests import PeerAddress, Request, RequestT

__all__ = ["Serving"]

logger = logging.getLogger("typedserve.server")


class Serving(Generic[RequestT]):
    """The per-request side of a server (see the module docstring).

    ``serial``: the strategy serves on the loop thread, one request at a time, so the running
    request fits in one attribute and the loop thread is the only writer of the finished count
    (no lock). Per datagram, the per-thread dict and the lock would cost about 6 %.
    """

    def __init__(
        self,
        factory: HandlerFactory[RequestT, Any],
        config: ServerConfig,
        options: ServerOptions[RequestT],
        counters: Counters,
        serial: bool,
        transport: object = None,
    ) -> None:
        self.factory = factory
        self.counters = counters
        self.context: ServerContext[Any] | None = None  # set when the server binds
        self.verify: AccessPolicy[RequestT] | None = options.get("verify_request")
        self._on_busy: BusyPolicy[RequestT] | None = options.get("on_busy")
        self._on_error: ErrorPolicy = options.get("handle_error") or log_error
        self.serial = serial
        self.linger: Callable[[RequestT], None] = _close
        """What follows a refusal that asks to linger (the selector loop holds the connection
        until the peer closes); by default the request is closed at once."""
        self.cutting = False  # past a drain's deadline: queued requests close without a handler
        # Requests running in this process, by the thread serving each: a drain cuts them, and
        # close() knows it was called from a handler when its thread is a key.
        self.live: dict[int, RequestT] = {}
        self.serial_request: RequestT | None = None
        opener: Callable[[RequestT], None] | None = getattr(transport, "open_request", None)
        self.open_request = opener
        """What must happen to a request on the thread that serves it, before its handler
        (the transport's ``open_request``: a TLS handshake, a PROXY header); ``None``: nothing."""
        self.verify_opened: AccessPolicy[RequestT] | None = None
        """The access policy, when it waits for the opening (``verify_after_open``)."""
        if opener is not None and getattr(transport, "verify_after_open", False):
            self.verify_opened, self.verify = self.verify, None
        self.observer: RequestObserver | None = observers_for(config, counters)
        """Who hears of each request's end (:func:`typedserve.observe.observers_for`)."""
        self._cut: dict[int, RequestT] = {}  # with observers: what the last drain cut, by id
        if self.observer is not None:
            self.serve = self._serve_observed  # type: ignore[method-assign]
        if opener is not None and declared_framing(factory) is not None:
            raise ConfigError(
                f"{getattr(factory, '__name__', factory)} declares a framing, which the server "
                "cannot read through this transport's requests (TLS, PROXY protocol): serve it "
                "unframed"
            )

    # -- the loop thread -------------------------------------------------------------------------

    def admit(self, request: RequestT) -> bool:
        """Count ``request`` as accepted; apply the access policy (a refused one is closed)."""
        self.counters.row[ACCEPTED] += 1
        verify = self.verify
        return verify is None or self.verified(verify, request)

    def verified(self, verify: AccessPolicy[RequestT], request: RequestT) -> bool:
        """Apply ``verify`` to an accepted request; close and count it if refused."""
        allowed = self._allows(verify, request)
        if not allowed:
            self.counters.row[REFUSED] += 1
            self.observe(request, "refused")
            request.close()
        return allowed

    def verified_after_open(self, request: RequestT) -> bool:
        """Apply the access policy that waited for the opening (any thread); close and count
        the request as refused if it does not pass (then it is not counted as finished)."""
        verify = self.verify_opened
        return verify is None or self.verified_by_worker(verify, request)

    def verified_by_worker(self, verify: AccessPolicy[RequestT], request: RequestT) -> bool:
        """:meth:`verified` on any thread (the refusal is counted under the lock)."""
        if self._allows(verify, request):
            return True
        self.counters.add(REFUSED)
        self.observe(request, "refused")
        request.close()
        return False

    def _allows(self, verify: AccessPolicy[RequestT], request: RequestT) -> bool:
        try:
            return verify(request)
        except Exception as exc:
            self.report(exc, request.peer)
            return False

    def reject(self, request: RequestT, *, linger: bool = True) -> bool:
        """Turn an admitted request away: busy hook, then a clean refusal. Returns whether the
        connection must still linger: then, with ``linger=False``, the caller lingers (reads
        until the peer's EOF) and closes it; by default :attr:`linger` does."""
        self.counters.row[REJECTED] += 1
        # A TLS request is refused before its handshake: a busy reply would be plaintext.
        if self._on_busy is not None and getattr(request, "replies_when_busy", True):
            try:
                self._on_busy(request)
            except Exception as exc:
                self.report(exc, request.peer)
        self.observe(request, "rejected")  # before the refusal, which may close it
        if not request.refuse():
            return False
        if linger:
            self.linger(request)
        return True

    def submit_failed(self, exc: Exception, request: RequestT) -> None:
        """``strategy.submit`` raised: the request is still the server's to report and close."""
        self.report(exc, request.peer)
        self.observe(request, "error")
        request.close()
        self.counters.add(FINISHED)

    def observe(self, request: RequestT, outcome: Outcome, started: float | None = None) -> None:
        """Report the end of ``request`` to the observers, if any (``started``: default now;
        the request must still be open). Any thread."""
        observer = self.observer
        if observer is not None:
            ended = time.monotonic()
            observer.request_ended(request, outcome, ended if started is None else started, ended)

    # -- the strategy's thread -------------------------------------------------------------------

    def serve(self, request: RequestT) -> None:
        """Run the handler life cycle for one request and close it; never raises.

        A request still running at its deadline (``timeouts.request``) is counted as a slow
        client, not as an error, whatever ended it (its handler's ``TimeoutError``, the loop's
        cut). A failed request's connection is cut before it is closed.
        """
        if self.cutting:  # queued behind the drain's deadline: release it unserved
            request.close()
            self.counters.add(FINISHED)
            return
        if self.open_request is not None and not self._opened(request):
            return
        serial = self.serial
        if serial:
            self.serial_request = request
        else:
            thread = get_ident()
            self.live[thread] = request
        failed = False
        deadline = request.deadline
        try:
            handler = self.factory(request, self.context)  # type: ignore[arg-type]  # set by bind()
            try:
                handler.setup()
                handler.handle()
                handler.finish()
            finally:
                handler.close()
        except Exception as exc:
            failed = True
            if deadline is None or time.monotonic() < deadline:
                self.report(exc, request.peer)
        finally:
            if serial:
                self.serial_request = None
            else:
                del self.live[thread]
            if failed:
                request.cut()
            request.close()
            # counters.add(FINISHED), inlined: the bare acquire/release pair (around a
            # statement that cannot raise) costs half of a call plus a ``with`` block.
            counters = self.counters
            if serial:
                counters.row[FINISHED] += 1
            else:
                counters.lock.acquire()
                counters.row[FINISHED] += 1
                counters.lock.release()
            if deadline is not None and time.monotonic() >= deadline:
                logger.debug("%r ran past timeouts.request", request)
                counters.add(SLOW)

    def _serve_observed(self, request: RequestT) -> None:
        """:meth:`serve` on a server with observers: the same life cycle, written out, with
        the request's outcome reported before it is closed (see the module docstring)."""
        observer = cast("RequestObserver", self.observer)
        started = time.monotonic()
        counters = self.counters
        if self.cutting:
            observer.request_ended(request, "cut", started, started)
            request.close()
            counters.add(FINISHED)
            return
        if self.open_request is not None and not self._opened(request, started):
            return
        serial = self.serial
        thread = get_ident()
        if serial:
            self.serial_request = request
        else:
            self.live[thread] = request
        outcome: Outcome = "cut"  # unless set below: a BaseException (the CLI's interruption)
        deadline = request.deadline
        try:
            handler = self.factory(request, self.context)  # type: ignore[arg-type]  # set by bind()
            try:
                handler.setup()
                handler.handle()
                handler.finish()
            finally:
                handler.close()
            outcome = "completed"
        except Exception as exc:
            outcome = outcome_of(exc)
            if deadline is None or time.monotonic() < deadline:
                self.report(exc, request.peer)
        finally:
            if serial:
                self.serial_request = None
            else:
                del self.live[thread]
            failed = outcome != "completed"
            ended = time.monotonic()
            slow = deadline is not None and ended >= deadline
            if self._cut.pop(id(request), None) is request:
                outcome = "cut"  # by a drain, even if its handler then returned normally
            if slow:
                outcome = "slow"
            observer.request_ended(request, outcome, started, ended)
            if failed:
                request.cut()
            request.close()
            counters.add(FINISHED)
            if slow:
                logger.debug("%r ran past timeouts.request", request)
                counters.add(SLOW)

    def _opened(self, request: RequestT, started: float | None = None) -> bool:
        """Run the transport's opening and the access policy that waited for it; ``False``:
        the request ended there (closed and counted: finished, or refused; with ``started``,
        reported to the observers)."""
        opener = cast("Callable[[RequestT], None]", self.open_request)
        serial = self.serial
        thread = get_ident()
        if serial:
            self.serial_request = request
        else:
            self.live[thread] = request  # a drain may cut it while it opens
        try:
            opener(request)  # HandshakeError, ProxyProtocolError: reported, no handler
        except Exception as exc:
            self.report(exc, request.peer)
            request.cut()
            if started is not None:
                self.observe(request, outcome_of(exc), started)
            request.close()
            self.counters.add(FINISHED)
            return False
        finally:
            if serial:
                self.serial_request = None
            else:
                del self.live[thread]
        return self.verify_opened is None or self.verified_after_open(request)

    def report(self, exc: BaseException, peer: PeerAddress) -> None:
        """Count an error and pass it to the error policy (which must not raise, but may).

        A network event (:func:`~typedserve.policies.is_disconnect`: a reset, a broken pipe) is
        no error: it is counted in ``disconnects`` and logged as one INFO line instead.
        """
        if isinstance(exc, HandshakeError):
            self.counters.add(HANDSHAKE_FAILURES)
            log_handshake_failure(exc, peer)
            return
        if isinstance(exc, ProxyProtocolError):
            self.counters.add(PROXY_REFUSED)
            log_proxy_refusal(exc, peer)
            return
        if is_disconnect(exc):
            self.counters.add(DISCONNECTS)
            log_disconnect(exc, peer)
            return
        self.counters.add(ERRORS)
        try:
            self._on_error(exc, peer)
        except Exception:
            logger.exception("the error policy itself failed while reporting %r", exc)

    # -- any thread ----------------------------------------------------------------------------

    def running(self) -> list[RequestT]:
        """The requests whose handlers run in this process now, on any thread."""
        running = list(self.live.values())
        serial = self.serial_request
        if serial is not None:
            running.append(serial)
        return running

    def cut_running(self) -> int:
        """Cut every request running in this process; return how many."""
        running = self.running()
        if self.observer is not None:  # their outcome is "cut", whatever their handler does
            self._cut = {id(request): request for request in running}
        for request in running:
            request.cut()
        return len(running)

    def cut_expired(self, now: float) -> None:
        """Cut the running requests whose deadline has passed (a handler reading the socket
        directly is not stopped by the ``rfile`` deadline check)."""
        for request in self.running():
            deadline = request.deadline
            if deadline is not None and deadline <= now:
                request.cut()

    def in_handler(self) -> bool:
        """Whether the calling thread is serving one of this server's requests."""
        return get_ident() in self.live


def _close(request: Request) -> None:
    request.close()
