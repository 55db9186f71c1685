"""``typedserve.framing``: sans-IO framers give the same frames however the bytes are split."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from typedserve.errors import FramingError, TypedServeError
from typedserve.framing import Custom, Framer, Framing, LengthPrefixed, Lines

pytestmark = pytest.mark.timeout(30)


def drain(framer: Framer) -> list[bytes]:
    """Pop every complete frame (bounded: a frame is at least one byte)."""
    frames: list[bytes] = []
    for _ in range(framer.buffered + 1):
        frame = framer.next_frame()
        if frame is None:
            return frames
        frames.append(frame)
    raise AssertionError("next_frame() returned more frames than there were bytes")


def feed_all(framer: Framer, chunks: Iterable[bytes]) -> list[bytes]:
    """Feed each chunk, popping frames after each, as the server's loop does."""
    frames: list[bytes] = []
    for chunk in chunks:
        framer.feed(chunk)
        frames += drain(framer)
    return frames


def cut(stream: bytes, points: Iterable[int]) -> list[bytes]:
    """``stream`` split at ``points`` (indices, in any order, duplicates allowed)."""
    edges = [0, *sorted(set(points)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges) if b > a]


def netstring(data: bytes | bytearray) -> int | None:
    """A Custom split for ``<decimal length>:<body>,`` (netstrings), rejecting garbage."""
    colon = data.find(b":", 0, 12)
    digits = data[: colon if colon >= 0 else 12]
    if not digits.isdigit() and (digits or colon >= 0):
        raise FramingError(f"bad netstring length {bytes(digits)!r}")
    if colon < 0:
        return None
    size = colon + 1 + int(data[:colon]) + 1
    return size if len(data) >= size else None


def encode(spec: LengthPrefixed, body: bytes) -> bytes:
    length = len(body) + (spec.prefix_size if spec.includes_prefix else 0)
    return length.to_bytes(spec.prefix_size, spec.byteorder) + body


# -- Lines -----------------------------------------------------------------------------------


def test_lines_are_returned_with_their_terminator_once_complete() -> None:
    framer = Lines().new_framer()
    framer.feed(b"GET a\nGET")
    assert framer.next_frame() == b"GET a\n"
    assert framer.next_frame() is None
    assert framer.buffered == 3
    framer.feed(b" b\n")
    assert framer.next_frame() == b"GET b\n"
    assert framer.next_frame() is None
    assert framer.buffered == 0


def test_pipelined_lines_in_one_feed_come_out_one_by_one() -> None:
    framer = Lines().new_framer()
    framer.feed(b"a\nbb\n\nccc\nd")
    assert drain(framer) == [b"a\n", b"bb\n", b"\n", b"ccc\n"]
    assert framer.buffered == 1


def test_a_multibyte_terminator_split_across_feeds_ends_the_line() -> None:
    framer = Lines(terminator=b"\r\n").new_framer()
    assert feed_all(framer, [b"HELO\r", b"\nQUIT\r", b"\r\n"]) == [b"HELO\r\n", b"QUIT\r\r\n"]


def test_a_lone_newline_does_not_end_a_crlf_line() -> None:
    framer = Lines(terminator=b"\r\n").new_framer()
    framer.feed(b"a\nb\r\n")
    assert framer.next_frame() == b"a\nb\r\n"


def test_a_line_of_exactly_max_length_is_accepted() -> None:
    framer = Lines(max_length=8).new_framer()
    framer.feed(b"1234567\n")
    assert framer.next_frame() == b"1234567\n"


def test_an_overlong_line_fails_as_soon_as_the_buffer_proves_it() -> None:
    framer = Lines(max_length=8).new_framer()
    framer.feed(b"1234567")
    assert framer.next_frame() is None  # one more byte could still be the terminator
    framer.feed(b"8")
    with pytest.raises(FramingError, match=r"max_length=8\).*8 bytes") as caught:
        framer.next_frame()  # before end-of-file, before the rest of the line
    assert (caught.value.limit, caught.value.size) == (8, 8)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, TypedServeError)


