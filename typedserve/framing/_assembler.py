"""What the built-in framers share: the connection's buffer and the check of their arguments."""

from __future__ import annotations

from typing_extensions import Buffer

from typedserve.errors import ConfigError, FramingError, StateError


def _check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError.for_argument(owner, name, value, f"an int >= {minimum}")


class _Assembler:
    """The buffer shared by the built-in framers; subclasses say where the first frame ends.

    Held bytes are ``_data[_start:]``. A chunk fed into an empty buffer is kept as is (no
    copy); more bytes arriving behind a partial frame move the remainder into a bytearray once,
    which then grows in place. Popping advances ``_start``; the consumed prefix is dropped once
    it is most of the buffer, so each byte is moved a bounded number of times.
    """

    __slots__ = ("_data", "_eof", "_error", "_start")

    def __init__(self) -> None:
        self._data: bytes | bytearray = b""
        self._start = 0
        self._eof = False
        self._error: FramingError | None = None

    def feed(self, data: Buffer) -> None:
        """Append ``data``; an empty chunk means end-of-file (see :class:`Framer`)."""
        if self._error is not None:
            return  # spent: holding more of a stream that cannot be resynchronised is waste
        with memoryview(data) as view:
            if not view.nbytes:
                self._eof = True
            elif self._eof:
                raise StateError("feed() after end-of-file: nothing can follow the peer's close")
            elif self._start == len(self._data):
                self._data = data if isinstance(data, bytes) else view.tobytes()
                self._start = 0
            else:
                if isinstance(self._data, bytes):
                    self._data = bytearray(memoryview(self._data)[self._start :])
                    self._start = 0
                self._data += view

    @property
    def buffered(self) -> int:
        """Bytes held: received, not yet returned as a frame."""
        return len(self._data) - self._start

    @property
    def at_eof(self) -> bool:
        """Whether end-of-file was fed."""
        return self._eof

    def next_frame(self) -> bytes | None:
        """The next complete frame, ``None``, or :class:`FramingError` (see :class:`Framer`)."""
        if self._error is not None:
            raise self._error
        try:
            size = self._first_frame() if self.buffered else None
            if size is None and self._eof and self.buffered:
                raise self._truncated()
        except FramingError as error:
            self._error = error
            self._data, self._start = b"", 0
            raise
        return None if size is None else self._pop(size)

    def _first_frame(self) -> int | None:
        """The length of the complete frame at ``_start``, or None; raise if it is too long."""
        raise NotImplementedError

    def _truncated(self) -> FramingError:
        """The error for end-of-file with ``buffered`` bytes and no complete frame."""
        raise NotImplementedError

    def _pop(self, size: int) -> bytes:
        data, start = self._data, self._start
        end = start + size
        if start == 0 and end == len(data) and isinstance(data, bytes):
            frame = data
        else:
            frame = bytes(memoryview(data)[start:end])
        if end == len(data):
            self._data, self._start = b"", 0
        elif isinstance(data, bytearray) and 2 * end >= len(data):
            del data[:end]
            self._start = 0
        else:
            self._start = end
        return frame

    def _compact(self) -> None:
        """Make the held bytes start at index 0 of ``_data`` (for :class:`Custom`)."""
        if self._start:
            if isinstance(self._data, bytes):
                self._data = bytearray(memoryview(self._data)[self._start :])
            else:
                del self._data[: self._start]
            self._start = 0
