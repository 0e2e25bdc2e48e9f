"""Reconnection against real servers on 127.0.0.1: when, how soon, with what, and when not.

Timing assertions are lower bounds only (a loaded machine makes everything slower, never faster);
each request's arrival is stamped by the server's route callable with ``time.monotonic()``, the
same clock the client uses.  Nothing sleeps to synchronise: the server is held with
``wait_for()`` or ``hold()``, and the tests wait on events, queues and ``wait_request()``.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import requests
from _net import free_port

import sse_sync
from sse_sync import (
    DEFAULT_RETRY,
    ConnectError,
    ContentTypeError,
    HTTPStatusError,
    RetriesExhausted,
    RetryPolicy,
    StreamError,
)
from sse_sync._retry import retry_after
from sse_sync.testing import (
    RecordedRequest,
    Script,
    ScriptLike,
    SSEServer,
    close,
    comment,
    drop,
    event,
    hold,
    pause,
    respond,
    send,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

FAST = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)
"""Reconnect at once: the server's ``retry:`` (if any) still applies."""


class Stamped:
    """A route callable: the n-th request gets the n-th script (the last one repeats) and the
    arrival time of every request is recorded."""

    def __init__(self, *scripts: ScriptLike) -> None:
        self.scripts = scripts
        self.times: list[float] = []
        self.seen: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> ScriptLike:
        with self._lock:
            self.times.append(time.monotonic())
            self.seen.append(request)
        return self.scripts[min(request.number, len(self.scripts)) - 1]


def data_of(events: Sequence[sse_sync.Event]) -> list[str]:
    return [e.data for e in events]


def last_event_ids(server: SSEServer, path: str = "/s") -> list[str | None]:
    return [r.headers.get("Last-Event-ID") for r in server.requests if r.path == path]


def library_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("sse_sync-") and t.is_alive()}


# -- reconnecting by default -------------------------------------------------------------------


def test_get_reconnects_by_default_after_a_clean_end(server: SSEServer) -> None:
    # The default policy waits the server's retry: time (10 ms here, jittered), as EventSource.
    server.route(
        "/s",
        [[event("one", id="1", retry=10), close()], [event("two", id="2"), hold()]],
    )
    with sse_sync.connect(server.url_for("/s")) as stream:
        assert data_of([next(stream), next(stream)]) == ["one", "two"]
        assert stream.stats().connections == 2
    assert last_event_ids(server) == [None, "1"]


def test_get_reconnects_by_default_after_a_drop(server: SSEServer) -> None:
    delivered = threading.Event()
    server.route(
        "/s",
        [
            [event("one", id="1", retry=10), wait_for(delivered), drop()],
            [event("two", id="2"), hold()],
        ],
    )
    with sse_sync.connect(server.url_for("/s")) as stream:
        assert next(stream).data == "one"
        delivered.set()  # only now is the connection reset
        assert next(stream).data == "two"
    assert last_event_ids(server) == [None, "1"]


def test_last_event_id_is_sent_on_every_reconnect(server: SSEServer) -> None:
    server.route(
        "/s",
        [
            [event("a", id="1"), close()],
            [event("b", id="2"), event("c"), close()],  # no id: "2" stays in effect
            [event("d", id="x y"), comment("bye"), close()],
            [event("e", id="é"), close()],  # non-ASCII: sent UTF-8 encoded, as browsers do
            [event("f"), hold()],
        ],
    )
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        got = [next(stream) for _ in range(6)]
    assert [(e.data, e.id) for e in got] == [
        ("a", "1"),
        ("b", "2"),
        ("c", "2"),
        ("d", "x y"),
        ("e", "é"),
        ("f", "é"),
    ]
    # http.server decodes header bytes as latin-1.
    utf8_e = "é".encode().decode("latin-1")
    assert last_event_ids(server) == [None, "1", "2", "x y", utf8_e]


