"""The threaded client: :func:`connect` and :class:`EventStream`.

Threads live here and in ``_dispatch``.  Each stream owns one reader thread that reads the
response body, decodes it and puts each read's events into a bounded :class:`Channel`.  The
consumer (a ``for`` loop, :meth:`EventStream.next_event`, or the callback dispatcher) takes them
out.  The reader thread holds no reference to the :class:`EventStream`, so a stream that is
dropped without being closed is still cancelled when it is garbage-collected.

Cancellation, from any thread: set a flag, wake both sides of the channel, and shut down the
socket's read side so a ``recv`` blocked on a silent server returns at once.  The reader then
closes the connection itself, so the socket is never closed under a read in progress.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs
import requests

from ._channel import Channel
from ._decoder import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, SSEDecoder
from ._dispatch import Handlers, Opened, Retrying
from ._errors import (
    DecodeError,
    HTTPStatusError,
    IdleTimeout,
    ReadTimeout,
    RequestError,
    RetriesExhausted,
    SSEError,
    StreamError,
)
from ._models import Comment, Event
from ._retry import RetryPolicy, retry_after
from ._transport import Connection, build_headers, open_connection

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ("DEFAULT_RETRY", "DEFAULT_TIMEOUT", "EventStream", "StreamStats", "connect")

DEFAULT_TIMEOUT = (10.0, 300.0)
"""(connect, read) timeouts in seconds: a silent socket is given up after five minutes."""

DEFAULT_RETRY = RetryPolicy()
"""Reconnect as EventSource does: 3 s (or the server's ``retry:``), doubling to 30 s, jittered."""

DEFAULT_MAX_QUEUE = 1024
DEFAULT_MAX_QUEUE_BYTES = 8 << 20

_ids = itertools.count(1)

Timeout = float | tuple[float | None, float | None] | None

T = TypeVar("T")


class Decoder(Protocol[T]):
    """What the reader needs of a decoder: the SSE one, or another line format's."""

    @property
    def last_event_id(self) -> str: ...

    @property
    def retry(self) -> int | None: ...

    def feed(self, data: bytes) -> list[T]: ...

    def feed_items(self, data: bytes) -> list[T | Comment]: ...

    def close(self) -> list[T]: ...


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


class _Stopped:
    """Channel marker: a reconnection was answered 204, the stream is over."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection) -> None:
        self.connection = connection


@attrs.define(eq=False)
class _Reader:
    """The reader thread's state; shared with the consumer only through the channel and flags."""

    conn: Connection
    decoder: Decoder[Any]
    channel: Channel[Any]
    idle_timeout: float | None
    comments: bool
    policy: RetryPolicy | None
    reopen: Callable[[str], Connection]
    thread: threading.Thread | None = None
    cancelled: bool = False
    restarting: bool = False
    bytes: int = 0
    connections: int = 1
    connected_since: float = attrs.field(factory=time.monotonic)
    connected_total: float = 0.0
    failures: int = 0
    failing_since: float = 0.0
    wake: threading.Event = attrs.field(factory=threading.Event)
    rng: random.Random = attrs.field(factory=random.Random)

    def run(self) -> None:
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as exc:
            # Anything, even a bug, must reach the consumer rather than die with this thread.
            if not self.cancelled:
                error = exc
        finally:
            self.conn.close()
            _discard(self.decoder)
            self.channel.finish(error)

    def _loop(self) -> None:
        while True:
            failure: SSEError | None = None
            delivered = False
            try:
                delivered = self._read(self.conn)
            except SSEError as exc:
                failure = exc
            finally:
                self.conn.close()
                self.connected_total += time.monotonic() - self.connected_since
                # A reconnect starts a new stream: an unfinished event is dropped, never halved.
                _discard(self.decoder)
            if self.cancelled:
                return
            if self.restarting:
                self.restarting = False
                self.wake.clear()
                self.failures = 0
                delay = 0.0
            else:
                policy = self.policy
                if policy is None or not policy.should_retry(failure):
                    if failure is not None:
                        raise failure
                    return
                if delivered and time.monotonic() - self.connected_since >= policy.reset_after:
                    self.failures = 0
                delay = self._failed(policy, failure)
            conn = self._reconnect(delay)
            if conn is None:
                return
            self.conn = conn

    def _failed(self, policy: RetryPolicy, failure: BaseException | None) -> float:
        # One more consecutive failure: give up, or say how long to wait and tell the consumer.
        if not self.failures:
            self.failing_since = time.monotonic()
        self.failures += 1
        failures = self.failures
        delay = _next_wait(
            policy,
            failures,
            failures - 1,  # the failure that started the count was not an attempt
            self.decoder.retry,
            self.rng,
            failure,
            self.failing_since,
            "reconnection",
        )
        self.channel.put(Retrying(failure, delay), 0, 0)
        return delay

    def _reconnect(self, delay: float) -> Connection | None:
        # Returns the next open connection, or None when the stream is over without error.
        while True:
            if delay > 0 and self.wake.wait(delay):
                # cancel() or restart() during the wait: both end it early.
                self.wake.clear()
                self.restarting = False
            if self.cancelled:
                return None
            try:
                conn = self.reopen(self.decoder.last_event_id)
            except SSEError as exc:
                policy = self.policy
                if policy is None or not policy.should_retry(exc):
                    raise
                delay = self._failed(policy, exc)
                continue
            if conn.status == 204 or self._is_cancelled():
                # 204 is the server's way of saying "stop": no error, no further attempts.
                conn.close()
                if conn.status == 204:
                    self.channel.put(_Stopped(conn), 0, 0)
                return None
            self.connections += 1
            self.connected_since = time.monotonic()
            self.channel.put(Opened(conn), 0, 0)
            return conn

    def _read(self, conn: Connection) -> bool:
        # Read one connection to its end; True if it delivered an event.
        decoder = self.decoder
        put = self.channel.put
        idle = self.idle_timeout
        last_line = time.monotonic()
        pending = 0
        delivered = False
        try:
            for chunk in conn.chunks():
                if self.cancelled or self.restarting:
                    return delivered
                size = len(chunk)
                self.bytes += size
                pending += size
                if idle is not None:
                    # A trickle that never completes a line is as dead as silence.
                    now = time.monotonic()
                    if 10 in chunk or 13 in chunk:
                        last_line = now
                    elif now - last_line > idle:
                        raise IdleTimeout(f"no complete line within idle_timeout={idle} s")
                # Checked per chunk: an on_comment handler may be added while streaming.
                events = decoder.feed_items(chunk) if self.comments else decoder.feed(chunk)
                if events:
                    delivered = True
                    if not put(events, len(events), pending):
                        return delivered
                    pending = 0
            if self.cancelled or self.restarting:
                return delivered
            # A clean end completes a last line that formats such as NDJSON allow without LF.
            tail = decoder.close()
            if tail:
                delivered = True
                put(tail, len(tail), pending)
        except DecodeError as exc:
            # Items completed before the error (a limit, an invalid line) are delivered first.
            done = getattr(exc, "events", None)
            if done:
                put(list(done), len(done), pending)
            raise
        except ReadTimeout as exc:
            if self.cancelled or self.restarting:
                return delivered
            if idle is not None and not isinstance(exc, IdleTimeout):
                raise IdleTimeout(f"no bytes within idle_timeout={idle} s") from exc
            raise
        except StreamError:
            if self.cancelled or self.restarting:
                return delivered
            raise
        return delivered

    def _is_cancelled(self) -> bool:
        # A call, not an attribute test, so type narrowing does not assume it cannot change.
        return self.cancelled

    def cancel(self) -> None:
        self.cancelled = True
        self.wake.set()
        self.channel.cancel()
        self.conn.interrupt()

    def restart(self) -> None:
        self.restarting = True
        self.wake.set()
        self.conn.interrupt()


class _Stream(Generic[T]):
    """A stream of decoded items read by a background thread; see :class:`EventStream`."""

    def __init__(
        self,
        conn: Connection,
        *,
        decoder: Decoder[T],
        session: requests.Session,
        owns_session: bool,
        idle_timeout: float | None,
        comments: bool,
        max_queue: int,
        max_queue_bytes: int,
        policy: RetryPolicy | None,
        reopen: Callable[[str], Connection],
    ) -> None:
        self._conn = conn
        self._session = session
        self._owns_session = owns_session
        self._channel: Channel[T | Comment] = Channel(max_queue, max_queue_bytes)
        self._reader = _Reader(conn, decoder, self._channel, idle_timeout, comments, policy, reopen)
        self._handlers = Handlers()
        self._last_id = decoder.last_event_id
        self._delivered = 0
        self._deadline: float | None = None
        self._signal: Callable[[Any, object], None] = self._handlers.signal
        self._source = self._items()
        self._iter = self._source
        self._dispatch_thread: threading.Thread | None = None
        self._dispatch_error: BaseException | None = None
        self._done = threading.Event()
        self._name = f"sse_sync-{next(_ids)}"
        # Cancel a forgotten stream when it is collected; the reader never refers back to it.
        self._finalizer = weakref.finalize(self, self._reader.cancel)
        self._channel.put(Opened(conn), 0, 0)
        if conn.status == 204:
            self._channel.finish(None)
            conn.close()
        else:
            thread = threading.Thread(
                target=self._reader.run, name=f"{self._name}-reader", daemon=True
            )
            self._reader.thread = thread
            thread.start()

    # -- attributes ------------------------------------------------------------------------

    @property
    def status(self) -> int:
        """HTTP status of the current connection (204 means the server asked to stop)."""
        return self._conn.status

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers of the current connection (case-insensitive)."""
        return self._conn.headers

    @property
    def url(self) -> str:
        """Final URL of the current connection, after redirects."""
        return self._conn.url

    @property
    def last_event_id(self) -> str:
        """The last event ID in effect for the last event delivered to the consumer."""
        return self._last_id

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` (or :meth:`close`) was called."""
        return self._reader.cancelled

    @property
    def done(self) -> bool:
        """Whether the stream has ended and every event in it was delivered."""
        return self._done.is_set()

    def stats(self) -> StreamStats:
        """Counters: events delivered, bytes received, connections, time connected."""
        reader = self._reader
        connected = reader.connected_total
        if reader.thread is not None and reader.thread.is_alive():
            connected += time.monotonic() - reader.connected_since
        return StreamStats(
            events=self._delivered,
            bytes=reader.bytes,
            connections=reader.connections,
            connected_seconds=connected,
            pending=self._channel.pending(),
        )

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "done" if self.done else "open"
        return f"<{type(self).__name__} {self._name} {self.status} {state}>"

    # -- consuming -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[T]:
        return self._iter

    def __next__(self) -> T:
        return next(self._iter)

    def next_event(self, timeout: float | None = None) -> T | None:
        """The next event; ``None`` if none came within ``timeout`` seconds or the stream is
        :attr:`done`.  Raises the stream's error as iteration does.  For polling loops in
        notebooks and views; use one consumer style per stream at a time."""
        self._deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for item in self._source:
                return None if item is _TIMEOUT else item
            return None
        finally:
            self._deadline = None

    def _items(self) -> Iterator[T]:
        # The one consumer loop: every style (for, next_event, run) pulls from this generator,
        # so they share one position in the stream.  It yields only items (and _TIMEOUT when
        # next_event() set a deadline); comments and markers go to self._signal right here,
        # which saves the per-event cost of a second generator layer.
        channel = self._channel
        reader = self._reader
        while True:
            deadline = self._deadline
            try:
                batches = channel.take(
                    None if deadline is None else max(0.0, deadline - time.monotonic())
                )
            except BaseException:
                # KeyboardInterrupt while waiting (Ctrl-C, a notebook's interrupt): this
                # generator cannot resume, so the stream ends here, reader and socket too.
                reader.cancel()
                self._done.set()
                raise
            if batches is None:
                yield _TIMEOUT  # type: ignore[misc]
                continue
            if not batches:
                self._done.set()
                error = channel.error
                if error is not None and not reader.cancelled:
                    raise error
                return
            for batch, nitems, nbytes in batches:
                if type(batch) is list:
                    self._delivered += nitems
                    for item in batch:
                        if reader.cancelled:
                            self._done.set()
                            return
                        kind = type(item)
                        if kind is Event:
                            self._last_id = item.id
                        elif kind is Comment:
                            self._signal(self, item)
                            continue
                        yield item
                    channel.release(nitems, nbytes)
                else:
                    if reader.cancelled:
                        # No handler runs after cancel(), markers included.
                        self._done.set()
                        return
                    if type(batch) is _Stopped:
                        # status and headers then say why the stream ended.
                        self._conn = batch.connection
                        continue
                    if type(batch) is Opened:
                        self._conn = batch.connection  # type: ignore[assignment]
                    self._signal(self, batch)

    def _set_signal(self, signal: Callable[[Any, object], None] | None) -> None:
        self._signal = self._handlers.signal if signal is None else signal

    # -- ending ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the stream now, from any thread or callback; idempotent and non-blocking.

        Iteration ends (no error) and the reader thread closes the connection and exits,
        even if it was blocked on a silent socket or a full queue.
        """
        self._reader.cancel()

    def restart(self) -> None:
        """Drop the current connection and reconnect at once, as if the server had dropped it
        (after a credential refresh, say).  Works during a backoff wait too.  Non-blocking."""
        self._reader.restart()

    def close(self, timeout: float | None = 5.0) -> None:
        """Cancel, wait up to ``timeout`` seconds for the reader thread, close an owned session."""
        self.cancel()
        self._done.set()
        thread = self._reader.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- callbacks -------------------------------------------------------------------------

    def on(self, event_type: str, handler: Callable[[Event], object]) -> Self:
        """Call ``handler(event)`` for each event of ``event_type``; returns the stream."""
        self._handlers.add(event_type, handler)
        return self

    def on_open(self, handler: Callable[[Self], object]) -> Self:
        """Call ``handler(stream)`` when dispatching starts and after every reconnection."""
        self._handlers.opened.append(handler)
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

    def on_retry(self, handler: Callable[[BaseException | None, float], object]) -> Self:
        """Call ``handler(error, delay)`` when the connection ended or an attempt failed and
        the next attempt follows in ``delay`` seconds; ``error`` is ``None`` when the server
        closed the stream cleanly.  ``on_open`` runs again once reconnected."""
        self._handlers.retrying.append(handler)
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
        error that no ``on_error`` handler received is raised from here, after ``on_close``.
        """
        self._handlers.run(self, self._source, handler_errors, self._set_signal)

    def start(self, *, handler_errors: str = "stop") -> Self:
        """Run :meth:`run` in a new (daemon) dispatch thread; use :meth:`join` or :meth:`wait`."""
        if self._dispatch_thread is not None:
            raise RuntimeError("dispatching has already started")

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


class EventStream(_Stream[Event]):
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
        request with a body reconnects only with ``RetryPolicy(resend_body=True)``.
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


def _discard(decoder: Decoder[Any]) -> None:
    # Drop whatever is unfinished; after an error or a cancel it is no error of its own.
    try:
        decoder.close()
    except DecodeError:
        pass


def _checked_id(last_event_id: str | None) -> str:
    if last_event_id and any(c in last_event_id for c in "\r\n\0"):
        raise RequestError("last_event_id must not contain CR, LF or NUL")
    return last_event_id or ""


S = TypeVar("S", bound=_Stream[Any])


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
    """Open the first connection and start a stream of ``stream_class`` reading it; ``caller``
    names the public function in error messages."""
    for reserved in ("stream",):
        if reserved in request_kwargs:
            raise TypeError(f"{caller}() got an unexpected keyword argument {reserved!r}")
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

    def reopen(last_id: str) -> Connection:
        extra = headers() if callable(headers) else headers
        return open_connection(
            sess,
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

    try:
        conn = _first_connection(reopen, decoder.last_event_id, policy)
    except BaseException:
        if owns_session:
            sess.close()
        raise
    if conn.status == 204:
        # The server's way of saying "stop": the stream is over before it began.
        policy = None
    return stream_class(
        conn,
        decoder=decoder,
        session=sess,
        owns_session=owns_session,
        idle_timeout=idle_timeout,
        comments=comments,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        policy=policy,
        reopen=reopen,
    )


def _first_connection(
    reopen: Callable[[str], Connection], last_id: str, policy: RetryPolicy | None
) -> Connection:
    # Fails fast unless the policy opts into retrying the first connection too.
    failures = 0
    started = time.monotonic()
    rng = random.Random()
    while True:
        try:
            return reopen(last_id)
        except SSEError as exc:
            if policy is None or not policy.retry_first or not policy.should_retry(exc):
                raise
            failures += 1
            delay = _next_wait(policy, failures, failures, None, rng, exc, started, "connection")
            time.sleep(delay)


def _next_wait(
    policy: RetryPolicy,
    failures: int,
    attempts: int,
    server_retry_ms: int | None,
    rng: random.Random,
    error: BaseException | None,
    since: float,
    what: str,
) -> float:
    """Seconds to wait after ``failures`` consecutive failures since ``since``: the backoff, or
    longer if the server asked (``Retry-After``).  Raises RetriesExhausted, counting
    ``attempts``, when the policy allows no further attempt: too many, or one that would start
    after ``max_elapsed``."""
    if policy.max_attempts is not None and failures > policy.max_attempts:
        raise RetriesExhausted(f"gave up after {attempts} {what} attempts", attempts) from error
    delay = policy.delay(failures, server_retry_ms, rng)
    if isinstance(error, HTTPStatusError):
        delay = max(delay, retry_after(error.headers) or 0.0)
    if policy.max_elapsed is not None and time.monotonic() - since + delay > policy.max_elapsed:
        raise RetriesExhausted(
            f"gave up: the next {what} attempt, in {delay:.3g} s, would start after "
            f"max_elapsed={policy.max_elapsed} s of failure",
            attempts,
        ) from error
    return delay


def _timeouts(timeout: Timeout) -> tuple[float | None, float | None]:
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout, timeout
    connect_timeout, read_timeout = timeout
    return connect_timeout, read_timeout
