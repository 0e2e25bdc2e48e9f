"""Hostile servers: each gets a typed error or a documented recovery, never a hang, and the
client's memory stays bounded by its limits, not by what the server sends.

Most servers are ``sse_sync.testing.SSEServer`` scripts.  Where HTTP itself must be broken (no
response head at all, a chunk header declaring a gibibyte) a small raw socket server on
127.0.0.1 is used instead.  Memory is measured with ``tracemalloc`` (every Python allocation in
the process, reader thread included) as the peak above the level when the stream was opened.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _net import RawServer, wait_for_client_to_leave

import sse_sync
from sse_sync import (
    ContentTypeError,
    EventTooLarge,
    HTTPStatusError,
    IdleTimeout,
    LineTooLong,
    ReadTimeout,
    RetriesExhausted,
    RetryPolicy,
)
from sse_sync.testing import (
    Script,
    SSEServer,
    close,
    comment,
    event,
    hold,
    pause,
    respond,
    send,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

KIB = 1 << 10
MIB = 1 << 20
NO_RETRY: dict[str, Any] = {"retry": None}
FAST = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Yields a list that receives, on exit, the peak of traced memory above the start."""
    result: list[int] = []
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1] - base)
        if not was_tracing:
            tracemalloc.stop()


# -- lines and events without end ---------------------------------------------------------------


def test_endless_line_raises_line_too_long(server: SSEServer) -> None:
    block = b"a" * (64 * KIB)
    # 4 MiB without a line break, far more than the limit; the server is stopped by the client
    # leaving, not by running out of script.
    server.route("/s", [event("before"), send(b"data: ")] + [send(block)] * 64 + [hold()])
    with (
        peak_memory() as peak,
        sse_sync.connect(server.url_for("/s"), max_line_length=64 * KIB) as stream,
    ):
        assert next(stream).data == "before"
        with pytest.raises(LineTooLong) as info:
            next(stream)
    assert info.value.value == 64 * KIB
    assert peak[0] < 16 * MIB
    assert len(server.requests) == 1  # a limit is not retried, even with the default policy
    server.wait_disconnect()


def test_one_enormous_event_raises_event_too_large(server: SSEServer) -> None:
    line = b"data: " + b"x" * 1000 + b"\n"
    # 1000 data lines (about 1 MB of data) and never the blank line that would end the event.
    server.route("/s", [event("before")] + [send(line * 250)] * 4 + [hold()])
    with (
        peak_memory() as peak,
        sse_sync.connect(server.url_for("/s"), max_event_size=64 * KIB) as stream,
    ):
        assert next(stream).data == "before"
        with pytest.raises(EventTooLarge) as info:
            next(stream)
    assert info.value.value == 64 * KIB
    assert peak[0] < 16 * MIB
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "flood",
    [b"\n" * 100_000, b"\r\n" * 100_000, b"\r" * 100_000, b":c\n" * 100_000, b": \r\n" * 100_000],
    ids=["lf", "crlf", "cr", "comments", "comments-crlf"],
)
def test_a_flood_of_blank_lines_or_comments_is_harmless(server: SSEServer, flood: bytes) -> None:
    # Sent in pieces of about 64 KiB, as a real server would write them.
    pieces = [send(flood[i : i + 65536]) for i in range(0, len(flood), 65536)]
    server.route("/s", [*pieces, event("real", id="1"), hold()])
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        got = next(stream)
        stats = stream.stats()
    assert (got.data, got.id) == ("real", "1")
    assert stats.events == 1
    assert stats.bytes >= len(flood)


def test_a_flood_of_comments_reaches_on_comment_in_order(server: SSEServer) -> None:
    server.route("/s", [send(b"".join(b":%d\n" % i for i in range(100_000))), event("real")])
    seen: list[str] = []
    with sse_sync.connect(server.url_for("/s"), comments=True, **NO_RETRY) as stream:
        stream.on_comment(seen.append)
        assert next(stream).data == "real"
    assert len(seen) == 100_000
    assert seen[:3] == ["0", "1", "2"]
    assert seen[-1] == "99999"


