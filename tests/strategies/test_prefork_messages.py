"""The Prefork supervisor <-> worker messages, sans-IO: plain bytes in, values out."""

from __future__ import annotations

import pytest

from typedserve.drain import DrainReport
from typedserve.strategies.prefork.messages import (
    Decoder,
    Malformed,
    Message,
    Ready,
    Report,
    Retire,
    Stop,
    Wakeup,
    decode_line,
    decode_wakeups,
    encode,
)

EVERY_KIND: list[tuple[Message, bytes]] = [
    (Ready(), b"ready\n"),
    (Report(DrainReport(completed=3, cut=1, backlog_refused=2)), b"report 3 1 2\n"),
    (Stop(), b"stop\n"),
    (Stop(2.5), b"stop 2.5\n"),
    (Stop(0), b"stop 0.0\n"),
    (Retire(), b"retire\n"),
]


@pytest.mark.parametrize(("message", "line"), EVERY_KIND, ids=repr)
def test_each_message_is_one_line_and_decodes_back(message: Message, line: bytes) -> None:
    assert encode(message) == line
    assert Decoder().feed(line) == [message]


def test_a_grace_survives_the_round_trip_exactly() -> None:
    for grace in (0.1, 1 / 3, 1e-9, 12345.678, float("inf")):
        assert Decoder().feed(encode(Stop(grace))) == [Stop(grace)]


def test_lines_split_anywhere_are_kept_until_complete() -> None:
    stream = b"".join(line for _, line in EVERY_KIND)
    for size in (1, 2, 3, 7, len(stream)):
        decoder = Decoder()
        out: list[Message | Malformed] = []
        for start in range(0, len(stream), size):
            out += decoder.feed(stream[start : start + size])
        assert out == [message for message, _ in EVERY_KIND]
        assert decoder.close() == []


def test_several_lines_in_one_chunk_come_out_in_order() -> None:
    assert Decoder().feed(b"ready\nreport 1 0 0\nstop 1.0\n") == [
        Ready(),
        Report(DrainReport(completed=1)),
        Stop(1.0),
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"hello",
        b"",
        b"ready now",
        b"stop soon",
        b"stop nan",
        b"stop 1 2",
        b"report 1 2",
        b"report 1 -2 3",
        b"report a b c",
        b"\xff\xfe",
    ],
)
def test_garbage_is_reported_not_raised(line: bytes) -> None:
    decoder = Decoder()
    [result] = decoder.feed(line + b"\n")
    assert isinstance(result, Malformed)
    assert result.line == line
    assert decode_line(line) == result


def test_garbage_does_not_hide_the_messages_around_it() -> None:
    out = Decoder().feed(b"ready\n???\nretire\n")
    assert out[0] == Ready()
    assert isinstance(out[1], Malformed)
    assert out[2] == Retire()


def test_a_partial_line_at_the_end_of_the_stream_is_malformed() -> None:
    decoder = Decoder()
    assert decoder.feed(b"report 1 2") == []
    assert decoder.close() == [Malformed(b"report 1 2", "incomplete line at end of stream")]
    assert decoder.close() == []


def test_an_endless_line_is_reported_once_and_skipped_to_its_end() -> None:
    decoder = Decoder()
    [result] = decoder.feed(b"x" * 10_000)
    assert isinstance(result, Malformed)
    assert decoder.feed(b"x" * 10_000) == []
    assert decoder.feed(b"xx\nready\n") == [Ready()]
    assert decoder.feed(b"y" * 10_000) != []
    assert decoder.close() == []


def test_wakeups_are_single_bytes() -> None:
    assert Wakeup.RESTART.value == b"H"
    assert Wakeup.STOP.value == b"S"
    assert decode_wakeups(b"SHS") == [Wakeup.STOP, Wakeup.RESTART, Wakeup.STOP]
    assert decode_wakeups(b"") == []
    assert decode_wakeups(b"Sx") == [Wakeup.STOP, Malformed(b"x", "unknown wake-up")]
