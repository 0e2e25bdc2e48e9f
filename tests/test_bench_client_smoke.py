"""Smoke test of the client benchmark: every measurement, for sse_sync only, on tiny workloads.

Nothing is judged on speed; the measurement functions must run against the benchmark server and
return sane values (every event counted, latencies positive, no hang).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# `python -m pytest` from the root puts it on sys.path; plain `pytest` may not.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
bench: Any = importlib.import_module("tests.benchmarks.bench_client")

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

TINY = bench.SCALES["tiny"]


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with bench.Server() as srv:
        yield srv


@pytest.fixture(scope="module")
def contenders() -> list[Any]:
    found, _ = bench.make_contenders([])
    assert [c.name for c in found] == ["sse_sync"]
    return list(found)


def test_payload_helpers_round_trip() -> None:
    payloads = bench.payloads
    assert payloads.parse_latency(payloads.latency_event(7, 123)[6:-2].decode()) == (7, 123)
    pool = payloads.big_pool(4096)
    assert len(pool) == payloads.POOL
    assert all(len(payloads.event_data(e).encode()) >= 4096 for e in pool)
    assert payloads.token_events(5)[-1] == b"data: [DONE]\n\n"


def test_throughput_counts_every_event(server: Any, contenders: list[Any]) -> None:
    workloads = bench.build_workloads(TINY)
    assert {(w.name, w.framing) for w in workloads} == {
        (name, framing) for name in ("tokens", "big") for framing in bench.FRAMINGS
    }
    results = bench.bench_throughput(
        server, workloads, contenders, {}, 2, TINY.stream_timeout, progress=False
    )
    for w in workloads:
        runs = results[(w.name, w.framing)]["sse_sync"].runs
        assert len(runs) == 2
        for run in runs:
            assert run.error == ""
            assert run.received == w.events
            assert run.last_ok
            assert run.seconds is not None
            assert run.seconds > 0
    table = bench.report_throughput(workloads, results, contenders, 2)
    assert "sse_sync" in table
    assert "hang" not in table


def test_delivery_latency(server: Any, contenders: list[Any]) -> None:
    results = bench.bench_latency(server, contenders, {}, TINY, progress=False)
    assert set(results) == set(bench.FRAMINGS)
    for cells in results.values():
        cell = cells["sse_sync"]
        assert cell.hangs == 0
        assert cell.errors == []
        assert cell.received == cell.sent == TINY.latency_events
        assert len(cell.samples) == TINY.latency_events
        assert all(0 < ms < 1000 for ms in cell.samples)
        assert cell.late == 0  # nothing held back until the end of the stream
    assert "target p99" in bench.report_latency(results, contenders, TINY)


def test_cancel_latency(server: Any, contenders: list[Any]) -> None:
    results = bench.bench_cancel(server, contenders, {}, TINY, progress=False)
    for cells in results.values():
        cell = cells["sse_sync"]
        assert cell.hang is None
        assert cell.failures == []
        assert len(cell.latencies) == TINY.cancel_repeat
        assert all(0 < s < TINY.hang_after for s in cell.latencies)
        assert cell.how == {"ended"}
        assert cell.no_first_event == 0
    assert "HANG" not in bench.report_cancel(results, contenders, TINY)


def test_peak_memory_worker(server: Any) -> None:
    rows = bench.bench_memory(server, ["sse_sync q=64"], TINY, progress=False)
    assert len(rows) == len(TINY.memory_framings)
    for row in rows:
        assert row.error == ""
        result = row.result
        assert result["events"] == TINY.slow_events
        assert result["error"] == ""
        assert result["peak_kb"] >= result["baseline_kb"] > 0
        # The server sent at least what the consumer read, and the reader read at least that.
        consumed = TINY.slow_events * TINY.flood_size
        assert result["sent"] >= result["client_read"] >= consumed
    assert "sse_sync q=64" in bench.report_memory(rows, TINY, None)
