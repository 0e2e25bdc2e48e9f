"""The threaded client against real servers on 127.0.0.1: reading, errors, cancel, callbacks."""

from __future__ import annotations

import gc
import json
import pickle
import threading
import time
from typing import Any

import pytest
import requests
from _net import client_sockets, fds

import sse_sync
from sse_sync.testing import (
    Action,
    Script,
    SSEServer,
    close,
    comment,
    drop,
    event,
    hold,
    respond,
    send,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

NO_RETRY: dict[str, Any] = {"retry": None}


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "close", "length"])
@pytest.mark.parametrize("gzip", [False, True])
def test_events_arrive_in_every_framing(server: SSEServer, framing: str, gzip: bool) -> None:
    actions: list[Action] = [
        event("one", id="1"),
        event("two", event="tick"),
        comment("hb"),
        event("3"),
    ]
    if framing != "length":
        actions.append(close())
    server.route("/s", Script(actions, framing=framing, gzip=gzip))  # type: ignore[arg-type]
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        got = [(e.event, e.data, e.id) for e in stream]
    assert got == [("message", "one", "1"), ("tick", "two", "1"), ("message", "3", "1")]
    assert stream.last_event_id == "1"
    assert stream.done


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("gzip", [False, True])
def test_event_delivered_while_server_holds_connection(
    server: SSEServer, framing: str, gzip: bool
) -> None:
    # The second event is only released after the consumer has the first: no read may wait
    # for more bytes than have arrived.
    gate = threading.Event()
    actions = [event("first"), wait_for(gate), event("second"), close()]
    server.route("/s", Script(actions, framing=framing, gzip=gzip))  # type: ignore[arg-type]
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        assert next(stream).data == "first"
        gate.set()
        assert next(stream).data == "second"


def test_slow_drip_one_byte_at_a_time(server: SSEServer) -> None:
    body = "id: 7\r\nevent: drip\r\ndata: ünï\r\ndata: two\r\n\r\n: c\n\ndata: end\n\n"
    raw = body.encode()
    server.route("/s", [send(raw[i : i + 1]) for i in range(len(raw))] + [close()])
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        got = [(e.event, e.data, e.id) for e in stream]
    assert got == [("drip", "ünï\ntwo", "7"), ("message", "end", "7")]
    assert stream.stats().bytes == len(raw)


def test_post_with_json_body(server: SSEServer) -> None:
    server.route("/chat", [event('{"delta": "hi"}'), event("[DONE]"), close()])
    payload = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "é"}]}
    with sse_sync.connect(server.url_for("/chat"), method="POST", json=payload) as stream:
        got = [e.data for e in stream]
    assert got == ['{"delta": "hi"}', "[DONE]"]
    req = server.wait_request("/chat")
    assert req.method == "POST"
    assert json.loads(req.body) == payload
    assert req.headers.get("content-type") == "application/json"


def test_user_session_headers_auth_and_cookies_apply(server: SSEServer) -> None:
    server.route("/s", [event("x"), close()])
    session = requests.Session()
    session.headers["X-Team"] = "blue"
    session.auth = ("user", "pass")
    session.cookies.set("sid", "abc", domain="127.0.0.1")
    mine = {"X-Trace": "t-1"}
    with sse_sync.connect(
        server.url_for("/s"), session=session, headers=mine, last_event_id="41", **NO_RETRY
    ) as stream:
        assert [e.data for e in stream] == ["x"]
    req = server.wait_request("/s")
    assert req.headers.get("x-team") == "blue"
    assert req.headers.get("authorization", "").startswith("Basic ")
    assert "sid=abc" in req.headers.get("cookie", "")
    assert req.headers.get("x-trace") == "t-1"
    assert req.headers.get("accept") == "text/event-stream"
    assert req.headers.get("cache-control") == "no-cache"
    assert req.headers.get("last-event-id") == "41"
    assert mine == {"X-Trace": "t-1"}, "the caller's dict must not be modified"
    # The library never closes a session it did not create: it still works.
    server.route("/again", [event("y"), close()])
    with sse_sync.connect(server.url_for("/again"), session=session, **NO_RETRY) as stream:
        assert [e.data for e in stream] == ["y"]
    session.close()


