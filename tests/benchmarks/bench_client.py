"""Client benchmark: sse_sync against the Python SSE client peers, over real local HTTP.

Run from the repository root (the peers come with ``pip install -e '.[bench]'``)::

    python -m tests.benchmarks.bench_client [--quick] [--repeat N] [--only MEASUREMENT]

A server in its own process (``_bench_server.py``: 127.0.0.1, TCP_NODELAY, pre-built payloads
written with large ``sendall`` calls) streams to each contender, with HTTP/1.1 chunked framing
(one chunk per event) and close-delimited framing (``Connection: close``, no length).  Measured:
throughput (a token stream and big events), delivery latency (one event every 5 ms), cancel
latency (a stream gone silent, cancelled from another thread) and peak memory with a slow
consumer (with the bytes the server managed to send, to show backpressure).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from . import _bench_server as payloads

ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = Path(payloads.__file__).resolve()
FRAMINGS: tuple[str, ...] = ("chunked", "close")
MEASUREMENTS: tuple[str, ...] = ("tokens", "big", "latency", "cancel", "memory")
MB = 1e6
CELL_BUDGET = 20.0  # seconds of runs per contender and throughput workload, see bench_throughput


@dataclass
class Scale:
    """Workload sizes for one mode (full run, --quick, or the pytest smoke test)."""

    tokens: int  # events in the token stream
    big_events: int
    big_size: int  # bytes of data per big event
    stream_timeout: float  # seconds one throughput run may take before it counts as a hang
    latency_events: int
    latency_interval_ms: float
    latency_hold_ms: float  # silence after the last event, before the stream ends
    latency_rounds: int  # runs per contender and framing, samples pooled
    cancel_repeat: int
    hang_after: float  # a consumer still blocked this long after cancel is a hang
    flood_total: int  # body bytes the flood server would send
    flood_size: int  # bytes of data per flood event
    slow_events: int  # events the slow consumer reads
    slow_sleep: float  # seconds it sleeps per event
    memory_framings: tuple[str, ...]


SCALES: dict[str, Scale] = {
    "full": Scale(
        tokens=100_000,
        big_events=2000,
        big_size=65536,
        stream_timeout=120.0,
        latency_events=200,
        latency_interval_ms=5.0,
        latency_hold_ms=500.0,
        latency_rounds=3,
        cancel_repeat=20,
        hang_after=5.0,
        flood_total=50_000_000,
        flood_size=8192,
        slow_events=1000,
        slow_sleep=0.003,
        memory_framings=FRAMINGS,
    ),
    "quick": Scale(
        tokens=10_000,
        big_events=200,
        big_size=65536,
        stream_timeout=60.0,
        latency_events=100,
        latency_interval_ms=5.0,
        latency_hold_ms=200.0,
        latency_rounds=1,
        cancel_repeat=5,
        hang_after=5.0,
        flood_total=50_000_000,
        flood_size=8192,
        slow_events=500,
        slow_sleep=0.003,
        memory_framings=("chunked",),
    ),
    "tiny": Scale(
        tokens=300,
        big_events=5,
        big_size=65536,
        stream_timeout=10.0,
        latency_events=20,
        latency_interval_ms=5.0,
        latency_hold_ms=50.0,
        latency_rounds=1,
        cancel_repeat=2,
        hang_after=2.0,
        flood_total=2_000_000,
        flood_size=8192,
        slow_events=100,
        slow_sleep=0.001,
        memory_framings=("chunked",),
    ),
}


# -- the server ------------------------------------------------------------------------------------


class Server:
    """``_bench_server.py`` in a subprocess: its own interpreter, so its own GIL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path: str, **query: object) -> str:
        return f"{self.base}{path}?{urlencode(query)}"

    def get(self, path: str, **query: object) -> bytes:
        """A plain request for control routes (/prepare, /stats), outside any timing."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", f"{path}?{urlencode(query)}")
            return conn.getresponse().read()
        finally:
            conn.close()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- contenders ----------------------------------------------------------------------------------


class EndOfStream(Exception):
    """Raised by the requests-sse harness where that library would sleep and reconnect."""


@dataclass
class Handle:
    """One open stream of one contender: its events, its cancel API, its cleanup."""

    events: Iterator[Any]
    cancel: Callable[[], None]
    close: Callable[[], None]


@dataclass
class Contender:
    """A client under test: how to open a stream with it and how it is cancelled."""

    name: str
    open: Callable[[Any, str], Handle]  # (context from setup(), url) -> handle; connects
    peer: bool
    distributions: tuple[str, ...]
    cancel_api: str
    setup: Callable[[], Any] = lambda: None  # reusable client object, made outside the timing
    teardown: Callable[[Any], None] = lambda ctx: None
    notes: list[str] = field(default_factory=list)


def _make_sse_sync(max_queue: int | None = None) -> Contender:
    import sse_sync

    extra: dict[str, Any] = {} if max_queue is None else {"max_queue": max_queue}
    connect = sse_sync.connect  # imports the client half (requests, urllib3) now, not timed

    def open_(ctx: Any, url: str) -> Handle:
        stream = connect(url, retry=None, **extra)
        return Handle(iter(stream), stream.cancel, stream.close)

    name = "sse_sync" if max_queue is None else f"sse_sync q={max_queue}"
    notes = [
        "sse_sync: sse_sync.connect(url, retry=None) (a private requests.Session per stream, "
        "default timeouts and limits), iterate the stream; cancel = stream.cancel()."
    ]
    return Contender(
        name,
        open_,
        False,
        ("sse_sync", "requests", "urllib3"),
        "stream.cancel()",
        notes=notes if max_queue is None else [],
    )


def _make_sseclient() -> Contender:
    import requests
    import sseclient

    def open_(ctx: Any, url: str) -> Handle:
        response = requests.get(url, stream=True, headers={"Accept": "text/event-stream"})
        client = sseclient.SSEClient(response)  # type: ignore[arg-type]  # it iterates it
        return Handle(iter(client.events()), client.close, response.close)

    return Contender(
        "sseclient-py",
        open_,
        True,
        ("sseclient-py",),
        "SSEClient.close()",
        notes=[
            "sseclient-py: SSEClient(requests.get(url, stream=True)).events(); it iterates the "
            "Response, i.e. iter_content(128) (urllib3 stream(128)); never reconnects; cancel = "
            "SSEClient.close(), which is response.close()."
        ],
    )


def _make_httpx_sse() -> Contender:
    import httpx
    import httpx_sse

    def setup() -> Any:
        # The same (connect, read) timeouts as sse_sync's defaults; httpx's own is 5 s of silence.
        return httpx.Client(timeout=httpx.Timeout(10.0, read=300.0))

    def open_(client: Any, url: str) -> Handle:
        manager = httpx_sse.connect_sse(client, "GET", url)
        source = manager.__enter__()

        def close() -> None:
            manager.__exit__(None, None, None)

        return Handle(iter(source.iter_sse()), source.response.close, close)

    return Contender(
        "httpx-sse",
        open_,
        True,
        ("httpx-sse", "httpx", "httpcore"),
        "response.close()",
        setup,
        lambda client: client.close(),
        [
            "httpx-sse: connect_sse(client, 'GET', url) then iter_sse(), with one "
            "httpx.Client(timeout=Timeout(10, read=300)) made outside the timing and reused; "
            "never reconnects; cancel = event_source.response.close()."
        ],
    )


def _make_requests_sse() -> Contender:
    import requests_sse

    def on_error() -> None:
        # Called at end of stream just before requests-sse sleeps and reconnects; it has no
        # option to stop there (max_connect_retry only bounds failed connection attempts).
        raise EndOfStream

    def open_(ctx: Any, url: str) -> Handle:
        source = requests_sse.EventSource(url, max_connect_retry=0, on_error=on_error)
        source.connect(0)
        return Handle(iter(source), source.close, source.close)

    return Contender(
        "requests-sse",
        open_,
        True,
        ("requests-sse",),
        "EventSource.close()",
        notes=[
            "requests-sse: EventSource(url, max_connect_retry=0).connect(), iterate; it reads "
            "response.iter_lines() (iter_content(512)); at end of stream it always sleeps and "
            "reconnects (cannot be disabled), so the harness's on_error callback raises there to "
            "end iteration; cancel = EventSource.close()."
        ],
    )


def _make_ld_eventsource() -> Contender:
    from ld_eventsource import SSEClient
    from ld_eventsource.config import ConnectStrategy

    def open_(ctx: Any, url: str) -> Handle:
        client = SSEClient(connect=ConnectStrategy.http(url))
        return Handle(iter(client.events), client.close, client.close)

    return Contender(
        "ld-eventsource",
        open_,
        True,
        ("launchdarkly-eventsource",),
        "SSEClient.close()",
        notes=[
            "ld-eventsource: SSEClient(connect=ConnectStrategy.http(url)), iterate .events "
            "(connects on the first next()); it reads urllib3 stream(10000); the default "
            "ErrorStrategy.always_fail ends iteration when the server ends the stream; cancel = "
            "SSEClient.close()."
        ],
    )


PEERS: dict[str, tuple[str, Callable[[], Contender]]] = {
    # name -> (module that must import, factory)
    "sseclient-py": ("sseclient", _make_sseclient),
    "httpx-sse": ("httpx_sse", _make_httpx_sse),
    "requests-sse": ("requests_sse", _make_requests_sse),
    "ld-eventsource": ("ld_eventsource", _make_ld_eventsource),
}
NAMES: tuple[str, ...] = ("sse_sync", *PEERS)


def make_contender(name: str) -> Contender:
    """One contender by name: ``sse_sync``, ``sse_sync q=<max_queue>`` or a peer's name."""
    if name == "sse_sync":
        return _make_sse_sync()
    if name.startswith("sse_sync q="):
        return _make_sse_sync(int(name.split("=", 1)[1]))
    return PEERS[name][1]()