# -- bytes that are not what they should be ------------------------------------------------------


def test_invalid_utf8_becomes_replacement_characters(server: SSEServer) -> None:
    server.route(
        "/s",
        [
            send(b"data: a\xffb\xc3\n\n"),  # a stray byte and a truncated sequence
            send(b"event: \xfe\xfe\ndata: typed\n\n"),
            send(b"data: \xed\xa0\x80 surrogate\n\n"),  # UTF-8 cannot encode surrogates
            send(b"data: split \xe2\x82"),  # a valid character split across two writes
            pause(0.05),
            send(b"\xac!\n\n"),
            hold(),
        ],
    )
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        got = [next(stream) for _ in range(4)]
    assert got[0].data == "a\ufffdb\ufffd"
    assert (got[1].event, got[1].data) == ("\ufffd\ufffd", "typed")
    assert got[2].data == "\ufffd\ufffd\ufffd surrogate"
    assert got[3].data == "split €!"


def test_nul_bytes_in_data_are_kept_and_an_id_with_nul_is_ignored(server: SSEServer) -> None:
    server.route(
        "/s",
        [send(b"id: 7\ndata: a\x00b\n\n"), send(b"id: 8\x009\ndata: \x00\x00\n\n"), hold()],
    )
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        first, second = next(stream), next(stream)
    assert (first.data, first.id) == ("a\x00b", "7")
    assert (second.data, second.id) == ("\x00\x00", "7")  # the id field with NUL is ignored
    assert stream.last_event_id == "7"


# -- silence -------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry", [None, sse_sync.RetryPolicy()], ids=["no-retry", "default"])
def test_accepted_but_no_response_head_is_a_read_timeout(retry: RetryPolicy | None) -> None:
    def handler(raw: RawServer, conn: socket.socket, stop: threading.Event) -> None:
        raw.read_request(conn)
        wait_for_client_to_leave(conn, stop)

    with RawServer(handler) as raw:
        started = time.monotonic()
        with pytest.raises(ReadTimeout) as info:
            sse_sync.connect(raw.url, timeout=(2, 0.3), retry=retry)
        elapsed = time.monotonic() - started
        assert len(raw.requests) == 1  # the first connection fails fast
    assert not isinstance(info.value, IdleTimeout)
    assert 0.25 <= elapsed < 2


def test_head_then_silence_is_a_read_timeout(server: SSEServer) -> None:
    server.route("/s", [hold()])
    started = time.monotonic()
    with (
        sse_sync.connect(server.url_for("/s"), timeout=(2, 0.3), **NO_RETRY) as stream,
        pytest.raises(ReadTimeout) as info,
    ):
        next(stream)
    assert type(info.value) is ReadTimeout
    assert time.monotonic() - started < 2


def test_head_then_silence_with_idle_timeout_is_an_idle_timeout(server: SSEServer) -> None:
    server.route("/s", [hold()])
    started = time.monotonic()
    with (
        sse_sync.connect(server.url_for("/s"), idle_timeout=0.3, **NO_RETRY) as stream,
        pytest.raises(IdleTimeout),
    ):
        next(stream)
    assert 0.25 <= time.monotonic() - started < 2


def test_head_then_silence_reconnects_with_the_default_policy(server: SSEServer) -> None:
    # retry: 10 keeps the default policy's wait short; it is all the first connection sends.
    server.route("/s", [[event(retry=10), hold()], [event("after", id="2"), hold()]])
    errors: list[BaseException | None] = []
    with sse_sync.connect(server.url_for("/s"), timeout=(2, 0.3)) as stream:
        stream.on_retry(lambda error, delay: errors.append(error))
        assert next(stream).data == "after"
    assert len(server.requests) == 2
    assert len(errors) == 1
    assert isinstance(errors[0], ReadTimeout)


def test_a_trickle_without_line_breaks_is_an_idle_timeout(server: SSEServer) -> None:
    # One byte every 50 ms: the socket is never silent for the read timeout, but no line ends.
    server.route("/s", [send(b"data: ")] + [send(b"a"), pause(0.05)] * 100 + [hold()])
    started = time.monotonic()
    with sse_sync.connect(server.url_for("/s"), idle_timeout=0.3, **NO_RETRY) as stream:
        with pytest.raises(IdleTimeout):
            next(stream)
        assert stream.stats().bytes > 6  # bytes did arrive
    assert 0.25 <= time.monotonic() - started < 2


@pytest.mark.parametrize("comments", [False, True])
def test_heartbeat_comments_keep_an_idle_timeout_at_bay(server: SSEServer, comments: bool) -> None:
    server.route("/s", [comment(" hb"), pause(0.05)] * 24 + [event("late"), hold()])
    beats: list[str] = []
    started = time.monotonic()
    with sse_sync.connect(
        server.url_for("/s"), idle_timeout=0.3, comments=comments, **NO_RETRY
    ) as stream:
        if comments:
            stream.on_comment(beats.append)
        assert next(stream).data == "late"
        assert stream.stats().connections == 1  # never timed out and reconnected
    assert time.monotonic() - started >= 1.1
    assert beats == ([" hb"] * 24 if comments else [])


def test_on_comment_registered_after_connect_sees_later_heartbeats(server: SSEServer) -> None:
    # on_comment "enables comment decoding"; only comments in the first bytes, which may be
    # read before the handler exists, need comments=True.  Here every comment is written
    # after the handler was registered.
    registered = threading.Event()
    server.route("/s", [wait_for(registered), comment(" hb"), event("x"), hold()])
    beats: list[str] = []
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        stream.on_comment(beats.append)
        registered.set()
        assert next(stream).data == "x"
    assert beats == [" hb"]


# -- not an event stream -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/json", "application/json"),
        ("text/html; charset=utf-8", "text/html; charset=utf-8"),
        (None, "none"),
    ],
    ids=["json", "html", "missing"],
)
def test_wrong_content_type_is_a_content_type_error(
    server: SSEServer, content_type: str | None, named: str
) -> None:
    server.route("/s", Script([send('{"error": "nope"}'), close()], content_type=content_type))
    with pytest.raises(ContentTypeError) as info:
        sse_sync.connect(server.url_for("/s"))  # default policy: not retried
    assert named in str(info.value)
    assert info.value.content_type == (content_type or "")
    assert info.value.status_code == 200
    assert "nope" in info.value.body
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_storm_of_5xx_on_reconnect_exhausts_the_retries(server: SSEServer, status: int) -> None:
    server.route("/s", [[event("a"), close()], [respond(status)]])
    policy = RetryPolicy(max_attempts=5, initial_delay=0, min_delay=0, jitter=0)
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        assert next(stream).data == "a"
        with pytest.raises(RetriesExhausted) as info:
            next(stream)
    assert info.value.attempts == 5
    assert isinstance(info.value.__cause__, HTTPStatusError)
    assert info.value.__cause__.status_code == status
    assert len(server.requests) == 1 + 5


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_storm_of_5xx_on_first_connect_exhausts_the_retries(
    server: SSEServer, status: int
) -> None:
    server.route("/s", [respond(status)])
    policy = RetryPolicy(max_attempts=5, initial_delay=0, min_delay=0, jitter=0, retry_first=True)
    with pytest.raises(RetriesExhausted) as info:
        sse_sync.connect(server.url_for("/s"), retry=policy)
    assert isinstance(info.value.__cause__, HTTPStatusError)
    assert info.value.__cause__.status_code == status
    assert len(server.requests) == 1 + 5  # the first attempt and five retries


# -- compression and framing abuse ---------------------------------------------------------------


def gzip_of(pieces: Iterator[bytes]) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return b"".join(out)


@pytest.fixture(scope="module")
def line_bomb() -> bytes:
    """About 130 KB of gzip inflating to 128 MiB of one ``data:`` line without a line break."""
    block = b"a" * MIB
    return gzip_of(iter([b"data: ", *([block] * 128)]))


@pytest.fixture(scope="module")
def event_bomb() -> bytes:
    """About 220 KB of gzip inflating to 100 MiB of data lines that never end their event."""
    block = (b"data: " + b"a" * 1000 + b"\n") * 1024
    return gzip_of(iter([block] * 100))


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_gzip_bomb_of_one_line_is_line_too_long_in_bounded_memory(
    server: SSEServer, line_bomb: bytes, framing: str
) -> None:
    assert zlib.decompressobj(31).decompress(line_bomb[:4096], 1 << 16).startswith(b"data: a")
    server.route(
        "/s",
        Script(
            [send(line_bomb), hold()],
            headers={"Content-Encoding": "gzip"},
            framing=framing,  # type: ignore[arg-type]
        ),
    )
    with (
        peak_memory() as peak,
        sse_sync.connect(server.url_for("/s"), max_line_length=64 * KIB) as stream,
    ):
        with pytest.raises(LineTooLong):
            next(stream)
        received = stream.stats().bytes
    assert peak[0] < 64 * MIB
    assert received < 64 * MIB  # stopped long before the 128 MiB
    assert len(server.requests) == 1


def test_gzip_bomb_of_one_event_is_event_too_large_in_bounded_memory(
    server: SSEServer, event_bomb: bytes
) -> None:
    server.route("/s", Script([send(event_bomb), hold()], headers={"Content-Encoding": "gzip"}))
    with (
        peak_memory() as peak,
        sse_sync.connect(server.url_for("/s"), max_event_size=64 * KIB) as stream,
    ):
        with pytest.raises(EventTooLarge):
            next(stream)
        received = stream.stats().bytes
    assert peak[0] < 64 * MIB
    assert received < 64 * MIB
    assert len(server.requests) == 1


HUGE_CHUNK_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Cache-Control: no-cache\r\n"
    b"\r\n"
    b"40000000\r\n"  # one chunk of 1 GiB follows...
)


def huge_chunk_server(count: int) -> RawServer:
    """Declares a 1 GiB chunk, then writes ``count`` small events into it, one per 50 ms."""

    def handler(raw: RawServer, conn: socket.socket, stop: threading.Event) -> None:
        raw.read_request(conn)
        conn.sendall(HUGE_CHUNK_HEAD)
        for n in range(count):  # ...but only a few bytes of it, slowly
            if stop.wait(0.05):
                return
            conn.sendall(b"data: %d\n\n" % n)
        wait_for_client_to_leave(conn, stop)

    return RawServer(handler)


def test_a_1_gib_chunk_then_slow_data_is_bounded_and_ends_in_a_timeout() -> None:
    with huge_chunk_server(count=10) as raw, peak_memory() as peak:
        started = time.monotonic()
        events: list[str] = []
        with sse_sync.connect(raw.url, timeout=(2, 0.5), **NO_RETRY) as stream:

            def consume() -> None:
                for ev in stream:
                    events.append(ev.data)

            with pytest.raises(ReadTimeout):
                consume()
        elapsed = time.monotonic() - started
    assert peak[0] < 16 * MIB
    assert elapsed < 5
    assert events == [str(n) for n in range(len(events))]  # whatever came, came in order


def test_events_inside_a_huge_chunk_are_delivered_as_they_arrive() -> None:
    # The transport promises to hand over each piece of the body as soon as it arrives.  A
    # server (or proxy) may declare one enormous chunk and write events into it over time;
    # each must reach the consumer then, not once 64 KiB have piled up or the read times out.
    with (
        huge_chunk_server(count=10) as raw,
        sse_sync.connect(raw.url, timeout=(2, 1.5), **NO_RETRY) as stream,
    ):
        started = time.monotonic()
        first = stream.next_event(timeout=1.0)
        waited = time.monotonic() - started
        stream.cancel()
    assert first is not None, "no event within 1 s although the server wrote one every 50 ms"
    assert first.data == "0"
    assert waited < 1.0
