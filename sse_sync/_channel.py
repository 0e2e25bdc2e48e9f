"""A bounded, batched hand-off from one producer thread to one consumer.

The producer appends a whole batch (the events of one network read) and wakes the consumer only
if it is waiting; the consumer takes one batch at a time.  The bound is in items and in bytes,
and it holds until the consumer has *finished* a batch (``release``), not merely taken it: a
producer over it blocks, so a slow consumer slows the socket instead of growing memory.  One
batch always fits, so the most held at once is the bound plus one batch (one network read).

No lock is taken anywhere.  Each counter has one writer (the producer counts what it put, the
consumer what it released), ``deque`` appends and pops are atomic, and a side that is about to
block first says so in a flag, then looks again, then sleeps on a ``SimpleQueue``: the other side
sets its state before it reads that flag, so a wake-up cannot be lost.  ``SimpleQueue.put`` never
blocks and may be called from a finalizer, so :meth:`cancel` is safe from any thread at any
moment, even from garbage collection running inside the producer or the consumer.  A
``SimpleQueue`` wakes a waiting thread in C, faster than a ``Condition`` (which allocates a lock
per wait).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Generic, TypeVar

__all__ = ("END", "Channel")

T = TypeVar("T")

END = (None, 0, 0, None)
"""What :meth:`Channel.take` returns once the producer has finished and everything was taken."""

Entry = tuple[object, int, int, "str | None"]


class Channel(Generic[T]):
    """Batches (lists of ``T``) and marker objects, in order, with backpressure.

    Each entry is ``(batch, items, bytes, tag)``; the tag travels with the batch untouched.
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._entries: deque[Entry] = deque()
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._put_items = 0  # written by the producer only
        self._put_bytes = 0
        self._done_items = 0  # written by the consumer only
        self._done_bytes = 0
        self._to_consumer: SimpleQueue[None] = SimpleQueue()
        self._to_producer: SimpleQueue[None] = SimpleQueue()
        self._consumer_waiting = False
        self._producer_waiting = False
        self.finished = False
        self.cancelled = False
        self.error: BaseException | None = None

    def _full(self) -> bool:
        return (
            self._put_items - self._done_items >= self._max_items
            or self._put_bytes - self._done_bytes >= self._max_bytes
        )

    def put(
        self,
        batch: object,
        nitems: int,
        nbytes: int,
        tag: str | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> bool:
        """Append a batch, waiting while the channel is full; ``False`` once cancelled, or
        (without appending) once ``give_up()`` is true when :meth:`nudge` wakes the wait.

        A batch always fits into an empty channel, so one oversized batch cannot deadlock.
        """
        while self._full() and not self.cancelled:
            if give_up is not None and give_up():
                return False
            self._producer_waiting = True
            if self._full() and not self.cancelled:
                self._to_producer.get()
            self._producer_waiting = False
        if self.cancelled:
            return False
        self._put_items += nitems
        self._put_bytes += nbytes
        self._entries.append((batch, nitems, nbytes, tag))
        if self._consumer_waiting:
            self._to_consumer.put(None)
        return True

    def finish(self, error: BaseException | None = None) -> None:
        """The producer is done; the consumer sees ``error`` (if any) after the pending batches."""
        if not self.finished:
            self.error = error
            self.finished = True
        self._to_consumer.put(None)

    def nudge(self) -> None:
        """Wake a producer waiting for room, so that it asks its ``give_up`` again."""
        self._to_producer.put(None)

    def cancel(self) -> None:
        """Drop what is pending and wake both sides; later ``put`` calls return ``False``.

        Takes no lock and never blocks: safe from a finalizer or a signal handler."""
        self.cancelled = True
        self._entries.clear()
        self._to_consumer.put(None)
        self._to_producer.put(None)

    def take(self, timeout: float | None = None) -> Entry | None:
        """The next ``(batch, items, bytes, tag)``; :data:`END` at the end of the stream (or
        once cancelled), ``None`` on timeout.  It counts against the bound until
        :meth:`release`."""
        entries = self._entries
        if entries and not self.cancelled:
            return entries.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = self._to_consumer.get
        self._consumer_waiting = True
        try:
            while True:
                if self.cancelled:
                    return END
                if entries:
                    return entries.popleft()
                if self.finished:
                    # The producer appends its last batch before it finishes: look once more.
                    return entries.popleft() if entries else END
                if deadline is None:
                    wait()
                    continue
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise Empty
                    wait(timeout=left)
                except Empty:
                    if not entries and not self.finished and not self.cancelled:
                        return None
        finally:
            self._consumer_waiting = False

    def release(self, nitems: int, nbytes: int) -> None:
        """The consumer is done with a batch of this size: make room for the producer."""
        self._done_items += nitems
        self._done_bytes += nbytes
        if self._producer_waiting:
            self._to_producer.put(None)

    def pending(self) -> int:
        """How many items are held: waiting, or taken and not yet released (0 once cancelled)."""
        if self.cancelled:
            return 0
        return self._put_items - self._done_items
