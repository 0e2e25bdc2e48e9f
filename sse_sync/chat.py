"""OpenAI-compatible chat-completion streams: text deltas out of ``data:`` JSON chunks.

A streamed chat completion (``POST /v1/chat/completions`` with ``"stream": true``) is an event
stream of JSON chunks, each carrying a piece of the answer in ``choices[0].delta.content``, ended
by the sentinel ``data: [DONE]``.  :func:`stream_chat_completion` sends the request and returns a
:class:`ChatStream` of those pieces::

    from sse_sync.chat import stream_chat_completion

    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    with stream_chat_completion(URL, payload, api_key=KEY) as chat:
        for text in chat:
            print(text, end="", flush=True)
    print(chat.finish_reason, chat.usage)

:func:`iter_text_deltas` and :func:`iter_chat_chunks` do the same for an :class:`Event` iterable
you already have, such as an :class:`~sse_sync.EventStream`.

This module imports requests (through :func:`sse_sync.connect`) only when a request is sent.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import DecodeError, SSEError
from ._models import Event

if TYPE_CHECKING:
    import requests
    from typing_extensions import Self

    from ._client import EventStream

__all__ = (
    "DEFAULT_CHAT_TIMEOUT",
    "ChatCompletionError",
    "ChatStream",
    "delta_text",
    "iter_chat_chunks",
    "iter_text_deltas",
    "stream_chat_completion",
)

DEFAULT_CHAT_TIMEOUT = (10.0, 300.0)
"""(connect, read) seconds: a model may think for minutes before its first token."""

_DONE = "[DONE]"  # the data of the event that ends a chat-completion stream

_RESERVED = ("method", "json", "data", "files", "retry")


class ChatCompletionError(SSEError):
    """The API reported an error inside the stream: an ``event: error`` event, or a chunk
    with a top-level ``"error"``.

    ``error`` is the error as sent (usually a dict with ``message``, ``type``, ``code``; a
    ``str`` when the data was not JSON); ``message``, ``error_type`` and ``code`` are read
    from it (``None`` when absent); ``event`` is the event that carried it.
    """

    def __init__(self, message: str, error: Any = None, event: Event | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.event = event

    @property
    def error_type(self) -> str | None:
        """The error object's ``type``, if it has one."""
        value = self.error.get("type") if isinstance(self.error, dict) else None
        return value if isinstance(value, str) else None

    @property
    def code(self) -> Any:
        """The error object's ``code`` (a str or an int, depending on the API), if any."""
        return self.error.get("code") if isinstance(self.error, dict) else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.error, self.event))


def _error(error: Any, event: Event) -> ChatCompletionError:
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        message = error["message"]
    elif isinstance(error, str) and error:
        message = error
    else:
        message = json.dumps(error, ensure_ascii=False, default=str)
    return ChatCompletionError(message, error, event)


def _error_event(event: Event) -> ChatCompletionError:
    # The data is usually {"error": {...}}, sometimes the error object itself, or plain text.
    try:
        body = json.loads(event.data)
    except ValueError:
        return _error(event.data, event)
    if isinstance(body, dict) and body.get("error") is not None:
        body = body["error"]
    return _error(body, event)


def _parse(events: Iterable[Event]) -> Generator[dict[str, Any], None, bool]:
    # Yields each JSON chunk; returns True if the stream ended with [DONE].
    for event in events:
        if event.event == "error":
            raise _error_event(event)
        if event.event != "message":
            continue  # keep-alive or vendor events ("ping"): not part of the completion
        data = event.data.strip()
        if data == _DONE:
            return True
        if not data:
            continue  # an empty data line some servers send to keep the connection alive
        chunk = event.json()
        if not isinstance(chunk, dict):
            raise DecodeError(f"chat chunk is not a JSON object: {event.data[:80]!r}")
        if chunk.get("error") is not None:
            raise _error(chunk["error"], event)
        yield chunk
    return False


def iter_chat_chunks(events: Iterable[Event]) -> Iterator[dict[str, Any]]:
    """The JSON chunks of a chat-completion stream, ending at ``data: [DONE]``.

    Events of types other than ``message`` and ``error`` are skipped.  The caller still owns
    ``events``: close the stream afterwards, as the server may keep it open after ``[DONE]``.

    :raises ChatCompletionError: for an ``error`` event or a chunk with an ``"error"``.
    :raises EventJSONError: for data that is not JSON.
    :raises DecodeError: for JSON that is not an object.
    """
    return _parse(events)


