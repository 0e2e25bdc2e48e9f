"""The decoder, its models and errors must be usable without importing requests or urllib3."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
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
    # e.g. a function-level import), may import only the standard library, attrs
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


# -- no import cycles -----------------------------------------------------------------------------

# The one place allowed to import from modules that may import it is the package's lazy loader:
# the module ``__getattr__`` of the top-level ``__init__`` (it runs only once the package is fully
# imported) and the ``if TYPE_CHECKING:`` block there declaring its names (it never runs).


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of a package by dotted name (a package's ``__init__`` as the package)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_lazy_loader(node: ast.AST) -> bool:
    if isinstance(node, ast.FunctionDef):
        return node.name == "__getattr__"
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, skip_lazy: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if skip_lazy and _is_lazy_loader(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node, skip_lazy)


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package modules it imports: at any depth (functions, ``TYPE_CHECKING``
    blocks), except in the package's lazy loader.  ``from x import name`` counts as an
    import of ``x.name`` when that is a module, and of ``x`` otherwise."""
    modules = package_modules(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _import_nodes(tree, skip_lazy=name == package_dir.name):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    targets.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
                continue
            if node.level:
                base_parts = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_sees_relative_absolute_and_lazy_imports() -> None:
    graph = import_graph()
    assert "sse_sync._channel" in graph["sse_sync._client"]  # module level, relative
    assert "sse_sync._client" in graph["sse_sync._demo"]
    assert "sse_sync.testing" in graph["sse_sync.pytest_plugin"]  # absolute
    # The lazy loader is the one exception: its imports are not edges.
    assert "sse_sync._client" not in graph["sse_sync"]
    assert "sse_sync._decoder" in graph["sse_sync"]


def test_import_graph_counts_function_level_imports_but_not_the_lazy_loader(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": (
            "from typing import TYPE_CHECKING\n"
            "from ._models import Event\n"
            "if TYPE_CHECKING:\n"
            "    from ._client import connect\n"
            "def __getattr__(name):\n"
            "    from . import _client\n"
        ),
        # Event.encode importing the encoder, which imports the models: a cycle.
        "_models.py": "class Event:\n    def encode(self):\n        from ._encoder import enc\n",
        "_encoder.py": "from ._models import Event\n",
        "_client.py": "import pkg._models\nfrom pkg import Event\n",
        "sub/__init__.py": "from ._impl import x\n",
        "sub/_impl.py": "from .. import _client\nfrom . import _more\n",
        "sub/_more.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    graph = import_graph(package)
    assert graph == {
        "pkg": {"pkg._models"},
        "pkg._models": {"pkg._encoder"},
        "pkg._encoder": {"pkg._models"},
        "pkg._client": {"pkg", "pkg._models"},
        "pkg.sub": {"pkg.sub._impl"},
        "pkg.sub._impl": {"pkg._client", "pkg.sub._more"},
        "pkg.sub._more": set(),
    }
    assert cycles(graph) == [["pkg._encoder", "pkg._models"]]


def test_no_import_cycles_among_package_modules() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
