"""The documentation: it builds without a warning, and every code sample in it runs.

Samples are the fenced ```` ```python ```` blocks of ``docs/*.md``, ``docs/guide/*.md`` and
``README.md``.  The blocks of one page run in order, in one namespace (like a reader pasting
them into one interpreter), each in a worker thread with a time limit; any exception fails the
test, which names the page, the line and the source of the failing block.

Names a sample may use without defining them, bound to servers on 127.0.0.1 started here:

``url``
    An event stream that resumes like a real one.  Each response is ``retry: 100``, then the
    events after the request's ``Last-Event-ID`` out of three (``id: 1`` ``hello``; ``id: 2``
    ``event: update`` ``{"count": 1}``; a ``: keep-alive`` comment; ``id: 3`` ``event: update``
    ``{"count": 2}``), then the end of the body.  A request with nothing left to send gets a
    204, so a plain ``for event in stream`` loop ends after the three events and one quick
    reconnection, as it would against a server that is done.
``base_url``, ``api_key``
    An OpenAI-compatible API (``POST {base_url}/chat/completions`` streams the reply as
    ``chat.completion.chunk`` objects, then ``data: [DONE]``; ``POST {base_url}/responses``
    an OpenAI Responses ``response.created`` ... ``response.completed`` sequence;
    ``POST {base_url}/messages`` an Anthropic-style ``message_start`` ... ``message_stop``
    sequence).  Requests without ``api_key`` get a 401, chat-completion requests without
    ``"stream": true`` a plain JSON answer.
``ndjson_url``
    An ``application/x-ndjson`` stream of the same three records, one JSON object per line.

A block that defines ``test_*`` functions has them called right after it runs, as pytest would;
a ``sse_server`` parameter gets a started :class:`sse_sync.testing.SSEServer`, like the fixture
of ``sse_sync.pytest_plugin``.

Markers, as an HTML comment on the line(s) just before a block (invisible on the site):

``<!-- no-test: why -->``
    Do not run this block (it needs a real service, say).  Keep these rare.
``<!-- requires: flask django -->``
    Skip this block and the rest of the page (reported as a skip) if a module is missing; a
    dotted name (``sse_sync.connect_ndjson``) may also name an attribute of a module.
``<!-- optional: sseclient -->``
    Skip just this self-contained block if a module is missing (reported as a skip).
``<!-- output -->``
    Before a ```` ```text ```` block: the exact standard output of the python block before it.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import io
import json
import logging
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sse_sync
from sse_sync.testing import (
    RecordedRequest,
    Script,
    SSEServer,
    close,
    comment,
    event,
    respond,
    send,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SAMPLE_TIMEOUT = 20.0
BUILD_TIMEOUT = 120


def pages() -> list[Path]:
    found = [*DOCS.glob("*.md"), *DOCS.glob("guide/*.md"), ROOT / "README.md"]
    return sorted(p for p in found if p.is_file())


# -- extracting samples ----------------------------------------------------------------------


@dataclass
class Block:
    """One fenced code block of a page."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<name>[\w-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with the markers in the comments just before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    markers: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = _MARKER.match(line)
        if marker:
            markers[marker["name"]] = marker["value"] or ""
            index += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                markers = {}
            index += 1
            continue
        indent, mark = len(fence["indent"]), fence["fence"]
        info = fence["info"].strip()
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(mark) and not closing.strip(mark[0]):
                break
            text = lines[index]
            body.append(text[indent:] if text[:indent].strip() == "" else text)
            index += 1
        else:
            raise AssertionError(f"{path.relative_to(ROOT)}: unclosed fence at line {index}")
        lang = info.split()[0] if info else ""
        found.append(Block(path, index - len(body), lang, "\n".join(body) + "\n", markers))
        markers = {}
        index += 1
    return found


def samples(path: Path) -> list[tuple[Block, Block | None]]:
    """The python blocks of ``path``, each with the expected-output block after it, if any."""
    found = blocks(path)
    result: list[tuple[Block, Block | None]] = []
    for position, block in enumerate(found):
        if block.lang != "python":
            if "output" in block.markers and not (result and result[-1][1] is block):
                raise AssertionError(f"{block.where}: an output block must follow a python block")
            continue
        following = found[position + 1] if position + 1 < len(found) else None
        output = following if following is not None and "output" in following.markers else None
        if output is not None and output.lang != "text":
            raise AssertionError(f"{output.where}: an output block is a ```text block")
        result.append((block, output))
    return result