def test_initial_last_event_id_is_sent_first_then_the_streams_own(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [event("b", id="9"), close()], [hold()]])
    with sse_sync.connect(server.url_for("/s"), last_event_id="41", retry=FAST) as stream:
        assert [(e.data, e.id) for e in (next(stream), next(stream))] == [("a", "41"), ("b", "9")]
        server.wait_request("/s")
        server.wait_request("/s")
        server.wait_request("/s")
    assert last_event_ids(server) == ["41", "41", "9"]


def test_empty_id_means_no_last_event_id_header_at_all(server: SSEServer) -> None:
    server.route(
        "/s",
        [[event("a", id="5"), close()], [event("b", id=""), close()], [event("c"), hold()]],
    )
    with sse_sync.connect(server.url_for("/s"), last_event_id="1", retry=FAST) as stream:
        got = [next(stream) for _ in range(3)]
    assert [(e.data, e.id) for e in got] == [("a", "5"), ("b", ""), ("c", "")]
    first, second, third = server.requests
    assert first.headers.get("Last-Event-ID") == "1"
    assert second.headers.get("Last-Event-ID") == "5"
    # Not an empty header: no header at all.
    assert "Last-Event-ID" not in third.headers
    assert all(name.lower() != "last-event-id" for name, _ in third.headers.fields)


# -- how long to wait --------------------------------------------------------------------------


def test_server_retry_field_sets_the_reconnection_delay(server: SSEServer) -> None:
    stamped = Stamped([event("a", retry=200), close()], [event("b"), hold()])
    server.route("/s", stamped)
    retries: list[tuple[float, float]] = []  # (delay, when the consumer learnt of it)
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        stream.on_retry(lambda error, delay: retries.append((delay, time.monotonic())))
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
    assert [delay for delay, _ in retries] == [pytest.approx(0.2)]
    first, second = stamped.times
    # The first request came before the connection ended, and the consumer heard of the end
    # after it (it may hear a little late, hence the slack on the second bound).
    assert second - first >= 0.19
    assert second - retries[0][1] >= 0.15


def test_delay_grows_with_consecutive_failures_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=10, jitter=0)
    rng = random.Random(7)
    assert [policy.delay(n, None, rng) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    # No overflow however long the failure lasts.
    assert policy.delay(10_000, None, rng) == 10
    # The server's retry: replaces initial_delay, and grows from there.
    assert [policy.delay(n, 500, rng) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 10]
    # A server retry: above max_delay is honoured as it is, and does not grow.
    assert [policy.delay(n, 60_000, rng) for n in (1, 2, 50)] == [60, 60, 60]
    assert RetryPolicy(initial_delay=0, min_delay=0, jitter=0).delay(30, None, rng) == 0


def test_jitter_only_lengthens_each_delay_within_its_bounds() -> None:
    # As in HTML: wait the reconnection time, then optionally longer; never shorter.
    policy = RetryPolicy(initial_delay=2, multiplier=2, max_delay=8, jitter=0.5)
    rng = random.Random(1234)
    for failures, full in ((1, 2), (2, 4), (3, 8), (9, 8)):
        samples = [policy.delay(failures, None, rng) for _ in range(500)]
        assert all(full <= s <= full * 1.5 for s in samples)
        # Really random: the samples spread over the range.
        assert max(samples) - min(samples) > full * 0.4
    # Seeded: reproducible.
    again = [policy.delay(1, None, random.Random(99)) for _ in range(3)]
    assert again == [policy.delay(1, None, random.Random(99)) for _ in range(3)]
    full_jitter = RetryPolicy(initial_delay=2, jitter=1)
    assert all(2 <= full_jitter.delay(1, None, rng) <= 4 for _ in range(500))
    # The default stays inside what a browser is allowed after retry: 3000.
    assert all(3.0 <= DEFAULT_RETRY.delay(1, 3000, rng) <= 3.75 for _ in range(500))
    assert RetryPolicy(initial_delay=2, jitter=0).delay(1, None, rng) == 2


@pytest.mark.parametrize("bad", [{"jitter": 1.5}, {"jitter": -0.1}, {"initial_delay": -1}])
def test_invalid_policy_values_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]


