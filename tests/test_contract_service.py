"""The contract-test service (tests/contract/service.py), driven the way the SSE suite drives it.

Each test plays the suite: an ``SSEServer`` is the stream endpoint, a small threaded HTTP server
is the callback endpoint (it puts callbacks back in counter order, as the suite does, and fails
on a gap or a repeat), and the service is driven over HTTP with requests.  Nothing sleeps to
synchronise: the tests wait on the stream server's request log and on the callback queue, with
bounded timeouts; "nothing more happens" is checked with a short bounded wait.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

# Imported as pytest puts it on the path (tests/ itself), the name mypy gives it too; the test
# that runs it as a program uses its full name, tests.contract.service, from the root.
from contract.service import CAPABILITIES, RECONNECTED, ContractService, serve

from sse_sync.testing import (
    Script,
    SSEServer,
    close,
    comment,
    event,
    hold,
    respond,
    send,
    wait_for,
)
from sse_sync.testing._http import LocalHTTPServer

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.network, pytest.mark.timeout(20)]

WAIT = 5.0  # the suite's bound for every expected message and connection
QUIET = 1.0  # how long "no further request / callback" is watched for

EXPECTED_CAPABILITIES = {
    "bom",
    "comments",
    "event-type-listeners",
    "headers",
    "last-event-id",
    "post",
    "report",
    "read-timeout",
    "restart",
    "server-directed-shutdown-request",
}


# -- the suite's side ------------------------------------------------------------------------


class _LocalServer(LocalHTTPServer):
    daemon_threads = True


def _start(httpd: ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    return thread


def _stop(httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    httpd.shutdown()
    thread.join(WAIT)
    httpd.server_close()  # joins the handler threads


class CallbackReceiver:
    """The suite's callback endpoint: ``POST /cb/<k>`` answers 202; :meth:`next` returns the
    callbacks in counter order, holding back any that arrive ahead of a missing one."""

    def __init__(self) -> None:
        self.arrived: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.bad: list[str] = []
        self._held: dict[int, Any] = {}
        self._seen: set[int] = set()
        self._next = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 202
                try:
                    if not self.path.startswith("/cb/"):
                        raise ValueError(self.path)
                    receiver.arrived.put((int(self.path[4:]), json.loads(body)))
                except ValueError:
                    receiver.bad.append(f"{self.path} {body!r}")
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = _LocalServer(("127.0.0.1", 0), Handler)
        self._thread = _start(self._httpd, "test-callbacks")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/cb"

    def _take(self, timeout: float) -> None:
        k, message = self.arrived.get(timeout=timeout)
        assert k not in self._seen, f"callback {k} sent twice: {message}"
        assert k >= self._next, f"callback {k} sent twice: {message}"
        self._seen.add(k)
        self._held[k] = message

    def next(self, timeout: float = WAIT) -> Any:
        """The next callback in counter order."""
        deadline = time.monotonic() + timeout
        while self._next not in self._held:
            try:
                self._take(max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"no callback {self._next} within {timeout} s; held back: {sorted(self._held)}"
                ) from None
        self._next += 1
        return self._held.pop(self._next - 1)

    def assert_quiet(self, timeout: float = QUIET) -> None:
        """No callback at all arrives within ``timeout`` seconds (a bounded wait)."""
        assert not self._held, f"callbacks held back: {self._held}"
        try:
            k, message = self.arrived.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected callback {k}: {message}")

    def stop(self) -> None:
        _stop(self._httpd, self._thread)


class RecordingStreamServer:
    """A stream endpoint for any method (SSEServer does not serve REPORT): records each request,
    answers one ``data: ok`` event with a Content-Length, so the client then sees the end."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                recorded.put((self.command, headers, body))
                payload = b"data: ok\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_REPORT = _serve

        self._httpd = _LocalServer(("127.0.0.1", 0), Handler)
        self._thread = _start(self._httpd, "test-recording-stream")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/stream"

    def stop(self) -> None:
        _stop(self._httpd, self._thread)


