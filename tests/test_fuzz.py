"""Bounded atheris runs of the fuzz harnesses in ``tests/fuzz`` (their docstrings list the
properties checked).

Each harness runs in a subprocess, as ``python -m tests.fuzz.<name>``, because libFuzzer owns
the process it fuzzes in: it installs signal handlers and exits when it is done.  A run starts
from the harness's seeds with a fixed libFuzzer seed, so it is repeatable, and stops after a
fixed number of inputs sized to take well under 20 s on a 2-core machine.  A property violation
makes atheris exit non-zero and save the input under the test's tmp_path; the failure message
shows the traceback and the input in Base64.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    # Any ImportError, not only a missing module: a wheel built for another platform or Python
    # fails to load its native part, and that too means there is nothing to fuzz with.
    importlib.import_module("atheris")
except ImportError as exc:
    pytest.skip(
        f"atheris is not importable ({exc}); wheels exist for Linux x86_64 only: "
        "pip install atheris",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent

# Inputs per harness.  The SSE harness decodes each input five ways, mostly one byte per feed,
# so it manages about 1,100 inputs/s from its seeds; the NDJSON one about 4,000.
RUNS = {"fuzz_decoder": 20_000, "fuzz_ndjson": 40_000}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("harness", sorted(RUNS))
def test_fuzz_harness(harness: str, tmp_path: Path) -> None:
    runs = RUNS[harness]
    corpus = tmp_path / "corpus"
    command = [
        sys.executable,
        "-m",
        f"tests.fuzz.{harness}",
        str(corpus),
        "--add-seeds",
        f"-atheris_runs={runs}",
        "-seed=1",
        # A hang or a leak in one input becomes a reported crash, not a silent wait.
        "-timeout=20",
        "-rss_limit_mb=1024",
        f"-artifact_prefix={tmp_path}/",
    ]
    # atheris prints a Python traceback on stdout and libFuzzer its report on stderr: one
    # unbuffered pipe keeps them in order, so the report below is the traceback, then the input.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=120,
    )
    output, code = result.stdout, result.returncode
    crash = output.find("=== Uncaught Python exception")
    tail = output[crash:] if crash >= 0 else "\n".join(output.splitlines()[-40:])
    assert code == 0, f"{harness} exited with {code}:\n{tail}"
    # atheris prints this only when it stopped because the runs were used up.
    assert f"Done {runs} in " in output, f"{harness} did not report {runs} runs:\n{tail}"
    seeds = re.search(r"wrote (\d+) seeds", output)
    # encode() drops a seed that this atheris version would read differently; losing them all
    # would quietly weaken this test, so that is a failure too.
    assert seeds is not None, f"{harness} wrote no seeds:\n{tail}"
    assert int(seeds.group(1)) > 0, f"{harness}: no seed survived encode():\n{tail}"
