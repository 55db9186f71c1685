"""``LengthPrefixed``: frames that start with their body's length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from typedserve.errors import ConfigError, FramingError
from typedserve.framing._assembler import _Assembler, _check_int
from typedserve.framing.base import Framer

__all__ = ["LengthPrefixed"]


@dataclass(frozen=True, slots=True)
class LengthPrefixed:
    """Frames are length-prefixed messages; each frame is the prefix and the body.

    The prefix is an unsigned ``prefix_size``-byte integer in ``byteorder``: the body's length.
    With ``includes_prefix=True`` the length counts the prefix too (a frame of 4 + 3 bytes
    says 7, not 3); a length smaller than the prefix is then an error. ``max_length`` bounds
    the *body*: a prefix announcing more raises :class:`~typedserve.errors.FramingError` as
    soon as the prefix is read, before any of the body is buffered. A ``max_length`` larger
    than the prefix can express is harmless: :attr:`max_frame` is the smaller of the two.

    Example::

        framer = LengthPrefixed(prefix_size=2, byteorder="little").new_framer()
        framer.feed(b"\\x02\\x00hi\\x00\\x00")
        assert framer.next_frame() == b"\\x02\\x00hi"
        assert framer.next_frame() == b"\\x00\\x00"     # an empty body is a frame too
    """

    prefix_size: Literal[1, 2, 4, 8] = 4
    byteorder: Literal["big", "little"] = "big"
    max_length: int = 1 << 20
    includes_prefix: bool = False

    def __post_init__(self) -> None:
        """Reject a prefix size, byte order, bound or flag outside its documented values."""
        if isinstance(self.prefix_size, bool) or self.prefix_size not in (1, 2, 4, 8):
            raise ConfigError.for_argument(
                "LengthPrefixed", "prefix_size", self.prefix_size, "1, 2, 4 or 8"
            )
        if self.byteorder not in ("big", "little"):
            raise ConfigError.for_argument(
                "LengthPrefixed", "byteorder", self.byteorder, "'big' or 'little'"
            )
        _check_int("LengthPrefixed", "max_length", self.max_length, 0)
        if not isinstance(self.includes_prefix, bool):
            raise ConfigError.for_argument(
                "LengthPrefixed", "includes_prefix", self.includes_prefix, "a bool"
            )

    @property
    def max_body(self) -> int:
        """The longest body accepted: ``max_length``, or less if the prefix cannot say more."""
        largest = (1 << (8 * self.prefix_size)) - 1
        if self.includes_prefix:
            largest -= self.prefix_size
        return min(self.max_length, largest)

    @property
    def max_frame(self) -> int:
        """``prefix_size + max_body``: the longest frame, prefix included."""
        return self.prefix_size + self.max_body

    def new_framer(self) -> Framer:
        """A fresh length-prefix assembler for one connection."""
        return _PrefixFramer(self)


class _PrefixFramer(_Assembler):
    __slots__ = ("_frame_size", "_spec")

    def __init__(self, spec: LengthPrefixed) -> None:
        super().__init__()
        self._spec = spec
        self._frame_size: int | None = None  # of the frame at _start, once its prefix is read

    def _first_frame(self) -> int | None:
        if self._frame_size is None:
            self._frame_size = self._read_prefix()
            if self._frame_size is None:
                return None
        if self.buffered < self._frame_size:
            return None
        size, self._frame_size = self._frame_size, None
        return size

    def _read_prefix(self) -> int | None:
        spec = self._spec
        width = spec.prefix_size
        if self.buffered < width:
            return None
        value = int.from_bytes(self._data[self._start : self._start + width], spec.byteorder)
        body = value - width if spec.includes_prefix else value
        if body < 0:
            raise FramingError(
                f"length prefix says {value}, less than the {width}-byte prefix itself "
                "(LengthPrefixed(includes_prefix=True))",
                size=value,
            )
        if body > spec.max_body:
            raise FramingError(
                f"frame body of {body} bytes exceeds LengthPrefixed(max_length="
                f"{spec.max_length}); raise max_length if such messages are legitimate",
                limit=spec.max_body,
                size=body,
            )
        return width + body

    def _truncated(self) -> FramingError:
        if self._frame_size is None:
            where = f"a length prefix: {self.buffered} of {self._spec.prefix_size} bytes"
        else:
            where = f"a frame: {self.buffered} of {self._frame_size} bytes"
        return FramingError(
            f"connection closed inside {where} (LengthPrefixed)", size=self.buffered
        )
