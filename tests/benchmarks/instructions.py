"""Machine instructions per event of the decoder benchmark's contenders, under callgrind.

Wall time on a shared machine moves by a fifth between runs; an instruction count does not.
Run from the repository root, with valgrind installed::

    python -m tests.benchmarks.instructions [--only WORKLOAD] [--contender NAME] [--scale S]

``--construct`` counts instead what building one event costs: ``Event(...)``, a frozen attrs
twin of it, and ``object.__new__(Event)`` plus four slot stores, as the decoder's hot paths do.

Each contender runs its workload once and twice, each in a fresh interpreter under
``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``; the difference is one warm run, so
imports and workload generation cancel out.  It is divided by the events the workload encodes.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

from . import bench_decoder as bench

DEFAULT_CONTENDERS = ("sse_sync", "ld-eventsource", "line-loop floor")


def _contender(name: str) -> bench.Contender:
    peers = [name] if name in bench.PEERS else []
    contenders, _ = bench.make_contenders(peers)
    for contender in contenders:
        if contender.name == name:
            return contender
    raise SystemExit(f"unknown or uninstalled contender {name!r}")


def _workload(row: str, scale: str) -> bench.Workload:
    (workload,) = bench.build_workloads(scale, [row])
    return workload


def child(name: str, row: str, runs: int, scale: str) -> int:
    """What runs under valgrind: the contender on the workload, ``runs`` times."""
    contender = _contender(name)
    workload = _workload(row, scale)
    chunks = workload.make_chunks()
    gc.disable()  # as in the timed benchmark
    try:
        for _ in range(runs):
            contender.run(chunks, workload.body)
    finally:
        gc.enable()
    return 0


CONSTRUCTIONS = ("Event(...)", "frozen twin", "__new__ + stores")
_CONSTRUCT_COUNT = 10_000


def construct(kind: str, count: int) -> int:
    """What runs under valgrind for ``--construct``: build ``count`` events one way."""
    import attrs

    from sse_sync import Event

    @attrs.frozen
    class Frozen:
        event: str = "message"
        data: str = ""
        id: str = ""
        retry: int | None = None

    new = object.__new__
    out: list[object] = []
    append = out.append
    gc.disable()
    try:
        if kind == "Event(...)":
            for _ in range(count):
                append(Event("message", "x", "", None))
        elif kind == "frozen twin":
            for _ in range(count):
                append(Frozen("message", "x", "", None))
        elif kind == "__new__ + stores":
            for _ in range(count):
                event = new(Event)
                event.event = "message"
                event.data = "x"
                event.id = ""
                event.retry = None
                append(event)
        else:
            raise SystemExit(f"unknown construction {kind!r}")
    finally:
        gc.enable()
    return 0


def _collected(*child_args: str) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "tests.benchmarks.instructions",
        *child_args,
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr}")
    return int(match.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tests.benchmarks.instructions``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=bench.ROWS, metavar="WORKLOAD")
    parser.add_argument("--contender", action="append", metavar="NAME")
    parser.add_argument("--scale", choices=bench.SCALES, default="quick")
    parser.add_argument("--construct", action="store_true", help="count event construction")
    parser.add_argument("--child", nargs=3, metavar=("NAME", "WORKLOAD", "RUNS"), help="internal")
    parser.add_argument("--child-construct", nargs=2, metavar=("KIND", "COUNT"), help="internal")
    args = parser.parse_args(argv)
    if args.child:
        name, row, runs = args.child
        return child(name, row, int(runs), args.scale)
    if args.child_construct:
        kind, count = args.child_construct
        return construct(kind, int(count))
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed")
    if args.construct:
        print("machine instructions per event built (callgrind, PYTHONHASHSEED=0)")
        for kind in CONSTRUCTIONS:
            one = _collected("--child-construct", kind, str(_CONSTRUCT_COUNT))
            two = _collected("--child-construct", kind, str(2 * _CONSTRUCT_COUNT))
            print(f"{kind:<18} {(two - one) / _CONSTRUCT_COUNT:>8,.0f}", flush=True)
        return 0
    names = args.contender or list(DEFAULT_CONTENDERS)
    rows = args.only or ["mixed"]
    print(f"machine instructions per event (callgrind, {args.scale} workloads, PYTHONHASHSEED=0)")
    for row in rows:
        events = len(_workload(row, args.scale).expected)
        for name in names:
            one = _collected("--child", name, row, "1", "--scale", args.scale)
            two = _collected("--child", name, row, "2", "--scale", args.scale)
            print(f"{row:<14} {name:<16} {(two - one) / events:>10,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
