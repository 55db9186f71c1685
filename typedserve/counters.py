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
"""

from __future__ import annotations

import mmap
import threading
from dataclasses import dataclass
from typing import Final

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
    """

    __slots__ = ("_all", "_map", "_rows", "lock", "row")

    def __init__(self, processes: int = 0) -> None:
        self._rows = 1 + processes
        self._map: mmap.mmap | None = None
        self._all: memoryview | list[int]
        if processes:
            self._map = mmap.mmap(-1, 8 * _FIELDS * self._rows)  # anonymous: MAP_SHARED on Unix
            self._all = memoryview(self._map).cast("q")
        else:
            self._all = [0] * _FIELDS
        self.row: memoryview | list[int] = self._row(0)
        self.lock = threading.Lock()

    @property
    def rows(self) -> int:
        """How many rows (serving processes) the counters hold."""
        return self._rows

    def _row(self, index: int) -> memoryview | list[int]:
        values = self._all
        if isinstance(values, list):  # the one row of an unshared table: itself, not a copy
            return values
        return values[index * _FIELDS : (index + 1) * _FIELDS]

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
        sums = [0] * _FIELDS
        values = self._all
        for base in range(0, self._rows * _FIELDS, _FIELDS):
            for field in range(_FIELDS):
                sums[field] += values[base + field]
        return Totals(*sums)

    def close(self) -> None:
        """Release the mapping (after every process using it has ended)."""
        if isinstance(self.row, memoryview):
            self.row.release()
        if isinstance(self._all, memoryview):
            self._all.release()
        if self._map is not None:
            self._map.close()
