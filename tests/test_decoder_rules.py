"""One focused test per decoding rule of WHATWG HTML 9.2.5-9.2.6, plus the decoder's own API rules.

Most tests decode their input in several chunkings (whole, byte by byte, 2, 3 and 7 bytes) and
require the same result from each; see ``decode_all_ways``.
"""

from __future__ import annotations

import inspect
import json
import pickle
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _vectors import (
    Chunking,
    as_tuple,
    feed_all,
    feed_items_all,
    make_chunks,
    reused_buffer,
    split_cyclic,
)

import sse_sync
from sse_sync import (
    Comment,
    DecodeError,
    Event,
    EventJSONError,
    EventTooLarge,
    LimitExceeded,
    LineTooLong,
    SSEDecoder,
    SSEError,
    _errors,
)

BOM = b"\xef\xbb\xbf"
MiB = 1 << 20

EventTuple = tuple[str, str, str, "int | None"]


def ev(data: str, event: str = "message", id: str = "", retry: int | None = None) -> EventTuple:
    return (event, data, id, retry)


CHUNKINGS: list[Chunking] = [None, [1], [2], [3], [7], "lines", "lines+blank"]


def decode_all_ways(raw: bytes, **kwargs: Any) -> list[EventTuple]:
    """Decode ``raw`` whole, in 1, 2, 3 and 7 byte chunks and line by line (alone, and with
    blank lines kept with the line before); all must agree.  Returns the events."""
    results = []
    for how in CHUNKINGS:
        decoder = SSEDecoder(**kwargs)
        results.append([as_tuple(e) for e in feed_all(decoder, make_chunks(raw, how))])
    for how, result in zip(CHUNKINGS[1:], results[1:], strict=True):
        assert result == results[0], f"chunking {how} differs from the whole input"
    return results[0]


def final_state_all_ways(raw: bytes, **kwargs: Any) -> tuple[str, int | None]:
    """``(last_event_id, retry)`` after feeding ``raw`` (no close); the same for every chunking."""
    states = set()
    for how in CHUNKINGS:
        decoder = SSEDecoder(**kwargs)
        for chunk in make_chunks(raw, how):
            decoder.feed(chunk)
        states.add((decoder.last_event_id, decoder.retry))
    assert len(states) == 1, states
    return states.pop()


