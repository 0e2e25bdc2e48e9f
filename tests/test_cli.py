"""The command line, run as users run it: ``python -m sse_sync`` in a subprocess, against an
SSEServer on 127.0.0.1 in this process.  Parsing and formatting details are checked in-process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pytest

import sse_sync
from sse_sync import _demo
from sse_sync._cli import (
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_RESPONSE,
    EXIT_USAGE,
    Printer,
    main,
    use_color,
)
from sse_sync.testing import (
    Action,
    RecordedRequest,
    Script,
    SSEServer,
    comment,
    drop,
    event,
    hold,
    wait_for,
)

pytestmark = pytest.mark.timeout(30)

REPO_DIR = Path(__file__).resolve().parents[1]

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

# Python leaves SIGINT ignored if it started that way (a background job of a script, as in
# some CI runners); install the handler an interactive shell would give it.
_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('sse_sync', run_name='__main__', alter_sys=True)"
)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    env.pop("NO_COLOR", None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_cli(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """``python -m sse_sync ARGS`` to completion; the child is killed if it overruns."""
    return subprocess.run(
        [sys.executable, "-m", "sse_sync", *args],
        cwd=REPO_DIR,
        env=cli_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


@contextmanager
def spawn_cli(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """The CLI running in the background, with SIGINT handled; killed if the test leaves early."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WITH_SIGINT, *args],
        cwd=REPO_DIR,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def read_line(proc: subprocess.Popen[bytes], timeout: float = 10) -> str:
    """One line of the child's stdout, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no line from the CLI within {timeout} s; got {data!r}")
            byte = os.read(fd, 1)  # one byte at a time: nothing past the line is consumed
            if not byte:
                raise EOFError(f"the CLI closed stdout; got {data!r}")
            data += byte
    return data.decode()


def assert_clean_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    """A single ``sse-sync: ...`` line on stderr, naming ``words``, and no traceback."""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sse-sync: ")
    for word in words:
        assert word in lines[0]


# -- output --------------------------------------------------------------------------------

MIXED = [
    comment(" hello"),
    event("one\ntwo", id="1", retry=500),
    event("x\x1b[31my", event="t"),
    event("", id="2"),
    event("not shown"),
    hold(),
]


def test_text_output(server: SSEServer) -> None:
    server.route("/s", MIXED)
    proc = run_cli(server.url_for("/s"), "--comments", "-n", "3")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.splitlines() == [
        ": hello",
        "[message id=1 retry=500] one",
        "  two",
        r"[t id=1] x\x1b[31my",  # a server cannot send escape sequences to the terminal
        "[message id=2]",
    ]
    assert proc.stderr == ""
    server.wait_disconnect()  # the CLI closed its connection when -n was reached


def test_json_lines_parse_back(server: SSEServer) -> None:
    server.route("/s", MIXED)
    proc = run_cli(server.url_for("/s"), "--json-lines", "--comments", "-n", "3")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"comment": " hello"},
        {"type": "message", "data": "one\ntwo", "id": "1", "retry": 500},
        {"type": "t", "data": "x\x1b[31my", "id": "1", "retry": None},
        {"type": "message", "data": "", "id": "2", "retry": None},
    ]


def test_event_filter_and_max_events(server: SSEServer) -> None:
    kinds = ["a", "b", "c", "a", "b", "c"]
    server.route("/s", [*(event(k + str(i), event=k) for i, k in enumerate(kinds)), hold()])
    proc = run_cli(server.url_for("/s"), "-e", "c", "--event", "b", "-n", "3", "--json-lines")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert [json.loads(line)["data"] for line in proc.stdout.splitlines()] == ["b1", "c2", "b4"]
    server.wait_disconnect()


def test_max_time_stops_a_silent_stream(server: SSEServer) -> None:
    server.route("/s", [event("first"), hold()])
    started = time.monotonic()
    proc = run_cli(server.url_for("/s"), "-t", "0.5")
    elapsed = time.monotonic() - started
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout == "[message] first\n"
    assert 0.5 <= elapsed < 10
    server.wait_disconnect()


def test_reconnects_with_last_event_id(server: SSEServer) -> None:
    # retry: 50 ms, so that the reconnection comes at once; the first response then ends.
    scripts: list[list[Action]] = [[event("1", id="1", retry=50)], [event("2", id="2"), hold()]]
    server.route("/s", scripts)
    proc = run_cli(server.url_for("/s"), "-n", "2", "--json-lines")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["1", "2"]
    server.wait_request("/s")
    assert server.wait_request("/s").headers.get("Last-Event-ID") == "1"
    # Reconnection is reported on stderr, never mixed into the events on stdout.
    assert "reconnecting in" in proc.stderr
    assert "reconnected (Last-Event-ID: 1)" in proc.stderr


# -- the request -----------------------------------------------------------------------------


def test_method_headers_json_body_and_last_event_id(server: SSEServer) -> None:
    server.route("/s", [event("ok")])
    proc = run_cli(
        server.url_for("/s?q=1"),
        "-X",
        "put",
        "-H",
        "X-Token: abc def",
        "-H",
        "Accept-Language:fr",
        "--json",
        '{"q": [1, 2], "s": "\u00e9"}',
        "--last-event-id",
        "42",
    )
    assert proc.returncode == EXIT_OK, proc.stderr  # a request with a body is not retried
    assert proc.stdout == "[message id=42] ok\n"  # the ID given is in effect from the start
    request = server.wait_request("/s")
    assert request.method == "PUT"
    assert request.query == "q=1"
    assert request.headers["X-Token"] == "abc def"
    assert request.headers["Accept-Language"] == "fr"
    assert request.headers["Last-Event-ID"] == "42"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"q": [1, 2], "s": "\u00e9"}


def test_data_body_is_a_form_post(server: SSEServer, tmp_path: Path) -> None:
    server.route("/s", [event("ok")])
    body = tmp_path / "body.txt"
    body.write_bytes(b"a=1&b=two")
    # No scheme: http, as curl assumes.
    proc = run_cli(server.url_for("/s").removeprefix("http://"), "-d", f"@{body}")
    assert proc.returncode == EXIT_OK, proc.stderr
    request = server.wait_request("/s")
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == b"a=1&b=two"


# -- exit codes ------------------------------------------------------------------------------


def test_http_error_status_exits_3(server: SSEServer) -> None:
    proc = run_cli(server.url_for("/missing"))
    assert proc.returncode == EXIT_RESPONSE
    assert_clean_error(proc, "404", "/missing")
    assert proc.stdout == ""


def test_wrong_content_type_exits_3(server: SSEServer) -> None:
    server.route("/s", Script([event("x")], content_type="application/json"))
    proc = run_cli(server.url_for("/s"))
    assert proc.returncode == EXIT_RESPONSE
    assert_clean_error(proc, "text/event-stream", "application/json")


def test_refused_connection_exits_4() -> None:
    with SSEServer() as stopped:
        url = stopped.url_for("/s")
    proc = run_cli(url)
    assert proc.returncode == EXIT_NETWORK
    assert_clean_error(proc, "cannot connect", "refused")


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--no-retry"], ["stream broke"]),
        (["--max-retries", "0"], ["gave up after 0 reconnection attempts", "stream broke"]),
    ],
)
def test_broken_stream_exits_4(server: SSEServer, option: list[str], words: list[str]) -> None:
    server.route("/s", [event("before", id="1"), drop()])
    proc = run_cli(server.url_for("/s"), *option)
    assert proc.returncode == EXIT_NETWORK
    assert proc.stdout == "[message id=1] before\n"  # events before the break are printed
    assert_clean_error(proc, *words)


def test_one_reconnection_attempt_is_said_in_the_singular(server: SSEServer) -> None:
    # A connection that delivered resets the count: the reconnection must fail on its own.
    server.route("/s", [[event("before", id="1", retry=10), drop()], [drop()]])
    proc = run_cli(server.url_for("/s"), "--max-retries", "1")
    assert proc.returncode == EXIT_NETWORK
    last = proc.stderr.splitlines()[-1]
    assert "gave up after 1 reconnection attempt (" in last, proc.stderr
    assert "attempts" not in last


# The CLI with two records logged under sse_sync.stream as it connects, as the library's own
# lifecycle records would be; the second quotes a control sequence a server might send.
_WITH_RECORDS = (
    "import logging, runpy, sse_sync._client as client; real = client.connect\n"
    "def connect(*args, **kwargs):\n"
    "    log = logging.getLogger('sse_sync.stream')\n"
    "    log.debug('connecting to %s', args[0])\n"
    "    log.warning('server said %r', '\\x1b[2J')\n"
    "    return real(*args, **kwargs)\n"
    "client.connect = connect\n"
    "runpy.run_module('sse_sync', run_name='__main__', alter_sys=True)"
)


@pytest.mark.parametrize("verbose", [True, False])
def test_verbose_prints_sse_sync_records_on_stderr(server: SSEServer, verbose: bool) -> None:
    server.route("/s", [event("only")])
    url = server.url_for("/s")
    proc = subprocess.run(
        [sys.executable, "-c", _WITH_RECORDS, url, "--no-retry", *(["-v"] if verbose else [])],
        cwd=REPO_DIR,
        env=cli_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=15,
        check=False,
    )
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout == "[message] only\n"
    if not verbose:
        assert proc.stderr == ""  # not even the warning: without -v the CLI prints no records
        return
    lines = proc.stderr.splitlines()
    assert lines[:2] == [
        f"{lines[0][:12]} DEBUG sse_sync.stream: connecting to {url}",
        f"{lines[1][:12]} WARNING sse_sync.stream: server said '\\x1b[2J'",
    ], proc.stderr
    for line in lines[:2]:
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", line[:12]), line


def test_verbose_configures_the_logger_only_while_the_command_runs(server: SSEServer) -> None:
    logger = logging.getLogger("sse_sync")
    before = (logger.level, logger.propagate, list(logger.handlers))
    during: list[tuple[int, bool, list[logging.Handler]]] = []

    def record_state(request: RecordedRequest) -> list[Action]:
        # Runs in the server's thread while main() waits for the response.
        during.append((logger.getEffectiveLevel(), logger.propagate, list(logger.handlers)))
        return [event("only")]

    server.route("/s", record_state)
    assert main([server.url_for("/s"), "--no-retry", "-v"]) == EXIT_OK
    ((level, propagate, handlers),) = during
    assert level == logging.DEBUG
    assert not propagate
    (handler,) = [h for h in handlers if h not in before[2]]
    assert isinstance(handler, logging.StreamHandler)
    assert handler.level == logging.NOTSET
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_bad_usage_exits_2() -> None:
    proc = run_cli("-n", "0", "http://127.0.0.1:9/")
    assert proc.returncode == EXIT_USAGE
    assert "-n/--max-events: must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-H", "no colon"],
        ["-H", ": no name"],
        ["--json", "{not json"],
        ["--json", "1", "-d", "x"],
        ["--no-retry", "--max-retries", "2"],
        ["-t", "0"],
        ["--timeout", "nan"],
        ["--max-retries", "-1"],
        ["--color", "pink"],
        ["-d", "@/nonexistent/body"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # No server: every one of these fails before a connection is attempted.
    url = [] if argv == [] else ["http://127.0.0.1:9/"]
    code = main([*argv, *url] if argv else ["--json-lines"])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "error:" in captured.err
    assert captured.out == ""


def test_request_that_cannot_be_sent_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["http://127.0.0.1:9/", "-H", "X-Bad: a\rb"])
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.startswith("sse-sync: header 'X-Bad'")


# -- signals, pipes, help, demo ------------------------------------------------------------


@posix_only
def test_ctrl_c_exits_130_without_traceback(server: SSEServer) -> None:
    server.route("/s", [event("first", id="1"), hold()])
    with spawn_cli(server.url_for("/s")) as proc:
        assert read_line(proc) == "[message id=1] first\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == EXIT_INTERRUPTED
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    server.wait_disconnect()


@posix_only
def test_closed_stdout_ends_quietly(server: SSEServer) -> None:
    go = threading.Event()
    server.route("/s", [event("1"), wait_for(go), event("2"), event("3"), hold()])
    with spawn_cli(server.url_for("/s")) as proc:
        assert read_line(proc) == "[message] 1\n"
        assert proc.stdout is not None
        proc.stdout.close()  # like `| head -n 1`
        go.set()
        assert proc.wait(10) == EXIT_OK
        assert proc.stderr is not None
        assert proc.stderr.read() == b""
    server.wait_disconnect()


def test_help() -> None:
    proc = run_cli("--help")
    assert proc.returncode == EXIT_OK
    for option in ("--method", "--header", "--json-lines", "--max-events", "--max-time", "demo"):
        assert option in proc.stdout
    assert "130" in proc.stdout  # the exit codes are documented


def test_console_script_entry_point() -> None:
    scripts = metadata.entry_points(group="console_scripts", name="sse-sync")
    if not scripts:
        pytest.skip("sse_sync is not installed (pip install -e .)")
    (script,) = scripts
    assert script.load() is main


@pytest.mark.timeout(30)
def test_demo() -> None:
    started = time.monotonic()
    proc = run_cli("demo", timeout=15)
    elapsed = time.monotonic() - started
    assert proc.returncode == EXIT_OK, proc.stderr
    out = proc.stdout
    assert "token id=1   'Server'" in out
    assert "[DONE]" in out
    assert "answer: Server-sent events carry an answer token by token" in out
    assert "tick id=8" in out
    # Each stream is cut once and resumed; where exactly depends on what the client had read.
    assert out.count("connection lost") == 2
    resumed = re.findall(r"reconnected with Last-Event-ID: (\d+); the server resumes after it", out)
    assert len(resumed) == 2
    # Every event once, in order, the reconnections included: nothing is replayed ...
    assert re.findall(r"token id=(\d+)", out) == [str(n) for n in range(1, 22)]
    assert re.findall(r"tick id=(\d+)", out) == [str(n) for n in range(1, 9)]
    # ... and no token text near the cut comes back, which would look like a replay.
    lines = out.splitlines()
    cut = next(i for i, line in enumerate(lines) if "reconnected with" in line)
    tokens = [re.findall(r"token id=\d+ +(.*)$", line) for line in lines[cut - 4 : cut + 4]]
    texts = [found[0] for found in tokens if found]
    assert len(texts) == 6
    assert len(set(texts)) == 6, texts
    assert "answered the reconnection with 204" in out
    assert out.splitlines()[-1] == (
        "summary: 30 events received, 2 reconnections, last event id '8'"
    )
    assert proc.stderr == ""
    assert elapsed < 15


def test_demo_in_process_closes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sped up; what matters here is that the server, its threads and the streams are gone.
    monkeypatch.setattr(_demo, "TOKEN_DELAY", 0.002)
    monkeypatch.setattr(_demo, "TICK_DELAY", 0.002)
    monkeypatch.setattr(_demo, "POLICY", sse_sync.RetryPolicy(initial_delay=0.01, jitter=0))
    before = set(threading.enumerate())
    out = io.StringIO()
    assert _demo.run(out) == EXIT_OK
    assert out.getvalue().splitlines()[-1] == (
        "summary: 30 events received, 2 reconnections, last event id '8'"
    )
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []


def test_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--chunk", "1"]) == EXIT_OK
    one_byte = capsys.readouterr().out
    assert main([]) == EXIT_OK  # no argument: the sample, as before
    assert capsys.readouterr().out == one_byte
    assert ": sse_sync sample stream" in one_byte
    assert '[token id=1] {"index": 0, "text": "Server"}' in one_byte
    assert one_byte.splitlines()[-1].startswith("(last event id ")


# -- formatting ------------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("mode", "tty", "env", "expected"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        ("auto", True, {"TERM": "dumb"}, False),
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
)
def test_use_color(mode: str, tty: bool, env: dict[str, str], expected: bool) -> None:
    stream = FakeTTY() if tty else io.StringIO()
    assert use_color(mode, stream, env) is expected


def test_printer_colour_and_plain() -> None:
    ev = sse_sync.Event("t", "a\nb", "7")
    coloured, plain = FakeTTY(), io.StringIO()
    Printer(coloured, color=True).event(ev)
    Printer(coloured, color=True).comment(" ping")
    Printer(plain).event(ev)
    assert coloured.getvalue() == "\x1b[36m[t id=7]\x1b[0m a\n  b\n\x1b[2m: ping\x1b[0m\n"
    assert plain.getvalue() == "[t id=7] a\n  b\n"


def test_printer_json_lines_never_coloured() -> None:
    out = io.StringIO()
    Printer(out, json_lines=True, color=True).event(sse_sync.Event(data="\u00e9"))
    assert "\x1b" not in out.getvalue()
    assert json.loads(out.getvalue()) == {
        "type": "message",
        "data": "\u00e9",
        "id": "",
        "retry": None,
    }
