"""``Counters``: request counters that survive ``fork``, one row per serving process.

The counters live in an anonymous shared mapping created before any fork, so worker processes
and forked children write into memory their parent reads (a server whose strategy serves in
its own process only keeps them in a plain list). Each process writes only its own
row (row 0 is the server's process; :meth:`Counters.use_row` switches a child to its slot), so
no cross-process lock is needed; within one process, fields written from several threads are
updated under :attr:`Counters.lock`. A reader sums the rows (:meth:`Counters.totals`).

Every accepted request ends in exactly one of ``refused``, ``rejected`` or ``finished``, so the
requests in flight are ``accepted - refused - rejected - finished`` summed over the rows.
``errors`` and ``disconnects`` say how some of them ended (a handler bug, a network event).

With ``durations`` (the bucket bounds of the request-duration histogram,
``metrics.duration_histogram``), each row also has one column per bucket (the requests whose
duration fell in it, not cumulative; the last is above every bound) and one for the sum of the
durations in nanoseconds, after the fields: :meth:`Counters.observe_duration` writes this
process's row, :meth:`Counters.totals` sums them into :class:`DurationTotals`. Without it the
rows are the fields alone, and the hot path is the same.
"""

from __future__ import annotations

import mmap
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from typedserve.errors import StateError

__all__ = [
    "ACCEPTED",
    "DISCONNECTS",
    "ERRORS",
    "FINISHED",
    "HANDSHAKE_FAILURES",
    "PROXY_REFUSED",
    "REFUSED",
    "REJECTED",
    "SLOW",
    "Counters",
    "DurationTotals",
    "Totals",
]

ACCEPTED: Final = 0
"""Requests received from the transport (written by the loop thread)."""
REFUSED: Final = 1
"""Requests the access policy refused (loop thread)."""
REJECTED: Final = 2
"""Requests turned away by the overload policy or a drain (loop thread)."""
ERRORS: Final = 3
"""Requests whose handler raised, or that were lost with a process (under the lock)."""
SLOW: Final = 4
"""Connections closed for sending nothing within ``timeouts.first_byte`` (under the lock)."""
FINISHED: Final = 5
"""Requests whose serving ended, successfully or not (under the lock)."""
DISCONNECTS: Final = 6
"""Requests ended by a network event rather than a handler bug: the peer reset the connection,
or a write found it closed (``BrokenPipeError``, e.g. after a drain cut it) (under the lock)."""
HANDSHAKE_FAILURES: Final = 7
"""Connections whose TLS handshake failed or timed out, before any handler (under the lock)."""
PROXY_REFUSED: Final = 8
"""Connections refused at their PROXY protocol header (missing, malformed, from an untrusted
upstream, or too slow), before any handler (under the lock)."""
_FIELDS: Final = 9


@dataclass(frozen=True, slots=True)
class DurationTotals:
    """The request-duration histogram summed over every row (seconds)."""

    bounds: tuple[float, ...]
    """The buckets' upper bounds, increasing (``metrics.buckets``); ``+Inf`` is implied."""
    counts: tuple[int, ...]
    """Requests per bucket, not cumulative: ``counts[i]`` took at most ``bounds[i]`` seconds and
    more than ``bounds[i - 1]``; the last (one more than ``bounds``) took longer than them all."""
    sum: float
    """The durations added up, in seconds."""

    @property
    def count(self) -> int:
        """How many requests were observed."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, requests that took at most that long)`` per bucket, as Prometheus
        exposes them, ending with ``(inf, count)``."""
        pairs, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


@dataclass(frozen=True, slots=True)
class Totals:
    """The counters summed over every row."""

    accepted: int
    refused: int
    rejected: int
    errors: int
    slow_clients: int
    finished: int
    disconnects: int
    handshake_failures: int
    proxy_refused: int
    durations: DurationTotals | None = field(default=None, kw_only=True)
    """The request-duration histogram; ``None`` when the counters have none."""

    @property
    def in_flight(self) -> int:
        """Requests accepted and not yet refused, rejected or finished."""
        return self.accepted - self.refused - self.rejected - self.finished


