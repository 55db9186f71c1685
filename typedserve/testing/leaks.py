"""Leak checks: snapshot the process's fds, threads, children and socket files, compare later.

A :class:`LeakCheck` takes a :class:`ResourceSnapshot` when it starts and, when checked, waits
(a bounded time) for the resources created since to go away, then raises :class:`LeakError`
naming what is left. Linux only: it reads ``/proc/self``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from typedserve.errors import StateError

__all__ = ["LeakCheck", "LeakError", "ResourceSnapshot", "assert_no_leaks"]

_PROC = Path("/proc/self")


class LeakError(AssertionError):
    """Resources created during a :class:`LeakCheck` were still there at the end.

    ``leaks`` maps each kind (``"fds"``, ``"threads"``, ``"children"``, ``"socket_files"``) to
    a description of each leaked resource; the message lists them all.
    """

    def __init__(self, leaks: dict[str, list[str]]) -> None:
        self.leaks = leaks
        lines = ["resources leaked:"]
        for kind, items in leaks.items():
            lines.append(f"  {kind} ({len(items)}): " + ", ".join(items))
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ResourceSnapshot:
    """The resources of this process at one moment.

    ``fds`` maps each open fd to what it points at (``socket:[inode]``, a path...);
    ``threads`` are the live :class:`threading.Thread` objects; ``children`` the pids of child
    processes, zombies included (from ``/proc/self/task/*/children``); ``socket_files`` the
    Unix socket files found directly in the directories the snapshot was asked to watch.
    """

    fds: dict[int, str] = field(default_factory=dict)
    threads: frozenset[threading.Thread] = frozenset()
    children: frozenset[int] = frozenset()
    socket_files: frozenset[str] = frozenset()

    @classmethod
    def take(cls, socket_dirs: Iterable[str | os.PathLike[str]] = ()) -> ResourceSnapshot:
        """Snapshot the current process, looking for socket files in ``socket_dirs``."""
        return cls(
            fds=_open_fds(),
            threads=frozenset(t for t in threading.enumerate() if t.is_alive()),
            children=_children(),
            socket_files=frozenset(_socket_files(socket_dirs)),
        )

    def new_since(self, baseline: ResourceSnapshot) -> dict[str, list[str]]:
        """What this snapshot holds that ``baseline`` did not, by kind (empty kinds omitted).

        An fd counts as new when its number was not open in ``baseline`` or now points at
        something else (it was closed and the number reused).
        """
        found = {
            "fds": [
                f"{fd} -> {target}"
                for fd, target in sorted(self.fds.items())
                if baseline.fds.get(fd) != target
            ],
            "threads": sorted(repr(t) for t in self.threads - baseline.threads),
            "children": [str(pid) for pid in sorted(self.children - baseline.children)],
            "socket_files": sorted(self.socket_files - baseline.socket_files),
        }
        return {kind: items for kind, items in found.items() if items}


class LeakCheck:
    """Assert that a block of code releases every fd, thread, child and socket file it made.

    Use it as a context manager (the check runs when the block ends without an exception) or
    call :meth:`start` and :meth:`check` yourself. Threads started in the block get up to
    ``wait`` seconds to finish (they are joined); other resources are re-checked a bounded
    number of times within the same ``wait``, since a server may close them on another thread
    just after the block ends. ``socket_dirs`` are the directories to watch for Unix socket
    files. Resources in the baseline are never reported, even if they change meanwhile.

    Example::

        with LeakCheck(socket_dirs=[tmp]):
            with serve_in_thread(make_server()) as server:
                ...
    """

    def __init__(
        self, *, socket_dirs: Iterable[str | os.PathLike[str]] = (), wait: float = 5.0
    ) -> None:
        self.socket_dirs = tuple(socket_dirs)
        self.wait = wait
        self.baseline: ResourceSnapshot | None = None

    def start(self) -> Self:
        """Take the baseline snapshot."""
        self.baseline = ResourceSnapshot.take(self.socket_dirs)
        return self

    def leaks(self) -> dict[str, list[str]]:
        """What was created since :meth:`start` and is still there (no waiting)."""
        if self.baseline is None:
            raise StateError("LeakCheck.start() was not called")
        return ResourceSnapshot.take(self.socket_dirs).new_since(self.baseline)

    def check(self) -> None:
        """Wait up to ``wait`` seconds for new resources to go away; raise :class:`LeakError`."""
        if self.baseline is None:
            raise StateError("LeakCheck.start() was not called")
        deadline = time.monotonic() + self.wait
        for thread in set(threading.enumerate()) - self.baseline.threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        pause = threading.Event()  # never set: a bounded, interruptible wait between checks
        for _ in range(_RECHECKS):
            leaks = self.leaks()
            remaining = deadline - time.monotonic()
            if not leaks or remaining <= 0:
                break
            pause.wait(min(remaining, self.wait / _RECHECKS))
        if leaks:
            raise LeakError(leaks)

    def __enter__(self) -> Self:
        """Take the baseline."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Check, unless the block raised (its own error matters more than a leak)."""
        if exc_type is None:
            self.check()


_RECHECKS = 50


@contextmanager
def assert_no_leaks(
    *, socket_dirs: Iterable[str | os.PathLike[str]] = (), wait: float = 5.0
) -> Iterator[LeakCheck]:
    """A :class:`LeakCheck` as a ``with`` block: raise :class:`LeakError` if the block leaks."""
    with LeakCheck(socket_dirs=socket_dirs, wait=wait) as check:
        yield check


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir(_PROC / "fd"):
        with contextlib.suppress(OSError):  # closed meanwhile, e.g. the fd listdir itself used
            fds[int(name)] = os.readlink(_PROC / "fd" / name)
    return fds


def _children() -> frozenset[int]:
    pids: set[int] = set()
    for task in (_PROC / "task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended while we looked
            pids.update(int(pid) for pid in (task / "children").read_text().split())
    return frozenset(pids)


def _socket_files(dirs: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    for directory in dirs:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                    yield entry.path
            except FileNotFoundError:
                continue
