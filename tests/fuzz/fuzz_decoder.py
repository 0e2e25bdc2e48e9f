"""Coverage-guided fuzzing of :class:`SSEDecoder` and :func:`iter_events` with atheris.

Run from the repository root (``pip install atheris``; Linux x86_64 wheels only)::

    python -m tests.fuzz.fuzz_decoder -atheris_runs=200000
    python -m tests.fuzz.fuzz_decoder CORPUS_DIR --add-seeds -max_total_time=600

Any libFuzzer flag works; a directory argument is a corpus that new inputs are saved to, and
``--add-seeds`` (ours) first writes the hand-made ``SEEDS`` into it, which reach the rarer paths
in far fewer runs than starting from nothing.

atheris.FuzzedDataProvider splits each input into a configuration (small limits or the defaults,
``feed`` or ``feed_items``, a list of chunk sizes) and a byte stream, fed in those chunks.
Checked on every input:

1. Feeding never raises anything but :class:`LimitExceeded` (any other exception escapes to
   atheris as a crash), and with the default limits never raises at all.
2. With no error, the items and the final ``last_event_id``/``retry`` equal those from feeding
   the whole stream as one chunk to an unlimited decoder: chunking never changes the result, and
   a limit that is never exceeded changes nothing either.  ``iter_events`` and ``decode`` agree.
3. On a limit error, everything delivered before it (earlier feeds plus ``error.events``) is a
   prefix of that one-chunk result, the error repeats on later feeds, and ``close()`` recovers.
4. After every feed the private buffers are within the limits: the unfinished line (the end of
   ``_parts``, with ``_room`` the bytes it may still take), whole lines held with it (only while
   no event is open, never a blank line, at most ``_SMALL`` bytes) and the open event's data
   (``_data``, ``_dsize``).  The decoder checks these after
   each feed, so the strict bound is asserted, not merely "limit plus one chunk".
5. A one-chunk decoder with the same limits ends the same way: the same events, the same error
   class.  The limits are defined on lines and events, not on how the bytes arrived.  Comments
   are left out here: with ``feed_items`` and ``max_event_size``, comments after an oversized
   ``data`` line reach ``error.events`` only if the same chunk carried both (the open event's
   size is checked at the end of each feed), e.g. ``b"data: ab\n:\n\n"`` with a limit of 1
   gives ``[Comment("")]`` as one chunk and ``[]`` cut after the first LF.

A violation raises AssertionError, which atheris reports as a crash, saving the input as
``crash-<sha1>`` (or under ``-artifact_prefix``); pass that file as the only argument to replay it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

# atheris ships no type hints (import-untyped) and has no wheel for some platforms
# (import-not-found); only one of the two applies at a time, hence unused-ignore.
import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

from . import _harness
from ._harness import MAX_CHUNK, MAX_SIZES, SMALL_LIMIT, split

# Instrument the package so that libFuzzer sees which branches of the decoder an input reaches;
# the package __init__ imports every decoder module, so all of them are instrumented here.
with atheris.instrument_imports(include=["sse_sync"]):
    from sse_sync._decoder import (
        _DATA_PREFIX,
        _SMALL,
        DEFAULT_MAX_EVENT_SIZE,
        SSEDecoder,
        decode,
        iter_events,
    )
    from sse_sync._errors import EventTooLarge, LimitExceeded, LineTooLong
    from sse_sync._models import Comment, Event

# A flag scales the chunk sizes by BIG_UNIT, so that one feed can also carry the hundreds of
# lines that make the decoder merge an open event's data lines (more than 256 in one feed).
BIG_UNIT = 64

Item = Event | Comment


class Limits(TypedDict, total=False):
    """Keyword arguments for SSEDecoder and iter_events; a missing key keeps the default."""

    max_line_length: int
    max_event_size: int


@dataclass
class Case:
    """One decoded fuzzer input."""

    stream: bytes
    chunks: list[bytes]
    limits: Limits = field(default_factory=Limits)  # empty: the decoder's defaults
    items: bool = False  # feed_items (comments too) rather than feed

    @property
    def max_line(self) -> int:
        # Without max_line_length a line may be as long as a data line of the largest event.
        return self.limits.get("max_line_length", self.max_event + _DATA_PREFIX)

    @property
    def max_event(self) -> int:
        return self.limits.get("max_event_size", DEFAULT_MAX_EVENT_SIZE)


@dataclass
class Outcome:
    """What a decoder delivered, and the limit error that stopped it, if any."""

    items: list[Item]
    error: LimitExceeded | None = None


def make_case(
    stream: bytes, sizes: list[int], limits: Limits | None = None, items: bool = False
) -> Case:
    return Case(stream, split(stream, sizes), Limits(**(limits or {})), items)


def parse(data: bytes) -> Case:
    # The configuration is read with ConsumeIntInRange only: atheris takes each such value from
    # the end of the input, one byte per value for these ranges, which lets encode() build seeds.
    fdp = atheris.FuzzedDataProvider(data)
    limits = Limits()
    if fdp.ConsumeIntInRange(0, 1):
        # 0 keeps that limit's default, so each limit is also fuzzed on its own.
        if max_line := fdp.ConsumeIntInRange(0, SMALL_LIMIT):
            limits["max_line_length"] = max_line
        if max_event := fdp.ConsumeIntInRange(0, SMALL_LIMIT):
            limits["max_event_size"] = max_event
    items = bool(fdp.ConsumeIntInRange(0, 1))
    unit = BIG_UNIT if fdp.ConsumeIntInRange(0, 1) else 1
    count = fdp.ConsumeIntInRange(0, MAX_SIZES)
    sizes = [fdp.ConsumeIntInRange(0, MAX_CHUNK) * unit for _ in range(count)]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    return make_case(stream, sizes, limits, items)


def encode(
    stream: bytes, sizes: list[int], limits: Limits | None = None, items: bool = False
) -> bytes | None:
    """The fuzzer input that parse() reads as this case, or None if this atheris reads it
    differently (the byte layout is atheris's, not a documented format)."""
    values = (
        [1, limits.get("max_line_length", 0), limits.get("max_event_size", 0)] if limits else [0]
    )
    unit = BIG_UNIT if any(size > MAX_CHUNK for size in sizes) else 1
    # Every range starts at 0, so a byte is its value.
    values += [int(items), int(unit > 1), len(sizes), *(size // unit for size in sizes)]
    data = stream + bytes(reversed(values))
    return data if parse(data) == make_case(stream, sizes, limits, items) else None


_EVERYTHING = (
    b"\xef\xbb\xbf: hi\r\nevent: e\r\nid: 1\rretry: 100\ndata: a\ndata:b\n\ndata: x\n\n:c\nid\n"
    b"data\n\nid: a\x00b\nretry: 1x\nfoo: bar\ndata: \xff\xfe\xc3\xa9\n\n"
)

SEEDS: list[tuple[bytes, list[int], Limits, bool]] = [
    # (stream, chunk sizes, limits, feed_items): one input for each path worth starting from.
    (_EVERYTHING, [MAX_CHUNK], {}, True),
    (_EVERYTHING, [], {}, False),  # one byte per chunk
    (_EVERYTHING, [2, 3, 0, 5], {}, True),
    (b"data: a\n\ndata: b\n\ndata: c\r\n\r\n", [9], {}, False),  # feed()'s fast path
    (
        b"data: a\n\ndata: bc\n\ndata: \xc3\xa9\n\nid: 1\ndata: d\n\ndata: e\n\n",
        [19, 48],
        {},
        False,
    ),
    (b"data: a\n\ndata: bc\n\ndata: defghi\n\n", [MAX_CHUNK], {"max_event_size": 5}, False),
    (b"data: a\r\r\ndata: b\r\n\r\n", [8], {}, False),  # a CR ends a chunk, its LF starts one
    (b"\xef\xbb\xbfdata: x\n\n", [1, 2], {}, False),  # a BOM split across chunks
    (b"retry: " + b"9" * 641 + b"\n\ndata: x\n\n", [MAX_CHUNK], {}, False),  # too many digits
    (b"data: abc\ndata: def\n\nevent: toolongline\n\n", [4], {"max_line_length": 8}, False),
    (b"data: ab\n:\ndata: cd\n\n", [3], {"max_event_size": 3}, True),
    # 300 data lines: one feed of them all (the reference's), one of 268 and one of the rest.
    (b"data\n" * 300 + b"\n", [21 * BIG_UNIT], {}, False),
    (
        b"data: a\n\ndata: bcdef\n\n",
        [MAX_CHUNK],
        {"max_line_length": 9, "max_event_size": 4},
        False,
    ),
]


def write_seeds(directory: Path) -> int:
    """Write SEEDS as fuzzer inputs into ``directory``; return how many this atheris reads back."""
    return _harness.write_seeds(directory, SEEDS, encode)


def check_buffers(decoder: SSEDecoder, case: Case) -> None:
    """Property 4: what the decoder holds between feeds is within its limits."""
    held = b"".join(decoder._parts)
    lines, _, unfinished = held.rpartition(b"\n")
    assert decoder._max_line == case.max_line, f"line limit {decoder._max_line}"
    assert decoder._room == case.max_line - len(unfinished), f"_room {decoder._room} for {held!r}"
    assert len(unfinished) <= case.max_line, f"unfinished line of {len(unfinished)} bytes held"
    assert 13 not in held, f"a CR held: {held!r}"
    if lines:
        # Whole lines wait with the unfinished one only while no event is open, and only until
        # a blank line could end their event.
        assert decoder._idle, f"lines held with an event open: {held!r}"
        assert not case.items, f"lines held for feed_items(): {held!r}"
        assert len(lines) < _SMALL, f"{len(lines)} bytes of whole lines held"
        assert b"\n\n" not in held, f"a blank line held: {held!r}"
        assert held[0] != 10, f"a blank line held: {held!r}"
    data = decoder._data
    joined = sum(map(len, data)) + len(data) - 1 if data else 0
    assert joined <= case.max_event, f"open event of {joined} bytes held"
    # _dsize is what the size check runs on: if it drifted from the data, the bound would too.
    assert decoder._dsize == (joined + 1 if data else 0), f"_dsize {decoder._dsize} for {data!r}"
    assert decoder._bom is None or len(decoder._bom) < 3, f"BOM buffer {decoder._bom!r}"


def check_error(error: LimitExceeded, case: Case) -> None:
    # An error names the limit that was configured, and only a configured limit can be hit.
    if isinstance(error, LineTooLong):
        assert "max_line_length" in case.limits, f"{error!r} with the default line limit"
        assert error.value == case.max_line, f"{error!r} for max_line_length={case.max_line}"
    else:
        assert isinstance(error, EventTooLarge), f"unexpected limit error {error!r}"
        assert "max_event_size" in case.limits, f"{error!r} with the default event limit"
        assert error.value == case.max_event, f"{error!r} for max_event_size={case.max_event}"


def reference(case: Case) -> tuple[list[Item], str, int | None]:
    """The whole stream as one chunk, to a decoder without limits: it must never fail."""
    decoder = SSEDecoder(max_line_length=None, max_event_size=None)
    items: list[Item] = list(
        decoder.feed_items(case.stream) if case.items else decoder.feed(case.stream)
    )
    assert decoder.close() == [], "close() returned events"
    return items, decoder.last_event_id, decoder.retry


def one_chunk(case: Case) -> Outcome:
    """The whole stream as one chunk, to a decoder with the case's limits."""
    decoder = SSEDecoder(**case.limits)
    try:
        return Outcome(
            list(decoder.feed_items(case.stream) if case.items else decoder.feed(case.stream))
        )
    except LimitExceeded as exc:
        return Outcome(list(exc.events), exc)


def chunked(case: Case) -> tuple[Outcome, SSEDecoder]:
    decoder = SSEDecoder(**case.limits)
    feed = decoder.feed_items if case.items else decoder.feed
    got: list[Item] = []
    for chunk in case.chunks:
        try:
            got += feed(chunk)
        except LimitExceeded as exc:
            check_error(exc, case)
            got += exc.events
            check_after_error(decoder, exc, case)
            return Outcome(got, exc), decoder
        # Any other exception propagates: property 1 is then violated and atheris reports it.
        check_buffers(decoder, case)
    return Outcome(got), decoder


def check_after_error(decoder: SSEDecoder, error: LimitExceeded, case: Case) -> None:
    # The failed stream's buffers are freed at once, not kept until close().
    assert not decoder._parts, f"line pieces kept after {error!r}"
    assert not decoder._data, f"event data kept after {error!r}"
    # The stream stays failed: even a chunk shaped for feed()'s fast path raises again.
    again: LimitExceeded | None = None
    try:
        decoder.feed(b"data: x\n\n")
    except LimitExceeded as exc:
        again = exc
    assert type(again) is type(error), f"feed() after {error!r} raised {again!r}"
    # close() starts a new stream that decodes normally.
    assert decoder.close() == [], "close() returned events"
    if case.max_line >= len(b"data: x"):
        events = decoder.feed(b"data: x\n\n")
        assert [e.data for e in events] == ["x"], f"after close(): {events!r}"
    else:
        assert decoder.feed(b"\n") == [], "a blank line after close() gave events"


def via_iter_events(case: Case) -> Outcome:
    got: list[Item] = []
    try:
        for event in iter_events(case.chunks, **case.limits):
            got.append(event)
    except LimitExceeded as exc:
        return Outcome(got + exc.events, exc)
    return Outcome(got)


def check_prefix(got: list[Item], want: list[Item], what: str) -> None:
    assert got == want[: len(got)], f"{what}: {got!r} is not a prefix of {want!r}"


def fuzz_one_input(data: bytes) -> None:
    case = parse(data)
    want, want_id, want_retry = reference(case)
    outcome, decoder = chunked(case)

    if outcome.error is None:
        # Properties 1 and 2 (the default limits are far above any fuzzer input's size, so with
        # them no error is the only correct outcome; a missing error is caught by 5 below).
        assert outcome.items == want, f"chunked {outcome.items!r} != one chunk {want!r}"
        assert decoder.last_event_id == want_id, f"last_event_id {decoder.last_event_id!r}"
        assert decoder.retry == want_retry, f"retry {decoder.retry!r} != {want_retry!r}"
        assert decoder.close() == [], "close() returned events"
        assert (decoder.last_event_id, decoder.retry) == (want_id, want_retry), "close() lost state"
    else:
        assert case.limits, f"{outcome.error!r} with the default limits"
        check_prefix(outcome.items, want, f"before {outcome.error!r}")  # property 3

    whole = one_chunk(case)  # property 5
    assert type(whole.error) is type(outcome.error), (
        f"one chunk ended with {whole.error!r}, chunked with {outcome.error!r}"
    )
    # Comments included: an oversized event is caught at the line that makes it so, whatever
    # the chunking, so nothing after that line is decoded either way.
    assert whole.items == outcome.items, f"one chunk {whole.items!r} != chunked {outcome.items!r}"

    if not case.items:
        assert decode(case.stream, max_line_length=None, max_event_size=None) == want, "decode()"
        # iter_events holds chunks without a line break and has feed()'s fast path inlined.
        lazy = via_iter_events(case)
        if lazy.error is None:
            assert lazy.items == want, f"iter_events {lazy.items!r} != one chunk {want!r}"
            assert outcome.error is None, f"iter_events missed {outcome.error!r}"
        else:
            check_error(lazy.error, case)
            check_prefix(lazy.items, want, f"iter_events before {lazy.error!r}")


def main(argv: list[str]) -> None:
    _harness.main(argv, fuzz_one_input, write_seeds)


if __name__ == "__main__":
    main(sys.argv)
