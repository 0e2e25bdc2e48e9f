"""Check that this environment runs exactly the floors setup.cfg allows (tox's floors env).

Each `name>=X` of install_requires must be installed at version X, and the interpreter must be
the oldest that python_requires allows: otherwise the floors env would test something else.
"""

from __future__ import annotations

import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    options = config["options"]
    errors = []
    oldest = re.fullmatch(r">=\s*(\d+)\.(\d+)", options["python_requires"].strip())
    if oldest is None:
        errors.append(f"python_requires is not '>=3.N': {options['python_requires']!r}")
    elif sys.version_info[:2] != (int(oldest[1]), int(oldest[2])):
        errors.append(f"Python {sys.version.split()[0]}, not the oldest allowed {oldest[0]}")
    for line in options["install_requires"].splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        req = Requirement(line)
        floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
        if len(floors) != 1:
            errors.append(f"{line.strip()!r} has no single '>=' floor to test")
            continue
        installed = Version(metadata.version(req.name))
        status = "ok" if installed == floors[0] else "NOT THE FLOOR"
        print(f"floors.py: {req.name} {installed} (floor {floors[0]}): {status}")
        if installed != floors[0]:
            errors.append(f"{req.name} {installed} is installed, the floor is {floors[0]}")
    for error in errors:
        print(f"floors.py: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
