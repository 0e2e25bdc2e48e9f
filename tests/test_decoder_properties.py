"""Property tests: chunking invariance, robustness on arbitrary bytes, and agreement with a slow
reference decoder written straight from WHATWG HTML 9.2.5-9.2.6."""

from __future__ import annotations

import codecs
import contextlib
import itertools
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from _vectors import LINE_CHUNKINGS, as_tuple, feed_all, line_ends, reused_buffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_sync import (
    Comment,
    Event,
    EventTooLarge,
    LimitExceeded,
    LineTooLong,
    SSEDecoder,
    iter_events,
)

# When a property fails, Hypothesis's pytest plugin writes a patch with the failing example and
# imports libcst for it, which emits a DeprecationWarning (via mypy_extensions) that the suite's
# ``filterwarnings = error`` turns into an INTERNALERROR aborting the whole run.  Import it now,
# with that warning silenced, so a failing property is reported as an ordinary failure.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

BOM = b"\xef\xbb\xbf"

# Sized so that the whole file runs in well under 20 s; generating streams costs more than
# decoding them.
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CHEAP_SETTINGS = settings(SETTINGS, max_examples=400)

# -- the reference decoder -------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_ASCII_DIGITS = re.compile(r"[0-9]+")


@dataclass
class Reference:
    """The spec's parser state, with the whole input in hand (no chunking at all)."""

    items: list[Event | Comment] = field(default_factory=list)
    data: str = ""  # data buffer
    type: str = ""  # event type buffer
    id_buffer: str = ""  # last event ID buffer
    id_string: str = ""  # the event source's last event ID string (set at dispatch)
    retry: int | None = None  # reconnection time
    block_retry: int | None = None  # a valid retry field seen since the last blank line

    @property
    def events(self) -> list[Event]:
        return [item for item in self.items if isinstance(item, Event)]

    def line(self, line: str) -> None:
        """Process one complete line (9.2.6)."""
        if line == "":
            self.dispatch()
            return
        if line.startswith(":"):
            self.items.append(Comment(line[1:]))
            return
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            self.type = value
        elif name == "data":
            self.data += value + "\n"
        elif name == "id":
            if "\x00" not in value:  # otherwise the field is ignored
                self.id_buffer = value
        elif name == "retry" and _ASCII_DIGITS.fullmatch(value):
            self.retry = self.block_retry = int(value, 10)
        # any other field name, and a retry value that is not all ASCII digits, is ignored

    def dispatch(self) -> None:
        self.id_string = self.id_buffer
        if self.data == "":
            self.data = self.type = ""
            self.block_retry = None
            return
        data = self.data[:-1] if self.data.endswith("\n") else self.data
        self.items.append(Event(self.type or "message", data, self.id_string, self.block_retry))
        self.data = self.type = ""
        self.block_retry = None


