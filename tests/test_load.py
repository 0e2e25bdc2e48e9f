"""Load: hundreds of concurrent streams in one process, and a soak of open / read / cancel cycles.

Resources are counted at the operating-system level: open file descriptors from
``/proc/self/fd``, threads from ``/proc/self/task`` (and sse_sync's named threads), resident
memory from ``/proc/self/statm``.  The scripted server lives for the whole test and is counted
in the baseline, so once every client stream is closed and the server has seen every
connection go (``wait_disconnect()``), both ends' sockets are closed and the counts must be
back to the baseline exactly: a leaked socket or thread on either side is a failure.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass

import pytest

import sse_sync
from sse_sync.testing import SSEServer, event, hold

pytestmark = [pytest.mark.network]

SOAK_SECONDS = float(os.environ.get("SSE_SYNC_SOAK_SECONDS", "0") or 0)
PAGE = os.sysconf("SC_PAGE_SIZE")
EVENTS = [event(f"payload-{i}", id=str(i)) for i in range(20)]
EXPECTED = [(f"payload-{i}", str(i)) for i in range(20)]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def library_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sse_sync-")]


@dataclass(frozen=True)
class Sample:
    rss: int
    threads: int
    fds: int


def settle(server: SSEServer) -> Sample:
    """Wait for the server to see every client go, collect garbage, then count."""
    server.wait_disconnect(timeout=20)
    gc.collect()
    return Sample(rss_bytes(), os_thread_count(), fd_count())


@pytest.fixture
def server(sse_server: SSEServer) -> SSEServer:
    sse_server.route("/s", [*EVENTS, hold()])
    return sse_server


def close_all(streams: list[sse_sync.EventStream]) -> None:
    for stream in streams:
        stream.cancel()  # non-blocking: every reader starts unwinding at once
    for stream in streams:
        stream.close()


@pytest.mark.timeout(60)
def test_200_concurrent_streams_all_delivered_then_nothing_left(server: SSEServer) -> None:
    before = settle(server)
    assert library_threads() == []
    streams: list[sse_sync.EventStream] = []
    try:
        for _ in range(200):
            streams.append(sse_sync.connect(server.url_for("/s"), retry=None))
        assert server.connections_open == 200
        assert len(library_threads()) == 200  # one reader each, all alive together
        # Round-robin: every stream is consumed a little at a time while all are open.
        got: list[list[tuple[str, str]]] = [[] for _ in streams]
        for _ in range(len(EXPECTED)):
            for i, stream in enumerate(streams):
                ev = next(stream)
                got[i].append((ev.data, ev.id))
        assert all(g == EXPECTED for g in got)
        assert all(s.stats().events == 20 for s in streams)
    finally:
        close_all(streams)
    after = settle(server)
    assert library_threads() == []
    assert after.fds == before.fds
    assert after.threads == before.threads


@pytest.mark.timeout(60)
def test_500_streams_opened_and_cancelled_in_batches_leak_nothing(server: SSEServer) -> None:
    before = settle(server)
    for _ in range(5):
        batch: list[sse_sync.EventStream] = []
        try:
            for _ in range(100):
                batch.append(sse_sync.connect(server.url_for("/s"), retry=None))
            for stream in batch:
                assert next(stream).data == "payload-0"
        finally:
            close_all(batch)
        assert all(s.cancelled for s in batch)
        assert library_threads() == []
    after = settle(server)
    assert after.fds == before.fds
    assert after.threads == before.threads


@pytest.mark.timeout(60)
def test_dropped_unclosed_streams_are_reclaimed(server: SSEServer) -> None:
    # Streams the caller forgets (never closed) are cancelled when collected.
    before = settle(server)
    for _ in range(50):
        stream = sse_sync.connect(server.url_for("/s"), retry=None)
        assert next(stream).data == "payload-0"
        del stream
    gc.collect()
    for thread in threading.enumerate():  # the finalizers cancelled them: they unwind alone
        if thread.name.startswith("sse_sync-"):
            thread.join(5)
    assert library_threads() == []
    after = settle(server)
    assert after.fds == before.fds
    assert after.threads == before.threads


def cycle(width: int) -> Sample:
    """Open ``width`` streams on a fresh server, read from each, close them all, stop the
    server; then count.  The server records every request it serves, so it must not outlive
    the cycle, or its records would be counted as the client's memory."""
    with SSEServer() as server:
        server.route("/s", [*EVENTS, hold()])
        streams: list[sse_sync.EventStream] = []
        try:
            for _ in range(width):
                streams.append(sse_sync.connect(server.url_for("/s"), retry=None))
            for stream in streams:
                got = [(e.data, e.id) for e in (next(stream) for _ in range(5))]
                assert got == EXPECTED[:5]
        finally:
            close_all(streams)
        server.wait_disconnect(timeout=20)
    gc.collect()
    return Sample(rss_bytes(), os_thread_count(), fd_count())


@pytest.mark.soak
@pytest.mark.timeout(60 + SOAK_SECONDS)
def test_soak_open_read_cancel_stays_flat() -> None:
    # CI runs soak tests too, so by default this runs for 3 s; SSE_SYNC_SOAK_SECONDS says more.
    seconds = SOAK_SECONDS or 3.0
    for _ in range(3):  # warm up: pools, caches and allocator arenas reach their working size
        initial = cycle(20)
    samples = [initial]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(cycle(20))
    final = samples[-1]
    assert len(samples) > 3
    assert library_threads() == []
    assert final.fds == initial.fds, samples
    assert final.threads == initial.threads, samples
    assert max(s.fds for s in samples) == initial.fds  # flat, not just back at the end
    assert max(s.threads for s in samples) == initial.threads
    # Memory: flat within allocator noise.  A leak of one response (with its buffers) per
    # stream would add 20 of them per cycle; one reader stack per stream far more.
    assert final.rss <= initial.rss + 16 * (1 << 20), [s.rss >> 20 for s in samples]
