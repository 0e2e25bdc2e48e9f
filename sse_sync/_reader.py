"""The reader thread of a stream: connect, read, wait, reconnect, as one state machine.

States: ``connecting`` (name resolution, TCP and TLS, the wait for response headers),
``open`` (reading the body; a full queue blocks here too), ``waiting`` (the backoff before the
next attempt) and ``closed``.  Every blocking phase first *arms* the one call that wakes it (shut
down the attempt's sockets, release the backoff's signal; the queue wakes itself on cancel), and
:meth:`Reader.cancel` and :meth:`Reader.restart` set their flag, then call whatever is armed.
Arming stores the waker, then reads the flags; cancelling sets the flag, then reads the waker:
one of the two always sees the other, so no request is lost, whatever the moment.  Neither
takes a lock or blocks, so a finalizer may cancel from any thread, the reader's own included.

The same loop opens the first connection (``connect()`` waits for its outcome) and every later
one, so attempts are counted, paced and given up on in one place.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import attrs

from ._channel import Channel
from ._dispatch import Opened, Retrying
from ._errors import (
    DecodeError,
    HTTPStatusError,
    IdleTimeout,
    LimitExceeded,
    ReadTimeout,
    RetriesExhausted,
    SSEError,
    StreamError,
)
from ._models import Comment
from ._retry import RetryPolicy, retry_after
from ._transport import Connection, Tracker, Transport

__all__ = ("Backoff", "Decoder", "Reader", "Stopped")

log = logging.getLogger("sse_sync.stream")

T = TypeVar("T")

CONNECTING = "connecting"
OPEN = "open"
WAITING = "waiting"
CLOSED = "closed"


class Decoder(Protocol[T]):
    """What the reader needs of a decoder: the SSE one, or another line format's."""

    @property
    def last_event_id(self) -> str: ...

    @property
    def retry(self) -> int | None: ...

    def feed(self, data: bytes) -> list[T]: ...

    def feed_items(self, data: bytes) -> list[T | Comment]: ...

    def close(self) -> list[T]: ...


class Stopped:
    """Channel marker: a reconnection was answered 204, the stream is over."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection) -> None:
        self.connection = connection


class _Signal:
    """A one-shot wake-up for a timed wait; :meth:`set` never blocks and takes no lock."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return self._lock.acquire()
        return self._lock.acquire(timeout=min(max(timeout, 0.0), threading.TIMEOUT_MAX))

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already set


@attrs.define
class Backoff:
    """Consecutive failures under one :class:`RetryPolicy`: when to try again, when to stop."""

    policy: RetryPolicy
    rng: random.Random = attrs.field(factory=random.Random)
    failures: int = 0
    since: float = 0.0

    def reset(self) -> None:
        """A connection delivered what it should: the next failure starts a new count."""
        self.failures = 0

    def failed(self, error: BaseException | None, server_retry_ms: int | None, what: str) -> float:
        """Count one more failure; the seconds to wait before the next attempt.

        Raises :class:`RetriesExhausted` when the policy allows no further attempt.  ``what``
        is ``"connection"`` while the first connection is being made (every failure was an
        attempt) or ``"reconnection"`` (the first failure was the end of a stream)."""
        policy = self.policy
        now = time.monotonic()
        if not self.failures:
            self.since = now
        self.failures += 1
        attempts = self.failures if what == "connection" else self.failures - 1
        noun = "attempt" if attempts == 1 else "attempts"
        if policy.max_attempts is not None and self.failures > policy.max_attempts:
            raise RetriesExhausted(f"gave up after {attempts} {what} {noun}", attempts) from error
        delay = policy.delay(self.failures, server_retry_ms, self.rng)
        if isinstance(error, HTTPStatusError):
            asked = retry_after(error.headers, cap=policy.max_server_delay)
            delay = max(delay, asked or 0.0)
        if policy.max_elapsed is not None and now - self.since + delay > policy.max_elapsed:
            raise RetriesExhausted(
                f"gave up: the next {what} attempt, in {delay:.3g} s, would start after "
                f"max_elapsed={policy.max_elapsed} s of failure",
                attempts,
            ) from error
        return delay


