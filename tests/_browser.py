"""Drive a headless Chromium for tests: find it, start it on one URL, kill its process tree."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    # Without these Chromium reaches out to Google services over the (closed) network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--no-proxy-server",  # the page is on 127.0.0.1: never route it through a proxy
    "--disable-dev-shm-usage",  # small /dev/shm in containers would crash renderers
    "--mute-audio",
)


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH, or ``None``."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def live_group_members(pgid: int) -> list[int]:
    """PIDs of processes in group ``pgid`` that are not zombies (Linux ``/proc``)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def kill_tree(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """End ``proc`` and every process in its group (it was started in a new session).

    SIGTERM first, so Chromium can reap its helpers; SIGKILL for whatever is left.
    """
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # The main process is gone; its helpers may still be exiting.
        while live_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not live_group_members(pgid):
            return
    left = live_group_members(pgid)
    if left or proc.poll() is None:
        raise RuntimeError(f"chromium processes survived SIGKILL: {left}")


@contextmanager
def headless_chromium(executable: str, url: str, workdir: Path) -> Iterator[Path]:
    """Run ``executable`` headless on ``url`` until the block ends; yields its log file.

    Profile, cache and home all live under ``workdir``.  The whole process tree is killed on
    exit, whatever happened in the block.
    """
    profile = workdir / "profile"
    home = workdir / "home"
    profile.mkdir()
    home.mkdir()
    log_path = workdir / "chromium.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy")  # belt and braces with --no-proxy-server
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home), XDG_CACHE_HOME=str(home))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", url],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: killed as one in kill_tree
        )
        try:
            yield log_path
        finally:
            kill_tree(proc)


def log_tail(log_path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of the browser log, for failure messages."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