def test_no_last_event_id_header_by_default(server: SSEServer) -> None:
    server.route("/s", [close()])
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        assert list(stream) == []
    assert "last-event-id" not in server.wait_request("/s").headers


def test_mounted_adapter_is_used(server: SSEServer) -> None:
    server.route("/s", [event("x"), close()])
    calls: list[str] = []

    class CountingAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:  # type: ignore[override]
            calls.append(str(request.url))
            return super().send(request, **kwargs)  # type: ignore[arg-type]

    session = requests.Session()
    session.mount("http://127.0.0.1", CountingAdapter())
    with sse_sync.connect(server.url_for("/s"), session=session, **NO_RETRY) as stream:
        assert [e.data for e in stream] == ["x"]
    assert calls == [server.url_for("/s")]
    session.close()


# -- errors ----------------------------------------------------------------------------------


def test_reserved_keyword_is_refused_by_name(server: SSEServer) -> None:
    with pytest.raises(
        TypeError, match=r"^connect\(\) got an unexpected keyword argument .stream.$"
    ):
        sse_sync.connect(server.url_for("/s"), stream=False)
    assert server.requests == []


def test_http_error_status_raises_at_connect_with_details(server: SSEServer) -> None:
    server.route("/s", respond(503, b"overloaded, try later", {"Retry-After": "5"}))
    with pytest.raises(sse_sync.HTTPStatusError) as info:
        sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    err = info.value
    assert err.status_code == 503
    assert err.headers["Retry-After"] == "5"
    assert "overloaded" in err.body
    assert "503" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.status_code, again.body, str(again)) == (
        type(err),
        503,
        err.body,
        str(err),
    )


def test_wrong_content_type_says_what_came(server: SSEServer) -> None:
    server.route("/s", respond(200, b'{"a": 1}', {"Content-Type": "application/json"}))
    with pytest.raises(sse_sync.ContentTypeError) as info:
        sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    assert info.value.content_type == "application/json"
    assert "application/json" in str(info.value)
    assert info.value.body == '{"a": 1}'


def test_connect_refused_is_connect_error() -> None:
    with SSEServer() as gone:
        url = gone.url_for("/s")
    with pytest.raises(sse_sync.ConnectError) as info:
        sse_sync.connect(url, **NO_RETRY)
    assert isinstance(info.value, ConnectionError)
    assert info.value.__cause__ is not None


