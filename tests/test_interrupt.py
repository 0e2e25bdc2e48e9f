"""KeyboardInterrupt (Ctrl-C) while consuming a stream: the reader thread stops, the socket closes.

A script (docs/examples/script_interrupt.py) interrupted with SIGINT in a subprocess, and the
same in-process: an interrupt raised in the loop body, one delivered as a signal while the
consumer waits for the next event, and a stream dropped without ``with`` after an interrupt.
"""

from __future__ import annotations

import gc
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _net import client_sockets

import sse_sync
from sse_sync.testing import SSEServer, event, hold, wait_for

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "examples" / "script_interrupt.py"
NO_RETRY: dict[str, Any] = {"retry": None}


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """Python's own SIGINT handler in this process while the test runs.

    A runner started in the background (``cmd &`` in a script, nohup) may ignore SIGINT, and
    children inherit that: then neither a signal to this process nor one to a child would raise
    ``KeyboardInterrupt``.  Tests run in the main thread, where handlers can be set.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def new_readers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("sse_sync-") and t.name.endswith("-reader") and t not in before
    ]


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line ``proc`` writes to stdout, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no line from the script within {timeout} s: {data!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError(f"the script ended before printing a line: {data!r}")
            data += chunk
    return data


# -- a script, interrupted by a real SIGINT --------------------------------------------------


@pytest.mark.usefixtures("sigint_raises")
def test_sigint_stops_the_script_promptly(server: SSEServer) -> None:
    server.route("/s", [event("first", id="1"), hold()])
    # The checkout's sse_sync, whether or not it is installed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), server.url_for("/s")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        # Interpreter start and imports may be slow on a loaded machine; the interrupt is not.
        assert read_line(proc, timeout=20) == b"1 message: first\n"
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert elapsed < 5, f"the script took {elapsed:.1f} s to exit after SIGINT"
    # Not caught by the script: the traceback, and death by SIGINT as Python reports it.
    assert stderr.decode().rstrip().endswith("KeyboardInterrupt"), stderr.decode()
    assert proc.returncode == -signal.SIGINT
    server.wait_disconnect()
    assert server.client_disconnects == 1


# -- in-process ------------------------------------------------------------------------------


def raise_interrupt(stream: sse_sync.EventStream) -> None:
    raise KeyboardInterrupt


class SignalWhenWaiting:
    """Per event, start a thread that sends SIGINT to the main thread once it is blocked
    waiting for the next event (its stack is inside ``Channel.take``): nothing else tells
    that it has got there, so the thread looks at the main thread's frames."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.late = False

    def __call__(self, stream: sse_sync.EventStream) -> None:
        thread = threading.Thread(target=self._run, name=f"test-interrupter-{len(self.threads)}")
        self.threads.append(thread)
        thread.start()

    def _run(self) -> None:
        main = threading.main_thread().ident
        assert main is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(main)
            names = []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if "take" in names:
                break
            time.sleep(0.001)
        else:
            self.late = True  # interrupt anyway, so that the test fails instead of hanging
        signal.pthread_kill(main, signal.SIGINT)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()
        assert not self.late, "the main thread never waited for an event"


def consume(
    stream: sse_sync.EventStream, interrupt: Callable[[sse_sync.EventStream], None]
) -> None:
    for _ in stream:
        interrupt(stream)


def consume_in_with(
    url: str,
    interrupt: Callable[[sse_sync.EventStream], None],
    streams: list[sse_sync.EventStream],
    readers: list[threading.Thread],
) -> None:
    """Iterate ``url`` inside ``with connect(...)``, calling ``interrupt`` for each event."""
    before = set(threading.enumerate())
    with sse_sync.connect(url, **NO_RETRY) as stream:
        streams.append(stream)
        readers.extend(new_readers(before))
        assert len(readers) == 1
        assert readers[0].is_alive()
        consume(stream, interrupt)