# -- the servers the samples talk to ---------------------------------------------------------

FEED = [
    ("1", None, "hello"),
    ("2", "update", '{"count": 1}'),
    ("3", "update", '{"count": 2}'),
]
API_KEY = "sk-docs-0123456789"
REPLY = ["Hello", "!", " How", " can", " I", " help", "?"]


def _feed(request: RecordedRequest) -> Any:
    last = request.headers.get("Last-Event-ID")
    after = int(last) if last and last.isdigit() else 0
    todo = [item for item in FEED if int(item[0]) > after]
    if not todo:
        return respond(204)
    actions = [event(retry=100)]
    for id_, kind, data in todo:
        if id_ == "3":
            actions.append(comment(" keep-alive"))
        actions.append(event(data, event=kind, id=id_))
    return [*actions, close()]


def _ndjson(request: RecordedRequest) -> Any:
    records = [
        send(json.dumps({"id": int(id_), "type": kind or "message", "data": data}) + "\n")
        for id_, kind, data in FEED
    ]
    return Script([*records, close()], content_type="application/x-ndjson")


def _unauthorised(request: RecordedRequest, header: str, value: str) -> Any:
    if request.headers.get(header) == value:
        return None
    body = json.dumps({"error": {"message": "Incorrect API key provided", "type": "auth"}})
    return respond(401, body, {"Content-Type": "application/json"})


