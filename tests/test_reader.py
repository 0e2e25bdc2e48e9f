"""Unit tests of the reader's state machine (``sse_sync._reader.Reader``) with fake connections.

No socket: each attempt returns a scripted connection (or raises), so a failure here points at
the reader's loop itself: what it hands the consumer, what it sends on reconnection, how it
paces attempts, and how cancel() and restart() reach each phase.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest

from sse_sync import Event, RetryPolicy, SSEDecoder
from sse_sync._channel import END, Channel
from sse_sync._dispatch import Retrying
from sse_sync._errors import ConnectError, HTTPStatusError, StreamError
from sse_sync._reader import CLOSED, OPEN, WAITING, Reader
from sse_sync._transport import Connection, Tracker, Transport

pytestmark = [pytest.mark.timeout(10)]

FAST = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)


class FakeConnection:
    """A response whose body is ``pieces``, then a clean end, an error, or a wait to be woken."""

    def __init__(
        self, pieces: Sequence[bytes] = (), status: int = 200, then: object = None
    ) -> None:
        self.pieces = pieces
        self.status = status
        self.headers: dict[str, str] = {}
        self.url = "http://fake/"
        self.then = then
        self.woken = threading.Event()
        self.reading = threading.Event()
        self.closed = False

    def chunks(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.then == "block":
            self.reading.set()
            self.woken.wait()
        elif isinstance(self.then, BaseException):
            raise self.then

    def interrupt(self) -> None:
        self.woken.set()

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    reachable = True

    def __init__(self) -> None:
        self.released = 0

    def release(self) -> None:
        self.released += 1


class Script:
    """The outcomes of successive attempts, and the Last-Event-ID each one was sent with."""

    def __init__(self, *outcomes: FakeConnection | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[str] = []
        self.attempted = threading.Semaphore(0)

    def __call__(self, tracker: Tracker, last_id: str) -> Connection:
        self.sent.append(last_id)
        self.attempted.release()
        outcome = self.outcomes.pop(0) if self.outcomes else FakeConnection(then="block")
        if isinstance(outcome, BaseException):
            raise outcome
        return cast(Connection, outcome)


def make_reader(script: Script, policy: RetryPolicy | None = FAST, max_queue: int = 100) -> Reader:
    return Reader(
        name="sse_sync-test",
        transport=cast(Transport, FakeTransport()),
        open_attempt=script,
        decoder=SSEDecoder(),
        channel=Channel(max_queue, 1 << 20),
        idle_timeout=None,
        comments=False,
        policy=policy,
        method="GET",
        url="http://fake/",
    )


def drain(reader: Reader) -> list[Any]:
    """What the consumer gets until the end: event data, and marker names."""
    got: list[Any] = []
    while (entry := reader.channel.take(5)) not in (END, None):
        assert entry is not None
        batch, items, size, _ = entry
        if isinstance(batch, list):
            got.extend(e.data for e in batch if isinstance(e, Event))
            reader.channel.release(items, size)
        else:
            got.append(type(batch).__name__)
    return got


def test_reads_reconnects_with_the_last_id_and_stops_at_204() -> None:
    script = Script(
        FakeConnection([b"id: 1\ndata: a\n\n"]),
        FakeConnection([b"data: b\n", b"\n"]),
        FakeConnection(status=204),
    )
    reader = make_reader(script)
    reader.thread.start()
    assert isinstance(reader.wait_first(), FakeConnection)
    got = drain(reader)
    reader.thread.join(5)
    assert got == ["Opened", "a", "Retrying", "Opened", "b", "Retrying", "Stopped"]
    assert script.sent == ["", "1", "1"]
    assert reader.state == CLOSED
    assert reader.channel.error is None
    assert reader.connections == 2


def test_a_connection_that_delivered_resets_the_backoff_even_when_it_breaks() -> None:
    policy = RetryPolicy(initial_delay=0.001, multiplier=10, jitter=0, max_attempts=3)
    broken = StreamError("reset")
    script = Script(
        *(FakeConnection([b"data: x\n\n"], then=broken) for _ in range(4)),
        FakeConnection(status=204),
    )
    reader = make_reader(script, policy)
    reader.thread.start()
    delays: list[float] = []
    while (entry := reader.channel.take(5)) not in (END, None):
        assert entry is not None
        if isinstance(entry[0], Retrying):
            delays.append(entry[0].delay)
        elif isinstance(entry[0], list):
            reader.channel.release(entry[1], entry[2])
    assert delays == [0.001] * 4  # never multiplied: each connection delivered an event
    assert reader.channel.error is None


def test_failed_attempts_grow_and_give_up() -> None:
    policy = RetryPolicy(initial_delay=0.001, multiplier=2, jitter=0, min_delay=0, max_attempts=2)
    script = Script(FakeConnection([b"data: x\n\n"]), ConnectError("no"), ConnectError("no"))
    reader = make_reader(script, policy)
    reader.thread.start()
    assert drain(reader) == ["Opened", "x", "Retrying", "Retrying"]
    assert type(reader.channel.error).__name__ == "RetriesExhausted"


def test_the_first_attempt_fails_fast_and_is_reported() -> None:
    refused = HTTPStatusError("HTTP 401", status_code=401)
    reader = make_reader(Script(refused))
    reader.thread.start()
    assert reader.wait_first() is refused
    reader.thread.join(5)
    assert not reader.thread.is_alive()


@pytest.mark.parametrize("phase", ["open", "waiting"])
def test_cancel_wakes_the_phase_it_lands_in(phase: str) -> None:
    first = FakeConnection([b"data: a\n\n"], then="block" if phase == "open" else None)
    slow = RetryPolicy(initial_delay=60, jitter=0)
    reader = make_reader(Script(first), slow)
    reader.thread.start()
    reader.wait_first()
    if phase == "open":
        assert first.reading.wait(5)
        assert reader.state == OPEN
    else:
        assert reader.channel.take(5) is not None  # Opened
        while reader.state != WAITING:  # the reader is about to wait 60 s
            assert reader.thread.is_alive()
            reader.thread.join(0.001)
    reader.cancel()
    reader.thread.join(1)
    assert not reader.thread.is_alive()
    assert first.closed


def test_restart_drops_the_connection_and_attempts_again_at_once() -> None:
    first = FakeConnection([b"id: 3\ndata: a\n\n"], then="block")
    script = Script(first, FakeConnection([b"data: b\n\n"], then="block"))
    reader = make_reader(script, RetryPolicy(initial_delay=60, jitter=0))
    reader.thread.start()
    reader.wait_first()
    assert first.reading.wait(5)
    reader.restart()
    assert script.attempted.acquire(timeout=5)  # the first attempt
    assert script.attempted.acquire(timeout=5)  # the new one, without the 60 s wait
    assert first.closed
    assert script.sent == ["", "3"]
    reader.cancel()
    reader.thread.join(1)
    assert not reader.thread.is_alive()


def test_a_cancel_during_the_hand_over_closes_the_new_connection() -> None:
    # A full queue: the reader waits to hand the new connection over when cancel() lands.
    first = FakeConnection([b"data: a\n\ndata: b\n\n"], then="block")
    second = FakeConnection(then="block")
    script = Script(first, second)
    reader = make_reader(script, max_queue=1)
    reader.thread.start()
    reader.wait_first()
    assert first.reading.wait(5)  # a and b fill the queue
    reader.restart()
    assert script.attempted.acquire(timeout=5)
    assert script.attempted.acquire(timeout=5)  # the second connection is being handed over
    reader.cancel()
    reader.thread.join(1)
    assert not reader.thread.is_alive()
    assert second.closed
    assert not second.reading.is_set()  # never read after the cancel


def test_restart_on_a_full_queue_opens_at_once_and_keeps_the_events_in_hand() -> None:
    first = FakeConnection([b"id: 1\ndata: a\n\n", b"id: 2\ndata: b\n\n", b"id: 3\ndata: c\n\n"])
    first.then = "block"
    script = Script(first, FakeConnection([b"data: d\n\n"], then="block"))
    reader = make_reader(script, RetryPolicy(initial_delay=60, jitter=0), max_queue=1)
    reader.thread.start()
    reader.wait_first()
    assert script.attempted.acquire(timeout=5)
    # a is queued; the reader holds b and waits for room.  Nothing is consumed.
    while "put" not in {f.f_code.co_name for f in _frames(reader.thread)}:
        reader.thread.join(0.001)
    reader.restart()
    assert script.attempted.acquire(timeout=5)  # the new request went out at once
    assert script.sent == ["", "2"]  # resumes after b, which the reader holds
    got: list[Any] = []
    while len(got) < 5:
        entry = reader.channel.take(5)
        assert entry is not None
        batch, items, size, _ = entry
        if isinstance(batch, list):
            got.extend(e.data for e in batch)
            reader.channel.release(items, size)
        else:
            got.append(type(batch).__name__)
    # c was never read: the old connection was dropped, and the server resends it after "2".
    assert got == ["Opened", "a", "b", "Opened", "d"]
    reader.cancel()
    reader.thread.join(1)
    assert not reader.thread.is_alive()


def _frames(thread: threading.Thread) -> Iterator[Any]:
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        yield frame
        frame = frame.f_back