def test_frames_ahead_of_an_overlong_line_are_served_first_then_the_error_sticks() -> None:
    framer = Lines(max_length=4).new_framer()
    framer.feed(b"ok\n" + b"x" * 10)
    assert framer.next_frame() == b"ok\n"
    with pytest.raises(FramingError) as first:
        framer.next_frame()
    with pytest.raises(FramingError) as again:
        framer.next_frame()
    assert again.value is first.value
    framer.feed(b"\n")  # a spent framer holds nothing more
    assert framer.buffered == 0


def test_a_64k_line_fed_one_byte_at_a_time_completes() -> None:
    line = b"x" * (65536 - 2) + b"\r\n"
    framer = Lines(terminator=b"\r\n").new_framer()
    frames = feed_all(framer, (line[i : i + 1] for i in range(len(line))))
    assert frames == [line]
    assert framer.buffered == 0


def test_a_frame_that_arrives_alone_in_one_chunk_is_not_copied() -> None:
    line = b"y" * 65535 + b"\n"
    framer = Lines().new_framer()
    framer.feed(line)
    assert framer.next_frame() is line


def test_a_reused_receive_buffer_does_not_change_frames_already_fed() -> None:
    receive = bytearray(b"abc")
    framer = Lines().new_framer()
    framer.feed(receive)  # type: ignore[arg-type]  # the built-ins take any bytes-like object
    receive[:] = b"zzz"
    framer.feed(memoryview(b"\n"))  # type: ignore[arg-type]  # likewise
    assert framer.next_frame() == b"abc\n"


# -- end-of-file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "framing", [Lines(), LengthPrefixed(), Custom(netstring)], ids=["lines", "prefixed", "custom"]
)
def test_eof_with_nothing_buffered_is_a_clean_end(framing: Framing) -> None:
    framer = framing.new_framer()
    eof_seen = [framer.at_eof]
    framer.feed(b"")
    eof_seen.append(framer.at_eof)
    assert eof_seen == [False, True]
    assert framer.next_frame() is None
    framer.feed(b"")  # reporting end-of-file twice is harmless
    assert framer.next_frame() is None


def test_eof_after_complete_frames_still_delivers_them() -> None:
    framer = Lines().new_framer()
    framer.feed(b"a\nb\n")
    framer.feed(b"")
    assert drain(framer) == [b"a\n", b"b\n"]
    assert framer.at_eof


@pytest.mark.parametrize(
    ("framing", "stream", "complete", "message"),
    [
        (Lines(), b"a\nb", [b"a\n"], r"inside a line: 1 bytes"),
        (LengthPrefixed(), b"\x00\x00", [], r"inside a length prefix: 2 of 4 bytes"),
        (
            LengthPrefixed(),
            b"\x00\x00\x00\x01x\x00\x00\x00\x03ab",
            [b"\x00\x00\x00\x01x"],
            "6 of 7",
        ),
        (Custom(netstring), b"1:a,3:ab", [b"1:a,"], r"inside a frame: 4 bytes"),
    ],
    ids=["lines", "prefix", "body", "custom"],
)
def test_eof_inside_a_frame_is_an_error_after_the_complete_frames(
    framing: Framing, stream: bytes, complete: list[bytes], message: str
) -> None:
    framer = framing.new_framer()
    framer.feed(stream)
    framer.feed(b"")
    assert drain_until_error(framer) == complete
    with pytest.raises(FramingError, match=message) as caught:
        framer.next_frame()
    assert caught.value.limit is None


def drain_until_error(framer: Framer) -> list[bytes]:
    frames: list[bytes] = []
    for _ in range(framer.buffered):
        try:
            frame = framer.next_frame()
        except FramingError:
            return frames
        assert frame is not None
        frames.append(frame)
    return frames


def test_feeding_after_eof_is_a_caller_bug() -> None:
    framer = Lines().new_framer()
    framer.feed(b"")
    with pytest.raises(RuntimeError, match="after end-of-file"):
        framer.feed(b"late")


# -- LengthPrefixed --------------------------------------------------------------------------


def test_a_length_prefixed_frame_is_its_prefix_and_body() -> None:
    framer = LengthPrefixed(prefix_size=2).new_framer()
    framer.feed(b"\x00\x03ab")
    assert framer.next_frame() is None
    assert framer.buffered == 4
    framer.feed(b"c\x00\x00")
    assert drain(framer) == [b"\x00\x03abc", b"\x00\x00"]


