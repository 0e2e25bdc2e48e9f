"""A sans-IO, incremental decoder for ``text/event-stream`` (WHATWG HTML, section 9.2.5-9.2.6).

Strategy: bytes in, events out, no I/O and no imports beyond the standard library, attrs and this
package's models, errors and line buffer.  Each ``feed()`` does as much as possible in C:

1. Line endings are normalised to LF with two ``bytes.replace`` calls.  A CR that ends a chunk
   is a line break at once (so its event is dispatched without waiting); if the next chunk then
   starts with LF, that LF is the second half of the same CRLF and is dropped.
2. Everything up to the last LF is split into lines in one call and interpreted line by line
   by the spec's field rules, as bytes: field names and separators are ASCII, so decoding each
   value on its own (UTF-8, invalid bytes become U+FFFD) gives what decoding the whole stream
   would, and slicing bytes is cheaper than slicing non-ASCII text.
3. A chunk that is exactly one ``data: ...`` event, what servers flush, becomes an event
   without touching any state.
4. The bytes after the last LF are the start of the next line, kept by the shared
   :class:`~sse_sync._lines.LineBuffer`.  Small chunks are reassembled there: a chunk with no
   line break is only appended (the cheapest path of all, which a stream read a few bytes at a
   time takes most), and while no event is open, whole lines wait there too until a blank line
   can end their event, so that a stream cut small reaches step 3 as whole events.

Memory is bounded by the two limits (the unfinished line and the unfinished event's data), never
by the length of the stream.  After a limit error the current stream is unusable: call
``close()`` (which starts a new stream) before feeding more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, TypeVar, overload

from ._errors import EventTooLarge, LimitExceeded, LineTooLong
from ._lines import UNLIMITED, BytesLike, LineBuffer, limit
from ._models import Comment, Event

__all__ = (
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "SSEDecoder",
    "decode",
    "iter_events",
)

DEFAULT_MAX_LINE_LENGTH: int | None = None
"""Default limit on one line: ``None``, so that lines are bounded by ``max_event_size`` instead
(a ``data:`` line carrying the largest event allowed decodes)."""

DEFAULT_MAX_EVENT_SIZE = 16 << 20
"""Default limit on one event's data, in bytes of UTF-8 (16 MiB)."""

_T = TypeVar("_T")

_CRLFCR = b"\r\n\r"
_LF = b"\n"
# With no max_line_length, a line may be as long as a data line carrying max_event_size bytes.
_DATA_PREFIX = len(b"data: ")

# The hot paths build events as object.__new__(Event) plus four slot stores: Event has no
# validators or converters, so this gives exactly what Event(...) gives, for about 1.6k machine
# instructions instead of 2.3k (python -m tests.benchmarks.instructions --construct, CPython
# 3.11).  Likewise they decode with strict bytes.decode() and redo it with errors="replace" only
# on invalid UTF-8, which skips the encoding-name lookup of decode("utf-8", "replace") on every
# value.
_new = object.__new__


def _message(raw: BytesLike, last_id: str) -> Event:
    # A "message" event with raw as its data, built as described above.  The hottest loop
    # (runs of one-line events in _text) inlines this: the call costs about 430 instructions,
    # a tenth of what the rest of such an event costs.
    event = _new(Event)
    event.event = "message"
    try:
        event.data = raw.decode()  # type: ignore[union-attr]
    except UnicodeDecodeError:
        event.data = raw.decode("utf-8", "replace")  # type: ignore[union-attr]
    except AttributeError:
        # A memoryview passes every test of feed()'s fast path but has no decode(); it is
        # caught here, where it costs nothing, rather than by a type check on every chunk.
        # Nothing of it is kept, so it need not be copied.
        event.data = str(raw, "utf-8", "replace")
    event.id = last_id
    event.retry = None
    return event


# While no event is open, whole lines are held with the unfinished one until a blank line comes,
# up to this many bytes: that pays where chunks are small (then an event comes in several, and
# reassembled it takes the one-event path); on larger chunks it would only copy more.
_SMALL = 1024


