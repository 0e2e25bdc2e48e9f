"""LLM answer streams: the text out of chat-completion, Responses and Messages event streams.

Three stream formats are understood, told apart by the events themselves:

- OpenAI-style **chat completions** (``POST /v1/chat/completions``): unnamed events whose JSON
  chunks carry the answer in ``choices[0].delta.content``, ended by ``data: [DONE]``;
- the OpenAI **Responses** API (``POST /v1/responses``): events named after their ``type``,
  the answer in ``response.output_text.delta`` events, ended by ``response.completed``,
  ``response.incomplete`` or ``response.failed``;
- the Anthropic **Messages** API (``POST /v1/messages``): ``message_start``, then
  ``content_block_delta`` events (the answer in their ``text_delta`` deltas), ``message_delta``
  and ``message_stop``.

:func:`stream_chat_completion` (bearer token: chat completions, Responses) and
:func:`stream_anthropic_message` (``x-api-key``) send the request and return a
:class:`ChatStream` of the answer's text::

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
from typing import TYPE_CHECKING, Any, Literal

from ._errors import DecodeError, SSEError
from ._models import Event

if TYPE_CHECKING:
    import requests
    from typing_extensions import Self

    from ._client import EventStream

__all__ = (
    "ANTHROPIC_VERSION",
    "DEFAULT_CHAT_TIMEOUT",
    "ChatCompletionError",
    "ChatStream",
    "StreamFormat",
    "delta_text",
    "iter_chat_chunks",
    "iter_text_deltas",
    "stream_anthropic_message",
    "stream_chat_completion",
)

DEFAULT_CHAT_TIMEOUT = (10.0, 300.0)
"""(connect, read) seconds: a model may think for minutes before its first token."""

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header :func:`stream_anthropic_message` sends by default."""

StreamFormat = Literal["chat.completions", "responses", "messages"]
"""The format of a stream: OpenAI-style chat completions, OpenAI Responses, Anthropic Messages."""

_DONE = "[DONE]"  # the data of the event that ends a chat-completion stream

_RESERVED = ("method", "json", "data", "files", "retry")

# The event types of an Anthropic Messages stream that carry the message; "ping" and "error"
# are handled apart, as every format may send them.
_MESSAGES_TYPES = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    }
)
_RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ChatCompletionError(SSEError):
    """The API reported an error inside the stream.

    Raised for an ``event: error`` event, a chunk with a top-level ``"error"`` (chat
    completions), an OpenAI Responses ``error`` event (top-level ``message`` and ``code``) or
    ``response.failed`` event (its ``response.error``), and an Anthropic
    ``{"type": "error", "error": {...}}`` event.

    ``error`` is the error object as sent (usually a dict with ``message`` and some of
    ``type`` and ``code``; for a Responses ``error`` event, the event's fields other than
    ``type`` and ``sequence_number``; a ``str`` when the data was not JSON); ``message``,
    ``error_type`` and ``code`` are read from it (``None`` when absent); ``event`` is the event
    that carried it.
    """

    def __init__(self, message: str, error: Any = None, event: Event | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.event = event

    @property
    def error_type(self) -> str | None:
        """The error object's ``type`` (``"overloaded_error"``...), if it has one."""
        value = self.error.get("type") if isinstance(self.error, dict) else None
        return value if isinstance(value, str) else None

    @property
    def code(self) -> Any:
        """The error object's ``code`` (a str or an int, depending on the API), if any."""
        return self.error.get("code") if isinstance(self.error, dict) else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.error, self.event))


def _error(error: Any, event: Event, fallback: str = "") -> ChatCompletionError:
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        message = error["message"]
    elif isinstance(error, str) and error:
        message = error
    elif fallback:
        message = fallback
    else:
        message = json.dumps(error, ensure_ascii=False, default=str)
    return ChatCompletionError(message, error, event)


def _error_object(body: Any) -> Any:
    # {"error": {...}} (chat completions, Anthropic) or the Responses error event, whose
    # message and code are top-level next to "type": "error", which names the event.
    if not isinstance(body, dict):
        return body
    if body.get("error") is not None:
        return body["error"]
    if body.get("type") == "error":
        return {k: v for k, v in body.items() if k not in ("type", "sequence_number")}
    return body


def _error_event(event: Event) -> ChatCompletionError:
    # The data is usually JSON in one of the shapes _error_object knows, or plain text.
    try:
        body = json.loads(event.data)
    except ValueError:
        return _error(event.data, event)
    return _error(_error_object(body), event)


