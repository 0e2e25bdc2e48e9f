"""connect_ndjson against real servers on 127.0.0.1: values, framings, errors, cancel, limits."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

import sse_sync
from sse_sync._ndjson import NDJSON_MEDIA_TYPES, NDJSONDecodeError, encode_ndjson
from sse_sync._ndjson_client import NDJSONStream, connect_ndjson
from sse_sync.testing import (
    Action,
    Script,
    Send,
    SSEServer,
    close,
    drop,
    hold,
    respond,
    send,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

CT = "application/x-ndjson"
VALUES: list[Any] = [{"a": 1}, [1, 2], "é😀", 3.5, None, True, 12345678901234567890]

# The reader thread discards what NDJSONDecoder.close() returns and delivers only the
# ``events`` of a LimitExceeded; see the report that came with this file.


def lines(*values: Any) -> list[Send]:
    """One send (one write, one HTTP chunk) per value."""
    return [send(encode_ndjson(v)) for v in values]


def consume(stream: NDJSONStream) -> tuple[list[Any], BaseException | None]:
    """Every value the stream yields, then the error that ended it (``None`` for a clean end)."""
    got: list[Any] = []
    try:
        for value in stream:
            got.append(value)
    except sse_sync.SSEError as exc:
        return got, exc
    return got, None


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "close", "length"])
@pytest.mark.parametrize("gzip", [False, True])
def test_values_arrive_in_every_framing(server: SSEServer, framing: str, gzip: bool) -> None:
    actions: list[Action] = [*lines(*VALUES), send(b"\n  \n")]
    if framing != "length":
        actions.append(close())
    script = Script(actions, content_type=CT, framing=framing, gzip=gzip)  # type: ignore[arg-type]
    server.route("/s", script)
    with connect_ndjson(server.url_for("/s")) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == CT
        got = list(stream)
    assert got == VALUES
    assert stream.done
    assert stream.last_event_id == ""
    stats = stream.stats()
    assert stats.events == len(VALUES)
    assert stats.bytes == sum(len(encode_ndjson(v)) for v in VALUES) + 4
    assert stats.connections == 1


@pytest.mark.parametrize(
    "content_type",
    [*NDJSON_MEDIA_TYPES, "application/x-ndjson; charset=utf-8", "Application/JSONL"],
)
def test_every_ndjson_media_type_is_accepted(server: SSEServer, content_type: str) -> None:
    server.route("/s", Script([*lines(1, 2), close()], content_type=content_type))
    with connect_ndjson(server.url_for("/s")) as stream:
        assert list(stream) == [1, 2]


def test_request_headers(server: SSEServer) -> None:
    server.route("/s", Script([*lines("x"), close()], content_type=CT))
    with connect_ndjson(server.url_for("/s"), headers={"X-Team": "blue"}) as stream:
        assert list(stream) == ["x"]
    request = server.wait_request("/s")
    assert request.method == "GET"
    assert request.headers["accept"] == ", ".join(NDJSON_MEDIA_TYPES)
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["x-team"] == "blue"
    assert "last-event-id" not in request.headers


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_value_delivered_while_server_holds_connection(server: SSEServer, framing: str) -> None:
    # The second value is only sent after the consumer has the first: no read may wait for
    # more bytes than have arrived.
    gate = threading.Event()
    actions = [*lines({"n": 1}), wait_for(gate), *lines({"n": 2}), hold()]
    server.route("/s", Script(actions, content_type=CT, framing=framing))  # type: ignore[arg-type]
    with connect_ndjson(server.url_for("/s")) as stream:
        assert next(stream) == {"n": 1}
        gate.set()
        assert next(stream) == {"n": 2}
    server.wait_disconnect()


def test_slow_drip_one_byte_at_a_time(server: SSEServer) -> None:
    raw = '\ufeff{"k": "ünï"}\r\n\r\n[1,\r2]\n"中"\n'.encode()
    drip = [send(raw[i : i + 1]) for i in range(len(raw))]
    server.route("/s", Script([*drip, close()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        got = list(stream)
    assert got == [{"k": "ünï"}, [1, 2], "中"]
    assert stream.stats().bytes == len(raw)


def test_post_with_json_body(server: SSEServer) -> None:
    server.route("/generate", Script([*lines({"response": "hi"}, {"done": True})], content_type=CT))
    payload = {"model": "m", "prompt": "é", "stream": True}
    with connect_ndjson(server.url_for("/generate"), method="POST", json=payload) as stream:
        got = list(stream)
    assert got == [{"response": "hi"}, {"done": True}]
    request = server.wait_request("/generate")
    assert request.method == "POST"
    assert json.loads(request.body) == payload
    assert request.headers["content-type"] == "application/json"


def test_next_event_with_timeout(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", Script([*lines(1), wait_for(gate), *lines(2), close()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        assert stream.next_event(timeout=5) == 1
        assert stream.next_event(timeout=0.05) is None
        gate.set()
        assert stream.next_event(timeout=5) == 2
        assert stream.next_event(timeout=5) is None
        assert stream.done


def test_small_queue_loses_nothing(server: SSEServer) -> None:
    values = list(range(300))
    server.route("/s", Script([*lines(*values), close()], content_type=CT))
    with connect_ndjson(server.url_for("/s"), max_queue=2, max_queue_bytes=16) as stream:
        assert list(stream) == values


def test_204_ends_the_stream_at_once(server: SSEServer) -> None:
    server.route("/s", Script(respond(204)))
    with connect_ndjson(server.url_for("/s")) as stream:
        assert stream.status == 204
        assert list(stream) == []


# -- ending ----------------------------------------------------------------------------------


def test_cancel_from_another_thread_while_blocked(server: SSEServer) -> None:
    server.route("/s", Script([*lines("a"), hold()], content_type=CT))
    stream = connect_ndjson(server.url_for("/s"))
    assert next(stream) == "a"
    result: list[Any] = []
    consumer = threading.Thread(target=lambda: result.extend(stream))  # blocks: server silent
    consumer.start()
    started = time.monotonic()
    stream.cancel()
    consumer.join(5)
    assert not consumer.is_alive()
    assert time.monotonic() - started < 2
    assert result == []
    assert stream.cancelled
    stream.close()
    server.wait_disconnect()


def test_close_ends_the_reader_thread(server: SSEServer) -> None:
    server.route("/s", Script([*lines(1), hold()], content_type=CT))
    stream = connect_ndjson(server.url_for("/s"))
    readers = [
        t for t in threading.enumerate() if t.name.startswith("sse_sync-") and "reader" in t.name
    ]
    assert next(stream) == 1
    assert "NDJSONStream" in repr(stream)
    stream.close()
    assert readers
    for thread in readers:
        thread.join(5)
        assert not thread.is_alive()
    server.wait_disconnect()


def test_no_reconnect_by_default(server: SSEServer) -> None:
    server.route("/s", Script([*lines(1, 2), close()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        assert list(stream) == [1, 2]
        assert stream.done  # the reader has finished: no later attempt can follow
    assert stream.stats().connections == 1
    assert len(server.requests) == 1


def test_retry_policy_reconnects_from_the_start(server: SSEServer) -> None:
    # With no event IDs a reconnect cannot resume: the server sends the stream again.
    # A connection that delivered resets the backoff, so the server ends it with a 204.
    scripts = [Script([*lines(1, 2), close()], content_type=CT)] * 2
    server.route("/s", [*scripts, Script([], status=204)])
    policy = sse_sync.RetryPolicy(initial_delay=0, min_delay=0, jitter=0, max_attempts=1)
    with connect_ndjson(server.url_for("/s"), retry=policy) as stream:
        got, error = consume(stream)
    assert got == [1, 2, 1, 2]
    assert error is None
    assert len(server.requests) == 3
    assert "last-event-id" not in server.wait_request("/s").headers
    assert "last-event-id" not in server.wait_request("/s").headers


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/event-stream", "application/json", None])
def test_wrong_content_type(server: SSEServer, content_type: str | None) -> None:
    server.route("/s", Script([*lines(1), close()], content_type=content_type))
    with pytest.raises(sse_sync.ContentTypeError) as info:
        connect_ndjson(server.url_for("/s"))
    assert info.value.content_type == (content_type or "")
    assert "application/x-ndjson" in str(info.value)


def test_http_500(server: SSEServer) -> None:
    server.route("/s", Script(respond(500, "overloaded")))
    with pytest.raises(sse_sync.HTTPStatusError) as info:
        connect_ndjson(server.url_for("/s"))
    assert info.value.status_code == 500
    assert info.value.body == "overloaded"


def test_connect_error_on_a_closed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(sse_sync.ConnectError):
        connect_ndjson(f"http://127.0.0.1:{port}/s", timeout=5)


def test_bad_json_mid_stream_after_earlier_values(server: SSEServer) -> None:
    gate = threading.Event()
    actions = [*lines(1, 2), wait_for(gate), send(b'{"broken": \n'), *lines(4), hold()]
    server.route("/s", Script(actions, content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        assert next(stream) == 1
        assert next(stream) == 2
        gate.set()
        with pytest.raises(NDJSONDecodeError) as info:
            next(stream)
        assert list(stream) == []
    assert info.value.line == 3
    assert info.value.preview == '{"broken": '
    server.wait_disconnect()


def test_bad_json_in_the_same_read_keeps_earlier_values(server: SSEServer) -> None:
    server.route("/s", Script([send(b'1\n2\n{"broken": \n'), hold()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        got, error = consume(stream)
    assert isinstance(error, NDJSONDecodeError)
    assert got == [1, 2]


def test_line_too_long_after_earlier_values(server: SSEServer) -> None:
    # One chunk: the values before the long line reach the consumer through LineTooLong.events.
    long_line = encode_ndjson("x" * 100)
    server.route("/s", Script([send(b"1\n2\n" + long_line), hold()], content_type=CT))
    with connect_ndjson(server.url_for("/s"), max_line_length=64) as stream:
        got, error = consume(stream)
    assert got == [1, 2]
    assert isinstance(error, sse_sync.LineTooLong)
    assert error.value == 64


def test_endless_line_is_cut_off_at_the_limit(server: SSEServer) -> None:
    server.route("/s", Script([send(b"1\n"), *[send(b"9" * 1000)] * 50, hold()], content_type=CT))
    with connect_ndjson(server.url_for("/s"), max_line_length=4096) as stream:
        got, error = consume(stream)
    assert got == [1]
    assert isinstance(error, sse_sync.LineTooLong)
    assert stream.stats().bytes < 4096 + 2 * 65536


def test_connection_dropped_after_complete_lines(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", Script([*lines(1, 2), wait_for(gate), drop()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        assert [next(stream), next(stream)] == [1, 2]
        gate.set()
        got, error = consume(stream)
    assert got == []
    assert isinstance(error, sse_sync.StreamError)


def test_connection_dropped_mid_line_is_a_stream_error(server: SSEServer) -> None:
    server.route("/s", Script([send(b'1\n{"a": '), drop()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        got, error = consume(stream)
    assert got == [1]
    assert isinstance(error, sse_sync.StreamError)


def test_last_line_without_newline_is_delivered(server: SSEServer) -> None:
    server.route("/s", Script([send(b'1\n2\n{"last": 3}'), close()], content_type=CT))
    with connect_ndjson(server.url_for("/s")) as stream:
        got, error = consume(stream)
    assert error is None
    assert got == [1, 2, {"last": 3}]


def test_idle_timeout(server: SSEServer) -> None:
    server.route("/s", Script([*lines(1), hold()], content_type=CT))
    with connect_ndjson(server.url_for("/s"), idle_timeout=0.3) as stream:
        got, error = consume(stream)
    assert got == [1]
    assert isinstance(error, sse_sync.IdleTimeout)


def test_reserved_keyword_is_refused(server: SSEServer) -> None:
    with pytest.raises(
        TypeError, match=r"^connect_ndjson\(\) got an unexpected keyword argument .stream.$"
    ):
        connect_ndjson(server.url_for("/s"), stream=False)
    assert server.requests == []


def test_callback_dispatch_is_absent_but_lifecycle_handlers_chain(server: SSEServer) -> None:
    server.route("/s", Script([*lines(1), close()], content_type=CT))
    opened: list[object] = []
    with connect_ndjson(server.url_for("/s")) as stream:
        # The type says what works: no dispatch methods at all, rather than ones that refuse.
        for name in ("on", "on_unknown", "on_comment", "handler", "run", "start", "on_error"):
            assert not hasattr(stream, name), name
        assert stream.on_open(opened.append) is stream
        assert list(stream) == [1]
    assert opened == [stream]
