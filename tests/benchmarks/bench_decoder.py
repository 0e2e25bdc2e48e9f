"""Decoder throughput: sse_sync against the Python SSE peers, side by side in one process.

Run from the repository root (the peers come with ``pip install -e '.[bench]'``)::

    python -m tests.benchmarks.bench_decoder [--quick] [--repeat N] [--only WORKLOAD]

Every contender is driven from the same precomputed list of byte chunks, through its own parsing
code, the way its HTTP client feeds it; only parsing is timed.  Each contender's output is also
compared with sse_sync's, and sse_sync's with the event list the workload generator knows it
encoded, so a fast-but-wrong result shows up in the ``disagrees`` column.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, ClassVar

from sse_sync import Event, SSEDecoder, iter_events

EventTuple = tuple[str, str, str]
"""(type, data, last event id): what every contender's output is normalised to."""

RunFn = Callable[[Sequence[bytes], bytes], list[Any]]
"""A timed run: (chunks, whole body) -> the contender's native event objects."""

ORIGIN = "http://bench.invalid"

# -- workloads ------------------------------------------------------------------------------------

# Token vocabulary of an LLM stream: ASCII words with their leading space, punctuation, JSON
# escapes (quote, backslash, newline), accents, CJK, emoji (4-byte UTF-8, so small chunks split
# characters) and U+2028, which str.splitlines() would wrongly treat as a line break.
# fmt: off
VOCAB: tuple[str, ...] = (
    "Hello", " world", ",", ".", " the", " a", " quick", " brown", " fox", " jumps", " over",
    " lazy", " dog", " stream", " token", " event", "\n", "\n\n", '"', "\\", " café", " naïve",
    " über", " São", " Paulo", " résumé", "你好", "世界", "。", "こんにちは", " привет",
    " Ελληνικά", "—", "…", "🙂", "👍🏽", "🚀", "\u2028", "{", "}", ":", " data", " id",
)
# fmt: on

# Words for the text of big and mixed events; none starts with a space, so that no data value
# starts with one (requests-sse strips every leading space, the spec only one).
# fmt: off
WORDS: tuple[str, ...] = (
    "lorem", "ipsum", "dolor", "sit", "amet", "event", "stream", "data:", "id:", "café",
    "Straße", "naïve", "東京", "数据", "🙂", "ünïcödé", "x=1;y=2", '{"k":[1,2]}', "a:b:c",
)
# fmt: on

EVENT_TYPES: tuple[str, ...] = ("update", "delta", "patch", "status", "heartbeat-ack")


@dataclass
class Scale:
    """Workload sizes for one mode (full run, --quick, or the pytest smoke test)."""

    tokens: int  # events in the token stream
    tokens_1b: int  # events in the slice fed one byte at a time
    big_events: int
    big_size: int  # bytes of data per big event
    big_line: tuple[int, int]  # min, max characters per data line of a big event
    big_chunk: int
    mixed: int  # dispatched events in the mixed stream
    mixed_1b: int  # events of the mixed stream's start fed one byte at a time
    mixed_chunk: tuple[int, int]  # min, max chunk size for the mixed stream


SCALES: dict[str, Scale] = {
    "full": Scale(200_000, 20_000, 200, 65536, (1024, 4096), 65536, 100_000, 10_000, (1000, 2000)),
    "quick": Scale(20_000, 2_000, 20, 65536, (1024, 4096), 65536, 10_000, 1_000, (1000, 2000)),
    "tiny": Scale(60, 20, 3, 4096, (100, 400), 1024, 300, 30, (7, 61)),
}

ROWS: tuple[str, ...] = (
    "tokens",
    "tokens/1B",
    "tokens/7B",
    "tokens/1500B",
    "tokens/64KiB",
    "tokens/CRLF",
    "tokens/CRLF/7B",
    "big",
    "mixed",
    "mixed/1B",
    "mixed/7B",
)


@dataclass
class Workload:
    """One table row: an input body, how it is chunked, and the events it encodes."""

    name: str
    chunking: str
    body: bytes
    expected: list[EventTuple]
    make_chunks: Callable[[], list[bytes]]
    n_chunks: int = 0  # set when the chunks are made for timing