def _kind(chunk: Mapping[str, Any], event: Event) -> str | None:
    # Responses and Messages chunks name their type in the data (and in the event name, which
    # a proxy may drop); chat-completion chunks have neither.
    kind = chunk.get("type")
    if isinstance(kind, str):
        return kind
    return None if event.event == "message" else event.event


def _is_chunk_event(name: str) -> bool:
    # Events whose data is part of the answer; others ("ping", vendor events) are skipped.
    return name == "message" or name.startswith("response.") or name in _MESSAGES_TYPES


def _is_completion_chunk(chunk: Mapping[str, Any]) -> bool:
    kind = chunk.get("object")
    return "choices" in chunk or (isinstance(kind, str) and kind.startswith("chat.completion"))


class _Reader:
    """What one stream has told so far: its format, whether it ended, why, and its usage."""

    def __init__(self) -> None:
        self.format: StreamFormat | None = None
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def chunks(self, events: Iterable[Event]) -> Generator[dict[str, Any], None, None]:
        """The JSON chunks of ``events`` up to the end marker, which sets :attr:`done`."""
        for event in events:
            if event.event == "error":
                raise _error_event(event)
            if not _is_chunk_event(event.event):
                continue
            data = event.data.strip()
            if data == _DONE:
                self.format = self.format or "chat.completions"
                self.done = True
                return
            if not data:
                continue  # an empty data line some servers send to keep the connection alive
            chunk = event.json()
            if not isinstance(chunk, dict):
                raise DecodeError(f"chat chunk is not a JSON object: {event.data[:80]!r}")
            kind = _kind(chunk, event)
            if kind == "error" or (kind is None and chunk.get("error") is not None):
                raise _error(_error_object(chunk), event)
            if kind == "ping":
                continue
            if kind is not None and "type" not in chunk:
                chunk["type"] = kind  # so that the chunk alone says what it is, as it usually does
            self._update(kind, chunk, event)
            yield chunk
            if self.done:
                return

    def _update(self, kind: str | None, chunk: dict[str, Any], event: Event) -> None:
        if kind is not None and kind.startswith("response."):
            self.format = self.format or "responses"
            if kind in _RESPONSES_ENDS:
                self._response_end(kind, chunk, event)
        elif kind in _MESSAGES_TYPES:
            self.format = self.format or "messages"
            self._message_event(kind, chunk)
        elif kind is None or "choices" in chunk:
            if self.format is None and _is_completion_chunk(chunk):
                self.format = "chat.completions"
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self.usage = usage
            choices = chunk.get("choices")
            choice = _first_choice(choices) if isinstance(choices, list) else None
            if choice is not None and isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]

    def _response_end(self, kind: str, chunk: dict[str, Any], event: Event) -> None:
        response = chunk.get("response")
        response = response if isinstance(response, dict) else {}
        usage = response.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        if kind == "response.failed":
            self.finish_reason = "failed"
            raise _error(response.get("error"), event, "the response failed")
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        status = response.get("status")
        if isinstance(reason, str):
            self.finish_reason = reason
        elif isinstance(status, str):
            self.finish_reason = status
        else:
            self.finish_reason = kind.removeprefix("response.")
        self.done = True

    def _message_event(self, kind: str, chunk: dict[str, Any]) -> None:
        if kind == "message_start":
            message = chunk.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self.usage = dict(usage)
        elif kind == "message_delta":
            delta = chunk.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(reason, str):
                self.finish_reason = reason
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                # Input counts come in message_start; the delta's counts are cumulative totals,
                # and a null one is a count the delta does not give.
                update = {k: v for k, v in usage.items() if v is not None}
                self.usage = {**(self.usage or {}), **update}
        elif kind == "message_stop":
            self.done = True


def iter_chat_chunks(events: Iterable[Event]) -> Iterator[dict[str, Any]]:
    """The JSON chunks of an answer stream in any of the three formats, to its end marker.

    Every chunk is yielded, text or not (tool calls, reasoning, the final
    ``response.completed`` and ``message_stop``), except keep-alives (``ping``, comments,
    empty data).  Iteration ends after ``data: [DONE]`` (not yielded), ``response.completed``,
    ``response.incomplete`` or ``message_stop`` (yielded), or when ``events`` ends.  Events
    named otherwise than the formats' own (``message``, ``response.*``, Anthropic's message
    and content-block events, ``error``) are skipped; a named event's chunk without a
    ``"type"`` gets the event's name as its type.  The caller still owns ``events``:
    close the stream afterwards, as the server may keep it open after the end marker.

    :raises ChatCompletionError: for an error event or chunk, or ``response.failed``.
    :raises EventJSONError: for data that is not JSON.
    :raises DecodeError: for JSON that is not an object.
    """
    return _Reader().chunks(events)


