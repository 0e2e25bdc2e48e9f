"""The stream's lifecycle under faults: one regression test per window that once broke.

Each test drives a real server on 127.0.0.1 into one window of a stream's life (connecting,
waiting for response headers, reading, a full queue, waiting to reconnect, ended) and checks
that cancel(), close(), restart(), a dropped reference or a handler's exception does what the
docs promise there: at once, with no thread or socket of the stream left behind.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import pytest
import requests
import requests.adapters
from _net import RawServer, client_sockets, wait_for_client_to_leave

import sse_sync
from sse_sync import EventStream, RetryPolicy
from sse_sync.testing import Action, Script, SSEServer, close, event, hold, respond, send, wait_for

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

FAST = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)
LONG = (5.0, 30.0)  # long read timeouts: only the library's wake-up can explain a fast end


def reader_of(stream: EventStream) -> threading.Thread:
    return stream._reader.thread


def stack_of(thread: threading.Thread) -> list[str]:
    """The names of the functions ``thread`` is in, innermost last."""
    frame = sys._current_frames().get(thread.ident or 0)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names[::-1]


def wait_until(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    # Socket states live in /proc: there is nothing to wait on, so look until a deadline.
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def assert_gone(stream: EventStream, port: int, within: float = 0.1) -> None:
    """The reader thread has ended and no client socket to ``port`` is open."""
    reader_of(stream).join(within)
    assert not reader_of(stream).is_alive()
    assert wait_until(lambda: client_sockets(port) == 0, within + 0.5)


def silent_after(
    answers: list[bytes],
) -> Callable[[RawServer, socket.socket, threading.Event], None]:
    """A raw handler: connection ``n`` gets ``answers[n]`` (a whole response, or ``b""`` for
    silence before the headers); past the list, silence.  Silent connections are held open."""
    count = iter(range(1_000_000))

    def handler(server: RawServer, conn: socket.socket, stop: threading.Event) -> None:
        n = next(count)
        server.read_request(conn)
        answer = answers[n] if n < len(answers) else b""
        if answer:
            conn.sendall(answer)
            if answer.endswith(b"\n\n"):
                return  # close-delimited: the end of the body
        wait_for_client_to_leave(conn, stop)

    return handler


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


class CountingAdapter(requests.adapters.HTTPAdapter):
    """A user's adapter subclass: the stream must reach its sockets too."""

    def __init__(self) -> None:
        self.sent: list[str] = []  # shared by any copy of the adapter
        super().__init__()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: object
    ) -> requests.Response:
        self.sent.append(str(request.url))
        return super().send(request, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["private", "user-session"])
def session(request: pytest.FixtureRequest) -> Iterator[requests.Session | None]:
    if request.param == "private":
        yield None
        return
    with requests.Session() as user:
        adapter = CountingAdapter()
        user.mount("http://", adapter)
        yield user
        # The user's session is not changed: its adapter and its pools stay its own.
        assert user.get_adapter("http://127.0.0.1/") is adapter
        assert adapter.sent  # the subclass's own code ran for the stream's requests
        assert not adapter.poolmanager.pools.keys()


# 1 and 3: the wait for response headers on a reconnection -------------------------------------


@pytest.mark.parametrize("action", ["cancel", "close"])
def test_cancel_while_a_reconnection_waits_for_headers(
    session: requests.Session | None, action: str
) -> None:
    with RawServer(silent_after([STREAM_HEAD + b"data: one\n\n"])) as server:
        stream = sse_sync.connect(server.url, retry=FAST, timeout=LONG, session=session)
        assert next(stream).data == "one"
        server.wait_requests(2)  # the reconnection is sent; its answer never comes
        started = time.perf_counter()
        if action == "cancel":
            stream.cancel()
            assert time.perf_counter() - started < 0.05
            assert_gone(stream, server.port)
        else:
            stream.close()
            assert time.perf_counter() - started < 0.5
            assert not reader_of(stream).is_alive()
            assert wait_until(lambda: client_sockets(server.port) == 0, 0.5)
        assert list(stream) == []
        stream.close()


def resumes_silently(server: RawServer, conn: socket.socket, stop: threading.Event) -> None:
    """A raw handler: a first request gets one event; one that resumes gets silence."""
    request = server.read_request(conn)
    if b"last-event-id" not in request.lower():
        conn.sendall(STREAM_HEAD + b"id: 1\ndata: one\n\n")
        return
    wait_for_client_to_leave(conn, stop)


def test_closing_many_silent_reconnections_takes_no_join_timeouts() -> None:
    with RawServer(resumes_silently) as server:
        streams = []
        for _ in range(5):
            stream = sse_sync.connect(server.url, retry=FAST, timeout=LONG)
            assert next(stream).data == "one"
            streams.append(stream)
        server.wait_requests(10)
        started = time.perf_counter()
        for stream in streams:
            stream.close()
        assert time.perf_counter() - started < 1.0
        assert wait_until(lambda: client_sockets(server.port) == 0, 0.5)