def slice_fixed(body: bytes, size: int) -> list[bytes]:
    """Cut ``body`` into ``size``-byte chunks (the last may be shorter)."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def slice_random(body: bytes, low: int, high: int, seed: int) -> list[bytes]:
    """Cut ``body`` into chunks of seeded random sizes in [low, high], like network reads."""
    rng = random.Random(seed)
    chunks: list[bytes] = []
    pos = 0
    while pos < len(body):
        size = rng.randint(low, high)
        chunks.append(body[pos : pos + size])
        pos += size
    return chunks


def make_tokens(count: int, seed: int = 1) -> tuple[list[bytes], list[EventTuple]]:
    """An LLM completion stream: one ``data:`` JSON event per token, then ``data: [DONE]``."""
    rng = random.Random(seed)
    events: list[bytes] = []
    expected: list[EventTuple] = []
    for _ in range(count - 1):
        token = json.dumps(rng.choice(VOCAB), ensure_ascii=False)
        data = '{"id":"chatcmpl-1","choices":[{"delta":{"content":' + token + "}}]}"
        events.append(b"data: " + data.encode() + b"\n\n")
        expected.append(("message", data, ""))
    events.append(b"data: [DONE]\n\n")
    expected.append(("message", "[DONE]", ""))
    return events, expected


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_big(scale: Scale, seed: int = 2) -> tuple[bytes, list[EventTuple]]:
    """Big events: ``scale.big_size`` bytes of data each, spread over many ``data:`` lines."""
    rng = random.Random(seed)
    pool = _text(rng, 60_000)  # sliced at random offsets: cheap, and still varied text
    parts: list[bytes] = []
    expected: list[EventTuple] = []
    for _ in range(scale.big_events):
        values: list[str] = []
        size = 0
        while size < scale.big_size:
            start = rng.randrange(len(pool) - scale.big_line[1])
            length = rng.randint(*scale.big_line)
            value = pool[start : start + length].lstrip(" ")
            values.append(value)
            size += len(value.encode())
        parts.append("".join(f"data: {v}\n" for v in values).encode() + b"\n")
        expected.append(("message", "\n".join(values), ""))
    return b"".join(parts), expected


def make_mixed(count: int, seed: int = 3) -> tuple[bytes, list[EventTuple]]:
    """Every field kind, comments, CRLF and LF line endings, multi-line data.

    The stream opens with a retry-only block and has keep-alive comment blocks between events,
    as real servers send them; neither dispatches an event.
    """
    rng = random.Random(seed)
    parts: list[str] = ["retry: 3000\r\n\r\n"]
    expected: list[EventTuple] = []
    last_id = ""
    next_id = 1
    while len(expected) < count:
        nl = "\r\n" if rng.random() < 0.5 else "\n"
        roll = rng.random()
        if roll < 0.05:
            parts.append(f": keep-alive {rng.randrange(10**6)}{nl}{nl}")
            continue
        if roll < 0.06:
            parts.append(f"retry: {rng.randrange(1000, 10_000)}{nl}{nl}")
            continue
        fields: list[str] = []
        event_type = "message"
        if rng.random() < 0.3:
            event_type = rng.choice(EVENT_TYPES)
            fields.append(f"event:{event_type}" if rng.random() < 0.2 else f"event: {event_type}")
        if rng.random() < 0.5:
            last_id = str(next_id)
            next_id += 1
            fields.append(f"id: {last_id}" if rng.random() < 0.8 else f"id:{last_id}")
        if rng.random() < 0.02:
            fields.append(f"retry: {rng.randrange(1000, 10_000)}")
        rng.shuffle(fields)
        if rng.random() < 0.1:
            fields.insert(rng.randint(0, len(fields)), f": note {_text(rng, 2)}")
        nlines = rng.choice((1, 1, 1, 2, 2, 3, 4))
        values = [_text(rng, rng.randint(1, 12)) for _ in range(nlines)]
        if nlines >= 3 and rng.random() < 0.3:
            values[1] = ""  # an empty line inside multi-line data; never the last one
        for value in values:
            fields.append(f"data:{value}" if value and rng.random() < 0.1 else f"data: {value}")
        parts.append(nl.join(fields) + nl + nl)
        expected.append((event_type, "\n".join(values), last_id))
    return "".join(parts).encode(), expected


def build_workloads(scale_name: str, only: Sequence[str] = ()) -> list[Workload]:
    """The rows of the table for one scale, in table order; ``only`` keeps just those rows."""
    scale = SCALES[scale_name]
    rows = [r for r in ROWS if not only or r in only]
    out: list[Workload] = []
    if any(r.startswith("tokens") for r in rows):
        per_event, tok_expected = make_tokens(scale.tokens)
        tokens = b"".join(per_event)
        head = b"".join(per_event[: scale.tokens_1b])
        nh = scale.tokens_1b
        # The same events with CR LF line endings, as some servers send them (the JSON values
        # hold no raw CR or LF, so only the line endings change).
        crlf_per_event = [chunk.replace(b"\n", b"\r\n") for chunk in per_event]
        crlf = b"".join(crlf_per_event)
        specs: dict[str, tuple[str, bytes, list[EventTuple], Callable[[], list[bytes]]]] = {
            "tokens": ("1 chunk per event, as sent", tokens, tok_expected, lambda: per_event),
            "tokens/1B": (
                f"1 B chunks, first {nh} events",
                head,
                tok_expected[:nh],
                lambda: slice_fixed(head, 1),
            ),
            "tokens/7B": ("7 B chunks", tokens, tok_expected, lambda: slice_fixed(tokens, 7)),
            "tokens/1500B": (
                "1500 B chunks",
                tokens,
                tok_expected,
                lambda: slice_fixed(tokens, 1500),
            ),
            "tokens/64KiB": (
                "65536 B chunks",
                tokens,
                tok_expected,
                lambda: slice_fixed(tokens, 65536),
            ),
            "tokens/CRLF": (
                "1 chunk per event, CRLF",
                crlf,
                tok_expected,
                lambda: crlf_per_event,
            ),
            "tokens/CRLF/7B": (
                "7 B chunks, CRLF",
                crlf,
                tok_expected,
                lambda: slice_fixed(crlf, 7),
            ),
        }
        for row in rows:
            if row in specs:
                out.append(Workload(row, *specs[row]))
    if "big" in rows:
        big, big_expected = make_big(scale)
        size = scale.big_chunk
        out.append(
            Workload(
                "big",
                f"{size} B chunks, >= {scale.big_size} B of data per event",
                big,
                big_expected,
                lambda: slice_fixed(big, size),
            )
        )
    if "mixed" in rows:
        mixed, mixed_expected = make_mixed(scale.mixed)
        low, high = scale.mixed_chunk
        out.append(
            Workload(
                "mixed",
                f"{low}-{high} B chunks (seeded), CRLF+LF",
                mixed,
                mixed_expected,
                lambda: slice_random(mixed, low, high, seed=4),
            )
        )
    if "mixed/1B" in rows:
        # The generator is seeded, so fewer events are the same stream's start.
        mixed_head, head_expected = make_mixed(scale.mixed_1b)
        out.append(
            Workload(
                "mixed/1B",
                f"1 B chunks, first {scale.mixed_1b} events",
                mixed_head,
                head_expected,
                lambda: slice_fixed(mixed_head, 1),
            )
        )
    if "mixed/7B" in rows:
        mixed_all, all_expected = make_mixed(scale.mixed)
        out.append(
            Workload(
                "mixed/7B", "7 B chunks", mixed_all, all_expected, lambda: slice_fixed(mixed_all, 7)
            )
        )
    return out


# -- contenders -----------------------------------------------------------------------------------


@dataclass
class Contender:
    """One decoder under test: how to run it, and how to read its events."""

    name: str
    run: RunFn
    normalise: Callable[[list[Any]], list[EventTuple]] | None  # None: not a decoder
    peer: bool  # counts for the "fastest peer" ratio
    distributions: tuple[str, ...] = ()  # for the versions header
    notes: list[str] = field(default_factory=list)


def _run_sse_sync(chunks: Sequence[bytes], body: bytes) -> list[Any]:
    # sse_sync's API for an iterable of chunks, as the peers are driven through theirs.
    return list(iter_events(chunks))


def _run_sse_sync_feed(chunks: Sequence[bytes], body: bytes) -> list[Any]:
    # The sans-IO loop a client runs: feed each chunk as it arrives, collect the events.
    decoder = SSEDecoder()
    out: list[Any] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.close())
    return out


def _run_bytes_split(chunks: Sequence[bytes], body: bytes) -> list[Any]:
    # Not a decoder: splitting the whole buffer on blank lines is the ceiling for pure Python.
    return body.split(b"\n\n")


def _run_line_floor(chunks: Sequence[bytes], body: bytes) -> list[Any]:
    # Not a decoder: the least work per line that a Python loop over lines can do and still
    # give the right events on these workloads.  The whole body at once, so no chunk handling;
    # no limits, BOM, retry, NUL or comment rules; one slice compare per line; events built
    # the cheapest way sse_sync knows.  It shows how far any per-line decoder can get.
    new = object.__new__
    out: list[Any] = []
    append = out.append
    data: list[bytes] = []
    kind = b""
    last_id = ""
    for line in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line:
            if data:
                event = new(Event)
                event.event = kind.decode() if kind else "message"
                event.data = b"\n".join(data).decode()
                event.id = last_id
                event.retry = None
                append(event)
                data = []
            kind = b""
        elif line[:6] == b"data: ":
            data.append(line[6:])
        else:
            name, _, value = line.partition(b":")
            if value and value[0] == 32:
                value = value[1:]
            if name == b"event":
                kind = value
            elif name == b"id":
                last_id = value.decode()
            elif name == b"data":
                data.append(value)
    return out


def _norm_attrs(type_attr: str, id_attr: str) -> Callable[[list[Any]], list[EventTuple]]:
    def normalise(events: list[Any]) -> list[EventTuple]:
        return [
            (getattr(e, type_attr) or "message", e.data or "", getattr(e, id_attr) or "")
            for e in events
        ]

    return normalise


def _make_sse_sync() -> Contender:
    return Contender(
        "sse_sync", _run_sse_sync, _norm_attrs("event", "id"), False, ("sse_sync", "attrs")
    )


def _make_httpx_sse() -> Contender:
    from httpx._decoders import TextDecoder
    from httpx_sse import EventSource

    class ResponseShim:
        """What httpx_sse.EventSource uses of an httpx.Response: headers and iter_text().

        iter_text() is httpx's own, minus its transport layers: an incremental UTF-8 decoder
        (errors="replace") per chunk, empty texts dropped (TextChunker(None)), a final flush.
        """

        headers: ClassVar[dict[str, str]] = {"content-type": "text/event-stream"}

        def __init__(self, chunks: Sequence[bytes]) -> None:
            self._chunks = chunks

        def iter_text(self) -> Iterator[str]:
            decoder = TextDecoder(encoding="utf-8")
            for chunk in self._chunks:
                text = decoder.decode(chunk)
                if text:
                    yield text
            text = decoder.flush()
            if text:
                yield text

    def run(chunks: Sequence[bytes], body: bytes) -> list[Any]:
        # EventSource.iter_sse -> _iter_sse_lines (SSELineDecoder) -> SSEDecoder.decode(line).
        return list(EventSource(ResponseShim(chunks)).iter_sse())  # type: ignore[arg-type]

    return Contender(
        "httpx-sse",
        run,
        _norm_attrs("event", "id"),
        True,
        ("httpx-sse", "httpx"),
        [
            "httpx-sse: httpx_sse.EventSource.iter_sse() over a stand-in for httpx.Response whose "
            "iter_text() does what httpx's does (incremental UTF-8 decode, errors='replace')."
        ],
    )


def _make_sseclient() -> Contender:
    from sseclient import SSEClient

    def run(chunks: Sequence[bytes], body: bytes) -> list[Any]:
        # SSEClient takes any iterable of byte chunks (it iterates the response it is given).
        return list(SSEClient(iter(chunks)).events())

    return Contender(
        "sseclient-py",
        run,
        _norm_attrs("event", "id"),
        True,
        ("sseclient-py",),
        [
            "sseclient-py: SSEClient(iter(chunks)).events(); its Event.id is the id field of the "
            "event's own block (None if absent), not the last event ID in effect; compared as is."
        ],
    )


class _EndOfStream(Exception):
    """Raised by the line source after the last line, to stop requests-sse from reconnecting."""


class _RaiseAtEnd:
    def __iter__(self) -> _RaiseAtEnd:
        return self

    def __next__(self) -> bytes:
        raise _EndOfStream


class _UrllibRawShim:
    """Stands in for the urllib3 response under requests.Response.raw, streaming our chunks."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = chunks

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        pass