def test_little_endian_prefixes_that_count_themselves() -> None:
    spec = LengthPrefixed(prefix_size=2, byteorder="little", includes_prefix=True)
    framer = spec.new_framer()
    framer.feed(b"\x04\x00hi\x02\x00")
    assert drain(framer) == [b"\x04\x00hi", b"\x02\x00"]


def test_a_prefix_smaller_than_itself_is_rejected() -> None:
    framer = LengthPrefixed(prefix_size=2, includes_prefix=True).new_framer()
    framer.feed(b"\x00\x01")
    with pytest.raises(FramingError, match="says 1, less than the 2-byte prefix"):
        framer.next_frame()


def test_an_oversized_announcement_fails_before_the_body_is_buffered() -> None:
    framer = LengthPrefixed(max_length=1000).new_framer()
    framer.feed((1001).to_bytes(4, "big"))
    with pytest.raises(FramingError, match=r"1001 bytes exceeds LengthPrefixed\(max_length=1000"):
        framer.next_frame()


def test_a_body_of_exactly_max_length_is_accepted() -> None:
    spec = LengthPrefixed(prefix_size=1, max_length=3)
    framer = spec.new_framer()
    framer.feed(b"\x03abc")
    assert framer.next_frame() == b"\x03abc"
    assert spec.max_frame == 4


def test_max_frame_is_bounded_by_what_the_prefix_can_say() -> None:
    assert LengthPrefixed(prefix_size=1).max_frame == 1 + 255
    assert LengthPrefixed(prefix_size=1, includes_prefix=True).max_frame == 255
    assert LengthPrefixed(prefix_size=4).max_frame == 4 + (1 << 20)


# -- Custom ----------------------------------------------------------------------------------


def header_block(data: bytes | bytearray) -> int | None:
    end = data.find(b"\r\n\r\n")
    return None if end < 0 else end + 4


def test_custom_frames_come_from_the_split_function() -> None:
    framer = Custom(header_block, max_length=100).new_framer()
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert feed_all(framer, [head[:20], head[20:] + head[:3]]) == [head]
    assert framer.buffered == 3


def test_custom_split_is_asked_again_only_when_bytes_arrive() -> None:
    calls: list[int] = []

    def counting(data: bytes | bytearray) -> int | None:
        calls.append(len(data))
        return header_block(data)

    framer = Custom(counting).new_framer()
    framer.feed(b"GET")
    for _ in range(3):
        assert framer.next_frame() is None
    framer.feed(b" /\r\n\r\n")
    assert framer.next_frame() == b"GET /\r\n\r\n"
    assert calls == [3, 9]


def test_custom_without_a_frame_in_max_length_bytes_fails() -> None:
    framer = Custom(header_block, max_length=10).new_framer()
    framer.feed(b"x" * 9)
    assert framer.next_frame() is None
    framer.feed(b"x")
    with pytest.raises(FramingError, match=r"Custom\(max_length=10\): 10 bytes.*header_block"):
        framer.next_frame()


def test_custom_frame_longer_than_max_length_fails() -> None:
    framer = Custom(lambda data: len(data), max_length=4).new_framer()
    framer.feed(b"abcde")
    with pytest.raises(FramingError, match=r"5 bytes exceeds Custom\(max_length=4\)"):
        framer.next_frame()


def test_custom_split_rejecting_the_input_spends_the_framer() -> None:
    framer = Custom(netstring).new_framer()
    framer.feed(b"1:a,x:")
    assert framer.next_frame() == b"1:a,"
    with pytest.raises(FramingError, match="bad netstring") as first:
        framer.next_frame()
    with pytest.raises(FramingError) as again:
        framer.next_frame()
    assert again.value is first.value


@pytest.mark.parametrize("answer", [0, 4, -1, True, 1.5])
def test_a_split_answer_outside_the_data_is_a_bug_not_a_framing_error(answer: object) -> None:
    framer = Custom(lambda data: answer).new_framer()  # type: ignore[arg-type,return-value]
    framer.feed(b"abc")
    with pytest.raises(ValueError, match=r"must return None or a frame length in 1\.\.3") as e:
        framer.next_frame()
    assert not isinstance(e.value, FramingError)


