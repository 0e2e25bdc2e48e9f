"""What the atheris harnesses share: input sizes, chunking, seeds and the command line.

Imports neither atheris nor sse_sync at module level, so that each harness instruments the
package itself before importing it.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# int() refuses more digits than this (Python 3.11+), which the decoders must survive; 640 is the
# lowest setting, so a number of fuzzer size reaches that branch (the default is 4300).
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(640)

# Limits this small are hit by inputs of a few dozen bytes, which libFuzzer explores quickly.
SMALL_LIMIT = 64
# Chunk sizes cycle through a list of up to MAX_SIZES entries of 0..MAX_CHUNK bytes: enough to
# cut a line, a CRLF, a BOM or a multi-byte character anywhere; 0 feeds an empty chunk, which
# must be harmless.
MAX_SIZES = 8
MAX_CHUNK = 48
# A long stream cut into many tiny chunks costs a feed per chunk and finds little that the first
# few hundred did not: beyond this many, the rest is fed whole, which keeps runs fast.
MAX_CHUNKS = 128


def split(stream: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``stream`` into chunks of the given sizes, cycling (no sizes: one byte each), and
    the rest after MAX_CHUNKS chunks into one last chunk."""
    if not any(sizes):
        # One byte each, or only empty chunks: those would never advance, so feed them once.
        sizes = [1] if not sizes else [*sizes, 1]
    chunks: list[bytes] = []
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(stream):
            break
        if len(chunks) == MAX_CHUNKS:
            chunks.append(stream[pos:])
            break
        chunks.append(stream[pos : pos + size])
        pos += size
    return chunks


def write_seeds(
    directory: Path, seeds: Iterable[tuple[Any, ...]], encode: Callable[..., bytes | None]
) -> int:
    """Write each seed, as ``encode(*seed)`` makes it a fuzzer input, into ``directory``;
    return how many this atheris reads back as meant (``encode`` gives None for the others)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for number, seed in enumerate(seeds):
        data = encode(*seed)
        if data is not None:
            (directory / f"seed-{number}").write_bytes(data)
            written += 1
    return written


def main(
    argv: list[str], fuzz_one_input: Callable[[bytes], None], seeds: Callable[[Path], int]
) -> None:
    """Run atheris with libFuzzer's flags from ``argv``, plus ours: ``--add-seeds``."""
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    if "--add-seeds" in argv:
        # Ours, not libFuzzer's: write the seeds into the corpus directory (the first argument
        # that is not a flag) before fuzzing starts from it.
        argv = [arg for arg in argv if arg != "--add-seeds"]
        corpus = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
        if corpus is None:
            sys.exit("--add-seeds needs a corpus directory")
        print(f"INFO: wrote {seeds(Path(corpus))} seeds to {corpus}", file=sys.stderr)
    atheris.Setup(argv, fuzz_one_input)
    atheris.Fuzz()
