"""Wire formatting for the test server: event and comment lines, header fields, status heads.

Stricter about types and looser about content than :func:`sse_sync.encode`: a test server must
be able to send what a real server might (an ``event:`` line with an empty type, NUL in an ID),
and :func:`~sse_sync.testing.send` covers anything malformed beyond that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus

# The only address the test server binds, and the default a recorded request's client has.
_HOST = "127.0.0.1"
_EVENT_STREAM = "text/event-stream; charset=utf-8"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _single_line(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must not contain CR or LF: {value!r} (use send() for raw bytes)")
    return value


def _format_event(data: str | None, event: str | None, id: str | None, retry: int | None) -> bytes:
    lines: list[str] = []
    if event is not None:
        lines.append("event: " + _single_line("event", event))
    if id is not None:
        lines.append("id: " + _single_line("id", id))
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"retry must be a non-negative int, not {retry!r}")
        lines.append(f"retry: {retry}")
    if data is not None:
        if not isinstance(data, str):
            raise TypeError(f"data must be a str, not {type(data).__name__}")
        lines.extend("data: " + line for line in _LINE_BREAK.split(data))
    return "".join(line + "\n" for line in lines).encode() + b"\n"


def _format_comment(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"comment text must be a str, not {type(text).__name__}")
    return "".join(":" + line + "\n" for line in _LINE_BREAK.split(text)).encode()


def _header_pairs(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = tuple((str(name), str(value)) for name, value in items)
    for name, value in pairs:
        if not name or any(c in name for c in "\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"invalid header {name!r}: {value!r}")
    return pairs


def _head(status: int, defaults: list[tuple[str, str]], extra: Sequence[tuple[str, str]]) -> bytes:
    # Headers given by the script replace defaults of the same name (case-insensitively).
    override = {name.lower() for name, _ in extra}
    fields = [f for f in defaults if f[0].lower() not in override] + list(extra)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 999:
        raise ValueError(f"status must be an int from 200 to 999, not {status!r}")
    return status