def make_contenders(names: Sequence[str] | None = None) -> tuple[list[Contender], list[str]]:
    """sse_sync, then each importable peer (all by default); plus notes."""
    contenders = [_make_sse_sync()]
    notes = list(contenders[0].notes)
    for name in PEERS if names is None else [n for n in names if n != "sse_sync"]:
        module, factory = PEERS[name]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            notes.append(f"{name}: not installed ({exc}); skipped")
            continue
        contender = factory()
        contenders.append(contender)
        notes.extend(contender.notes)
    return contenders, notes


# -- running a contender with a deadline ---------------------------------------------------------


def run_bounded(fn: Callable[[], Any], timeout: float, name: str) -> tuple[bool, Any]:
    """Run ``fn`` in a daemon thread; (True, result) or (False, None) if it is still running
    after ``timeout`` seconds (it is then left to finish or block on its own).  An exception
    from ``fn`` is re-raised here."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"bench-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box["result"]


def _close_quietly(handle: Handle | None, timeout: float = 5.0) -> None:
    if handle is not None:
        try:
            run_bounded(handle.close, timeout, "close")
        except Exception:
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- 1. throughput --------------------------------------------------------------------------------


@dataclass
class Workload:
    """One throughput row: a server route, and what arrives if every event is delivered."""

    name: str
    framing: str
    path: str
    query: dict[str, object]
    events: int
    body_bytes: int  # SSE bytes, HTTP framing excluded
    last_data: str
    describe: str


def build_workloads(scale: Scale, only: Sequence[str] = ()) -> list[Workload]:
    out: list[Workload] = []
    if not only or "tokens" in only:
        events = payloads.token_events(scale.tokens)
        size = sum(map(len, events))
        for framing in FRAMINGS:
            out.append(
                Workload(
                    "tokens",
                    framing,
                    "/tokens",
                    {"n": scale.tokens},
                    scale.tokens,
                    size,
                    "[DONE]",
                    "small JSON deltas, one event per HTTP chunk",
                )
            )
    if not only or "big" in only:
        pool = payloads.big_pool(scale.big_size)
        n = scale.big_events
        size = sum(len(pool[i % payloads.POOL]) for i in range(n))
        last = payloads.event_data(pool[(n - 1) % payloads.POOL])
        for framing in FRAMINGS:
            out.append(
                Workload(
                    "big",
                    framing,
                    "/big",
                    {"n": n, "size": scale.big_size},
                    n,
                    size,
                    last,
                    f">= {scale.big_size} B of data per event, 1-4 KB lines",
                )
            )
    return out


def prepare(server: Server, workload: Workload) -> None:
    """Have the server build the payload now, before any clock starts."""
    kind = workload.name
    server.get(
        "/prepare", kind=kind, n=workload.query.get("n", 0), size=workload.query.get("size", 0)
    )


@dataclass
class StreamRun:
    """One timed stream: seconds from the open call to the expected-th event."""

    seconds: float | None
    received: int
    last_ok: bool
    error: str = ""


def time_stream(
    contender: Contender, ctx: Any, url: str, expected: int, last_data: str, timeout: float
) -> StreamRun:
    """Open, read to the end, time to the ``expected``-th event; None seconds on a hang."""

    def run() -> StreamRun:
        handle: Handle | None = None
        n = 0
        last_ok = False
        t_last: float | None = None
        error = ""
        start = time.perf_counter()
        try:
            handle = contender.open(ctx, url)
            for event in handle.events:
                n += 1
                if n == expected:
                    t_last = time.perf_counter()
                    last_ok = event.data == last_data
        except EndOfStream:
            pass
        except Exception as exc:
            error = _describe(exc)
        end = time.perf_counter() if t_last is None else t_last
        _close_quietly(handle)
        return StreamRun(end - start, n, last_ok, error)

    gc.collect()
    done, result = run_bounded(run, timeout, contender.name)
    return result if done else StreamRun(None, 0, False, f"hang (> {timeout:.0f} s)")


@dataclass
class Cell:
    runs: list[StreamRun] = field(default_factory=list)


def bench_throughput(
    server: Server,
    workloads: Sequence[Workload],
    contenders: Sequence[Contender],
    ctxs: dict[str, Any],
    repeat: int,
    timeout: float,
    budget: float = CELL_BUDGET,
    progress: bool = True,
) -> dict[tuple[str, str], dict[str, Cell]]:
    """Every contender ``repeat`` times per workload, interleaved, order rotated per repeat.

    A contender's further runs on a workload are skipped once another one would take its
    total past ``budget`` seconds (at least one run always happens): a slow peer then has
    fewer runs, and the table says so.
    """
    results: dict[tuple[str, str], dict[str, Cell]] = {}
    started = time.perf_counter()
    for w in workloads:
        prepare(server, w)
        url = server.url(w.path, framing=w.framing, **w.query)
        cells = {c.name: Cell() for c in contenders}
        hung: set[str] = set()
        for r in range(repeat):
            k = r % len(contenders)
            for c in [*contenders[k:], *contenders[:k]]:
                if c.name in hung:
                    continue
                spent = [x.seconds for x in cells[c.name].runs if x.seconds is not None]
                if spent and sum(spent) + statistics.median(spent) > budget:
                    continue
                run = time_stream(c, ctxs.get(c.name), url, w.events, w.last_data, timeout)
                cells[c.name].runs.append(run)
                if run.seconds is None:
                    hung.add(c.name)  # one hang is enough: do not pay the timeout again
        results[(w.name, w.framing)] = cells
        if progress:
            elapsed = time.perf_counter() - started
            print(f"  [{w.name}/{w.framing} done, {elapsed:.0f} s]", file=sys.stderr)
    return results


def report_throughput(
    workloads: Sequence[Workload],
    results: dict[tuple[str, str], dict[str, Cell]],
    contenders: Sequence[Contender],
    repeat: int,
) -> str:
    lines = ["", "1. THROUGHPUT (time from the open call to the last event)", "workloads:"]
    seen = set()
    for w in workloads:
        if w.name not in seen:
            seen.add(w.name)
            lines.append(
                f"  {w.name:<7} {w.events:>7} events {w.body_bytes / MB:>7.2f} MB  {w.describe}"
            )
    cols = f"{'workload':<8} {'framing':<8} {'contender':<15} {'events/s':>10} {'MB/s':>8}  "
    cols += f"{'sse_sync / fastest peer':<29} received"
    lines += ["", cols, "-" * (len(cols) + 12)]
    problems: list[str] = []
    for w in workloads:
        cells = results[(w.name, w.framing)]
        rates: dict[str, float | None] = {}
        for c in contenders:
            times = [r.seconds for r in cells[c.name].runs if r.seconds is not None]
            rates[c.name] = statistics.median(times) if times else None
        peers = [c.name for c in contenders if c.peer and rates[c.name] is not None]
        best = min(peers, key=lambda n: rates[n]) if peers else None  # type: ignore[arg-type,return-value]
        for i, c in enumerate(contenders):
            runs = cells[c.name].runs
            t = rates[c.name]
            ratio = ""
            if c.name == "sse_sync" and best is not None and t is not None:
                ratio = f"{rates[best] / t:.2f}x vs {best}"  # type: ignore[operator]
            bad = [r for r in runs if r.received != w.events or not r.last_ok or r.error]
            if not runs:
                received = "not run"
            elif not bad:
                received = f"{w.events} ok"
                if len(runs) < repeat:
                    received += f" ({len(runs)} run{'s' if len(runs) > 1 else ''}: time budget)"
            else:
                r = bad[0]
                received = f"{r.received}/{w.events}"
                if r.received >= w.events and not r.last_ok:
                    received += " (last event differs)"
                if r.error:
                    received += f" {r.error}"
                if len(runs) > 1:
                    received += f" [{len(bad)}/{len(runs)} runs]"
                problems.append(f"  {w.name}/{w.framing} {c.name}: {received}")
            ev = "hang" if t is None else f"{w.events / t:,.0f}"
            mb = "" if t is None else f"{w.body_bytes / t / MB:.2f}"
            lines.append(
                f"{w.name if i == 0 else '':<8} {w.framing if i == 0 else '':<8} "
                f"{c.name:<15} {ev:>10} {mb:>8}  {ratio:<29} {received}"
            )
        lines.append("")
    if problems:
        lines += ["wrong counts, errors or hangs:", *problems]
    return "\n".join(lines)


# -- 2. delivery latency --------------------------------------------------------------------------


@dataclass
class LatencyCell:
    """Latencies (ms) of every event received, pooled over rounds."""

    samples: list[float] = field(default_factory=list)
    late: int = 0  # events that arrived only when the stream ended
    sent: int = 0
    received: int = 0
    hangs: int = 0
    errors: list[str] = field(default_factory=list)


def latency_once(contender: Contender, ctx: Any, url: str, scale: Scale, cell: LatencyCell) -> None:
    """One stream of ``scale.latency_events`` events; arrival - send time of each into ``cell``."""
    arrivals: list[tuple[int, str]] = []  # appended by the consumer thread as events arrive

    def run() -> str:
        handle: Handle | None = None
        try:
            handle = contender.open(ctx, url)
            append = arrivals.append
            clock = time.monotonic_ns
            for event in handle.events:
                append((clock(), event.data))
        except EndOfStream:
            pass
        except Exception as exc:
            return _describe(exc)
        finally:
            _close_quietly(handle)
        return ""

    bound = (scale.latency_events * scale.latency_interval_ms + scale.latency_hold_ms) / 1e3 + 5
    gc.collect()
    done, error = run_bounded(run, bound, contender.name)
    cell.sent += scale.latency_events
    if not done:
        cell.hangs += 1
    elif error:
        cell.errors.append(error)
    got = [(arrival, *payloads.parse_latency(data)) for arrival, data in list(arrivals)]
    cell.received += len(got)
    if not got:
        return
    last_sent = max(t for _, _, t in got)
    # The server is silent for hold_ms after its last event; an event arriving in the second
    # half of that silence was held back by the client until the stream ended.
    eof = last_sent + int(scale.latency_hold_ms * 1e6 / 2)
    for arrival, _, sent in got:
        cell.samples.append((arrival - sent) / 1e6)
        if arrival >= eof:
            cell.late += 1


def bench_latency(
    server: Server,
    contenders: Sequence[Contender],
    ctxs: dict[str, Any],
    scale: Scale,
    progress: bool = True,
) -> dict[str, dict[str, LatencyCell]]:
    results: dict[str, dict[str, LatencyCell]] = {}
    started = time.perf_counter()
    for framing in FRAMINGS:
        url = server.url(
            "/latency",
            n=scale.latency_events,
            interval_ms=scale.latency_interval_ms,
            hold_ms=scale.latency_hold_ms,
            framing=framing,
        )
        cells = {c.name: LatencyCell() for c in contenders}
        for r in range(scale.latency_rounds):
            k = r % len(contenders)
            for c in [*contenders[k:], *contenders[:k]]:
                latency_once(c, ctxs.get(c.name), url, scale, cells[c.name])
        results[framing] = cells
        if progress:
            elapsed = time.perf_counter() - started
            print(f"  [latency/{framing} done, {elapsed:.0f} s]", file=sys.stderr)
    return results


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of unsorted ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def report_latency(
    results: dict[str, dict[str, LatencyCell]], contenders: Sequence[Contender], scale: Scale
) -> str:
    lines = [
        "",
        f"2. DELIVERY LATENCY (arrival - send, time.monotonic_ns in both processes; one event "
        f"every {scale.latency_interval_ms:g} ms, {scale.latency_events} events x "
        f"{scale.latency_rounds} run(s) pooled; then {scale.latency_hold_ms:g} ms of silence "
        "before the stream ends)",
    ]
    cols = f"{'framing':<8} {'contender':<15} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  "
    cols += f"{'> 1 ms':>6} {'received':>9}  {'held to end':>11}  note"
    lines += ["", cols, "-" * (len(cols) + 20)]
    for framing, cells in results.items():
        for i, c in enumerate(contenders):
            cell = cells[c.name]
            notes = []
            if cell.samples:
                p50, p99 = percentile(cell.samples, 50), percentile(cell.samples, 99)
                top = max(cell.samples)
                over = sum(x > 1.0 for x in cell.samples)
                nums = f"{p50:>8.3f} {p99:>8.3f} {top:>8.1f} {over:>6}"
            else:
                p99 = math.inf
                nums = f"{'-':>8} {'-':>8} {'-':>8} {'-':>6}"
            if c.name == "sse_sync":
                notes.append("target p99 < 1 ms: " + ("met" if p99 < 1 else "MISSED"))
            if cell.late:
                notes.append(f"{cell.late} events delivered only when the stream ended")
            if cell.hangs:
                notes.append(f"hang: {cell.hangs} run(s) not finished within the bound")
            if cell.errors:
                notes.append(f"error: {cell.errors[0]}")
            if cell.received != cell.sent:
                notes.append(f"{cell.sent - cell.received} events missing")
            lines.append(
                f"{framing if i == 0 else '':<8} {c.name:<15} {nums}  "
                f"{cell.received:>4}/{cell.sent:<4}  {cell.late:>11}  {'; '.join(notes)}"
            )
        lines.append("")
    return "\n".join(lines)


# -- 3. cancel latency ----------------------------------------------------------------------------


@dataclass
class CancelTrial:
    """One stream cancelled from another thread; the consumer thread stamps its own end."""

    contender: str
    framing: str
    box: dict[str, Any]  # t_cancel, t_end, how, cancel_returned, handle
    consumer: threading.Thread

    def latency(self) -> float | None:
        t_end = self.box.get("t_end")
        return None if t_end is None else t_end - self.box["t_cancel"]


def cancel_trial(contender: Contender, ctx: Any, url: str, framing: str) -> CancelTrial | str:
    """Open, wait for the first event, let the consumer block, cancel from another thread.

    A client that buffers (close-delimited framing, reads of a fixed size) may never hand
    over the first event of a stream gone silent: it is then cancelled 1 s after it opened,
    blocked in the same read, and the trial notes it.  Returns as soon as the cancel is issued;
    a string if the stream could not be opened.
    """
    box: dict[str, Any] = {}
    opened = threading.Event()
    first = threading.Event()

    def consume() -> None:
        try:
            handle = contender.open(ctx, url)
            box["handle"] = handle
            opened.set()
            for _ in handle.events:
                first.set()
            box["how"] = "ended"
        except EndOfStream:
            box["how"] = "ended"
        except BaseException as exc:
            box["how"] = f"raised {_describe(exc)}"
        finally:
            box["t_end"] = time.perf_counter()
            opened.set()

    consumer = threading.Thread(target=consume, name=f"bench-{contender.name}", daemon=True)
    consumer.start()
    if not opened.wait(10) or "handle" not in box:
        return f"could not open ({box.get('how', 'nothing within 10 s')})"
    if not first.wait(1.0):
        box["no_first_event"] = True
    if "t_end" in box:
        return f"the stream ended before the cancel ({box.get('how')})"
    time.sleep(0.05)  # the consumer is now blocked reading a silent socket

    def cancel() -> None:
        try:
            box["handle"].cancel()
        except BaseException as exc:
            box["cancel_error"] = _describe(exc)
        box["cancel_returned"] = time.perf_counter()

    box["t_cancel"] = time.perf_counter()
    threading.Thread(target=cancel, name=f"bench-cancel-{contender.name}", daemon=True).start()
    return CancelTrial(contender.name, framing, box, consumer)


@dataclass
class CancelCell:
    latencies: list[float] = field(default_factory=list)
    hang: CancelTrial | None = None
    failures: list[str] = field(default_factory=list)
    how: set[str] = field(default_factory=set)
    cancel_call_max: float = 0.0
    no_first_event: int = 0  # trials where the first event was still buffered at the cancel


def bench_cancel(
    server: Server,
    contenders: Sequence[Contender],
    ctxs: dict[str, Any],
    scale: Scale,
    progress: bool = True,
) -> dict[str, dict[str, CancelCell]]:
    """``cancel_repeat`` trials per contender and framing.

    A trial whose consumer has not returned within 1 s stops that contender's trials; it is
    judged at the end of the phase (hang if still blocked ``hang_after`` s after the cancel),
    so the hang waits of several contenders overlap.  The server drops a silent connection
    ``hang_after + 1.5`` s after its first event, so a hung consumer is eventually freed.
    """
    results: dict[str, dict[str, CancelCell]] = {f: {} for f in FRAMINGS}
    pending: list[tuple[CancelTrial, CancelCell]] = []
    started = time.perf_counter()
    hold = scale.hang_after + 1.5
    for framing in FRAMINGS:
        url = server.url("/silent", hold=hold, framing=framing)
        for c in contenders:
            cell = results[framing][c.name] = CancelCell()
            for _ in range(scale.cancel_repeat):
                gc.collect()
                trial = cancel_trial(c, ctxs.get(c.name), url, framing)
                if isinstance(trial, str):
                    cell.failures.append(trial)
                    break
                trial.consumer.join(1.0)
                if trial.consumer.is_alive():
                    pending.append((trial, cell))
                    break
                _record(trial, cell)
                _close_quietly(trial.box.get("handle"))
        if progress:
            elapsed = time.perf_counter() - started
            print(f"  [cancel/{framing} done, {elapsed:.0f} s]", file=sys.stderr)
    for trial, cell in pending:
        wait = trial.box["t_cancel"] + scale.hang_after - time.perf_counter()
        trial.consumer.join(max(0.0, wait))
        latency = trial.latency()
        if latency is not None and latency <= scale.hang_after:
            _record(trial, cell)
        else:
            cell.hang = trial
    if any(cell.hang for _, cell in pending):
        # Give hung consumers a chance to be freed by the server's drop, to say so in the notes.
        time.sleep(max(0.0, hold - scale.hang_after) + 1.0)
    for trial, _ in pending:
        trial.box["checked"] = time.perf_counter()
    return results


def _record(trial: CancelTrial, cell: CancelCell) -> None:
    latency = trial.latency()
    assert latency is not None
    cell.latencies.append(latency)
    cell.how.add(trial.box.get("how", "?"))
    cell.no_first_event += bool(trial.box.get("no_first_event"))
    returned = trial.box.get("cancel_returned")
    if returned is not None:
        cell.cancel_call_max = max(cell.cancel_call_max, returned - trial.box["t_cancel"])


def report_cancel(
    results: dict[str, dict[str, CancelCell]], contenders: Sequence[Contender], scale: Scale
) -> str:
    lines = [
        "",
        f"3. CANCEL LATENCY (server sends one event then goes silent; the cancel API is called "
        f"from another thread; time until the consumer's iteration returns; {scale.cancel_repeat} "
        f"trials; hang = still blocked {scale.hang_after:g} s after the cancel)",
    ]
    cols = f"{'framing':<8} {'contender':<15} {'cancel API':<20} {'median ms':>10} {'max ms':>9}"
    cols += f" {'trials':>6}  how the iteration ended"
    lines += ["", cols, "-" * (len(cols) + 10)]
    for framing, cells in results.items():
        for i, c in enumerate(contenders):
            cell = cells[c.name]
            lead = f"{framing if i == 0 else '':<8} {c.name:<15} {c.cancel_api:<20}"
            if cell.hang is not None:
                box = cell.hang.box
                note = "HANG: consumer still blocked"
                returned = box.get("cancel_returned")
                if returned is None:
                    note += "; the cancel call itself never returned"
                elif returned - box["t_cancel"] > 0.1:
                    note += (
                        f"; the cancel call itself blocked for {returned - box['t_cancel']:.1f} s"
                    )
                t_end = box.get("t_end")
                if t_end is not None:
                    note += (
                        f"; iteration {box.get('how', '?')} only "
                        f"{t_end - box['t_cancel']:.1f} s after the cancel, when the server "
                        "dropped the connection"
                    )
                else:
                    note += (
                        f"; still blocked {box['checked'] - box['t_cancel']:.1f} s after the "
                        "cancel, the server having dropped the connection"
                    )
                if box.get("no_first_event"):
                    note += "; its first event was never delivered (buffered)"
                if cell.latencies:
                    note += f" (after {len(cell.latencies)} prompt trials)"
                lines.append(f"{lead} {'hang':>10} {'hang':>9} {'':>6}  {note}")
            elif cell.latencies:
                med = statistics.median(cell.latencies) * 1e3
                top = max(cell.latencies) * 1e3
                how = ", ".join(sorted(cell.how))
                if cell.cancel_call_max > 0.1:
                    how += f"; the cancel call took up to {cell.cancel_call_max * 1e3:.0f} ms"
                if cell.no_first_event:
                    how += (
                        f"; first event still buffered (never delivered) in "
                        f"{cell.no_first_event}/{len(cell.latencies)} trials"
                    )
                if cell.failures:
                    how += f"; {cell.failures[0]}"
                lines.append(f"{lead} {med:>10.3f} {top:>9.3f} {len(cell.latencies):>6}  {how}")
            else:
                lines.append(f"{lead} {'-':>10} {'-':>9} {0:>6}  {'; '.join(cell.failures)}")
        lines.append("")
    return "\n".join(lines)


# -- 4. peak memory with a slow consumer ----------------------------------------------------------


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: read ``events`` events, sleeping per event, then measure.

    Peak RSS growth = VmHWM at the end minus VmRSS when the peak was reset (after imports and
    client setup, just before connecting).  ``sent`` is what the server's socket had accepted
    when the consumer finished: everything sent but not consumed sat in kernel buffers or in
    the client.
    """
    import http.client  # for the /stats request; imported before the baseline

    contender = make_contender(spec["contender"])
    ctx = contender.setup()
    gc.collect()
    baseline = _status_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    start = time.perf_counter()
    handle = contender.open(ctx, spec["url"])
    n = 0
    wanted = spec["events"]
    pause = spec["sleep"]
    error = ""
    try:
        for _ in handle.events:
            n += 1
            time.sleep(pause)
            if n == wanted:
                break
    except EndOfStream:
        pass
    except Exception as exc:
        error = _describe(exc)
    elapsed = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    rss = _status_kb("VmRSS")
    extra: dict[str, Any] = {}
    stream = _sse_sync_stream(handle)
    if stream is not None:
        s = stream.stats()
        extra = {"client_read": s.bytes, "pending": s.pending}
    host, port = spec["server"]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/stats?" + urlencode({"id": spec["id"]}))
    server_state = json.loads(conn.getresponse().read())
    conn.close()
    return {
        "events": n,
        "seconds": elapsed,
        "baseline_kb": baseline,
        "peak_kb": peak,
        "rss_kb": rss,
        "hwm_reset": reset,
        "sent": server_state["sent"],
        "done": server_state["done"],
        "error": error,
        **extra,
    }