def _waker(tracker: Tracker, conn: Connection) -> Callable[[], None]:
    # Both: the tracker reaches the socket under any adapter of ours, interrupt() under a
    # custom adapter's response too.
    def wake() -> None:
        tracker.interrupt()
        conn.interrupt()

    return wake


def _discard(decoder: Decoder[Any]) -> None:
    # Drop whatever is unfinished; after an error or a cancel it is no error of its own.
    try:
        decoder.close()
    except DecodeError:
        pass


class Reader:
    """The state machine of one stream, run by its reader thread (see the module doc)."""

    def __init__(
        self,
        *,
        name: str,
        transport: Transport,
        open_attempt: Callable[[Tracker, str], Connection],
        decoder: Decoder[Any],
        channel: Channel[Any],
        idle_timeout: float | None,
        comments: bool,
        policy: RetryPolicy | None,
        method: str,
        url: str,
    ) -> None:
        self.name = name
        self.transport = transport
        self.open_attempt = open_attempt
        self.decoder = decoder
        self.channel = channel
        self.idle_timeout = idle_timeout
        self.comments = comments
        self.policy = policy
        self.backoff = Backoff(policy or RetryPolicy())
        self.method = method
        self.url = url
        self.state = CONNECTING
        self.cancelled = False
        self.restart_requested = False
        self._waker: Callable[[], None] | None = None
        self.first: Connection | BaseException | None = None
        self._first_known = _Signal()
        self.opened = False
        self.stopped_by_server = False
        self.delivered = 0  # items delivered by the current connection
        self._held: tuple[list[Any], int, int, str | None] | None = None
        self._tracker = Tracker()
        self.thread = threading.Thread(target=self.run, name=f"{name}-reader", daemon=True)
        # Counters for stats(); each has this thread as its only writer.
        self.bytes = 0
        self.connections = 0
        self.connected_total = 0.0
        self.connected_since: float | None = None

    # -- control, from any thread ---------------------------------------------------------

    def cancel(self) -> None:
        """End the stream now.  Lock-free and non-blocking: safe in a finalizer."""
        self.cancelled = True
        self.channel.cancel()
        waker = self._waker
        if waker is not None:
            waker()

    def restart(self) -> None:
        """Drop the connection, or end the wait, and make a new attempt at once."""
        self.restart_requested = True
        # Blocked on a full queue, the reader keeps the batch in hand for later and goes on.
        self.channel.nudge()
        waker = self._waker
        if waker is not None:
            waker()

    def _restart_due(self) -> bool:
        return self.restart_requested

    def wait_first(self) -> Connection | BaseException | None:
        """Block until the first connection opened or failed (``None``: cancelled first)."""
        self._first_known.wait()
        self._first_known.set()  # later callers need not wait
        return self.first

    @property
    def wakeable(self) -> bool:
        """Whether cancel() reaches the current phase at once (not with a custom adapter)."""
        return self.transport.reachable or self.state != CONNECTING

    # -- the thread ------------------------------------------------------------------------

    def _arm(self, waker: Callable[[], None]) -> bool:
        # Enter a blocking phase that ``waker`` ends; False if a cancel or restart is due.
        self._waker = waker
        if self.cancelled or self.restart_requested:
            self._waker = None
            return False
        return True

    def run(self) -> None:
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as exc:
            # Anything, even a bug, must reach the consumer rather than die with this thread.
            if not self.cancelled:
                error = exc
                self._log_error(exc)
        finally:
            self._waker = None
            if not self.cancelled:
                self._hand_over_held()
            self.transport.release()
            _discard(self.decoder)
            self.state = CLOSED
            if self.first is None and error is not None:
                self.first = error
            self._first_known.set()
            self.channel.finish(error)
            if self.cancelled:
                self._log(logging.DEBUG, "%s cancelled", self.name, reason="cancel")

    def _loop(self) -> None:
        conn = self._connect(0.0)
        while conn is not None:
            started = time.monotonic()
            failure: SSEError | None = None
            self.delivered = 0
            try:
                self._read(conn)
            except SSEError as exc:
                failure = exc
            finally:
                self._end(conn, started)
            up = time.monotonic() - started
            delivered = self.delivered
            self._log_end(failure, delivered, up)
            if self.cancelled:
                return
            policy = self.policy
            if self.restart_requested:
                self.backoff.reset()
                delay = 0.0
            else:
                if policy is None or not policy.should_retry(failure):
                    if failure is not None:
                        raise failure
                    return
                if delivered and (policy.reset_after is None or up >= policy.reset_after):
                    self.backoff.reset()
                delay = self._failed(failure)
            conn = self._connect(delay)

    def _end(self, conn: Connection, started: float) -> None:
        self._waker = None
        conn.close()
        self._tracker.close()
        self.connected_total += time.monotonic() - started
        self.connected_since = None
        # A reconnect starts a new stream: an unfinished event is dropped, never halved.
        _discard(self.decoder)

    def _failed(self, failure: BaseException | None) -> float:
        # One more consecutive failure: give up (raises), or wait and tell the consumer.
        what = "reconnection" if self.opened else "connection"
        try:
            delay = self.backoff.failed(failure, self.decoder.retry, what)
        except RetriesExhausted as exc:
            self._log(logging.WARNING, "%s %s", self.name, exc, attempt=exc.attempts)
            raise
        self._log(
            logging.DEBUG,
            "%s reconnecting in %.3g s (failure %d): %s",
            self.name,
            delay,
            self.backoff.failures,
            failure or "the server closed the stream",
            delay=delay,
            attempt=self.backoff.failures,
            last_event_id=self.decoder.last_event_id,
        )
        if self.opened:
            self.channel.put(Retrying(failure, delay), 0, 0)
        return delay

    def _connect(self, delay: float) -> Connection | None:
        # Wait, then attempt until a connection opens; None when the stream is over.
        while True:
            if delay > 0:
                self.state = WAITING
                signal = _Signal()
                if self._arm(signal.set):
                    signal.wait(delay)
                    self._waker = None
            if self.cancelled:
                return None
            self.restart_requested = False
            delay = 0.0
            self.state = CONNECTING
            tracker = Tracker()
            if not self._arm(tracker.interrupt):
                continue  # cancelled (checked at the top) or restarted: attempt again now
            last_id = self.decoder.last_event_id
            self._log(
                logging.DEBUG,
                "%s connecting: %s %s",
                self.name,
                self.method,
                self.url,
                method=self.method,
                # Reconnection attempts count from 1 after a stream ended, as in on_retry.
                attempt=self.backoff.failures if self.opened else self.backoff.failures + 1,
                last_event_id=last_id,
            )
            started = time.monotonic()
            try:
                conn = self.open_attempt(tracker, last_id)
            except SSEError as exc:
                self._waker = None
                tracker.close()
                self.transport.release()
                if self.cancelled or self.restart_requested:
                    continue
                policy = self.policy
                if (
                    policy is None
                    or (not self.opened and not policy.retry_first)
                    or not policy.should_retry(exc)
                ):
                    raise
                delay = self._failed(exc)
                continue
            self._tracker = tracker
            if not self._arm(_waker(tracker, conn)):
                # A cancel or restart landed while the connection was handed over.
                conn.close()
                tracker.close()
                continue
            self._log(
                logging.DEBUG,
                "%s connected: HTTP %d in %.1f ms",
                self.name,
                conn.status,
                (time.monotonic() - started) * 1000,
                status=conn.status,
                elapsed_ms=(time.monotonic() - started) * 1000,
            )
            if not self._hand_over_held():
                conn.close()
                tracker.close()
                return None
            first = not self.opened
            self.opened = True
            if conn.status == 204:
                # The server's way of saying "stop": no error, no further attempts.
                self._waker = None
                self.stopped_by_server = True
                self._log(logging.INFO, "%s the server answered 204: stream over", self.name)
                self.channel.put(Opened(conn) if first else Stopped(conn), 0, 0)
                if first:
                    self.connections += 1  # the first connection counts, whatever it said
                    self.first = conn
                    self._first_known.set()
                conn.close()
                tracker.close()
                return None
            self.connections += 1
            self.connected_since = time.monotonic()
            self.state = OPEN
            put_ok = self.channel.put(Opened(conn), 0, 0)
            if first:
                self.first = conn
                self._first_known.set()
            if not put_ok:
                self._end(conn, self.connected_since)
                return None
            return conn

    def _hand_over_held(self) -> bool:
        # The batch kept back by a restart() on a full queue, before anything newer.
        held, self._held = self._held, None
        return held is None or self.channel.put(*held)

    def _read(self, conn: Connection) -> None:
        # Read one connection to its end, counting the items delivered in self.delivered.
        decoder = self.decoder
        put = self.channel.put
        idle = self.idle_timeout
        last_line = time.monotonic()
        pending = 0
        sent_id = decoder.last_event_id
        try:
            for chunk in conn.chunks():
                if self.cancelled or self.restart_requested:
                    return
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
                    self.delivered += len(events)
                    sent_id = decoder.last_event_id
                    # Tagged only when a block with an id and no data follows the last event.
                    tag = None if getattr(events[-1], "id", None) == sent_id else sent_id
                    if not put(events, len(events), pending, tag, self._restart_due):
                        if not self.cancelled:
                            # restart() while the queue is full: these events go first on
                            # the new connection, after it has been opened at once.
                            self._held = (events, len(events), pending, tag)
                        return
                    pending = 0
                    if idle is not None:
                        # Time spent waiting for room in the queue is not the server's silence.
                        last_line = time.monotonic()
                elif decoder.last_event_id != sent_id:
                    # An id-only block: the consumer's last_event_id moves on once it has
                    # taken every event before it.
                    sent_id = decoder.last_event_id
                    if not put([], 0, 0, sent_id):
                        return
            if self.cancelled or self.restart_requested:
                return
            # A clean end completes a last line that formats such as NDJSON allow without LF.
            tail = decoder.close()
            if tail:
                self.delivered += len(tail)
                put(tail, len(tail), pending, decoder.last_event_id)
        except DecodeError as exc:
            # Items completed before the error (a limit, an invalid line) are delivered first.
            done = getattr(exc, "events", None)
            if done:
                self.delivered += len(done)
                put(list(done), len(done), pending, decoder.last_event_id)
            raise
        except ReadTimeout as exc:
            if self.cancelled or self.restart_requested:
                return
            if idle is not None and not isinstance(exc, IdleTimeout):
                raise IdleTimeout(f"no bytes within idle_timeout={idle} s") from exc
            raise
        except StreamError:
            if self.cancelled or self.restart_requested:
                return
            raise

    # -- telemetry -------------------------------------------------------------------------

    def _log(self, level: int, message: str, *args: object, **fields: Any) -> None:
        if log.isEnabledFor(level):
            fields.setdefault("url", self.url)
            log.log(level, message, *args, extra={"stream": self.name, **fields})

    def _log_end(self, failure: BaseException | None, delivered: int, up: float) -> None:
        if self.cancelled:
            reason = "cancel"
        elif self.restart_requested:
            reason = "restart"
        elif failure is None:
            reason = "clean end"
        else:
            reason = f"error: {failure}"
        self._log(
            logging.DEBUG,
            "%s connection ended (%s) after %.3g s: %d events",
            self.name,
            reason,
            up,
            delivered,
            reason="cancel" if self.cancelled else "error" if failure else "end",
            events=delivered,
            bytes=self.bytes,
            duration=up,
        )

    def _log_error(self, exc: BaseException) -> None:
        if isinstance(exc, RetriesExhausted):
            return  # logged where it was decided
        level = logging.WARNING
        status = getattr(exc, "status_code", None)
        if isinstance(exc, LimitExceeded):
            message = "%s decoder limit hit, the stream ends: %s"
        else:
            message = "%s the stream ends with an error: %s"
        self._log(level, message, self.name, exc, status=status, reason="error")