def _make_requests_sse() -> Contender:
    import requests
    from requests_sse import EventSource

    session = requests.Session()  # no connection is ever made; shared so runs don't build one

    def run(chunks: Sequence[bytes], body: bytes) -> list[Any]:
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "text/event-stream"
        response.url = ORIGIN + "/"
        response.raw = _UrllibRawShim(chunks)
        source = EventSource(ORIGIN + "/", session=session)
        # The tail of EventSource.connect(), minus the HTTP request.
        source._connected()
        source._response = response
        source._data_generator = itertools.chain(response.iter_lines(), _RaiseAtEnd())
        source._origin = source._get_origin(response)
        out: list[Any] = []
        try:
            for event in source:
                out.append(event)
        except _EndOfStream:
            pass
        source.close()
        return out

    return Contender(
        "requests-sse",
        run,
        _norm_attrs("type", "last_event_id"),
        True,
        ("requests-sse", "requests", "urllib3"),
        [
            "requests-sse: EventSource.__next__ over requests.Response.iter_lines() (requests' "
            "own line splitter), with our chunks as the urllib3 stream; at end of stream it would "
            "sleep and reconnect, so the harness ends the line iterator with an exception."
        ],
    )


def _make_ld_eventsource() -> Contender:
    from ld_eventsource.actions import Event as LDEvent
    from ld_eventsource.reader import _BufferedLineReader, _SSEReader

    def run(chunks: Sequence[bytes], body: bytes) -> list[Any]:
        # What SSEClient._all_generator runs over the urllib3 stream; events() keeps only Events.
        reader = _SSEReader(_BufferedLineReader.lines_from(chunks), None, None)
        return [item for item in reader.events_and_comments() if isinstance(item, LDEvent)]

    return Contender(
        "ld-eventsource",
        run,
        _norm_attrs("event", "last_event_id"),
        True,
        ("launchdarkly-eventsource",),
        [
            "ld-eventsource: _SSEReader(_BufferedLineReader.lines_from(chunks)), as SSEClient uses "
            "them; compared on Event.last_event_id."
        ],
    )


