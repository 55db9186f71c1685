"""Framing: how a stream handler's requests are delimited, as sans-IO assemblers.

The model
---------
A stream handler may declare how its requests are framed::

    class Echo(StreamHandler):
        framing: ClassVar[Framing] = Lines(max_length=4096)

        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

A :class:`Framing` is a frozen, hashable description: data, like the config. For each
connection the server asks it for a fresh :class:`Framer`, an incremental assembler that does
no I/O: the loop ``feed``\\ s it whatever bytes ``recv`` returned, in whatever pieces they came,
and pops complete frames with ``next_frame``; ``feed(b"")`` says the peer closed. A frame is
exactly the bytes the socket delivered for one request (a line *with* its terminator, a
length-prefixed message *with* its prefix), so a handler reading its ``rfile`` sees the same
bytes whether the server assembled the frame first or not. ``Framing.max_frame`` bounds a
frame, so the loop can size its reads and bound the memory one connection may hold.

Nothing here touches a socket: every framer is tested with plain byte strings and works under
any I/O model (the selector loop, asyncio, a test)::

    framer = Lines().new_framer()
    framer.feed(b"GET a\\nGET")
    assert framer.next_frame() == b"GET a\\n"
    assert framer.next_frame() is None          # b"GET" waits for the rest of its line
    framer.feed(b" b\\n")
    assert framer.next_frame() == b"GET b\\n"

Errors
------
Framers raise :class:`~typedserve.errors.FramingError` from ``next_frame``, never from
``feed``, and only once the complete frames ahead of the fault have been popped, so a request
pipelined before garbage is still served. There are two faults:

* a frame longer than its maximum, raised as soon as the buffered bytes prove it (not at
  end-of-file), so a peer cannot make the server hold much more than ``max_frame`` bytes as long
  as the loop calls ``next_frame`` after each ``feed``;
* end-of-file inside a frame (bytes buffered, no complete frame in them): the request was
  truncated. End-of-file with nothing buffered is a clean end: ``next_frame`` returns ``None``
  and ``at_eof`` is true.

After an error the framer is spent: ``next_frame`` raises the same error again, ``feed``
discards its input and ``buffered`` is 0. A byte stream cannot be resynchronised; close the
connection. Feeding data after end-of-file is a bug in the caller
(:class:`~typedserve.errors.StateError`, a :class:`RuntimeError`).

Cost
----
The built-in framers do work proportional to the bytes fed, however they are split: a line
fed one byte at a time is searched once, not rescanned on every feed. A frame that arrives
alone as one ``bytes`` chunk is returned as that very object, without a copy; otherwise each
frame is copied once out of the connection's buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from typing_extensions import Buffer

from typedserve.errors import ConfigError, FramingError, StateError

__all__ = ["Custom", "Framer", "Framing", "LengthPrefixed", "Lines", "SplitFunction"]


@runtime_checkable
class Framer(Protocol):
    """One connection's incremental frame assembler (sans-IO): bytes in, frames out.

    Contract: the owner (the server's loop, on one thread at a time) calls :meth:`feed` with
    each chunk received, then :meth:`next_frame` until it returns ``None``; ``feed(b"")``
    reports end-of-file. Errors surface from :meth:`next_frame` as
    :class:`~typedserve.errors.FramingError`, after the frames ahead of the fault (see the
    module docstring). A framer is not thread-safe and serves one connection.

    Example::

        framer = LengthPrefixed(prefix_size=2).new_framer()
        framer.feed(b"\\x00\\x03ab")
        assert framer.next_frame() is None and framer.buffered == 4
        framer.feed(b"c")
        assert framer.next_frame() == b"\\x00\\x03abc"
    """

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer; ``b""`` means the peer closed (end-of-file)."""
        ...

    def next_frame(self) -> bytes | None:
        """Pop the next complete frame, or return ``None`` if none is complete yet.

        Raises :class:`~typedserve.errors.FramingError` when the next frame exceeds its
        maximum, or at end-of-file with a partial frame buffered.
        """
        ...

    @property
    def buffered(self) -> int:
        """How many bytes are held: received, not yet returned as a frame."""
        ...

    @property
    def at_eof(self) -> bool:
        """Whether ``feed(b"")`` was called: the peer will send nothing more."""
        ...


@runtime_checkable
class Framing(Protocol):
    """How a handler's requests are framed: a frozen, hashable description.

    A stream handler class declares it as ``framing: ClassVar[Framing]``. The server calls
    :meth:`new_framer` once per connection (a framer is per-connection state) and reads
    :attr:`max_frame` to size its reads and bound the memory one connection may hold.
    Implementations must be immutable and hashable, like the built-ins
    :class:`Lines`, :class:`LengthPrefixed` and :class:`Custom`.

    Example::

        class Chat(StreamHandler):
            framing: ClassVar[Framing] = Lines(max_length=1024)
    """

    @property
    def max_frame(self) -> int:
        """The largest frame, in bytes, prefix or terminator included."""
        ...

    def new_framer(self) -> Framer:
        """A fresh framer for one connection."""
        ...


SplitFunction: TypeAlias = Callable[[bytes | bytearray], int | None]
"""A :class:`Custom` framing's rule: given the buffered bytes (the first frame starts at index
0), return the length of the first complete frame, or ``None`` if it needs more bytes."""


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