# -- the descriptions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "arguments", "bad"),
    [
        (Lines, {"max_length": 0}, "max_length"),
        (Lines, {"max_length": 1, "terminator": b"\r\n"}, "max_length"),
        (Lines, {"terminator": b""}, "terminator"),
        (Lines, {"terminator": "\n"}, "terminator"),
        (Lines, {"max_length": True}, "max_length"),
        (LengthPrefixed, {"prefix_size": 3}, "prefix_size"),
        (LengthPrefixed, {"prefix_size": True}, "prefix_size"),
        (LengthPrefixed, {"byteorder": "native"}, "byteorder"),
        (LengthPrefixed, {"max_length": -1}, "max_length"),
        (LengthPrefixed, {"includes_prefix": 1}, "includes_prefix"),
        (Custom, {"split": b"not callable"}, "split"),
        (Custom, {"split": header_block, "max_length": 0}, "max_length"),
    ],
)
def test_invalid_arguments_are_rejected_by_name(
    kind: Callable[..., Framing], arguments: dict[str, Any], bad: str
) -> None:
    with pytest.raises(ValueError, match=rf"\({bad}=\.\.\.\) must be"):
        kind(**arguments)


@pytest.mark.parametrize(
    "framing",
    [Lines(), LengthPrefixed(), Custom(header_block)],
    ids=["lines", "prefixed", "custom"],
)
def test_framings_are_frozen_hashable_values_that_make_fresh_framers(framing: Framing) -> None:
    assert isinstance(framing, Framing)
    assert hash(framing) == hash(dataclasses.replace(framing))  # type: ignore[type-var]
    assert {framing, dataclasses.replace(framing)} == {framing}  # type: ignore[type-var]
    with pytest.raises(dataclasses.FrozenInstanceError):
        framing.max_length = 1  # type: ignore[attr-defined]
    first, second = framing.new_framer(), framing.new_framer()
    assert isinstance(first, Framer)
    first.feed(b"x")
    assert (first.buffered, second.buffered) == (1, 0)


# -- any split of a stream gives the same frames ---------------------------------------------

splits = st.lists(st.integers(min_value=0, max_value=4096), max_size=40)


@st.composite
def line_streams(draw: st.DrawFn) -> tuple[Lines, list[bytes]]:
    terminator = draw(st.sampled_from([b"\n", b"\r\n", b"END"]))
    bodies = draw(st.lists(st.binary(max_size=40), max_size=12))
    # A body must not end the line early, nor form the terminator with the terminator's start.
    lines = [b + terminator for b in bodies if (b + terminator).find(terminator) == len(b)]
    return Lines(max_length=64, terminator=terminator), lines


@given(line_streams(), splits)
def test_lines_split_anywhere_give_the_same_lines(
    case: tuple[Lines, list[bytes]], points: Sequence[int]
) -> None:
    framing, lines = case
    assert_same_frames(framing, lines, points)


@given(
    st.sampled_from([1, 2, 4, 8]),
    st.sampled_from(["big", "little"]),
    st.booleans(),
    st.lists(st.binary(max_size=60), max_size=12),
    splits,
)
def test_length_prefixed_frames_split_anywhere_give_the_same_frames(
    prefix_size: int, byteorder: str, includes_prefix: bool, bodies: list[bytes], points: list[int]
) -> None:
    spec = LengthPrefixed(
        prefix_size=prefix_size,  # type: ignore[arg-type]  # sampled from the Literal's values
        byteorder=byteorder,  # type: ignore[arg-type]  # likewise
        includes_prefix=includes_prefix,
        max_length=60,
    )
    assert_same_frames(spec, [encode(spec, body) for body in bodies], points)


@given(st.lists(st.binary(max_size=50), max_size=12), splits)
def test_custom_frames_split_anywhere_give_the_same_frames(
    bodies: list[bytes], points: list[int]
) -> None:
    frames = [b"%d:%s," % (len(body), body) for body in bodies]
    assert_same_frames(Custom(netstring, max_length=64), frames, points)


def assert_same_frames(framing: Framing, frames: list[bytes], points: Sequence[int]) -> None:
    stream = b"".join(frames)
    framer = framing.new_framer()
    chunks = cut(stream, (p for p in points if p < len(stream)))
    assert feed_all(framer, [*chunks, b""]) == frames
    assert framer.buffered == 0
    assert framer.at_eof
