"""The framing seam: a :class:`Framing` describes how requests are delimited, and makes one
:class:`Framer` per connection to assemble them (see :mod:`typedserve.framing`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Framer", "Framing"]


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
    :class:`~typedserve.framing.Lines`, :class:`~typedserve.framing.LengthPrefixed` and
    :class:`~typedserve.framing.Custom`.

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
