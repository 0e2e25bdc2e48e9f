"""The command line: ``sse-sync URL`` prints an event stream as it arrives, like a parsed
``curl -N``; ``sse-sync demo`` and ``sse-sync sample`` need no network.

The client (and with it requests) is imported only when a URL is streamed, so ``--help``,
``sample`` and usage errors start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._decoder import SSEDecoder
from ._errors import (
    ConnectError,
    HTTPStatusError,
    RequestError,
    ResponseError,
    RetriesExhausted,
    SSEError,
    StreamError,
)
from ._models import Comment, Event
from ._version import __version__

if TYPE_CHECKING:
    from ._client import EventStream

__all__ = (
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_RESPONSE",
    "EXIT_USAGE",
    "Printer",
    "main",
    "sample_bytes",
    "use_color",
)

EXIT_OK = 0
"""The stream ended, or ``-n``/``-t`` was reached."""
EXIT_ERROR = 1
"""Any other sse_sync error (a decoder limit exceeded)."""
EXIT_USAGE = 2
"""Bad arguments, or a request that cannot be sent as given."""
EXIT_RESPONSE = 3
"""The server answered with an error status or not with an event stream."""
EXIT_NETWORK = 4
"""Connecting failed, the stream broke or timed out, or reconnecting gave up."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as shells report it)."""

PROG = "sse-sync"

_EPILOG = """\
commands:
  sse-sync URL [options]   stream URL and print its events as they arrive
  sse-sync demo            run a local demo server and a client against it (no network)
  sse-sync sample          decode the sample stream bundled with the package (the default
                           when no argument is given)

exit status:
  0    the stream ended, or -n / -t was reached
  1    another error (an event beyond the decoder limits)
  2    usage error, or a request that cannot be sent as given
  3    HTTP error status, or a response that is not text/event-stream
  4    connection refused or broken, timeout, or reconnection given up
  130  interrupted (Ctrl-C)
"""

# C0 controls but TAB and LF, DEL, and C1 controls: a server must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MAX_TIME_GRACE = 1.0
# RetriesExhausted says "after 1 reconnection attempts"; the command says it in English.
_ONE_ATTEMPT = re.compile(r"\b(after 1 \w+) attempts\b")
_VERBOSE_HELP = "print the sse_sync logger's records, DEBUG and up, to stderr with timestamps"
_LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
_RESET = "\x1b[0m"
_HEAD = "\x1b[36m"  # cyan
_DIM = "\x1b[2m"


# -- output ----------------------------------------------------------------------------------