def test_backoff_grows_over_failed_attempts_on_the_wire(server: SSEServer) -> None:
    server.route(
        "/s",
        [
            [event("a"), close()],
            [respond(503)],
            [respond(503)],
            [respond(503)],
            [respond(503)],
            [event("b"), hold()],
        ],
    )
    policy = RetryPolicy(initial_delay=0.01, multiplier=2, max_delay=0.04, jitter=0, min_delay=0)
    delays: list[float] = []
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        stream.on_retry(lambda error, delay: delays.append(delay))
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
    assert delays == pytest.approx([0.01, 0.02, 0.04, 0.04, 0.04])
    assert len(server.requests) == 6


@pytest.mark.parametrize(
    ("reset_after", "deliver", "expected"),
    [
        (None, True, [0.01, 0.01, 0.01]),  # each connection delivered: as a browser does
        (0, True, [0.01, 0.01, 0.01]),  # the stricter rule, satisfied
        (60, True, [0.01, 0.02, 0.04]),  # not up long enough: the failures add up
        (None, False, [0.01, 0.02, 0.04]),  # delivered nothing: the failures add up
    ],
    ids=["reset", "reset-after-0", "too-short", "no-event"],
)
def test_backoff_resets_after_a_connection_that_delivered(
    server: SSEServer, reset_after: float | None, deliver: bool, expected: list[float]
) -> None:
    body = event("x") if deliver else comment("nothing")
    server.route("/s", [[body, close()]] * 3 + [[event("last"), hold()]])
    policy = RetryPolicy(
        initial_delay=0.01, multiplier=2, jitter=0, min_delay=0, reset_after=reset_after
    )
    delays: list[float] = []
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        stream.on_retry(lambda error, delay: delays.append(delay))
        got = [next(stream).data for _ in range(4 if deliver else 1)]
    assert got == (["x", "x", "x", "last"] if deliver else ["last"])
    assert delays == pytest.approx(expected)


# -- giving up ---------------------------------------------------------------------------------


def test_max_attempts_raises_retries_exhausted_with_the_cause(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [respond(503)]])
    policy = RetryPolicy(max_attempts=3, initial_delay=0, min_delay=0, jitter=0)
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        assert next(stream).data == "a"
        with pytest.raises(RetriesExhausted) as info:
            next(stream)
    assert info.value.attempts == 3
    cause = info.value.__cause__
    assert isinstance(cause, HTTPStatusError)
    assert cause.status_code == 503
    assert len(server.requests) == 1 + 3


def test_max_attempts_counts_broken_connections_too(server: SSEServer) -> None:
    # The pause lets the client take the response head first, so each attempt opens and then
    # breaks (a StreamError from the read, not a ConnectError from the request).
    server.route("/s", [[event("a"), close()], [comment("x"), pause(0.2), drop()]])
    policy = RetryPolicy(max_attempts=2, initial_delay=0, min_delay=0, jitter=0)
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        assert next(stream).data == "a"
        with pytest.raises(RetriesExhausted) as info:
            next(stream)
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, StreamError)
    assert len(server.requests) == 1 + 2


def test_max_attempts_counts_every_consecutive_failure(server: SSEServer) -> None:
    # Failed requests (503) alternate with connections that open and end at once without an
    # event (which the reader also counts as failures): none of them resets the count, so
    # the policy gives up after max_attempts reconnection attempts and the delays keep growing.
    server.route(
        "/s",
        [[event("a"), close()]] + [[respond(503)], [comment("x"), close()]] * 5,
    )
    policy = RetryPolicy(max_attempts=4, initial_delay=0.001, multiplier=2, jitter=0, min_delay=0)
    delays: list[float] = []
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        stream.on_retry(lambda error, delay: delays.append(delay))
        assert next(stream).data == "a"
        with pytest.raises(RetriesExhausted) as info:
            next(stream)
    assert info.value.attempts == 4
    assert len(server.requests) == 1 + 4
    assert delays == pytest.approx([0.001, 0.002, 0.004, 0.008])


