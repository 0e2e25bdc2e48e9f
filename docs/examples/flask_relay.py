"""Relay an upstream event stream to browsers with Flask.

Each browser connection to ``/events`` opens its own upstream stream with :func:`sse_sync.connect`
(passing on the browser's ``Last-Event-ID``) and re-emits every event with its type, ID and data.
While the upstream is quiet the relay sends a heartbeat comment every ``heartbeat`` seconds, which
keeps proxies from timing the connection out and is how a browser that has gone is noticed:

* the response generator waits with ``stream.next_event(timeout=heartbeat)``, so it never blocks
  for longer than one heartbeat interval on a silent upstream;
* when the browser has gone, writing the next message (event or heartbeat) fails in the WSGI
  server, which then closes the response iterator; the generator's ``finally`` closes the upstream
  stream.  A disconnect is noticed within about two heartbeat intervals (the first write after
  the browser left may still be accepted by the kernel).

The response carries :data:`sse_sync.SSE_HEADERS`: ``Content-Type: text/event-stream``,
``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (stops nginx buffering the stream).
Run it with a threaded server (each open stream holds a thread)::

    python docs/examples/flask_relay.py --upstream https://example.com/stream --port 5000

and open http://127.0.0.1:5000/ for a page that shows the relayed events.
"""

from __future__ import annotations

import argparse
import html
import logging
from collections.abc import Iterator

from flask import Flask, Response, request

import sse_sync

log = logging.getLogger(__name__)

INDEX = """<!doctype html>
<meta charset="utf-8">
<title>sse_sync relay</title>
<h1>Events from {upstream}</h1>
<ol id="events"></ol>
<script>
  const list = document.getElementById("events");
  const source = new EventSource("/events");
  source.onmessage = (e) => {{
    const item = document.createElement("li");
    item.textContent = `[${{e.lastEventId}}] ${{e.data}}`;
    list.appendChild(item);
  }};
</script>
"""


def relay(stream: sse_sync.EventStream, heartbeat: float) -> Iterator[bytes]:
    """Re-emit ``stream``'s events as wire bytes, a heartbeat when it is quiet; closes it at end.

    The WSGI server closes this generator when the client goes away (``GeneratorExit`` at a
    ``yield``), which runs the ``finally`` and so closes the upstream connection.
    """
    sent_id = stream.last_event_id  # the ID the client had when it connected
    try:
        # Many servers send the headers only with the first body bytes: send them now.
        yield sse_sync.HEARTBEAT
        while True:
            event = stream.next_event(timeout=heartbeat)
            if event is None:
                if stream.done:
                    return  # the upstream ended for good; the browser will reconnect
                yield sse_sync.HEARTBEAT
                continue
            # encode_event() omits an empty ID; write it when it changed, so that an upstream
            # reset of the ID (``id:`` with no value) reaches the browser too.
            yield sse_sync.encode(
                event.data,
                event=None if event.event == "message" else event.event,
                id=event.id if event.id != sent_id else None,
                retry=event.retry,
            )
            sent_id = event.id
    except sse_sync.SSEError:
        # The upstream failed mid-stream (and reconnecting, if allowed, gave up): end the
        # response; the browser reconnects and a new upstream connection is tried.
        log.exception("upstream stream failed")
    finally:
        stream.close()


def create_app(
    upstream_url: str,
    *,
    heartbeat: float = 15.0,
    retry: sse_sync.RetryPolicy | None = sse_sync.DEFAULT_RETRY,
) -> Flask:
    """A Flask app relaying ``upstream_url``: ``/events`` is the stream, ``/`` a demo page.

    :param heartbeat: seconds of upstream silence before a heartbeat comment is sent.
    :param retry: how the relay reconnects to the upstream (``None``: never; the browser's
        connection then ends with the upstream's).
    """
    app = Flask(__name__)

    @app.get("/")
    def index() -> Response:
        page = INDEX.format(upstream=html.escape(upstream_url))
        return Response(page, mimetype="text/html")

    @app.get("/events")
    def events() -> Response:
        try:
            stream = sse_sync.connect(
                upstream_url,
                last_event_id=request.headers.get("Last-Event-ID"),
                retry=retry,
            )
        except sse_sync.SSEError as exc:
            log.warning("cannot open the upstream stream: %s", exc)
            # Not 200: a browser's EventSource gives up instead of reconnecting in a loop.
            return Response(f"upstream unavailable: {exc}\n", status=502, mimetype="text/plain")
        if stream.status == 204:
            stream.close()
            return Response(status=204)  # the upstream said stop: tell the browser the same
        return Response(relay(stream, heartbeat), headers=dict(sse_sync.SSE_HEADERS))

    return app


def main() -> None:
    """Run the relay on Werkzeug's threaded development server."""
    parser = argparse.ArgumentParser(description="Relay an SSE stream to browsers.")
    parser.add_argument("--upstream", required=True, help="URL of the event stream to relay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    app = create_app(args.upstream, heartbeat=args.heartbeat)
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
