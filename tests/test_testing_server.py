"""sse_sync.testing.SSEServer, driven with http.client and raw sockets only (never requests).

No test sleeps to synchronise: the server is held at exact points with wait_for(), and the tests
wait with wait_request() and wait_disconnect().
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest

from sse_sync.testing import (
    Action,
    Headers,
    RecordedRequest,
    Script,
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

pytestmark = [pytest.mark.network, pytest.mark.timeout(10)]

PREFIX = "sse_sync.testing"


# -- helpers ---------------------------------------------------------------------------------


@contextmanager
def fetch(
    server: SSEServer,
    path: str,
    method: str = "GET",
    body: object = None,
    headers: dict[str, str] | None = None,
) -> Iterator[http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})  # type: ignore[arg-type]
        response = conn.getresponse()
        try:
            yield response
        finally:
            response.close()
    finally:
        conn.close()


def read_until(response: http.client.HTTPResponse, marker: bytes = b"\n\n") -> bytes:
    """Read what has arrived, chunk by chunk, until ``marker`` is in it."""
    data = b""
    while marker not in data:
        chunk = response.read1(65536)
        assert chunk, f"EOF before {marker!r}; got {data!r}"
        data += chunk
    return data


def raw_connect(server: SSEServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"EOF before {marker!r}; got {data!r}"
        data += chunk
    return data


def recv_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def new_testing_threads(before: set[threading.Thread]) -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t not in before and t.name.startswith(PREFIX) and t.is_alive()
    ]


# -- addresses and lifecycle -----------------------------------------------------------------


def test_binds_loopback_on_an_os_assigned_port() -> None:
    with SSEServer() as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.url_for("/stream") == server.url + "/stream"
        assert server.url_for("stream?x=1") == server.url + "/stream?x=1"
        assert server._httpd is not None
        assert server._httpd.socket.getsockname() == ("127.0.0.1", server.port)
        assert any(t.name == f"{PREFIX}-server-{server.port}" for t in threading.enumerate())


def test_not_started_and_single_use() -> None:
    server = SSEServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    server.stop()  # stopping a server that never started is harmless
    with pytest.raises(RuntimeError, match="only once"):
        server.start()


def test_exit_stops_every_thread_and_closes_the_port() -> None:
    before = set(threading.enumerate())
    gate = threading.Event()
    with SSEServer() as server:
        port = server.port
        server.route("/s", [event("a"), wait_for(gate)])
        server.route("/h", [event("a"), hold()])
        server.route("/p", [event("a"), pause(60)])
        with fetch(server, "/s") as r1, fetch(server, "/h") as r2, fetch(server, "/p") as r3:
            for response in (r1, r2, r3):
                assert read_until(response) == b"data: a\n\n"
            assert server.connections_open == 3
            assert len(new_testing_threads(before)) == 4  # the server and three connections
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 2
            assert server.connections_open == 0
            for response in (r1, r2, r3):  # each stream was cut short, not ended cleanly
                with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
                    response.read()
        server.stop()  # idempotent
    assert new_testing_threads(before) == []
    assert server.errors == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- framing ---------------------------------------------------------------------------------


def test_chunked_stream_arrives_event_by_event() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        server.route("/s", [event("a", id="1"), wait_for(gate), event("b"), close()])
        with fetch(server, "/s") as response:
            assert response.status == 200
            assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.getheader("Cache-Control") == "no-cache"
            assert response.getheader("Content-Length") is None
            # The server is parked in wait_for(): this event came before the rest exists.
            assert read_until(response) == b"id: 1\ndata: a\n\n"
            gate.set()
            assert response.read() == b"data: b\n\n"  # ends with the zero chunk, cleanly
            assert response.isclosed()


def test_each_send_is_one_chunk_on_the_wire() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        server.route("/s", [send(b"data: x"), send("é\n\n"), send(b""), wait_for(gate)])
        with closing(raw_connect(server)) as sock:
            sock.sendall(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
            data = recv_until(sock, "é\n\n\r\n".encode())
            gate.set()
            data += recv_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close" in head
    assert body == b"7\r\ndata: x\r\n" + b"4\r\n" + "é\n\n".encode() + b"\r\n" + b"0\r\n\r\n"


def test_close_delimited_framing() -> None:
    gate = threading.Event()
    script = Script([event("a"), wait_for(gate), event("b")], framing="close")
    with SSEServer() as server:
        server.route("/s", script)
        with closing(raw_connect(server)) as sock:
            sock.sendall(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
            first = recv_until(sock, b"data: a\n\n")
            gate.set()
            rest = recv_all(sock)  # the end of the body is the end of the connection
    head, _, body = first.partition(b"\r\n\r\n")
    lowered = head.lower()
    assert b"content-length" not in lowered
    assert b"transfer-encoding" not in lowered
    assert b"\r\nconnection: close" in lowered
    assert body == b"data: a\n\n"
    assert rest == b"data: b\n\n"


def test_close_delimited_framing_with_http_client() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        server.route("/s", Script([event("a"), wait_for(gate), event("b")], framing="close"))
        with fetch(server, "/s") as response:
            assert response.getheader("Transfer-Encoding") is None
            assert read_until(response) == b"data: a\n\n"
            gate.set()
            assert response.read() == b"data: b\n\n"


def test_length_framing_and_wire_format() -> None:
    script = Script(
        [
            event("l1\nl2\r\nl3", event="update", id="7", retry=1500),
            event(retry=10),
            event(id=""),
            event(""),
            comment("hi\nthere"),
            comment(),
            send("é"),
            close(),
        ],
        framing="length",
    )
    expected = (
        b"event: update\nid: 7\nretry: 1500\ndata: l1\ndata: l2\ndata: l3\n\n"
        b"retry: 10\n\n"
        b"id: \n\n"
        b"data: \n\n"
        b":hi\n:there\n"
        b":\n" + "é".encode()
    )
    with SSEServer() as server:
        server.route("/s", script)
        with fetch(server, "/s") as response:
            assert response.getheader("Transfer-Encoding") is None
            assert response.getheader("Content-Length") == str(len(expected))
            assert response.read() == expected


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_gzip_is_decodable_event_by_event(framing: str) -> None:
    gate = threading.Event()
    script = Script(
        [event("a"), wait_for(gate), event("b"), close()],
        gzip=True,
        framing=framing,  # type: ignore[arg-type]
    )
    with SSEServer() as server:
        server.route("/s", script)
        with fetch(server, "/s") as response:
            assert response.getheader("Content-Encoding") == "gzip"
            decoder = zlib.decompressobj(wbits=31)
            text = b""
            while b"\n\n" not in text:  # decodable while the server is still parked
                chunk = response.read1(65536)
                assert chunk
                text += decoder.decompress(chunk)
            assert text == b"data: a\n\n"
            gate.set()
            assert decoder.decompress(response.read()) == b"data: b\n\n"
            assert decoder.eof
            assert decoder.unused_data == b""


def test_gzip_with_length_framing() -> None:
    with SSEServer() as server:
        server.route("/s", Script([event("a"), event("b")], gzip=True, framing="length"))
        with fetch(server, "/s") as response:
            body = response.read()
            assert response.getheader("Content-Length") == str(len(body))
            assert gzip.decompress(body) == b"data: a\n\ndata: b\n\n"


def test_status_content_type_and_header_overrides() -> None:
    script = Script(
        [event("x")],
        status=201,
        content_type=None,
        headers={"cache-control": "private", "X-Extra": "1"},
    )
    with SSEServer() as server:
        server.route("/s", script)
        with fetch(server, "/s") as response:
            assert response.status == 201
            assert response.getheader("Content-Type") is None
            assert response.msg.get_all("Cache-Control") == ["private"]
            assert response.getheader("X-Extra") == "1"
            assert response.read() == b"data: x\n\n"


# -- drop and hold ---------------------------------------------------------------------------


def test_drop_resets_the_connection() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        server.route("/d", [event("a"), wait_for(gate), drop()])
        with closing(raw_connect(server)) as sock:
            sock.sendall(b"GET /d HTTP/1.1\r\nHost: t\r\n\r\n")
            recv_until(sock, b"data: a\n\n\r\n")
            gate.set()
            with pytest.raises(ConnectionResetError):
                recv_all(sock)  # an RST, not an orderly EOF
        server.wait_disconnect()
        assert server.client_disconnects == 0


def test_drop_gives_http_client_an_incomplete_read() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        server.route("/d", [event("a"), wait_for(gate), drop()])
        with fetch(server, "/d") as response:
            assert read_until(response) == b"data: a\n\n"
            gate.set()
            with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
                response.read()


def test_hold_ends_when_the_client_disconnects() -> None:
    before = set(threading.enumerate())
    with SSEServer() as server:
        server.route("/h", [event("a"), hold()])
        with fetch(server, "/h") as response:
            assert read_until(response) == b"data: a\n\n"
            assert server.connections_open == 1
        server.wait_disconnect()
        assert server.connections_open == 0
        assert server.client_disconnects == 1
        # wait_disconnect() also joined the handler: only the server thread is left.
        assert new_testing_threads(before) == [f"{PREFIX}-server-{server.port}"]


def test_hold_ends_when_the_server_stops() -> None:
    before = set(threading.enumerate())
    with SSEServer() as server:
        server.route("/h", [event("a"), hold()])
        with fetch(server, "/h") as response:
            assert read_until(response) == b"data: a\n\n"
            server.stop()
            assert new_testing_threads(before) == []
            with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
                response.read()


def test_wait_disconnect_times_out_while_a_connection_is_open() -> None:
    with SSEServer() as server:
        server.route("/h", [hold()])
        with fetch(server, "/h"), pytest.raises(TimeoutError, match="1 connection"):
            server.wait_disconnect(timeout=0.05)
        server.wait_disconnect()


# -- routes ----------------------------------------------------------------------------------


def test_nth_request_gets_nth_script_and_the_last_repeats() -> None:
    with SSEServer() as server:
        scripts: list[Script | list[Action]] = [
            [event("a", id="1")],
            Script([event("b", id="2")]),
            [event("c"), close()],
        ]
        server.route("/flaky", scripts)
        bodies = []
        for _ in range(4):
            with fetch(server, "/flaky") as response:
                bodies.append(response.read())
        assert bodies == [b"id: 1\ndata: a\n\n", b"id: 2\ndata: b\n\n"] + [b"data: c\n\n"] * 2
        assert [r.number for r in server.requests] == [1, 2, 3, 4]


def test_per_connection_scripts_with_drop_then_hold() -> None:
    gate = threading.Event()  # some systems discard unread data on a reset: read it first
    with SSEServer() as server:
        server.route(
            "/flaky",
            [[event("a", id="1"), wait_for(gate), drop()], [event("b", id="2"), hold()]],
        )
        with fetch(server, "/flaky") as response:
            assert read_until(response) == b"id: 1\ndata: a\n\n"
            gate.set()
            with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
                response.read()
        with fetch(server, "/flaky") as response:
            assert read_until(response) == b"id: 2\ndata: b\n\n"
            assert server.connections_open == 1
        server.wait_disconnect()


def test_callable_route_gets_the_recorded_request() -> None:
    seen: list[RecordedRequest] = []

    def script(request: RecordedRequest) -> list[Action]:
        seen.append(request)
        return [event(request.headers.get("last-event-id", "none")), event(request.query)]

    with SSEServer() as server:
        server.route("/dyn", script)
        with fetch(server, "/dyn?x=1", headers={"Last-Event-ID": "41"}) as response:
            assert response.read() == b"data: 41\n\ndata: x=1\n\n"
        with fetch(server, "/dyn") as response:
            assert response.read() == b"data: none\n\ndata: \n\n"
        assert seen == server.requests
        assert [r.number for r in seen] == [1, 2]


def test_respond_complete_responses() -> None:
    with SSEServer() as server:
        server.route("/empty", respond(204))
        server.route("/fail", [respond(500, "it broke")])
        server.route("/moved", respond(307, headers={"Location": "/s"}))
        server.route("/json", respond(200, b'{"a": 1}', {"Content-Type": "application/json"}))
        with fetch(server, "/empty") as response:
            assert response.status == 204
            assert response.getheader("Content-Length") is None
            assert response.read() == b""
        with fetch(server, "/fail") as response:
            assert response.status == 500
            assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
            assert response.read() == b"it broke"
        with fetch(server, "/moved") as response:
            assert response.status == 307
            assert response.getheader("Location") == "/s"
            assert response.getheader("Content-Length") == "0"
            assert response.read() == b""
        with fetch(server, "/json") as response:
            assert response.status == 200
            assert response.getheader("Content-Type") == "application/json"
            assert json.loads(response.read()) == {"a": 1}


def test_unknown_path_is_a_404_and_is_recorded() -> None:
    with SSEServer() as server:
        server.route("/s", [event("a")])
        with fetch(server, "/nope?q=1") as response:
            assert response.status == 404
            assert b"no route for /nope" in response.read()
        request = server.wait_request("/nope")
        assert (request.method, request.path, request.query) == ("GET", "/nope", "q=1")


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with SSEServer() as server:
        server.route("/s", Script([event("a")], keep_alive=True))
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
        with closing(conn):
            for _ in range(2):
                conn.request("GET", "/s")
                response = conn.getresponse()
                assert response.getheader("Connection") is None
                assert response.read() == b"data: a\n\n"
            assert server.connections_open == 1
        server.wait_disconnect()
        first, second = server.requests
        assert first.client_address == second.client_address


def test_concurrent_connections() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        server.route("/s", [event("a"), wait_for(gate), event("b")])
        with fetch(server, "/s") as r1, fetch(server, "/s") as r2, fetch(server, "/s") as r3:
            responses = (r1, r2, r3)
            for response in responses:
                assert read_until(response) == b"data: a\n\n"
            assert server.connections_open == 3
            gate.set()
            for response in responses:
                assert response.read() == b"data: b\n\n"
        server.wait_disconnect()


# -- recorded requests -----------------------------------------------------------------------


def test_records_method_path_query_headers_and_body() -> None:
    payload = {"name": "x", "n": [1, 2]}
    with SSEServer() as server:
        server.route("/submit", respond(200, b"{}", {"Content-Type": "application/json"}))
        with fetch(
            server,
            "/submit?a=1&b=two",
            method="POST",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "X-Custom-Header": "v1"},
        ) as response:
            assert response.read() == b"{}"
        request = server.wait_request("/submit")
    assert request.method == "POST"
    assert (request.path, request.query, request.target) == (
        "/submit",
        "a=1&b=two",
        "/submit?a=1&b=two",
    )
    assert request.json() == payload
    assert request.headers.get("content-type") == "application/json"
    assert request.headers["X-CUSTOM-HEADER"] == "v1"
    assert "x-custom-header" in request.headers
    assert "X-Custom-Header" in list(request.headers)  # the original spelling is kept
    assert request.headers.get("missing") is None
    assert request.headers["Content-Length"] == str(len(request.body))


def test_records_a_chunked_request_body() -> None:
    with SSEServer() as server:
        server.route("/up", respond(204))
        with fetch(server, "/up", method="POST", body=iter([b"ab", b"", b"cd"])) as response:
            assert response.status == 204
        request = server.wait_request("/up")
    assert request.headers["transfer-encoding"] == "chunked"
    assert request.body == b"abcd"


def test_headers_mapping() -> None:
    headers = Headers([("Accept", "a"), ("X-Dup", "1"), ("x-dup", "2")])
    assert headers["x-DUP"] == "1, 2"
    assert headers.get_all("X-DUP") == ["1", "2"]
    assert list(headers) == ["Accept", "X-Dup"]
    assert len(headers) == 2
    assert object() not in headers
    assert dict(Headers({"A": "b"})) == {"A": "b"}


def test_wait_request_queues_per_path() -> None:
    with SSEServer() as server:
        server.route("/a", respond(204))
        for path in ("/a", "/b", "/a"):
            with fetch(server, path):
                pass
        first, second = server.wait_request("/a"), server.wait_request("/a")
        assert (first.number, second.number) == (1, 2)
        assert server.wait_request("/b").path == "/b"
        assert [server.wait_request().path for _ in range(3)] == ["/a", "/b", "/a"]
        with pytest.raises(TimeoutError, match="no request to /a"):
            server.wait_request("/a", timeout=0.05)


def test_wait_request_blocks_until_the_request_arrives() -> None:
    with SSEServer() as server:
        server.route("/late", respond(204))
        result: list[RecordedRequest] = []
        waiter = threading.Thread(target=lambda: result.append(server.wait_request("/late")))
        waiter.start()
        with fetch(server, "/late"):
            pass
        waiter.join(5)
        assert [r.path for r in result] == ["/late"]


# -- errors ----------------------------------------------------------------------------------


def broken(request: RecordedRequest) -> list[Action]:
    raise ValueError("boom")


def test_a_failing_route_callable_is_a_500_and_fails_the_test_at_exit() -> None:
    def run() -> None:
        with SSEServer() as server:
            server.route("/bad", broken)
            with fetch(server, "/bad") as response:
                assert response.status == 500
                assert b"ValueError: boom" in response.read()
            assert [type(e) for e in server.errors] == [ValueError]

    with pytest.raises(AssertionError, match="boom") as info:
        run()
    assert isinstance(info.value.__cause__, ValueError)


def test_assert_no_errors_checks_on_demand() -> None:
    with SSEServer() as server:
        server.route("/bad", broken)
        server.assert_no_errors()
        with fetch(server, "/bad") as response:
            assert response.status == 500
        with pytest.raises(AssertionError, match="1 error"):
            server.assert_no_errors()
        server._errors.clear()  # so that leaving the block does not fail this test


def test_a_wait_for_timeout_is_reported() -> None:
    never = threading.Event()

    def run() -> None:
        with SSEServer() as server:
            server.route("/s", [event("a"), wait_for(never, timeout=0.05)])
            with (
                fetch(server, "/s") as response,
                pytest.raises((http.client.IncompleteRead, ConnectionResetError)),
            ):
                response.read()  # the connection is reset after the timeout

    with pytest.raises(AssertionError, match="not set within"):
        run()


def test_server_errors_do_not_mask_the_tests_own_exception() -> None:
    def run() -> None:
        with SSEServer() as server:
            server.route("/bad", broken)
            with fetch(server, "/bad") as response:
                response.read()
            raise KeyError("the test's own failure")

    with pytest.raises(KeyError) as info:
        run()
    if sys.version_info >= (3, 11):
        assert "boom" in "".join(info.value.__notes__)


def test_clients_that_vanish_are_not_errors() -> None:
    gate = threading.Event()
    with SSEServer() as server:
        # Whether a write fails or the final hold() sees EOF first, it is a client disconnect.
        server.route("/s", [event("a"), wait_for(gate), event("b" * 100_000), event("c"), hold()])
        with fetch(server, "/s") as response:
            assert read_until(response) == b"data: a\n\n"
        gate.set()  # the handler now writes to a closed connection
        server.wait_disconnect()
        assert server.client_disconnects == 1
        assert server.errors == []


# -- validation ------------------------------------------------------------------------------


def test_script_validation() -> None:
    with pytest.raises(ValueError, match="only action"):
        Script([event("a"), respond(204)])
    with pytest.raises(ValueError, match="last action"):
        Script([close(), event("a")])
    with pytest.raises(ValueError, match="last action"):
        Script([hold(), close()])
    with pytest.raises(ValueError, match="length"):
        Script([event("a"), pause(1)], framing="length")
    with pytest.raises(ValueError, match="framing"):
        Script([], framing="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep"):
        Script([], framing="close", keep_alive=True)
    with pytest.raises(TypeError, match="send"):
        Script([b"data: a\n\n"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="CR or LF"):
        event("a", id="1\n2")
    with pytest.raises(ValueError, match="retry"):
        event("a", retry=-1)
    with pytest.raises(ValueError, match="no body"):
        respond(204, b"x")
    with pytest.raises(ValueError, match="status"):
        respond(99)
    with pytest.raises(ValueError, match="header"):
        respond(200, headers={"X-A": "1\r\nX-B: 2"})


def test_route_validation() -> None:
    server = SSEServer()
    with pytest.raises(ValueError, match="starts with"):
        server.route("stream", [event("a")])
    with pytest.raises(ValueError, match="query"):
        server.route("/s?x=1", [event("a")])
    with pytest.raises(TypeError, match="not a mix"):
        server.route("/s", [event("a"), [event("b")]])
    with pytest.raises(TypeError):
        server.route("/s", 42)  # type: ignore[arg-type]