def test_max_elapsed_gives_up_after_that_long(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [respond(500)]])
    policy = RetryPolicy(max_elapsed=0.3, initial_delay=0.05, multiplier=1, jitter=0)
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        assert next(stream).data == "a"
        started = time.monotonic()
        with pytest.raises(RetriesExhausted, match=r"0\.3 s") as info:
            next(stream)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.25
    assert info.value.attempts >= 3
    assert isinstance(info.value.__cause__, HTTPStatusError)
    assert len(server.requests) == 1 + info.value.attempts


@pytest.mark.parametrize("first", [False, True], ids=["reconnect", "retry_first"])
def test_a_retry_after_past_max_elapsed_gives_up_at_once(server: SSEServer, first: bool) -> None:
    # Waiting an hour for an attempt the policy would not allow helps nobody.
    hour = respond(503, headers={"Retry-After": "3600"})
    policy = RetryPolicy(max_elapsed=5, initial_delay=0.01, jitter=0, retry_first=first)
    server.route("/s", [[hour]] if first else [[event("a"), close()], [hour]])

    def read() -> None:
        with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
            assert next(stream).data == "a"
            next(stream)

    started = time.monotonic()
    with pytest.raises(RetriesExhausted, match=r"3\.6e\+03 s.*max_elapsed=5 s") as info:
        read()
    assert time.monotonic() - started < 4
    assert isinstance(info.value.__cause__, HTTPStatusError)
    assert len(server.requests) == (1 if first else 2)


# -- what the status says ----------------------------------------------------------------------


def test_204_on_reconnect_ends_the_stream_cleanly(server: SSEServer) -> None:
    server.route("/s", [[event("a", id="1"), close()], [respond(204)], [event("never"), hold()]])
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        assert data_of(list(stream)) == ["a"]  # no error
        assert stream.done
    assert last_event_ids(server) == [None, "1"]
    server.wait_request("/s")
    server.wait_request("/s")
    with pytest.raises(TimeoutError):
        server.wait_request("/s", timeout=0.3)


def test_204_on_first_connect_is_a_finished_stream(server: SSEServer) -> None:
    server.route("/s", [[respond(204)], [event("never"), hold()]])
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        assert stream.status == 204
        assert list(stream) == []
        assert stream.done
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_4xx_on_reconnect_raises_without_retrying(server: SSEServer, status: int) -> None:
    server.route("/s", [[event("a"), close()], [respond(status)], [event("never"), hold()]])
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        assert next(stream).data == "a"
        with pytest.raises(HTTPStatusError) as info:
            next(stream)
    assert info.value.status_code == status
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_5xx_408_and_429_are_retried(server: SSEServer, status: int) -> None:
    server.route("/s", [[event("a", id="1"), close()], [respond(status)], [event("b"), hold()]])
    errors: list[BaseException | None] = []
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        stream.on_retry(lambda error, delay: errors.append(error))
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
    assert errors[0] is None
    assert isinstance(errors[1], HTTPStatusError)
    assert errors[1].status_code == status
    assert last_event_ids(server) == [None, "1", "1"]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_header_is_honoured(server: SSEServer, status: int) -> None:
    stamped = Stamped(
        [event("a"), close()],
        respond(status, headers={"Retry-After": "1"}),
        [event("b"), hold()],
    )
    server.route("/s", stamped)
    delays: list[float] = []
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        stream.on_retry(lambda error, delay: delays.append(delay))
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
    assert delays[1] >= 1.0
    # The 503 went out after its request arrived; the next request came at least 1 s later.
    assert stamped.times[2] - stamped.times[1] >= 0.95


