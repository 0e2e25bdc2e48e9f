"""A sans-IO, incremental decoder for ``text/event-stream`` (WHATWG HTML, section 9.2.5-9.2.6).

Strategy: bytes in, events out, no I/O and no imports beyond the standard library, attrs and this
package's models and errors.  Each ``feed()`` does as much as possible in C:

1. Line endings are normalised to LF with two ``bytes.replace`` calls.  A CR that ends a chunk
   is a line break at once (so its event is dispatched without waiting); if the next chunk then
   starts with LF, that LF is the second half of the same CRLF and is dropped.
2. Everything up to the last LF is decoded in one call (UTF-8, invalid bytes become U+FFFD;
   line breaks are ASCII, so no character straddles the cut) and split on blank lines.
3. A block that is a single ``data:`` line, or only ``data: `` lines, becomes an event without a
   per-line Python loop.  Anything else goes line by line through the spec's field rules.
4. The bytes after the last LF are the start of the next line, kept as a list of pieces so that a
   long line arriving in small chunks costs linear time, not quadratic.

Memory is bounded by the two limits (the unfinished line and the unfinished event's data), never
by the length of the stream.  After a limit error the current stream is unusable: call
``close()`` (which starts a new stream) before feeding more.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

from ._errors import EventTooLarge, LimitExceeded, LineTooLong
from ._models import Comment, Event

__all__ = (
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "SSEDecoder",
    "decode",
    "iter_events",
)

DEFAULT_MAX_LINE_LENGTH = 1 << 20
"""Default limit on one line, in bytes (1 MiB)."""

DEFAULT_MAX_EVENT_SIZE = 16 << 20
"""Default limit on one event's data, in characters (16 Mi)."""

_BOM = b"\xef\xbb\xbf"
_UNLIMITED = sys.maxsize


def _limit(name: str, value: int | None) -> int:
    if value is None:
        return _UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, not {value!r}")
    return value


