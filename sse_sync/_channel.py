"""A bounded, batched hand-off from one producer thread to one consumer.

``queue.Queue`` takes a lock and may wake a thread for every item, which costs more than
decoding the event.  Here the producer appends a whole batch (the events of one network read)
and wakes the consumer only if it is waiting; the consumer takes every pending batch at once.
The bound is in items and in bytes, and it holds until the consumer has *finished* a batch
(``release``), not merely taken it: a producer over it blocks, so a slow consumer slows the
socket instead of growing memory.  One batch always fits, so the most held at once is the
bound plus one batch (one network read).  ``cancel()`` wakes both sides.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

__all__ = ("Channel",)

T = TypeVar("T")


class Channel(Generic[T]):
    """Batches of ``T`` (lists) and marker objects, in order, with backpressure."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._writable = threading.Condition(self._lock)
        self._batches: deque[tuple[list[T] | object, int, int]] = deque()
        self._items = 0
        self._bytes = 0
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._consumer_waiting = False
        self._producer_waiting = False
        self.finished = False
        self.cancelled = False
        self.error: BaseException | None = None

    def put(self, batch: list[T] | object, nitems: int, nbytes: int) -> bool:
        """Append a batch, waiting while the channel is full; ``False`` once cancelled.

        A batch always fits into an empty channel, so one oversized batch cannot deadlock.
        """
        with self._lock:
            while (
                self._items >= self._max_items or self._bytes >= self._max_bytes
            ) and not self.cancelled:
                self._producer_waiting = True
                self._writable.wait()
            self._producer_waiting = False
            if self.cancelled:
                return False
            self._batches.append((batch, nitems, nbytes))
            self._items += nitems
            self._bytes += nbytes
            if self._consumer_waiting:
                self._readable.notify()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        """The producer is done; the consumer sees ``error`` (if any) after the pending batches."""
        with self._lock:
            if not self.finished:
                self.finished = True
                self.error = error
            self._readable.notify_all()

    def cancel(self) -> None:
        """Drop what is pending and wake both sides; later ``put`` calls return ``False``."""
        with self._lock:
            self.cancelled = True
            self._batches.clear()
            self._readable.notify_all()
            self._writable.notify_all()

    def take(self, timeout: float | None = None) -> deque[tuple[list[T] | object, int, int]] | None:
        """Every pending ``(batch, items, bytes)``, in order: empty at the end of the stream,
        ``None`` on timeout.  They still count against the bound until :meth:`release`."""
        with self._lock:
            if not self._batches and not self.finished and not self.cancelled:
                self._consumer_waiting = True
                try:
                    self._readable.wait_for(
                        lambda: self._batches or self.finished or self.cancelled, timeout
                    )
                finally:
                    self._consumer_waiting = False
                if not self._batches and not self.finished and not self.cancelled:
                    return None
            batches = self._batches
            self._batches = deque()
            return batches

    def release(self, nitems: int, nbytes: int) -> None:
        """The consumer is done with a batch of this size: make room for the producer."""
        with self._lock:
            self._items -= nitems
            self._bytes -= nbytes
            if self._producer_waiting:
                self._writable.notify()

    def pending(self) -> int:
        """How many items are held: waiting, or taken and not yet released."""
        with self._lock:
            return self._items
