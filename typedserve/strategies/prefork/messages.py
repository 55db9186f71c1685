"""The supervisor <-> worker messages of ``Prefork``, sans-IO: values, bytes, and back.

Three channels, each a pipe (written with one ``os.write`` per message, so a message is never
interleaved with another; all are shorter than ``PIPE_BUF``):

- **status** (worker -> supervisor): :class:`Ready` once the worker serves, then
  :class:`Report` with its drain's outcome, its last words before it exits.
- **control** (supervisor -> worker): :class:`Stop` (drain, with the supervisor's grace or the
  worker's configured one) or :class:`Retire` (drain, leaving the shared listener to the worker
  that replaces it). The worker acts on the first message; EOF means the supervisor died.
- **wake-ups** (any thread or signal handler of the supervisor's process -> its select loop):
  one byte per :class:`Wakeup`.

Status and control messages are ASCII lines, a word and its arguments::

    ready
    report <completed> <cut> <backlog_refused>
    stop
    stop <grace>
    retire

:func:`encode` turns a message into its line; a :class:`Decoder` turns the bytes read from a
pipe, in chunks of any size, back into messages: it keeps a partial line until its end
arrives, and reports a line it cannot read as :class:`Malformed` instead of raising, so a
garbled pipe is logged, never fatal. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TypeAlias

from typedserve.drain import DrainReport

__all__ = [
    "Decoder",
    "Malformed",
    "Message",
    "Ready",
    "Report",
    "Retire",
    "Stop",
    "Wakeup",
    "decode_line",
    "decode_wakeups",
    "encode",
]

_MAX_LINE = 256  # every valid line is far shorter: a longer one is garbage, not kept forever


@dataclass(frozen=True, slots=True)
class Ready:
    """Worker -> supervisor: the worker's loop is about to run; it accepts from now on."""


@dataclass(frozen=True, slots=True)
class Report:
    """Worker -> supervisor: how the worker's drain went (sent just before it exits)."""

    report: DrainReport


@dataclass(frozen=True, slots=True)
class Stop:
    """Supervisor -> worker: stop accepting and drain within ``grace`` seconds (``None``: the
    worker's ``config.shutdown.grace``)."""

    grace: float | None = None


@dataclass(frozen=True, slots=True)
class Retire:
    """Supervisor -> worker: drain and exit, leaving the listener to the worker replacing it
    (a rolling restart): take nothing more from the shared backlog."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line a :class:`Decoder` could not read (``line`` without its newline), and why."""

    line: bytes
    reason: str


Message: TypeAlias = Ready | Report | Stop | Retire
"""Every message of the status and control pipes."""


class Wakeup(enum.Enum):
    """Why the supervisor's select loop is woken: one byte each on its wake-up pipe."""

    RESTART = b"H"
    """Start a rolling restart (SIGHUP, :meth:`Prefork.restart_workers`)."""
    STOP = b"S"
    """A stop was requested: look at ``host.stopping``."""


def encode(message: Message) -> bytes:
    """The line that carries ``message``, newline included.

    Example: ``encode(Stop(2.5)) == b"stop 2.5\\n"``.
    """
    if isinstance(message, Ready):
        return b"ready\n"
    if isinstance(message, Report):
        report = message.report
        return b"report %d %d %d\n" % (report.completed, report.cut, report.backlog_refused)
    if isinstance(message, Retire):
        return b"retire\n"
    if message.grace is None:
        return b"stop\n"
    return b"stop %s\n" % repr(float(message.grace)).encode("ascii")


class Decoder:
    """Incremental decoder of a status or control pipe: :meth:`feed` it what ``os.read``
    returned; it returns the messages (and :class:`Malformed` lines) completed so far.

    Example::

        decoder = Decoder()
        decoder.feed(b"ready\\nrep")           # [Ready()]
        decoder.feed(b"ort 3 0 1\\n")          # [Report(DrainReport(3, 0, 1))]
        decoder.close()                        # [] (nothing pending)
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skipping = False  # inside a line too long to be a message, reported already

    def feed(self, data: bytes) -> list[Message | Malformed]:
        """Decode every complete line in what was fed so far; keep the rest."""
        self._pending += data
        out: list[Message | Malformed] = []
        while (end := self._pending.find(b"\n")) >= 0:
            line = bytes(self._pending[:end])
            del self._pending[: end + 1]
            if self._skipping:
                self._skipping = False
            else:
                out.append(decode_line(line))
        if len(self._pending) > _MAX_LINE:
            if not self._skipping:
                out.append(Malformed(bytes(self._pending[:_MAX_LINE]), "line too long"))
            self._skipping = True
            self._pending.clear()
        return out

    def close(self) -> list[Malformed]:
        """At EOF: a partial line still pending is :class:`Malformed` (the writer died)."""
        skipped, self._skipping = self._skipping, False
        if not self._pending or skipped:
            self._pending.clear()
            return []
        line, self._pending = bytes(self._pending), bytearray()
        return [Malformed(line, "incomplete line at end of stream")]


def decode_line(line: bytes) -> Message | Malformed:
    """One line (without its newline) as a message, or :class:`Malformed`."""
    words = line.split()
    match words:
        case [b"ready"]:
            return Ready()
        case [b"retire"]:
            return Retire()
        case [b"stop"]:
            return Stop()
        case [b"stop", grace]:
            return _stop(line, grace)
        case [b"report", completed, cut, refused]:
            counts = [_count(word) for word in (completed, cut, refused)]
            if None in counts:
                return Malformed(line, "report counts must be non-negative integers")
            return Report(DrainReport(*(n for n in counts if n is not None)))
    return Malformed(line, "unknown message")


def decode_wakeups(data: bytes) -> list[Wakeup | Malformed]:
    """The wake-ups in ``data`` (one byte each), in order; an unknown byte is
    :class:`Malformed`."""
    out: list[Wakeup | Malformed] = []
    for value in data:
        byte = bytes((value,))
        try:
            out.append(Wakeup(byte))
        except ValueError:
            out.append(Malformed(byte, "unknown wake-up"))
    return out


def _stop(line: bytes, word: bytes) -> Stop | Malformed:
    try:
        grace = float(word)
    except ValueError:
        return Malformed(line, "grace is not a number")
    if math.isnan(grace):
        return Malformed(line, "grace is not a number")
    return Stop(grace)


def _count(word: bytes) -> int | None:
    return int(word) if word.isdigit() else None
