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

from typedserve.framing.base import Framer, Framing
from typedserve.framing.custom import Custom, SplitFunction
from typedserve.framing.length_prefixed import LengthPrefixed
from typedserve.framing.lines import Lines

__all__ = ["Custom", "Framer", "Framing", "LengthPrefixed", "Lines", "SplitFunction"]