def event_message(data: str, *, type: str = "message", id: str = "") -> dict[str, Any]:
    return {"kind": "event", "event": {"type": type, "data": data, "id": id}}


def reconnected() -> dict[str, Any]:
    return {"kind": "error", "error": RECONNECTED}


def params_for(stream_url: str, callbacks: CallbackReceiver, **extra: Any) -> dict[str, Any]:
    """A ``POST /`` body as the suite sends it: the two nulls always present."""
    params: dict[str, Any] = {
        "tag": "sse_sync contract test",
        "callbackUrl": callbacks.url,
        "streamUrl": stream_url,
        "initialDelayMs": None,
        "readTimeoutMs": None,
    }
    params.update(extra)
    return params


def create(http: requests.Session, service: ContractService, params: dict[str, Any]) -> str:
    """``POST /`` (to the base URL, as the suite does); the instance URL from ``Location``."""
    response = http.post(service.url, json=params, timeout=WAIT)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert location.startswith("/streams/")
    return service.url + location


def delete(http: requests.Session, url: str) -> int:
    return http.delete(url, timeout=WAIT).status_code


def command(http: requests.Session, instance: str, body: Any) -> int:
    return http.post(instance, json=body, timeout=WAIT).status_code


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


@pytest.fixture
def sse_server() -> Iterator[SSEServer]:
    with SSEServer() as server:
        yield server


@pytest.fixture
def callbacks() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()
    assert not receiver.bad, f"malformed callbacks: {receiver.bad}"


@pytest.fixture
def service(sse_server: SSEServer, callbacks: CallbackReceiver) -> Iterator[ContractService]:
    # Depends on the suite's endpoints so that it stops first: a client whose stream server
    # vanished would otherwise keep reconnecting until the end of the test.
    svc = serve(0)
    try:
        yield svc
    finally:
        svc.stop()
    assert svc.stopped
    alive = [t.name for t in threading.enumerate() if t.name.startswith("contract-")]
    assert not alive, f"service threads outlived the test: {alive}"


# -- the tests ---------------------------------------------------------------------------------