class Counters:
    """Counters with ``1 + processes`` rows (see the module docstring).

    ``row`` is this process's row, indexed by the field constants
    (``counters.row[ACCEPTED] += 1``): a writable ``memoryview`` of signed 64-bit integers in
    the shared mapping. With ``processes=0`` (every request is served in this process) there is
    no mapping and the row is a plain ``list``: sharing would buy nothing, and the server
    updates two fields per request, each about twice as fast on a list.

    ``durations``: the bucket bounds of a request-duration histogram whose columns follow the
    fields in every row (see the module docstring); ``None``: no histogram.
    """

    __slots__ = ("_all", "_bounds", "_map", "_rows", "_sum_column", "_width", "lock", "row")

    def __init__(self, processes: int = 0, durations: Sequence[float] | None = None) -> None:
        self._rows = 1 + processes
        self._bounds = tuple(durations) if durations is not None else None
        # Columns after the fields: a bucket per bound, the one above them all, the sum (ns).
        self._sum_column = _FIELDS + len(self._bounds) + 1 if self._bounds is not None else 0
        self._width = self._sum_column + 1 if self._bounds is not None else _FIELDS
        self._map: mmap.mmap | None = None
        self._all: memoryview | list[int]
        if processes:
            size = 8 * self._width * self._rows
            self._map = mmap.mmap(-1, size)  # anonymous: MAP_SHARED on Unix
            self._all = memoryview(self._map).cast("q")
        else:
            self._all = [0] * self._width
        self.row: memoryview | list[int] = self._row(0)
        self.lock = threading.Lock()

    @property
    def rows(self) -> int:
        """How many rows (serving processes) the counters hold."""
        return self._rows

    @property
    def durations(self) -> tuple[float, ...] | None:
        """The bucket bounds of the request-duration histogram; ``None``: it has none."""
        return self._bounds

    def _row(self, index: int) -> memoryview | list[int]:
        values = self._all
        if isinstance(values, list):  # the one row of an unshared table: itself, not a copy
            return values
        return values[index * self._width : (index + 1) * self._width]

    def use_row(self, index: int) -> None:
        """Write row ``index`` from now on (called in a child process right after ``fork``).

        Also replaces the lock, which another thread of the parent may have held at the fork.
        """
        if not 0 <= index < self._rows:
            raise IndexError(f"row {index} out of range: these counters have {self._rows} rows")
        self.row = self._row(index)
        self.lock = threading.Lock()

    def add(self, field: int, amount: int = 1) -> None:
        """Add to a field of this process's row under the lock (for handler threads)."""
        with self.lock:
            self.row[field] += amount

    def observe_duration(self, seconds: float) -> None:
        """Count one request that took ``seconds`` in this process's row of the histogram
        (any thread; under the lock). Only counters made with ``durations`` have one."""
        bounds = self._bounds
        if bounds is None:
            raise StateError("these counters have no duration histogram (durations=None)")
        column = _FIELDS + bisect_left(bounds, seconds)  # bisect_left: a bound is "at most"
        nanoseconds = int(seconds * 1e9) if seconds > 0 else 0
        lock = self.lock
        lock.acquire()
        row = self.row
        row[column] += 1
        row[self._sum_column] += nanoseconds
        lock.release()

    def settle(self, index: int, lost_errors: bool = True) -> int:
        """Mark the requests left in flight in row ``index`` as finished; return how many.

        Used by a parent after a child process that wrote row ``index`` died without finishing
        them (killed, crashed): they are counted as finished and, if ``lost_errors``, as errors.
        """
        row = self._row(index)
        lost = row[ACCEPTED] - row[REFUSED] - row[REJECTED] - row[FINISHED]
        if lost > 0:
            row[FINISHED] += lost
            if lost_errors:
                row[ERRORS] += lost
        return max(lost, 0)

    def totals(self) -> Totals:
        """Sum every row (a snapshot; rows written concurrently may be a moment apart)."""
        width = self._width
        sums = [0] * width
        values = self._all
        for base in range(0, self._rows * width, width):
            for column in range(width):
                sums[column] += values[base + column]
        durations = None
        if self._bounds is not None:
            counts = tuple(sums[_FIELDS : self._sum_column])
            durations = DurationTotals(self._bounds, counts, sums[self._sum_column] / 1e9)
        return Totals(*sums[:_FIELDS], durations=durations)

    def close(self) -> None:
        """Release the mapping (after every process using it has ended)."""
        if isinstance(self.row, memoryview):
            self.row.release()
        if isinstance(self._all, memoryview):
            self._all.release()
        if self._map is not None:
            self._map.close()