def test_retry_after_delta_seconds() -> None:
    assert retry_after({"Retry-After": "5"}) == 5.0
    assert retry_after({"Retry-After": " 7 "}) == 7.0
    assert retry_after({"Retry-After": "0"}) == 0.0
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after(requests.structures.CaseInsensitiveDict({"RETRY-after": "4"})) == 4.0


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    later = email.utils.formatdate(now + 30, usegmt=True)  # "Tue, 14 Nov 2023 22:13:50 GMT"
    assert retry_after({"Retry-After": later}, now=now) == pytest.approx(30)
    earlier = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after({"Retry-After": earlier}, now=now) == 0.0
    # The obsolete RFC 850 form is an HTTP-date too.
    assert retry_after({"Retry-After": "Tuesday, 14-Nov-23 22:13:50 GMT"}, now=now) == (
        pytest.approx(30)
    )


@pytest.mark.parametrize("value", ["", "soon", "-1", "1.5", "1e3", "٣"])
def test_retry_after_garbage_is_ignored(value: str) -> None:
    assert retry_after({"Retry-After": value}) is None
    assert retry_after({}) is None


def test_retry_after_header_name_is_case_insensitive() -> None:
    # HTTPStatusError.headers is a plain dict keeping the server's spelling of each name, and
    # that dict is what the reader passes here; field names are case-insensitive (RFC 9110).
    error = HTTPStatusError("x", status_code=503, headers={"RETRY-AFTER": "2"})
    assert retry_after(error.headers) == 2.0


def test_wrong_content_type_on_reconnect_stops(server: SSEServer) -> None:
    server.route(
        "/s",
        [
            [event("a"), close()],
            Script([event("b"), close()], content_type="application/json"),
            [event("never"), hold()],
        ],
    )
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        assert next(stream).data == "a"
        with pytest.raises(ContentTypeError) as info:
            next(stream)
    assert info.value.content_type == "application/json"
    assert len(server.requests) == 2


# -- the first connection ------------------------------------------------------------------------


def test_first_connection_refused_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectError):
        sse_sync.connect(f"http://127.0.0.1:{free_port()}/s")
    assert time.monotonic() - started < 2


def test_first_connection_500_fails_fast(server: SSEServer) -> None:
    server.route("/s", [[respond(500)], [event("a"), hold()]])
    with pytest.raises(HTTPStatusError) as info:
        sse_sync.connect(server.url_for("/s"))
    assert info.value.status_code == 500
    assert len(server.requests) == 1


def test_retry_first_retries_the_first_connection_until_200(server: SSEServer) -> None:
    server.route("/s", [[respond(503)], [respond(500)], [respond(429)], [event("ok"), hold()]])
    policy = RetryPolicy(retry_first=True, initial_delay=0, min_delay=0, jitter=0)
    with sse_sync.connect(server.url_for("/s"), retry=policy) as stream:
        assert next(stream).data == "ok"
        assert stream.status == 200
    assert len(server.requests) == 4


def test_retry_first_counts_the_first_attempt_too(server: SSEServer) -> None:
    # max_attempts bounds the retries; attempts counts every failed request, the first included.
    server.route("/s", [[respond(503)]])
    policy = RetryPolicy(retry_first=True, max_attempts=2, initial_delay=0, min_delay=0, jitter=0)
    with pytest.raises(RetriesExhausted) as info:
        sse_sync.connect(server.url_for("/s"), retry=policy)
    assert info.value.attempts == 3
    assert len(server.requests) == 3
    assert isinstance(info.value.__cause__, HTTPStatusError)


def test_retry_first_still_stops_on_a_4xx(server: SSEServer) -> None:
    server.route("/s", [[respond(404)], [event("ok"), hold()]])
    policy = RetryPolicy(retry_first=True, initial_delay=0, min_delay=0, jitter=0)
    with pytest.raises(HTTPStatusError):
        sse_sync.connect(server.url_for("/s"), retry=policy)
    assert len(server.requests) == 1


# -- requests with a body ----------------------------------------------------------------------


