"""``Lines``: frames that end with a terminator (``b"\\n"``, ``b"\\r\\n"``...)."""

from __future__ import annotations

from dataclasses import dataclass

from typedserve.errors import ConfigError, FramingError
from typedserve.framing._assembler import _Assembler, _check_int
from typedserve.framing.base import Framer

__all__ = ["Lines"]


@dataclass(frozen=True, slots=True)
class Lines:
    """Frames are lines: each frame is the bytes up to and including ``terminator``.

    ``max_length`` bounds a line, terminator included: once that many bytes are buffered with
    no terminator among them, :meth:`Framer.next_frame` raises
    :class:`~typedserve.errors.FramingError` (without waiting for the rest of the line). A last
    line without terminator at end-of-file is a truncated request and also raises.
    ``terminator`` may be several bytes (``b"\\r\\n"``); a lone ``b"\\n"`` then does not end
    a line.

    Example::

        framer = Lines(max_length=100, terminator=b"\\r\\n").new_framer()
        framer.feed(b"HELO a\\r\\nQUIT\\r\\n")
        assert framer.next_frame() == b"HELO a\\r\\n"
        assert framer.next_frame() == b"QUIT\\r\\n"
    """

    max_length: int = 65536
    terminator: bytes = b"\n"

    def __post_init__(self) -> None:
        """Reject a terminator that is not non-empty bytes, or a max_length that cannot hold it."""
        if not isinstance(self.terminator, bytes) or not self.terminator:
            raise ConfigError.for_argument(
                "Lines", "terminator", self.terminator, "non-empty bytes"
            )
        _check_int("Lines", "max_length", self.max_length, len(self.terminator))

    @property
    def max_frame(self) -> int:
        """``max_length``: the longest line, terminator included."""
        return self.max_length

    def new_framer(self) -> Framer:
        """A fresh line assembler for one connection."""
        return _LineFramer(self)


class _LineFramer(_Assembler):
    __slots__ = ("_lines", "_searched")

    def __init__(self, lines: Lines) -> None:
        super().__init__()
        self._lines = lines
        self._searched = 0  # held bytes already searched, in vain, for the terminator

    def _first_frame(self) -> int | None:
        terminator, limit = self._lines.terminator, self._lines.max_length
        held = self.buffered
        # A terminator may straddle the bytes searched before and the new ones.
        begin = self._start + max(0, self._searched - len(terminator) + 1)
        found = self._data.find(terminator, begin, self._start + min(held, limit))
        if found >= 0:
            self._searched = 0
            return found - self._start + len(terminator)
        if held >= limit:
            raise FramingError(
                f"line longer than Lines(max_length={limit}): {held} bytes received with no "
                f"{terminator!r} among the first {limit}; raise max_length if such lines are "
                "legitimate",
                limit=limit,
                size=held,
            )
        self._searched = held
        return None

    def _truncated(self) -> FramingError:
        return FramingError(
            f"connection closed inside a line: {self.buffered} bytes with no "
            f"{self._lines.terminator!r} at end-of-file (Lines)",
            size=self.buffered,
        )
