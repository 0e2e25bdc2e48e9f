"""docs/examples/flask_relay.py served for real (Werkzeug's threaded server on 127.0.0.1), with an
SSEServer as its upstream: events re-emitted, heartbeats, headers, disconnects, a real browser."""

from __future__ import annotations

import importlib.util
import json
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import pytest

pytest.importorskip("flask", reason="the Flask example needs flask (the test extra)")

from _browser import find_chromium, headless_chromium, log_tail
from _net import TrackedRequestThreads
from flask import Flask, Response, request
from werkzeug.serving import ThreadedWSGIServer

import sse_sync
from sse_sync.testing import SSEServer, close, event, hold, pause, respond, wait_for

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "flask_relay.py"
HEARTBEAT = 0.2  # the relay's heartbeat interval in these tests


def load_example() -> ModuleType:
    name = "flask_relay_example"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Flask finds the app's root path through sys.modules.
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


class _RelayWSGIServer(TrackedRequestThreads, ThreadedWSGIServer):
    request_thread_name = "flask-relay-request"


class RelayServer:
    """A Flask app on Werkzeug's threaded server, on 127.0.0.1, in a background thread.

    Request threads are recorded so that :meth:`stop` can prove none outlives the test.
    """

    def __init__(self, app: Flask) -> None:
        self.httpd = _RelayWSGIServer("127.0.0.1", 0, app)
        self.handlers = self.httpd.request_threads
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="flask-relay-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> RelayServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for every request thread to end; a relay response ends only when its client or
        its upstream has gone."""
        alive = self.httpd.alive_request_threads(timeout)
        assert not alive, f"relay request threads still running after {timeout} s: {alive}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(5)
        self.httpd.server_close()
        assert not self.thread.is_alive()
        self.wait_idle()


@pytest.fixture
def upstream(sse_server: SSEServer) -> SSEServer:
    return sse_server


def serve_relay(upstream: SSEServer, app: Flask) -> Iterator[RelayServer]:
    with RelayServer(app) as server:
        try:
            yield server
        finally:
            # Stopping the upstream first ends every relay response (retry=None), even one
            # whose client a failed test left connected; then the request threads can be joined.
            upstream.stop()


@pytest.fixture
def relay(upstream: SSEServer) -> Iterator[RelayServer]:
    app = load_example().create_app(upstream.url_for("/up"), heartbeat=HEARTBEAT, retry=None)
    yield from serve_relay(upstream, app)


def connect(relay: RelayServer, **kwargs: Any) -> sse_sync.EventStream:
    kwargs.setdefault("retry", None)
    kwargs.setdefault("timeout", 10)
    return sse_sync.connect(relay.url + "/events", **kwargs)


# -- (a) events re-emitted, heartbeats while quiet --------------------------------------------


def test_events_are_re_emitted_with_ids_and_types_and_heartbeats_fill_silence(
    upstream: SSEServer, relay: RelayServer
) -> None:
    gate = threading.Event()
    upstream.route(
        "/up",
        [
            event("one", id="1"),
            event("two\nlines", event="tick"),
            wait_for(gate),
            event("three", id=""),  # resets the ID: the relay must pass the reset on
            event("four", event="tick", id="4", retry=2500),
            close(),
        ],
    )
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    with connect(relay, comments=True) as stream:
        stream.on("message", lambda e: items.put(("event", e)))
        stream.on("tick", lambda e: items.put(("event", e)))
        stream.on_comment(lambda text: items.put(("comment", text)))
        stream.on_close(lambda: items.put(("closed", None)))
        stream.start()

        def next_event() -> sse_sync.Event:
            while True:
                kind, value = items.get(timeout=10)
                if kind == "event":
                    return value  # type: ignore[no-any-return]
                assert (kind, value) == ("comment", ""), "only heartbeats between events"

        received = [next_event(), next_event()]
        # The upstream is now blocked at the gate: only heartbeats can come, and they must.
        assert items.get(timeout=10) == ("comment", "")
        assert items.get(timeout=10) == ("comment", "")
        assert upstream.connections_open == 1
        gate.set()
        received += [next_event(), next_event()]
        # The upstream closed the stream: the relay ends the response, and the client stream.
        while (item := items.get(timeout=10))[0] != "closed":
            assert item == ("comment", "")
        stream.join(10)
    assert [(e.event, e.data, e.id, e.retry) for e in received] == [
        ("message", "one", "1", None),
        ("tick", "two\nlines", "1", None),
        ("message", "three", "", None),
        ("tick", "four", "4", 2500),
    ]


def test_last_event_id_is_passed_upstream(upstream: SSEServer, relay: RelayServer) -> None:
    upstream.route("/up", [event("resumed"), event("next", id="43"), hold()])
    with connect(relay, last_event_id="41") as stream:
        got = [next(stream), next(stream)]
    assert upstream.wait_request("/up").headers["Last-Event-ID"] == "41"
    assert [(e.data, e.id) for e in got] == [("resumed", "41"), ("next", "43")]


# -- (b) headers -------------------------------------------------------------------------------


def test_response_headers_stop_caching_and_proxy_buffering(
    upstream: SSEServer, relay: RelayServer
) -> None:
    upstream.route("/up", [event("x"), hold()])
    with connect(relay) as stream:
        assert next(stream).data == "x"
        headers = stream.headers
        assert headers["Content-Type"].split(";")[0] == "text/event-stream"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        assert headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in headers


def test_upstream_errors_become_502(upstream: SSEServer, relay: RelayServer) -> None:
    upstream.route("/up", respond(503, "down for maintenance"))
    with pytest.raises(sse_sync.HTTPStatusError) as info:
        connect(relay)
    assert info.value.status_code == 502
    assert "upstream unavailable" in info.value.body
    assert "503" in info.value.body


def test_upstream_204_stops_the_client_too(upstream: SSEServer, relay: RelayServer) -> None:
    upstream.route("/up", respond(204))
    with connect(relay) as stream:
        assert stream.status == 204
        assert list(stream) == []


# -- (c) a client leaving cancels the upstream stream ------------------------------------------


def test_client_disconnect_closes_the_upstream_connection(
    upstream: SSEServer, relay: RelayServer
) -> None:
    upstream.route("/up", [event("one", id="1"), hold()])
    heartbeats: queue.Queue[str] = queue.Queue()
    first: queue.Queue[sse_sync.Event] = queue.Queue()
    stream = connect(relay, comments=True)
    try:
        stream.on("message", first.put).on_comment(heartbeats.put).start()
        assert first.get(timeout=10).data == "one"
        for _ in range(3):  # the initial comment and two heartbeats: the relay is still there
            assert heartbeats.get(timeout=10) == ""
        assert upstream.connections_open == 1
        assert upstream.client_disconnects == 0
    finally:
        stream.close()
        stream.join(10)
    # The upstream would hold its response forever: only the relay can end it, and does.
    upstream.wait_disconnect(timeout=10)
    assert upstream.client_disconnects == 1
    relay.wait_idle()


# -- (d) a real browser ------------------------------------------------------------------------

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>relay test</title>
<script>
  const expected = %d;
  const got = [];
  const source = new EventSource("/events");
  function record(e) {
    got.push({type: e.type, data: e.data, lastEventId: e.lastEventId});
    if (got.length === expected) {
      source.close();
      fetch("/report", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({events: got}),
      });
    }
  }
  source.addEventListener("message", record);
  source.addEventListener("tick", record);
  source.onerror = () => {
    fetch("/report", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({error: "EventSource error, readyState " + source.readyState}),
    });
  };
</script>
"""