def test_post_body_is_not_resent_by_default(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [event("never"), hold()]])
    with sse_sync.connect(server.url_for("/s"), method="POST", data=b"query=1") as stream:
        assert data_of(list(stream)) == ["a"]  # ends, no error, no reconnection
    assert [(r.method, r.body) for r in server.requests] == [("POST", b"query=1")]


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({"data": b"\x00binary\xff"}, b"\x00binary\xff"),
        ({"data": "text"}, b"text"),
        ({"data": {"a": "1"}}, b"a=1"),
        ({"json": {"q": [1, 2]}}, b'{"q": [1, 2]}'),
    ],
    ids=["bytes", "str", "form", "json"],
)
def test_resend_body_sends_the_identical_body_again(
    server: SSEServer, kwargs: dict[str, Any], body: bytes
) -> None:
    server.route("/s", [[event("a", id="1"), close()], [event("b"), close()], [hold()]])
    policy = RetryPolicy(resend_body=True, initial_delay=0, min_delay=0, jitter=0)
    with sse_sync.connect(server.url_for("/s"), method="POST", retry=policy, **kwargs) as stream:
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
        server.wait_request("/s")
        server.wait_request("/s")
        server.wait_request("/s")
    assert [(r.method, r.body) for r in server.requests] == [("POST", body)] * 3
    types = {r.headers.get("Content-Type") for r in server.requests}
    assert len(types) == 1
    assert last_event_ids(server) == [None, "1", "1"]


# -- headers -----------------------------------------------------------------------------------


def test_headers_callable_is_called_for_every_attempt(server: SSEServer) -> None:
    calls: list[int] = []

    def headers() -> dict[str, str]:
        calls.append(len(calls) + 1)
        return {"Authorization": f"Bearer token-{len(calls)}"}

    server.route("/s", [[event("a"), close()], [respond(503)], [event("b"), close()], [hold()]])
    with sse_sync.connect(server.url_for("/s"), headers=headers, retry=FAST) as stream:
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
        for _ in range(4):
            server.wait_request("/s")
    assert [r.headers.get("Authorization") for r in server.requests] == [
        "Bearer token-1",
        "Bearer token-2",
        "Bearer token-3",
        "Bearer token-4",
    ]
    assert calls == [1, 2, 3, 4]


def test_custom_headers_are_sent_on_every_attempt(server: SSEServer) -> None:
    mine = {"X-Client": "tests", "Authorization": "Bearer fixed"}
    server.route("/s", [[event("a"), close()], [drop()], [event("b"), close()], [hold()]])
    with sse_sync.connect(server.url_for("/s"), headers=mine, retry=FAST) as stream:
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
        for _ in range(4):
            server.wait_request("/s")
    assert mine == {"X-Client": "tests", "Authorization": "Bearer fixed"}  # not modified
    for request in server.requests:
        assert request.headers.get("X-Client") == "tests"
        assert request.headers.get("Authorization") == "Bearer fixed"
        assert request.headers.get("Accept") == "text/event-stream"
        assert request.headers.get("Cache-Control") == "no-cache"


# -- restart and cancel ------------------------------------------------------------------------


def test_restart_reconnects_at_once_while_the_server_holds(server: SSEServer) -> None:
    server.route("/s", [[event("a", id="1"), hold()], [event("b", id="2"), hold()]])
    slow = RetryPolicy(initial_delay=30, jitter=0)
    errors: list[BaseException | None] = []
    with sse_sync.connect(server.url_for("/s"), retry=slow) as stream:
        stream.on_retry(lambda error, delay: errors.append(error))
        assert next(stream).data == "a"
        started = time.monotonic()
        stream.restart()
        assert next(stream).data == "b"
        assert time.monotonic() - started < 2
        assert stream.stats().connections == 2
    assert last_event_ids(server) == [None, "1"]
    assert errors == []  # a restart is not a failure


