"""The relay view: read the upstream event stream with sse_sync and re-emit it to the client."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.http import require_GET

import sse_sync

logger = logging.getLogger(__name__)


# GET only: for HEAD, Django's development server consumes the whole body to discard it, which
# for an endless stream would hold a thread and an upstream connection forever.
@require_GET
def relay(request: HttpRequest) -> HttpResponseBase:
    """Stream the upstream's events to the client, with heartbeats while it is quiet.

    The upstream connection is opened here, before the response starts, so that an upstream
    that cannot be reached becomes a 502 instead of a stream that ends at once.  A reconnecting
    browser's ``Last-Event-ID`` is passed on, so the upstream can resume where it left off.
    """
    try:
        upstream = sse_sync.connect(
            settings.SSE_UPSTREAM_URL,
            last_event_id=request.headers.get("Last-Event-ID"),
        )
    except sse_sync.SSEError as exc:
        logger.warning("relay: upstream unavailable: %s", exc)
        return HttpResponse(
            "upstream event stream unavailable\n", status=502, content_type="text/plain"
        )
    body = _relay(upstream, float(settings.SSE_HEARTBEAT_SECONDS))
    return StreamingHttpResponse(body, headers=dict(sse_sync.SSE_HEADERS))


def _relay(upstream: sse_sync.EventStream, heartbeat: float) -> Iterator[bytes]:
    """The response body: each upstream event re-encoded, a heartbeat after each quiet spell.

    When the client disconnects, the server's next write fails and the WSGI server calls the
    response's ``close()``, which closes this generator: ``GeneratorExit`` is raised at the
    ``yield`` and the ``finally`` closes the upstream stream (and joins its reader thread).
    """
    try:
        # Django's development server (and most WSGI servers) sends the headers only with the
        # first body bytes: send a comment now, so the client sees the stream open at once.
        yield sse_sync.HEARTBEAT
        id_in_effect = ""
        while True:
            try:
                event = upstream.next_event(timeout=heartbeat)
            except sse_sync.SSEError as exc:
                # The upstream gave up (its retry policy is exhausted, or the error is final).
                # End the response: the browser reconnects, and with it the upstream.
                logger.warning("relay: upstream stream failed: %s", exc)
                return
            if event is not None:
                message = sse_sync.encode_event(event)
                if id_in_effect and not event.id:
                    # The upstream reset the ID, but encode_event() writes no id: line for an
                    # empty one: send the reset on its own (an id-only block dispatches nothing).
                    message = sse_sync.encode(id="") + message
                id_in_effect = event.id
                yield message
            elif upstream.done:
                # The upstream ended for good (a 204 on reconnection): so does the relay.
                return
            else:
                yield sse_sync.HEARTBEAT
    finally:
        upstream.close()