def delta_text(chunk: Mapping[str, Any]) -> str:
    """The answer text a chunk adds; ``""`` if it adds none.

    That is ``choices[i].delta.content`` where ``index`` is 0 (chat completions), ``delta`` of
    a ``response.output_text.delta`` (Responses), and the ``text`` of a ``text_delta`` in a
    ``content_block_delta`` or of a ``text`` block's ``content_block_start`` (Messages).
    Reasoning, refusal and tool-call argument deltas are not answer text.
    """
    kind = chunk.get("type")
    if kind == "response.output_text.delta":
        text = chunk.get("delta")
    elif kind == "content_block_delta":
        text = _typed_text(chunk.get("delta"), "text_delta")
    elif kind == "content_block_start":
        text = _typed_text(chunk.get("content_block"), "text")
    elif isinstance(kind, str) and (kind.startswith("response.") or kind in _MESSAGES_TYPES):
        text = None
    else:
        choices = chunk.get("choices")
        choice = _first_choice(choices) if isinstance(choices, list) else None
        delta = choice.get("delta") if choice is not None else None
        text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


def _typed_text(part: Any, kind: str) -> Any:
    return part.get("text") if isinstance(part, dict) and part.get("type") == kind else None


def _first_choice(choices: list[Any]) -> dict[str, Any] | None:
    # With n > 1 each chunk may carry another choice: pick index 0, not position 0.
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def iter_text_deltas(events: Iterable[Event]) -> Iterator[str]:
    """The answer's text pieces, in order, until the stream's end marker (see
    :func:`iter_chat_chunks`), for any of the three formats.

    Chunks that add no answer text (see :func:`delta_text`) yield nothing.  Errors as
    :func:`iter_chat_chunks`; the caller closes ``events``.  To learn whether the end marker
    came, the finish reason and the usage, wrap the stream in :class:`ChatStream` instead::

        with sse_sync.connect(url, method="POST", json=payload, retry=None) as stream:
            answer = "".join(iter_text_deltas(stream))
    """
    for chunk in _Reader().chunks(events):
        text = delta_text(chunk)
        if text:
            yield text


class ChatStream:
    """A streamed answer: iterate it for its text deltas (``str``), in any of the three formats.

    Made by :func:`stream_chat_completion` or :func:`stream_anthropic_message`, or
    ``ChatStream(stream)`` around an :class:`~sse_sync.EventStream` you opened (which it then
    owns).  Iteration ends at the stream's end marker (``data: [DONE]``,
    ``response.completed``, ``response.incomplete``, ``message_stop``; the connection is closed
    at once, before that chunk is handed out), when the server ends the stream early (then
    :attr:`done` is false), or after :meth:`cancel`.  It raises :class:`ChatCompletionError`,
    :class:`~sse_sync.EventJSONError` or a stream error (a reset connection:
    :class:`~sse_sync.StreamError`) otherwise, closing the connection first.
    :meth:`iter_chunks` gives the parsed JSON chunks instead; both share one position in the
    stream.  Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self._reader = _Reader()
        self._chunks = self._read()
        self._texts = self._text()

    @property
    def event_stream(self) -> EventStream:
        """The underlying :class:`~sse_sync.EventStream` (``status``, ``headers``, ``stats()``)."""
        return self._events

    @property
    def format(self) -> StreamFormat | None:
        """``"chat.completions"``, ``"responses"`` or ``"messages"``, once a chunk told."""
        return self._reader.format

    @property
    def done(self) -> bool:
        """Whether the end marker arrived: the stream is whole.

        The answer may still have been cut short by a token limit or a filter: see
        :attr:`finish_reason`.
        """
        return self._reader.done

    @property
    def finish_reason(self) -> str | None:
        """Why the answer ended, in the API's words, once it has.

        Chat completions: choice 0's ``finish_reason`` (``"stop"``, ``"length"``,
        ``"tool_calls"``...).  Responses: ``"completed"``, or the ``incomplete_details.reason``
        of ``response.incomplete`` (``"max_output_tokens"``, ``"content_filter"``).  Messages:
        the ``stop_reason`` (``"end_turn"``, ``"max_tokens"``, ``"tool_use"``...).
        """
        return self._reader.finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token counts as the API sent them, if it did.

        Chat completions: the last chunk's ``usage`` (OpenAI: with
        ``stream_options.include_usage``).  Responses: ``response.usage`` of the final event.
        Messages: ``message_start``'s ``message.usage`` updated by ``message_delta``'s
        ``usage``.
        """
        return self._reader.usage

    def __iter__(self) -> Iterator[str]:
        return self._texts

    def __next__(self) -> str:
        return next(self._texts)

    def iter_chunks(self) -> Iterator[dict[str, Any]]:
        """The parsed JSON chunks (as :func:`iter_chat_chunks`), from the current position."""
        return self._chunks

    def _text(self) -> Iterator[str]:
        for chunk in self._chunks:
            text = delta_text(chunk)
            if text:
                yield text

    def _read(self) -> Iterator[dict[str, Any]]:
        chunks = self._reader.chunks(self._events)
        try:
            for chunk in chunks:
                if self._reader.done:
                    # The server may hold the connection after the end: drop it now, not when
                    # the caller comes back for more.
                    self._events.close()
                yield chunk
        finally:
            # After the end marker or an error.
            chunks.close()
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
        done = self._reader.done
        state = "done" if done else "cancelled" if self._events.cancelled else "open"
        return (
            f"<ChatStream {state} format={self._reader.format!r} "
            f"finish_reason={self._reader.finish_reason!r}>"
        )