def test_restart_during_a_backoff_wait_ends_the_wait(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [event("b"), hold()]])
    slow = RetryPolicy(initial_delay=30, jitter=0)
    with sse_sync.connect(server.url_for("/s"), retry=slow) as stream:
        # on_retry runs in this thread when the reader starts its 30 s wait.
        stream.on_retry(lambda error, delay: stream.restart())
        assert next(stream).data == "a"
        started = time.monotonic()
        assert next(stream).data == "b"
        assert time.monotonic() - started < 2


def test_cancel_during_a_long_backoff_ends_promptly(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [event("never"), hold()]])
    slow = RetryPolicy(initial_delay=30, jitter=0)
    before = library_threads()
    backing_off = threading.Event()
    cancelled_at: list[float] = []
    stream = sse_sync.connect(server.url_for("/s"), retry=slow)
    ours = library_threads() - before
    assert ours  # the reader thread

    def cancel_when_waiting() -> None:
        if backing_off.wait(10):
            cancelled_at.append(time.monotonic())
            stream.cancel()

    canceller = threading.Thread(target=cancel_when_waiting)
    canceller.start()
    try:
        stream.on_retry(lambda error, delay: backing_off.set())
        assert next(stream).data == "a"
        assert list(stream) == []  # ends without error once cancelled
        ended = time.monotonic()
        assert ended - cancelled_at[0] < 2
        for thread in ours:
            thread.join(2)
        assert time.monotonic() - cancelled_at[0] < 2
        assert not any(t.is_alive() for t in ours)
        assert stream.cancelled
    finally:
        backing_off.set()
        canceller.join(5)
        stream.close()
    assert len(server.requests) == 1


# -- visibility --------------------------------------------------------------------------------


def test_on_open_on_retry_and_stats_see_each_reconnect(server: SSEServer) -> None:
    gate = threading.Event()
    server.route(
        "/s",
        [
            [event("a"), close()],
            [event("b"), wait_for(gate), drop()],
            [event("c"), hold()],
        ],
    )
    opened: list[int] = []
    retried: list[tuple[type | None, float]] = []
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        stream.on_open(lambda s: opened.append(s.status))
        stream.on_retry(lambda error, delay: retried.append((type(error), delay)))
        assert next(stream).data == "a"
        assert next(stream).data == "b"
        gate.set()
        assert next(stream).data == "c"
        stats = stream.stats()
    assert opened == [200, 200, 200]
    assert len(retried) == 2
    assert retried[0] == (type(None), 0.0)
    assert retried[1][0] is not None
    assert issubclass(retried[1][0], StreamError)
    assert stats.connections == 3
    assert stats.events == 3


def test_callbacks_see_reconnects_in_run(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [respond(502)], [event("b"), hold()]])
    log: list[str] = []
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:

        def on_message(ev: sse_sync.Event) -> None:
            log.append(f"event {ev.data}")
            if ev.data == "b":
                stream.cancel()

        stream.on_open(lambda s: log.append("open"))
        stream.on_retry(
            lambda error, delay: log.append(f"retry {getattr(error, 'status_code', None)} {delay}")
        )
        stream.on("message", on_message)
        stream.run()
        assert stream.stats().connections == 2
    assert log == [
        "open",
        "event a",
        "retry None 0.0",
        "retry 502 0.0",
        "open",
        "event b",
    ]


def test_no_handler_runs_after_cancel(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [event("b"), hold()]])
    calls: list[str] = []
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        stream.on_open(lambda s: calls.append("open"))
        stream.on_retry(lambda error, delay: calls.append("retry"))
        # The reconnection has been requested, so the reader had already queued "a" and the
        # end of the first connection: the first next() takes both from the queue.
        server.wait_request("/s")
        server.wait_request("/s")
        assert next(stream).data == "a"
        assert calls == ["open"]
        stream.cancel()
        assert list(stream) == []
    # cancel(): "iteration ends"; handlers of a stream the caller has stopped must not run.
    assert calls == ["open"]