def _make_bytes_split() -> Contender:
    return Contender("bytes.split", _run_bytes_split, None, False)


def _make_line_floor() -> Contender:
    return Contender("line-loop floor", _run_line_floor, _norm_attrs("event", "id"), False)


PEERS: dict[str, tuple[str, Callable[[], Contender]]] = {
    # name -> (module that must import, factory)
    "httpx-sse": ("httpx_sse", _make_httpx_sse),
    "sseclient-py": ("sseclient", _make_sseclient),
    "requests-sse": ("requests_sse", _make_requests_sse),
    "ld-eventsource": ("ld_eventsource", _make_ld_eventsource),
}


def make_contenders(peers: Sequence[str] | None = None) -> tuple[list[Contender], list[str]]:
    """sse_sync, then each importable peer (all by default), then the two reference rows (the
    line-loop floor and bytes.split); plus notes."""
    contenders = [
        _make_sse_sync(),
        Contender("sse_sync feed()", _run_sse_sync_feed, _norm_attrs("event", "id"), False),
    ]
    notes: list[str] = []
    for name in PEERS if peers is None else peers:
        module, factory = PEERS[name]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            notes.append(f"{name}: not installed ({exc}); skipped")
            continue
        contender = factory()
        contenders.append(contender)
        notes.extend(contender.notes)
    contenders.append(_make_line_floor())
    contenders.append(_make_bytes_split())
    return contenders, notes


