"""A sans-IO, incremental decoder for ``text/event-stream`` (WHATWG HTML, section 9.2.5-9.2.6).

Strategy: bytes in, events out, no I/O and no imports beyond the standard library, attrs and this
package's models and errors.  Each ``feed()`` does as much as possible in C:

1. Line endings are normalised to LF with two ``bytes.replace`` calls.  A CR that ends a chunk
   is a line break at once (so its event is dispatched without waiting); if the next chunk then
   starts with LF, that LF is the second half of the same CRLF and is dropped.
2. Everything up to the last LF is split into lines in one call and interpreted line by line
   by the spec's field rules, as bytes: field names and separators are ASCII, so decoding each
   value on its own (UTF-8, invalid bytes become U+FFFD) gives what decoding the whole stream
   would, and slicing bytes is cheaper than slicing non-ASCII text.
3. A chunk that is exactly one ``data: ...`` event, what servers flush, becomes an event
   without touching any state (in ``feed()``, and inlined in ``iter_events()``, which also holds
   the unfinished line itself, so that small chunks reassemble into whole events that take it).
4. The bytes after the last LF are the start of the next line, kept as a list of pieces so that a
   long line arriving in small chunks costs linear time, not quadratic.

Memory is bounded by the two limits (the unfinished line and the unfinished event's data), never
by the length of the stream.  After a limit error the current stream is unusable: call
``close()`` (which starts a new stream) before feeding more.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, TypeAlias, TypeVar, overload

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
"""Default limit on one event's data, in bytes of UTF-8 (16 MiB)."""

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""What the decoders take: bytes, or a bytes-like object that they copy before keeping."""

_T = TypeVar("_T")

_BOM = b"\xef\xbb\xbf"
_CRLFCR = b"\r\n\r"
_LF = b"\n"
_UNLIMITED = sys.maxsize

# The hot paths build events as object.__new__(Event) plus four slot stores: Event has no
# validators or converters, so this gives exactly what Event(...) gives, for about 1.6k machine
# instructions instead of 2.3k (python -m tests.benchmarks.instructions --construct, CPython
# 3.11).  Likewise they decode with strict bytes.decode() and redo it with errors="replace" only
# on invalid UTF-8, which skips the encoding-name lookup of decode("utf-8", "replace") on every
# value.
_new = object.__new__


def _message(raw: BytesLike, last_id: str) -> Event:
    # A "message" event with raw as its data, built as described above.  The two hottest loops
    # (iter_events() on whole-event chunks, runs of one-line events in _text) inline this:
    # the call costs about 430 instructions, a tenth of what the rest of such an event costs.
    event = _new(Event)
    event.event = "message"
    try:
        event.data = raw.decode()  # type: ignore[union-attr]
    except UnicodeDecodeError:
        event.data = raw.decode("utf-8", "replace")  # type: ignore[union-attr]
    except AttributeError:
        event.data = str(raw, "utf-8", "replace")  # a memoryview: see iter_events()
    event.id = last_id
    event.retry = None
    return event


# iter_events() reassembles chunks up to this size into whole lines and events before feeding
# them: that pays where chunks are small (then each event costs several); on larger ones it
# would only copy more.  Measured under callgrind, it takes 1 B and 7 B chunks from 116k and
# 26k instructions per event to 94k and 23k; done on 64 KiB chunks, it cost a quarter of their
# speed.
_SMALL = 1024


def _as_bytes(data: object) -> bytes:
    # Chunks that are not exact bytes are copied: a caller may reuse a bytearray or the buffer
    # under a memoryview for its next read, and the decoder keeps unfinished lines across feeds.
    if isinstance(data, str):
        raise TypeError("the decoder takes bytes, not str: pass the raw body, or encode it")
    try:
        return memoryview(data).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"the decoder takes bytes, not {type(data).__name__}") from None


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
    :param max_event_size: largest event data accepted, in bytes; ``None`` for no limit.

    Exceeding a limit raises :class:`LineTooLong` or :class:`EventTooLarge`; the events decoded
    from the same ``feed()`` call before that point are on the exception's ``events``.
    Not thread-safe: one decoder belongs to one reader.
    """

    __slots__ = (
        "_bom",
        "_bretry",
        "_clean",
        "_comments",
        "_cr",
        "_data",
        "_dsize",
        "_error",
        "_fast_limit",
        "_id_buffer",
        "_idle",
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
        self._id_buffer = self._last_id
        self._bom: bytes | None = b""  # bytes seen while a leading BOM is still possible
        self._cr = False  # the last byte fed was a CR (now a line break)
        self._parts: list[bytes] = []  # pieces of the unfinished line
        self._plen = 0
        self._data: list[bytes] = []
        self._dsize = 0  # bytes the joined data of an open event would have, plus one
        self._type = b""
        self._bretry: int | None = None  # a retry field seen in the current block
        self._error: LimitExceeded | None = None
        self._clean = False  # no per-stream state pending: feed() may take its fast path
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
        # The most common chunk of all, one whole "data: ..." event as a server flushes it, is
        # decoded here without touching any state.
        if self._clean and data[:6] == b"data: " and data[-1] == 10:
            # Ended by LF LF or by CR LF CR LF; b"\n" stands for neither, and fails below.
            middle = data[6:-2] if data[-2] == 10 else data[6:-4] if data[-4:-1] == _CRLFCR else _LF
            if 10 not in middle and 13 not in middle and len(data) <= self._fast_limit:
                return [_message(middle, self._last_id)]
        return self._feed(data)

    def _feed(self, data: BytesLike) -> list[Event]:
        if not isinstance(data, bytes):
            data = _as_bytes(data)
        if self._error is not None:
            raise self._error
        if self._bom is not None:
            data = self._strip_bom(data)
        if self._cr and data:
            self._cr = False
            if data[0] == 10:
                data = data[1:]
        if 13 in data:
            self._cr = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n") + 1
        if not end:
            if data:
                self._parts.append(data)
                self._plen += len(data)
                self._clean = False
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
        if self._idle and head[:6] == b"data: " and head[-2] == 10:
            # One whole "data: ..." event again, now assembled from smaller chunks.
            middle = head[6:-2]
            if 10 not in middle and len(head) <= self._fast_limit:
                out.append(_message(middle, self._last_id))
            else:
                self._text(head, out)
        else:
            self._text(head, out)
        if self._plen > self._max_line:
            self._fail(LineTooLong(self._max_line), out)
        self._clean = self._idle and not (rest or self._cr) and self._bom is None
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
        self._clean = False
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
                self._fail(LineTooLong(limit), out)
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
    # Past the inlined fast path below, feed()'s own would fail the same tests: go straight on.
    feed = decoder._feed
    # A chunk with no CR or LF cannot complete a line, nor lines with no blank line among them an
    # event: hold them and feed them with the next chunk that can, which gives the same events
    # at the same points and skips a feed() per chunk.
    held: list[bytes] = []
    held_size = 0
    limit = decoder._max_line
    fast_limit = decoder._fast_limit
    # feed()'s fast path, inlined: a whole "data: ..." event per chunk, the common case.
    # idle: the decoder is clean (as after a whole event); clean: that, and nothing held.
    idle = clean = False
    last_id = ""
    # A CR ending a chunk that was made LF here: an LF starting the next is its other half.
    cr_pending = False
    for chunk in chunks:
        # Each test here was chosen by its measured cost: a slice compare is cheaper than a
        # method call, an index cheaper than a slice, and the middle slice is the one decoded.
        if clean and chunk[:6] == b"data: " and chunk[-1] == 10:
            # As in feed(): LF LF or CR LF CR LF ends the event; anything else fails below.
            middle = (
                chunk[6:-2] if chunk[-2] == 10 else chunk[6:-4] if chunk[-4:-1] == _CRLFCR else _LF
            )
            if 10 not in middle and 13 not in middle and len(chunk) <= fast_limit:
                event = _new(Event)
                event.event = "message"
                try:
                    event.data = middle.decode()  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    event.data = middle.decode("utf-8", "replace")  # type: ignore[union-attr]
                except AttributeError:
                    # A memoryview passes every test above but has no decode(); it is
                    # caught here, where it costs nothing, rather than by a type check on
                    # every chunk.  Nothing of it is kept, so it need not be copied.
                    event.data = str(middle, "utf-8", "replace")
                event.id = last_id
                event.retry = None
                yield event
                continue
        if not isinstance(chunk, bytes):
            chunk = _as_bytes(chunk)  # it may be held: a reused buffer must not change it
        if cr_pending and chunk:
            cr_pending = False
            if chunk[0] == 10:
                chunk = chunk[1:]
                if not chunk:
                    continue
        if 10 in chunk or 13 in chunk:
            if held:
                held.append(chunk)
                chunk = b"".join(held)
            held = []
            held_size = 0
            small = len(chunk) <= _SMALL
            if small and 13 in chunk:
                # CR LF and lone CR become LF here, as the decoder would make them, so that
                # CRLF streams are reassembled too; a CR ending the chunk is a line break at
                # once, and cr_pending drops the LF that may follow it.  Not where a CR ended
                # the decoder's last feed: its own rules take that.
                if decoder._cr:
                    small = False
                else:
                    cr_pending = chunk[-1] == 13
                    chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if small:
                if chunk[0] != 10 and chunk.find(b"\n\n") < 0 and len(chunk) <= fast_limit:
                    # No blank line, so no event can end here: hold the whole lines too, and
                    # they reach the decoder with the blank line, as one event.
                    held.append(chunk)
                    held_size = len(chunk)
                    clean = False
                    continue
                # The unfinished line after the last LF is held here rather than in the decoder,
                # so that what is fed is whole lines, and often exactly one whole event, which
                # then takes the inlined fast path too (small chunks make this the common case).
                end = chunk.rfind(b"\n") + 1
                if end < len(chunk) and len(chunk) - end <= limit:
                    held.append(chunk[end:])
                    held_size = len(chunk) - end
                    chunk = chunk[:end]
                if idle and chunk[:6] == b"data: " and chunk[-2] == 10:
                    middle = chunk[6:-2]
                    if 10 not in middle and len(chunk) <= fast_limit:
                        clean = not (held or cr_pending)
                        yield _message(middle, last_id)
                        continue
            events = feed(chunk)
            idle = decoder._clean
            clean = idle and not (held or cr_pending)
            last_id = decoder._last_id
            if events:
                yield from events
        else:
            held.append(chunk)
            held_size += len(chunk)
            clean = False
            if held_size > limit:
                # More than a line may hold: the decoder takes it now, and raises LineTooLong
                # if the unfinished line is too long.  No blank line is held, so no event ends.
                feed(b"".join(held))
                held = []
                held_size = 0
                idle = decoder._clean
    if held:
        yield from feed(b"".join(held))
    yield from decoder.close()
