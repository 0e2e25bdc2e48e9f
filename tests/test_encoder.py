"""Tests for the encoder (sse_sync._encoder): exact bytes, errors, round trips, EventWriter."""

from __future__ import annotations

import functools
import queue
import threading
from typing import Any
from wsgiref.util import is_hop_by_hop

import pytest
from _net import BackgroundCall
from hypothesis import given
from hypothesis import strategies as st

from sse_sync import Comment, Event, SSEDecoder, SSEError, decode, iter_events
from sse_sync._encoder import (
    HEARTBEAT,
    SSE_HEADERS,
    EventWriter,
    SendTimeout,
    WriterClosed,
    encode,
    encode_event,
)

# -- exact bytes ----------------------------------------------------------------------------------


class _Str(str):
    """A str subclass: encode() takes its general path, which must give the same bytes."""


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": "a\nb\nc"}, b"data: a\ndata: b\ndata: c\n\n"),
        ({"data": "a\r\nb\rc\n"}, b"data: a\ndata: b\ndata: c\ndata: \n\n"),
        ({"data": "\r\n"}, b"data: \ndata: \n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": " lead and trail "}, b"data:  lead and trail \n\n"),
        ({"data": _Str("a\r\nb")}, b"data: a\ndata: b\n\n"),
        ({"comment": "hi"}, b":hi\n\n"),
        ({"comment": ""}, b":\n\n"),
        ({"comment": "a\r\nb\rc\nd"}, b":a\n:b\n:c\n:d\n\n"),
        ({"id": ""}, b"id: \n\n"),
        ({"retry": 0}, b"retry: 0\n\n"),
        ({"data": "x", "event": ""}, b"data: x\n\n"),
        ({"data": "x", "event": "message"}, b"event: message\ndata: x\n\n"),
        ({"event": "ping"}, b"event: ping\n\n"),
        (
            {"data": "x\ny", "event": "update", "id": "42", "retry": 3000, "comment": "note"},
            b":note\nevent: update\nid: 42\nretry: 3000\ndata: x\ndata: y\n\n",
        ),
        (
            {"data": "h\u00e9llo \u2713 \U0001f389", "event": "\u00fcn\u00ef", "id": "\u00df"},
            "event: \u00fcn\u00ef\nid: \u00df\ndata: h\u00e9llo \u2713 \U0001f389\n\n".encode(),
        ),
    ],
)
def test_encode_exact_bytes(kwargs: dict[str, Any], expected: bytes) -> None:
    assert encode(**kwargs) == expected


def test_encode_event_omits_default_type_and_empty_id() -> None:
    assert encode_event(Event()) == b"data: \n\n"
    assert encode_event(Event("message", "x", "", None)) == b"data: x\n\n"
    assert (
        encode_event(Event("tick", "1\n2", "7", 10))
        == b"event: tick\nid: 7\nretry: 10\ndata: 1\ndata: 2\n\n"
    )


def test_writer_heartbeat_is_an_empty_comment() -> None:
    assert HEARTBEAT == b":\n\n"
    assert decode(HEARTBEAT) == []
    assert SSEDecoder().feed_items(HEARTBEAT) == [Comment("")]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": "x", "event": "a\nb"}, "event"),
        ({"data": "x", "event": "a\rb"}, "event"),
        ({"data": "x", "event": "\r\n"}, "event"),
        ({"data": "x", "id": "a\nb"}, "id"),
        ({"data": "x", "id": "a\rb"}, "id"),
        ({"data": "x", "id": "a\0b"}, "id"),
        ({"data": "x", "retry": -1}, "retry"),
        ({"data": "x", "retry": True}, "retry"),
        ({"data": "x", "retry": False}, "retry"),
        ({"data": "x", "retry": 1.5}, "retry"),
        ({"data": "x", "retry": "5"}, "retry"),
        ({"data": "x", "retry": 10**5000}, "retry"),
        ({"data": "\ud800"}, "data"),
        ({"data": "ok\r\nstill ok \udfff"}, "data"),
        ({"data": "\ud800", "event": "e"}, "data"),
        ({"data": "x", "event": "\udc00"}, "event"),
        ({"data": "x", "id": "x\udfff"}, "id"),
        ({"data": "x", "comment": "\ud800"}, "comment"),
        ({"data": b"x"}, "data"),
        ({"data": 1}, "data"),
        ({"data": "x", "event": 5}, "event"),
        ({"data": "x", "id": 1}, "id"),
        ({"data": "x", "comment": b"x"}, "comment"),
    ],
)
def test_encode_rejects_unrepresentable_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} ") as info:
        encode(**kwargs)
    assert not isinstance(info.value, UnicodeError)