# -- correctness ----------------------------------------------------------------------------------


@dataclass
class Disagreement:
    """How a contender's events differ from the reference list."""

    count: int  # events replaced, missing or extra
    total: int  # events in the reference
    got: int  # events the contender produced
    example: str = ""  # the first difference

    def __str__(self) -> str:
        if not self.count:
            return "0"
        extra = f" (got {self.got})" if self.got != self.total else ""
        return f"{self.count}/{self.total}{extra}"


def _short(item: EventTuple | None, width: int = 70) -> str:
    text = repr(item)
    return text if len(text) <= width else text[: width - 3] + "..."


def compare(ref: list[EventTuple], got: list[EventTuple], window: int = 8) -> Disagreement:
    """Count events replaced, missing or extra in ``got``, relative to ``ref``.

    Same lengths: position by position.  Otherwise a greedy alignment that, at each mismatch,
    skips the fewest events (at most ``window`` on each side) to reach a matching pair; an
    approximation of a diff that stays linear on 100k-event lists full of repeated events.
    """
    result = Disagreement(0, len(ref), len(got))
    if len(ref) == len(got):
        for i, (a, b) in enumerate(zip(ref, got, strict=True)):
            if a != b:
                if not result.count:
                    result.example = f"#{i}: sse_sync {_short(a)} / this {_short(b)}"
                result.count += 1
        return result
    i = j = 0
    while i < len(ref) and j < len(got):
        if ref[i] == got[j]:
            i += 1
            j += 1
            continue
        if not result.count:
            result.example = f"#{i}: sse_sync {_short(ref[i])} / this {_short(got[j])}"
        skip = next(
            (
                (a, step - a)
                for step in range(1, 2 * window + 1)
                for a in range(max(0, step - window), min(step, window) + 1)
                if i + a < len(ref) and j + step - a < len(got) and ref[i + a] == got[j + step - a]
            ),
            (1, 1),  # no match nearby: count one replaced event and go on
        )
        result.count += max(skip)
        i += skip[0]
        j += skip[1]
    result.count += max(len(ref) - i, len(got) - j)
    return result


