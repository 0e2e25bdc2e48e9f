"""The threaded client: :func:`connect` and :class:`EventStream`.

Each stream owns one reader thread (``_reader``) that connects, reads, decodes and puts each
read's events into a bounded :class:`Channel`; the consumer (a ``for`` loop,
:meth:`EventStream.next_event`, or the callback dispatcher) takes them out.

Nothing the reader or the consumer's generator holds refers back to the stream, so a stream
dropped without being closed is cancelled as soon as its last reference goes (at once on
CPython): a finalizer calls the reader's lock-free ``cancel()``.  Iterating holds the stream.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import requests

from ._channel import Channel
from ._decoder import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, SSEDecoder
from ._dispatch import Handlers, Opened
from ._errors import RequestError
from ._models import Comment, Event
from ._reader import CLOSED, Decoder, Reader, Stopped
from ._retry import RetryPolicy
from ._transport import Connection, Tracker, Transport, _safe_url, build_headers

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ("DEFAULT_RETRY", "DEFAULT_TIMEOUT", "EventStream", "StreamStats", "connect")

DEFAULT_TIMEOUT = (10.0, 300.0)
"""(connect, read) timeouts in seconds: a silent socket is given up after five minutes."""

DEFAULT_RETRY = RetryPolicy()
"""Reconnect as EventSource does: the server's ``retry:`` (else 3 s) after a stream that
delivered events, growing from there over failed attempts to 30 s, lengthened by up to 25 %."""

DEFAULT_MAX_QUEUE = 1024
DEFAULT_MAX_QUEUE_BYTES = 8 << 20

_ids = itertools.count(1)

Timeout = float | tuple[float | None, float | None] | None

T = TypeVar("T")


@attrs.frozen
class StreamStats:
    """A snapshot of a stream's counters."""

    events: int
    """Events handed to the consumer."""
    bytes: int
    """Body bytes received (after content decoding)."""
    connections: int
    """Connections opened, the first one included."""
    connected_seconds: float
    """Time spent connected, summed over connections."""
    pending: int
    """Events decoded but not yet taken by the consumer."""


_TIMEOUT = object()


class _Consumer:
    """The consumer's side of a stream, shared by the stream and its item generator."""

    __slots__ = ("conn", "deadline", "done", "last_id", "reader", "signal", "stream", "taken")

    def __init__(self, reader: Reader, conn: Connection, last_id: str, signal: Any) -> None:
        self.reader = reader
        self.conn = conn
        self.last_id = last_id
        self.taken = 0
        self.deadline: float | None = None
        self.done = threading.Event()
        self.signal: Callable[[Any, object], None] = signal
        self.stream: Callable[[], Any] = lambda: None

    def notify(self, item: object) -> None:
        # Handlers for comments and markers; one that raises ends the stream, then propagates.
        stream = self.stream()
        if stream is None:
            return
        try:
            self.signal(stream, item)
        except BaseException:
            self.reader.cancel()
            self.done.set()
            raise