def test_lone_surrogate_error_gives_position() -> None:
    with pytest.raises(ValueError, match=r"lone surrogate '\\udfff' at index 3"):
        encode("abc\udfff")


@pytest.mark.parametrize("kwargs", [{}, {"event": ""}])
def test_encode_rejects_an_empty_message(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="nothing to encode"):
        encode(**kwargs)


# -- round trips ----------------------------------------------------------------------------------

_SPECIAL = "\n\r \0:\ufeff\x85\u2028\u00e9\U0001f389"


def _text(exclude: str) -> st.SearchStrategy[str]:
    """Any text without surrogates or the excluded characters, rich in line-ish characters."""
    special = [c for c in _SPECIAL if c not in exclude]
    chars = st.characters(exclude_categories=["Cs"], exclude_characters=exclude)
    return st.text(st.sampled_from(special) | chars)


_types = _text("\r\n")  # "" allowed: it decodes as "message"
_datas = _text("\r")
_ids = st.none() | _text("\r\n\0")
_retries = st.none() | st.integers(min_value=0)
_comments = st.none() | _text("")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(event=_types, data=_datas, id=_ids, retry=_retries, comment=_comments)
def test_round_trip_one_event(
    event: str, data: str, id: str | None, retry: int | None, comment: str | None
) -> None:
    body = encode(data, event=event, id=id, retry=retry, comment=comment)
    assert decode(body) == [Event(event or "message", data, id or "", retry)]


@given(data=_text(""))
def test_line_breaks_in_data_arrive_as_lf(data: str) -> None:
    body = encode(data)
    assert decode(body) == [Event("message", _normalise(data), "", None)]
    # The fast path (a plain str alone) and the general path agree.
    assert body == encode(_Str(data)) == encode(data, event="")


@given(comment=_text(""))
def test_comment_round_trip(comment: str) -> None:
    items = SSEDecoder().feed_items(encode(comment=comment))
    assert items == [Comment(line) for line in _normalise(comment).split("\n")]


_messages = st.lists(st.tuples(st.none() | _datas, _types, _ids, _retries), max_size=20)


