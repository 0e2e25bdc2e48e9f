"""The line buffer both decoders share: bytes in any chunking in, runs of complete lines out.

Strategy: a decoder hands each chunk to its buffer, which keeps what follows the chunk's last LF
(the unfinished line) as a list of pieces, so a long line arriving in small chunks costs linear
time, not quadratic; when a chunk brings an LF, the pieces and the chunk are joined once and cut
at that LF.  The bytes of a byte order mark split across the first chunks are held until it is
known whether they are one.  Memory is bounded by ``max_line_length``: ``_room`` counts the
bytes the unfinished line may still take, and the decoder raises once it goes negative.

What a line ending is stays with each decoder (SSE ends lines at CR, LF and CR LF; NDJSON at LF
only, a CR before it being part of the line until the decoder drops it).
"""

from __future__ import annotations

import sys

__all__ = ("UNLIMITED", "BytesLike", "LineBuffer", "as_bytes", "limit")

BytesLike = bytes | bytearray | memoryview
"""What the decoders take: bytes, or a bytes-like object that they copy before keeping."""

UNLIMITED = sys.maxsize

_BOM = b"\xef\xbb\xbf"


def as_bytes(data: object) -> bytes:
    """``data`` as bytes of its own; raise :class:`TypeError` for ``str`` and non-buffers."""
    # Chunks that are not exact bytes are copied: a caller may reuse a bytearray or the buffer
    # under a memoryview for its next read, and the decoders keep unfinished lines across feeds.
    if isinstance(data, str):
        raise TypeError("the decoder takes bytes, not str: pass the raw body, or encode it")
    try:
        return memoryview(data).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"the decoder takes bytes, not {type(data).__name__}") from None


def limit(name: str, value: int | None) -> int:
    """A limit argument checked: a positive int, or ``None`` (no limit) as ``UNLIMITED``."""
    if value is None:
        return UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, not {value!r}")
    return value


class LineBuffer:
    """The unfinished line of a stream, and a byte order mark still possible at its start.

    A base class rather than an object the decoders hold: their per-chunk paths then reach the
    buffer's fields as their own, with no attribute hop (a measurable share of a 1-byte feed).
    """

    __slots__ = ("_bom", "_error", "_max_line", "_parts", "_room")

    _max_line: int  # set by the decoder, from its max_line_length
    _error: Exception | None  # the error that broke the stream, raised again by every feed

    def _start(self) -> None:
        # A new stream: nothing held, and a BOM possible again.
        self._bom: bytes | None = b""  # bytes seen while a leading BOM is still possible
        self._parts: list[bytes] = []  # pieces of the unfinished line
        self._room = self._max_line  # bytes the unfinished line may still take

    def _admit(self, data: BytesLike) -> bytes:
        # What every feed does first: take bytes of our own, raise the stream's error again,
        # and strip a BOM at its start.
        if type(data) is not bytes:
            data = as_bytes(data)
        if self._error is not None:
            raise self._error
        if self._bom is not None:
            return self._strip_bom(data)
        return data

    def _strip_bom(self, data: bytes) -> bytes:
        # Only called while self._bom is not None: at the very start of a stream.
        buf = self._bom + data if self._bom else data
        if len(buf) < 3 and _BOM.startswith(buf):
            self._bom = buf  # maybe a BOM split across chunks: wait for more
            return b""
        self._bom = None
        return buf[3:] if buf[:3] == _BOM else buf

    def _hold(self, data: bytes) -> int:
        # data has no line break: it continues the unfinished line.  The room left is returned,
        # for the decoder to raise its own error when it is negative.
        self._parts.append(data)
        room = self._room - len(data)
        self._room = room
        return room

    def _joined(self, data: bytes) -> bytes:
        # data brings a line break: the held pieces and data as one bytes, the pieces dropped.
        parts = self._parts
        if not parts:
            return data
        parts.append(data)
        self._parts = []
        return b"".join(parts)

    def _keep(self, data: bytes, end: int) -> bytes:
        # data[:end] is a run of complete lines: return it, and keep data[end:] as the new
        # unfinished line (the caller checks the room, as in _hold).
        rest = data[end:]
        if rest:
            self._parts = [rest]
        self._room = self._max_line - len(rest)
        return data[:end] if rest else data

    def _tail(self) -> bytes:
        # The unfinished line (and a BOM's bytes never completed), as at the end of a stream.
        return (self._bom or b"") + b"".join(self._parts)
