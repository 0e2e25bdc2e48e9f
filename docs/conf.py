"""Sphinx configuration for the sse_sync documentation (Markdown pages via myst-parser).

Build it, warnings as errors, from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

``tests/test_docs.py`` runs the same build and executes every ``python`` code sample.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sse_sync  # noqa: E402

project = "sse_sync"
author = "sse_sync contributors"
copyright = "sse_sync contributors, Apache-2.0"
release = sse_sync.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
# docs/examples holds runnable programs (and perhaps their own READMEs), not pages of the site.
exclude_patterns = ["_build", "examples", "requirements.txt", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"sse_sync {release}"
html_theme_options = {
    "description": "Synchronous, threaded Server-Sent Events for requests",
    "fixed_sidebar": True,
}

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"

# Modules whose module-level constants are re-exported by ``sse_sync``.  Their ``#:`` /
# string-after-assignment docs live in the defining module, which autodoc does not look in when
# the constant is documented under its public name (it would show ``int``'s docstring instead).
_CONSTANT_HOMES = ("sse_sync._client", "sse_sync._decoder", "sse_sync._encoder", "sse_sync._ndjson")


def _constant_doc(name: str) -> list[str] | None:
    from sphinx.pycode import ModuleAnalyzer

    for modname in _CONSTANT_HOMES:
        module = importlib.import_module(modname)
        if name not in vars(module):
            continue
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        lines = docs.get(("", name))
        if lines:
            return [line for line in lines if line is not None]
    return None


def _process_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what == "data" and name.startswith("sse_sync.") and name.count(".") == 1:
        doc = _constant_doc(name.split(".", 1)[1])
        if doc is not None:
            lines[:] = doc
    # ``:param a, b, c: text`` documents three parameters at once, which Sphinx's field lists do
    # not understand (they read "a, b," as a type): give each name its own copy of the field.
    expanded: list[str] = []
    index = 0
    while index < len(lines):
        match = re.match(r"^(\s*):param (\w+(?:,\s*\w+)+):(.*)$", lines[index])
        if match is None:
            expanded.append(lines[index])
            index += 1
            continue
        indent, names, rest = match.groups()
        body = [rest]
        index += 1
        while index < len(lines) and lines[index].startswith(indent + " "):
            body.append(lines[index])
            index += 1
        for param in re.split(r",\s*", names):
            expanded.append(f"{indent}:param {param}:{body[0]}")
            expanded.extend(body[1:])
    lines[:] = expanded


def _process_signature(
    app: Any,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    # The streams are made by connect() and connect_ndjson(), never by users: hide their
    # private constructor.
    if name in _STREAMS:
        return "", return_annotation
    # EventStream is _Stream[Event]: say what T is where the generic base says T.
    owner = name.rpartition(".")[0]
    if owner in _STREAMS and return_annotation:
        return signature, re.sub(r"\bT\b", _STREAMS[owner], return_annotation)
    # A function default shows as "<function loads>", which is not Python: Sphinx could not
    # parse the signature and would print it raw.  Name the function instead.
    if signature and "<function " in signature:
        signature = re.sub(r"<function (?:JSONDecoder\.)?(loads|dumps)>", r"json.\1", signature)
        signature = re.sub(r"<function ([\w.]+)>", r"\1", signature)
        return signature, return_annotation
    return None


_STREAMS = {"sse_sync.EventStream": "Event", "sse_sync.NDJSONStream": "Any"}


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("autodoc-process-signature", _process_signature)