def delta_text(chunk: Mapping[str, Any]) -> str:
    """The text a chunk adds to choice 0 (``choices[i].delta.content`` where ``index`` is 0);
    ``""`` if it adds none."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return ""
    choice = _first_choice(choices)
    delta = choice.get("delta") if choice is not None else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _first_choice(choices: list[Any]) -> dict[str, Any] | None:
    # With n > 1 each chunk may carry another choice: pick index 0, not position 0.
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def iter_text_deltas(events: Iterable[Event]) -> Iterator[str]:
    """The text pieces of choice 0 of a chat-completion stream, in order, until ``[DONE]``.

    Chunks that add no text (the role, the finish reason, usage) yield nothing.  Errors as
    :func:`iter_chat_chunks`; the caller closes ``events``::

        with sse_sync.connect(url, method="POST", json=payload, retry=None) as stream:
            answer = "".join(iter_text_deltas(stream))
    """
    for chunk in _parse(events):
        text = delta_text(chunk)
        if text:
            yield text


class ChatStream:
    """A streamed chat completion: iterate it for the text deltas (``str``) of choice 0.

    Made by :func:`stream_chat_completion`, or ``ChatStream(stream)`` around an
    :class:`~sse_sync.EventStream` you opened (which it then owns).  Iteration ends at
    ``data: [DONE]`` (the connection is closed at once), when the server ends the stream, or
    after :meth:`cancel`; it raises :class:`ChatCompletionError`,
    :class:`~sse_sync.EventJSONError` or a stream error otherwise, closing the connection
    first.  :meth:`iter_chunks` gives the parsed JSON chunks instead; both share one position
    in the stream.  Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self._done = False
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._chunks = self._read()
        self._texts = self._text()

    @property
    def event_stream(self) -> EventStream:
        """The underlying :class:`~sse_sync.EventStream` (``status``, ``headers``, ``stats()``)."""
        return self._events

    @property
    def done(self) -> bool:
        """Whether ``data: [DONE]`` arrived: the completion is whole."""
        return self._done

    @property
    def finish_reason(self) -> str | None:
        """Why choice 0 ended (``"stop"``, ``"length"``, ``"tool_calls"``...), once it has."""
        return self._finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token counts, if the server sent them (OpenAI: ``stream_options.include_usage``)."""
        return self._usage

    def __iter__(self) -> Iterator[str]:
        return self._texts

    def __next__(self) -> str:
        return next(self._texts)

    def iter_chunks(self) -> Iterator[dict[str, Any]]:
        """The parsed JSON chunks (every one, text or not), from the current position."""
        return self._chunks

    def _text(self) -> Iterator[str]:
        for chunk in self._chunks:
            text = delta_text(chunk)
            if text:
                yield text

    def _read(self) -> Iterator[dict[str, Any]]:
        parser = _parse(self._events)
        try:
            while True:
                try:
                    chunk = next(parser)
                except StopIteration as stop:
                    self._done = bool(stop.value)
                    return
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    self._usage = usage
                choices = chunk.get("choices")
                choice = _first_choice(choices) if isinstance(choices, list) else None
                if choice is not None and isinstance(choice.get("finish_reason"), str):
                    self._finish_reason = choice["finish_reason"]
                yield chunk
        finally:
            # After [DONE] or an error: the server may hold the connection open, so drop it.
            parser.close()
            self._events.close()

    def cancel(self) -> None:
        """Stop now, from any thread; iteration ends without error.  Non-blocking."""
        self._events.cancel()

    def close(self) -> None:
        """Cancel and release the connection (and a private session); idempotent."""
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "done" if self._done else "cancelled" if self._events.cancelled else "open"
        return f"<ChatStream {state} finish_reason={self._finish_reason!r}>"


def stream_chat_completion(
    url: str,
    payload: Mapping[str, Any],
    *,
    api_key: str | None = None,
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | tuple[float | None, float | None] | None = DEFAULT_CHAT_TIMEOUT,
    **connect_kwargs: Any,
) -> ChatStream:
    """POST ``payload`` as JSON to ``url`` and return the streamed answer once headers arrive.

    ``"stream": true`` is added to (a copy of) ``payload`` unless present.  The request is
    never sent again: a reconnect would start a new completion, so there is no retry.

    :param url: the full endpoint, e.g. ``https://api.openai.com/v1/chat/completions``.
    :param api_key: sent as ``Authorization: Bearer <api_key>``.
    :param session, headers, timeout: as for :func:`sse_sync.connect`; ``headers`` are sent
        after (so may replace) the ``Authorization`` header.
    :param connect_kwargs: other :func:`sse_sync.connect` arguments (``idle_timeout``, ``auth``,
        ``verify``...), except ``method``, ``json``, ``data``, ``files`` and ``retry``.
    :raises ValueError: if ``payload["stream"]`` is present and false.
    :raises HTTPStatusError: for a non-2xx answer; its ``body`` starts with the API's error JSON.
    :raises ConnectError, ReadTimeout, ContentTypeError, RequestError: as :func:`connect`.
    """
    for name in _RESERVED:
        if name in connect_kwargs:
            raise TypeError(f"stream_chat_completion() got an unexpected keyword argument {name!r}")
    body = dict(payload)
    if not body.setdefault("stream", True):
        raise ValueError('payload["stream"] is false: the response would not be an event stream')
    request_headers: dict[str, str] = {}
    if api_key is not None:
        request_headers["Authorization"] = f"Bearer {api_key}"
    if headers:
        request_headers.update(headers)
    from ._client import connect

    events = connect(
        url,
        method="POST",
        json=body,
        retry=None,
        session=session,
        headers=request_headers,
        timeout=timeout,
        **connect_kwargs,
    )
    return ChatStream(events)