def check(workload: Workload, contenders: Sequence[Contender]) -> dict[str, Disagreement]:
    """Untimed: run every decoder once on ``workload``; sse_sync against the known events,
    the others against sse_sync."""
    chunks = workload.make_chunks()
    ref = _norm_attrs("event", "id")(_run_sse_sync(chunks, workload.body))
    out = {"sse_sync": compare(workload.expected, ref)}
    for c in contenders:
        if c.normalise is not None and c.name != "sse_sync":
            out[c.name] = compare(ref, c.normalise(c.run(chunks, workload.body)))
    return out


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Cell:
    """Timings of one contender on one workload."""

    times: list[float] = field(default_factory=list)
    disagreement: Disagreement | None = None


def _time_once(run: RunFn, chunks: Sequence[bytes], body: bytes) -> tuple[float, list[Any]]:
    gc.collect()
    # Collector off while timing: a pause caused by one contender's garbage must not land in
    # another's run.  The output is freed after the clock stops, for every contender alike.
    gc.disable()
    try:
        start = time.perf_counter()
        out = run(chunks, body)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, out


def bench_workload(
    workload: Workload, contenders: Sequence[Contender], repeat: int
) -> dict[str, Cell]:
    """Time every contender ``repeat`` times, interleaved, rotating who goes first.

    The first round's outputs (sse_sync runs first in it) are checked, then dropped, so no
    contender's events stay alive while the others are timed.
    """
    chunks = workload.make_chunks()
    workload.n_chunks = len(chunks)
    cells = {c.name: Cell() for c in contenders}
    ref: list[EventTuple] = []
    for r in range(repeat):
        k = r % len(contenders)
        for c in [*contenders[k:], *contenders[:k]]:
            elapsed, out = _time_once(c.run, chunks, workload.body)
            cells[c.name].times.append(elapsed)
            if r == 0 and c.normalise is not None:
                events = c.normalise(out)
                if c.name == "sse_sync":
                    ref = events
                    cells[c.name].disagreement = compare(workload.expected, ref)
                else:
                    cells[c.name].disagreement = compare(ref, events)
            del out
    return cells


# -- report ---------------------------------------------------------------------------------------


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


