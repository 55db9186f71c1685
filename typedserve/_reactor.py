"""``Reactor``: a selector with a wake-up fd, the one waiting primitive of every selector loop.

Each registered fd carries the callback to run when it is readable; :meth:`Reactor.wait_once`
waits (up to a timeout) and runs the callbacks of the fds that are ready. The wake-up fd is
registered with its own drain as callback, and the shared
:class:`~typedserve._lifecycle.StopSignal` wakes it, so a stop requested from any thread or a
signal handler ends the wait at once instead of at the next poll.

Used by the server's :class:`~typedserve._loop.SelectorLoop` and by ``typedserve.compat``'s
``serve_forever`` (which calls the stdlib hooks around each wait). One thread waits at a time;
``watch``/``unwatch`` are for that thread too.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable

from typedserve._lifecycle import StopSignal
from typedserve._wakeup import Waker

__all__ = ["Reactor"]


class Reactor:
    """A selector, a wake-up pair, and the callbacks of the fds it watches."""

    def __init__(self, stop: StopSignal) -> None:
        self.stop = stop
        self.waker = Waker()
        self.selector = selectors.DefaultSelector()
        try:
            self.selector.register(self.waker.fileno(), selectors.EVENT_READ, self.waker.drain)
        except BaseException:
            self.close()
            raise
        stop.on_stop(self.waker.wake)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever ``fd`` is readable."""
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (before closing it)."""
        self.selector.unregister(fd)

    def wait_once(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (``None``: until something happens) and run the
        callbacks of the fds that are readable."""
        for key, _ in self.selector.select(timeout):
            key.data()

    def close(self) -> None:
        """Release the selector and the wake-up pair (this process's copies only)."""
        self.stop.forget(self.waker.wake)
        self.selector.close()
        self.waker.close()
