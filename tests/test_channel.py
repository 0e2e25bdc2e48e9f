"""Unit tests of the reader-to-consumer hand-off (``sse_sync._channel.Channel``), no network.

A failure here points at the channel itself: ordering, the bound in items and bytes, the end
of the stream, and cancellation waking whichever side is blocked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _net import BackgroundCall

from sse_sync._channel import END, Channel

BLOCKED = 0.05  # how long a blocked side is watched to see that it stays blocked

Starter = Callable[[Callable[[], Any]], BackgroundCall]


@pytest.fixture
def background() -> Iterator[Starter]:
    """Start a call in a thread; every thread is joined when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda fn: stack.enter_context(BackgroundCall(fn, name="test-channel-side"))


Entry = tuple[object, int, int]


def shown(entry: object) -> list[Entry]:
    """An entry taken as ``(batch, items, bytes)`` in a list; the end as ``[]``."""
    assert entry is not None, "take() timed out"
    if entry == END:
        return []
    assert isinstance(entry, tuple)
    return [(entry[0], entry[1], entry[2])]


def entries(channel: Channel[str], timeout: float | None = 0) -> list[Entry]:
    """Every entry that can be taken now, in order (``[]`` at the end of the stream)."""
    taken = shown(channel.take(timeout))
    while taken and (entry := channel.take(0)) is not None and entry != END:
        taken += shown(entry)
    return taken


# -- order and accounting ------------------------------------------------------------------------


def test_batches_and_markers_come_out_in_order_with_their_sizes() -> None:
    channel: Channel[str] = Channel(max_items=100, max_bytes=1000)
    marker = object()
    assert channel.put(["a", "b"], 2, 10)
    assert channel.put(marker, 0, 0)
    assert channel.put(["c"], 1, 5)
    assert entries(channel) == [(["a", "b"], 2, 10), (marker, 0, 0), (["c"], 1, 5)]
    assert channel.take(0) is None  # taken means gone, even before release


def test_take_times_out_with_none_when_nothing_is_pending() -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    assert channel.take(0) is None
    assert channel.take(0.01) is None


def test_taken_items_count_until_released() -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    channel.put(["a", "b"], 2, 10)
    channel.put(["c"], 1, 5)
    assert channel.pending() == 3
    entries(channel)
    assert channel.pending() == 3
    channel.release(2, 10)
    assert channel.pending() == 1
    channel.release(1, 5)
    assert channel.pending() == 0


# -- the end of the stream -----------------------------------------------------------------------


def test_finish_lets_pending_batches_out_first_then_reads_as_the_end() -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    channel.put(["a"], 1, 1)
    error = ValueError("broken")
    channel.finish(error)
    assert channel.finished
    assert entries(channel) == [(["a"], 1, 1)]
    assert entries(channel, timeout=None) == []  # the end: empty, not None, without waiting
    assert channel.error is error


def test_finish_keeps_the_first_error() -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    first = ValueError("first")
    channel.finish(first)
    channel.finish(RuntimeError("second"))
    channel.finish(None)
    assert channel.error is first


def test_finish_wakes_a_waiting_consumer(background: Starter) -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    consumer = background(lambda: channel.take(None))
    assert not consumer.done.wait(BLOCKED)
    channel.finish(None)
    assert shown(consumer.join()) == []


def test_put_wakes_a_waiting_consumer(background: Starter) -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    consumer = background(lambda: channel.take(None))
    assert not consumer.done.wait(BLOCKED)
    channel.put(["x"], 1, 1)
    assert shown(consumer.join()) == [(["x"], 1, 1)]


# -- the bound -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_items", "max_bytes", "first", "second"),
    [
        pytest.param(2, 1000, (2, 2), (1, 1), id="items"),
        pytest.param(1000, 10, (1, 10), (1, 1), id="bytes"),
    ],
)
def test_a_producer_over_the_bound_waits_until_the_consumer_releases(
    background: Starter,
    max_items: int,
    max_bytes: int,
    first: tuple[int, int],
    second: tuple[int, int],
) -> None:
    channel: Channel[str] = Channel(max_items, max_bytes)
    assert channel.put(["a"] * first[0], *first)
    producer = background(lambda: channel.put(["b"], *second))
    assert not producer.done.wait(BLOCKED), "put() did not wait for room"
    assert [n for _, n, _ in entries(channel)] == [first[0]]
    # Taking is not enough: the bound holds until the consumer has finished the batch.
    assert not producer.done.wait(BLOCKED), "put() went on before release()"
    channel.release(*first)
    assert producer.join() is True
    assert entries(channel) == [(["b"], *second)]


def test_one_oversized_batch_fits_into_an_empty_channel() -> None:
    channel: Channel[str] = Channel(max_items=1, max_bytes=1)
    assert channel.put(["x"] * 50, 50, 5000)  # returns at once: no deadlock on a big read
    assert channel.pending() == 50


# -- cancellation --------------------------------------------------------------------------------


def test_cancel_wakes_a_blocked_producer_whose_put_then_fails(background: Starter) -> None:
    channel: Channel[str] = Channel(max_items=1, max_bytes=100)
    channel.put(["a"], 1, 1)
    producer = background(lambda: channel.put(["b"], 1, 1))
    assert not producer.done.wait(BLOCKED)
    channel.cancel()
    assert producer.join() is False


def test_cancel_wakes_a_waiting_consumer_with_the_end(background: Starter) -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    consumer = background(lambda: channel.take(None))
    assert not consumer.done.wait(BLOCKED)
    channel.cancel()
    assert shown(consumer.join()) == []


def test_cancel_drops_pending_batches_and_refuses_new_ones() -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    channel.put(["a"], 1, 1)
    channel.cancel()
    assert channel.cancelled
    assert entries(channel) == []
    assert channel.put(["b"], 1, 1) is False
    assert entries(channel) == []


def test_a_tag_travels_with_its_batch() -> None:
    channel: Channel[str] = Channel(max_items=10, max_bytes=100)
    channel.put(["a"], 1, 1, "7")
    channel.put([], 0, 0, "8")
    assert channel.take(0) == (["a"], 1, 1, "7")
    assert channel.take(0) == ([], 0, 0, "8")


def test_cancel_takes_no_lock_and_may_run_inside_either_side() -> None:
    # As a finalizer would: cancel() from the producer's own thread, between its checks.
    channel: Channel[str] = Channel(max_items=1, max_bytes=100)
    channel.put(["a"], 1, 1)
    channel.cancel()
    assert channel.put(["b"], 1, 1) is False  # returns at once, no wait for room
    assert channel.take(None) == END
    assert channel.pending() == 0
