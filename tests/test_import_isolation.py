"""The decoder, its models and errors must be usable without importing requests or urllib3."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _vectors import REPO_DIR

PACKAGE_DIR = REPO_DIR / "sse_sync"
DECODER_MODULES = ("_decoder", "_models", "_errors")
ALLOWED_THIRD_PARTY = {"attrs", "attr"}
FORBIDDEN = ("requests", "urllib3")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import sse_sync

    events = sse_sync.decode(b"event: t\\nid: 1\\ndata: {\\"a\\": 1}\\n\\n")
    assert events == [sse_sync.Event("t", '{"a": 1}', "1")], events
    assert events[0].json() == {"a": 1}
    decoder = sse_sync.SSEDecoder()
    assert decoder.feed(b"data: x\\n\\n") == [sse_sync.Event(data="x")]
    assert decoder.feed_items(b":c\\n") == [sse_sync.Comment("c")]
    assert decoder.close() == []
    assert [e.data for e in sse_sync.iter_events([b"data: a", b"\\n\\n"])] == ["a"]
    assert b"data: y" in sse_sync.Event(data="y").encode()
    loaded = sorted(
        name for name in sys.modules if name.split(".")[0] in ("requests", "urllib3")
    )
    print(json.dumps({"file": sse_sync.__file__, "loaded": loaded}))
    """
)


def test_decoder_use_does_not_import_requests_or_urllib3() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).resolve().parent == PACKAGE_DIR.resolve()
    assert result["loaded"] == [], f"importing/using the decoder loaded {result['loaded']}"


def imports_of(path: Path) -> list[tuple[int, str, int]]:
    """Every import in a module, at any depth: (level, module, line); ``from . import x`` gives
    (1, "x", line)."""
    found: list[tuple[int, str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and not node.module:
                found += [(node.level, alias.name, node.lineno) for alias in node.names]
            else:
                found.append((node.level, node.module or "", node.lineno))
    return found


def test_imports_of_decoder_modules_are_stdlib_attrs_or_siblings() -> None:
    # The three modules, and every sibling module they import (even lazily inside a function,
    # e.g. Event.encode importing the encoder), may import only the standard library, attrs
    # and each other.
    problems: list[str] = []
    todo = list(DECODER_MODULES)
    checked: set[str] = set()
    while todo:
        name = todo.pop()
        if name in checked:
            continue
        checked.add(name)
        path = PACKAGE_DIR / f"{name}.py"
        if not path.is_file():
            problems.append(f"sse_sync.{name} is imported but {path} does not exist")
            continue
        for level, module, line in imports_of(path):
            where = f"{path.name}:{line}"
            if level == 0:
                top = module.split(".")[0]
                if top == "sse_sync":
                    sibling = module.split(".")[1] if "." in module else "__init__"
                    todo.append(sibling)
                elif top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY:
                    problems.append(f"{where} imports {module}")
            elif level == 1:
                sibling = module.split(".")[0]
                if sibling == "__init__" or not sibling:
                    problems.append(f"{where} imports the package itself")
                else:
                    todo.append(sibling)
            else:
                problems.append(f"{where} imports from outside the package (level {level})")
    assert set(DECODER_MODULES) <= checked
    for name in checked:
        assert not any(name.startswith(bad) for bad in FORBIDDEN)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", DECODER_MODULES)
def test_decoder_module_imports_neither_requests_nor_urllib3(name: str) -> None:
    for _, module, line in imports_of(PACKAGE_DIR / f"{name}.py"):
        assert module.split(".")[0] not in FORBIDDEN, f"{name}.py:{line} imports {module}"
