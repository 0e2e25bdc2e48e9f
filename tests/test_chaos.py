"""Chaos: a server that cuts its connection at random byte offsets, and a client that must still
deliver every event exactly once, in order, and never half of one.

The server serves numbered events (LF, CRLF and CR line endings, multi-byte UTF-8, multi-line data,
comments, ``id`` before or after ``data``) and resumes strictly after the ``Last-Event-ID`` the
client sends: that header is the only truth about what the client has dispatched.  For each of
the first ``cuts`` requests it sends a prefix of the remaining stream and then ends the
connection, cleanly (``close()``) or with a reset (``drop()``), over chunked or close-delimited
framing.  Cut points are drawn by a seeded ``random.Random`` among: anywhere, mid-line,
inside a multi-byte UTF-8 character, between a CR and its LF, and on an event boundary.
After the cuts it sends the rest in full; once everything is delivered it answers 204, which
ends the client's iteration without error.

Cutting between the CR and the LF that end an event is a case of its own: the client dispatches
the event on the CR (the blank line is complete) and so asks to resume after it; the next
connection then starts afresh, so the lone LF never arrives and nothing is delivered twice.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

import sse_sync
from sse_sync import RetryPolicy
from sse_sync.testing import (
    Action,
    RecordedRequest,
    Script,
    ScriptLike,
    SSEServer,
    close,
    drop,
    respond,
    send,
)

pytestmark = [pytest.mark.network]

KINDS = ("anywhere", "mid-line", "mid-utf8", "cr-lf", "boundary")
SOAK_SECONDS = float(os.environ.get("SSE_SYNC_SOAK_SECONDS", "0") or 0)


def wire(n: int) -> tuple[bytes, tuple[str, str, str]]:
    """Event ``n`` on the wire, and the (type, data, id) the client must deliver for it."""
    style = n % 6
    if style == 0:
        raw = f"id: {n}\ndata: payload-{n} plain ascii\n\n"
        return raw.encode(), ("message", f"payload-{n} plain ascii", str(n))
    if style == 1:
        text = f"payload-{n} é€😀 ü"
        return f"id: {n}\r\ndata: {text}\r\n\r\n".encode(), ("message", text, str(n))
    if style == 2:
        raw = f"event: tick\nid: {n}\ndata: payload-{n}\ndata: second ✓ line\n\n"
        return raw.encode(), ("tick", f"payload-{n}\nsecond ✓ line", str(n))
    if style == 3:
        text = f"payload-{n} 日本語"
        return f"id: {n}\rdata: {text}\r\r".encode(), ("message", text, str(n))
    if style == 4:
        raw = f": heartbeat {n}\r\ndata: payload-{n} ÿ\r\nid: {n}\r\nretry: 0\r\n\r\n"
        return raw.encode(), ("message", f"payload-{n} ÿ", str(n))
    text = f"payload-{n} Ελληνικά"
    raw = f"data: {text[:9]}\r\ndata: {text[9:]}\nid: {n}\r\n\n"
    return raw.encode(), ("message", f"{text[:9]}\n{text[9:]}", str(n))


def candidates(body: bytes, window: int, ends: list[int], kind: str) -> list[int]:
    """Offsets in ``[0, window)`` at which cutting ``body`` is a cut of ``kind``."""
    if kind == "anywhere":
        return list(range(window))
    if kind == "boundary":
        return [0, *(end for end in ends if end < window)]
    found = []
    for i in range(1, window):
        before, after = body[i - 1], body[i]
        if (
            (kind == "mid-utf8" and 0x80 <= after < 0xC0)
            or (kind == "cr-lf" and before == 13 and after == 10)
            or (kind == "mid-line" and before not in b"\r\n" and after not in b"\r\n")
        ):
            found.append(i)
    return found


@dataclass
class ChaosServer:
    """The route callable: resume after Last-Event-ID, cut the first ``cuts`` responses."""

    total: int
    cuts: int
    seed: int
    rng: random.Random = field(init=False)
    kinds: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)
    resumed_at: list[int] = field(default_factory=list)
    gzipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.events = [wire(n)[0] for n in range(1, self.total + 1)]

    def __call__(self, request: RecordedRequest) -> ScriptLike:
        last = request.headers.get("Last-Event-ID")
        start = int(last) + 1 if last else 1
        with self.lock:
            self.resumed_at.append(start)
            if start > self.total:
                return [respond(204)]
            rest = self.events[start - 1 :]
            if request.number > self.cuts:
                return Script([send(b"".join(rest)), close()])
            rng = self.rng
            # Cut within the first two events: at most two are dispatched per connection.
            ends = [len(rest[0]), len(rest[0]) + (len(rest[1]) if len(rest) > 1 else 0)]
            body = b"".join(rest[:2])
            kind = rng.choice(KINDS)
            offsets = candidates(body, len(body), ends, kind)
            if not offsets:
                kind, offsets = "anywhere", list(range(len(body)))
            cut = rng.choice(offsets)
            ending = rng.choice(("close", "drop"))
            framing = rng.choice(("chunked", "close"))
            gzip = rng.random() < 0.25
            self.kinds[kind] += 1
            self.endings[f"{ending}/{framing}"] += 1
            self.gzipped += gzip
        actions: list[Action] = [send(body[:cut])] if cut else []
        actions.append(close() if ending == "close" else drop())
        return Script(actions, framing=framing, gzip=gzip)  # type: ignore[arg-type]


def run_chaos(cuts: int, seed: int) -> None:
    total = 2 * cuts + 20  # enough that every one of the cuts happens
    chaos = ChaosServer(total=total, cuts=cuts, seed=seed)
    expected = [wire(n)[1] for n in range(1, total + 1)]
    with SSEServer() as server:
        server.route("/chaos", chaos)
        policy = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)
        with sse_sync.connect(server.url_for("/chaos"), retry=policy) as stream:
            got = [(e.event, e.data, e.id) for e in stream]  # ends at the 204
            connections = stream.stats().connections
        requests = len(server.requests)
    assert chaos.resumed_at[-1] == total + 1, "the stream did not end with everything delivered"
    # Compare the ids first: a lost or duplicated event is then named in the message.
    assert [g[2] for g in got] == [e[2] for e in expected]
    assert got == expected
    # Every cut response was followed by another request, then came the full one and the 204.
    assert requests == cuts + 2
    # A reset right after the response head can reach the client before the head does: that
    # attempt fails in connect, and is not counted as a connection.
    assert cuts // 2 < connections <= cuts + 1
    assert sum(chaos.kinds.values()) == cuts
    for kind in KINDS:
        assert chaos.kinds[kind] >= cuts // 50, f"too few cuts of kind {kind}: {chaos.kinds}"
    assert len(chaos.endings) == 4, chaos.endings
    assert 0 < chaos.gzipped < cuts


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2])
def test_every_event_exactly_once_through_random_cuts(seed: int) -> None:
    started = time.monotonic()
    run_chaos(cuts=200, seed=seed)
    assert time.monotonic() - started < 30


@pytest.mark.soak
@pytest.mark.timeout(120 + SOAK_SECONDS)
def test_soak_every_event_exactly_once_through_many_cuts() -> None:
    # One run of 2000 cuts takes a few seconds, so CI (which runs soak tests) can afford it;
    # SSE_SYNC_SOAK_SECONDS asks for more rounds, with fresh seeds, until that time is up.
    deadline = time.monotonic() + SOAK_SECONDS
    seed = 20240601
    run_chaos(cuts=2000, seed=seed)
    while time.monotonic() < deadline:
        seed += 1
        run_chaos(cuts=2000, seed=seed)


def test_wire_helper_matches_the_decoder() -> None:
    # The expectations above come from wire(); check them against the decoder itself.
    body = b"".join(wire(n)[0] for n in range(1, 13))
    events = sse_sync.decode(body)
    assert [(e.event, e.data, e.id) for e in events] == [wire(n)[1] for n in range(1, 13)]


def test_candidate_offsets_are_what_they_say() -> None:
    body = b"".join(wire(n)[0] for n in (1, 3))
    window = len(body)
    assert all(0x80 <= body[i] < 0xC0 for i in candidates(body, window, [], "mid-utf8"))
    crlf = candidates(body, window, [], "cr-lf")
    assert crlf
    assert all(body[i - 1 : i + 1] == b"\r\n" for i in crlf)
    for i in candidates(body, window, [], "mid-line"):
        assert body[i - 1] not in b"\r\n"
        assert body[i] not in b"\r\n"
