"""``Custom``: frames delimited by a function of your own (a :data:`SplitFunction`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from typedserve.errors import ConfigError, FramingError
from typedserve.framing._assembler import _Assembler, _check_int
from typedserve.framing.base import Framer

__all__ = ["Custom", "SplitFunction"]

SplitFunction: TypeAlias = Callable[[bytes | bytearray], int | None]
"""A :class:`Custom` framing's rule: given the buffered bytes (the first frame starts at index
0), return the length of the first complete frame, or ``None`` if it needs more bytes."""


@dataclass(frozen=True, slots=True)
class Custom:
    """Frames delimited by a function of your own, with no I/O in it.

    ``split(data)`` receives the buffered bytes (a ``bytes`` or ``bytearray`` whose index 0 is
    the start of the next frame) and returns the length of the first complete frame, or
    ``None`` if more bytes are needed. It must not keep or modify ``data``; to reject
    malformed input it raises :class:`~typedserve.errors.FramingError` (which the framer
    passes on and then stays failed); any other exception is a bug and propagates as is.
    Returning a length outside ``1..len(data)`` raises :class:`ValueError`. A frame longer
    than ``max_length``, or ``max_length`` bytes buffered with ``split`` still saying
    ``None``, raises :class:`~typedserve.errors.FramingError`.

    ``split`` is called again only when new bytes arrived, but sees the whole partial frame
    each time: if it scans, a frame fed byte by byte costs up to ``max_length**2 / 2`` steps.
    Keep ``max_length`` modest, or implement :class:`Framing` and :class:`Framer` yourself
    to resume a scan where it stopped, as :class:`Lines` does. The function must be hashable
    (plain functions are) for the framing to be.

    Example: an HTTP/1 header block, ended by an empty line::

        def header_block(data: bytes | bytearray) -> int | None:
            end = data.find(b"\\r\\n\\r\\n")
            return None if end < 0 else end + 4

        framing = Custom(header_block, max_length=8192)
    """

    split: SplitFunction
    max_length: int = 65536

    def __post_init__(self) -> None:
        """Reject a split that is not callable or a max_length below 1."""
        if not callable(self.split):
            raise ConfigError.for_argument("Custom", "split", self.split, "callable")
        _check_int("Custom", "max_length", self.max_length, 1)

    @property
    def max_frame(self) -> int:
        """``max_length``: the longest frame."""
        return self.max_length

    def new_framer(self) -> Framer:
        """A fresh assembler for one connection, calling :attr:`split`."""
        return _SplitFramer(self)


class _SplitFramer(_Assembler):
    __slots__ = ("_spec", "_tried")

    def __init__(self, spec: Custom) -> None:
        super().__init__()
        self._spec = spec
        self._tried = 0  # held bytes split() last answered None for; 0: not asked yet

    def _first_frame(self) -> int | None:
        held, limit = self.buffered, self._spec.max_length
        if held == self._tried:
            return None  # nothing new since split() said None: its answer stands
        self._compact()
        size = self._spec.split(self._data)
        if size is None:
            if held >= limit:
                raise FramingError(
                    f"frame longer than Custom(max_length={limit}): {held} bytes received and "
                    f"{_name(self._spec.split)} finds no complete frame in them",
                    limit=limit,
                    size=held,
                )
            self._tried = held
            return None
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= held:
            raise ValueError(
                f"{_name(self._spec.split)} returned {size!r} for {held} bytes; a Custom split "
                f"must return None or a frame length in 1..{held}"
            )
        if size > limit:
            raise FramingError(
                f"frame of {size} bytes exceeds Custom(max_length={limit})", limit=limit, size=size
            )
        self._tried = 0
        return size

    def _truncated(self) -> FramingError:
        return FramingError(
            f"connection closed inside a frame: {self.buffered} bytes and "
            f"{_name(self._spec.split)} finds no complete frame in them (Custom)",
            size=self.buffered,
        )


def _name(split: SplitFunction) -> str:
    return f"split function {getattr(split, '__qualname__', repr(split))}"