def syn_sent(port: int) -> int:
    """Client sockets to ``port`` still trying to connect (SYN_SENT)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[2].split(":")[1], 16) == port and row[3] == "02")


def test_cancel_while_a_reconnection_hangs_in_connect() -> None:
    # A listener whose accept queue is full drops new SYNs: the client's connect() hangs.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            for _ in range(2):  # one queued, one left in SYN_SENT: the queue is now full
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            assert wait_until(lambda: syn_sent(port) == 1)
            conn.sendall(STREAM_HEAD + b"data: one\n\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        stream = sse_sync.connect(f"http://127.0.0.1:{port}/", retry=FAST, timeout=LONG)
        assert next(stream).data == "one"
        assert wait_until(lambda: syn_sent(port) == 2)  # the reconnection is connecting
        started = time.perf_counter()
        stream.cancel()
        assert time.perf_counter() - started < 0.05
        reader_of(stream).join(0.1)
        assert not reader_of(stream).is_alive()
        assert syn_sent(port) == 1
        stream.close()
        server.join(1.0)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_restart_while_a_reconnection_waits_for_headers() -> None:
    answers = [STREAM_HEAD + b"data: one\n\n", b"", STREAM_HEAD + b"data: two\n\n"]
    with RawServer(silent_after(answers)) as server:
        policy = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)
        with sse_sync.connect(server.url, retry=policy, timeout=LONG) as stream:
            assert next(stream).data == "one"
            server.wait_requests(2)
            started = time.perf_counter()
            stream.restart()
            assert next(stream).data == "two"
            assert time.perf_counter() - started < 2.0
        assert_gone(stream, server.port)


# 2: a cancel during the hand-over of a new connection ------------------------------------------


def test_cancel_during_the_hand_over_of_a_new_connection(sse_server: SSEServer) -> None:
    many = [event(str(n)) for n in range(20)]
    sse_server.route("/s", [[*many, hold()], [hold()]])  # the new connection stays silent
    stream = sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG, max_queue=1)
    assert next(stream).data == "0"
    stream.restart()
    sse_server.wait_request("/s")
    sse_server.wait_request("/s")
    # The new connection is open and the reader waits for room to hand it over.
    assert wait_until(lambda: "put" in stack_of(reader_of(stream)))
    stream.cancel()
    assert_gone(stream, sse_server.port, within=1.0)
    stream.close()


# 4: a full queue is not the server's silence -------------------------------------------------


def test_idle_timeout_does_not_count_time_blocked_on_a_full_queue(sse_server: SSEServer) -> None:
    big = "x" * 900_000  # one line over several reads: most reads end without a newline
    sse_server.route("/s", [[*(event(big, id=str(n)) for n in range(4)), hold()]])
    with sse_sync.connect(
        sse_server.url_for("/s"), retry=FAST, idle_timeout=0.5, max_queue=1, timeout=LONG
    ) as stream:
        got = []
        for _ in range(4):
            got.append(next(stream).id)
            time.sleep(0.7)  # a slow consumer: the reader waits for room meanwhile
        assert got == ["0", "1", "2", "3"]
        assert stream.stats().connections == 1


# 5: hostile timers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "label"),
    [
        ([send("retry: 99999999999999\n"), event("a"), close()], "retry"),
        ([send("retry: " + "9" * 400 + "\n"), event("a"), close()], "retry-400-digits"),
    ],
)
def test_a_huge_retry_is_capped(sse_server: SSEServer, script: list[Action], label: str) -> None:
    sse_server.route("/s", [script])
    delays: list[float] = []
    with sse_sync.connect(sse_server.url_for("/s"), timeout=LONG) as stream:

        def on_retry(error: BaseException | None, delay: float) -> None:
            delays.append(delay)
            stream.cancel()

        stream.on_retry(on_retry)
        assert [e.data for e in stream] == ["a"]
    cap = sse_sync.DEFAULT_RETRY.max_server_delay
    assert len(delays) == 1
    assert cap <= delays[0] <= cap * 1.25


@pytest.mark.parametrize(
    "value", ["99999999999", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 10000"]
)
def test_a_huge_retry_after_is_capped(sse_server: SSEServer, value: str) -> None:
    sse_server.route("/s", [[event("a"), close()], [respond(503, headers={"Retry-After": value})]])
    delays: list[float] = []
    with sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG) as stream:

        def on_retry(error: BaseException | None, delay: float) -> None:
            delays.append(delay)
            if len(delays) == 2:
                stream.cancel()

        stream.on_retry(on_retry)
        assert [e.data for e in stream] == ["a"]
    assert delays[0] == 0
    assert delays[1] <= FAST.max_server_delay
    if value != "Sat, 01 Jan 10000":  # unreadable: no minimum from it
        assert delays[1] == FAST.max_server_delay


# 6 and 7: handlers that raise ------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("where", ["on_open", "on_retry", "on_comment"])
@pytest.mark.parametrize("exc_type", [Boom, KeyboardInterrupt])
def test_a_handler_raising_while_iterating_ends_the_stream(
    sse_server: SSEServer, where: str, exc_type: type[BaseException]
) -> None:
    sse_server.route("/s", [[send(": hi\n"), event("a"), close()], [event("b"), hold()]])
    stream = sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG, comments=True)

    def boom(*args: object) -> None:
        raise exc_type("from the handler")

    getattr(stream, where)(boom)
    with pytest.raises(exc_type):
        for _ in stream:
            pass
    assert stream.cancelled
    assert stream.done
    assert_gone(stream, sse_server.port, within=1.0)
    assert stream.next_event(0.01) is None
    stream.close()


@pytest.mark.parametrize("policy", ["stop", "continue"])
def test_an_on_error_handler_that_raises_is_not_called_again(
    sse_server: SSEServer, policy: str
) -> None:
    sse_server.route("/s", [[event("a"), event("b"), hold()]])
    calls: list[BaseException] = []
    stream = sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG)

    def on_error(exc: BaseException) -> None:
        calls.append(exc)
        raise Boom("from on_error")

    def on_message(event: sse_sync.Event) -> None:
        raise ValueError("from the handler")

    stream.on("message", on_message).on_error(on_error)
    with pytest.raises(Boom):
        stream.run(handler_errors=policy)
    assert [type(c) for c in calls] == [ValueError]
    assert stream.cancelled
    assert_gone(stream, sse_server.port, within=1.0)
    stream.close()


def test_keyboard_interrupt_in_a_handler_leaves_nothing_behind(sse_server: SSEServer) -> None:
    sse_server.route("/s", [[event("a"), hold()]])
    stream = sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG)

    def on_message(event: sse_sync.Event) -> None:
        raise KeyboardInterrupt

    closed: list[bool] = []
    stream.on("message", on_message).on_close(lambda: closed.append(True))
    with pytest.raises(KeyboardInterrupt):
        stream.run()
    assert closed == [True]
    assert_gone(stream, sse_server.port, within=1.0)
    stream.close()


# 8 and 9: arguments and bodies ----------------------------------------------------------------


@pytest.mark.parametrize("retry", [3000, True, "default", 3.0])
def test_a_retry_that_is_not_a_policy_is_a_type_error(sse_server: SSEServer, retry: object) -> None:
    with pytest.raises(TypeError, match="retry must be a RetryPolicy"):
        sse_sync.connect(sse_server.url_for("/s"), retry=retry)  # type: ignore[arg-type]
    assert sse_server.requests == []


@pytest.mark.parametrize("timeout", ["10", (1, "2"), (1, 2, 3), [1, 2]])
def test_a_timeout_of_the_wrong_type_is_a_type_error(
    sse_server: SSEServer, timeout: object
) -> None:
    with pytest.raises(TypeError, match="timeout must be seconds"):
        sse_sync.connect(sse_server.url_for("/s"), timeout=timeout)  # type: ignore[arg-type]


def test_a_body_that_cannot_be_encoded_is_a_request_error(sse_server: SSEServer) -> None:
    policy = RetryPolicy(retry_first=True, resend_body=True, max_attempts=3)
    with pytest.raises(sse_sync.RequestError, match="cannot send the request"):
        sse_sync.connect(
            sse_server.url_for("/s"), method="POST", json={"x": float("nan")}, retry=policy
        )
    assert sse_server.requests == []


# 10: stats ------------------------------------------------------------------------------------


def test_stats_count_what_was_taken_and_only_connected_time(sse_server: SSEServer) -> None:
    fifty = "".join(f"data: {n}\n\n" for n in range(50))
    sse_server.route("/s", [[send(fifty), close()], [event("last"), hold()]])
    policy = RetryPolicy(initial_delay=0.3, jitter=0)
    started = time.monotonic()
    with sse_sync.connect(sse_server.url_for("/s"), retry=policy, timeout=LONG) as stream:
        assert next(stream).data == "0"
        assert stream.stats().events == 1
        for _ in range(49):
            next(stream)
        assert next(stream).data == "last"
        stats = stream.stats()
        wall = time.monotonic() - started
        assert stats.events == 51
        assert stats.connections == 2
        # The 0.3 s wait between the two connections is not connected time.
        assert stats.connected_seconds <= wall - 0.29
    assert stream.stats().pending == 0


def test_pending_is_zero_after_close(sse_server: SSEServer) -> None:
    sse_server.route("/s", [[*(event(str(n)) for n in range(10)), hold()]])
    stream = sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG)
    assert next(stream).data == "0"
    stream.close()
    assert stream.stats().pending == 0


# 11: a stream dropped without close() ----------------------------------------------------------


def test_dropping_the_last_reference_cancels_at_once(sse_server: SSEServer) -> None:
    import gc

    sse_server.route("/s", [[event("a"), hold()]])
    gc.disable()  # reference counting alone must do it
    try:
        stream = sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG)
        assert next(stream).data == "a"
        reader = reader_of(stream)
        ref = weakref.ref(stream)
        del stream
        assert ref() is None
        reader.join(1.0)
        assert not reader.is_alive()
        assert wait_until(lambda: client_sockets(sse_server.port) == 0, 1.0)
    finally:
        gc.enable()


def test_a_for_loop_holds_the_stream_it_iterates(sse_server: SSEServer) -> None:
    sse_server.route("/s", [[event("a"), event("b"), event("c"), close()]])
    got = [e.data for e in sse_sync.connect(sse_server.url_for("/s"), retry=None)]
    assert got == ["a", "b", "c"]


def test_break_then_iterate_again_resumes(sse_server: SSEServer) -> None:
    sse_server.route("/s", [[event("a"), event("b"), close()]])
    with sse_sync.connect(sse_server.url_for("/s"), retry=None) as stream:
        for e in stream:
            assert e.data == "a"
            break
        assert [e.data for e in stream] == ["b"]


# 12: restart() where no reconnection is allowed -----------------------------------------------


@pytest.mark.parametrize("kind", ["retry-none", "post-body"])
def test_restart_is_refused_where_reconnecting_is_not_allowed(
    sse_server: SSEServer, kind: str
) -> None:
    sse_server.route("/s", [[event("a"), hold()]])
    url = sse_server.url_for("/s")
    if kind == "retry-none":
        stream = sse_sync.connect(url, retry=None, timeout=LONG)
    else:
        stream = sse_sync.connect(url, method="POST", json={"q": 1}, timeout=LONG)
    with stream:
        assert next(stream).data == "a"
        with pytest.raises(RuntimeError, match="restart\\(\\) needs a stream that may reconnect"):
            stream.restart()
    assert len(sse_server.requests) == 1


# 13: ended streams ----------------------------------------------------------------------------


def test_repr_of_a_stream_the_server_stopped_with_204(sse_server: SSEServer) -> None:
    sse_server.route("/s", [Script([], status=204)])
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert stream.status == 204
        assert wait_until(lambda: not reader_of(stream).is_alive(), 1.0)
        assert "open" not in repr(stream)
        assert list(stream) == []
        assert repr(stream).endswith("204 done>")


def test_an_http_error_on_reconnection_leaves_no_idle_socket() -> None:
    # A keep-alive 401: urllib3 would pool the idle connection; nothing of the stream may stay.
    answers = [
        STREAM_HEAD + b"data: one\n\n",
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
    ]
    with RawServer(silent_after(answers)) as server:
        stream = sse_sync.connect(server.url, retry=FAST, timeout=LONG)
        with pytest.raises(sse_sync.HTTPStatusError):
            list(stream)
        assert wait_until(lambda: client_sockets(server.port) == 0, 1.0)
        stream.close()


# last_event_id: what a reconnection would send ------------------------------------------------


def test_last_event_id_follows_an_id_only_block_once_the_events_before_it_are_taken(
    sse_server: SSEServer,
) -> None:
    sse_server.route(
        "/s",
        [
            [send("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 7\n\n"), close()],
            [send("id: 8\n\n"), event("c", id="9"), close()],
            [hold()],
        ],
    )
    with sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG) as stream:
        assert next(stream).data == "a"
        assert stream.last_event_id == "1"  # b is not taken yet: the id-only block waits
        assert next(stream).data == "b"
        assert stream.last_event_id == "7"  # what a reconnection now sends
        assert next(stream).data == "c"
        assert stream.last_event_id == "9"
        assert sse_server.wait_request("/s").headers.get("last-event-id") is None
        assert sse_server.wait_request("/s").headers["last-event-id"] == "7"
        assert sse_server.wait_request("/s").headers["last-event-id"] == "9"


def test_last_event_id_moves_on_an_id_only_chunk(sse_server: SSEServer) -> None:
    go = threading.Event()
    sse_server.route("/s", [[event("a", id="1"), wait_for(go), send("id: 5\n\n"), hold()]])
    with sse_sync.connect(sse_server.url_for("/s"), retry=FAST, timeout=LONG) as stream:
        assert next(stream).id == "1"
        go.set()
        assert stream.next_event(timeout=0.5) is None  # no event, but the id is taken in
        assert stream.last_event_id == "5"