@given(messages=_messages, chunking=st.data())
def test_round_trip_many_events(
    messages: list[tuple[str | None, str, str | None, int | None]], chunking: st.DataObject
) -> None:
    bodies: list[bytes] = []
    expected: list[Event] = []
    last_id = ""
    for data, event, id, retry in messages:
        if data is None and not event and id is None and retry is None:
            continue  # nothing to encode
        bodies.append(encode(data, event=event, id=id, retry=retry))
        if id is not None:
            last_id = id  # an id persists until the next id line, even without an event
        if data is not None:
            expected.append(Event(event or "message", data, last_id, retry))
    body = b"".join(bodies)
    assert decode(body) == expected
    cuts = sorted(chunking.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert list(iter_events(chunks)) == expected


_events = st.builds(
    Event,
    _types.map(lambda t: t or "message"),  # a decoder never reports an empty type
    _datas,
    _ids.map(lambda i: i or ""),
    _retries,
)


@given(ev=_events)
def test_event_round_trip(ev: Event) -> None:
    assert decode(encode_event(ev)) == [ev]
    assert decode(ev.encode()) == [ev]


# -- SSE_HEADERS ----------------------------------------------------------------------------------


def test_sse_headers() -> None:
    assert SSE_HEADERS["Content-Type"] == "text/event-stream; charset=utf-8"
    assert SSE_HEADERS["Cache-Control"] == "no-cache"
    assert SSE_HEADERS["X-Accel-Buffering"] == "no"
    assert not [name for name in SSE_HEADERS if is_hop_by_hop(name)]
    with pytest.raises(TypeError):
        SSE_HEADERS["Connection"] = "keep-alive"  # type: ignore[index]


# -- EventWriter ----------------------------------------------------------------------------------


def test_writer_yields_in_order_and_ends_after_close() -> None:
    w = EventWriter(heartbeat=None)
    w.send("a")
    w.send("b\nc", event="e", id="1", retry=5)
    w.comment("note")
    w.send_event(Event("x", "y", "2"))
    before = w.closed
    w.close()
    assert (before, w.closed) == (False, True)
    assert list(w) == [
        b"data: a\n\n",
        b"event: e\nid: 1\nretry: 5\ndata: b\ndata: c\n\n",
        b":note\n\n",
        b"event: x\nid: 2\ndata: y\n\n",
    ]
    assert list(w) == []


def test_writer_send_raises_value_error_and_queues_nothing() -> None:
    w = EventWriter(heartbeat=None)
    with pytest.raises(ValueError, match=r"^event "):
        w.send("x", event="a\nb")
    with pytest.raises(ValueError, match=r"^data "):
        w.send("\ud800")
    w.close()
    assert list(w) == []


def test_writer_heartbeat_when_idle() -> None:
    w = EventWriter(heartbeat=0.01)
    it = iter(w)
    assert next(it) == HEARTBEAT  # nothing was sent: only the heartbeat can end this wait
    assert next(it) == HEARTBEAT
    w.send("x")
    assert next(it) == b"data: x\n\n"  # a pending message comes before any heartbeat
    w.close()
    assert next(it, None) is None


@pytest.mark.timeout(10)
def test_writer_without_heartbeat_waits_for_messages() -> None:
    w = EventWriter(heartbeat=None)
    got: queue.Queue[bytes | None] = queue.Queue()

    def consume() -> None:
        for item in w:
            got.put(item)
        got.put(None)

    with BackgroundCall(consume) as consumer:
        with pytest.raises(queue.Empty):
            got.get(timeout=0.1)  # no heartbeat, however long it waits
        w.send("x")
        assert got.get(timeout=5) == b"data: x\n\n"
        w.close()
        assert got.get(timeout=5) is None
        consumer.join()


@pytest.mark.timeout(10)
def test_close_wakes_a_waiting_consumer() -> None:
    w = EventWriter(heartbeat=60)
    got: queue.Queue[bytes] = queue.Queue()

    def consume() -> list[bytes]:
        items = []
        for item in w:
            items.append(item)
            got.put(item)
        return items

    with BackgroundCall(consume) as consumer:
        w.send("a")
        assert got.get(timeout=5) == b"data: a\n\n"  # the consumer is now waiting for more
        w.close()
        assert consumer.join() == [b"data: a\n\n"]


def test_send_times_out_when_full() -> None:
    w = EventWriter(heartbeat=None, max_pending=2)
    w.send("a")
    w.send("b")
    with pytest.raises(SendTimeout) as info:
        w.send("c", timeout=0.01)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, SSEError)
    with pytest.raises(SendTimeout):
        w.comment("c", timeout=0)
    assert next(w) == b"data: a\n\n"
    w.send("c", timeout=0)  # taking one message made room
    w.close()
    assert list(w) == [b"data: b\n\n", b"data: c\n\n"]


@pytest.mark.timeout(10)
def test_close_wakes_a_producer_blocked_in_send() -> None:
    w = EventWriter(heartbeat=None, max_pending=1)
    w.send("a")
    entering, done = threading.Event(), threading.Event()

    def produce() -> BaseException | None:
        entering.set()
        try:
            w.send("b")
        except WriterClosed as exc:
            return exc
        finally:
            done.set()
        return None

    with BackgroundCall(produce) as producer:
        assert entering.wait(5)
        assert not done.wait(0.05)  # blocked: the writer is full and nobody takes from it
        w.close()
        assert isinstance(producer.join(), WriterClosed)
    assert list(w) == [b"data: a\n\n"]  # queued before close(): still delivered


@pytest.mark.timeout(10)
def test_send_blocks_until_the_consumer_makes_room() -> None:
    w = EventWriter(heartbeat=None, max_pending=1)
    w.send("a")
    done = threading.Event()

    def produce() -> None:
        w.send("b")
        done.set()

    with BackgroundCall(produce) as producer:
        assert not done.wait(0.05)  # blocked until a message is taken
        assert next(w) == b"data: a\n\n"
        producer.join()
    w.close()
    assert list(w) == [b"data: b\n\n"]


