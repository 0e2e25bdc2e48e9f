"""Command line: ``python -m sse_sync`` decodes the built-in sample stream and prints its events."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources

from ._decoder import SSEDecoder
from ._models import Comment


def sample_bytes() -> bytes:
    """The sample stream shipped in the package."""
    return resources.files("sse_sync").joinpath("samples/tokens.txt").read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sse_sync`` and the ``sse-sync`` script."""
    parser = argparse.ArgumentParser(
        prog="sse-sync", description="Decode the built-in sample event stream and print it."
    )
    parser.add_argument(
        "--chunk", type=int, default=7, help="feed the decoder this many bytes at a time"
    )
    args = parser.parse_args(argv)
    if args.chunk < 1:
        parser.error("--chunk must be at least 1")
    body = sample_bytes()
    decoder = SSEDecoder()
    out = sys.stdout
    for pos in range(0, len(body), args.chunk):
        for item in decoder.feed_items(body[pos : pos + args.chunk]):
            if isinstance(item, Comment):
                out.write(f": {item.text.strip()}\n")
            else:
                id_part = f" id={item.id}" if item.id else ""
                out.write(f"[{item.event}{id_part}] {item.data}\n")
    decoder.close()
    out.write(f"(last event id {decoder.last_event_id!r}, retry {decoder.retry} ms)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
