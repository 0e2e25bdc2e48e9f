"""Shared helpers for the decoder tests: the conformance vectors and small feeding utilities."""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sse_sync import Comment, Event, SSEDecoder

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
VECTORS_PATH = TESTS_DIR / "vectors.json"
SHARED_VECTORS_PATH = REPO_DIR.parent / "shared" / "conformance" / "vectors.json"


@functools.lru_cache(maxsize=1)
def load_vectors() -> tuple[dict[str, Any], ...]:
    """The conformance vectors from ``tests/vectors.json``, in file order."""
    with VECTORS_PATH.open(encoding="utf-8") as f:
        return tuple(json.load(f))


def vector_input(vector: dict[str, Any]) -> bytes:
    """The raw body bytes of a vector."""
    return base64.b64decode(vector["input_b64"], validate=True)


def split_cyclic(raw: bytes, sizes: Sequence[int] | None) -> list[bytes]:
    """Cut ``raw`` into chunks whose sizes repeat ``sizes`` cyclically (``None``: one chunk).

    The last chunk may be shorter.  An empty input gives one empty chunk for ``None`` and no
    chunks otherwise, as the conformance README's loader does.
    """
    if sizes is None:
        return [raw]
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"bad chunk sizes {sizes!r}")
    chunks: list[bytes] = []
    pos = k = 0
    while pos < len(raw):
        n = sizes[k % len(sizes)]
        chunks.append(raw[pos : pos + n])
        pos += n
        k += 1
    return chunks


_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


def line_ends(raw: bytes) -> list[int]:
    """Offsets just after each line break of ``raw`` (CR LF counted as one break)."""
    return [m.end() for m in _LINE_ENDS.finditer(raw)]


def split_lines(raw: bytes, *, keep_blank_with_previous: bool = False) -> list[bytes]:
    """Cut ``raw`` after every line break, the way a server flushing line by line would.

    With ``keep_blank_with_previous``, a blank line stays in the chunk of the line before it,
    so that a chunk is often one whole ``data: ...`` line plus the blank line ending its event
    (how most servers flush an event), while the other fields of that block came earlier.
    """
    ends = line_ends(raw)
    if keep_blank_with_previous:
        # No cut where the next line is blank (a line break starts right there).
        ends = [e for e in ends if _LINE_ENDS.match(raw, e) is None]
    cuts = [0, *ends, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(cuts) if b > a]


LINE_CHUNKINGS = {
    "lines": lambda raw: split_lines(raw),
    "lines+blank": lambda raw: split_lines(raw, keep_blank_with_previous=True),
}


Chunking = list[int] | str | None


def make_chunks(raw: bytes, how: Chunking) -> list[bytes]:
    """Chunks of ``raw``: ``None`` whole, a size list cyclically, or a LINE_CHUNKINGS name."""
    if isinstance(how, str):
        return LINE_CHUNKINGS[how](raw)
    return split_cyclic(raw, how)


def chunkings(vector: dict[str, Any]) -> list[tuple[str, Chunking]]:
    """Every way a vector is fed: whole, each listed chunking, always byte by byte, and
    line-aligned (see ``split_lines``).  Returns ``(label, how)`` pairs without duplicates."""
    out: list[tuple[str, Chunking]] = [("whole", None)]
    seen: set[tuple[int, ...]] = set()
    for sizes in [*vector["chunkings"], [1]]:
        key = tuple(sizes)
        if key in seen:
            continue
        seen.add(key)
        out.append((",".join(map(str, sizes)), list(sizes)))
    out += [(name, name) for name in LINE_CHUNKINGS]
    return out


def reused_buffer(chunks: Sequence[bytes], view: bool) -> Iterator[bytearray | memoryview]:
    """``chunks`` through one buffer, overwritten with garbage once the reader asks for the
    next chunk, as a ``recv_into()`` loop does: as that bytearray, or as memoryviews of it (a
    viewed buffer keeps its size, since the reader may still hold a view)."""
    size = max(map(len, chunks), default=0)
    buf = bytearray(size)
    for chunk in chunks:
        n = len(chunk)
        if view:
            buf[:n] = chunk
            yield memoryview(buf)[:n]
            buf[:] = b"\xff" * size
        else:
            buf[:] = chunk
            yield buf
            buf[:] = b"\xff" * n


def feed_all(decoder: SSEDecoder, chunks: Iterable[bytes | bytearray | memoryview]) -> list[Event]:
    """Feed every chunk, then close; return all events."""
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return events


def feed_items_all(
    decoder: SSEDecoder, chunks: Iterable[bytes | bytearray | memoryview]
) -> list[Event | Comment]:
    """Feed every chunk with ``feed_items``, then close; return all items."""
    items: list[Event | Comment] = []
    for chunk in chunks:
        items += decoder.feed_items(chunk)
    items += decoder.close()
    return items


def as_tuple(event: Event) -> tuple[str, str, str, int | None]:
    """``(type, data, id, retry)`` of an event, ``retry`` being the event's own field."""
    return (event.event, event.data, event.id, event.retry)
