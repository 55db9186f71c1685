"""The stdlib ``socketserver`` loops, run on the core's :class:`~typedserve._reactor.Reactor`.

``BaseServer.serve_forever`` and ``BaseServer.handle_request`` each make one :class:`HookLoop`
for the call, as the stdlib makes one ``_ServerSelector`` per call. A ``HookLoop`` is a
``Reactor`` (the waiting primitive the core's ``SelectorLoop`` is built on) that waits on a
new ``typedserve.compat._ServerSelector`` and watches the server's ``fileno()``; it calls the
server's hooks in the order of CPython's ``socketserver`` (3.11 to 3.13):

- :meth:`HookLoop.serve_forever`: while no shutdown is requested, wait up to
  ``poll_interval``; if a shutdown was requested meanwhile, stop at once (bpo-35017: a ready
  request is left alone and ``service_actions`` is not called); otherwise call
  ``_handle_request_noblock()`` if the server's fd was ready, then ``service_actions()``;
- :meth:`HookLoop.handle_request`: wait until the fd is ready and return
  ``_handle_request_noblock()``, or return ``handle_timeout()`` once ``timeout`` has passed
  (early wake-ups wait again for what is left, measured with the public module's ``time``,
  the stdlib's ``time.monotonic``, so patching ``socketserver.time`` reaches it).

The wake-up is the core's too: the Reactor listens to a
:class:`~typedserve._lifecycle.StopSignal`. ``serve_forever`` passes one made for the call,
which ``shutdown()`` and any assignment of a true value to ``_BaseServer__shutdown_request``
request
(from any thread or a signal handler), so the wait ends at once instead of at the next poll.
A signal landing just before ``poll()`` starts is the exception: Python runs its handler, and
so the wake-up, only when that wait ends (as the stdlib always does).
``handle_request`` passes :data:`~typedserve._lifecycle.NEVER`: as in the stdlib, it does not
listen for a shutdown.

Resources and threads: a ``HookLoop`` holds its selector and the Reactor's wake-up socket pair
(two file descriptors) only for the call that made it, on that call's thread, and closes them
when the call returns or raises. The server's listening socket is the server's; the loop only
watches its fd.
"""

from __future__ import annotations

import selectors
from typing import TYPE_CHECKING, Protocol

import typedserve.compat as _ss  # the public module: its globals are patch targets
from typedserve._reactor import Reactor

if TYPE_CHECKING:
    from collections.abc import Callable

    from typedserve._lifecycle import StopSignal

__all__ = ["HookLoop", "LoopHooks"]


class LoopHooks(Protocol):
    """What the loops call on a server (``BaseServer`` and every subclass provide them)."""

    def fileno(self) -> int:
        """The fd to wait on, read once per call, as the stdlib's ``selector.register``."""

    def _handle_request_noblock(self) -> None:
        """Handle one request; the fd was reported readable."""

    def service_actions(self) -> None:
        """Called after every wait of ``serve_forever`` that did not end in a shutdown."""

    def handle_timeout(self) -> None:
        """Called when ``handle_request`` saw no request within its timeout."""


class HookLoop(Reactor):
    """One ``serve_forever`` or ``handle_request`` call of ``server``, on a Reactor woken by
    ``stop`` (see the module docstring). Use it as a context manager: leaving closes it."""

    def __init__(self, server: LoopHooks, stop: StopSignal) -> None:
        super().__init__(stop)
        try:
            self._wait_on(_ss._ServerSelector())  # the public module's: patching it works
            self.server = server
            self._ready = False
            self.watch(server.fileno(), self._server_ready)
        except BaseException:
            self.close()
            raise

    def _wait_on(self, selector: selectors.BaseSelector) -> None:
        """Move the wake-up fd to ``selector`` and wait on it from now on.

        The Reactor makes a ``DefaultSelector``; the stdlib waits on ``_ServerSelector``, and
        code patches that attribute to choose the selector (see ``DIFFERENCES.md``).
        """
        default = self.selector
        # Reactor infers its attribute as DefaultSelector; it only uses the BaseSelector API.
        self.selector = selector  # type: ignore[assignment]
        default.close()
        selector.register(self.waker.fileno(), selectors.EVENT_READ, self.waker.drain)

    def __enter__(self) -> HookLoop:
        """Return the loop itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the loop (its selector and wake-up pair)."""
        self.close()

    def _server_ready(self) -> None:
        self._ready = True

    def _wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (until a wake-up, or the server's fd is readable);
        whether the server's fd is readable."""
        self._ready = False
        self.wait_once(timeout)
        return self._ready

    def serve_forever(self, poll_interval: float, shutdown_requested: Callable[[], object]) -> None:
        """The body of the stdlib's ``serve_forever`` loop, until ``shutdown_requested()``.

        The caller clears and sets ``__is_shut_down`` and resets the flag around it, as the
        stdlib does around its ``with _ServerSelector()`` block.
        """
        server = self.server
        while not shutdown_requested():
            ready = self._wait(poll_interval)
            # bpo-35017: shutdown() called during the wait, exit immediately.
            if shutdown_requested():
                break
            if ready:
                server._handle_request_noblock()
            server.service_actions()

    def handle_request(self, timeout: float | None, deadline: float | None) -> None:
        """Wait up to ``timeout`` seconds (``None``: for ever), until ``deadline`` on the
        public module's ``time()`` clock, for one request and handle it; return what
        ``_handle_request_noblock()`` or ``handle_timeout()`` returns."""
        server = self.server
        while True:
            if self._wait(timeout):
                return server._handle_request_noblock()
            if deadline is not None:
                timeout = deadline - _ss.time()
                if timeout < 0:
                    return server.handle_timeout()  # the hook's value, as in the stdlib