def test_send_after_close_raises() -> None:
    w = EventWriter()
    w.close()
    w.close()  # idempotent
    with pytest.raises(WriterClosed):
        w.send("x")
    with pytest.raises(WriterClosed):
        w.send_event(Event())
    with pytest.raises(WriterClosed):
        w.comment()
    assert issubclass(WriterClosed, SSEError)
    assert list(w) == []


def test_writer_as_context_manager_closes() -> None:
    with EventWriter(heartbeat=None) as w:
        w.send("x")
    assert w.closed
    assert list(w) == [b"data: x\n\n"]


@pytest.mark.timeout(10)
def test_consumer_side_close_stops_producer_and_iteration() -> None:
    w = EventWriter(heartbeat=None, max_pending=4)

    def produce() -> int:
        n = 0
        try:
            while True:
                w.send(str(n))
                n += 1
        except WriterClosed:
            return n

    with BackgroundCall(produce) as producer:
        received = []
        for item in w:
            received.append(item)
            if len(received) == 5:
                w.close()  # as a WSGI server does when the client goes away
        sent = producer.join()
    assert 5 <= len(received) <= 5 + 4
    assert received == [encode(str(i)) for i in range(len(received))]
    assert sent == len(received)  # everything queued before close() was still yielded


@pytest.mark.timeout(30)
@pytest.mark.parametrize("heartbeat", [None, 0.001])
def test_ten_thousand_messages_between_threads(heartbeat: float | None) -> None:
    w = EventWriter(heartbeat=heartbeat, max_pending=8)
    n = 10_000

    def produce() -> None:
        with w:
            for i in range(n):
                w.send(str(i), id=str(i))

    with BackgroundCall(produce) as producer:
        received = [item for item in w if item != HEARTBEAT]
        producer.join()
    assert received == [encode(str(i), id=str(i)) for i in range(n)]
    assert decode(b"".join(received))[-1] == Event("message", str(n - 1), str(n - 1))


@pytest.mark.timeout(30)
def test_many_producers_keep_their_own_order() -> None:
    w = EventWriter(heartbeat=None, max_pending=16)
    producers, n = 4, 2500
    started = threading.Barrier(producers)

    def produce(p: int) -> None:
        started.wait()
        for i in range(n):
            w.send(f"{p} {i}")

    threads = [BackgroundCall(functools.partial(produce, p)) for p in range(producers)]
    try:
        received = [next(w) for _ in range(producers * n)]
    finally:
        w.close()
        for t in threads:
            t.join()
    per_producer: dict[str, list[int]] = {}
    for ev in decode(b"".join(received)):
        p, i = ev.data.split()
        per_producer.setdefault(p, []).append(int(i))
    assert per_producer == {str(p): list(range(n)) for p in range(producers)}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heartbeat": 0},
        {"heartbeat": -1},
        {"heartbeat": float("nan")},
        {"heartbeat": float("inf")},
        {"heartbeat": True},
        {"heartbeat": "1"},
        {"max_pending": 0},
        {"max_pending": True},
        {"max_pending": 1.5},
    ],
)
def test_writer_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EventWriter(**kwargs)


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), True])
def test_send_rejects_a_bad_timeout(timeout: float) -> None:
    w = EventWriter()
    with pytest.raises(ValueError, match="timeout"):
        w.send("x", timeout=timeout)
    w.close()
    assert list(w) == []


def test_encode_event_with_last_id_passes_an_id_reset_on() -> None:
    # A relay knows the ID its receiver holds; an empty ID after a set one is a reset.
    events = decode(b"id: 1\ndata: a\n\nid\ndata: b\n\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "", ""]
    relayed = b""
    last = ""
    for ev in events:
        relayed += encode_event(ev, last_id=last)
        last = ev.id
    assert [e.id for e in decode(relayed)] == ["1", "", ""]
    assert relayed.count(b"id:") == 2
    # Without last_id an empty ID writes nothing, so the receiver keeps "1".
    plain = b"".join(encode_event(ev) for ev in events)
    assert [e.id for e in decode(plain)] == ["1", "1", "1"]
