"""The supervisor's view of one worker process: its pid, its fds, and what it has said.

A :class:`WorkerProcess` owns three fds in the supervisor's process (a pidfd, the read end of
the worker's status pipe, the write end of its control pipe) from the fork until
:meth:`WorkerProcess.release` once the worker is reaped. Only the supervisor's loop thread uses
it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
from dataclasses import dataclass, field
from typing import Literal

from typedserve.drain import DrainReport
from typedserve.strategies.prefork.messages import Decoder, Malformed, Message, Retire, Stop, encode

__all__ = ["WatchKind", "WorkerProcess"]

WatchKind = Literal["exit", "status"]
"""What a worker's fd tells the supervisor when readable: it exited (pidfd), or it wrote."""

_READ = 4096


@dataclass(eq=False)
class WorkerProcess:
    """One worker, as the supervisor knows it. Selector keys carry ``(kind, worker)``."""

    pid: int
    pidfd: int
    slot: int  # its row of the shared counters
    status: int  # read end of the worker's status pipe
    control: int  # write end of the worker's control pipe
    position: int  # which listener it serves, with reuse_port (see .port_group)
    ready: bool = False
    stopping: bool = False  # told to stop or retire (or being killed): not replaced
    replaces: WorkerProcess | None = None  # the worker to retire once this one is ready
    report: DrainReport | None = None
    eof: bool = False  # the status pipe is closed on the worker's side
    reaped: bool = False
    watched: set[int] = field(default_factory=set)  # its fds registered in the selector
    decoder: Decoder = field(default_factory=Decoder)

    def watch(self, selector: selectors.BaseSelector) -> None:
        """Register the pidfd and the status pipe in ``selector``."""
        kinds: tuple[tuple[int, WatchKind], ...] = ((self.pidfd, "exit"), (self.status, "status"))
        for fd, kind in kinds:
            selector.register(fd, selectors.EVENT_READ, (kind, self))
            self.watched.add(fd)

    def unwatch(self, selector: selectors.BaseSelector, fd: int) -> None:
        """Unregister one of this worker's fds, once: this record, not the selector's map (where
        the number may already belong to a newer worker), says whether it is registered."""
        if fd in self.watched:
            self.watched.discard(fd)
            selector.unregister(fd)

    def read_status(self, selector: selectors.BaseSelector) -> list[Message | Malformed]:
        """Read what the worker wrote (non-blocking) and decode it; at EOF, stop watching."""
        if self.eof or self.reaped:
            return []
        try:
            data = os.read(self.status, _READ)
        except BlockingIOError:
            return []
        if data:
            return self.decoder.feed(data)
        self.unwatch(selector, self.status)
        self.eof = True
        return list(self.decoder.close())

    def tell_stop(self, message: Stop | Retire) -> None:
        """Send ``message`` unless the worker was already told to stop (or is reaped: its
        control fd number may belong to another worker now)."""
        if self.stopping or self.reaped:
            return
        self.stopping = True
        with contextlib.suppress(OSError):  # already gone: its exit is being reported
            os.write(self.control, encode(message))

    def release(self, selector: selectors.BaseSelector) -> None:
        """Once reaped: stop watching and close the supervisor's fds for this worker."""
        self.unwatch(selector, self.pidfd)
        self.unwatch(selector, self.status)
        os.close(self.pidfd)
        os.close(self.status)
        os.close(self.control)
        self.reaped = True

    def close_in_child(self) -> None:
        """In a newly forked sibling: close its copies of this worker's fds."""
        for fd in (self.pidfd, self.status, self.control):
            os.close(fd)
