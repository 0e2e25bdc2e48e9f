"""Smoke test of the decoder benchmark: its workloads, its correctness check and its peer harnesses.

Nothing here is timed.  Peers that are not installed (they come with the ``bench`` extra) are
skipped.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

# `python -m pytest` from the root puts it on sys.path; plain `pytest` may not.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
bench: Any = importlib.import_module("tests.benchmarks.bench_decoder")

TINY = bench.build_workloads("tiny")
PEER_MODULES = {name: module for name, (module, _) in bench.PEERS.items()}


def test_tiny_workloads_cover_every_row() -> None:
    assert [w.name for w in TINY] == list(bench.ROWS)
    mixed = next(w for w in TINY if w.name == "mixed").body
    # The mixed stream must really exercise what it claims to.
    for needle in (b"\r\n", b"\n\n", b"\n: ", b"retry: ", b"id: ", b"event: ", b"data:"):
        assert needle in mixed


@pytest.mark.parametrize("workload", TINY, ids=lambda w: w.name)
def test_sse_sync_decodes_the_known_events(workload: Any) -> None:
    chunks = workload.make_chunks()
    assert b"".join(chunks) == workload.body
    events = bench._run_sse_sync(chunks, workload.body)
    assert [(e.event, e.data, e.id) for e in events] == workload.expected


@pytest.mark.parametrize("workload", TINY, ids=lambda w: w.name)
def test_line_loop_floor_gives_the_known_events(workload: Any) -> None:
    # The floor row bounds what a per-line decoder can do only if it does the real work.
    events = bench._run_line_floor(workload.make_chunks(), workload.body)
    assert [(e.event, e.data, e.id) for e in events] == workload.expected


@pytest.mark.parametrize("peer", list(PEER_MODULES))
def test_peer_correctness_check(peer: str) -> None:
    pytest.importorskip(PEER_MODULES[peer])
    contenders, _ = bench.make_contenders([peer])
    assert [c.name for c in contenders] == [
        "sse_sync",
        "sse_sync feed()",
        peer,
        "line-loop floor",
        "bytes.split",
    ]
    for workload in TINY:
        result = bench.check(workload, contenders)
        assert result["sse_sync"].count == 0, workload.name
        assert result[peer].got > 0, workload.name
        if not workload.name.startswith("mixed"):
            # Data-only LF streams: every peer agrees, so their throughputs compare like for like.
            assert result[peer].count == 0, (workload.name, str(result[peer]))


def test_httpx_sse_harness_matches_a_real_httpx_response() -> None:
    httpx = pytest.importorskip("httpx")
    httpx_sse = pytest.importorskip("httpx_sse")
    (harness,) = (c for c in bench.make_contenders(["httpx-sse"])[0] if c.name == "httpx-sse")
    for workload in TINY:
        chunks = workload.make_chunks()
        response = httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
        )
        real = list(httpx_sse.EventSource(response).iter_sse())
        ours = harness.run(chunks, workload.body)
        assert harness.normalise(ours) == harness.normalise(real), workload.name


def test_ld_eventsource_harness_matches_its_client() -> None:
    pytest.importorskip("ld_eventsource")
    from ld_eventsource import SSEClient
    from ld_eventsource.config import ConnectionClient, ConnectionResult, ConnectStrategy

    class Connect(ConnectStrategy, ConnectionClient):
        # The documented way to make SSEClient read from something other than HTTP.
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        def create_client(self, logger: Any) -> ConnectionClient:
            return self

        def connect(self, last_event_id: str | None) -> ConnectionResult:
            return ConnectionResult(iter(self.chunks), None)

    (harness,) = (c for c in bench.make_contenders(["ld-eventsource"])[0] if c.peer)
    for workload in TINY:
        chunks = workload.make_chunks()
        client = SSEClient(Connect(chunks))
        real = list(client.events)
        client.close()
        ours = harness.run(chunks, workload.body)
        assert harness.normalise(ours) == harness.normalise(real), workload.name


def test_compare_counts_replaced_missing_and_extra_events() -> None:
    ref = [("message", str(i), "") for i in range(10)]
    assert bench.compare(ref, list(ref)).count == 0
    replaced = [*ref[:3], ("message", "x", ""), *ref[4:]]
    assert bench.compare(ref, replaced).count == 1
    extra = [*ref[:5], ("message", "", "1"), *ref[5:]]
    assert bench.compare(ref, extra).count == 1
    assert bench.compare(ref, ref[:4] + ref[6:]).count == 2
    assert str(bench.compare(ref, ref[:-1])) == "1/10 (got 9)"


def test_instruction_counter_runs_its_workload() -> None:
    # What runs under valgrind; valgrind itself is not needed for this.
    counter: Any = importlib.import_module("tests.benchmarks.instructions")
    for name in ("sse_sync", "line-loop floor"):
        assert counter.main(["--child", name, "mixed", "1", "--scale", "tiny"]) == 0
    with pytest.raises(SystemExit, match="unknown"):
        counter.main(["--child", "no-such-decoder", "mixed", "1", "--scale", "tiny"])
    for kind in counter.CONSTRUCTIONS:
        assert counter.main(["--child-construct", kind, "3"]) == 0