@pytest.mark.parametrize("ending", ["close", "drop"])
@pytest.mark.parametrize(
    "cut",
    [b"data: par", b"data: half\n", b"event: x\ndata: y\r", b"data: y\r\ndata: z\r\n"],
    ids=["mid-line", "line-no-blank", "cr", "crlf-lines"],
)
def test_an_event_cut_off_by_the_connection_end_is_never_delivered(
    server: SSEServer, ending: str, cut: bytes
) -> None:
    end = close() if ending == "close" else drop()
    server.route(
        "/s",
        [
            # The pause lets the cut bytes reach the client before the end (a reset discards
            # what the server has not sent yet).
            [event("whole-1", id="1"), send(cut), pause(0.2), end],
            # Were the decoder not reset, this would complete the cut event ("party").
            [send(b"ty\n\n"), event("whole-2", id="2"), hold()],
        ],
    )
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        got = [next(stream), next(stream)]
        received = stream.stats().bytes
    assert [(e.event, e.data, e.id) for e in got] == [
        ("message", "whole-1", "1"),
        ("message", "whole-2", "2"),
    ]
    assert received >= len(event("whole-1", id="1").data) + len(cut)
    assert last_event_ids(server) == [None, "1"]


# -- redirects ---------------------------------------------------------------------------------


def test_a_307_redirect_is_followed(server: SSEServer) -> None:
    server.route("/old", respond(307, headers={"Location": "/new"}))
    server.route("/new", [[event("a", id="1"), close()], [event("b"), hold()]])
    with sse_sync.connect(server.url_for("/old?x=1"), retry=FAST) as stream:
        assert data_of([next(stream), next(stream)]) == ["a", "b"]
        assert stream.url == server.url_for("/new")
    new = [r for r in server.requests if r.path == "/new"]
    assert [r.headers.get("Last-Event-ID") for r in new] == [None, "1"]
    assert all(r.headers.get("Accept") == "text/event-stream" for r in new)


def test_a_redirect_without_location_is_an_error(server: SSEServer) -> None:
    server.route("/s", respond(307))
    with pytest.raises(HTTPStatusError) as info:
        sse_sync.connect(server.url_for("/s"))
    assert info.value.status_code == 307
    assert len(server.requests) == 1


def test_a_redirect_without_location_on_reconnect_is_not_retried(server: SSEServer) -> None:
    server.route("/s", [[event("a"), close()], [respond(302)], [event("never"), hold()]])
    with sse_sync.connect(server.url_for("/s"), retry=FAST) as stream:
        assert next(stream).data == "a"
        with pytest.raises(HTTPStatusError) as info:
            next(stream)
    assert info.value.status_code == 302
    assert len(server.requests) == 2


@pytest.mark.timeout(20)
def test_status_says_204_after_a_reconnection_is_told_to_stop(server: SSEServer) -> None:
    server.route("/b", [[event("1", id="1")], [respond(204)]])
    fast = sse_sync.RetryPolicy(initial_delay=0.01, jitter=0)
    with sse_sync.connect(server.url_for("/b"), retry=fast) as stream:
        assert stream.status == 200
        assert [e.data for e in stream] == ["1"]
        assert stream.done
        assert stream.status == 204
        assert stream.stats().connections == 1  # streams opened; the 204 opened none


@pytest.mark.timeout(20)
def test_a_redirect_loop_stops_with_an_http_status_error(server: SSEServer) -> None:
    server.route("/loop", respond(302, b"", {"Location": "/loop"}))
    session = requests.Session()
    session.max_redirects = 5
    with pytest.raises(sse_sync.HTTPStatusError) as info:
        sse_sync.connect(server.url_for("/loop"), session=session)
    assert "too many redirects" in str(info.value)
    assert info.value.status_code == 302
    assert sse_sync.RetryPolicy().should_retry(info.value) is False
    assert len(server.requests) == 6  # the first request and five redirects, no retry
    session.close()