def _chat(request: RecordedRequest) -> Any:
    denied = _unauthorised(request, "Authorization", f"Bearer {API_KEY}")
    if denied is not None:
        return denied
    body = request.json() if request.body else {}
    model = body.get("model", "gpt-4o-mini")
    if not body.get("stream"):
        answer = {
            "id": "chatcmpl-docs",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(REPLY)},
                    "finish_reason": "stop",
                }
            ],
        }
        return respond(200, json.dumps(answer), {"Content-Type": "application/json"})

    def chunk(delta: dict[str, str], finish: str | None = None) -> Any:
        data = {
            "id": "chatcmpl-docs",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return event(json.dumps(data))

    actions = [chunk({"role": "assistant", "content": ""})]
    actions += [chunk({"content": token}) for token in REPLY]
    actions.append(chunk({}, "stop"))
    if body.get("stream_options", {}).get("include_usage"):
        usage = {"prompt_tokens": 9, "completion_tokens": len(REPLY), "total_tokens": 16}
        final = {"id": "chatcmpl-docs", "object": "chat.completion.chunk", "model": model}
        actions.append(event(json.dumps({**final, "choices": [], "usage": usage})))
    return [*actions, event("[DONE]"), close()]


def _messages(request: RecordedRequest) -> Any:
    denied = _unauthorised(request, "x-api-key", API_KEY)
    if denied is not None:
        return denied
    body = request.json() if request.body else {}
    model = body.get("model", "claude-sonnet-4-5")

    def typed(kind: str, **data: Any) -> Any:
        return event(json.dumps({"type": kind, **data}), event=kind)

    message = {"id": "msg_docs", "type": "message", "role": "assistant", "model": model}
    usage = {"input_tokens": 9, "output_tokens": 1}
    actions = [
        typed("message_start", message={**message, "content": [], "usage": usage}),
        typed("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        typed("ping"),
    ]
    actions += [
        typed("content_block_delta", index=0, delta={"type": "text_delta", "text": token})
        for token in REPLY
    ]
    actions += [
        typed("content_block_stop", index=0),
        typed("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 7}),
        typed("message_stop"),
        close(),
    ]
    return actions


def _responses(request: RecordedRequest) -> Any:
    denied = _unauthorised(request, "Authorization", f"Bearer {API_KEY}")
    if denied is not None:
        return denied
    body = request.json() if request.body else {}
    sequence = iter(range(1000))

    def typed(kind: str, **data: Any) -> Any:
        return event(
            json.dumps({"type": kind, "sequence_number": next(sequence), **data}), event=kind
        )

    def response(status: str, **data: Any) -> dict[str, Any]:
        return {"id": "resp_docs", "object": "response", "status": status, **data}

    text = "".join(REPLY)
    where = {"item_id": "msg_docs", "output_index": 0, "content_index": 0}
    item = {"id": "msg_docs", "type": "message", "role": "assistant", "content": []}
    usage = {"input_tokens": 9, "output_tokens": len(REPLY), "total_tokens": 9 + len(REPLY)}
    final = {"type": "output_text", "text": text, "annotations": []}
    return [
        typed("response.created", response=response("in_progress", model=body.get("model"))),
        typed("response.output_item.added", output_index=0, item=item),
        typed("response.content_part.added", **where, part={**final, "text": ""}),
        *(typed("response.output_text.delta", **where, delta=token) for token in REPLY),
        typed("response.output_text.done", **where, text=text),
        typed("response.content_part.done", **where, part=final),
        typed("response.output_item.done", output_index=0, item={**item, "content": [final]}),
        typed("response.completed", response=response("completed", usage=usage)),
        close(),
    ]


@pytest.fixture(scope="module")
def doc_server() -> Iterator[SSEServer]:
    with SSEServer() as server:
        server.route("/events", _feed)
        server.route("/feed.ndjson", _ndjson)
        server.route("/v1/chat/completions", _chat)
        server.route("/v1/messages", _messages)
        server.route("/v1/responses", _responses)
        yield server


def bindings(server: SSEServer) -> dict[str, Any]:
    return {
        "url": server.url_for("/events"),
        "ndjson_url": server.url_for("/feed.ndjson"),
        "base_url": server.url_for("/v1"),
        "api_key": API_KEY,
    }


# -- running samples -------------------------------------------------------------------------


def run_block(block: Block, namespace: dict[str, Any], timeout: float) -> str:
    """Execute ``block`` in ``namespace`` within ``timeout`` seconds; return what it printed."""
    code = compile("\n" * (block.line) + block.source, str(block.path), "exec", dont_inherit=True)
    out = io.StringIO()
    failure: list[BaseException] = []

    def target() -> None:
        before = {name: namespace.get(name) for name in namespace}
        try:
            exec(code, namespace)
            for name, value in list(namespace.items()):
                if name.startswith("test_") and callable(value) and before.get(name) is not value:
                    call_test(value)
        except BaseException as exc:
            failure.append(exc)

    with contextlib.redirect_stdout(out):
        worker = threading.Thread(target=target, name=f"docs-sample-{block.line}", daemon=True)
        worker.start()
        worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"{block.where}: still running after {timeout} s\n\n{block.source}")
    if failure:
        text = "".join(traceback.format_exception(failure[0]))
        pytest.fail(f"{block.where}: raised\n\n{block.source}\n{text}")
    return out.getvalue()


def call_test(function: Any) -> None:
    """Call a ``test_*`` function a sample defined, as pytest would, with its fixtures."""
    names = list(inspect.signature(function).parameters)
    unknown = [name for name in names if name != "sse_server"]
    assert not unknown, f"{function.__name__}: no fixture {unknown} for doc samples"
    if not names:
        function()
        return
    with SSEServer() as server:  # what sse_sync.pytest_plugin's sse_server fixture gives
        function(server)


@pytest.mark.network
@pytest.mark.timeout(120)
@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_samples_run(page: Path, doc_server: SSEServer) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__", **bindings(doc_server)}
    with django_settings_restored(), logging_restored():
        ran, skipped = run_page(page, namespace)
    doc_server.assert_no_errors()
    if skipped:
        pytest.skip(f"ran {ran} blocks; {skipped}")


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Undo a sample's ``logging.getLogger(...).setLevel(...)``: other tests capture logs."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    levels = {logger: logger.level for logger in loggers if isinstance(logger, logging.Logger)}
    try:
        yield
    finally:
        for logger in logging.Logger.manager.loggerDict.values():
            if isinstance(logger, logging.Logger) and logger not in levels:
                logger.setLevel(logging.NOTSET)  # made by the sample
        for logger, level in levels.items():
            logger.setLevel(level)


@contextlib.contextmanager
def django_settings_restored() -> Iterator[None]:
    """Undo a sample's ``settings.configure()``, so that other tests can configure Django."""
    configured = False
    if "django.conf" in sys.modules:
        from django.conf import settings

        configured = settings.configured
    try:
        yield
    finally:
        if not configured and "django.conf" in sys.modules:
            from django.conf import settings
            from django.utils.functional import empty

            settings._wrapped = empty


def run_page(page: Path, namespace: dict[str, Any]) -> tuple[int, str]:
    """Run the samples of ``page``; how many ran, and why the rest did not (or "")."""
    ran = 0
    skipped: list[str] = []
    for block, output in samples(page):
        if "no-test" in block.markers:
            assert block.markers["no-test"], f"{block.where}: say why, <!-- no-test: why -->"
            continue
        if not all(installed(m) for m in block.markers.get("optional", "").split()):
            skipped.append(block.where)
            continue
        missing = [m for m in block.markers.get("requires", "").split() if not installed(m)]
        if missing:
            # Later blocks build on this one: skip the rest of the page.
            return ran, f"{block.where} and the blocks after it need {', '.join(missing)}"
        printed = run_block(block, namespace, SAMPLE_TIMEOUT)
        ran += 1
        if output is not None:
            assert printed == output.source, (
                f"{block.where}: printed output differs from {output.where}\n"
                f"--- printed\n{printed}--- documented\n{output.source}"
            )
    return ran, f"skipped {', '.join(skipped)} (optional module missing)" if skipped else ""


def installed(name: str) -> bool:
    """Whether module ``name`` can be imported, or (``package.attribute``) the attribute exists."""
    try:
        if importlib.util.find_spec(name) is not None:
            return True
    except ImportError:
        pass
    parent, _, attribute = name.rpartition(".")
    if not parent:
        return False
    try:
        return hasattr(importlib.import_module(parent), attribute)
    except ImportError:
        return False


def test_sample_extraction_understands_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n<!-- no-test: needs a key -->\n```python\nboom()\n```\n\n"
        "````markdown\n```python\nnot_a_sample()\n```\n````\n\n"
        "- item\n\n  ```python\n  print('hi')\n  ```\n\n"
        "  <!-- output -->\n  ```text\n  hi\n  ```\n",
        encoding="utf-8",
    )
    found = samples(page)
    assert [(b.source, b.markers, o.source if o else None) for b, o in found] == [
        ("boom()\n", {"no-test": "needs a key"}, None),
        ("print('hi')\n", {}, "hi\n"),
    ]


def test_every_sample_is_valid_python() -> None:
    # Parses every block, including the ones marked no-test, so none of them rots unnoticed.
    for page in pages():
        for block, _ in samples(page):
            try:
                ast.parse(block.source)
            except SyntaxError as exc:
                pytest.fail(f"{block.where}: {exc}")


# -- the reference and the defaults ----------------------------------------------------------

_AUTODOC = re.compile(r"^\.\. auto\w+:: (?P<name>[\w.]+)", re.MULTILINE)


def documented_names() -> set[str]:
    return {m["name"] for m in _AUTODOC.finditer((DOCS / "api.md").read_text(encoding="utf-8"))}


def test_api_reference_covers_every_public_name() -> None:
    names = documented_names()
    expected = {f"sse_sync.{name}" for name in sse_sync.__all__ if name != "__version__"}
    for module in ("sse_sync.testing", "sse_sync.chat"):
        if importlib.util.find_spec(module) is None:
            continue
        mod = importlib.import_module(module)
        if f"{module}" in names:  # an automodule with :members: covers its __all__
            continue
        expected |= {f"{module}.{name}" for name in getattr(mod, "__all__", ())}
    missing = sorted(expected - names)
    assert not missing, f"docs/api.md documents no {missing}"


_DEFAULT_ROW = re.compile(
    r"^\| `(?P<owner>[\w.]+)\((?P<param>\w+)=\.\.\.\)` \| `(?P<value>[^`]+)`", re.MULTILINE
)


def test_documented_defaults_match_the_code() -> None:
    text = (DOCS / "guide" / "errors.md").read_text(encoding="utf-8")
    rows = list(_DEFAULT_ROW.finditer(text))
    assert len(rows) >= 10, "the defaults table on guide/errors.md went missing"
    for row in rows:
        owner: Any = sse_sync
        for part in row["owner"].split("."):
            if not hasattr(owner, part):  # a submodule not imported yet: sse_sync.chat
                importlib.import_module(f"{owner.__name__}.{part}")
            owner = getattr(owner, part)
        default = inspect.signature(owner).parameters[row["param"]].default
        value = eval(row["value"], {"__builtins__": {}}, {"RetryPolicy": sse_sync.RetryPolicy})
        assert value == default, f"{row['owner']}({row['param']}=) is {default!r} in the code"


# -- the build -------------------------------------------------------------------------------


@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    for module in ("sphinx", "myst_parser"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(DOCS),
        str(tmp_path / "html"),
    ]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    assert result.returncode == 0, (
        f"sphinx failed after {time.monotonic() - started:.0f} s:\n{result.stderr}{result.stdout}"
    )
    assert (tmp_path / "html" / "index.html").is_file()
