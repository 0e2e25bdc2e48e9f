"""Field-level wire format of ``text/event-stream``: a message's fields to UTF-8 bytes.

Neither a value nor a codec: :class:`~sse_sync.Event` (``Event.encode()``) and the encoder
(``encode``, ``encode_event``, ``EventWriter``) both format through here, so the models do not
import the encoder.  Imports nothing from the package.
"""

from __future__ import annotations

__all__ = ("encode", "encode_fields")


def encode(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Encode one message as UTF-8 wire format, ending with the blank line that dispatches it.

    Lines come in this order: comment, ``event``, ``id``, ``retry``, data.

    :param data: the event data; each of its lines (split at CRLF, CR or LF) becomes a ``data:``
        line, so a receiver sees every line break as LF.  ``""`` sends an event with empty data;
        ``None`` sends no data line, and a receiver then dispatches no event.
    :param event: the event type.  ``None`` and ``""`` write no ``event:`` line (a receiver then
        reports ``"message"``); any other value, ``"message"`` included, is written as given.
    :param id: the event ID, which a receiver keeps until another ``id:`` line; ``""`` resets it.
        ``None`` writes no ``id:`` line.
    :param retry: the reconnection time to set, in milliseconds.
    :param comment: text for comment lines (``":" + line`` for each line, no space added).  A
        decoder ignores these; they keep idle connections alive.
    :raises ValueError: if a value cannot be encoded so that it decodes back unchanged: a line
        break in ``event`` or ``id``, NUL in ``id``, ``retry`` not an int >= 0, a lone surrogate in
        any text, a text argument that is not a ``str``, or no argument at all.
    """
    if event is None and id is None and retry is None and comment is None and type(data) is str:
        # The hot path (a server emitting tokens): data alone, usually a single line.
        text = data.replace("\r\n", "\n").replace("\r", "\n") if "\r" in data else data
        try:
            return f"data: {text.replace(_LF, _LF_DATA)}\n\n".encode()
        except UnicodeEncodeError:
            raise _unencodable("data", data) from None
    return _encode(data, event, id, retry, comment)


def encode_fields(
    event: str, data: str, id: str, retry: int | None, *, last_id: str | None = None
) -> bytes:
    """Encode an event's fields as :func:`~sse_sync.encode_event` documents (``"message"``
    writes no ``event:`` line; ``id`` is written as ``last_id`` says)."""
    if last_id is None:
        event_id = id or None
    else:
        event_id = None if id == last_id else id
    return encode(data, event=None if event == "message" else event, id=event_id, retry=retry)


# -- internals -----------------------------------------------------------------------------------

_LF = "\n"
_LF_DATA = "\ndata: "
_LF_COMMENT = "\n:"


def _encode(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
) -> bytes:
    parts: list[str] = []
    if comment is not None:
        _check_str("comment", comment)
        parts.append(f":{_normalise(comment).replace(_LF, _LF_COMMENT)}\n")
    if event is not None:
        _check_line("event", event)
        if event:
            parts.append(f"event: {event}\n")
    if id is not None:
        _check_line("id", id)
        if "\0" in id:
            raise ValueError("id must not contain NUL: a receiver would ignore the whole id line")
        parts.append(f"id: {id}\n")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"retry must be an int >= 0 or None, not {retry!r}")
        try:
            parts.append(f"retry: {int(retry)}\n")  # an int subclass may format otherwise
        except ValueError:
            # More digits than str() allows (sys.get_int_max_str_digits); a receiver's int()
            # would refuse them as well.
            raise ValueError("retry has too many digits to encode") from None
    if data is not None:
        _check_str("data", data)
        parts.append(f"data: {_normalise(data).replace(_LF, _LF_DATA)}\n")
    if not parts:
        raise ValueError("nothing to encode: give data, event, id, retry or comment")
    parts.append("\n")
    try:
        return "".join(parts).encode()
    except UnicodeEncodeError:
        pass
    for name, value in (("comment", comment), ("event", event), ("id", id), ("data", data)):
        if value is not None:
            try:
                value.encode()
            except UnicodeEncodeError:
                raise _unencodable(name, value) from None
    raise AssertionError("unreachable: some field failed to encode")  # pragma: no cover


def _normalise(text: str) -> str:
    # Every line break the decoder recognises becomes LF, so that splitting on LF finds them all.
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str or None, not {type(value).__name__}")


def _check_line(name: str, value: str) -> None:
    _check_str(name, value)
    if "\n" in value or "\r" in value:
        raise ValueError(f"{name} must not contain a line break (CR or LF): {_preview(value)}")


def _unencodable(name: str, value: str) -> ValueError:
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return ValueError(
            f"{name} contains a lone surrogate {value[exc.start]!r} at index {exc.start}, "
            "which cannot be encoded as UTF-8"
        )
    return ValueError(f"{name} cannot be encoded as UTF-8")  # pragma: no cover


def _preview(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} chars)"