def _stream(
    function: str,
    url: str,
    payload: Mapping[str, Any],
    request_headers: dict[str, str],
    headers: Mapping[str, str] | None,
    connect_kwargs: dict[str, Any],
) -> ChatStream:
    for name in _RESERVED:
        if name in connect_kwargs:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")
    body = dict(payload)
    if not body.setdefault("stream", True):
        raise ValueError('payload["stream"] is false: the response would not be an event stream')
    if headers:
        request_headers.update(headers)
    from ._client import connect

    events = connect(
        url, method="POST", json=body, retry=None, headers=request_headers, **connect_kwargs
    )
    return ChatStream(events)


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
    """POST ``payload`` as JSON to ``url`` with a bearer token and return the streamed answer
    once headers arrive.

    For OpenAI's APIs and those that copy them: chat completions (``.../v1/chat/completions``,
    ``{"model": ..., "messages": [...]}``) and Responses (``.../v1/responses``,
    ``{"model": ..., "input": ...}``).  ``"stream": true`` is added to (a copy of) ``payload``
    unless present.  The request is never sent again: a reconnect would start a new answer,
    so there is no retry.

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
    request_headers: dict[str, str] = {}
    if api_key is not None:
        request_headers["Authorization"] = f"Bearer {api_key}"
    connect_kwargs.update(session=session, timeout=timeout)
    return _stream("stream_chat_completion", url, payload, request_headers, headers, connect_kwargs)


def stream_anthropic_message(
    url: str,
    payload: Mapping[str, Any],
    *,
    api_key: str | None = None,
    anthropic_version: str = ANTHROPIC_VERSION,
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | tuple[float | None, float | None] | None = DEFAULT_CHAT_TIMEOUT,
    **connect_kwargs: Any,
) -> ChatStream:
    """POST ``payload`` as JSON to an Anthropic Messages endpoint and return the streamed answer
    once headers arrive.

    ``url`` is the full endpoint (``https://api.anthropic.com/v1/messages``); ``payload`` the
    usual ``{"model": ..., "max_tokens": ..., "messages": [...]}``, to (a copy of) which
    ``"stream": true`` is added unless present.  As :func:`stream_chat_completion` otherwise.

    :param api_key: sent as ``x-api-key``.
    :param anthropic_version: sent as ``anthropic-version``.
    :param headers: sent after (so may replace) those two; ``anthropic-beta``, say.
    """
    request_headers = {"anthropic-version": anthropic_version}
    if api_key is not None:
        request_headers["x-api-key"] = api_key
    connect_kwargs.update(session=session, timeout=timeout)
    return _stream(
        "stream_anthropic_message", url, payload, request_headers, headers, connect_kwargs
    )
