"""The other direction: encode events for a ``text/event-stream`` response, and stream them.

:func:`encode` turns one message into wire bytes; :class:`EventWriter` carries encoded messages
from producer threads to the WSGI server iterating the response (Flask, Django and other sync
frameworks), with heartbeats and backpressure; :data:`SSE_HEADERS` are the headers to send.

Everything :func:`encode` writes decodes back exactly (``decode(encode(...))``), except that the
line breaks CRLF and CR inside ``data`` arrive as LF: the format has no way to carry them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from time import monotonic
from types import MappingProxyType, TracebackType

from ._errors import SendTimeout, WriterClosed
from ._models import Event
from ._wire import encode, encode_fields

__all__ = (
    "HEARTBEAT",
    "SSE_HEADERS",
    "EventWriter",
    "SendTimeout",
    "WriterClosed",
    "encode",
    "encode_event",
)

SSE_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Content-Type": "text/event-stream; charset=utf-8",
        # Stop browsers and proxies from caching or replaying the stream.
        "Cache-Control": "no-cache",
        # nginx buffers proxied responses by default, which would hold events back.
        "X-Accel-Buffering": "no",
    }
)
"""Response headers for an event stream.  No hop-by-hop headers (``Connection``): WSGI forbids
applications to set them, and the server manages the connection itself."""

HEARTBEAT = b":\n\n"
"""What :class:`EventWriter` yields when idle: an empty comment, the shortest message that every
decoder ignores."""


def encode_event(ev: Event, *, last_id: str | None = None) -> bytes:
    """Encode an :class:`Event` (as the decoder produces) so that it decodes back equal.

    The event type ``"message"`` writes no ``event:`` line.  :attr:`Event.id` is the ID in
    effect, not a field of the event, so what to write depends on what the receiver holds:
    without ``last_id`` a non-empty ID is written and an empty one is not (the receiver keeps
    its earlier ID); with ``last_id`` (the ID the receiver has now, as a relay knows from the
    previous event) the ``id:`` line is written exactly when the ID changes, an empty one
    resetting it.
    """
    return encode_fields(ev.event, ev.data, ev.id, ev.retry, last_id=last_id)


class EventWriter:
    """A thread-safe channel from producer threads to a streaming WSGI response.

    Producers call :meth:`send`, :meth:`send_event` and :meth:`comment`, then :meth:`close`; the
    server iterates the writer, getting each message as ``bytes`` as soon as it is sent.
    Return the writer itself as the response body, e.g. ``flask.Response(writer,
    headers=SSE_HEADERS)`` or ``django.http.StreamingHttpResponse(writer, headers=SSE_HEADERS)``:
    when the client disconnects, the server calls :meth:`close`, and producers then get
    :class:`WriterClosed` from their next send.  Many servers send the response headers only with
    the first body bytes, so call ``writer.comment("")`` first if the client should see the
    stream open at once.

    :param heartbeat: seconds the iteration waits for a message before yielding
        :data:`HEARTBEAT` (``b":\\n\\n"``) instead, which keeps proxies from closing an idle
        connection and lets the server notice a client that has gone; ``None`` for no heartbeats.
    :param max_pending: how many messages may wait for the server; :meth:`send` blocks when that
        many are waiting.
    """

    __slots__ = ("_closed", "_heartbeat", "_items", "_max", "_not_empty", "_not_full")

    def __init__(self, *, heartbeat: float | None = 15.0, max_pending: int = 1000) -> None:
        if heartbeat is not None:
            heartbeat = _seconds("heartbeat", heartbeat)
            if heartbeat == 0:
                raise ValueError("heartbeat must be positive or None, not 0")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int, not {max_pending!r}")
        self._heartbeat = heartbeat
        self._max = max_pending
        self._items: deque[bytes] = deque()
        self._closed = False
        # Two conditions on one lock, as in queue.Queue: a send wakes one consumer, and taking a
        # message wakes one producer, instead of every waiting thread.
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def send(
        self,
        data: str | None = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        timeout: float | None = None,
    ) -> None:
        """Encode a message (as :func:`encode`) and queue it for the server.

        :param timeout: most seconds to wait while ``max_pending`` messages are waiting;
            ``None`` waits until there is room.
        :raises ValueError: from :func:`encode`, before anything is queued.
        :raises WriterClosed: if the writer is closed, or is closed while this call waits.
        :raises SendTimeout: if there was no room within ``timeout``.
        """
        self._put(encode(data, event=event, id=id, retry=retry), timeout)

    def send_event(self, ev: Event, *, timeout: float | None = None) -> None:
        """Queue an :class:`Event`, encoded by :func:`encode_event`; otherwise as :meth:`send`."""
        self._put(encode_event(ev), timeout)

    def comment(self, text: str = "", *, timeout: float | None = None) -> None:
        """Queue a comment-only message (``encode(comment=text)``); otherwise as :meth:`send`."""
        self._put(encode(comment=text), timeout)

    def close(self) -> None:
        """Close the writer; idempotent.

        Messages already queued are still yielded, then the iteration ends.  Producers waiting in
        :meth:`send` wake up with :class:`WriterClosed`, as do all later sends.
        """
        with self._not_full:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> EventWriter:
        return self

    def __next__(self) -> bytes:
        items = self._items
        with self._not_empty:
            if not items:
                heartbeat = self._heartbeat
                deadline: float | None = None
                while not items:
                    if self._closed:
                        raise StopIteration
                    if heartbeat is None:
                        self._not_empty.wait()
                    elif deadline is None:
                        deadline = monotonic() + heartbeat
                        self._not_empty.wait(heartbeat)
                    else:
                        # Woken without a message (another consumer took it, or a spurious
                        # wake-up): wait out the rest of the interval.
                        remaining = deadline - monotonic()
                        if remaining <= 0:
                            return HEARTBEAT
                        self._not_empty.wait(remaining)
            item = items.popleft()
            self._not_full.notify()
            return item

    def _put(self, item: bytes, timeout: float | None) -> None:
        if timeout is not None:
            timeout = _seconds("timeout", timeout)
        with self._not_full:
            if self._closed:
                raise WriterClosed("the EventWriter is closed")
            if len(self._items) >= self._max:
                self._wait_for_room(timeout)
            self._items.append(item)
            self._not_empty.notify()

    def _wait_for_room(self, timeout: float | None) -> None:
        # Called with the lock held and the queue full.
        deadline = None if timeout is None else monotonic() + timeout
        while len(self._items) >= self._max:
            if deadline is None:
                self._not_full.wait()
            else:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise SendTimeout(
                        f"{self._max} messages still pending after waiting {timeout} seconds"
                    )
                self._not_full.wait(remaining)
            if self._closed:
                raise WriterClosed("the EventWriter was closed while send() waited")


# -- internals -----------------------------------------------------------------------------------


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
    if value > threading.TIMEOUT_MAX:  # also rejects inf, which Condition.wait() cannot take
        raise ValueError(f"{name} must be at most threading.TIMEOUT_MAX, not {value!r}")
    return float(value)