def _sse_sync_stream(handle: Handle) -> Any:
    # The EventStream behind an sse_sync handle (its bound cancel method's __self__).
    owner = getattr(handle.cancel, "__self__", None)
    import sse_sync

    return owner if isinstance(owner, sse_sync.EventStream) else None


@dataclass
class MemoryRow:
    framing: str
    contender: str
    result: dict[str, Any] | None  # None: the worker hung or failed
    error: str = ""


def bench_memory(
    server: Server, names: Sequence[str], scale: Scale, progress: bool = True
) -> list[MemoryRow]:
    """One fresh subprocess per contender and framing."""
    rows: list[MemoryRow] = []
    started = time.perf_counter()
    for framing in scale.memory_framings:
        for name in names:
            flood_id = f"{name}-{framing}-{time.monotonic_ns()}"
            spec = {
                "contender": name,
                "url": server.url(
                    "/flood",
                    id=flood_id,
                    total=scale.flood_total,
                    size=scale.flood_size,
                    framing=framing,
                ),
                "server": ["127.0.0.1", server.port],
                "id": flood_id,
                "events": scale.slow_events,
                "sleep": scale.slow_sleep,
            }
            bound = scale.slow_events * scale.slow_sleep * 3 + 30
            try:
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "tests.benchmarks.bench_client",
                        "--worker",
                        json.dumps(spec),
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=bound,
                )
            except subprocess.TimeoutExpired:
                rows.append(MemoryRow(framing, name, None, f"hang (> {bound:.0f} s)"))
                continue
            out = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not out:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append(MemoryRow(framing, name, None, f"worker failed: {tail}"))
                continue
            rows.append(MemoryRow(framing, name, json.loads(out[-1])))
        if progress:
            elapsed = time.perf_counter() - started
            print(f"  [memory/{framing} done, {elapsed:.0f} s]", file=sys.stderr)
    return rows


