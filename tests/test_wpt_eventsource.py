"""The web-platform-tests EventSource cases that apply to a client outside a browser.

Each test names the WPT file it ports (``eventsource/...``) or the sentence of the HTML
standard's "Server-sent events" section it pins.  Browser-only matters (CORS, workers, realms,
the DOM event objects, ``readyState``) are left out.  The library's documented choices where it
departs from a browser are pinned as such: a 204 ends the stream without an error, and 5xx,
408 and 429 answers to a *reconnection* are retried.

Timing is measured in the server (``_wpt_server.TimedServer``): the gap from the end of one
response to the arrival of the next request.  A gap may exceed the expected wait by a small
scheduling margin (``MARGIN``), never fall short of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
from _wpt_server import Hit, Reply, TimedServer

import sse_sync
from sse_sync import (
    DEFAULT_RETRY,
    ContentTypeError,
    Event,
    EventStream,
    HTTPStatusError,
    RetryPolicy,
    SSEDecoder,
)
from sse_sync.testing import (
    Action,
    RecordedRequest,
    Script,
    ScriptLike,
    SSEServer,
    close,
    respond,
    send,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(20)]

MARGIN = 0.25
"""Seconds a measured wait may run over what was asked, for a loaded machine."""

E = TypeVar("E", bound=BaseException)

EXACT = RetryPolicy(jitter=0)
"""No jitter: every wait is exactly what the policy computes from the reconnection time."""


def turns(*scripts: Script | Sequence[Action]) -> list[Script | Sequence[Action]]:
    """A route that answers the n-th request with the n-th script (the last one repeats)."""
    return list(scripts)


def drain(stream: EventStream) -> list[Event]:
    """Every event until the stream ends (a 204, or no reconnection)."""
    return list(stream)


def datas(events: list[Event]) -> list[str]:
    return [e.data for e in events]


def datas_until(stream: EventStream, error: type[E]) -> tuple[list[str], E]:
    """The data of every event before the stream failed with ``error``, and that error."""
    seen: list[str] = []
    try:
        for item in stream:
            seen.append(item.data)
    except error as exc:
        return seen, exc
    raise AssertionError(f"the stream ended without {error.__name__} after {seen}")


def watch_retries(
    stream: EventStream,
    stop_after: int | None = None,
    stop_if: Callable[[float], bool] | None = None,
) -> list[float]:
    """The delays ``on_retry`` reports, in order.  Cancels the stream once ``stop_after`` were
    reported, or at the first delay for which ``stop_if`` is true, so that a test of a wait
    that is already wrong does not sit it out."""
    delays: list[float] = []

    def record(_: BaseException | None, delay: float) -> None:
        delays.append(delay)
        if (stop_after is not None and len(delays) >= stop_after) or (
            stop_if is not None and stop_if(delay)
        ):
            stream.cancel()

    stream.on_retry(record)
    return delays


def replies_then_204(count: int, reply: Callable[[int], Reply]) -> Callable[[Hit], Reply]:
    """A timed route: ``reply(n)`` for the first ``count`` requests, then a 204 (stop)."""

    def route(hit: Hit) -> Reply:
        return reply(hit.number) if hit.number <= count else Reply(204)

    return route


def assert_waited(gaps: list[float], expected: list[float]) -> None:
    """Each measured gap is at least its expected wait and at most ``MARGIN`` more."""
    assert len(gaps) == len(expected), (gaps, expected)
    for n, (gap, wait) in enumerate(zip(gaps, expected, strict=True), 1):
        assert wait <= gap <= wait + MARGIN, f"wait {n}: {gap:.3f} s, expected {wait} s: {gaps}"


# -- status codes: request-status-error.htm, eventsource-reconnect.htm ------------------------


def test_200_opens_and_every_reconnection_opens_again(sse_server: SSEServer) -> None:
    # eventsource-reconnect.htm with status-reconnect.py?status=200&ok_first.
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\ndata: ok\n\n"), close()],
            [send(b"data: data\n\n"), close()],
            [respond(204)],
        ),
    )
    url = sse_server.url_for("/s")
    with sse_sync.connect(url) as stream:
        opened: list[int] = []
        stream.on_open(lambda s: opened.append(s.status))
        delays = watch_retries(stream)
        assert stream.url == url  # eventsource-url
        events = drain(stream)
        assert datas(events) == ["ok", "data"]
        assert opened == [200, 200]
        assert len(delays) == 2  # after each 200 stream ended
        assert stream.stats().connections == 2
        assert stream.status == 204


@pytest.mark.parametrize("status", [201, 202, 203, 205, 206, 210, 299])
def test_a_2xx_other_than_200_fails_the_first_connection(
    sse_server: SSEServer, status: int
) -> None:
    # request-status-error.htm (205, 210, 299): only 200 opens a stream.
    body = [] if status == 205 else [send(b"data: data\n\n")]
    sse_server.route("/s", Script(body, status=status, framing="length"))
    with pytest.raises(HTTPStatusError) as info:
        sse_sync.connect(sse_server.url_for("/s")).close()  # closed if it wrongly opened
    assert info.value.status_code == status
    assert len(sse_server.requests) == 1


@pytest.mark.parametrize("status", [205, 299])
def test_a_2xx_other_than_200_is_not_retried_even_with_retry_first(
    sse_server: SSEServer, status: int
) -> None:
    body = [] if status == 205 else [send(b"data: data\n\n")]
    sse_server.route("/s", Script(body, status=status, framing="length"))
    policy = RetryPolicy(initial_delay=0.01, jitter=0, retry_first=True, max_attempts=3)
    with pytest.raises(HTTPStatusError) as info:
        sse_sync.connect(sse_server.url_for("/s"), retry=policy).close()
    assert info.value.status_code == status
    assert len(sse_server.requests) == 1


@pytest.mark.parametrize("status", [201, 205, 206, 210, 299])
def test_a_2xx_other_than_200_on_reconnection_fails_without_retrying(
    sse_server: SSEServer, status: int
) -> None:
    # HTML: a reconnection's response that is not 200 fails the connection; no further attempt.
    body = [] if status == 205 else [send(b"data: data\n\n")]
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\ndata: ok\n\n"), close()],
            Script(body, status=status, framing="length"),
            [respond(204)],  # reached only if the answer above was wrongly retried
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        seen, error = datas_until(stream, HTTPStatusError)
    assert error.status_code == status
    assert seen == ["ok"]
    assert len(sse_server.requests) == 2


def test_204_on_the_first_connection_stops_without_an_error(sse_server: SSEServer) -> None:
    # request-status-error.htm (204); a documented choice: "stop", not an error.
    sse_server.route("/s", respond(204))
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert stream.status == 204
        assert drain(stream) == []
    assert len(sse_server.requests) == 1


def test_204_on_a_reconnection_stops_without_an_error(sse_server: SSEServer) -> None:
    # resources/reconnect-fail.py: opened, reconnected, then 204 and nothing more.
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\ndata: opened\n\n"), close()],
            [send(b"data: reconnected\n\n"), close()],
            [respond(204)],
            [send(b"data: closed\n\n"), close()],
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert datas(drain(stream)) == ["opened", "reconnected"]
        assert stream.status == 204
    assert len(sse_server.requests) == 3


@pytest.mark.parametrize("status", [404, 410, 503])
def test_an_error_status_fails_the_first_connection(sse_server: SSEServer, status: int) -> None:
    # request-status-error.htm (404, 410, 503): connect() fails fast.
    sse_server.route("/s", Script([send(b"data: data\n\n")], status=status, framing="length"))
    with pytest.raises(HTTPStatusError) as info:
        sse_sync.connect(sse_server.url_for("/s")).close()
    assert info.value.status_code == status
    assert len(sse_server.requests) == 1


@pytest.mark.parametrize("status", [404, 410])
def test_a_4xx_on_reconnection_fails_without_retrying(sse_server: SSEServer, status: int) -> None:
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\ndata: ok\n\n"), close()],
            [respond(status)],
            [respond(204)],  # reached only if the answer above was wrongly retried
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        seen, error = datas_until(stream, HTTPStatusError)
    assert error.status_code == status
    assert seen == ["ok"]
    assert len(sse_server.requests) == 2


@pytest.mark.parametrize("status", [503, 408, 429])
def test_a_busy_answer_to_a_reconnection_is_retried(sse_server: SSEServer, status: int) -> None:
    # A documented choice of this library (a browser gives up on a 503).
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\ndata: ok\n\n"), close()],
            [respond(status)],
            [send(b"data: data\n\n"), close()],
            [respond(204)],
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert datas(drain(stream)) == ["ok", "data"]
    assert len(sse_server.requests) == 4


# -- redirects: request-redirect.htm ----------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_followed_on_connect(sse_server: SSEServer, status: int) -> None:
    sse_server.route("/r", respond(status, headers={"Location": "/moved"}))
    sse_server.route("/moved", turns([send(b"retry: 2\ndata: data\n\n"), close()], [respond(204)]))
    with sse_sync.connect(sse_server.url_for("/r")) as stream:
        assert stream.status == 200
        assert stream.url == sse_server.url_for("/moved")
        assert datas(drain(stream)) == ["data"]
    assert sse_server.wait_request("/moved").headers["Accept"] == "text/event-stream"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_followed_on_reconnection(sse_server: SSEServer, status: int) -> None:
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\nid: 1\ndata: ok\n\n"), close()],
            [respond(status, headers={"Location": "/moved"})],
            [respond(204)],
        ),
    )
    sse_server.route("/moved", turns([send(b"data: data\n\n"), close()], [respond(204)]))
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        events = drain(stream)
    assert [(e.data, e.id) for e in events] == [("ok", "1"), ("data", "1")]
    moved = sse_server.wait_request("/moved")
    assert moved.method == "GET"
    assert moved.headers["Last-Event-ID"] == "1"  # the header survives the redirect
    assert moved.headers["Accept"] == "text/event-stream"


# -- content type: format-mime-*.htm, format-utf-8.htm ----------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/event-stream",
        "text/event-stream;charset=utf-8",
        "text/event-stream; charset=UTF-8",
        "text/event-stream;",  # format-mime-trailing-semicolon
        "Text/Event-Stream",
        "text/event-stream ; foo=bar",
    ],
)
def test_the_event_stream_type_opens_with_any_parameters(
    sse_server: SSEServer, content_type: str
) -> None:
    sse_server.route("/s", Script([send(b"data: data\n\n")], content_type=content_type))
    with sse_sync.connect(sse_server.url_for("/s"), retry=None) as stream:
        assert datas(drain(stream)) == ["data"]


def test_a_charset_parameter_does_not_change_the_decoding(sse_server: SSEServer) -> None:
    # format-utf-8.htm: the stream is always UTF-8.
    ct = "text/event-stream;charset=windows-1252"
    sse_server.route("/s", Script([send("data:ok\u2026\n\n".encode())], content_type=ct))
    with sse_sync.connect(sse_server.url_for("/s"), retry=None) as stream:
        assert datas(drain(stream)) == ["ok\u2026"]


@pytest.mark.parametrize(
    "content_type", ["text/x-bogus", "x bogus", "text/plain", "text/event-streams", None]
)
def test_another_type_fails_the_connection(sse_server: SSEServer, content_type: str | None) -> None:
    # format-mime-bogus.htm, format-mime-valid-bogus.htm.
    sse_server.route("/s", Script([send(b"data: data\n\n")], content_type=content_type))
    with pytest.raises(ContentTypeError):
        sse_sync.connect(sse_server.url_for("/s")).close()
    assert len(sse_server.requests) == 1


def test_another_type_on_reconnection_fails_without_retrying(sse_server: SSEServer) -> None:
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\ndata: ok\n\n"), close()],
            Script([send(b"data: data\n\n")], content_type="text/plain"),
            [respond(204)],  # reached only if the answer above was wrongly retried
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        seen, _ = datas_until(stream, ContentTypeError)
    assert seen == ["ok"]
    assert len(sse_server.requests) == 2


# -- request headers: request-accept.htm, request-cache-control.htm ---------------------------


def test_accept_and_cache_control_are_sent_on_every_attempt(sse_server: SSEServer) -> None:
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\nid: 7\ndata: a\n\n"), close()],
            [send(b"data: b\n\n"), close()],
            [respond(204)],
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert datas(drain(stream)) == ["a", "b"]
    first, second, third = (sse_server.wait_request("/s") for _ in range(3))
    for request in (first, second, third):
        assert request.headers.get_all("Accept") == ["text/event-stream"]
        assert request.headers.get_all("Cache-Control") == ["no-cache"]
    assert "Last-Event-ID" not in first.headers
    assert second.headers["Last-Event-ID"] == third.headers["Last-Event-ID"] == "7"


# -- the wire format: format-*.htm, event-data.htm --------------------------------------------

LONG = "x" * 2048

WIRE_CASES: dict[str, tuple[bytes, list[str]]] = {
    # format-newlines.htm: CRLF, LF and CR alone all end a line.
    "newlines": (b"data:test\r\ndata\ndata:test\r\n\r\n", ["test\n\ntest"]),
    # format-leading-space.htm: only one space after the colon is dropped; CR ends a line.
    "leading-space": (b"data:\ttest\rdata: \ndata:test\n\n", ["\ttest\n\ntest"]),
    # format-field-parsing.htm
    "field-parsing": (
        b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:"
        b"\r\n data:32\ndata:4\n\n",
        ["\0\n 2\n1\n3\n\n4"],
    ),
    # format-comments.htm
    "comments": (
        f"data:1\r:\0\n:\r\ndata:2\n:{LONG}\rdata:3\n:data:fail\r:{LONG}\ndata:4\n\n".encode(),
        ["1\n2\n3\n4"],
    ),
    # format-null-character.html
    "null-character": (b"data:\0\n\n", ["\0"]),
    # format-field-data.htm: "data:" alone is an empty line of data, a final LF is dropped.
    "field-data": (b"data:\n\ndata\ndata\n\ndata:test\n\n", ["", "\n", "test"]),
    # format-field-unknown.htm
    "field-unknown": (
        b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n",
        ["test\n\ntest"],
    ),
    # format-field-retry-empty.htm: a bare "retry" is ignored, the event still comes.
    "retry-empty": (b"retry\ndata:test\n\n", ["test"]),
    # event-data.htm (resources/message2.py)
    "event-data": (
        b"data:msg\ndata:msg\n\n:\n\nfalsedata:msg\n\ndata:\n\ndata:end\n\n",
        ["msg\nmsg", "", "end"],
    ),
    # format-bom.htm: one leading BOM is skipped; a later one makes "\ufeffdata" a field name.
    "bom": (b"\xef\xbb\xbfdata:1\n\n\xef\xbb\xbfdata:2\n\ndata:3\n\n", ["1", "3"]),
    # format-bom-2.htm: only one BOM is skipped.
    "bom-2": (b"\xef\xbb\xbf\xef\xbb\xbfdata:1\n\ndata:2\n\ndata:3\n\n", ["2", "3"]),
    # format-data-before-final-empty-line.htm: an event without its blank line is dropped.
    "unfinished": (b"data:test1\n\nid:test\ndata:test2", ["test1"]),
}


@pytest.mark.parametrize("case", sorted(WIRE_CASES))
def test_wire_format(sse_server: SSEServer, case: str) -> None:
    raw, expected = WIRE_CASES[case]
    sse_server.route("/s", [send(raw), close()])
    with sse_sync.connect(sse_server.url_for("/s"), retry=None) as stream:
        assert datas(drain(stream)) == expected


def test_custom_and_empty_event_types(sse_server: SSEServer) -> None:
    # format-field-event.htm, format-field-event-empty.htm
    sse_server.route("/s", [send(b"event:test\ndata:x\n\ndata:x\n\nevent: \ndata:data\n\n")])
    with sse_sync.connect(sse_server.url_for("/s"), retry=None) as stream:
        assert [(e.event, e.data) for e in drain(stream)] == [
            ("test", "x"),
            ("message", "x"),
            ("message", "data"),
        ]


def test_a_bom_at_the_start_of_a_reconnected_response_is_skipped(sse_server: SSEServer) -> None:
    # Each response is decoded on its own, and UTF-8 decode skips one leading BOM.
    sse_server.route(
        "/s",
        turns(
            [send(b"\xef\xbb\xbfretry: 2\ndata: a\n\n"), close()],
            [send(b"\xef\xbb\xbfdata: b\n\n"), close()],
            [respond(204)],
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert datas(drain(stream)) == ["a", "b"]


# -- Last-Event-ID: format-field-id*.htm, resources/last-event-id.py ---------------------------


def last_event_id_py(id_line: bytes, rounds: int = 3) -> Callable[[RecordedRequest], ScriptLike]:
    """resources/last-event-id.py: echo ``Last-Event-ID`` as data when sent, else send
    ``id_line``, ``retry: 2`` and ``data: hello``; a 204 after ``rounds`` requests."""

    def route(request: RecordedRequest) -> ScriptLike:
        if request.number > rounds:
            return respond(204)
        last = request.headers.get("Last-Event-ID")
        if last:
            return [send(b"data: " + last.encode("latin-1") + b"\n\n"), close()]
        return [send(id_line + b"\nretry: 2\ndata: hello\n\n"), close()]

    return route


def sent_ids(server: SSEServer, count: int) -> list[str | None]:
    """The ``Last-Event-ID`` of the first ``count`` requests to /s, UTF-8 decoded."""
    headers = [server.wait_request("/s").headers for _ in range(count)]
    return [
        h["Last-Event-ID"].encode("latin-1").decode() if "Last-Event-ID" in h else None
        for h in headers
    ]


def test_last_event_id_is_sent_as_utf8_and_persists(sse_server: SSEServer) -> None:
    # format-field-id.htm, format-field-id-2.htm: id "…" comes back as the header's value.
    sse_server.route("/s", last_event_id_py("id: \u2026".encode()))
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        events = drain(stream)
        assert stream.last_event_id == "\u2026"
    assert [(e.data, e.id) for e in events] == [("hello", "\u2026")] + [("\u2026", "\u2026")] * 2
    assert sent_ids(sse_server, 4) == [None, "\u2026", "\u2026", "\u2026"]


@pytest.mark.parametrize("value", [b"\0\0", b"x\0", b"\0x", b"x\0x", b" \0"])
def test_an_id_with_nul_is_ignored(sse_server: SSEServer, value: bytes) -> None:
    # format-field-id-null.htm: the id field is ignored, so no Last-Event-ID is sent.
    sse_server.route("/s", last_event_id_py(b"id: " + value, rounds=2))
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        events = drain(stream)
    assert [(e.data, e.id) for e in events] == [("hello", ""), ("hello", "")]
    assert sent_ids(sse_server, 3) == [None, None, None]


def test_an_id_with_nul_keeps_the_previous_id(sse_server: SSEServer) -> None:
    # HTML: "If the field value does not contain U+0000 NULL, set the last event ID buffer".
    sse_server.route(
        "/s",
        turns(
            [send(b"retry: 2\nid: 1\ndata: a\n\nid: x\0y\ndata: b\n\n"), close()], [respond(204)]
        ),
    )
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert [(e.data, e.id) for e in drain(stream)] == [("a", "1"), ("b", "1")]
    assert sent_ids(sse_server, 2) == [None, "1"]


@pytest.mark.parametrize(
    ("body", "ids", "header"),
    [
        # format-field-id-3.htm with resources/last-event-id2.py, types 1, 2 and 3.
        (b"id: 1\ndata: 1\n\ndata:2\n\n", ["1", "1"], "1"),
        (b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n", ["1", "2", "2"], "2"),
        (b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n", ["1", "", ""], None),
    ],
    ids=["persists", "changes-and-persists", "resets"],
)
def test_last_event_id_persists_changes_and_resets(
    sse_server: SSEServer, body: bytes, ids: list[str], header: str | None
) -> None:
    sse_server.route("/s", turns([send(b"retry: 2\n" + body), close()], [respond(204)]))
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert [e.id for e in drain(stream)] == ids
    assert sent_ids(sse_server, 2) == [None, header]


def test_an_unfinished_event_sets_no_last_event_id(sse_server: SSEServer) -> None:
    # format-data-before-final-empty-line.htm: "id:test" came in an event that was never
    # dispatched, so the reconnection sends no Last-Event-ID.
    raw = b"retry:2\ndata:test1\n\nid:test\ndata:test2"
    sse_server.route("/s", turns([send(raw), close()], [send(raw), close()], [respond(204)]))
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert [(e.data, e.id) for e in drain(stream)] == [("test1", "")] * 2
    assert sent_ids(sse_server, 3) == [None, None, None]


# -- cancellation: eventsource-request-cancellation.htm, eventsource-close.htm -----------------


def test_closing_before_the_first_event_delivers_nothing_and_never_reconnects(
    sse_server: SSEServer,
) -> None:
    gate = threading.Event()
    sse_server.route("/s", [wait_for(gate), send(b"retry:1000\ndata:abc\n\n"), close()])
    stream = sse_sync.connect(sse_server.url_for("/s"), retry=RetryPolicy(initial_delay=0))
    stream.close()
    gate.set()
    assert drain(stream) == []
    sse_server.wait_disconnect()
    assert len(sse_server.requests) == 1


# -- the retry field: format-field-retry.htm, format-field-retry-bogus.htm ---------------------


@pytest.mark.parametrize(
    "body",
    [
        b"retry:0300\ndata:x\n\n",  # format-field-retry: decimal, not octal
        b"retry:300\nretry:100x\ndata:x\n\n",  # format-field-retry-bogus
    ],
    ids=["leading-zero", "bogus"],
)
def test_the_retry_field_sets_the_reconnection_time(body: bytes) -> None:
    with TimedServer([Reply(body=body), Reply(204)]) as server:
        with sse_sync.connect(server.url, retry=EXACT) as stream:
            assert datas(drain(stream)) == ["x"]
        assert_waited(server.gaps(2), [0.3])


@pytest.mark.parametrize(
    "value",
    [b"100x", b"", b" 100", b"1.5", b"-100", b"+100", b"1e3", b"0x10", "\uff11\uff10".encode()],
)
def test_a_retry_value_of_anything_but_ascii_digits_is_ignored(value: bytes) -> None:
    # HTML: "If the field value consists of only ASCII digits ... Otherwise, ignore the field."
    decoder = SSEDecoder()
    decoder.feed(b"retry: 300\n\n")
    decoder.feed(b"retry: " + value + b"\ndata: x\n\n")
    assert decoder.retry == 300


# -- waiting: "the wait is never shorter than the reconnection time" --------------------------


@pytest.mark.timeout(30)
def test_the_default_policy_waits_3_to_3_75_seconds_after_retry_3000() -> None:
    # format-field-retry.htm allows a browser 25 % around 3000 ms; the library's defaults keep
    # to [t, 1.25 t], on every reconnection of a stream that delivered.
    route = replies_then_204(2, lambda n: Reply(body=b"retry: 3000\ndata: %d\n\n" % n))
    with TimedServer(route) as server:
        with sse_sync.connect(server.url, retry=DEFAULT_RETRY) as stream:
            delays = watch_retries(stream, stop_if=lambda delay: not 3.0 <= delay <= 3.75)
            events = drain(stream)
        for n, delay in enumerate(delays, 1):
            assert 3.0 <= delay <= 3.75, f"wait {n}: {delay:.3f} s: {delays}"
        assert datas(events) == ["1", "2"]
        gaps = server.gaps(3)
    assert len(delays) == 2
    for n, gap in enumerate(gaps, 1):
        assert 3.0 <= gap <= 3.75 + MARGIN, f"wait {n}: {gap:.3f} s measured: {gaps}"


def test_jitter_only_lengthens_the_wait() -> None:
    route = replies_then_204(5, lambda n: Reply(body=b"retry: 100\ndata: %d\n\n" % n))
    with TimedServer(route) as server:
        with sse_sync.connect(server.url, retry=RetryPolicy(jitter=0.5)) as stream:
            delays = watch_retries(stream, stop_if=lambda delay: delay > 0.15)
            events = drain(stream)
        for n, delay in enumerate(delays, 1):
            assert 0.1 <= delay <= 0.15, f"wait {n}: {delay:.3f} s: {delays}"
        assert len(events) == len(delays) == 5
        gaps = server.gaps(6)
    for n, (gap, delay) in enumerate(zip(gaps, delays, strict=True), 1):
        assert delay <= gap <= delay + MARGIN, f"wait {n}: {gap:.3f} s for {delay:.3f}: {gaps}"


def test_a_stream_that_delivered_reconnects_after_exactly_the_reconnection_time() -> None:
    # HTML "reestablish the connection": wait the reconnection time; no growth after a
    # connection that delivered an event, however soon it ended.
    route = replies_then_204(4, lambda n: Reply(body=b"retry: 200\ndata: %d\n\n" % n))
    with TimedServer(route) as server:
        with sse_sync.connect(server.url, retry=EXACT) as stream:
            delays = watch_retries(stream, stop_if=lambda delay: delay > 0.2)
            events = drain(stream)
        assert delays == [0.2] * 4
        assert datas(events) == ["1", "2", "3", "4"]
        gaps = server.gaps(5)
    assert_waited(gaps, [0.2] * 4)


def test_a_broken_connection_that_delivered_also_waits_just_the_reconnection_time() -> None:
    route = replies_then_204(3, lambda n: Reply(body=b"retry: 200\ndata: %d\n\n" % n, end="cut"))
    with TimedServer(route) as server:
        with sse_sync.connect(server.url, retry=EXACT) as stream:
            errors: list[BaseException | None] = []
            stream.on_retry(lambda error, _: errors.append(error))
            delays = watch_retries(stream, stop_if=lambda delay: delay > 0.2)
            events = drain(stream)
        assert all(isinstance(e, sse_sync.StreamError) for e in errors), errors
        assert delays == [0.2] * 3
        assert datas(events) == ["1", "2", "3"]
        gaps = server.gaps(4)
    assert_waited(gaps, [0.2] * 3)


def test_the_wait_grows_only_over_attempts_that_delivered_nothing() -> None:
    # delivered, nothing, nothing, delivered: t, 2t, 4t, then t again.
    bodies = [b"retry: 100\ndata: a\n\n", b"", b"", b"data: b\n\n"]
    route = replies_then_204(4, lambda n: Reply(body=bodies[n - 1]))
    with TimedServer(route) as server:
        with sse_sync.connect(server.url, retry=EXACT) as stream:
            delays = watch_retries(stream, stop_if=lambda delay: delay > 0.4)
            events = drain(stream)
        assert delays == pytest.approx([0.1, 0.2, 0.4, 0.1])
        assert datas(events) == ["a", "b"]
        gaps = server.gaps(5)
    assert_waited(gaps, [0.1, 0.2, 0.4, 0.1])


@pytest.mark.timeout(30)
def test_forty_drops_with_retry_10_deliver_every_event_once_in_order() -> None:
    count = 40
    route = replies_then_204(
        count, lambda n: Reply(body=b"retry: 10\nid: %d\ndata: %d\n\n" % (n, n), end="cut")
    )
    with TimedServer(route) as server:
        with sse_sync.connect(server.url) as stream:  # DEFAULT_RETRY
            delays = watch_retries(stream, stop_if=lambda delay: delay > 0.0125)
            events = drain(stream)
        assert 0.01 <= min(delays) <= max(delays) <= 0.0125, delays
        assert [(e.data, e.id) for e in events] == [(str(n), str(n)) for n in range(1, count + 1)]
        assert len(delays) == count
        assert sum(delays) < 1.0
        gaps = server.gaps(count + 1)
        ids = [h.headers.get("last-event-id") for h in server.hits]
    assert min(gaps) >= 0.01, gaps
    assert ids == [None] + [b"%d" % n for n in range(1, count + 1)]


def test_retry_0_with_events_reconnects_at_once() -> None:
    route = replies_then_204(5, lambda n: Reply(body=b"retry: 0\ndata: %d\n\n" % n))
    with TimedServer(route) as server:
        with sse_sync.connect(server.url) as stream:  # DEFAULT_RETRY
            delays = watch_retries(stream, stop_if=lambda delay: delay > 0)
            events = drain(stream)
        assert delays == [0.0] * 5
        assert datas(events) == ["1", "2", "3", "4", "5"]
        gaps = server.gaps(6)
    assert_waited(gaps, [0.0] * 5)


def test_retry_0_and_attempts_that_deliver_nothing_back_off() -> None:
    # A server that sends "retry: 0" and closes every attempt without an event must not be
    # hammered: the wait grows from a floor above zero.
    with TimedServer([Reply(body=b"retry: 0\n\n")]) as server:
        with sse_sync.connect(server.url, retry=EXACT) as stream:
            delays = watch_retries(stream, stop_after=4)
            assert drain(stream) == []
        gaps = server.gaps(4)
    assert len(delays) == 4
    assert 0 < delays[1] < delays[2] < delays[3], delays
    for n, (gap, delay) in enumerate(zip(gaps, delays[:3], strict=True), 1):
        assert gap >= delay, f"wait {n}: {gap:.3f} s measured, {delay:.3f} s promised"