class SSEDecoder:
    """Incremental decoder: feed bytes in any chunking, get :class:`Event` objects back.

    :param last_event_id: initial last event ID (as after an earlier connection).
    :param retry: initial reconnection time in milliseconds, or ``None``.
    :param max_line_length: longest line accepted, in bytes; ``None`` for no limit.
    :param max_event_size: largest event data accepted, in characters; ``None`` for no limit.

    Exceeding a limit raises :class:`LineTooLong` or :class:`EventTooLarge`; the events decoded
    from the same ``feed()`` call before that point are on the exception's ``events``.
    Not thread-safe: one decoder belongs to one reader.
    """

    __slots__ = (
        "_bom",
        "_bretry",
        "_comments",
        "_cr",
        "_data",
        "_dsize",
        "_error",
        "_last_id",
        "_max_event",
        "_max_line",
        "_parts",
        "_plen",
        "_retry",
        "_type",
    )

    def __init__(
        self,
        *,
        last_event_id: str = "",
        retry: int | None = None,
        max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
        max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        if not isinstance(last_event_id, str) or "\0" in last_event_id:
            raise ValueError("last_event_id must be a str without NUL")
        if retry is not None and (type(retry) is not int or retry < 0):
            raise ValueError(f"retry must be a non-negative int or None, not {retry!r}")
        self._max_line = _limit("max_line_length", max_line_length)
        self._max_event = _limit("max_event_size", max_event_size)
        self._last_id = last_event_id
        self._retry = retry
        self._comments = False
        self._reset()

    def _reset(self) -> None:
        # Per-stream state; last_id and retry outlive a stream, as EventSource's do.
        self._bom: bytes | None = b""  # bytes seen while a leading BOM is still possible
        self._cr = False  # the last byte fed was a CR (now a line break)
        self._parts: list[bytes] = []  # pieces of the unfinished line
        self._plen = 0
        self._data: list[str] = []
        self._dsize = 0  # length the joined data would have, plus one
        self._type = ""
        self._bretry: int | None = None  # a retry field seen in the current block
        self._error: LimitExceeded | None = None

    @property
    def last_event_id(self) -> str:
        """The last event ID buffer: what a reconnect sends as ``Last-Event-ID``."""
        return self._last_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in effect, in milliseconds, or ``None`` if never set."""
        return self._retry

    def feed(self, data: bytes) -> list[Event]:
        """Decode the next chunk of the stream; return the events it completed, in order."""
        if self._error is not None:
            raise self._error
        if self._bom is not None:
            data = self._strip_bom(data)
        if self._cr and data:
            self._cr = False
            if data[0] == 10:
                data = data[1:]
        if b"\r" in data:
            self._cr = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n") + 1
        if not end:
            if data:
                self._parts.append(data)
                self._plen += len(data)
                if self._plen > self._max_line:
                    self._fail(LineTooLong(self._max_line))
            return []
        if self._parts:
            self._parts.append(data[:end])
            head = b"".join(self._parts)
            self._parts = []
        else:
            head = data[:end] if end < len(data) else data
        rest = data[end:]
        if rest:
            self._parts.append(rest)
        self._plen = len(rest)
        out: list[Event] = []
        if len(head) > self._max_line:
            head = self._check_lines(head, out)
        self._text(head.decode("utf-8", "replace"), out)
        if self._plen > self._max_line:
            self._fail(LineTooLong(self._max_line), out)
        return out

    def feed_items(self, data: bytes) -> list[Event | Comment]:
        """Like :meth:`feed`, but comments come too, as :class:`Comment` items in stream order."""
        self._comments = True
        try:
            return self.feed(data)  # type: ignore[return-value]
        finally:
            self._comments = False

    def close(self) -> list[Event]:
        """Signal the end of the stream; return its remaining events.

        Per the spec an unfinished event is discarded, so this returns ``[]``.  The decoder is then
        ready for a new stream (a reconnect): ``last_event_id`` and ``retry`` carry over.
        """
        self._reset()
        return []

    # -- internals -------------------------------------------------------------------------

    def _strip_bom(self, data: bytes) -> bytes:
        buf = self._bom + data if self._bom else data
        if len(buf) < 3 and _BOM.startswith(buf):
            self._bom = buf  # maybe a BOM split across chunks: wait for more
            return b""
        self._bom = None
        return buf[3:] if buf[:3] == _BOM else buf

    def _fail(self, error: LimitExceeded, out: list[Event] | None = None) -> None:
        # Keep the stream's completed events on the error; later feeds raise the error again.
        if out:
            error.events = list(out)
        self._parts = []
        self._data = []
        self._error = type(error)(error.value)
        raise error

    def _check_lines(self, head: bytes, out: list[Event]) -> bytes:
        # Only reached when the decoded region could hold an over-long line: find the first one,
        # decode everything before it, then fail.
        start = 0
        limit = self._max_line
        while True:
            nl = head.index(b"\n", start)
            if nl - start > limit:
                self._text(head[:start].decode("utf-8", "replace"), out)
                self._fail(LineTooLong(limit), out)
            start = nl + 1
            if start == len(head):
                return head

    def _text(self, text: str, out: list[Event]) -> None:
        # text is a run of complete lines, each ending in "\n".
        blocks = text.split("\n\n")
        tail = blocks.pop()
        if blocks:
            first = 0
            if self._data or self._type or self._bretry is not None:
                # The first block finishes an event begun by an earlier feed.
                self._block(blocks[0], out)
                first = 1
            last_id = self._last_id
            # The fast paths build events without the per-line loop; they hold only while one
            # event's data cannot exceed the limit, which a text no longer than it guarantees.
            fast = len(text) <= self._max_event
            for i in range(first, len(blocks)):
                block = blocks[i]
                if fast and block[:5] == "data:":
                    if "\n" not in block:
                        out.append(
                            Event(
                                "message",
                                block[6:] if block[5:6] == " " else block[5:],
                                last_id,
                                None,
                            )
                        )
                        continue
                    if block[5:6] == " " and block.count("\n") == block.count("\ndata: "):
                        # Every line is "data: ...": dropping each prefix joins them with LF.
                        out.append(
                            Event("message", block[6:].replace("\ndata: ", "\n"), last_id, None)
                        )
                        continue
                self._block(block, out)
                last_id = self._last_id
        if tail:
            self._lines(tail[:-1], out)

    def _block(self, block: str, out: list[Event]) -> None:
        self._lines(block, out)
        self._dispatch(out)

    def _lines(self, text: str, out: list[Event]) -> None:
        for line in text.split("\n"):
            if not line:
                self._dispatch(out)
                continue
            colon = line.find(":")
            if colon == 0:
                if self._comments:
                    out.append(Comment(line[1:]))  # type: ignore[arg-type]
                continue
            if colon < 0:
                name = line
                value = ""
            else:
                name = line[:colon]
                colon += 2 if line[colon + 1 : colon + 2] == " " else 1
                value = line[colon:]
            if name == "data":
                self._dsize += len(value) + 1
                if self._dsize > self._max_event + 1:
                    self._fail(EventTooLarge(self._max_event), out)
                self._data.append(value)
            elif name == "event":
                self._type = value
            elif name == "id":
                if "\0" not in value:
                    self._last_id = value
            elif name == "retry" and value.isdigit() and value.isascii():
                try:
                    self._retry = self._bretry = int(value)
                except ValueError:
                    # More digits than int() accepts (sys.get_int_max_str_digits): ignore it.
                    pass

    def _dispatch(self, out: list[Event]) -> None:
        if self._data:
            out.append(
                Event(self._type or "message", "\n".join(self._data), self._last_id, self._bretry)
            )
            self._data = []
            self._dsize = 0
        self._type = ""
        self._bretry = None


def decode(
    body: bytes,
    *,
    max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
) -> list[Event]:
    """Decode a whole ``text/event-stream`` body; an unfinished last event is discarded."""
    decoder = SSEDecoder(max_line_length=max_line_length, max_event_size=max_event_size)
    events = decoder.feed(body)
    events += decoder.close()
    return events


def iter_events(
    chunks: Iterable[bytes],
    *,
    max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
) -> Iterator[Event]:
    """Decode an iterable of byte chunks lazily, yielding each event as soon as it is complete."""
    decoder = SSEDecoder(max_line_length=max_line_length, max_event_size=max_event_size)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()
