"""The Django relay example (docs/examples/django_relay) served by Django's threaded WSGI server.

The relay runs in this process on 127.0.0.1 with the example's own settings module; its
upstream is an SSEServer, and sse_sync clients read the relay.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _net import TrackedRequestThreads

django = pytest.importorskip("django")

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

import sse_sync  # noqa: E402
from sse_sync.testing import SSEServer, close, event, hold, respond, wait_for  # noqa: E402

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
HEARTBEAT = 0.2  # seconds: short, so that heartbeats and disconnects show quickly
NO_RETRY: dict[str, Any] = {"retry": None}


def _configure_django() -> None:
    # The example's settings module, as DJANGO_SETTINGS_MODULE would load it; ROOT_URLCONF
    # names the example package, so its folder goes on sys.path.
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    if not settings.configured:
        from django_relay import settings as example

        settings.configure(
            **{name: getattr(example, name) for name in dir(example) if name.isupper()}
        )
    django.setup()


_configure_django()


class _RelayServer(TrackedRequestThreads, ThreadedWSGIServer):
    """Django's live/runserver server, tracking its request threads so that each test can
    check that none outlives it."""

    block_on_close = False
    request_thread_name = "django-relay-request"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), WSGIRequestHandler, allow_reuse_address=False)


@pytest.fixture
def upstream(sse_server: SSEServer) -> SSEServer:
    return sse_server


@pytest.fixture
def relay(upstream: SSEServer) -> Iterator[_RelayServer]:
    with override_settings(
        SSE_UPSTREAM_URL=upstream.url_for("/upstream"), SSE_HEARTBEAT_SECONDS=HEARTBEAT
    ):
        server = _RelayServer()
        server.set_app(get_wsgi_application())
        serving = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="django-relay"
        )
        serving.start()
        try:
            yield server
        finally:
            server.shutdown()
            serving.join(5)
            server.server_close()
            # A relay whose client has gone ends at its next heartbeat write.
            alive = server.alive_request_threads(5) + [t.name for t in [serving] if t.is_alive()]
            assert not alive, f"relay threads outlived the test: {alive}"


def relay_url(server: _RelayServer) -> str:
    return f"http://127.0.0.1:{server.server_port}/events"


def test_relay_forwards_events_ids_types_and_headers(
    relay: _RelayServer, upstream: SSEServer
) -> None:
    upstream.route(
        "/upstream",
        [
            event("one", id="1"),
            event("two", event="tick", id="2", retry=1500),
            event("three\nlines\n", event="tick"),
            event("four", id=""),
            hold(),
        ],
    )
    with sse_sync.connect(relay_url(relay), **NO_RETRY) as stream:
        got = [next(stream) for _ in range(4)]
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["Cache-Control"] == "no-cache"
        assert stream.headers["X-Accel-Buffering"] == "no"
    assert [(e.event, e.data, e.id, e.retry) for e in got] == [
        ("message", "one", "1", None),
        ("tick", "two", "2", 1500),
        ("tick", "three\nlines\n", "2", None),
        ("message", "four", "", None),  # the upstream reset the ID
    ]
    upstream.wait_disconnect()


def test_heartbeats_while_upstream_is_quiet(relay: _RelayServer, upstream: SSEServer) -> None:
    gate = threading.Event()
    upstream.route(
        "/upstream", [event("before", id="1"), wait_for(gate), event("after", id="2"), hold()]
    )
    seen: queue.Queue[tuple[str, str]] = queue.Queue()
    stream = sse_sync.connect(relay_url(relay), comments=True, **NO_RETRY)
    stream.on_comment(lambda text: seen.put(("comment", text)))
    stream.on_unknown(lambda ev: seen.put(("event", ev.data)))
    stream.start()
    try:
        # The relay's opening comment (sent so that its headers go out at once) comes first.
        assert seen.get(timeout=10) == ("comment", "")
        while (item := seen.get(timeout=10)) == ("comment", ""):
            pass  # a heartbeat, if the upstream's first event was slow to arrive
        assert item == ("event", "before")
        # The upstream is quiet: heartbeats, and nothing else.
        assert [seen.get(timeout=10) for _ in range(3)] == [("comment", "")] * 3
        gate.set()
        while (item := seen.get(timeout=10)) == ("comment", ""):
            pass
        assert item == ("event", "after")
    finally:
        stream.close()
        assert stream.wait(5)
    upstream.wait_disconnect()


def test_client_disconnect_closes_upstream(relay: _RelayServer, upstream: SSEServer) -> None:
    upstream.route("/upstream", [event("a"), hold()])
    with sse_sync.connect(relay_url(relay), **NO_RETRY) as stream:
        assert next(stream).data == "a"
        upstream.wait_request("/upstream")
        assert upstream.connections_open == 1
    # The relay notices at its next write (a heartbeat), then closes its upstream stream.
    upstream.wait_disconnect(timeout=10)
    assert upstream.client_disconnects == 1
    for thread in relay.request_threads:
        thread.join(5)
        assert not thread.is_alive()


def test_last_event_id_is_passed_upstream(relay: _RelayServer, upstream: SSEServer) -> None:
    upstream.route("/upstream", [event("resumed", id="42"), hold()])
    with sse_sync.connect(relay_url(relay), last_event_id="41", **NO_RETRY) as stream:
        assert next(stream).id == "42"
    assert upstream.wait_request("/upstream").headers["Last-Event-ID"] == "41"
    upstream.wait_disconnect(timeout=10)


def test_upstream_reconnects_then_a_204_ends_the_relay(
    relay: _RelayServer, upstream: SSEServer
) -> None:
    # retry: 10 ms makes the upstream reader reconnect at once; the 204 then ends it for good.
    upstream.route("/upstream", [[event("a", id="1", retry=10), close()], [respond(204)]])
    with sse_sync.connect(relay_url(relay), **NO_RETRY) as stream:
        assert [(e.data, e.id) for e in stream] == [("a", "1")]
        assert stream.done
    upstream.wait_request("/upstream")
    assert upstream.wait_request("/upstream").headers["Last-Event-ID"] == "1"
    upstream.wait_disconnect()


def test_unreachable_upstream_is_502(relay: _RelayServer, upstream: SSEServer) -> None:
    upstream.route("/upstream", respond(404, "gone"))
    with pytest.raises(sse_sync.HTTPStatusError) as caught:
        sse_sync.connect(relay_url(relay), **NO_RETRY)
    assert caught.value.status_code == 502
    assert upstream.wait_request("/upstream").path == "/upstream"


def test_head_is_refused_without_touching_upstream(
    relay: _RelayServer, upstream: SSEServer
) -> None:
    # Django's development server drains a HEAD response's body: an endless one never ends.
    upstream.route("/upstream", [event("a"), hold()])
    response = requests.head(relay_url(relay), timeout=10)
    assert response.status_code == 405
    assert upstream.requests == []
