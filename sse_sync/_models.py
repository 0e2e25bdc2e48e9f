"""Value objects handed to users: :class:`Event` and :class:`Comment`."""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._errors import EventJSONError
from ._wire import encode_fields

__all__ = ("Comment", "Event")


@attrs.define(slots=True, eq=True, repr=False, weakref_slot=False)
class Event:
    """One dispatched server-sent event.

    ``event`` is the type (``"message"`` when the stream named none); ``data`` the data, its lines
    joined by ``"\\n"``; ``id`` the last event ID in effect at dispatch (``""`` if none), exactly
    like a browser's ``MessageEvent.lastEventId``; ``retry`` the reconnection time in milliseconds
    if this event's own block carried a valid ``retry`` field, else ``None``.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self, **kwargs: Any) -> Any:
        """Parse ``data`` as JSON; on failure raise :class:`EventJSONError` naming this event."""
        try:
            return json.loads(self.data, **kwargs)
        except json.JSONDecodeError as exc:
            raise EventJSONError(exc.msg, exc.doc, exc.pos, self.event, self.id) from exc

    def encode(self) -> bytes:
        """This event in wire format, ready to write to a ``text/event-stream`` response."""
        return encode_fields(self.event, self.data, self.id, self.retry)

    def __repr__(self) -> str:
        parts = [f"event={self.event!r}", f"data={_preview(self.data)}"]
        if self.id:
            parts.append(f"id={self.id!r}")
        if self.retry is not None:
            parts.append(f"retry={self.retry}")
        return f"Event({', '.join(parts)})"


@attrs.frozen
class Comment:
    """A comment line (``":text"``) as received: ``text`` is everything after the colon."""

    text: str


def _preview(text: str, limit: int = 200) -> str:
    # A repr of a 16 MiB event would swamp a log line; show its start and its size instead.
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"
