"""A self-pipe that wakes a thread blocked in ``selectors`` from any thread or a signal handler."""

from __future__ import annotations

import socket

__all__ = ["Waker"]


class Waker:
    """A connected socket pair: register :meth:`fileno` with a selector; :meth:`wake` wakes it.

    ``wake`` never blocks and is safe from any thread and from signal handlers (a full buffer
    already means "a wake-up is pending"). The owner calls :meth:`drain` after the selector
    reports the fd readable, and :meth:`close` when done.
    """

    __slots__ = ("_reader", "_writer")

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def fileno(self) -> int:
        """The fd to register for ``EVENT_READ``."""
        return self._reader.fileno()

    def wake(self) -> None:
        """Make :meth:`fileno` readable (idempotent, non-blocking)."""
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full: a wake-up is already pending
        except OSError:
            pass  # closed: nobody is waiting any more

    def drain(self) -> None:
        """Consume pending wake-ups."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Release both sockets."""
        self._reader.close()
        self._writer.close()