def test_interrupt_in_loop_body_closes_stream_in_with(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    streams: list[sse_sync.EventStream] = []
    readers: list[threading.Thread] = []
    with pytest.raises(KeyboardInterrupt):
        consume_in_with(server.url_for("/s"), raise_interrupt, streams, readers)
    # close() joined the reader before the interrupt left the with block.
    assert not readers[0].is_alive()
    assert streams[0].cancelled
    assert client_sockets(server.port) == 0
    server.wait_disconnect()
    assert server.client_disconnects == 1


@pytest.mark.usefixtures("sigint_raises")
def test_sigint_while_waiting_for_next_event_closes_stream_in_with(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    readers: list[threading.Thread] = []
    interrupt = SignalWhenWaiting()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            consume_in_with(server.url_for("/s"), interrupt, [], readers)
    finally:
        interrupt.join()
    # The interrupt landed in the wait for the next event, not in the loop body.
    frames = [f.name for f in traceback.extract_tb(caught.value.__traceback__)]
    assert "take" in frames, frames
    assert not readers[0].is_alive()
    assert client_sockets(server.port) == 0
    server.wait_disconnect()
    assert server.client_disconnects == 1


def test_stream_dropped_after_interrupt_is_cancelled_when_collected(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    before = set(threading.enumerate())
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    readers = new_readers(before)
    assert len(readers) == 1
    with pytest.raises(KeyboardInterrupt):
        consume(stream, raise_interrupt)
    assert readers[0].is_alive()  # nothing closed it: it waits on the silent server
    # The stream's generators refer back to it, so it is freed by the collector, not at del.
    del stream
    gc.collect()
    readers[0].join(5)
    assert not readers[0].is_alive(), "the weakref finalizer did not cancel a dropped stream"
    server.wait_disconnect()
    assert client_sockets(server.port) == 0


@pytest.mark.usefixtures("sigint_raises")
def test_stream_usable_or_cancelled_after_interrupt_while_waiting(server: SSEServer) -> None:
    gate = threading.Event()
    server.route("/s", [event("a"), wait_for(gate), event("b"), hold()])
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    interrupt = SignalWhenWaiting()
    try:
        with pytest.raises(KeyboardInterrupt):
            consume(stream, interrupt)
        gate.set()
        # The interrupt ended the stream (documented): it says so, and its reader is gone.
        assert stream.cancelled
        assert stream.done
        assert stream.next_event(timeout=0.1) is None
    finally:
        gate.set()
        interrupt.join()
        stream.close()
    server.wait_disconnect()


# -- without `with`: where the interrupt lands decides (docs/guide/jupyter.md) ---------------


@pytest.mark.usefixtures("sigint_raises")
def test_without_with_an_interrupt_while_waiting_cancels_the_stream(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    before = set(threading.enumerate())
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    readers = new_readers(before)
    interrupt = SignalWhenWaiting()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            consume(stream, interrupt)
        frames = [f.name for f in traceback.extract_tb(caught.value.__traceback__)]
        assert "take" in frames, frames
        # Nothing closed the stream, and `stream` still refers to it: the interrupt ended it.
        assert stream.cancelled
        readers[0].join(5)
        assert not readers[0].is_alive()
        server.wait_disconnect()
        assert client_sockets(server.port) == 0
    finally:
        interrupt.join()
        stream.close()


def test_without_with_an_interrupt_in_the_loop_body_leaves_the_stream_open(
    server: SSEServer,
) -> None:
    gate = threading.Event()
    server.route("/s", [event("a"), wait_for(gate), event("b"), hold()])
    before = set(threading.enumerate())
    stream = sse_sync.connect(server.url_for("/s"), **NO_RETRY)
    readers = new_readers(before)
    try:
        with pytest.raises(KeyboardInterrupt):
            consume(stream, raise_interrupt)
        # The interrupt came from the consumer's own code: the stream is untouched ...
        assert not stream.cancelled
        assert readers[0].is_alive()
        assert client_sockets(server.port) == 1
        assert server.client_disconnects == 0
        # ... and goes on delivering until it is closed.
        gate.set()
        after = stream.next_event(timeout=10)
        assert after is not None
        assert after.data == "b"
    finally:
        gate.set()
        stream.close()
    assert not readers[0].is_alive()
    server.wait_disconnect()
    assert client_sockets(server.port) == 0