class SSEDecoder(LineBuffer):
    """Incremental decoder: feed bytes in any chunking, get :class:`Event` objects back.

    :param last_event_id: initial last event ID (as after an earlier connection).
    :param retry: initial reconnection time in milliseconds, or ``None``.
    :param max_line_length: longest line accepted, in bytes.  ``None`` (the default): lines have
        no limit of their own but the event size's, so that a ``data:`` line as large as an event
        decodes, and a line longer than any such line raises :class:`EventTooLarge`; with both
        ``None``, nothing is bounded.
    :param max_event_size: largest event data accepted, in bytes; ``None`` for no limit.

    Exceeding a limit raises :class:`LineTooLong` or :class:`EventTooLarge`; the events decoded
    from the same ``feed()`` call before that point are on the exception's ``events``.
    Not thread-safe: one decoder belongs to one reader.
    """

    __slots__ = (
        "_bretry",
        "_clean",
        "_comments",
        "_cr",
        "_data",
        "_dsize",
        "_fast_limit",
        "_follow",
        "_id_buffer",
        "_idle",
        "_last_id",
        "_max_event",
        "_plain",
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
        self._max_event = limit("max_event_size", max_event_size)
        self._max_line = limit("max_line_length", max_line_length)
        # Lines that follow the event size are bounded all the same, so that an endless line
        # cannot grow without end.
        self._follow = max_line_length is None and self._max_event < UNLIMITED
        if self._follow:
            self._max_line = self._max_event + _DATA_PREFIX
        self._fast_limit = min(self._max_line, self._max_event)
        self._last_id = last_event_id
        self._id_buffer = last_event_id
        self._retry = retry
        self._comments = False
        self._reset()

    def _reset(self) -> None:
        # Per-stream state; last_id and retry outlive a stream, as EventSource's do.  An ID
        # read in a block that was never dispatched is dropped with the block (HTML 9.2.6:
        # only dispatch commits the buffer to the last event ID string).
        self._start()
        self._id_buffer = self._last_id
        self._cr = False  # the last byte fed was a CR (now a line break)
        self._data: list[bytes] = []
        self._dsize = 0  # bytes the joined data of an open event would have, plus one
        self._type = b""
        self._bretry: int | None = None  # a retry field seen in the current block
        self._error: LimitExceeded | None = None
        self._clean = False  # no per-stream state pending: feed() may take its fast path
        # A chunk with no line break may go straight to the line buffer: no BOM still possible,
        # no CR pending, no error.
        self._plain = False
        self._idle = True  # no event open: no data, type, retry or ID read since a dispatch

    @property
    def last_event_id(self) -> str:
        """The last event ID string, as of the last dispatch: what a reconnect sends as
        ``Last-Event-ID``.  An ``id`` field counts once its block has ended."""
        return self._last_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in effect, in milliseconds, or ``None`` if never set."""
        return self._retry

    def feed(self, data: BytesLike) -> list[Event]:
        """Decode the next chunk of the stream; return the events it completed, in order.

        ``data`` is bytes or any bytes-like object (a bytearray or memoryview is copied, so the
        caller may reuse its buffer); ``str`` raises :class:`TypeError`.
        """
        if self._clean:
            # The most common chunk of all, one whole "data: ..." event as a server flushes
            # it, is decoded here without touching any state.
            if data[:6] == b"data: " and data[-1] == 10:
                # Ended by LF LF or by CR LF CR LF; b"\n" stands for neither, and fails below.
                middle = (
                    data[6:-2] if data[-2] == 10 else data[6:-4] if data[-4:-1] == _CRLFCR else _LF
                )
                if 10 not in middle and 13 not in middle and len(data) <= self._fast_limit:
                    return [_message(middle, self._last_id)]
        elif self._plain and type(data) is bytes and 10 not in data and 13 not in data:
            # A chunk that ends no line only grows the unfinished one: LineBuffer._hold, inlined
            # because a stream read a few bytes at a time takes this path for most chunks, and
            # the call would add a sixth to such a feed (2,470 instructions instead of 2,100).
            self._parts.append(data)
            room = self._room - len(data)
            self._room = room
            if room < 0:
                self._fail(self._too_long())
            return []
        return self._feed(data)

    def _feed(self, data: BytesLike) -> list[Event]:
        data = self._admit(data)
        if self._cr and data:
            self._cr = False
            if data[0] == 10:
                data = data[1:]
        if 13 in data:
            self._cr = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(10) + 1
        if not end:
            self._clean = False
            self._plain = self._bom is None and not self._cr
            if data and self._hold(data) < 0:
                self._fail(self._too_long())
            return []
        # LineBuffer._joined and _keep, inlined: with small chunks this runs for most events,
        # and the two calls cost a tenth of it.
        parts = self._parts
        if parts:
            size = len(data)
            parts.append(data)
            data = b"".join(parts)
            end += len(data) - size
        if (
            self._idle
            and end <= _SMALL
            and data[0] != 10
            and end <= self._fast_limit
            and not self._comments
            and data.find(b"\n\n") < 0
            and data.find(b"retry") < 0
        ):
            # (find(), not "in": bytes.__contains__ tries its argument as an int first, and the
            # TypeError it raises and clears costs more than the search.)
            # No event is open and none can end here (no blank line): hold the whole lines
            # too, so that they reach _text with their blank line, often as one whole event.
            # Nothing they hold is seen before then: no comment (none are held for
            # feed_items()), no retry field, and an ID counts only at dispatch; and no limit can
            # be hit, as they fit the event size.
            self._parts = [data]
            self._room = room = self._max_line - (len(data) - end)
            if room < 0:
                self._fail(self._too_long())
            self._clean = False
            self._plain = not self._cr
            return []
        if end < len(data):
            head = data[:end]
            rest = data[end:]
            self._parts = [rest]
            self._room = room = self._max_line - len(rest)
        else:
            head = data
            if parts:
                self._parts = []
            self._room = room = self._max_line
        out: list[Event] = []
        if end > self._max_line:
            head = self._check_lines(head, out)
        if self._idle and head[:6] == b"data: " and head[-2] == 10:
            # One whole "data: ..." event again, now assembled from smaller chunks.
            middle = head[6:-2]
            if 10 not in middle and end <= self._fast_limit:
                out.append(_message(middle, self._last_id))
            else:
                self._text(head, out)
        else:
            self._text(head, out)
        if room < 0:
            self._fail(self._too_long(), out)
        self._clean = self._idle and not (self._parts or self._cr)
        self._plain = not self._cr
        return out

    def feed_items(self, data: BytesLike) -> list[Event | Comment]:
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

    def _too_long(self) -> LimitExceeded:
        # The error for a line over the line limit: that limit's, or the event size's when
        # lines follow it.
        if self._follow:
            return EventTooLarge(self._max_event)
        return LineTooLong(self._max_line)

    def _fail(self, error: LimitExceeded, out: list[Event] | None = None) -> None:
        # Keep the stream's completed events on the error; later feeds raise the error again.
        if out:
            error.events = list(out)
        self._parts = []
        self._room = self._max_line
        self._data = []
        self._error = type(error)(error.value)
        self._clean = self._plain = False
        raise error

    def _check_lines(self, head: bytes, out: list[Event]) -> bytes:
        # Only reached when the decoded region could hold an over-long line: find the first one,
        # decode everything before it, then fail.
        start = 0
        limit = self._max_line
        while True:
            nl = head.index(b"\n", start)
            if nl - start > limit:
                self._text(head[:start], out)
                self._fail(self._too_long(), out)
            start = nl + 1
            if start == len(head):
                return head

    def _text(self, text: bytes, out: list[Event]) -> None:
        # text is a run of complete lines, each ending in LF.  Lines stay bytes until a value
        # is used: slicing bytes is cheaper than slicing non-ASCII str, and field names and
        # separators are ASCII, so decoding each value alone gives what decoding the stream
        # would.  One loop over all lines, with stream state in locals written back at the
        # end, measured fastest: per-block splitting and helper calls cost more than they save.
        append = out.append
        data = self._data
        kind = self._type
        retry = self._bretry
        last_id = self._id_buffer
        committed = self._last_id
        comments = self._comments
        max_event = self._max_event
        dispatched = False
        start = len(data)
        # The open event's size is checked line by line only where it could exceed the limit:
        # an event carried over from an earlier feed, or a text longer than the limit.  So the
        # error comes at the same line whatever the chunking, and costs nothing otherwise.
        careful = bool(start) or len(text) > max_event
        size = self._dsize if start else 0  # bytes of the open event's joined data, plus one
        if not data and not kind and retry is None and text[:6] == b"data: ":
            # A run of one-line "data: ..." events, the token streams servers send most: when
            # every block is one data line, each becomes an event with no per-line loop.
            end = len(text) if text[-2:] == b"\n\n" else text.rfind(b"\n\n") + 2
            run = text[:end] if end < len(text) else text
            blocks = run.count(b"\n\n")
            if (
                blocks
                and run.count(b"\n") == 2 * blocks
                and run.count(b"\n\ndata: ") == blocks - 1
                and end <= max_event
            ):
                for block in run[6:-2].split(b"\n\ndata: "):
                    event = _new(Event)
                    event.event = "message"
                    try:
                        event.data = block.decode()
                    except UnicodeDecodeError:
                        event.data = block.decode("utf-8", "replace")
                    event.id = last_id
                    event.retry = None
                    append(event)
                committed = last_id
                dispatched = True
                text = text[end:]
        lines = text.split(b"\n")
        lines.pop()  # the empty piece after the final LF
        for line in lines:
            # Blank lines first: the test is cheaper than the data line's slice compare.
            if not line:
                # Dispatch; its first step commits the ID buffer even when nothing fires.
                # The data is within the limit: checked line by line when careful, and
                # otherwise no longer than the text.
                committed = last_id
                dispatched = True
                size = 0
                if data:
                    value = b"\n".join(data)
                    event = _new(Event)
                    event.event = kind.decode("utf-8", "replace") if kind else "message"
                    try:
                        event.data = value.decode()
                    except UnicodeDecodeError:
                        event.data = value.decode("utf-8", "replace")
                    event.id = last_id
                    event.retry = retry
                    append(event)
                    data = []
                kind = b""
                retry = None
            elif line[:6] == b"data: ":
                data.append(line[6:])
                if careful:
                    size += len(line) - 5
                    if size - 1 > max_event:
                        self._last_id = committed
                        self._fail(EventTooLarge(max_event), out)
            else:
                name, colon, value = line.partition(b":")
                if not name:
                    if comments and colon:
                        append(Comment(value.decode("utf-8", "replace")))  # type: ignore[arg-type]
                    continue
                if value and value[0] == 32:
                    value = value[1:]
                if name == b"event":
                    kind = value
                elif name == b"id":
                    if 0 not in value:
                        try:
                            last_id = value.decode()
                        except UnicodeDecodeError:
                            last_id = value.decode("utf-8", "replace")
                elif name == b"retry":
                    if value.isdigit():
                        try:
                            self._retry = retry = int(value)
                        except ValueError:
                            # More digits than int() takes (sys.get_int_max_str_digits).
                            pass
                elif name == b"data":
                    data.append(value)
                    if careful:
                        size += len(value) + 1
                        if size - 1 > max_event:
                            self._last_id = committed
                            self._fail(EventTooLarge(max_event), out)
        counted = 0 if dispatched else start
        if data and not careful:
            # An event opened in this text, which is no longer than the limit: count it now,
            # so that the next feed can go on counting where it stopped.
            size = sum(map(len, data)) + len(data)
        if len(data) - counted > 256:
            # Many short data lines cost far more as objects than as bytes: this feed's lines
            # become one piece (earlier pieces are left alone, so nothing is copied twice).
            data[counted:] = [b"\n".join(data[counted:])]
        self._dsize = size if data else 0
        self._id_buffer = last_id
        self._last_id = committed
        self._data = data
        self._type = kind
        self._bretry = retry
        self._idle = not data and not kind and retry is None and last_id == committed


@overload
def decode(
    body: BytesLike,
    *,
    max_line_length: int | None = ...,
    max_event_size: int | None = ...,
    comments: Literal[False] = ...,
) -> list[Event]: ...
@overload
def decode(
    body: BytesLike,
    *,
    max_line_length: int | None = ...,
    max_event_size: int | None = ...,
    comments: Literal[True],
) -> list[Event | Comment]: ...
@overload
def decode(
    body: BytesLike,
    *,
    max_line_length: int | None = ...,
    max_event_size: int | None = ...,
    comments: bool,
) -> list[Event] | list[Event | Comment]: ...
def decode(
    body: BytesLike,
    *,
    max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    comments: bool = False,
) -> list[Event] | list[Event | Comment]:
    """Decode a whole ``text/event-stream`` body; an unfinished last event is discarded.

    With ``comments=True`` the list has the comments too, as :class:`Comment` items in stream
    order (see :meth:`SSEDecoder.feed_items`).
    """
    decoder = SSEDecoder(max_line_length=max_line_length, max_event_size=max_event_size)
    if comments:
        items = decoder.feed_items(body)
        items += decoder.close()
        return items
    events = decoder.feed(body)
    events += decoder.close()
    return events


@overload
def iter_events(
    chunks: Iterable[BytesLike],
    *,
    max_line_length: int | None = ...,
    max_event_size: int | None = ...,
    comments: Literal[False] = ...,
) -> Iterator[Event]: ...
@overload
def iter_events(
    chunks: Iterable[BytesLike],
    *,
    max_line_length: int | None = ...,
    max_event_size: int | None = ...,
    comments: Literal[True],
) -> Iterator[Event | Comment]: ...
@overload
def iter_events(
    chunks: Iterable[BytesLike],
    *,
    max_line_length: int | None = ...,
    max_event_size: int | None = ...,
    comments: bool,
) -> Iterator[Event] | Iterator[Event | Comment]: ...
def iter_events(
    chunks: Iterable[BytesLike],
    *,
    max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
    max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    comments: bool = False,
) -> Iterator[Event] | Iterator[Event | Comment]:
    """Decode an iterable of byte chunks lazily, yielding each event as soon as it is complete.

    With ``comments=True`` comments are yielded too, as :class:`Comment` items in stream order,
    each as soon as its line is complete (see :meth:`SSEDecoder.feed_items`).  The limits are
    checked at once; the chunks are read only as the result is iterated.
    """
    decoder = SSEDecoder(max_line_length=max_line_length, max_event_size=max_event_size)
    if comments:
        return _pump(decoder.feed_items, decoder.close, chunks)
    return _iter_events(decoder, chunks)


def _pump(
    feed: Callable[[BytesLike], Sequence[_T]],
    close: Callable[[], Sequence[_T]],
    chunks: Iterable[BytesLike],
) -> Iterator[_T]:
    # The plain loop over a decoder: what each chunk completes, then what close() gives.
    for chunk in chunks:
        items = feed(chunk)
        if items:
            yield from items
    yield from close()


def _iter_events(decoder: SSEDecoder, chunks: Iterable[BytesLike]) -> Iterator[Event]:
    # _pump(decoder.feed, ...) with feed()'s two per-chunk paths inlined, the copies that pay
    # here, where a generator's locals cost less than a call and attribute stores: the
    # whole-event path takes a stream of one event per chunk from 6.9k to 5.1k instructions an
    # event, the unfinished-line path one cut into 1-byte chunks from 187k to 128k
    # (python -m tests.benchmarks.instructions --only tokens --only tokens/1B).  The decoder's
    # state is read after each real feed, and the room left written back before the next one.
    feed = decoder.feed
    clean = plain = False
    last_id = ""
    parts = decoder._parts
    room = decoder._room
    fast_limit = decoder._fast_limit
    for chunk in chunks:
        if clean:
            if chunk[:6] == b"data: " and chunk[-1] == 10:
                middle = (
                    chunk[6:-2]
                    if chunk[-2] == 10
                    else chunk[6:-4]
                    if chunk[-4:-1] == _CRLFCR
                    else _LF
                )
                if 10 not in middle and 13 not in middle and len(chunk) <= fast_limit:
                    event = _new(Event)
                    event.event = "message"
                    try:
                        event.data = middle.decode()  # type: ignore[union-attr]
                    except UnicodeDecodeError:
                        event.data = middle.decode("utf-8", "replace")  # type: ignore[union-attr]
                    except AttributeError:
                        event.data = str(middle, "utf-8", "replace")  # a memoryview: see _message
                    event.id = last_id
                    event.retry = None
                    yield event
                    continue
        elif plain and type(chunk) is bytes and 10 not in chunk and 13 not in chunk:
            size = len(chunk)
            if size <= room:
                parts.append(chunk)
                room -= size
                continue
        decoder._room = room
        events = feed(chunk)
        clean = decoder._clean
        plain = decoder._plain
        parts = decoder._parts
        room = decoder._room
        last_id = decoder._last_id
        if events:
            yield from events
    yield from decoder.close()