def report_memory(rows: Sequence[MemoryRow], scale: Scale, reader_us: float | None) -> str:
    pool = payloads.big_pool(scale.flood_size, line=(1024, 1024))
    event_bytes = sum(map(len, pool)) // len(pool)
    # The text has non-BMP characters (emoji), so CPython stores each data str with 4 bytes per
    # character: the decoded events take several times their wire size.
    str_bytes = sum(sys.getsizeof(payloads.event_data(e)) for e in pool) // len(pool)
    need = ""
    if reader_us is not None:
        need = (
            f"; sse_sync's reader needs ~{reader_us:.0f} us per event of this size at the "
            f"big-event rate measured above, so the consumer is "
            f"~{scale.slow_sleep * 1e6 / reader_us:.0f}x slower"
        )
    lines = [
        "",
        f"4. PEAK MEMORY WITH A SLOW CONSUMER (server floods {scale.flood_total / MB:.0f} MB of "
        f"~{event_bytes} B events, whose data decodes to a str of ~{str_bytes / 1024:.0f} KiB "
        "(emoji in the text: 4 bytes per character); the consumer sleeps "
        f"{scale.slow_sleep * 1e3:g} ms per event and stops after {scale.slow_events} "
        f"events{need}; fresh process per row; peak RSS growth = VmHWM - VmRSS at connect; "
        "server sent = bytes its socket had accepted when the consumer stopped; in flight = "
        "sent - consumed, held in kernel buffers and in the client)",
    ]
    cols = f"{'framing':<8} {'contender':<16} {'events':>6} {'peak RSS +MB':>12} "
    cols += f"{'server sent MB':>14} {'consumed MB':>11} {'in flight MB':>12}  note"
    lines += ["", cols, "-" * (len(cols) + 30)]
    last = None
    for row in rows:
        lead = f"{row.framing if row.framing != last else '':<8} {row.contender:<16}"
        last = row.framing
        r = row.result
        if r is None:
            lines.append(f"{lead} {row.error}")
            continue
        growth = (r["peak_kb"] - r["baseline_kb"]) / 1024
        consumed = sum(len(pool[i % payloads.POOL]) for i in range(r["events"]))
        notes = []
        if r["done"]:
            notes.append("server sent everything: NO backpressure")
        else:
            notes.append("server blocked (backpressure)")
        if "client_read" in r:
            notes.append(
                f"reader read {r['client_read'] / MB:.1f} MB, {r['pending']} events queued"
            )
        if not r["hwm_reset"]:
            notes.append("VmHWM could not be reset: growth includes import peaks")
        if r["error"]:
            notes.append(f"error: {r['error']}")
        if r["events"] != scale.slow_events:
            notes.append(f"only {r['events']} events")
        lines.append(
            f"{lead} {r['events']:>6} {growth:>12.1f} {r['sent'] / MB:>14.1f} "
            f"{consumed / MB:>11.1f} {(r['sent'] - consumed) / MB:>12.1f}  {'; '.join(notes)}"
        )
    return "\n".join(lines)