def _consume(c: _Consumer, channel: Channel[Any]) -> Iterator[Any]:
    # The one consumer loop: every style (for, next_event, run) pulls from this generator, so
    # they share one position in the stream.  It yields items (and _TIMEOUT when next_event()
    # set a deadline); comments and markers go to the handlers right here.  It must not refer
    # to the stream (see the module doc).
    reader = c.reader
    take = channel.take
    release = channel.release
    while True:
        deadline = c.deadline
        try:
            entry = take(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except BaseException:
            # KeyboardInterrupt while waiting (Ctrl-C, a notebook's interrupt): this
            # generator cannot resume, so the stream ends here, reader and socket too.
            reader.cancel()
            c.done.set()
            raise
        if entry is None:
            yield _TIMEOUT
            continue
        batch, nitems, nbytes, tag = entry
        kind = type(batch)
        if kind is list:
            # A tag is the ID of blocks with an id and no data after the batch's last item: it
            # is in effect as soon as that item is taken.
            last = batch[-1] if tag is not None and batch else None  # type: ignore[index]
            for item in batch:  # type: ignore[attr-defined]
                if reader.cancelled:
                    c.done.set()
                    return
                kind = type(item)
                if kind is Event:
                    c.last_id = item.id
                elif kind is Comment:
                    c.notify(item)
                    continue
                c.taken += 1
                if item is last:
                    c.last_id = tag  # type: ignore[assignment]
                yield item
            if tag is not None:
                c.last_id = tag
            release(nitems, nbytes)
        elif batch is None:
            c.done.set()
            error = channel.error
            if error is not None and not reader.cancelled:
                raise error
            return
        else:
            if reader.cancelled:
                # No handler runs after cancel(), markers included.
                c.done.set()
                return
            if kind is Stopped:
                # status and headers then say why the stream ended.
                c.conn = batch.connection  # type: ignore[attr-defined]
                continue
            if kind is Opened:
                c.conn = batch.connection  # type: ignore[attr-defined]
            c.notify(batch)


def _held(stream: object, source: Iterator[T]) -> Iterator[T]:
    # Iterating holds the stream.  A for loop, unlike ``yield from``, does not close the shared
    # source when this wrapper is closed (a ``break``), so the next loop resumes where it was.
    for item in source:  # noqa: UP028
        yield item
    del stream


class _Stream(Generic[T]):
    """A stream of decoded items read by a background thread; see :class:`EventStream`."""

    def __init__(
        self,
        reader: Reader,
        conn: Connection,
        *,
        last_id: str,
        session: requests.Session,
        owns_session: bool,
    ) -> None:
        self._reader = reader
        self._channel = reader.channel
        self._session = session
        self._owns_session = owns_session
        self._handlers = Handlers()
        self._consumer = c = _Consumer(reader, conn, last_id, self._handlers.signal)
        c.stream = weakref.ref(self)
        self._source: Iterator[T] = _consume(c, self._channel)
        self._name = reader.name
        self._dispatch_thread: threading.Thread | None = None
        self._dispatch_error: BaseException | None = None
        # Cancel a forgotten stream when it is collected; nothing the reader holds refers back.
        self._finalizer = weakref.finalize(self, reader.cancel)

    # -- attributes ------------------------------------------------------------------------

    @property
    def status(self) -> int:
        """HTTP status of the current connection (204 means the server asked to stop)."""
        return self._consumer.conn.status

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers of the current connection (case-insensitive)."""
        return self._consumer.conn.headers

    @property
    def url(self) -> str:
        """Final URL of the current connection, after redirects."""
        return self._consumer.conn.url

    @property
    def last_event_id(self) -> str:
        """The ID a reconnection would send, given what the consumer has taken so far: the last
        event ID in effect after the last event taken, or after a block with an ``id`` and no
        data once every event before that block has been taken."""
        return self._consumer.last_id

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` (or :meth:`close`) was called."""
        return self._reader.cancelled

    @property
    def done(self) -> bool:
        """Whether the stream has ended and every event in it was delivered."""
        return self._consumer.done.is_set()

    def stats(self) -> StreamStats:
        """Counters: events delivered, bytes received, connections, time connected."""
        reader = self._reader
        connected = reader.connected_total
        since = reader.connected_since
        if since is not None:
            connected += max(0.0, time.monotonic() - since)
        return StreamStats(
            events=self._consumer.taken,
            bytes=reader.bytes,
            connections=reader.connections,
            connected_seconds=connected,
            pending=self._channel.pending(),
        )

    def __repr__(self) -> str:
        reader = self._reader
        if self.cancelled:
            state = "cancelled"
        elif self.done:
            state = "done"
        elif reader.state == CLOSED:
            state = "ended"  # by the server or an error; events may still be queued
        else:
            state = reader.state
        return f"<{type(self).__name__} {self._name} {self.status} {state}>"

    # -- consuming -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[T]:
        return _held(self, self._source)

    def __next__(self) -> T:
        return next(self._source)

    def next_event(self, timeout: float | None = None) -> T | None:
        """The next event; ``None`` if none came within ``timeout`` seconds or the stream is
        :attr:`done`.  Raises the stream's error as iteration does.  For polling loops in
        notebooks and views; use one consumer style per stream at a time."""
        c = self._consumer
        c.deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for item in self._source:
                return None if item is _TIMEOUT else item
            return None
        finally:
            c.deadline = None

    def _set_signal(self, signal: Callable[[Any, object], None] | None) -> None:
        self._consumer.signal = self._handlers.signal if signal is None else signal

    # -- lifecycle callbacks (they run while iterating, too) --------------------------------

    def on_open(self, handler: Callable[[Self], object]) -> Self:
        """Call ``handler(stream)`` when consuming starts and after every reconnection."""
        self._handlers.opened.append(handler)
        return self

    def on_retry(self, handler: Callable[[BaseException | None, float], object]) -> Self:
        """Call ``handler(error, delay)`` when the connection ended or an attempt failed and
        the next attempt follows in ``delay`` seconds; ``error`` is ``None`` when the server
        closed the stream cleanly.  ``on_open`` runs again once reconnected."""
        self._handlers.retrying.append(handler)
        return self

    # -- ending ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the stream now, from any thread or callback; idempotent and non-blocking.

        Iteration ends (no error) and the reader thread closes the connection and exits, in
        whatever state it is: connecting, waiting for headers, reading a silent socket,
        blocked on a full queue, or waiting to reconnect.  :attr:`done` is then true: no
        event is delivered after it.
        """
        self._reader.cancel()
        self._consumer.done.set()

    def restart(self) -> None:
        """Drop the current connection and reconnect at once, as if the server had dropped it
        (after a credential refresh, say).  Works while connecting and during a backoff wait
        too.  Non-blocking; does nothing once the stream has ended.

        :raises RuntimeError: on a stream that may not reconnect (``retry=None``, or a request
            body without ``RetryPolicy(resend_body=True)``).
        """
        reader = self._reader
        if reader.policy is None and not reader.stopped_by_server:
            raise RuntimeError(
                "restart() needs a stream that may reconnect: this one has retry=None, or a "
                "request body without RetryPolicy(resend_body=True)"
            )
        if reader.state != CLOSED:
            reader.restart()

    def close(self, timeout: float | None = 5.0) -> None:
        """Cancel, wait up to ``timeout`` seconds for the stream's threads to end, close an
        owned session.  The reader closes its sockets as it ends, within milliseconds; only
        a request sent through a custom (non-``HTTPAdapter``) adapter cannot be woken, and
        close() does not wait for that one (it ends at its timeout)."""
        self.cancel()
        self._consumer.done.set()
        reader = self._reader
        current = threading.current_thread()
        if reader.thread is not current and reader.wakeable:
            reader.thread.join(timeout)
        dispatch = self._dispatch_thread
        if dispatch is not None and dispatch is not current:
            dispatch.join(timeout)
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _DispatchingStream(_Stream[T]):
    """A stream whose items can go to callbacks: per event type, or a handler object."""

    def on(self, event_type: str, handler: Callable[[Event], object]) -> Self:
        """Call ``handler(event)`` for each event of ``event_type``; returns the stream."""
        self._handlers.add(event_type, handler)
        return self

    def on_error(self, handler: Callable[[BaseException], object]) -> Self:
        """Call ``handler(exc)`` for the error that ends the stream or a handler's exception."""
        self._handlers.errors.append(handler)
        return self

    def on_close(self, handler: Callable[[], object]) -> Self:
        """Call ``handler()`` once when dispatching ends, for whatever reason."""
        self._handlers.closed.append(handler)
        return self

    def on_comment(self, handler: Callable[[str], object]) -> Self:
        """Call ``handler(text)`` for each comment line (heartbeats); enables comment decoding.

        Pass ``comments=True`` to :func:`connect` to be sure of comments in the first bytes."""
        self._handlers.comments.append(handler)
        self._reader.comments = True
        return self

    def on_unknown(self, handler: Callable[[Event], object]) -> Self:
        """Call ``handler(event)`` for events of a type no other handler takes."""
        self._handlers.unknown.append(handler)
        return self

    def handler(self, obj: object) -> Self:
        """Dispatch to ``obj``'s ``on_<type>`` methods (see :func:`handler_method_name`), with
        ``on_unknown`` as the fallback, and to its ``on_open``, ``on_error``, ``on_close``,
        ``on_comment`` and ``on_retry`` methods."""
        if self._handlers.bind(obj):
            self._reader.comments = True
        return self

    def run(self, *, handler_errors: str = "stop") -> None:
        """Dispatch every event to the handlers in this thread until the stream ends.

        A handler's exception goes to the ``on_error`` handlers; with ``handler_errors="stop"``
        (the default) it also cancels the stream, with ``"continue"`` dispatching goes on.  An
        error that no ``on_error`` handler received, or that an ``on_error`` handler raised
        (which also cancels the stream), is raised from here, after ``on_close``.
        """
        self._handlers.run(self, self._source, handler_errors, self._set_signal)

    def start(self, *, handler_errors: str = "stop") -> Self:
        """Run :meth:`run` in a new (daemon) dispatch thread; use :meth:`join` or :meth:`wait`."""
        if self._dispatch_thread is not None:
            raise RuntimeError("dispatching has already started")
        if handler_errors not in ("stop", "continue"):
            raise ValueError('handler_errors must be "stop" or "continue"')

        def target() -> None:
            try:
                self.run(handler_errors=handler_errors)
            except BaseException as exc:
                self._dispatch_error = exc

        self._dispatch_thread = threading.Thread(
            target=target, name=f"{self._name}-dispatch", daemon=True
        )
        self._dispatch_thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for background dispatching to end; ``True`` if it has."""
        thread = self._dispatch_thread
        if thread is None:
            raise RuntimeError("start() was not called")
        thread.join(timeout)
        return not thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for background dispatching to end and raise the error it ended with, if any.

        Raises :class:`TimeoutError` if it is still running after ``timeout`` seconds."""
        if not self.wait(timeout):
            raise TimeoutError(f"dispatching still running after {timeout} s")
        error, self._dispatch_error = self._dispatch_error, None
        if error is not None:
            raise error


class EventStream(_DispatchingStream[Event]):
    """An open event stream: iterate it for :class:`Event` objects.

    Made by :func:`connect`.  Iteration blocks until the next event; it ends when the server
    ends the stream (for good: see :class:`RetryPolicy`) or :meth:`cancel` is called, and
    raises the error (an :class:`SSEError`, original chained) that ended the stream otherwise.
    Events already received are delivered before such an error.  Use it as a context
    manager, or call :meth:`close`.

    Callback style: register handlers with :meth:`on` (and ``on_open``, ``on_error``,
    ``on_close``, ``on_comment``, ``on_retry``, ``on_unknown``, or :meth:`handler` for an
    object with ``on_<type>`` methods), then :meth:`run` (in this thread) or :meth:`start`
    (in a new one).
    """


def connect(
    url: str,
    *,
    method: str = "GET",
    session: requests.Session | None = None,
    headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
    params: Any = None,
    data: Any = None,
    json: Any = None,
    last_event_id: str | None = None,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    timeout: Timeout = DEFAULT_TIMEOUT,
    idle_timeout: float | None = None,
    comments: bool = False,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    **request_kwargs: Any,
) -> EventStream:
    """Open an event stream and return once its response headers have arrived.

    :param session: your ``requests.Session`` (auth, proxies, certificates, cookies and mounted
        adapters apply); never closed by sse_sync.  Without one, a private session is made.
    :param params: query parameters, as for ``requests``.
    :param data: a request body, as for ``requests``; any method may carry one.
    :param json: a JSON request body, as for ``requests``.
    :param headers: extra request headers, or a callable returning them, called for every
        attempt (rotating tokens); ``Accept: text/event-stream`` and ``Cache-Control:
        no-cache`` are sent by default.  The mapping is not modified.
    :param last_event_id: sent as ``Last-Event-ID``; later attempts send the stream's own.
    :param retry: the :class:`RetryPolicy` for reconnecting; ``None`` never reconnects.  A
        request with a body reconnects only with ``RetryPolicy(resend_body=True)``.  (Not a
        number: for a reconnection time, use ``RetryPolicy(initial_delay=seconds)``.)
    :param timeout: seconds, or ``(connect, read)``; read is the longest silence of the socket.
    :param idle_timeout: end the stream with :class:`IdleTimeout` when no complete line (event,
        field or heartbeat comment) arrives for this many seconds.
    :param comments: decode comment lines from the first byte, for ``on_comment`` handlers.
    :param max_queue: bound on events decoded but not yet consumed; a full queue stops
        reading the socket.
    :param max_queue_bytes: the same bound in bytes received.
    :param max_line_length: decoder limit (see :class:`SSEDecoder`).
    :param max_event_size: decoder limit (see :class:`SSEDecoder`).
    :param request_kwargs: passed to ``session.request`` (``auth``, ``cookies``, ``verify``,
        ``cert``, ``proxies``, ``allow_redirects``, ...).
    :raises ConnectError, ReadTimeout, HTTPStatusError, ContentTypeError, RequestError:
    :raises RetriesExhausted: with ``RetryPolicy(retry_first=True)``, once it gives up.
    :raises TypeError: for an argument of the wrong type (``retry=3000``, ``timeout="10"``).
    """
    decoder = SSEDecoder(
        last_event_id=_checked_id(last_event_id),
        max_line_length=max_line_length,
        max_event_size=max_event_size,
    )
    return _open(
        EventStream,
        decoder,
        url,
        accept="text/event-stream",
        media_types=("text/event-stream",),
        method=method,
        session=session,
        headers=headers,
        params=params,
        data=data,
        json=json,
        retry=retry,
        timeout=timeout,
        idle_timeout=idle_timeout,
        comments=comments,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        request_kwargs=request_kwargs,
    )


def _checked_id(last_event_id: str | None) -> str:
    if last_event_id is not None and not isinstance(last_event_id, str):
        raise TypeError(f"last_event_id must be a str or None, not {type(last_event_id).__name__}")
    if last_event_id and any(c in last_event_id for c in "\r\n\0"):
        raise RequestError("last_event_id must not contain CR, LF or NUL")
    return last_event_id or ""


S = TypeVar("S", bound=_Stream[Any])


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_types(
    caller: str,
    retry: object,
    timeout: object,
    idle_timeout: object,
    max_queue: object,
    max_queue_bytes: object,
    headers: object,
) -> None:
    if retry is not None and not isinstance(retry, RetryPolicy):
        hint = ""
        if isinstance(retry, (int, float)) and not isinstance(retry, bool):
            hint = (
                " (for a reconnection time in milliseconds, pass "
                f"RetryPolicy(initial_delay={retry / 1000:g}))"
            )
        raise TypeError(
            f"{caller}(): retry must be a RetryPolicy or None, not {type(retry).__name__}{hint}"
        )
    parts: tuple[object, ...] = (timeout,)
    if isinstance(timeout, tuple) and len(timeout) == 2:
        parts = timeout
    if not all(part is None or _number(part) for part in parts):
        raise TypeError(
            f"{caller}(): timeout must be seconds, a (connect, read) pair of seconds, or None, "
            f"not {timeout!r}"
        )
    if idle_timeout is not None and not _number(idle_timeout):
        raise TypeError(f"{caller}(): idle_timeout must be seconds or None, not {idle_timeout!r}")
    for name, value in (("max_queue", max_queue), ("max_queue_bytes", max_queue_bytes)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{caller}(): {name} must be an int, not {value!r}")
    if headers is not None and not (isinstance(headers, Mapping) or callable(headers)):
        raise TypeError(
            f"{caller}(): headers must be a mapping, a callable returning one, or None, "
            f"not {type(headers).__name__}"
        )


def _open(
    stream_class: type[S],
    decoder: Decoder[Any],
    url: str,
    *,
    accept: str,
    media_types: tuple[str, ...],
    method: str,
    session: requests.Session | None,
    headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None,
    params: Any,
    data: Any,
    json: Any,
    retry: RetryPolicy | None,
    timeout: Timeout,
    idle_timeout: float | None,
    comments: bool,
    max_queue: int,
    max_queue_bytes: int,
    request_kwargs: dict[str, Any],
    caller: str = "connect",
) -> S:
    """Start a stream of ``stream_class`` and return once its first connection is open;
    ``caller`` names the public function in error messages."""
    for reserved in ("stream",):
        if reserved in request_kwargs:
            raise TypeError(f"{caller}() got an unexpected keyword argument {reserved!r}")
    _check_types(caller, retry, timeout, idle_timeout, max_queue, max_queue_bytes, headers)
    if max_queue < 1 or max_queue_bytes < 1:
        raise ValueError("max_queue and max_queue_bytes must be at least 1")
    connect_timeout, read_timeout = _timeouts(timeout)
    if idle_timeout is not None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive or None")
        read_timeout = idle_timeout if read_timeout is None else min(read_timeout, idle_timeout)
    has_body = data is not None or json is not None or "files" in request_kwargs
    policy = retry
    if policy is not None and has_body and not policy.resend_body:
        policy = None
    replayable = data is None or isinstance(data, (bytes, str, dict, list, tuple))
    if policy is not None and not replayable:
        raise ValueError("resend_body needs a body that can be sent again: bytes, str or dict")
    owns_session = session is None
    sess = requests.Session() if session is None else session
    transport = Transport(sess, url)

    def open_attempt(tracker: Tracker, last_id: str) -> Connection:
        extra = headers() if callable(headers) else headers
        return transport.open(
            tracker,
            method,
            url,
            headers=build_headers(extra, last_id, accept),
            timeout=(connect_timeout, read_timeout),
            media_types=media_types,
            params=params,
            data=data,
            json=json,
            **request_kwargs,
        )

    last_id = decoder.last_event_id
    reader = Reader(
        name=f"sse_sync-{next(_ids)}",
        transport=transport,
        open_attempt=open_attempt,
        decoder=decoder,
        channel=Channel(max_queue, max_queue_bytes),
        idle_timeout=idle_timeout,
        comments=comments,
        policy=policy,
        method=method,
        url=_safe_url(url).partition("?")[0],
    )
    reader.thread.start()
    try:
        first = reader.wait_first()
    except BaseException:
        # KeyboardInterrupt while connecting: nothing of the stream may stay behind.
        reader.cancel()
        if reader.wakeable:
            reader.thread.join(5.0)
        if owns_session:
            sess.close()
        raise
    if not isinstance(first, Connection):
        reader.thread.join(5.0)
        if owns_session:
            sess.close()
        if first is None:  # pragma: no cover - only a cancel ends the reader without an outcome
            raise RuntimeError("the stream was cancelled before it connected")
        raise first
    return stream_class(reader, first, last_id=last_id, session=sess, owns_session=owns_session)


def _timeouts(timeout: Timeout) -> tuple[float | None, float | None]:
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout, timeout
    connect_timeout, read_timeout = timeout
    return connect_timeout, read_timeout
