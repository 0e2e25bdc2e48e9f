"""The shared conformance vectors (WHATWG HTML 9.2.5-9.2.6), fed in every listed chunking.

Per-event ``retry`` in a vector is the reconnection time *in effect* at dispatch, which a retry
line in a block that dispatches nothing can change.  ``Event.retry`` only reports a block's own
retry field, so the exact in-effect value is read from ``decoder.retry`` in the byte-by-byte run:
one byte completes at most one line, a retry line takes effect when it is processed and an event
is returned by the feed of the blank line that dispatches it, so ``decoder.retry`` right after
that feed is the value in effect at dispatch.  Every other chunking checks that each reported
``Event.retry`` is the in-effect value and that the reports do not depend on the chunking.
"""

from __future__ import annotations

from typing import Any

import pytest
from _vectors import (
    SHARED_VECTORS_PATH,
    VECTORS_PATH,
    Chunking,
    as_tuple,
    chunkings,
    feed_all,
    feed_items_all,
    load_vectors,
    make_chunks,
    vector_input,
)

import sse_sync
from sse_sync import Comment, Event, SSEDecoder

VECTORS = load_vectors()

CASES = [
    pytest.param(vector, sizes, id=f"{vector['name']}@{label}")
    for vector in VECTORS
    for label, sizes in chunkings(vector)
]


def expected_tuples(vector: dict[str, Any]) -> list[tuple[str, str, str, int | None]]:
    return [(x["type"], x["data"], x["id"], x["retry"]) for x in vector["expected"]]


def test_vectors_copy_is_byte_identical_to_shared() -> None:
    if not SHARED_VECTORS_PATH.is_file():
        pytest.skip(f"shared conformance vectors not found at {SHARED_VECTORS_PATH}")
    assert VECTORS_PATH.read_bytes() == SHARED_VECTORS_PATH.read_bytes(), (
        f"{VECTORS_PATH} differs from {SHARED_VECTORS_PATH}; copy it again"
    )


def test_vectors_are_well_formed() -> None:
    assert len(VECTORS) >= 100
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names)), "vector names must be unique"
    for vector in VECTORS:
        assert set(vector) >= {"name", "input_b64", "chunkings", "expected", "expected_retry"}
        vector_input(vector)  # valid base64
        for sizes in vector["chunkings"]:
            assert sizes
            assert all(isinstance(n, int) and n >= 1 for n in sizes), vector["name"]
        for event in vector["expected"]:
            assert set(event) == {"type", "data", "id", "retry"}, vector["name"]
    # Every vector runs at least whole and byte by byte.
    assert len(CASES) >= 2 * len(VECTORS)


@pytest.mark.parametrize(("vector", "sizes"), CASES)
def test_vector(vector: dict[str, Any], sizes: Chunking) -> None:
    raw = vector_input(vector)
    chunks = make_chunks(raw, sizes)
    assert b"".join(chunks) == raw
    expected = expected_tuples(vector)
    expected_retry = vector["expected_retry"]

    # The reference for Event.retry: the whole input in one feed.
    whole = SSEDecoder()
    baseline = [as_tuple(e) for e in feed_all(whole, [raw])]

    decoder = SSEDecoder()
    events: list[Event] = []
    in_effect: list[int | None] = []
    for chunk in chunks:
        got = decoder.feed(chunk)
        assert all(type(e) is Event for e in got)
        if sizes == [1]:
            assert len(got) <= 1, "one byte can complete at most one line"
            in_effect += [decoder.retry] * len(got)
        events += got
    assert decoder.close() == [], "close() must discard an unfinished event"

    # type, data and last-event-ID, exactly.
    assert [(e.event, e.data, e.id) for e in events] == [x[:3] for x in expected]
    # The reconnection time after the stream.
    assert decoder.retry == expected_retry
    # A retry reported on an event is the one in effect at its dispatch...
    for event, want in zip(events, expected, strict=True):
        if event.retry is not None:
            assert event.retry == want[3], event
    # ...and what is reported does not depend on the chunking.
    assert [as_tuple(e) for e in events] == baseline
    if sizes == [1]:
        # Byte by byte the in-effect value at each dispatch is observable: compare it exactly.
        assert [
            (e.event, e.data, e.id, r) for e, r in zip(events, in_effect, strict=True)
        ] == expected

    # iter_events over the same chunks yields the same events.
    assert [as_tuple(e) for e in sse_sync.iter_events(iter(chunks))] == baseline

    # feed_items: the same events in the same order, plus only Comment items.
    items = feed_items_all(SSEDecoder(), chunks)
    assert all(type(item) in (Event, Comment) for item in items)
    assert [as_tuple(i) for i in items if isinstance(i, Event)] == baseline


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decode(vector: dict[str, Any]) -> None:
    events = sse_sync.decode(vector_input(vector))
    expected = expected_tuples(vector)
    assert [(e.event, e.data, e.id) for e in events] == [x[:3] for x in expected]
    for event, want in zip(events, expected, strict=True):
        assert event.retry is None or event.retry == want[3], event