def retained_size(decoder: SSEDecoder) -> int:
    """Bytes reachable from the decoder's slots (containers, str and bytes followed)."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = []
    for cls in type(decoder).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(decoder, name):
                stack.append(getattr(decoder, name))
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
    return total


# -- UTF-8 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "café € 😀", id="valid-multibyte"
        ),
        pytest.param(b"caf\xe9", "caf\ufffd", id="latin1-byte"),
        pytest.param(b"\xff\xfe", "\ufffd\ufffd", id="ff-fe"),
        pytest.param(b"a\x80\xbfb", "a\ufffd\ufffdb", id="lone-continuations"),
        pytest.param(b"\xc3(", "\ufffd(", id="truncated-2-then-ascii"),
        pytest.param(b"\xe2\x82(", "\ufffd(", id="truncated-3-then-ascii"),
        pytest.param(b"\xf0\x9f\x98(", "\ufffd(", id="truncated-4-then-ascii"),
        pytest.param(b"\xc0\xaf", "\ufffd\ufffd", id="overlong-2"),
        pytest.param(b"\xe0\x80\xaf", "\ufffd\ufffd\ufffd", id="overlong-3"),
        pytest.param(b"\xf0\x80\x80\xaf", "\ufffd\ufffd\ufffd\ufffd", id="overlong-4"),
        pytest.param(b"\xed\xa0\x80", "\ufffd\ufffd\ufffd", id="high-surrogate"),
        pytest.param(b"\xed\xbf\xbf", "\ufffd\ufffd\ufffd", id="low-surrogate"),
        pytest.param(b"\xed\xa0\xbd\xed\xb8\x80", "\ufffd" * 6, id="surrogate-pair-cesu8"),
        pytest.param(b"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd", id="above-10ffff"),
        pytest.param(b"\xf5\x80", "\ufffd\ufffd", id="f5-lead"),
        pytest.param(b"\xf4\x8f\xbf\xbf", "\U0010ffff", id="max-code-point"),
        pytest.param(b"\xef\xbf\xbd", "\ufffd", id="literal-replacement-char"),
    ],
)
def test_utf8_decoding_replaces_each_maximal_subpart(value: bytes, expected: str) -> None:
    # The literals are the Encoding Standard's answers; Python's 'replace' must agree with them.
    assert value.decode("utf-8", "replace") == expected
    assert decode_all_ways(b"data: " + value + b"\n\n") == [ev(expected)]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
@pytest.mark.parametrize("truncated", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"])
def test_utf8_truncated_sequence_at_end_of_line(truncated: bytes, eol: bytes) -> None:
    raw = b"data: a" + truncated + eol + b"data: b" + eol + eol
    assert decode_all_ways(raw) == [ev("a\ufffd\nb")]


def test_utf8_sequence_split_across_chunks_at_every_point() -> None:
    raw = "data: é€😀\U0010ffff\n\n".encode()
    for cut in range(len(raw) + 1):
        for cut2 in range(cut, len(raw) + 1):
            decoder = SSEDecoder()
            events = feed_all(decoder, [raw[:cut], raw[cut:cut2], raw[cut2:]])
            assert [e.data for e in events] == ["é€😀\U0010ffff"], (cut, cut2)


def test_invalid_utf8_in_field_name_makes_field_unknown() -> None:
    assert decode_all_ways(b"dat\xe1: x\n\ndata: y\n\n") == [ev("y")]


def test_invalid_utf8_in_id_and_event_type_is_replaced() -> None:
    raw = b"id: a\xffb\nevent: t\xc3\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x", event="t\ufffd", id="a\ufffdb")]


# -- BOM -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([BOM + b"data: x\n\n"], id="whole"),
        pytest.param([BOM, b"data: x\n\n"], id="3+rest"),
        pytest.param([b"\xef", b"\xbb\xbfdata: x\n\n"], id="1+2"),
        pytest.param([b"\xef\xbb", b"\xbfdata: x\n\n"], id="2+1"),
        pytest.param([b"\xef", b"\xbb", b"\xbf", b"data: x\n\n"], id="1+1+1"),
        pytest.param([b"", b"\xef", b"", b"\xbb", b"", b"\xbfd", b"ata: x\n\n"], id="empty-chunks"),
    ],
)
def test_bom_stripped_at_stream_start(chunks: list[bytes]) -> None:
    assert [as_tuple(e) for e in feed_all(SSEDecoder(), chunks)] == [ev("x")]


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([BOM + BOM + b"data: x\n\ndata: y\n\n"], id="whole"),
        pytest.param([BOM, BOM + b"data: x\n\ndata: y\n\n"], id="bom+bom-rest"),
        pytest.param([b"\xef\xbb", b"\xbf\xef", b"\xbb\xbfdata: x\n\ndata: y\n\n"], id="split"),
    ],
)
def test_second_bom_at_stream_start_is_part_of_field_name(chunks: list[bytes]) -> None:
    # "\ufeffdata" is an unknown field name: the first block dispatches nothing.
    assert [as_tuple(e) for e in feed_all(SSEDecoder(), chunks)] == [ev("y")]


def test_bom_at_start_of_later_line_makes_field_unknown() -> None:
    raw = b"data: a\n\n" + BOM + b"data: b\n\n\n" + BOM + b"\n\ndata: c\n\n"
    assert decode_all_ways(raw) == [ev("a"), ev("c")]


def test_bom_after_leading_newline_is_not_stripped() -> None:
    assert decode_all_ways(b"\n" + BOM + b"data: x\n\ndata: y\n\n") == [ev("y")]


def test_bom_inside_value_is_kept() -> None:
    raw = BOM + b"data:" + BOM + b"x\ndata: " + BOM + b"\n\n"
    assert decode_all_ways(raw) == [ev("\ufeffx\n\ufeff")]


@pytest.mark.parametrize("partial", [b"\xef", b"\xef\xbb"])
def test_partial_bom_chunk_followed_by_non_bom_bytes(partial: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(partial) == []
    # The partial BOM is one invalid sequence: U+FFFD glued to the field name, so the first
    # block is unknown; the second block is unaffected.
    events = decoder.feed(b"data: x\n\ndata: y\n\n")
    assert [as_tuple(e) for e in events] == [ev("y")]
    # The same bytes fed whole give the same answer.
    assert sse_sync.decode(partial + b"data: x\n\ndata: y\n\n") == events
    # And a partial BOM before a line break is an invalid sequence on its own line.
    decoder = SSEDecoder()
    assert decoder.feed(partial) == []
    assert [as_tuple(e) for e in decoder.feed(b"\ndata: z\n\n")] == [ev("z")]


def test_partial_bom_then_close_rearms_bom_stripping() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.close() == []
    assert [as_tuple(e) for e in decoder.feed(BOM + b"data: x\n\n")] == [ev("x")]


# -- line endings ----------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_endings(eol: bytes) -> None:
    raw = b"event: t" + eol + b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode_all_ways(raw) == [ev("a\nb", event="t"), ev("c")]


def test_mixed_line_endings() -> None:
    raw = b"data: a\r\ndata: b\rdata: c\n\rdata: d\r\n\n"
    assert decode_all_ways(raw) == [ev("a\nb\nc"), ev("d")]


def test_cr_at_chunk_end_and_lf_at_next_chunk_start_is_one_line_break() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # Were "\r" + "\n" two breaks, the LF would be a blank line dispatching "a" alone.
    assert decoder.feed(b"\ndata: b\r") == []
    assert [as_tuple(e) for e in decoder.feed(b"\n\r\n")] == [ev("a\nb")]


def test_cr_at_chunk_end_survives_empty_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []
    assert [as_tuple(e) for e in decoder.feed(b"data: b\n\n")] == [ev("a\nb")]


def test_lf_cr_is_two_line_breaks() -> None:
    assert decode_all_ways(b"data: a\n\rdata: b\n\n") == [ev("a"), ev("b")]


def test_cr_cr_lf_is_two_line_breaks() -> None:
    assert decode_all_ways(b"data: a\r\r\ndata: b\n\n") == [ev("a"), ev("b")]


@pytest.mark.parametrize("ending", [b"\r\r", b"\r\n\r", b"\n\r", b"\n\n", b"\r\n\r\n"])
def test_event_ended_at_chunk_end_is_dispatched_by_that_feed(ending: bytes) -> None:
    decoder = SSEDecoder()
    assert [as_tuple(e) for e in decoder.feed(b"data: x" + ending)] == [ev("x")]
    # A following LF (completing a CRLF, or a blank line) adds nothing.
    assert decoder.feed(b"\n") == []
    assert [as_tuple(e) for e in decoder.feed(b"data: y\n\n")] == [ev("y")]


BOUNDARY_BEFORE = [
    b"",
    BOM,
    b"\xef\xbb",
    b"data: first\n\n",
    b"data: first\n\r",
    b"data: first\r\r",
    b"data: first\r\n\r\n",
    b"data: first\n\nid: 9\n\n",
    b"id: 5\n",
    b"id: 5\n\nid\n",
    b"event: t\n",
    b"retry: 7\n",
    b": comment\n",
    b"data: pending\n",
    b"data: pending\r",
    b"data: partial li",
]
BOUNDARY_CHUNKS = [
    b"data: x\n\n",
    b"data: a\rb\n\n",
    b"data: a\r\n\n",
    b"data: a\rdata: b\n\n",
    b"data: \xff\xe2\x82\xef\xbb\xbf\n\n",
    b"data:x\n\n",
    b"data:  x\n\n",
    b"data: \n\n",
    b"data: x\n\n\n",
    b"\ndata: x\n\n",
    b"data: x\n\ndata: y\n\n",
    b"data: x\ndata: y\n\n",
    b"data: " + b"z" * 26 + b"\n\n",
]


def _outcome(chunks: list[bytes], **kwargs: Any) -> tuple[object, ...]:
    decoder = SSEDecoder(**kwargs)
    events: list[Event] = []
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
    except LimitExceeded as exc:
        return ([as_tuple(e) for e in events + exc.events], type(exc))
    return ([as_tuple(e) for e in events], decoder.last_event_id, decoder.retry)


def _iter_outcome(chunks: list[bytes], **kwargs: Any) -> tuple[object, ...]:
    events: list[Event] = []
    try:
        for event in sse_sync.iter_events(iter(chunks), **kwargs):
            events.append(event)
    except LimitExceeded as exc:
        return ([as_tuple(e) for e in events + exc.events], type(exc))
    return ([as_tuple(e) for e in events],)


@pytest.mark.parametrize(
    "limits", [{}, {"max_line_length": 30, "max_event_size": 25}], ids=["default", "small"]
)
@pytest.mark.parametrize("chunk", BOUNDARY_CHUNKS)
@pytest.mark.parametrize("before", BOUNDARY_BEFORE)
def test_chunk_cut_at_a_line_or_event_boundary_matches_whole_input(
    before: bytes, chunk: bytes, limits: dict[str, int]
) -> None:
    # Servers flush whole lines and whole events: the chunk after such a cut must decode as
    # it does inside one big chunk, whatever state the stream was left in.
    after = b"\ndata: after\n\n"
    split = _outcome([before, chunk, after], **limits)
    whole = _outcome([before + chunk + after], **limits)
    assert split == whole
    # iter_events, which has shortcuts of its own, too (it closes: no pending event counts).
    assert _iter_outcome([before, chunk, after], **limits) == _iter_outcome(
        [before + chunk + after], **limits
    )
    assert _iter_outcome([before, chunk, after], **limits)[0] == whole[0]


CR_STREAMS = [
    b"data: a\r\n\r\ndata: b\r\rdata: c\r\n\r\n",
    b"data: a\r\r\ndata: b\n\r\n\r",
    b"\r\ndata: x\r\r\n\r\ndata: y\r\n\r",
    b"id: 1\rdata: a\r\rid\r\ndata: b\r\n\r\n: c\r\r",
    b"data: a\r\ndata: b\r\n\r\nevent: e\rdata: c\r\n\r\n",
]


@pytest.mark.parametrize("raw", CR_STREAMS)
def test_iter_events_on_cr_streams_cut_anywhere(raw: bytes) -> None:
    # iter_events() turns CRs into LFs itself in small chunks; every cut into three pieces
    # (empty ones included) must give what the whole body gives.
    expected = [as_tuple(e) for e in sse_sync.decode(raw)]
    assert expected
    for i in range(len(raw) + 1):
        for j in range(i, len(raw) + 1):
            chunks = [raw[:i], raw[i:j], raw[j:]]
            assert [as_tuple(e) for e in sse_sync.iter_events(chunks)] == expected, chunks
    assert [as_tuple(e) for e in sse_sync.iter_events(split_cyclic(raw, [1]))] == expected


@pytest.mark.parametrize("raw", CR_STREAMS)
def test_iter_events_on_cr_streams_after_a_big_chunk(raw: bytes) -> None:
    # A chunk too big to reassemble goes to the decoder as it is; when it ends in a CR, the
    # decoder's rule for the LF that may follow must win over iter_events()' own.
    big = b"data: " + b"x" * 2000 + b"\r"
    expected = [as_tuple(e) for e in sse_sync.decode(big + raw)]
    for i in range(len(raw) + 1):
        chunks = [big, raw[:i], raw[i:]]
        assert [as_tuple(e) for e in sse_sync.iter_events(chunks)] == expected, chunks


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: x\r\n\r"],
        [b"data: x\r\r"],
        [b"data: x\r", b"\n\r"],
        [b"data: x\r", b"\n", b"\r"],
        [b"data: x\r\n", b"\r"],
        [b"data: x\n\r"],
    ],
)
def test_iter_events_yields_an_event_ended_by_a_cr_before_reading_on(pieces: list[bytes]) -> None:
    def chunks() -> Iterator[bytes]:
        yield from pieces
        raise AssertionError("read past the CR that ended the event")

    assert next(sse_sync.iter_events(chunks())) == Event(data="x")


def test_event_ended_by_lone_cr_byte_by_byte_is_dispatched_at_the_cr() -> None:
    decoder = SSEDecoder()
    for byte in b"data: x\r":
        assert decoder.feed(bytes([byte])) == []
    assert [as_tuple(e) for e in decoder.feed(b"\r")] == [ev("x")]


@pytest.mark.parametrize(
    "separator",
    ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"],
    ids=["U+2028", "U+2029", "NEL", "VT", "FF", "FS", "GS", "RS"],
)
def test_never_split_lines_on_other_unicode_line_breaks(separator: str) -> None:
    raw = f"data: a{separator}data: b\nevent: t{separator}x\nid: 1{separator}2\n\n".encode()
    assert decode_all_ways(raw) == [
        ev(f"a{separator}data: b", event=f"t{separator}x", id=f"1{separator}2")
    ]


# -- fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"data:x", "x"),
        (b"data: x", "x"),
        (b"data:  x", " x"),
        (b"data:\tx", "\tx"),
        (b"data: \tx", "\tx"),
        (b"data:\t x", "\t x"),
        (b"data: x  ", "x  "),
        (b"data: x \t", "x \t"),
        (b"data:", ""),
        (b"data: ", ""),
        (b"data:  ", " "),
        (b"data::x", ":x"),
        (b"data: a: b", "a: b"),
    ],
)
def test_field_value_space_handling(line: bytes, value: str) -> None:
    assert decode_all_ways(line + b"\n\n") == [ev(value)]


def test_line_without_colon_is_field_with_empty_value() -> None:
    raw = b"id: 1\nevent: t\ndata\nevent\nretry: 5\nretry\nid\n\n"
    assert decode_all_ways(raw) == [ev("", retry=5)]
    assert final_state_all_ways(raw) == ("", 5)


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        (b"data\ndata\n\n", "\n"),
        (b"data: a\ndata\n\n", "a\n"),
        (b"data\ndata: a\n\n", "\na"),
        (b"data\n\n", ""),
        (b"data: a\ndata: b\ndata: c\n\n", "a\nb\nc"),
        (b"data:\ndata:\ndata:\n\n", "\n\n"),
    ],
)
def test_one_trailing_lf_removed_from_data(raw: bytes, data: str) -> None:
    assert decode_all_ways(raw) == [ev(data)]


@pytest.mark.parametrize(
    "line",
    [
        b"Data: x",
        b"DATA: x",
        b" data: x",
        b"data : x",
        b"data\t: x",
        b"dat: x",
        b"datax: y",
        b"foo: x",
        b": data: x",
        b" : x",
        b" ",
        b"\t",
        b"\x00data: x",
    ],
)
def test_field_names_are_case_sensitive_and_unknown_fields_ignored(line: bytes) -> None:
    assert decode_all_ways(line + b"\n\n") == []
    raw = b"id: 1\nretry: 9\nevent: t\n" + line + b"\ndata: y\n\n"
    assert decode_all_ways(raw) == [ev("y", event="t", id="1", retry=9)]


def test_other_fields_with_wrong_case_are_ignored() -> None:
    raw = b"Event: t\nID: 5\nRetry: 7\nEVENT: u\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x")]
    assert final_state_all_ways(raw) == ("", None)


def test_unknown_fields_do_not_disturb_the_event() -> None:
    raw = b"data: a\nfoo: bar\nbaz\nid : 3\ndata: b\n\n"
    assert decode_all_ways(raw) == [ev("a\nb")]


# -- event type ------------------------------------------------------------------------------


def test_event_type_kept_exactly() -> None:
    raw = b"event:  Update \ndata: x\n\nevent: a\x00b\ndata: y\n\n"
    assert decode_all_ways(raw) == [ev("x", event=" Update "), ev("y", event="a\x00b")]


def test_last_event_field_in_block_wins() -> None:
    assert decode_all_ways(b"event: a\nevent: b\ndata: x\n\n") == [ev("x", event="b")]


@pytest.mark.parametrize("reset", [b"event:", b"event: ", b"event"])
def test_empty_event_type_means_message(reset: bytes) -> None:
    assert decode_all_ways(b"event: t\n" + reset + b"\ndata: x\n\n") == [ev("x")]


# -- dispatch --------------------------------------------------------------------------------


def test_empty_data_buffer_dispatches_nothing_and_resets_type() -> None:
    assert decode_all_ways(b"event: x\n\ndata: y\n\n") == [ev("y")]
    assert decode_all_ways(b"event: x\n:comment\nid: 1\nfoo\n\ndata: y\n\n") == [ev("y", id="1")]


def test_type_does_not_leak_into_the_next_event() -> None:
    raw = b"event: a\ndata: 1\n\ndata: 2\n\n"
    assert decode_all_ways(raw) == [ev("1", event="a"), ev("2")]


def test_many_blank_lines_dispatch_nothing_extra() -> None:
    assert decode_all_ways(b"\n\n\r\n\r\rdata: x\n\n\n\n\r\r\n") == [ev("x")]


# -- id --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"id: \x00", b"id: a\x00b", b"id:\x00", b"id: 2\x00"])
def test_id_with_nul_is_ignored(bad: bytes) -> None:
    raw = b"id: 1\n\n" + bad + b"\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x", id="1")]
    assert final_state_all_ways(raw) == ("1", None)


def test_id_persists_across_events() -> None:
    raw = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\ndata: d\n\n"
    assert decode_all_ways(raw) == [
        ev("a", id="1"),
        ev("b", id="1"),
        ev("c", id="2"),
        ev("d", id="2"),
    ]


def test_id_set_after_data_in_same_block_applies_to_that_event() -> None:
    assert decode_all_ways(b"data: x\nid: 5\n\n") == [ev("x", id="5")]


@pytest.mark.parametrize("reset", [b"id:", b"id: ", b"id"])
def test_empty_id_resets_last_event_id(reset: bytes) -> None:
    raw = b"id: 1\ndata: a\n\n" + reset + b"\ndata: b\n\n"
    assert decode_all_ways(raw) == [ev("a", id="1"), ev("b")]
    assert final_state_all_ways(raw) == ("", None)


def test_id_is_not_trimmed() -> None:
    assert decode_all_ways(b"id:  a b \t\ndata: x\n\n") == [ev("x", id=" a b \t")]


def test_id_in_block_without_data_still_sets_last_event_id() -> None:
    raw = b"id: 7\n\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x", id="7")]


def test_initial_last_event_id_used_until_stream_sets_one() -> None:
    decoder = SSEDecoder(last_event_id="41")
    assert decoder.last_event_id == "41"
    events = decoder.feed(b"data: a\n\nid: 42\ndata: b\n\n")
    assert [as_tuple(e) for e in events] == [ev("a", id="41"), ev("b", id="42")]
    assert decoder.last_event_id == "42"


def test_undispatched_id_does_not_survive_close() -> None:
    # WPT eventsource/format-data-before-final-empty-line: the stream ends inside the
    # "id:test" block, so that block is never dispatched and the EventSource's last event ID
    # string (set only at dispatch, HTML 9.2.6 "dispatch the event" step 1) stays "".  The
    # reconnect must not send Last-Event-ID "test" (the server would then skip the event the
    # client never got), and the next stream's events must carry lastEventId "".
    body = b"retry:1000\ndata:test1\n\nid:test\ndata:test2\n"
    decoder = SSEDecoder()
    assert [as_tuple(e) for e in decoder.feed(body)] == [ev("test1", retry=1000)]
    assert decoder.close() == []
    assert decoder.last_event_id == ""
    assert [as_tuple(e) for e in decoder.feed(body)] == [ev("test1", retry=1000)]
    decoder.close()
    assert [as_tuple(e) for e in decoder.feed(b"event: t\ndata: x\n\n")] == [ev("x", event="t")]

    # The same with an earlier, dispatched id: the reconnect resumes from it.
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    decoder.close()
    assert decoder.last_event_id == "1"
    assert [as_tuple(e) for e in decoder.feed(b"data: c\n\n")] == [ev("c", id="1")]


def test_id_committed_by_blank_line_without_data_survives_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\nid: 5\n\n") != []
    decoder.close()
    assert decoder.last_event_id == "5"
    assert [as_tuple(e) for e in decoder.feed(b"data: b\n\n")] == [ev("b", id="5")]


# -- retry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"+5",
        b"-5",
        b" 5",  # "retry:  5": the field rule strips one space, the second one is kept
        b"5 ",
        b"5.0",
        b"1_0",
        b"0x10",
        b"1e3",
        b"\t5",
        "\u0663".encode(),  # ARABIC-INDIC DIGIT THREE
        "\uff15".encode(),  # FULLWIDTH DIGIT FIVE
        "\u00b2".encode(),  # SUPERSCRIPT TWO (str.isdigit() is True for it)
        "\U0001d7d3".encode(),  # MATHEMATICAL BOLD DIGIT FIVE
        b"",
        b"5\x00",
    ],
)
def test_retry_invalid_values_are_ignored(value: bytes) -> None:
    raw = b"retry: 250\n\nretry: " + value + b"\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x")]
    assert final_state_all_ways(raw) == ("", 250)


def test_retry_bare_field_is_ignored() -> None:
    raw = b"retry: 250\n\nretry\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x")]
    assert final_state_all_ways(raw) == ("", 250)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0", 0),
        (b"007", 7),
        (b"5", 5),
        (b"4294967296", 4294967296),
        (b"9007199254740993", 9007199254740993),
        (b"1" + b"0" * 100, 10**100),
    ],
)
def test_retry_valid_values(value: bytes, expected: int) -> None:
    raw = b"retry:" + value + b"\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x", retry=expected)]
    assert final_state_all_ways(raw) == ("", expected)


def test_retry_with_more_than_4300_digits_is_ignored_without_raising() -> None:
    huge = b"9" * 5000
    raw = b"retry: 100\n\nretry: " + huge + b"\ndata: x\n\n"
    assert decode_all_ways(raw) == [ev("x")]
    assert final_state_all_ways(raw) == ("", 100)


def test_retry_applies_immediately_without_dispatch() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 3000\n") == []
    assert decoder.retry == 3000
    assert decoder.feed(b"data: x\nretry: 4000\n") == []
    assert decoder.retry == 4000
    assert decoder.close() == []
    assert decoder.retry == 4000


def test_event_retry_is_set_only_on_the_event_whose_block_carried_it() -> None:
    raw = (
        b"data: a\n\n"
        b"retry: 10\ndata: b\n\n"
        b"data: c\n\n"
        b"retry: 20\n\n"  # sets the reconnection time, dispatches nothing
        b"data: d\n\n"
        b"data: e\nretry: 30\n\n"
        b"retry: x\ndata: f\n\n"
    )
    assert decode_all_ways(raw) == [
        ev("a"),
        ev("b", retry=10),
        ev("c"),
        ev("d"),
        ev("e", retry=30),
        ev("f"),
    ]
    assert final_state_all_ways(raw) == ("", 30)


def test_retry_property_tracks_reconnection_time_in_effect() -> None:
    decoder = SSEDecoder(retry=500)
    assert decoder.retry == 500
    assert [as_tuple(e) for e in decoder.feed(b"data: a\n\n")] == [ev("a")]
    assert decoder.retry == 500
    decoder.feed(b"retry: 20\n\n")
    assert decoder.retry == 20
    decoder.feed(b"retry: bogus\n\n")
    assert decoder.retry == 20


def test_last_retry_in_block_wins() -> None:
    assert decode_all_ways(b"retry: 1\nretry: 2\nretry: x\ndata: x\n\n") == [ev("x", retry=2)]


# -- comments --------------------------------------------------------------------------------


def test_comments_are_ignored_by_feed() -> None:
    raw = b":hello\ndata: a\n: data: b\n:\ndata: c\n\n:bye\n\n"
    assert decode_all_ways(raw) == [ev("a\nc")]


def test_feed_items_reports_comment_as_soon_as_its_line_is_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_items(b"data: a\n: pi") == []
    assert decoder.feed_items(b"ng") == []
    # The comment line ends here, before the blank line that dispatches the event.
    assert decoder.feed_items(b"\n") == [Comment(" ping")]
    assert decoder.feed_items(b":\r") == [Comment("")]
    assert decoder.feed_items(b"\n") == []  # completes the CRLF of the comment line
    assert decoder.feed_items(b"\n") == [Event(data="a")]


def test_feed_items_keeps_stream_order() -> None:
    raw = b":one\ndata: a\n\n:two\n:three\ndata: b\n:four\n\n:five\n"
    expected = [
        Comment("one"),
        Event(data="a"),
        Comment("two"),
        Comment("three"),
        Comment("four"),
        Event(data="b"),
        Comment("five"),
    ]
    for sizes in (None, [1], [2], [5]):
        assert feed_items_all(SSEDecoder(), split_cyclic(raw, sizes)) == expected, sizes


def test_decode_and_iter_events_yield_comments_when_asked() -> None:
    raw = b":one\ndata: a\n\n:two\n:three\ndata: b\n:four\n\n:five\n"
    expected = feed_items_all(SSEDecoder(), [raw])
    kinds = [Comment, Event, Comment, Comment, Comment, Event, Comment]
    assert [type(i) for i in expected] == kinds
    whole: list[Event | Comment] = sse_sync.decode(raw, comments=True)
    assert whole == expected
    assert sse_sync.decode(raw) == [i for i in expected if isinstance(i, Event)]
    for sizes in (None, [1], [2], [5]):
        lazy = sse_sync.iter_events(split_cyclic(raw, sizes), comments=True)
        assert list(lazy) == expected, sizes
    # Each comment comes out before the next chunk is read.
    seen: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for chunk in (b":hi\n", b"data: x\n\n"):
            seen.append(chunk)
            yield chunk

    items = sse_sync.iter_events(chunks(), comments=True)
    assert next(items) == Comment("hi")
    assert seen == [b":hi\n"]
    assert list(items) == [Event(data="x")]


def test_iter_events_checks_its_limits_when_called() -> None:
    for comments in (False, True):
        with pytest.raises(ValueError, match="max_line_length"):
            sse_sync.iter_events([], max_line_length=0, comments=comments)
        with pytest.raises(ValueError, match="max_event_size"):
            sse_sync.iter_events([], max_event_size=-1, comments=comments)


def test_feed_items_comment_text_is_exact() -> None:
    items = SSEDecoder().feed_items(b":  two spaces \t\n:a:b\n:\x00\n")
    assert items == [Comment("  two spaces \t"), Comment("a:b"), Comment("\x00")]


def test_feed_after_feed_items_does_not_return_comments() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_items(b":a\n") == [Comment("a")]
    assert decoder.feed(b":b\ndata: x\n\n") == [Event(data="x")]


# -- end of stream ---------------------------------------------------------------------------


def test_unfinished_final_event_is_discarded_at_close() -> None:
    decoder = SSEDecoder()
    assert [as_tuple(e) for e in decoder.feed(b"data: a\n\ndata: b\n")] == [ev("a")]
    assert decoder.close() == []
    assert decode_all_ways(b"data: a\n\ndata: b\n") == [ev("a")]


def test_unterminated_final_line_is_discarded() -> None:
    assert decode_all_ways(b"data: a\n\ndata: b") == [ev("a")]
    assert decode_all_ways(b"data: a\n\nid: 9") == [ev("a")]
    assert final_state_all_ways(b"retry: 5\n\nretry: 6") == ("", 5)


def test_close_returns_nothing_and_starts_a_new_stream() -> None:
    decoder = SSEDecoder()
    assert (
        decoder.feed(BOM + b"id: 3\nretry: 70\nevent: t\ndata: a\n\nevent: u\ndata: b\ndata: c")
        != []
    )
    assert decoder.close() == []
    assert decoder.last_event_id == "3"
    assert decoder.retry == 70
    # New stream: the BOM is stripped again; no pending type, data or partial line survive.
    events = decoder.feed(BOM + b"\ndata: d\n\n")
    assert [as_tuple(e) for e in events] == [ev("d", id="3")]
    assert decoder.close() == []
    assert decoder.close() == []


def test_close_forgets_a_pending_cr() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\r")
    decoder.close()
    # In the new stream the leading LF is a line break of its own (an empty line) and the BOM
    # after it is not at the stream start.
    assert decoder.feed(b"\n" + BOM + b"data: x\n\ndata: y\n\n") == [Event(data="y")]


def test_decode_and_iter_events_discard_unfinished_event() -> None:
    assert sse_sync.decode(b"data: a\n\ndata: b\n") == [Event(data="a")]
    assert list(sse_sync.iter_events([b"data: a\n\nda", b"ta: b\n"])) == [Event(data="a")]


def test_iter_events_is_lazy() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i, chunk in enumerate([b"data: a\n\n", b"data: b\n", b"\n"]):
            pulled.append(i)
            yield chunk

    it = sse_sync.iter_events(chunks())
    assert next(it) == Event(data="a")
    assert pulled == [0]
    assert next(it) == Event(data="b")
    assert pulled == [0, 1, 2]
    assert list(it) == []


# -- constructor -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"last_event_id": "a\x00b"},
        {"last_event_id": b"1"},
        {"last_event_id": None},
        {"retry": -1},
        {"retry": True},
        {"retry": 1.5},
        {"retry": "100"},
        {"max_line_length": 0},
        {"max_line_length": -5},
        {"max_line_length": True},
        {"max_line_length": False},
        {"max_line_length": 1.0},
        {"max_event_size": 0},
        {"max_event_size": True},
        {"max_event_size": "10"},
    ],
    ids=repr,
)
def test_constructor_rejects_invalid_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SSEDecoder(**kwargs)


def test_constructor_accepts_valid_arguments() -> None:
    decoder = SSEDecoder(last_event_id="é 1", retry=0, max_line_length=None, max_event_size=None)
    assert decoder.last_event_id == "é 1"
    assert decoder.retry == 0
    big = b"data: " + b"x" * (2 * MiB) + b"\n\n"
    assert [len(e.data) for e in decoder.feed(big)] == [2 * MiB]
    assert SSEDecoder(max_line_length=1, max_event_size=1).feed(b"\n") == []


# -- limits ----------------------------------------------------------------------------------


def feed_each(decoder: SSEDecoder, chunks: list[bytes]) -> list[Event]:
    """Feed every chunk (no close); return the events."""
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def check_limit_error(error: LimitExceeded, cls: type[LimitExceeded], limit: int) -> None:
    assert type(error) is cls
    assert isinstance(error, (LimitExceeded, DecodeError, SSEError, ValueError))
    assert error.value == limit
    name = "max_line_length" if cls is LineTooLong else "max_event_size"
    assert error.limit == name
    assert name in str(error)
    assert str(limit) in str(error)


LONG_LINE_FEEDS: dict[str, Callable[[bytes], list[bytes]]] = {
    "one-chunk": lambda raw: [raw],
    "byte-by-byte": lambda raw: split_cyclic(raw, [1]),
    "pieces-of-7": lambda raw: split_cyclic(raw, [7]),
    "pieces-of-5-then-11": lambda raw: split_cyclic(raw, [5, 11]),
}


@pytest.mark.parametrize("feeding", list(LONG_LINE_FEEDS))
@pytest.mark.parametrize(
    "line",
    [b"data: " + b"x" * 11, b":" + b"c" * 16, b"x" * 17, b"data:" + "é".encode() * 6],
    ids=["data", "comment", "no-colon", "multibyte"],
)
@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n", b""], ids=["LF", "CR", "CRLF", "none"])
def test_line_longer_than_limit_raises(feeding: str, line: bytes, eol: bytes) -> None:
    assert len(line) == 17
    decoder = SSEDecoder(max_line_length=16)
    with pytest.raises(LineTooLong) as info:
        feed_each(decoder, LONG_LINE_FEEDS[feeding](line + eol + b"data: ok\n\n"))
    check_limit_error(info.value, LineTooLong, 16)


@pytest.mark.parametrize("feeding", list(LONG_LINE_FEEDS))
@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_of_exactly_the_limit_is_accepted(feeding: str, eol: bytes) -> None:
    raw = BOM + b"data: " + b"x" * 10 + eol + b":" + b"c" * 15 + eol + eol
    decoder = SSEDecoder(max_line_length=16)
    events = [e for chunk in LONG_LINE_FEEDS[feeding](raw) for e in decoder.feed(chunk)]
    assert [as_tuple(e) for e in events] == [ev("x" * 10)]


def test_unterminated_line_raises_as_soon_as_it_exceeds_the_limit() -> None:
    decoder = SSEDecoder(max_line_length=10)
    for _ in range(10):
        assert decoder.feed(b"a") == []
    with pytest.raises(LineTooLong):
        decoder.feed(b"a")


def test_default_line_limit_follows_the_event_size() -> None:
    # One limit bounds both: with no max_line_length, a data line carrying the largest event
    # allowed decodes, whatever its prefix and line ending, and however it is cut.
    assert sse_sync.DEFAULT_MAX_LINE_LENGTH is None
    for prefix in (b"data: ", b"data:"):
        for eol in (b"\n", b"\r", b"\r\n"):
            raw = prefix + b"x" * 1000 + eol + eol
            for chunks in ([raw], split_cyclic(raw, [1]), split_cyclic(raw, [7])):
                decoder = SSEDecoder(max_event_size=1000)
                assert [len(e.data) for e in feed_each(decoder, chunks)] == [1000]
    # One byte more is an event too large, in any chunking.
    raw = b"data: " + b"x" * 1001 + b"\n\n"
    for chunks in ([raw], split_cyclic(raw, [1]), split_cyclic(raw, [64])):
        with pytest.raises(EventTooLarge) as info:
            feed_each(SSEDecoder(max_event_size=1000), chunks)
        check_limit_error(info.value, EventTooLarge, 1000)
    # A line that no event could fit in is refused under the one limit in force as soon as it is
    # longer than the longest data line allowed, even without a line break: memory stays bounded.
    for line in (b"data: " + b"x" * 2000, b":" + b"c" * 2000, b"x" * 2000):
        for chunks in ([line + b"\n"], split_cyclic(line, [100]), split_cyclic(line, [1])):
            decoder = SSEDecoder(max_event_size=1000)
            with pytest.raises(EventTooLarge) as info:
                feed_each(decoder, chunks)
            check_limit_error(info.value, EventTooLarge, 1000)
            assert not decoder._parts
    decoder = SSEDecoder(max_event_size=1000)
    assert feed_each(decoder, [b":" + b"c" * 1005 + b"\n", b"data: ok\n\n"])[0].data == "ok"
    with pytest.raises(EventTooLarge):
        feed_each(decoder, [b":" + b"c" * 1006])
    # max_line_length, when set, is the line limit, above or below the event size.
    decoder = SSEDecoder(max_line_length=3000, max_event_size=1000)
    assert feed_each(decoder, [b":" + b"c" * 2998 + b"\n", b"data: ok\n\n"])[0].data == "ok"
    with pytest.raises(LineTooLong) as too_long:
        feed_each(SSEDecoder(max_line_length=10, max_event_size=1000), [b"data: 12345\n\n"])
    check_limit_error(too_long.value, LineTooLong, 10)
    # Both None: nothing is bounded.
    big = b"data: " + b"x" * (2 * MiB) + b"\n\n"
    assert feed_each(SSEDecoder(max_line_length=None, max_event_size=None), [big]) != []


def test_default_limits_decode_a_data_line_as_large_as_an_event() -> None:
    # What a client with the defaults must take (the contract suite's "large message"): one data
    # line of 14 MB, in one chunk and in 64 KiB reads.
    line = b"data: " + b"x" * (14 * 10**6) + b"\n\n"
    assert [len(e.data) for e in sse_sync.decode(line)] == [14 * 10**6]
    decoder = SSEDecoder()
    events = feed_each(decoder, split_cyclic(line, [1 << 16]))
    assert [len(e.data) for e in events] == [14 * 10**6]
    # And an endless line still ends at the event size.
    decoder = SSEDecoder()
    for _ in range(16 * 16):
        assert decoder.feed(b"y" * (1 << 16)) == []
    with pytest.raises(EventTooLarge) as info:
        decoder.feed(b"y" * 7)
    check_limit_error(info.value, EventTooLarge, sse_sync.DEFAULT_MAX_EVENT_SIZE)


@pytest.mark.parametrize("sizes", [None, [1], [3], [64]], ids=["whole", "1", "3", "64"])
def test_event_too_large_via_many_data_lines(sizes: list[int] | None) -> None:
    ok = b"data: 12345\ndata: 1234\n\n"  # "12345\n1234": exactly 10 characters
    bad = b"data: 12345\ndata: 12345\n\n"  # 11 characters
    decoder = SSEDecoder(max_event_size=10)
    assert [e.data for e in feed_all(decoder, split_cyclic(ok, sizes))] == ["12345\n1234"]
    decoder = SSEDecoder(max_event_size=10)
    with pytest.raises(EventTooLarge) as info:
        feed_all(decoder, split_cyclic(bad, sizes))
    check_limit_error(info.value, EventTooLarge, 10)


@pytest.mark.parametrize("sizes", [None, [1], [3], [64]], ids=["whole", "1", "3", "64"])
def test_event_too_large_via_one_line(sizes: list[int] | None) -> None:
    decoder = SSEDecoder(max_event_size=10)
    assert [e.data for e in feed_all(decoder, split_cyclic(b"data: 1234567890\n\n", sizes))] == [
        "1234567890"
    ]
    decoder = SSEDecoder(max_event_size=10)
    with pytest.raises(EventTooLarge) as info:
        feed_all(decoder, split_cyclic(b"data: 12345678901\n\n", sizes))
    check_limit_error(info.value, EventTooLarge, 10)


@pytest.mark.parametrize("sizes", [None, [1], [3]], ids=["whole", "1", "3"])
def test_event_size_is_counted_in_utf8_bytes(sizes: list[int] | None) -> None:
    # The documented unit of max_event_size is bytes of UTF-8: "é" counts 2.
    ok = "data: ééééé\n\n".encode()  # 10 bytes, 5 characters
    bad = "data: éééééé\n\n".encode()  # 12 bytes, 6 characters
    assert [e.data for e in feed_all(SSEDecoder(max_event_size=10), split_cyclic(ok, sizes))] == [
        "ééééé"
    ]
    with pytest.raises(EventTooLarge):
        feed_all(SSEDecoder(max_event_size=10), split_cyclic(bad, sizes))
    assert "bytes" in str(EventTooLarge(10))


def test_open_event_over_the_limit_raises_before_its_blank_line() -> None:
    # The data of an event that never ends must not grow past the limit either.
    decoder = SSEDecoder(max_event_size=10)
    assert decoder.feed(b"data: 12345\ndata: 1234\n") == []  # exactly 10 bytes so far
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data\n")  # 11
    decoder = SSEDecoder(max_event_size=10)
    assert decoder.feed(b"data: 12345\n") == []
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: 12345\n")
    with pytest.raises(EventTooLarge):
        SSEDecoder(max_event_size=10).feed(b"data: 12345\ndata: 12345\n")


def test_event_too_large_many_empty_data_lines() -> None:
    decoder = SSEDecoder(max_event_size=10)
    assert [e.data for e in decoder.feed(b"data\n" * 11 + b"\n")] == ["\n" * 10]
    with pytest.raises(EventTooLarge):
        SSEDecoder(max_event_size=10).feed(b"data\n" * 12 + b"\n")


def test_event_size_limit_is_per_event() -> None:
    raw = b"data: 1234567890\n\n" * 50
    assert [e.data for e in sse_sync.decode(raw, max_event_size=10)] == ["1234567890"] * 50


def test_line_too_long_keeps_events_completed_in_the_same_feed() -> None:
    decoder = SSEDecoder(max_line_length=20)
    assert decoder.feed(b"data: before\n\n") != []
    with pytest.raises(LineTooLong) as info:
        decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\n:" + b"x" * 30 + b"\ndata: c\n\n")
    assert [as_tuple(e) for e in info.value.events] == [ev("a", id="1"), ev("b", id="1")]


def test_line_too_long_in_trailing_partial_line_keeps_events() -> None:
    decoder = SSEDecoder(max_line_length=20)
    with pytest.raises(LineTooLong) as info:
        decoder.feed(b"data: a\n\ndata: b\n\n" + b"y" * 21)
    assert [as_tuple(e) for e in info.value.events] == [ev("a"), ev("b")]


def test_event_too_large_keeps_events_completed_in_the_same_feed() -> None:
    decoder = SSEDecoder(max_event_size=10)
    with pytest.raises(EventTooLarge) as info:
        decoder.feed(b"data: a\n\nevent: t\ndata: b\n\ndata: 123456\ndata: 123456\n\ndata: c\n\n")
    assert [as_tuple(e) for e in info.value.events] == [ev("a"), ev("b", event="t")]


def test_feed_raises_again_after_a_limit_error_until_close() -> None:
    decoder = SSEDecoder(max_line_length=8)
    with pytest.raises(LineTooLong):
        decoder.feed(b"data: 123456789\n\n")
    for data in (b"data: x\n\n", b"", b"\n"):
        with pytest.raises(LineTooLong) as info:
            decoder.feed(data)
        check_limit_error(info.value, LineTooLong, 8)
    with pytest.raises(LineTooLong):
        decoder.feed_items(b":x\n")
    assert decoder.close() == []
    assert decoder.feed(b"data: x\n\n") == [Event(data="x")]

    decoder = SSEDecoder(max_event_size=4)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: 12345\n\n")
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: 1\n\n")
    decoder.close()
    assert decoder.feed(b"data: 1\n\n") == [Event(data="1")]


def test_decode_and_iter_events_apply_limits() -> None:
    with pytest.raises(LineTooLong):
        sse_sync.decode(b"data: 123456789\n\n", max_line_length=8)
    with pytest.raises(EventTooLarge):
        sse_sync.decode(b"data: 123456789\n\n", max_event_size=8)
    with pytest.raises(LineTooLong):
        list(sse_sync.iter_events([b"data: 1234", b"56789\n\n"], max_line_length=8))
    assert sse_sync.decode(b"data: " + b"x" * (2 * MiB) + b"\n\n", max_line_length=None) != []


@pytest.mark.parametrize(
    ("unit", "total"),
    [
        pytest.param(b":ping\n", 50 * MiB, id="comments-50MiB"),
        pytest.param(b":\r\n", 4 * MiB, id="empty-comments-crlf"),
        pytest.param(b"\n", 4 * MiB, id="blank-lines"),
        pytest.param(b"\r", 4 * MiB, id="blank-lines-cr"),
        pytest.param(b"event: update\n", 8 * MiB, id="event-lines"),
        pytest.param(b"id: 12345\n", 8 * MiB, id="id-lines"),
        pytest.param(b"retry: 1000\n", 8 * MiB, id="retry-lines"),
        pytest.param(b"foo: bar\n", 8 * MiB, id="unknown-fields"),
        pytest.param(b"event: x\nid: 1\n\n", 8 * MiB, id="dataless-blocks"),
    ],
)
def test_endless_stream_without_events_never_raises_nor_grows(unit: bytes, total: int) -> None:
    decoder = SSEDecoder(max_event_size=1000)
    chunk_size = 1 << 16
    # Consecutive 64 KiB chunks of an endless repetition of ``unit``: not a whole number of
    # lines, so line pieces carry over from chunk to chunk.
    stream = unit * (chunk_size // len(unit) + 2)
    offset = 0
    sizes = []
    for _ in range(total // chunk_size):
        piece = stream[offset : offset + chunk_size]
        assert len(piece) == chunk_size
        offset = (offset + chunk_size) % len(unit)
        assert decoder.feed(piece) == []
        sizes.append(retained_size(decoder))
    assert max(sizes) < 4096, max(sizes)


def test_retained_size_grows_with_pending_data() -> None:
    # Guards the memory check above: retained_size does see what the decoder holds.
    decoder = SSEDecoder()
    small = retained_size(decoder)
    decoder.feed(b"data: " + b"x" * 100_000 + b"\n")
    assert retained_size(decoder) > small + 100_000
    decoder.feed(b"y" * 100_000)
    assert retained_size(decoder) > small + 200_000


# -- input types -----------------------------------------------------------------------------

# Every rule at once: a BOM, CRLF, CR and LF, comments, every field, multi-line and non-ASCII data.
MIXED_SAMPLE = (
    BOM + b": hi\r\nretry: 1500\r\nevent: upd\r\nid: 7\r\ndata: caf\xc3\xa9\r\ndata:x\r\r"
    b"data: one\n\nid\ndata: \xe6\x9d\xb1\n\n: ping\n\ndata: last\r\n\r\n"
)
MIXED_EXPECTED = [
    ev("café\nx", "upd", "7", 1500),
    ev("one", id="7"),
    ev("東", id=""),
    ev("last", id=""),
]


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize("view", [False, True], ids=["bytearray", "memoryview"])
def test_a_reused_buffer_is_copied_not_kept(how: Chunking, view: bool) -> None:
    chunks = make_chunks(MIXED_SAMPLE, how)
    assert decode_all_ways(MIXED_SAMPLE) == MIXED_EXPECTED
    decoder = SSEDecoder()
    fed: list[Event] = []
    for chunk in reused_buffer(chunks, view):
        fed += decoder.feed(chunk)
    assert [as_tuple(e) for e in fed] == MIXED_EXPECTED
    items = feed_items_all(SSEDecoder(), reused_buffer(chunks, view))
    assert [as_tuple(i) for i in items if isinstance(i, Event)] == MIXED_EXPECTED
    assert [i.text for i in items if isinstance(i, Comment)] == [" hi", " ping"]
    lazy = sse_sync.iter_events(reused_buffer(chunks, view))
    assert [as_tuple(e) for e in lazy] == MIXED_EXPECTED


def test_bytes_like_input_decodes_as_bytes() -> None:
    import array

    assert [as_tuple(e) for e in sse_sync.decode(bytearray(MIXED_SAMPLE))] == MIXED_EXPECTED
    assert [as_tuple(e) for e in sse_sync.decode(memoryview(MIXED_SAMPLE))] == MIXED_EXPECTED
    words = array.array("B", b"data: a\n\n")
    # Any buffer works at run time; the annotation names the common three.
    assert SSEDecoder().feed(words) == [Event(data="a")]  # type: ignore[arg-type]

    class Raw(bytes):
        pass

    assert SSEDecoder().feed(Raw(b"data: b\n\n")) == [Event(data="b")]


@pytest.mark.parametrize("bad", ["data: x\n\n", 5, None, [b"data: x\n\n"]])
def test_input_that_is_not_bytes_is_a_type_error(bad: Any) -> None:
    # Text, the likely mistake, is named in every case; other objects may also fail in the
    # fast path's first slice, with Python's own TypeError.
    name = type(bad).__name__
    message = f"the decoder takes bytes, not {name}" if isinstance(bad, str | list) else None
    decoder = SSEDecoder()
    decoder.feed(b"data: before\n\n")  # a clean decoder, so feed() tries its fast path
    with pytest.raises(TypeError, match=message):
        decoder.feed(bad)
    with pytest.raises(TypeError, match=message):
        decoder.feed_items(bad)
    with pytest.raises(TypeError, match=f"the decoder takes bytes, not {name}"):
        sse_sync.decode(bad)
    with pytest.raises(TypeError, match=message):
        list(sse_sync.iter_events([b"data: ok\n\n", bad]))
    with pytest.raises(TypeError, match=f"the decoder takes bytes, not {name}"):
        list(sse_sync.iter_events([bad]))
    # The refused chunk left no trace: the decoder goes on where it was.
    assert decoder.feed(b"data: y\n\n") == [Event(data="y")]


# -- Event.json ------------------------------------------------------------------------------


def test_event_json_parses_data() -> None:
    assert Event(data='{"a": [1, 2.5, null]}').json() == {"a": [1, 2.5, None]}
    assert Event(data="1.5").json(parse_float=str) == "1.5"


@pytest.mark.parametrize(("event", "id"), [("update", "42"), ("message", "")])
def test_event_json_error(event: str, id: str) -> None:
    bad = Event(event=event, data='{"a": 1,}', id=id)
    with pytest.raises(EventJSONError) as info:
        bad.json()
    error = info.value
    assert isinstance(error, SSEError)
    assert isinstance(error, json.JSONDecodeError)
    assert isinstance(error, ValueError)
    assert isinstance(error.__cause__, json.JSONDecodeError)
    assert error.event == event
    assert error.id == id
    assert error.doc == '{"a": 1,}'
    assert error.pos == error.__cause__.pos
    assert (error.lineno, error.colno) == (1, error.pos + 1)
    assert repr(event) in str(error)
    if id:
        assert repr(id) in str(error)
    else:
        assert "id" not in str(error).split(":")[0]
    with pytest.raises(json.JSONDecodeError):
        bad.json()


# -- errors ----------------------------------------------------------------------------------

ERROR_CLASSES = sorted(
    (
        obj
        for obj in vars(_errors).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == _errors.__name__
    ),
    key=lambda cls: cls.__name__,
)

# Constructors for the classes whose instances carry more than a message; every other class is
# built as cls("sample message").
ERROR_SAMPLES: dict[str, Callable[[], BaseException]] = {
    "LimitExceeded": lambda: _errors.LimitExceeded(7, [Event(data="x")]),
    "LineTooLong": lambda: _errors.LineTooLong(16, [Event("t", "x", "1", 5), Event(data="y")]),
    "EventTooLarge": lambda: _errors.EventTooLarge(1000),
    "EventJSONError": lambda: _errors.EventJSONError("Expecting value", "{x", 1, "upd", "9"),
    "ResponseError": lambda: _errors.ResponseError(
        "bad", status_code=500, headers={"X-A": "1"}, url="http://h/s", body="oops"
    ),
    "HTTPStatusError": lambda: _errors.HTTPStatusError(
        "HTTP 503", status_code=503, headers={"Retry-After": "5"}, url="http://h/s"
    ),
    "ContentTypeError": lambda: _errors.ContentTypeError(
        "not SSE", status_code=200, headers={"Content-Type": "text/html"}, body="<html>"
    ),
    "RetriesExhausted": lambda: _errors.RetriesExhausted("gave up", attempts=3),
    "NDJSONDecodeError": lambda: _errors.NDJSONDecodeError(
        "not JSON", 3, preview="{x", values=[{"a": 1}, [2]]
    ),
}

ATTRIBUTES = (
    "value",
    "events",
    "limit",
    "event",
    "id",
    "msg",
    "doc",
    "pos",
    "lineno",
    "colno",
    "status_code",
    "headers",
    "url",
    "body",
    "content_type",
    "attempts",
    "reason",
    "line",
    "preview",
    "values",
)


def make_error(cls: type[BaseException]) -> BaseException:
    factory = ERROR_SAMPLES.get(cls.__name__)
    return factory() if factory else cls("sample message")


def test_every_exception_class_is_exported_and_derives_from_sse_error() -> None:
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert {"SSEError", "LimitExceeded", "LineTooLong", "EventTooLarge", "EventJSONError"} <= names
    assert set(ERROR_SAMPLES) <= names, "stale entries in ERROR_SAMPLES"
    assert set(_errors.__all__) == names
    for cls in ERROR_CLASSES:
        assert issubclass(cls, SSEError)
        assert getattr(sse_sync, cls.__name__) is cls


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_error_pickle_round_trip(cls: type[BaseException]) -> None:
    error = make_error(cls)
    assert type(error) is cls
    copy = pickle.loads(pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
    for attribute in ATTRIBUTES:
        assert hasattr(copy, attribute) == hasattr(error, attribute), attribute
        if hasattr(error, attribute):
            assert getattr(copy, attribute) == getattr(error, attribute), attribute


def test_limit_error_attributes_after_pickle() -> None:
    error = LineTooLong(16, [Event(data="x")])
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.value, copy.limit, copy.events) == (16, "max_line_length", [Event(data="x")])
    error2 = EventTooLarge(99)
    copy2 = pickle.loads(pickle.dumps(error2))
    assert (copy2.value, copy2.limit, copy2.events) == (99, "max_event_size", [])


def test_error_hierarchy() -> None:
    for cls in (LineTooLong, EventTooLarge):
        assert issubclass(cls, LimitExceeded)
        assert issubclass(cls, DecodeError)
        assert issubclass(cls, ValueError)
        assert issubclass(cls, SSEError)
    assert issubclass(EventJSONError, json.JSONDecodeError)
    assert issubclass(_errors.ReadTimeout, TimeoutError)
    assert issubclass(_errors.IdleTimeout, _errors.ReadTimeout)
    assert issubclass(_errors.ConnectError, ConnectionError)
    assert issubclass(_errors.StreamError, ConnectionError)


def test_content_type_error_reports_content_type() -> None:
    error = ERROR_SAMPLES["ContentTypeError"]()
    assert isinstance(error, _errors.ContentTypeError)
    assert error.content_type == "text/html"


@pytest.mark.parametrize("grow", [True, False])
def test_event_size_counted_afresh_after_a_dispatch_across_feeds(grow: bool) -> None:
    # An event left open by one feed, dispatched by the next, which opens another: the size
    # of the new event alone counts against the limit, across the feeds that follow.
    decoder = SSEDecoder(max_event_size=14)
    assert decoder.feed(b"data: aaaaaa\ndata: bbbbbb\n") == []
    events = decoder.feed(b"\ndata: cccccc\n")
    assert [e.data for e in events] == ["aaaaaa\nbbbbbb"]
    if grow:
        with pytest.raises(EventTooLarge):
            decoder.feed(b"data: dddddd\ndata: eeeeeee\n")
    else:
        assert decoder.feed(b"data: dd\n") == []
        assert decoder.feed(b"\n")[0].data == "cccccc\ndd"


@pytest.mark.parametrize("sizes", [None, [9], [1]], ids=["whole", "line", "bytes"])
def test_event_too_large_stops_at_the_line_that_makes_it_so(sizes: list[int] | None) -> None:
    # Nothing after the oversized data line is decoded, whatever the chunking: not the retry
    # field that follows it, not a comment.
    decoder = SSEDecoder(max_event_size=1)
    chunks = split_cyclic(b"data: ab\nretry: 5\n:c\n\n", sizes)
    with pytest.raises(EventTooLarge) as info:
        feed_items_all(decoder, chunks)
    assert info.value.events == []
    assert decoder.retry is None
