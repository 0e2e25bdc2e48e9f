"""Print the interpreters tox needs for the Pythons setup.cfg claims, one path per line.

The running interpreter runs the whole suite; every other claimed version must have a `pyXY`
env in tox's env_list and an interpreter on this machine: on PATH (`python3.X`) or installed by
pyenv.  Anything missing is an error, never a skip, so CI cannot pass without testing a claim.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def claimed_versions(config: configparser.ConfigParser) -> list[tuple[int, int]]:
    classifiers = config["metadata"]["classifiers"]
    found = re.findall(r"^\s*Programming Language :: Python :: 3\.(\d+)\s*$", classifiers, re.M)
    return sorted((3, int(minor)) for minor in found)


def runs(path: str) -> bool:
    # A pyenv shim for a version that is not selected exists but fails when run.
    try:
        done = subprocess.run([path, "-c", "pass"], capture_output=True, timeout=60)
    except OSError:
        return False
    return done.returncode == 0


def pyenv_root() -> Path:
    if "PYENV_ROOT" in os.environ:
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    return Path.home() / ".pyenv"


def patch_level(path: Path) -> tuple[int, ...]:
    # versions/3.12.1/bin/python3.12 -> (3, 12, 1); pre-releases and odd names sort first.
    parts = path.parent.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


def find(version: tuple[int, int]) -> str | None:
    name = "python{}.{}".format(*version)
    on_path = shutil.which(name)
    if on_path is not None and runs(on_path):
        return on_path
    candidates = sorted(
        pyenv_root().glob("versions/{}.{}.*/bin/{}".format(*version, name)), key=patch_level
    )
    for candidate in reversed(candidates):
        if runs(str(candidate)):
            return str(candidate)
    return None


def main() -> int:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    env_list = {e.strip() for e in re.split(r"[,\s]+", config["tox:tox"]["env_list"]) if e}
    current = sys.version_info[:2]
    errors = []
    paths = []
    for version in claimed_versions(config):
        if version == current:
            continue
        env = "py{}{}".format(*version)
        if env not in env_list:
            errors.append(f"setup.cfg claims Python {version[0]}.{version[1]}, tox has no {env}")
        path = find(version)
        if path is None:
            errors.append(
                f"no interpreter for Python {version[0]}.{version[1]} "
                f"(python{version[0]}.{version[1]} on PATH, or under {pyenv_root()}/versions)"
            )
        else:
            paths.append(path)
    for error in errors:
        print(f"pythons.py: {error}", file=sys.stderr)
    if errors:
        return 1
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
