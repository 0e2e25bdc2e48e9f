"""Newline-delimited JSON (NDJSON, JSON Lines): an incremental decoder and a line encoder.

Wire rules (the ndjson and JSON Lines specs): each line is one JSON text and ends at LF; a CR
right before the LF is dropped.  The stream is UTF-8 (RFC 8259 section 8.1): a byte order mark
at its very start is skipped, and any invalid byte is an error, never replaced, because a
replaced character would silently change a value.  Blank lines (only spaces, tabs and CRs) are
skipped.  A last line without LF is still a value (JSON Lines allows it, and many servers omit
the final newline), so :meth:`NDJSONDecoder.close` parses it.

Strategy, as in ``_decoder``: the buffer is cut at its last LF in C, everything before it is
decoded in one call and split into lines in C, and the bytes after it are kept by the shared
:class:`~sse_sync._lines.LineBuffer`, so a long line arriving in small chunks costs linear time.
Memory is bounded by ``max_line_length`` (1 MiB unless set).  Nothing here imports requests: the
client half lives in ``_ndjson_client`` and is loaded on first use of ``connect_ndjson`` or
``NDJSONStream``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from ._decoder import _pump
from ._errors import LimitExceeded, LineTooLong, NDJSONDecodeError
from ._lines import BytesLike, LineBuffer, limit

__all__ = (
    "NDJSON_MEDIA_TYPES",
    "NDJSONDecodeError",
    "NDJSONDecoder",
    "decode_ndjson",
    "encode_ndjson",
    "iter_ndjson",
)

NDJSON_MEDIA_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/json-lines",
    "application/x-jsonlines",
)
"""The ``Content-Type`` media types accepted as NDJSON, the usual one first."""

DEFAULT_MAX_NDJSON_LINE_LENGTH = 1 << 20
"""Default limit on one NDJSON line, in bytes (1 MiB): a line is a value, and its only bound."""

_BLANK = " \t\r"  # JSON whitespace other than LF, which ends the line
_PREVIEW_CHARS = 60


class NDJSONDecoder(LineBuffer):
    """Incremental NDJSON decoder: feed bytes in any chunking, get the decoded values back.

    :param max_line_length: longest line accepted, in bytes without its LF or CRLF; ``None`` for
        no limit.  A longer line raises :class:`LineTooLong`.
    :param loads: parses one line (a ``str`` without its line ending) into a value; a
        ``ValueError`` (``json.JSONDecodeError`` is one) or ``RecursionError`` from it becomes
        :class:`NDJSONDecodeError`, anything else propagates unchanged.

    Errors carry the values decoded from the same ``feed()`` before the bad line (``values`` on
    :class:`NDJSONDecodeError`, ``events`` on :class:`LineTooLong`).  After an error the decoder
    raises it again on every ``feed()`` until :meth:`close` starts a new stream.
    ``last_event_id`` and ``retry`` exist for the client's decoder protocol: NDJSON has neither.
    Not thread-safe: one decoder belongs to one reader.
    """

    __slots__ = ("_line", "_loads")

    def __init__(
        self,
        *,
        max_line_length: int | None = DEFAULT_MAX_NDJSON_LINE_LENGTH,
        loads: Callable[[str], Any] = json.loads,
    ) -> None:
        self._max_line = limit("max_line_length", max_line_length)
        if not callable(loads):
            raise TypeError("loads must be callable")
        self._loads = loads
        self._reset()

    def _reset(self) -> None:
        self._start()
        self._line = 0  # complete lines consumed so far
        self._error: LimitExceeded | NDJSONDecodeError | None = None

    @property
    def last_event_id(self) -> str:
        """Always ``""``: NDJSON has no event IDs, so a reconnect cannot resume."""
        return ""

    @property
    def retry(self) -> int | None:
        """Always ``None``: NDJSON has no reconnection time."""
        return None

    def feed(self, data: BytesLike) -> list[Any]:
        """Decode the next chunk; return the values of the lines it completed, in order.

        ``data`` is bytes or any bytes-like object (a bytearray or memoryview is copied, so the
        caller may reuse its buffer); ``str`` raises :class:`TypeError`.
        """
        data = self._admit(data)
        end = data.rfind(b"\n") + 1
        if not end:
            if data and self._hold(data) < 0 and self._over(data):
                self._fail(LineTooLong(self._max_line))
            return []
        if self._parts:
            data = self._joined(data)
            end = data.rfind(b"\n") + 1
        head = self._keep(data, end)
        out: list[Any] = []
        self._lines(head, out)
        if self._room < 0 and self._over(data):
            self._fail(LineTooLong(self._max_line), out)
        return out

    def feed_items(self, data: BytesLike) -> list[Any]:
        """The same as :meth:`feed`: NDJSON has no comments (the client's decoder protocol)."""
        return self.feed(data)

    def close(self) -> list[Any]:
        """Signal the end of the stream; return the value of a last line that had no LF.

        The decoder is reset first, so it is ready for a new stream even if this raises
        :class:`NDJSONDecodeError` for an invalid last line.  After an error, returns ``[]``.
        """
        tail = self._tail()
        consumed = self._line
        failed = self._error is not None
        self._reset()
        if failed or not tail:
            return []
        # The same rules as for a line ending in LF, numbered on from the stream's lines.
        self._line = consumed
        out: list[Any] = []
        try:
            self._lines(tail + b"\n", out)
        finally:
            self._reset()
        return out

    # -- internals -------------------------------------------------------------------------

    def _over(self, last: bytes) -> bool:
        # The unfinished line is over the limit; it is too long unless the only extra byte is a
        # CR (its last byte, the end of ``last``) that may be the first half of its CRLF.
        return self._room < -1 or last[-1:] != b"\r"

    def _fail(
        self, error: LimitExceeded | NDJSONDecodeError, out: list[Any] | None = None
    ) -> NoReturn:
        # Keep the values already complete on the error; later feeds raise a copy without them.
        if isinstance(error, LimitExceeded):
            if out:
                error.events = list(out)
            self._error = type(error)(error.value)
        else:
            if out:
                error.values = list(out)
            self._error = NDJSONDecodeError(error.reason, error.line, error.preview)
        self._parts = []
        self._room = self._max_line
        raise error

    def _lines(self, head: bytes, out: list[Any]) -> None:
        # head is a run of complete lines, each ending in LF.  The fast path decodes it in one
        # call: line breaks are ASCII, so no character straddles a cut and decoding the whole is
        # decoding each line.  If a line may be too long or the bytes are not UTF-8, the whole
        # run goes through the line-by-line path instead, which fails at the first bad line.
        if len(head) - 1 > self._max_line and max(map(len, head.split(b"\n"))) > self._max_line:
            self._slow(head, out)
            return
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            self._slow(head, out)
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        lines.pop()  # the empty string after the final LF
        loads = self._loads
        append = out.append
        for number, line in enumerate(lines, self._line + 1):
            if line[:1] in _BLANK and not line.strip(_BLANK):
                continue
            try:
                append(loads(line))
            except (ValueError, RecursionError) as exc:
                self._fail(_json_error(exc, number, line), out)
        self._line += len(lines)

    def _slow(self, head: bytes, out: list[Any]) -> None:
        lines = head.split(b"\n")
        lines.pop()
        limit = self._max_line
        loads = self._loads
        for number, raw in enumerate(lines, self._line + 1):
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            if len(raw) > limit:
                self._fail(LineTooLong(limit), out)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"invalid UTF-8 at byte {exc.start + 1}"
                self._fail(NDJSONDecodeError(reason, number, _preview(raw)), out)
            if line[:1] in _BLANK and not line.strip(_BLANK):
                continue
            try:
                out.append(loads(line))
            except (ValueError, RecursionError) as exc:
                self._fail(_json_error(exc, number, line), out)
        self._line += len(lines)


def _preview(raw: bytes) -> str:
    return raw[: _PREVIEW_CHARS * 4].decode("utf-8", "replace")[:_PREVIEW_CHARS]


def _json_error(exc: BaseException, number: int, line: str) -> NDJSONDecodeError:
    if isinstance(exc, RecursionError):
        reason = "invalid JSON: nested too deeply"
    elif isinstance(exc, json.JSONDecodeError):
        reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
    else:
        reason = f"invalid JSON: {exc}"
    error = NDJSONDecodeError(reason, number, line[:_PREVIEW_CHARS])
    error.__cause__ = exc
    return error


def decode_ndjson(
    body: BytesLike,
    *,
    max_line_length: int | None = DEFAULT_MAX_NDJSON_LINE_LENGTH,
    loads: Callable[[str], Any] = json.loads,
) -> list[Any]:
    """Decode a whole NDJSON body; a last line without LF counts (see :class:`NDJSONDecoder`)."""
    decoder = NDJSONDecoder(max_line_length=max_line_length, loads=loads)
    values = decoder.feed(body)
    values += decoder.close()
    return values


def iter_ndjson(
    chunks: Iterable[BytesLike],
    *,
    max_line_length: int | None = DEFAULT_MAX_NDJSON_LINE_LENGTH,
    loads: Callable[[str], Any] = json.loads,
) -> Iterator[Any]:
    """Decode an iterable of byte chunks lazily, yielding each value as soon as its line ends."""
    decoder = NDJSONDecoder(max_line_length=max_line_length, loads=loads)
    return _pump(decoder.feed, decoder.close, chunks)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_ndjson(value: Any, *, dumps: Callable[[Any], str | bytes] | None = None) -> bytes:
    """Encode one value as an NDJSON line: UTF-8 JSON followed by LF.

    :param dumps: turns the value into JSON text (``str``, or ``bytes`` in UTF-8).  The default
        writes compact JSON with non-ASCII characters as they are (``\\u`` escapes only for lone
        surrogates, which UTF-8 cannot carry) and refuses NaN and infinities, which JSON lacks.
    :raises ValueError: if the text has a line break (CR or LF: a reader would split the value)
        or is blank (a reader would skip it), or a custom ``dumps`` gave a lone surrogate; and
        whatever ``dumps`` raises (``TypeError`` for a value JSON cannot hold, ``ValueError``
        for NaN or a circular reference).
    """
    text = _compact(value) if dumps is None else dumps(value)
    if isinstance(text, str):
        try:
            raw = text.encode()
        except UnicodeEncodeError:
            if dumps is not None:
                raise ValueError("dumps gave a lone surrogate, which UTF-8 cannot encode") from None
            raw = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    elif isinstance(text, (bytes, bytearray)):
        raw = bytes(text)
    else:
        raise TypeError(f"dumps must return str or bytes, not {type(text).__name__}")
    if 10 in raw or 13 in raw:
        raise ValueError("the JSON text has a line break; an NDJSON value must fit on one line")
    if not raw.strip(b" \t"):
        raise ValueError("the JSON text is blank; a reader would skip the line")
    return raw + b"\n"