def use_color(mode: str, stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output: ``always``, ``never``, or ``auto`` (a terminal, ``NO_COLOR``
    unset or empty, ``TERM`` not ``dumb``)."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except (OSError, ValueError):
        return False


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class Printer:
    """Writes events and comments as readable text or as JSON lines, flushing each one.

    Text: ``[type id=ID retry=MS] data``, further data lines indented by two spaces, comments
    as ``:text``; control characters are shown escaped.  JSON lines: one object per event with
    the keys ``type``, ``data``, ``id`` and ``retry``, and ``{"comment": text}`` per comment.
    """

    def __init__(self, out: TextIO, *, json_lines: bool = False, color: bool = False) -> None:
        self.out = out
        self.json_lines = json_lines
        self.color = color and not json_lines
        encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
        # Non-ASCII is written as is only where it cannot fail to encode.
        self._ascii = encoding not in ("utf8", "utf8sig")

    def event(self, ev: Event) -> None:
        if self.json_lines:
            obj = {"type": ev.event, "data": ev.data, "id": ev.id, "retry": ev.retry}
            self._write(json.dumps(obj, ensure_ascii=self._ascii))
            return
        head = ev.event + (f" id={ev.id}" if ev.id else "")
        if ev.retry is not None:
            head += f" retry={ev.retry}"
        head = f"[{_escape(head)}]"
        if self.color:
            head = _HEAD + head + _RESET
        lines = _escape(ev.data).split("\n")
        body = "\n  ".join(lines)
        self._write(f"{head} {body}" if body else head)

    def comment(self, text: str) -> None:
        if self.json_lines:
            self._write(json.dumps({"comment": text}, ensure_ascii=self._ascii))
            return
        line = ":" + _escape(text)
        self._write(_DIM + line + _RESET if self.color else line)

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _note(message: str) -> None:
    # Diagnostics go to stderr, one line each, so that stdout stays events only.
    text = " ".join(_escape(message).split())
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()


def _describe(exc: BaseException) -> str:
    """One line for an error: its message, plus the cause or the server's first words."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, RetriesExhausted) and exc.attempts == 1:
        message = _ONE_ATTEMPT.sub(r"\1 attempt", message)
    cause = exc.__cause__
    if isinstance(exc, RetriesExhausted) and cause is not None:
        message += f" (last error: {str(cause) or type(cause).__name__})"
    elif isinstance(exc, HTTPStatusError) and exc.body.strip():
        content_type = next((v for k, v in exc.headers.items() if k.lower() == "content-type"), "")
        if content_type.startswith(("text/plain", "application/json", "application/problem")):
            first = exc.body.strip().splitlines()[0]
            message += ": " + (first if len(first) <= 200 else first[:200] + "...")
    return message


class _LogFormatter(logging.Formatter):
    # Records may quote what a server sent: escaped like everything else this command prints.
    def format(self, record: logging.LogRecord) -> str:
        return _escape(super().format(record))


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """While the command runs: with ``-v``, the ``sse_sync`` logger's records from DEBUG up on
    stderr, one timestamped line each; without it, none printed (not even warnings)."""
    logger = logging.getLogger("sse_sync")
    saved = logger.level, logger.propagate
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LogFormatter(_LOG_FORMAT, "%H:%M:%S"))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # printed once, here, whatever the root logger does
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# -- arguments -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    parse.__name__ = "count"
    return parse


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name, value.strip()


def _read_arg(text: str) -> bytes:
    # curl's convention: @FILE is the file's content, @- is standard input.
    if not text.startswith("@"):
        return text.encode("utf-8", "surrogateescape")
    path = text[1:]
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path!r}: {exc.strerror}") from None


def _json_body(text: str) -> tuple[str, Any]:
    raw = _read_arg(text)
    try:
        return "json", json.loads(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def _data_body(text: str) -> tuple[str, Any]:
    return "data", _read_arg(text)


def _stream_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [options] URL\n       {PROG} demo\n       {PROG} sample [--chunk N]",
        description="Connect to a Server-Sent Events URL and print each event as it arrives.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "url", metavar="URL", help="the event stream's URL (http:// if no scheme is given)"
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    req = parser.add_argument_group("request")
    req.add_argument(
        "-X", "--method", help="HTTP method (default: GET, or POST when a body is given)"
    )
    req.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header; repeatable (a later one replaces an earlier one)",
    )
    body = req.add_mutually_exclusive_group()
    body.add_argument(
        "--json",
        dest="body",
        type=_json_body,
        metavar="JSON",
        help="JSON request body (@FILE reads a file, @- standard input)",
    )
    body.add_argument(
        "-d",
        "--data",
        dest="body",
        type=_data_body,
        metavar="DATA",
        help="raw or form request body, sent as application/x-www-form-urlencoded unless "
        "-H sets Content-Type (@FILE reads a file, @- standard input)",
    )
    req.add_argument("--last-event-id", metavar="ID", help="send this Last-Event-ID")
    req.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="connect timeout and longest silence allowed (default: 10 s to connect, "
        "300 s of silence)",
    )
    retry = req.add_mutually_exclusive_group()
    retry.add_argument(
        "--no-retry",
        action="store_true",
        help="do not reconnect when the connection ends or breaks (default: reconnect as "
        "a browser does, after 3 s or the server's retry: time, backing off to 30 s)",
    )
    retry.add_argument(
        "--max-retries",
        type=_count(0),
        metavar="N",
        help="give up after N consecutive failed reconnections (default: never give up); "
        "requests with a body are never retried",
    )
    sel = parser.add_argument_group("selection")
    sel.add_argument(
        "-e",
        "--event",
        dest="types",
        action="append",
        default=[],
        metavar="TYPE",
        help="print only events of this type; repeatable",
    )
    sel.add_argument(
        "-n", "--max-events", type=_count(1), metavar="N", help="stop after printing N events"
    )
    sel.add_argument(
        "-t", "--max-time", type=_positive_float, metavar="SECONDS", help="stop after SECONDS"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json-lines",
        action="store_true",
        help='one JSON object per event: {"type", "data", "id", "retry"}',
    )
    out.add_argument(
        "--comments", action="store_true", help='also print comment lines (heartbeats): ":text"'
    )
    out.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    out.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour text output (auto: on a terminal unless NO_COLOR is set)",
    )
    return parser


# -- commands --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sse_sync`` and the ``sse-sync`` script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] == "sample":
            return _sample(args[1:])
        if args[0] == "demo":
            return _demo(args[1:])
        return _stream(args)
    except SystemExit as exc:
        # argparse's way out (--help, --version, usage errors): a return code here.
        code = exc.code
        return code if isinstance(code, int) else EXIT_OK if code is None else EXIT_ERROR
    except KeyboardInterrupt:
        # The streams are closed by now (their finally blocks ran); a traceback helps nobody.
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read our output has gone (`| head`): stop quietly, as after -n.
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    # Python flushes stdout again at exit, which would fail (and complain) once more.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _text_stdout() -> TextIO:
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        # An event that the terminal's encoding cannot show must not end the stream.
        out.reconfigure(errors="backslashreplace")
    return out


def _stream(argv: list[str]) -> int:
    args = _stream_parser().parse_args(argv)
    with _logging(args.verbose):
        return _stream_args(args)


def _stream_args(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = None if args.max_time is None else started + args.max_time
    out = _text_stdout()
    printer = Printer(out, json_lines=args.json_lines, color=use_color(args.color, out))

    from ._client import DEFAULT_RETRY, DEFAULT_TIMEOUT, connect
    from ._retry import RetryPolicy

    policy: RetryPolicy | None = DEFAULT_RETRY
    if args.no_retry:
        policy = None
    elif args.max_retries is not None:
        policy = RetryPolicy(max_attempts=args.max_retries)
    connect_timeout, read_timeout = DEFAULT_TIMEOUT
    if args.timeout is not None:
        connect_timeout = read_timeout = args.timeout
    if args.max_time is not None:
        # A server that never answers must not outlast -t by much; the grace lets -t itself
        # end a silent stream first, rather than a read timeout and a reconnection notice.
        connect_timeout = min(connect_timeout, args.max_time + _MAX_TIME_GRACE)
        read_timeout = min(read_timeout, args.max_time + _MAX_TIME_GRACE)

    headers = dict(args.headers)
    kind, value = args.body if args.body is not None else (None, None)
    if kind == "data" and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    method = (args.method or ("GET" if kind is None else "POST")).upper()
    types = frozenset(args.types)
    # curl's convention: a URL without a scheme is http.
    url = args.url if "://" in args.url else "http://" + args.url

    try:
        stream = connect(
            url,
            method=method,
            headers=headers,
            data=value if kind == "data" else None,
            json=value if kind == "json" else None,
            last_event_id=args.last_event_id,
            retry=policy,
            timeout=(connect_timeout, read_timeout),
            comments=args.comments,
        )
    except SSEError as exc:
        return _failed(exc)

    opened = 0

    def on_open(s: EventStream) -> None:
        nonlocal opened
        opened += 1
        if opened > 1:
            resumed = f" (Last-Event-ID: {s.last_event_id})" if s.last_event_id else ""
            _note(f"reconnected{resumed}")

    def on_retry(error: BaseException | None, delay: float) -> None:
        why = "the server ended the stream" if error is None else _describe(error)
        _note(f"{why}; reconnecting in {delay:.1f} s")

    stream.on_open(on_open).on_retry(on_retry)
    if args.comments:
        stream.on_comment(printer.comment)
    timer: threading.Timer | None = None
    try:
        if deadline is not None:
            timer = threading.Timer(max(deadline - time.monotonic(), 0.0), stream.cancel)
            timer.name = "sse-sync-max-time"
            timer.daemon = True
            timer.start()
        shown = 0
        for ev in stream:
            if types and ev.event not in types:
                continue
            printer.event(ev)
            shown += 1
            if args.max_events is not None and shown >= args.max_events:
                break
    except SSEError as exc:
        if deadline is not None and time.monotonic() >= deadline:
            # The error raced with -t, which ends the stream at the deadline anyway.
            return EXIT_OK
        return _failed(exc)
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()
        stream.close()
    return EXIT_OK


def _failed(exc: SSEError) -> int:
    _note(_describe(exc))
    if isinstance(exc, RequestError):
        return EXIT_USAGE
    if isinstance(exc, ResponseError):
        return EXIT_RESPONSE
    if isinstance(exc, (ConnectError, StreamError, RetriesExhausted)):
        return EXIT_NETWORK
    return EXIT_ERROR


def sample_bytes() -> bytes:
    """The sample stream shipped in the package."""
    return resources.files("sse_sync").joinpath("samples/tokens.txt").read_bytes()


def _sample(argv: list[str]) -> int:
    parser = _Parser(
        prog=f"{PROG} sample",
        description="Decode the sample event stream bundled with the package and print it.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--chunk", type=_count(1), default=7, help="feed the decoder this many bytes at a time"
    )
    parser.add_argument("--json-lines", action="store_true", help="one JSON object per event")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    args = parser.parse_args(argv)
    out = _text_stdout()
    printer = Printer(out, json_lines=args.json_lines, color=use_color(args.color, out))
    body = sample_bytes()
    decoder = SSEDecoder()
    for pos in range(0, len(body), args.chunk):
        for item in decoder.feed_items(body[pos : pos + args.chunk]):
            if isinstance(item, Comment):
                printer.comment(item.text)
            else:
                printer.event(item)
    decoder.close()
    if not args.json_lines:
        out.write(f"(last event id {decoder.last_event_id!r}, retry {decoder.retry} ms)\n")
    return EXIT_OK


def _demo(argv: list[str]) -> int:
    parser = _Parser(
        prog=f"{PROG} demo",
        description="Start a local demo server on 127.0.0.1 and stream from it: an LLM-style "
        "token stream, then a tick feed; each connection is cut once and resumed with "
        "Last-Event-ID.  No network is needed.",
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    args = parser.parse_args(argv)
    from ._demo import run

    with _logging(args.verbose):
        return run(_text_stdout())