def test_dropped_connection_reaches_consumer_chained(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", [event("a"), wait_for(gate), drop()])
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        assert next(stream).data == "a"
        gate.set()
        with pytest.raises(sse_sync.StreamError) as info:
            next(stream)
    assert info.value.__cause__ is not None


def test_read_timeout_on_silent_socket(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    with sse_sync.connect(server.url_for("/s"), timeout=(5, 0.3), **NO_RETRY) as stream:
        assert next(stream).data == "a"
        with pytest.raises(sse_sync.ReadTimeout) as info:
            next(stream)
    assert isinstance(info.value, TimeoutError)
    assert info.value.__cause__ is not None


def test_idle_timeout_on_silence(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    with sse_sync.connect(server.url_for("/s"), idle_timeout=0.3, **NO_RETRY) as stream:
        assert next(stream).data == "a"
        with pytest.raises(sse_sync.IdleTimeout):
            next(stream)


def test_decoder_limit_errors_reach_consumer_after_earlier_events(server: SSEServer) -> None:
    server.route("/s", [send(b"data: ok\n\ndata: " + b"x" * 5000 + b"\n\n"), hold()])
    with sse_sync.connect(server.url_for("/s"), max_line_length=1000, **NO_RETRY) as stream:
        assert next(stream).data == "ok"
        with pytest.raises(sse_sync.LineTooLong) as info:
            next(stream)
    assert info.value.value == 1000


def test_invalid_header_value_rejected_before_sending(server: SSEServer) -> None:
    server.route("/s", [close()])
    with pytest.raises(sse_sync.RequestError):
        sse_sync.connect(server.url_for("/s"), headers={"X-A": "1\r\nX-B: 2"}, **NO_RETRY)
    with pytest.raises(ValueError, match=r"(?i)last.event.id"):
        sse_sync.connect(server.url_for("/s"), last_event_id="a\nb", **NO_RETRY)
    assert server.requests == []


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_from_another_thread_while_reader_blocked(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    assert next(stream).data == "a"
    result: list[object] = []

    def consume() -> None:
        result.extend(stream)  # blocks: the server is silent

    consumer = threading.Thread(target=consume)
    consumer.start()
    started = time.monotonic()
    stream.cancel()
    stream.cancel()  # idempotent
    consumer.join(5)
    assert not consumer.is_alive()
    assert time.monotonic() - started < 2
    assert result == []
    assert stream.cancelled
    stream.close()
    server.wait_disconnect()


def test_cancel_while_queue_full(server: SSEServer) -> None:
    # 16 MiB of events against a queue of 4 events / 64 KiB: the reader must stop reading
    # (the rest waits in socket buffers and the server), and cancel must still work.
    body = b"".join(b"data: %06d " % i + b"x" * 4000 + b"\n\n" for i in range(4000))
    blocks = [send(body[i : i + 65536]) for i in range(0, len(body), 65536)]
    server.route("/s", [*blocks, hold()])
    stream = sse_sync.connect(server.url_for("/s"), max_queue=4, max_queue_bytes=65536, **NO_RETRY)
    assert next(stream).data.startswith("000000 ")
    # Nothing can be awaited here: poll until the reader is held back by the full queue.
    deadline = time.monotonic() + 10
    while stream.stats().pending < 4 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    held = stream.stats()
    assert held.pending >= 4
    assert held.bytes < 2 << 20, f"a full queue must stop the reader, it read {held.bytes}"
    stream.cancel()
    assert list(stream) == []
    stream.close()
    server.wait_disconnect()


def test_close_ends_reader_and_socket(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    # A first stream lets the server open its lazily made descriptors before counting.
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as warm_up:
        next(warm_up)
    server.wait_disconnect()
    gc.collect()
    before = fds()
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    assert next(stream).data == "a"
    stream.close()
    server.wait_disconnect()
    assert client_sockets(server.port) == 0
    gc.collect()
    assert fds() <= before


def test_forgotten_stream_is_cancelled_when_collected(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    assert next(stream).data == "a"
    reader = [t for t in threading.enumerate() if t.name.endswith("-reader")]
    del stream
    gc.collect()
    server.wait_disconnect()
    for thread in reader:
        thread.join(5)
        assert not thread.is_alive()


def test_many_streams_leak_no_threads_or_fds(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as warm_up:
        next(warm_up)
    server.wait_disconnect()
    gc.collect()
    before_fds = fds()
    before_threads = threading.active_count()
    for _ in range(10):
        streams = [sse_sync.connect(server.url_for("/s"), **NO_RETRY) for _ in range(50)]
        for stream in streams:
            assert next(stream).data == "a"
        for stream in streams:
            stream.close()
    server.wait_disconnect(timeout=20)
    assert client_sockets(server.port) == 0
    gc.collect()
    assert threading.active_count() <= before_threads
    assert fds() <= before_fds


# -- polling ---------------------------------------------------------------------------------


def test_next_event_with_timeout(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", [event("a"), wait_for(gate), event("b"), close()])
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        first = stream.next_event(timeout=5)
        assert first is not None
        assert first.data == "a"
        assert stream.next_event(timeout=0.05) is None
        gate.set()
        second = stream.next_event(timeout=5)
        assert second is not None
        assert second.data == "b"
        assert stream.next_event(timeout=5) is None
        assert stream.done


# -- callbacks -------------------------------------------------------------------------------


def test_callbacks_open_comment_events_close_in_order(server: SSEServer) -> None:
    server.route(
        "/s", [comment("hi"), event("1", event="tick"), event("2", event="other"), close()]
    )
    seen: list[object] = []
    stream = sse_sync.connect(server.url_for("/s"), comments=True, **NO_RETRY)
    stream.on_open(lambda s: seen.append(("open", s.status)))
    stream.on("tick", lambda e: seen.append(("tick", e.data)))
    stream.on_unknown(lambda e: seen.append(("unknown", e.event)))
    stream.on_comment(lambda text: seen.append(("comment", text)))
    stream.on_close(lambda: seen.append("close"))
    stream.on_error(lambda exc: seen.append(("error", exc)))
    stream.run()
    stream.close()
    assert seen == [
        ("open", 200),
        ("comment", "hi"),
        ("tick", "1"),
        ("unknown", "other"),
        "close",
    ]


def test_handler_object_methods(server: SSEServer) -> None:
    server.route(
        "/s",
        [
            event("a", event="user.created"),
            event("b", event="error"),
            event("c", event="content-block-delta"),
            event("d"),
            event("e", event="weird type"),
            close(),
        ],
    )

    class Handler:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        def on_user_created(self, e: sse_sync.Event) -> None:
            self.calls.append(("user_created", e.data))

        def on_error_event(self, e: sse_sync.Event) -> None:
            self.calls.append(("error_event", e.data))

        def on_content_block_delta(self, e: sse_sync.Event) -> None:
            self.calls.append(("delta", e.data))

        def on_message(self, e: sse_sync.Event) -> None:
            self.calls.append(("message", e.data))

        def on_unknown(self, e: sse_sync.Event) -> None:
            self.calls.append(("unknown", e.event))

        def on_close(self) -> None:
            self.calls.append(("close", ""))

    h = Handler()
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        stream.handler(h).run()
    assert h.calls == [
        ("user_created", "a"),
        ("error_event", "b"),
        ("delta", "c"),
        ("message", "d"),
        ("unknown", "weird type"),
        ("close", ""),
    ]
    assert sse_sync.handler_method_name("a.b-c d") == "on_a_b_c_d"


def test_handler_exception_goes_to_on_error_and_stops(server: SSEServer) -> None:
    server.route("/s", [event("1"), event("2"), hold()])
    errors: list[BaseException] = []
    closed = threading.Event()
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)

    def boom(e: sse_sync.Event) -> None:
        raise RuntimeError(f"bad {e.data}")

    stream.on("message", boom).on_error(errors.append).on_close(closed.set)
    stream.run()
    assert [str(e) for e in errors] == ["bad 1"]
    assert closed.is_set()
    assert stream.cancelled
    stream.close()
    server.wait_disconnect()


def test_handler_exception_without_on_error_is_raised_from_run(server: SSEServer) -> None:
    server.route("/s", [event("1"), hold()])
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    stream.on("message", lambda e: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        stream.run()
    stream.close()


def test_handler_errors_continue(server: SSEServer) -> None:
    server.route("/s", [event("1"), event("2"), event("3"), close()])
    errors: list[BaseException] = []
    got: list[str] = []

    def sometimes(e: sse_sync.Event) -> None:
        if e.data == "2":
            raise ValueError("two")
        got.append(e.data)

    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        stream.on("message", sometimes).on_error(errors.append)
        stream.run(handler_errors="continue")
    assert got == ["1", "3"]
    assert [str(e) for e in errors] == ["two"]


def test_stream_error_goes_to_on_error(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", [event("1"), wait_for(gate), drop()])
    errors: list[BaseException] = []
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:
        stream.on("message", lambda e: gate.set()).on_error(errors.append)
        stream.run()
    assert len(errors) == 1
    assert isinstance(errors[0], sse_sync.StreamError)


def test_cancel_from_inside_a_callback(server: SSEServer) -> None:
    server.route("/s", [event("1"), event("2"), hold()])
    got: list[str] = []
    with sse_sync.connect(server.url_for("/s"), **NO_RETRY) as stream:

        def first_only(e: sse_sync.Event) -> None:
            got.append(e.data)
            stream.cancel()

        stream.on("message", first_only).run()
    assert got == ["1"]
    server.wait_disconnect()


def test_background_dispatch_start_join_wait(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", [event("1"), wait_for(gate), event("2"), close()])
    got: list[tuple[str, str]] = []
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    stream.on("message", lambda e: got.append((threading.current_thread().name, e.data)))
    stream.start()
    assert not stream.wait(0.05)
    gate.set()
    stream.join(10)
    assert [data for _, data in got] == ["1", "2"]
    assert all(name.endswith("-dispatch") for name, _ in got)
    with pytest.raises(RuntimeError):
        stream.start()
    stream.close()


def test_join_raises_unhandled_handler_error(server: SSEServer) -> None:
    server.route("/s", [event("1"), hold()])
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    stream.on("message", lambda e: int("x")).start()
    with pytest.raises(ValueError, match="invalid literal"):
        stream.join(10)
    stream.close()