BROWSER_EVENTS = [
    {"type": "message", "data": "one", "lastEventId": "1"},
    {"type": "tick", "data": "two\nlines", "lastEventId": "1"},
    {"type": "message", "data": "three", "lastEventId": ""},
    {"type": "tick", "data": "four", "lastEventId": "4"},
]


@pytest.mark.timeout(60)
def test_browser_event_source_receives_the_relayed_events(
    upstream: SSEServer, tmp_path: Path
) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium)")
    upstream.route(
        "/up",
        [
            event("one", id="1"),
            event("two\nlines", event="tick"),
            pause(3 * HEARTBEAT),  # heartbeats reach the browser between events
            event("three", id=""),
            event("four", event="tick", id="4"),
            hold(),
        ],
    )
    reports: queue.Queue[Any] = queue.Queue()
    app: Flask = load_example().create_app(upstream.url_for("/up"), heartbeat=HEARTBEAT, retry=None)

    @app.get("/browser")
    def browser_page() -> Response:
        return Response(PAGE % len(BROWSER_EVENTS), mimetype="text/html")

    @app.post("/report")
    def report() -> Response:
        reports.put(request.get_json())
        return Response(status=204)

    for relay in serve_relay(upstream, app):
        with headless_chromium(chromium, relay.url + "/browser", tmp_path) as log:
            try:
                result = reports.get(timeout=45)
            except queue.Empty:
                pytest.fail(f"the page reported nothing within 45 s; browser log:\n{log_tail(log)}")
        # The browser closed its EventSource, then exited: the relay let go of the upstream.
        upstream.wait_disconnect(timeout=10)
    assert result == {"events": BROWSER_EVENTS}, json.dumps(result)
    request_to_upstream = upstream.wait_request("/up")
    assert request_to_upstream.headers["Accept"] == "text/event-stream"