def reference_decode(raw: bytes) -> Reference:
    """Decode a whole stream: streaming UTF-8 decode, one BOM stripped, split, interpret."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = "".join(decoder.decode(raw[i : i + 1]) for i in range(len(raw)))
    text += decoder.decode(b"", final=True)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_BREAK.split(text)
    lines.pop()  # what follows the last line break is not a line: discarded at end of stream
    ref = Reference()
    for line in lines:
        ref.line(line)
    # End of stream: pending data is discarded; nothing else happens.
    return ref


def reference_decode_with_limits(
    raw: bytes, max_line_length: int, max_event_size: int
) -> tuple[Reference, type[LimitExceeded] | None]:
    """Like reference_decode, but stop at the first line that breaks a limit.

    Works on byte lines: a line's length is counted in bytes without its line break, an
    event's size in bytes of its data as received (the data values joined with LF).  Each line
    is decoded on its own, which is equivalent because CR and LF never belong to a UTF-8
    sequence.  Returns the state before the offending line and the error it must raise.
    """
    if raw.startswith(BOM):
        raw = raw[3:]
    pieces = _LINE_BREAK_BYTES.split(raw)
    ref = Reference()
    size: int | None = None  # bytes of the current block's data, None before its first data line
    for i, piece in enumerate(pieces):
        if len(piece) > max_line_length:
            return ref, LineTooLong
        if i == len(pieces) - 1:
            break  # the unterminated last line is never processed
        if piece == b"":
            size = None
        else:
            name, _, value = piece.partition(b":")
            if name == b"data":
                value = value[1:] if value.startswith(b" ") else value
                size = len(value) if size is None else size + 1 + len(value)
                if size > max_event_size:
                    return ref, EventTooLarge
        ref.line(piece.decode("utf-8", "replace"))
    return ref, None


# -- stream grammar --------------------------------------------------------------------------

SPECIAL_CHARS = [
    "\x00",
    " ",
    "\t",
    ":",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "é",
    "€",
    "😀",
    "\U0010ffff",
    "\ufffd",
    "\r",
    "\n",
]
INVALID_BYTES = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf4\x90\x80\x80",
    b"\xef",
    b"\xef\xbb",
    BOM,
]

# Characters come from a fixed alphabet (one to four UTF-8 bytes, the characters the rules
# single out, look-alike digits), which is much cheaper to generate and shrink than
# st.characters(); any code point at all comes in as a fragment of its own.
ALPHABET = [
    *"abcxyz019 :",
    *SPECIAL_CHARS,
    *("ß", "Ω", "中", "\u0663", "\uff15", "\U0001d7d3", "\U0001f600", "\U000e0001"),
]
any_char = st.integers(0, 0x10FFFF).map(lambda c: "\ufffd" if 0xD800 <= c < 0xE000 else chr(c))
fragments = st.one_of(
    st.text(st.sampled_from(ALPHABET), min_size=1, max_size=6).map(str.encode),
    st.text(st.sampled_from(ALPHABET), min_size=1, max_size=6).map(str.encode),
    st.sampled_from(INVALID_BYTES),
    any_char.map(str.encode),
)
values = st.lists(fragments, max_size=3).map(b"".join)
retry_values = st.one_of(
    st.integers(0, 10**15).map(lambda n: str(n).encode()),
    st.sampled_from(
        [b"", b"+5", b"-5", b" 5", b"5 ", b"5.0", b"1_0", b"007", b"1e3", b"0x1", b"\t5"]
        + [s.encode() for s in ("\u0663", "\uff15", "\u00b2", "\U0001d7d3")]
    ),
    values,
)
id_values = st.one_of(values, st.sampled_from([b"1", b"\x00", b"a\x00b", b"2\x00", b"", b" "]))
KNOWN_NAMES = ["data", "data", "data", "data", "event", "event", "id", "id", "retry", "retry"]
ODD_NAMES = ["Data", "ID", "Retry", "foo", "", " data", "data ", "\ufeffdata", "dat", "datax"]
field_names = st.one_of(
    st.sampled_from(KNOWN_NAMES).map(str.encode),
    st.sampled_from(KNOWN_NAMES).map(str.encode),
    st.sampled_from(ODD_NAMES).map(str.encode),
    values,
)
separators = st.sampled_from([b":", b": ", b": ", b":  ", None])


@st.composite
def field_lines(draw: st.DrawFn) -> bytes:
    name = draw(field_names)
    separator = draw(separators)
    if separator is None:
        return name
    if name == b"retry":
        value = draw(retry_values)
    elif name == b"id":
        value = draw(id_values)
    else:
        value = draw(values)
    return name + separator + value


lines = st.one_of(
    field_lines(),
    field_lines(),
    field_lines(),
    st.just(b""),
    values.map(lambda v: b":" + v),
    st.binary(max_size=6),
)
data_lines = st.builds(
    lambda sep, value: b"data" + sep + value, st.sampled_from([b":", b": ", b": ", b":  "]), values
)
line_endings = st.sampled_from([b"\n", b"\r", b"\r\n"])


@st.composite
def blocks(draw: st.DrawFn) -> list[bytes]:
    """The lines of one block: a few lines, most often with a data line among them."""
    block = draw(st.lists(lines, max_size=5))
    if draw(st.integers(0, 3)):
        block.insert(draw(st.integers(0, len(block))), draw(data_lines))
    return block


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    parts = [draw(st.sampled_from([b"", b"", b"", BOM, BOM + BOM, b"\xef\xbb", b"\xef", b"\n"]))]
    for block in draw(st.lists(blocks(), min_size=1, max_size=8)):
        for line in [*block, b""]:  # each block ends with a blank line...
            parts.append(line)
            parts.append(draw(line_endings))
    last = draw(blocks())  # ...except the last, which the stream may cut off
    if draw(st.booleans()):
        # An ID in a block that never ends must not become the last event ID.
        last.insert(draw(st.integers(0, len(last))), b"id:" + draw(id_values))
    for line in last:
        parts.append(line)
        parts.append(draw(line_endings))
    if draw(st.booleans()):
        parts.append(draw(lines))  # an unterminated last line
    return b"".join(parts)


@st.composite
def server_streams(draw: st.DrawFn) -> bytes:
    """Well-formed streams as servers write them: one line ending throughout, "name: value"
    fields, most blocks ended by a blank line."""
    eol = draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"]))
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        for name in draw(st.lists(st.sampled_from([b"id", b"event", b"retry", b""]), max_size=3)):
            strategy = {b"id": id_values, b"retry": retry_values}.get(name, values)
            out.append(name + b": " + draw(strategy) + eol)
        for _ in range(draw(st.integers(0, 2))):
            out.append(b"data: " + draw(values) + eol)
        if draw(st.integers(0, 4)):
            out.append(eol)
    return b"".join(out)


any_stream = st.one_of(streams(), streams(), server_streams(), st.binary(max_size=200))


def draw_chunks(data: st.DataObject, raw: bytes) -> list[bytes]:
    """Any chunking of raw: random cut points (empty chunks allowed), fixed sizes, bytes, or
    cuts at line boundaries only."""
    mode = data.draw(
        st.sampled_from(
            ["cuts", "cuts", "fixed", "bytes", "line-cuts", "line-cuts", *LINE_CHUNKINGS]
        ),
        label="mode",
    )
    if mode in LINE_CHUNKINGS:
        return LINE_CHUNKINGS[mode](raw)
    if mode == "line-cuts":
        # Cuts only at line boundaries, as servers flush: a random subset of them.
        ends = line_ends(raw) or [0]
        cuts = sorted(set(data.draw(st.lists(st.sampled_from(ends), max_size=12), label="cuts")))
        bounds = [0, *cuts, len(raw)]
        return [raw[a:b] for a, b in itertools.pairwise(bounds)]
    if mode == "bytes":
        return [raw[i : i + 1] for i in range(len(raw))]
    if mode == "fixed":
        size = data.draw(st.integers(1, 9), label="size")
        return [raw[i : i + size] for i in range(0, len(raw), size)]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=16), label="cuts"))
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def run(
    chunks: list[bytes], items: bool = False, **kwargs: object
) -> tuple[list[Any], str, int | None, str]:
    """Feed chunks; return (results, last_event_id before close, retry, last_event_id after)."""
    decoder = SSEDecoder(**kwargs)  # type: ignore[arg-type]
    out: list[Any] = []
    for chunk in chunks:
        out += decoder.feed_items(chunk) if items else decoder.feed(chunk)
    before = decoder.last_event_id
    assert decoder.close() == []
    return out, before, decoder.retry, decoder.last_event_id


def key(item: Event | Comment) -> tuple[Any, ...]:
    return as_tuple(item) if isinstance(item, Event) else ("comment", item.text)


# -- (a) chunking invariance -----------------------------------------------------------------


@SETTINGS
@given(raw=any_stream, data=st.data())
def test_any_chunking_gives_the_same_result_as_one_chunk(raw: bytes, data: st.DataObject) -> None:
    chunks = draw_chunks(data, raw)
    assert b"".join(chunks) == raw
    whole = run([raw])
    split = run(chunks)
    assert [as_tuple(e) for e in split[0]] == [as_tuple(e) for e in whole[0]]
    assert split[1:] == whole[1:]
    whole_items = run([raw], items=True)
    split_items = run(chunks, items=True)
    assert [key(i) for i in split_items[0]] == [key(i) for i in whole_items[0]]
    assert [i for i in split_items[0] if isinstance(i, Event)] == split[0]
    assert list(iter_events(iter(chunks))) == split[0]
    for view in (False, True):
        assert feed_all(SSEDecoder(), reused_buffer(chunks, view)) == split[0]
        assert list(iter_events(reused_buffer(chunks, view))) == split[0]


# -- (b) robustness --------------------------------------------------------------------------


@CHEAP_SETTINGS
@given(raw=st.binary(max_size=400), data=st.data())
def test_arbitrary_bytes_never_raise_with_default_limits(raw: bytes, data: st.DataObject) -> None:
    events, _, retry, last_id = run(draw_chunks(data, raw))
    assert all(type(e) is Event for e in events)
    assert all(isinstance(e.data, str) and isinstance(e.id, str) for e in events)
    assert retry is None or (type(retry) is int and retry >= 0)
    assert isinstance(last_id, str)
    assert "\x00" not in last_id


@SETTINGS
@given(
    raw=st.one_of(any_stream, st.binary(max_size=200)),
    max_line_length=st.integers(2, 40),
    max_event_size=st.integers(1, 40),
    data=st.data(),
)
def test_small_limits_raise_only_limit_errors_and_lose_no_event(
    raw: bytes, max_line_length: int, max_event_size: int, data: st.DataObject
) -> None:
    chunks = draw_chunks(data, raw)
    decoder = SSEDecoder(max_line_length=max_line_length, max_event_size=max_event_size)
    events: list[Event] = []
    raised: LimitExceeded | None = None
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except LimitExceeded as exc:  # anything else propagates and fails the test
        raised = exc
        events += exc.events
    ref, expected_error = reference_decode_with_limits(raw, max_line_length, max_event_size)
    if raised is None:
        assert expected_error is None
    else:
        assert type(raised) is expected_error
        assert raised.value == (
            max_line_length if expected_error is LineTooLong else max_event_size
        )
    # Every event dispatched before the offending line is delivered, and nothing else.
    assert [as_tuple(e) for e in events] == [as_tuple(e) for e in ref.events]


# -- (c) agreement with the reference decoder ------------------------------------------------


@SETTINGS
@given(raw=any_stream, data=st.data())
def test_decoder_matches_reference(raw: bytes, data: st.DataObject) -> None:
    ref = reference_decode(raw)
    chunks = draw_chunks(data, raw)
    events, _, retry, _ = run(chunks)
    assert [as_tuple(e) for e in events] == [as_tuple(e) for e in ref.events]
    assert retry == ref.retry
    items, _, _, _ = run(chunks, items=True)
    assert [key(i) for i in items] == [key(i) for i in ref.items]
    # The two references agree with each other when no limit can be hit.
    limited, error = reference_decode_with_limits(raw, 1 << 30, 1 << 30)
    assert error is None
    assert limited.items == ref.items


@SETTINGS
@given(raw=server_streams(), data=st.data())
def test_server_shaped_streams_flushed_line_by_line_match_reference(
    raw: bytes, data: st.DataObject
) -> None:
    # Servers flush at line or event boundaries: "id: 7\n" in one chunk and "data: x\n\n" in
    # the next is the everyday case, and the one a whole-chunk fast path must get right.
    ref = reference_decode(raw)
    mode = data.draw(st.sampled_from([*LINE_CHUNKINGS, "line-cuts"]), label="mode")
    if mode == "line-cuts":
        ends = line_ends(raw) or [0]
        cuts = sorted(set(data.draw(st.lists(st.sampled_from(ends), max_size=12), label="cuts")))
        chunks = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])]
    else:
        chunks = LINE_CHUNKINGS[mode](raw)
    events, _, retry, last_id = run(chunks)
    assert [as_tuple(e) for e in events] == [as_tuple(e) for e in ref.events]
    assert (retry, last_id) == (ref.retry, ref.id_string)
    assert [as_tuple(e) for e in iter_events(iter(chunks))] == [as_tuple(e) for e in ref.events]


@SETTINGS
@given(raw=any_stream, data=st.data())
def test_last_event_id_after_close_matches_reference(raw: bytes, data: st.DataObject) -> None:
    # After the end of a stream the decoder carries over the event source's last event ID
    # string, which only a dispatch (a blank line) sets: that is what a reconnect sends, and
    # what the next stream's events carry until it sets another.
    ref = reference_decode(raw)
    decoder = SSEDecoder()
    for chunk in draw_chunks(data, raw):
        decoder.feed(chunk)
    assert decoder.close() == []
    assert decoder.last_event_id == ref.id_string
    # Both a whole-event chunk and a block that needs the general path.
    assert [e.id for e in decoder.feed(b"data: next\n\n")] == [ref.id_string]
    assert [e.id for e in decoder.feed(b"event: t\ndata: next\n\n")] == [ref.id_string]
    decoder.close()
    assert [e.id for e in decoder.feed(b"event: t\ndata: next\n\n")] == [ref.id_string]


# -- the reference itself ----------------------------------------------------------------------


def test_reference_decoder_sanity() -> None:
    ref = reference_decode(
        BOM + b"retry: 5\r\n: hi\rid: 1\nevent: t\ndata: a\ndata\n\n" + BOM + b"data: x\n\n"
        b"id: 2\ndata: b\r\rid: 3\ndata: c\n"
    )
    assert [as_tuple(e) for e in ref.events] == [("t", "a\n", "1", 5), ("message", "b", "2", None)]
    assert ref.items[0] == Comment(" hi")
    assert (ref.retry, ref.id_buffer, ref.id_string) == (5, "3", "2")
    limited, error = reference_decode_with_limits(b"data: 12\n\ndata: 123\n\n", 20, 2)
    assert error is EventTooLarge
    assert [e.data for e in limited.events] == ["12"]
    limited, error = reference_decode_with_limits("data: é\ndata\n\n".encode(), 20, 3)
    assert error is None
    assert [e.data for e in limited.events] == ["é\n"]
    _, error = reference_decode_with_limits("data: é\ndata: \n\n".encode(), 20, 2)
    assert error is EventTooLarge
    limited, error = reference_decode_with_limits(b"data: 1\n\n:" + b"x" * 9, 9, 100)
    assert error is LineTooLong
    assert [e.data for e in limited.events] == ["1"]