# -- report header --------------------------------------------------------------------------------


def _versions(contenders: Sequence[Contender]) -> str:
    names: list[str] = []
    for c in contenders:
        names.extend(d for d in c.distributions if d not in names)
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def _load() -> str:
    # Other processes on the machine skew every number; say how busy it was.
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def _sysctl(name: str) -> str:
    try:
        return " ".join(Path("/proc/sys/net/ipv4", name).read_text().split())
    except OSError:
        return "unknown"


def header(contenders: Sequence[Contender], repeat: int, scale: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    impl = platform.python_implementation()
    return "\n".join(
        [
            f"sse_sync client benchmark, {now} ({scale} workloads)",
            f"Python {platform.python_version()} ({impl}), {platform.platform()}, "
            f"{os.cpu_count() or 1} CPUs, load average {_load()} at start",
            f"packages: {_versions(contenders)}",
            f"server: {SERVER_SCRIPT.name} in its own process on 127.0.0.1, TCP_NODELAY, payloads "
            f"pre-built and written in {payloads.WRITE_BATCH // 1024} KiB sendall calls (chunked: "
            "one HTTP chunk per event); close = HTTP/1.1 Connection: close, no length; "
            f"tcp_rmem {_sysctl('tcp_rmem')}, tcp_wmem {_sysctl('tcp_wmem')}",
            f"method: throughput cells are the median of {repeat} runs, time.perf_counter() from "
            "the contender's open call to its last expected event, gc.collect() before each run "
            f"(collector left on); contenders interleaved, order rotated per repeat (a contender "
            f"gets fewer runs when more would take it past {CELL_BUDGET:g} s on a workload); each "
            "contender runs in a daemon thread with a deadline (a hang is reported, not waited "
            "for); MB = 10^6 SSE bytes (HTTP chunk framing not counted).",
        ]
    )


# -- main -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tests.benchmarks.bench_client``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        # Internal: one memory measurement in this fresh process (see bench_memory).
        result = memory_worker(json.loads(argv[1]))
        print(json.dumps(result), flush=True)
        os._exit(0)  # a peer's blocked reader must not keep this process alive
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, about a minute")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per cell (3)")
    parser.add_argument(
        "--only",
        action="append",
        choices=MEASUREMENTS,
        metavar="NAME",
        help=f"run only this measurement (repeatable): {', '.join(MEASUREMENTS)}",
    )
    parser.add_argument(
        "--contender",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"sse_sync and only these peers (repeatable): {', '.join(PEERS)}",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    scale_name = "quick" if args.quick else "full"
    scale = SCALES[scale_name]
    only = args.only or MEASUREMENTS
    contenders, notes = make_contenders(args.contender)
    print(header(contenders, args.repeat, scale_name))
    print("notes:")
    for note in notes:
        print(f"  - {note}")
    sys.stdout.flush()
    started = time.perf_counter()
    ctxs = {c.name: c.setup() for c in contenders}
    reader_us: float | None = None
    try:
        with Server() as server:
            rows = [m for m in only if m in ("tokens", "big")]
            workloads = build_workloads(scale, rows) if rows else []
            if workloads:
                results = bench_throughput(
                    server, workloads, contenders, ctxs, args.repeat, scale.stream_timeout
                )
                print(report_throughput(workloads, results, contenders, args.repeat), flush=True)
                big = results.get(("big", "chunked"), {}).get("sse_sync")
                times = [r.seconds for r in big.runs if r.seconds] if big else []
                if times:
                    w = next(w for w in workloads if w.name == "big")
                    per_byte = statistics.median(times) / w.body_bytes
                    reader_us = per_byte * scale.flood_size * 1e6
            if "latency" in only:
                lat = bench_latency(server, contenders, ctxs, scale)
                print(report_latency(lat, contenders, scale), flush=True)
            if "cancel" in only:
                can = bench_cancel(server, contenders, ctxs, scale)
                print(report_cancel(can, contenders, scale), flush=True)
            if "memory" in only:
                names = ["sse_sync", "sse_sync q=64", *[c.name for c in contenders if c.peer]]
                mem = bench_memory(server, names, scale)
                print(report_memory(mem, scale, reader_us), flush=True)
    finally:
        for c in contenders:
            try:
                c.teardown(ctxs[c.name])
            except Exception:
                pass
    print(f"\ntotal time {time.perf_counter() - started:.0f} s, load average {_load()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