def header(contenders: Sequence[Contender], repeat: int, scale: str) -> str:
    """Date, interpreter, platform, package versions and the method, for the top of the report."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    impl = platform.python_implementation()
    return "\n".join(
        [
            f"sse_sync decoder benchmark, {now} ({scale} workloads)",
            f"Python {platform.python_version()} ({impl}), {platform.platform()}, "
            f"{_cpu_count()} CPUs, load average {_load()} at start",
            f"packages: {_versions(contenders)}",
            f"method: median of {repeat} runs per cell, time.perf_counter(); gc.collect() before "
            "and gc disabled during each run; contenders interleaved, order rotated per repeat; "
            "input precut into chunks; MB = 10^6 input bytes; events/s = events the input encodes "
            "(the same count for every contender) / time.",
        ]
    )


def _cpu_count() -> int:
    return os.cpu_count() or 1


def _load() -> str:
    # Other processes on the machine skew every number; say how busy it was.
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def report(
    workloads: Sequence[Workload],
    results: dict[str, dict[str, Cell]],
    contenders: Sequence[Contender],
) -> str:
    """The table: one line per workload and contender, medians, ratio on sse_sync's line."""
    lines = ["", "workloads:"]
    for w in workloads:
        lines.append(
            f"  {w.name:<14} {len(w.expected):>7} events {len(w.body) / 1e6:>6.2f} MB "
            f"{w.n_chunks:>8} chunks  {w.chunking}"
        )
    cols = f"{'workload':<14} {'contender':<15} {'events/s':>12} {'MB/s':>8}  "
    cols += f"{'/ fastest peer':<28} disagrees"
    lines += ["", cols, "-" * len(cols)]
    notes: list[str] = []
    for w in workloads:
        cells = results[w.name]
        rates: dict[str, tuple[float, float]] = {}
        for c in contenders:
            times = cells[c.name].times
            ev = statistics.median(len(w.expected) / t for t in times)
            mb = statistics.median(len(w.body) / t / 1e6 for t in times)
            rates[c.name] = (ev, mb)
        peers = [c.name for c in contenders if c.peer]
        best = max(peers, key=lambda n: rates[n][1]) if peers else None
        for i, c in enumerate(contenders):
            ev, mb = rates[c.name]
            ratio = ""
            if not c.peer and best is not None:
                ratio = f"{rates[c.name][1] / rates[best][1]:.2f}x vs {best}"
            d = cells[c.name].disagreement
            lines.append(
                f"{w.name if i == 0 else '':<14} {c.name:<15} {_fmt_rate(ev):>12} {mb:>8.2f}  "
                f"{ratio:<28} {'n/a (no parsing)' if d is None else d}"
            )
            if d is not None and d.count:
                against = "known events" if c.name == "sse_sync" else "sse_sync"
                notes.append(f"  {w.name} / {c.name} differs from {against}: {d}; {d.example}")
        lines.append("")
    if notes:
        lines += ["disagreements (type, data, id), first difference shown:", *notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tests.benchmarks.bench_decoder``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, for a smoke test")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per cell (default 5)")
    parser.add_argument(
        "--only",
        action="append",
        choices=ROWS,
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(ROWS)}",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    scale = "quick" if args.quick else "full"
    contenders, notes = make_contenders()
    print(header(contenders, args.repeat, scale))
    print("notes:")
    for note in [
        *notes,
        "Transport re-slicing is not modelled: every contender gets the same chunks (requests "
        "would read at most 512 B at a time, ld-eventsource 10000 B).",
        "bytes.split: body.split(b'\\n\\n') on the whole buffer, no parsing; the ceiling, not a "
        "peer.",
        "line-loop floor: not a decoder; one Python loop over the whole body's lines with the "
        "least work per line that still gives these workloads' events (no chunks, limits, BOM, "
        "retry or comment rules); the bound for any decoder that reads line by line.",
    ]:
        print(f"  - {note}")
    sys.stdout.flush()
    workloads = build_workloads(scale, args.only or ())
    results: dict[str, dict[str, Cell]] = {}
    started = time.perf_counter()
    for w in workloads:
        results[w.name] = bench_workload(w, contenders, args.repeat)
        print(f"  [{w.name} done, {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    print(report(workloads, results, contenders))
    print(f"total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