def test_status_lists_every_capability(http: requests.Session, service: ContractService) -> None:
    response = http.get(service.url, timeout=WAIT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    status = response.json()
    assert status["name"] == "sse_sync"
    assert set(status["capabilities"]) == EXPECTED_CAPABILITIES == set(CAPABILITIES)
    assert len(status["capabilities"]) == len(EXPECTED_CAPABILITIES)


def test_invalid_requests_are_refused(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", [hold()])
    good = params_for(sse_server.url_for("/s"), callbacks)
    bad_bodies: list[Any] = [
        [good],
        {k: v for k, v in good.items() if k != "streamUrl"},
        {k: v for k, v in good.items() if k != "callbackUrl"},
        {**good, "streamUrl": "ftp://127.0.0.1/x"},
        {**good, "initialDelayMs": "0"},
        {**good, "readTimeoutMs": -1},
        {**good, "initialDelayMs": True},
        {**good, "headers": {"x-a": 1}},
        {**good, "headers": ["x-a"]},
        {**good, "headers": {"x-a": "1\r\nInjected: yes"}},
        {**good, "method": "GE T"},
        {**good, "body": 42},
        {**good, "lastEventId": 7},
    ]
    for body in bad_bodies:
        response = http.post(service.url, json=body, timeout=WAIT)
        assert response.status_code == 400, body
        assert "error" in response.json()
    response = http.post(service.url, data=b"{not json", timeout=WAIT)
    assert response.status_code == 400
    assert service.instances() == []

    assert http.get(service.url + "/nowhere", timeout=WAIT).status_code == 404
    assert command(http, service.url + "/streams/99", {"command": "restart"}) == 404
    assert delete(http, service.url + "/streams/99") == 404
    assert http.put(service.url, timeout=WAIT).status_code == 501

    # Extra keys are ignored and the nulls are accepted.
    instance = create(http, service, {**good, "somethingNew": {"x": 1}})
    sse_server.wait_request("/s")
    assert command(http, instance, {"command": "fly"}) == 400
    assert command(http, instance, {"command": "listen"}) == 400
    assert command(http, instance, {"command": "listen", "listen": {"type": 3}}) == 400
    assert command(http, instance, ["restart"]) == 400
    assert http.post(instance, data=b"restart", timeout=WAIT).status_code == 400
    assert http.get(instance, timeout=WAIT).status_code == 405
    assert delete(http, instance) == 204
    callbacks.assert_quiet(0.2)


def test_events_are_reported_in_order_with_the_last_event_id(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route(
        "/s",
        [
            event("Hello", id="abc"),
            event("World"),  # no id: line, so the last event ID stays "abc"
            event("typed", event="greeting"),
            event("Reset", id=""),
            send("data: two\ndata: lines\n\n"),
            hold(),
        ],
    )
    instance = create(http, service, params_for(sse_server.url_for("/s"), callbacks))
    assert callbacks.next() == event_message("Hello", id="abc")
    assert callbacks.next() == event_message("World", id="abc")
    assert callbacks.next() == event_message("typed", type="greeting", id="abc")
    assert callbacks.next() == event_message("Reset", id="")
    assert callbacks.next() == event_message("two\nlines")
    assert delete(http, instance) == 204
    sse_server.wait_disconnect()
    callbacks.assert_quiet(0.2)


def test_comments_are_reported_as_soon_as_their_line_arrives(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    gate = threading.Event()
    sse_server.route(
        "/s", [comment("Hello"), wait_for(gate), event("after"), comment(" World"), hold()]
    )
    instance = create(http, service, params_for(sse_server.url_for("/s"), callbacks))
    try:
        # The server is blocked right after the comment line: no blank line has been sent.
        assert callbacks.next() == {"kind": "comment", "comment": "Hello"}
    finally:
        gate.set()
    assert callbacks.next() == event_message("after")
    assert callbacks.next() == {"kind": "comment", "comment": " World"}
    assert delete(http, instance) == 204


def test_a_leading_bom_is_stripped_once_even_split_across_chunks(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route(
        "/s",
        [
            send(b"\xef\xbb"),
            send(b"\xbfdata: first\n\n"),
            # A BOM later in the stream is kept: this line's field is "\ufeffdata", ignored.
            send("\ufeffdata: ignored\n\ndata: last\n\n"),
            hold(),
        ],
    )
    instance = create(http, service, params_for(sse_server.url_for("/s"), callbacks))
    assert callbacks.next() == event_message("first")
    assert callbacks.next() == event_message("last")
    assert delete(http, instance) == 204


def test_post_body_and_headers_are_sent_and_resent_on_reconnection(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    body = '{"hello": "world", "é": 1}'
    headers = {"content-type": "application/json; charset=utf-8", "x-custom": "value-1"}
    sse_server.route("/s", [[event("one"), close()], [event("two"), hold()]])
    params = params_for(
        sse_server.url_for("/s"),
        callbacks,
        method="POST",
        body=body,
        headers=headers,
        initialDelayMs=0,
    )
    instance = create(http, service, params)
    for _ in range(2):
        request = sse_server.wait_request("/s")
        assert request.method == "POST"
        assert request.body == body.encode("utf-8")
        assert request.headers["Content-Type"] == headers["content-type"]
        assert request.headers["X-Custom"] == "value-1"
        assert request.headers["Accept"] == "text/event-stream"
    assert callbacks.next() == event_message("one")
    assert callbacks.next() == reconnected()  # the server ended the first response
    assert callbacks.next() == event_message("two")
    assert delete(http, instance) == 204


def test_report_method_sends_the_body(
    http: requests.Session, service: ContractService, callbacks: CallbackReceiver
) -> None:
    stream_server = RecordingStreamServer()
    try:
        params = params_for(
            stream_server.url,
            callbacks,
            method="REPORT",
            body='{"hello": "world"}',
            headers={"content-type": "application/json; charset=utf-8"},
        )
        instance = create(http, service, params)
        method, headers, body = stream_server.requests.get(timeout=WAIT)
        assert method == "REPORT"
        assert body == b'{"hello": "world"}'
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert callbacks.next() == event_message("ok")
        assert delete(http, instance) == 204
    finally:
        service.stop()  # before its stream server goes away
        stream_server.stop()


@pytest.mark.parametrize(
    ("script", "events", "expected"),
    [
        ([event("Hello", id="abc")], [event_message("Hello", id="abc")], "abc"),
        (
            [event("Hello", id="abc"), event("World")],
            [event_message("Hello", id="abc"), event_message("World", id="abc")],
            "abc",
        ),
        (
            [event("Hello", id="abc"), event("World", id="")],
            [event_message("Hello", id="abc"), event_message("World")],
            None,
        ),
    ],
    ids=["last-id", "id-kept-by-later-events", "id-reset-to-empty"],
)
def test_a_reconnection_sends_the_last_event_id(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
    script: list[Any],
    events: list[dict[str, Any]],
    expected: str | None,
) -> None:
    sse_server.route("/s", [[*script, close()], [event("again"), hold()]])
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0)
    instance = create(http, service, params)
    assert sse_server.wait_request("/s").headers.get("Last-Event-ID") is None
    for message in events:
        assert callbacks.next() == message
    assert sse_server.wait_request("/s").headers.get("Last-Event-ID") == expected
    assert callbacks.next() == reconnected()
    assert callbacks.next() == event_message("again", id=expected or "")
    assert delete(http, instance) == 204


def test_an_unfinished_event_does_not_change_the_last_event_id(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route(
        "/s",
        [
            [send("id: abc\ndata: Hello\n\nid: def\ndata: Goodbye"), close()],
            [event("We meet again"), hold()],
        ],
    )
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0)
    instance = create(http, service, params)
    assert callbacks.next() == event_message("Hello", id="abc")
    assert callbacks.next() == reconnected()
    again = callbacks.next()
    assert delete(http, instance) == 204
    sse_server.wait_request("/s")
    reconnection = sse_server.wait_request("/s")
    assert again == event_message("We meet again", id="abc")
    assert reconnection.headers.get("Last-Event-ID") == "abc"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({}, None), ({"lastEventId": "abc"}, "abc"), ({"headers": {"x-a": "1"}}, None)],
    ids=["default", "last-event-id", "custom-header"],
)
def test_the_first_request(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
    extra: dict[str, Any],
    expected: str | None,
) -> None:
    sse_server.route("/s", [hold()])
    instance = create(http, service, params_for(sse_server.url_for("/s"), callbacks, **extra))
    request = sse_server.wait_request("/s")
    assert request.method == "GET"
    assert request.body == b""
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Cache-Control"] == "no-cache"
    assert request.headers.get("Last-Event-ID") == expected
    for name, value in extra.get("headers", {}).items():
        assert request.headers.get(name) == value
    assert delete(http, instance) == 204


def test_restart_reconnects_with_the_last_event_id_and_reports_no_error(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", [[event("Hello", id="1"), hold()], [event("Thanks"), hold()]])
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0)
    instance = create(http, service, params)
    assert sse_server.wait_request("/s").headers.get("Last-Event-ID") is None
    assert callbacks.next() == event_message("Hello", id="1")
    assert command(http, instance, {"command": "restart"}) == 204
    assert sse_server.wait_request("/s").headers.get("Last-Event-ID") == "1"
    # The suite's restart test requires the next message to be this event, not an error.
    assert callbacks.next() == event_message("Thanks", id="1")
    assert delete(http, instance) == 204
    sse_server.wait_disconnect()


def test_listen_is_accepted_and_every_type_is_reported(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    gate = threading.Event()
    sse_server.route(
        "/s", [wait_for(gate), event("a", event="custom"), event("b", event="other"), hold()]
    )
    instance = create(http, service, params_for(sse_server.url_for("/s"), callbacks))
    try:
        listen = {"command": "listen", "listen": {"type": "custom"}}
        assert command(http, instance, listen) == 204
    finally:
        gate.set()
    assert callbacks.next() == event_message("a", type="custom")
    assert callbacks.next() == event_message("b", type="other")
    assert [i.listened for i in service.instances()] == [{"custom"}]
    assert delete(http, instance) == 204


@pytest.mark.parametrize("when", ["first-request", "reconnection"])
def test_a_204_response_stops_reconnection(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
    when: str,
) -> None:
    if when == "first-request":
        sse_server.route("/s", respond(204))
    else:
        sse_server.route("/s", [Script([event("a"), close()]), Script(respond(204))])
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0)
    instance = create(http, service, params)
    sse_server.wait_request("/s")
    if when == "reconnection":
        assert callbacks.next() == event_message("a")
        # EventSource fires "error" when the server closes the stream, before reconnecting.
        assert callbacks.next()["kind"] == "error"
        sse_server.wait_request("/s")
    with pytest.raises(TimeoutError):
        sse_server.wait_request("/s", timeout=QUIET)
    callbacks.assert_quiet(0.1)
    assert delete(http, instance) == 204


def test_read_timeout_reports_an_error_and_reconnects(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", [event("Hello"), hold()])
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0, readTimeoutMs=300)
    instance = create(http, service, params)
    sse_server.wait_request("/s")
    assert callbacks.next() == event_message("Hello")
    assert callbacks.next()["kind"] == "error"
    sse_server.wait_request("/s")
    assert delete(http, instance) == 204


def test_a_failed_first_connection_is_reported_then_retried(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", [Script(respond(503, "busy")), Script([event("ok"), hold()])])
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0)
    instance = create(http, service, params)
    error = callbacks.next()
    assert error["kind"] == "error"
    assert "503" in error["error"]
    assert callbacks.next() == event_message("ok")
    assert sse_server.wait_request("/s").number == 1
    assert sse_server.wait_request("/s").number == 2
    assert delete(http, instance) == 204


def test_a_refused_first_connection_is_reported_once(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", respond(404, "no such stream"))
    params = params_for(sse_server.url_for("/s"), callbacks, initialDelayMs=0)
    instance = create(http, service, params)
    error = callbacks.next()
    assert error["kind"] == "error"
    assert "404" in error["error"]
    sse_server.wait_request("/s")
    with pytest.raises(TimeoutError):
        sse_server.wait_request("/s", timeout=0.3)
    callbacks.assert_quiet(0.1)
    assert delete(http, instance) == 204


def test_delete_closes_the_connection_and_forgets_the_instance(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", [event("x"), hold()])
    instance = create(http, service, params_for(sse_server.url_for("/s"), callbacks))
    assert callbacks.next() == event_message("x")
    sse_server.wait_request("/s")
    assert sse_server.connections_open == 1
    assert delete(http, instance) == 204
    sse_server.wait_disconnect()
    assert sse_server.client_disconnects == 1
    assert delete(http, instance) == 404
    assert command(http, instance, {"command": "restart"}) == 404
    assert service.instances() == []
    with pytest.raises(TimeoutError):
        sse_server.wait_request("/s", timeout=0.2)  # only the one request, no reconnection
    callbacks.assert_quiet(0.1)


def test_delete_root_stops_the_service(
    http: requests.Session,
    service: ContractService,
    sse_server: SSEServer,
    callbacks: CallbackReceiver,
) -> None:
    sse_server.route("/s", [event("x"), hold()])
    create(http, service, params_for(sse_server.url_for("/s"), callbacks))
    assert callbacks.next() == event_message("x")
    assert delete(http, service.url) == 204
    assert service.wait(WAIT)
    sse_server.wait_disconnect()  # its instances were closed
    with pytest.raises(requests.ConnectionError):
        http.get(service.url, timeout=WAIT)


def test_the_module_runs_as_a_program(http: requests.Session) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.contract.service", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), line
        status = http.get(url, timeout=WAIT).json()
        assert set(status["capabilities"]) == EXPECTED_CAPABILITIES
        assert delete(http, url) == 204
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
