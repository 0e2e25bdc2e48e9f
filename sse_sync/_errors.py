"""The exception hierarchy: everything sse_sync raises derives from :class:`SSEError`.

Every class with extra constructor arguments defines ``__reduce__`` so that it survives pickling
(errors travel between threads and processes).  Nothing here imports requests or urllib3: the
transport edge translates their errors into these, chaining the original with ``raise ... from``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

__all__ = (
    "ConnectError",
    "ContentTypeError",
    "DecodeError",
    "EventJSONError",
    "EventTooLarge",
    "HTTPStatusError",
    "IdleTimeout",
    "LimitExceeded",
    "LineTooLong",
    "NDJSONDecodeError",
    "ReadTimeout",
    "RequestError",
    "ResponseError",
    "RetriesExhausted",
    "SSEError",
    "SendTimeout",
    "StreamError",
    "WriterClosed",
)


class SSEError(Exception):
    """Root of every exception sse_sync raises."""


class DecodeError(SSEError, ValueError):
    """The event stream cannot be decoded."""


class LimitExceeded(DecodeError):
    """A configured decoder limit was exceeded.

    ``limit`` names the setting (``"max_line_length"`` or ``"max_event_size"``), ``value`` is its
    value, and ``events`` holds the events decoded from the same input before the limit was hit,
    so that nothing already complete is lost.
    """

    limit: str = "limit"

    def __init__(self, value: int, events: Sequence[Any] = ()) -> None:
        self.value = value
        self.events: list[Any] = list(events)
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"{self.limit} of {self.value} exceeded"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value, self.events))


class LineTooLong(LimitExceeded):
    """A line grew longer than ``max_line_length`` bytes."""

    limit = "max_line_length"

    def _describe(self) -> str:
        return f"line longer than max_line_length={self.value} bytes"


class EventTooLarge(LimitExceeded):
    """An event's data grew larger than ``max_event_size`` bytes."""

    limit = "max_event_size"

    def _describe(self) -> str:
        return f"event data larger than max_event_size={self.value} bytes"


class NDJSONDecodeError(DecodeError):
    """A line of an NDJSON stream is not valid UTF-8 or not one valid JSON text.

    ``line`` is its 1-based number in the stream (blank lines count), ``reason`` says what is
    wrong, ``preview`` is the start of the line (invalid bytes shown as U+FFFD) and ``values``
    holds the values decoded from the same input before it, so that nothing complete is lost.
    """

    def __init__(
        self, reason: str, line: int, preview: str = "", values: Sequence[Any] = ()
    ) -> None:
        self.reason = reason
        self.line = line
        self.preview = preview
        self.values: list[Any] = list(values)
        super().__init__(f"NDJSON line {line}: {reason} (line starts {preview!r})")

    @property
    def events(self) -> list[Any]:
        """The same list as :attr:`values`, under the name :class:`LimitExceeded` uses."""
        return self.values

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.line, self.preview, self.values))


class EventJSONError(SSEError, json.JSONDecodeError):
    """:meth:`Event.json` found data that is not valid JSON (also a ``json.JSONDecodeError``)."""

    def __init__(self, msg: str, doc: str, pos: int, event: str = "message", id: str = "") -> None:
        json.JSONDecodeError.__init__(self, msg, doc, pos)
        self.event = event
        self.id = id
        where = f"event {event!r}" + (f" (id {id!r})" if id else "")
        self.args = (f"{where} data is not JSON: {msg}: line {self.lineno} column {self.colno}",)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.msg, self.doc, self.pos, self.event, self.id))


class RequestError(SSEError, ValueError):
    """The request cannot be sent as given (an invalid URL, a header value with CR or LF)."""


class ConnectError(SSEError, ConnectionError):
    """The connection could not be made (refused, DNS, TLS, proxy or connect timeout)."""


class ResponseError(SSEError):
    """The server answered, but not with an event stream.

    Carries ``status_code``, ``headers`` (a plain dict), ``url`` and ``body`` (a short preview of
    the response body, at most a few KiB, decoded leniently).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        url: str = "",
        body: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers: dict[str, str] = Headers(headers or {})
        self.url = url
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class Headers(dict[str, str]):
    """A plain dict of response headers whose lookups ignore case, as HTTP names do."""

    def __getitem__(self, name: str) -> str:
        try:
            return super().__getitem__(name)
        except KeyError:
            lower = name.lower()
            for key, value in self.items():
                if key.lower() == lower:
                    return value
            raise

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True


class HTTPStatusError(ResponseError):
    """The response status is not 2xx.  (A 204 is no error: it ends the stream normally.)"""


class ContentTypeError(ResponseError):
    """The response's ``Content-Type`` is not ``text/event-stream`` (``content_type`` says what)."""

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", ""))


class StreamError(SSEError, ConnectionError):
    """The stream broke after it had started (connection reset, truncated chunk, protocol error)."""


class ReadTimeout(StreamError, TimeoutError):
    """No bytes arrived within the socket read timeout."""


class IdleTimeout(ReadTimeout):
    """No bytes (events or heartbeat comments) arrived within the configured idle timeout."""


class RetriesExhausted(SSEError):
    """The reconnection policy gave up; ``__cause__`` says why.

    ``attempts`` counts the failed requests the policy made: reconnections after a stream broke
    (at most ``max_attempts``), or, with ``retry_first`` inside ``connect()``, every attempt at
    the first connection, the first one included (so up to ``max_attempts + 1``).
    """

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.attempts))


class WriterClosed(SSEError):
    """The ``EventWriter`` is closed: by a producer, or by the server when the client left."""


class SendTimeout(SSEError, TimeoutError):
    """``EventWriter.send`` waited ``timeout`` seconds for room among the pending messages."""


def _rebuild(cls: type[ResponseError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj
