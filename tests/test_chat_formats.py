"""sse_sync.chat on OpenAI Responses and Anthropic Messages streams, next to chat completions.

Local servers on 127.0.0.1 replay each API's stream as its public reference describes it:
event names, data shapes, usage, end markers and in-stream errors.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import sse_sync
from sse_sync.chat import (
    ANTHROPIC_VERSION,
    ChatCompletionError,
    ChatStream,
    delta_text,
    iter_chat_chunks,
    iter_text_deltas,
    stream_anthropic_message,
    stream_chat_completion,
)
from sse_sync.testing import (
    Action,
    RecordedRequest,
    ScriptLike,
    Send,
    SSEServer,
    close,
    comment,
    drop,
    event,
    hold,
    respond,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

KEY = "sk-test"
WORDS = ["Hello", " there", " world"]
ANSWER = "".join(WORDS)

# -- OpenAI chat completions -----------------------------------------------------------------


def completion_chunk(delta: dict[str, Any], finish: str | None = None) -> Action:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return event(json.dumps(body))


def completion_usage() -> Action:
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return event(json.dumps(body))


def chat_stream(words: Sequence[str] = WORDS, *, end: bool = True) -> list[Action]:
    actions = [completion_chunk({"role": "assistant", "content": ""})]
    actions += [completion_chunk({"content": w}) for w in words]
    if end:
        actions += [completion_chunk({}, "stop"), completion_usage(), event("[DONE]")]
    return actions


# -- OpenAI Responses ------------------------------------------------------------------------


class Responses:
    """Builds a Responses API stream: every event named after its ``type``, numbered."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> Action:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event(json.dumps(body), event=kind)

    def response(self, status: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": "resp_1",
            "object": "response",
            "created_at": 1741290958,
            "status": status,
            "model": "gpt-test",
            "output": [],
            "error": None,
            "incomplete_details": None,
            "usage": None,
            **fields,
        }

    def start(self) -> list[Action]:
        return [
            self("response.created", response=self.response("in_progress")),
            self("response.in_progress", response=self.response("in_progress")),
        ]

    def message(self, words: Sequence[str], output_index: int = 0) -> list[Action]:
        item = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant"}
        where = {"item_id": "msg_1", "output_index": output_index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            self(
                "response.output_item.added",
                output_index=output_index,
                item={**item, "content": []},
            ),
            self("response.content_part.added", **where, part=part),
            *(self("response.output_text.delta", **where, delta=w, logprobs=[]) for w in words),
        ]

    def message_end(self, words: Sequence[str], output_index: int = 0) -> list[Action]:
        text = "".join(words)
        where = {"item_id": "msg_1", "output_index": output_index, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant"}
        return [
            self("response.output_text.done", **where, text=text, logprobs=[]),
            self("response.content_part.done", **where, part=part),
            self(
                "response.output_item.done",
                output_index=output_index,
                item={**item, "content": [part]},
            ),
        ]

    def usage(self, output_tokens: int = 3) -> dict[str, Any]:
        return {
            "input_tokens": 9,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 9 + output_tokens,
        }

    def completed(self) -> Action:
        return self("response.completed", response=self.response("completed", usage=self.usage()))


def responses_stream(words: Sequence[str] = WORDS, *, end: bool = True) -> list[Action]:
    r = Responses()
    actions = [*r.start(), *r.message(words)]
    if end:
        actions += [*r.message_end(words), r.completed()]
    return actions


# -- Anthropic Messages ----------------------------------------------------------------------


def typed(kind: str, **fields: Any) -> Action:
    """One Messages API event: named after its ``type``, which the data repeats."""
    return event(json.dumps({"type": kind, **fields}), event=kind)


def message_start(input_tokens: int = 25) -> Action:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    return typed("message_start", message=message)


def text_block(index: int, words: Sequence[str]) -> list[Action]:
    return [
        typed("content_block_start", index=index, content_block={"type": "text", "text": ""}),
        *(
            typed("content_block_delta", index=index, delta={"type": "text_delta", "text": w})
            for w in words
        ),
        typed("content_block_stop", index=index),
    ]


def message_end(stop_reason: str = "end_turn", output_tokens: int = 15) -> list[Action]:
    return [
        typed(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": output_tokens},
        ),
        typed("message_stop"),
    ]


def messages_stream(words: Sequence[str] = WORDS, *, end: bool = True) -> list[Action]:
    actions = [message_start(), typed("ping"), *text_block(0, words)[:-1]]
    if end:
        actions += [typed("content_block_stop", index=0), *message_end()]
    return actions


# -- the three fake APIs ---------------------------------------------------------------------

PATHS = {
    "chat.completions": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
STREAMS: dict[str, Callable[..., list[Action]]] = {
    "chat.completions": chat_stream,
    "responses": responses_stream,
    "messages": messages_stream,
}
FINISH = {"chat.completions": "stop", "responses": "completed", "messages": "end_turn"}
USAGE = {
    "chat.completions": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    "responses": Responses().usage(),
    "messages": {"input_tokens": 25, "output_tokens": 15},
}
FORMATS = list(PATHS)


def api(fmt: str, tail: Callable[[], Sequence[Action]]) -> Callable[[RecordedRequest], ScriptLike]:
    """A route acting as ``fmt``'s endpoint: checks the credentials the provider expects and
    ``"stream": true``, then plays ``tail()``."""

    def route(request: RecordedRequest) -> ScriptLike:
        if fmt == "messages":
            allowed = (
                request.headers.get("x-api-key") == KEY
                and request.headers.get("anthropic-version") == ANTHROPIC_VERSION
            )
        else:
            allowed = request.headers.get("Authorization") == f"Bearer {KEY}"
        if not allowed:
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            body = {"type": "error", "error": error}
            return respond(401, json.dumps(body), {"Content-Type": "application/json"})
        if request.json().get("stream") is not True:
            return respond(400, '{"error": {"message": "stream must be true"}}')
        return list(tail())

    return route


def payload(fmt: str) -> dict[str, Any]:
    if fmt == "responses":
        return {"model": "gpt-test", "input": "Say hello"}
    messages = [{"role": "user", "content": "Say hello"}]
    if fmt == "messages":
        return {"model": "claude-test", "max_tokens": 1024, "messages": messages}
    return {"model": "gpt-test", "messages": messages}


@pytest.fixture
def server() -> Iterator[SSEServer]:
    with SSEServer() as srv:
        yield srv


def open_answer(server: SSEServer, fmt: str, **kwargs: Any) -> ChatStream:
    kwargs.setdefault("timeout", 10)
    helper = stream_anthropic_message if fmt == "messages" else stream_chat_completion
    return helper(server.url_for(PATHS[fmt]), payload(fmt), api_key=KEY, **kwargs)


def serve(server: SSEServer, fmt: str, tail: Callable[[], Sequence[Action]]) -> None:
    server.route(PATHS[fmt], api(fmt, tail))


# -- the answer, the end, finish reason and usage --------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_finish_reason_and_usage(server: SSEServer, fmt: str) -> None:
    gate = threading.Event()
    stream = STREAMS[fmt]()
    # Hold the server before the second word: the first can only have arrived on its own.
    first = next(i for i, a in enumerate(stream) if WORDS[0].encode() in getattr(a, "data", b""))
    serve(server, fmt, lambda: [*stream[: first + 1], wait_for(gate), *stream[first + 1 :], hold()])
    with open_answer(server, fmt) as chat:
        assert next(chat) == "Hello"
        assert chat.format == fmt
        # In lists: mypy must not narrow these properties for the checks after the stream.
        assert [chat.finish_reason, chat.done] == [None, False]
        gate.set()
        assert list(chat) == WORDS[1:]
    assert chat.done
    assert chat.finish_reason == FINISH[fmt]
    assert chat.usage == USAGE[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_end_marker_closes_the_connection_at_once(server: SSEServer, fmt: str) -> None:
    # Events after the end marker, then a held connection: only the client can close it, and
    # nothing after the marker may count.
    after = event(json.dumps({"type": "response.output_text.delta", "delta": "late"}))
    serve(
        server, fmt, lambda: [*STREAMS[fmt](), after, completion_chunk({"content": "late"}), hold()]
    )
    chat = open_answer(server, fmt)
    assert "".join(chat) == ANSWER
    assert chat.done
    server.wait_disconnect(timeout=5)
    assert server.client_disconnects == 1
    assert chat.event_stream.cancelled
    assert list(chat) == []
    chat.close()


@pytest.mark.parametrize("fmt", ["responses", "messages"])
def test_end_marker_chunk_is_the_last_chunk(server: SSEServer, fmt: str) -> None:
    serve(server, fmt, lambda: [*STREAMS[fmt](), hold()])
    with open_answer(server, fmt) as chat:
        chunks = list(chat.iter_chunks())
    last = chunks[-1]
    assert last["type"] == {"responses": "response.completed", "messages": "message_stop"}[fmt]
    if fmt == "responses":
        assert last["response"]["usage"] == chat.usage
    server.wait_disconnect(timeout=5)


def test_final_chunk_arrives_with_the_connection_already_closed(server: SSEServer) -> None:
    serve(server, "messages", lambda: [*messages_stream(), hold()])
    with open_answer(server, "messages") as chat:
        for chunk in chat.iter_chunks():
            if chunk["type"] == "message_stop":
                # Closed before this chunk was handed out, not on the next call.
                assert chat.event_stream.cancelled
                assert chat.done
                break
        else:
            pytest.fail("no message_stop")
    server.wait_disconnect(timeout=5)


# -- only answer text ------------------------------------------------------------------------


def test_responses_reasoning_refusal_and_function_arguments_are_not_answer_text(
    server: SSEServer,
) -> None:
    def tail() -> list[Action]:
        r = Responses()
        reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
        call = {
            "id": "fc_1",
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": "",
            "status": "in_progress",
        }
        return [
            *r.start(),
            r("response.output_item.added", output_index=0, item=reasoning),
            r(
                "response.reasoning_summary_part.added",
                item_id="rs_1",
                output_index=0,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            ),
            r(
                "response.reasoning_summary_text.delta",
                item_id="rs_1",
                output_index=0,
                summary_index=0,
                delta="**Thinking about greetings**",
            ),
            r(
                "response.reasoning_text.delta",
                item_id="rs_1",
                output_index=0,
                content_index=0,
                delta="The user wants a greeting.",
            ),
            r("response.output_item.added", output_index=1, item=call),
            r(
                "response.function_call_arguments.delta",
                item_id="fc_1",
                output_index=1,
                delta='{"location": "Par',
            ),
            r(
                "response.function_call_arguments.done",
                item_id="fc_1",
                output_index=1,
                arguments='{"location": "Paris"}',
            ),
            *r.message(WORDS, output_index=2),
            r(
                "response.refusal.delta",
                item_id="msg_1",
                output_index=2,
                content_index=1,
                delta="I can't help with that.",
            ),
            *r.message_end(WORDS, output_index=2),
            r.completed(),
            hold(),
        ]

    serve(server, "responses", tail)
    with open_answer(server, "responses") as chat:
        assert "".join(chat) == ANSWER
    # The rest is still there for those who want it, as chunks.
    chunks = list(iter_chat_chunks(sse_sync.decode(b"".join(_wire(tail())))))
    kinds = [c["type"] for c in chunks]
    assert kinds.count("response.output_text.delta") == len(WORDS)
    assert "response.reasoning_summary_text.delta" in kinds
    assert "response.reasoning_text.delta" in kinds
    assert "response.refusal.delta" in kinds
    assert kinds[-1] == "response.completed"
    arguments = [
        c["delta"] for c in chunks if c["type"] == "response.function_call_arguments.delta"
    ]
    assert arguments == ['{"location": "Par']


def _wire(actions: Sequence[Action]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def test_anthropic_thinking_signature_and_tool_input_are_not_answer_text(
    server: SSEServer,
) -> None:
    def tail() -> list[Action]:
        return [
            message_start(),
            typed(
                "content_block_start",
                index=0,
                content_block={"type": "thinking", "thinking": "", "signature": ""},
            ),
            typed(
                "content_block_delta",
                index=0,
                delta={"type": "thinking_delta", "thinking": "The user says hello."},
            ),
            typed(
                "content_block_delta",
                index=0,
                delta={"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
            ),
            typed("content_block_stop", index=0),
            *text_block(1, WORDS),
            typed(
                "content_block_start",
                index=2,
                content_block={
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            ),
            typed(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": '{"location": "Par'},
            ),
            typed(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": 'is"}'},
            ),
            typed("content_block_stop", index=2),
            *message_end("tool_use", 40),
            hold(),
        ]

    serve(server, "messages", tail)
    with open_answer(server, "messages") as chat:
        chunks = list(chat.iter_chunks())
    assert "".join(delta_text(c) for c in chunks) == ANSWER
    assert chat.finish_reason == "tool_use"
    assert chat.usage == {"input_tokens": 25, "output_tokens": 40}
    arguments = "".join(
        c["delta"]["partial_json"]
        for c in chunks
        if c["type"] == "content_block_delta" and c["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(arguments) == {"location": "Paris"}
    thinking = [c for c in chunks if c["type"] == "content_block_delta" and c["index"] == 0]
    assert [c["delta"]["type"] for c in thinking] == ["thinking_delta", "signature_delta"]


def test_chat_completion_reasoning_and_tool_call_deltas_are_not_answer_text(
    server: SSEServer,
) -> None:
    tool_call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    }

    def tail() -> list[Action]:
        return [
            completion_chunk({"role": "assistant", "content": None, "reasoning_content": "Hmm."}),
            *(completion_chunk({"content": w}) for w in WORDS),
            completion_chunk({"tool_calls": [tool_call]}),
            completion_chunk({"refusal": "No."}),
            completion_chunk({}, "tool_calls"),
            event("[DONE]"),
        ]

    serve(server, "chat.completions", tail)
    with open_answer(server, "chat.completions") as chat:
        assert list(chat) == WORDS
    assert chat.finish_reason == "tool_calls"


# -- incomplete answers ----------------------------------------------------------------------


def test_response_incomplete_ends_the_stream_with_its_reason(server: SSEServer) -> None:
    def tail() -> list[Action]:
        r = Responses()
        incomplete = r.response(
            "incomplete",
            incomplete_details={"reason": "max_output_tokens"},
            usage=r.usage(2),
        )
        return [
            *r.start(),
            *r.message(WORDS[:2]),
            r("response.incomplete", response=incomplete),
            hold(),
        ]

    serve(server, "responses", tail)
    with open_answer(server, "responses") as chat:
        assert "".join(chat) == "Hello there"
    assert chat.done  # the stream is whole: the answer is not
    assert chat.finish_reason == "max_output_tokens"
    assert chat.usage is not None
    assert chat.usage["output_tokens"] == 2
    server.wait_disconnect(timeout=5)


def test_anthropic_max_tokens_stop_reason(server: SSEServer) -> None:
    tail = [message_start(), *text_block(0, WORDS[:1]), *message_end("max_tokens", 1), hold()]
    serve(server, "messages", lambda: tail)
    with open_answer(server, "messages") as chat:
        assert "".join(chat) == "Hello"
    assert chat.done
    assert chat.finish_reason == "max_tokens"


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_closed_before_the_end_marker_ends_quietly_not_done(
    server: SSEServer, fmt: str
) -> None:
    serve(server, fmt, lambda: [*STREAMS[fmt](WORDS[:2], end=False), close()])
    with open_answer(server, fmt) as chat:
        assert list(chat) == WORDS[:2]
    assert not chat.done
    assert chat.finish_reason is None
    assert chat.format == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_connection_reset_mid_answer_raises_after_the_text(server: SSEServer, fmt: str) -> None:
    serve(server, fmt, lambda: [*STREAMS[fmt](WORDS[:2], end=False), drop()])
    chat = open_answer(server, fmt)
    texts: list[str] = []
    with pytest.raises(sse_sync.StreamError):
        texts.extend(chat)
    assert texts == WORDS[:2]
    assert not chat.done
    chat.close()


# -- errors ----------------------------------------------------------------------------------


def test_responses_error_event_mid_answer(server: SSEServer) -> None:
    def tail() -> list[Action]:
        r = Responses()
        error = r("error", code="rate_limit_exceeded", message="Rate limit reached", param=None)
        return [*r.start(), *r.message(WORDS[:1]), error, hold()]

    serve(server, "responses", tail)
    chat = open_answer(server, "responses")
    texts: list[str] = []
    with pytest.raises(ChatCompletionError) as info:
        texts.extend(chat)
    assert texts == ["Hello"]
    exc = info.value
    assert exc.message == str(exc) == "Rate limit reached"
    assert exc.code == "rate_limit_exceeded"
    assert exc.error_type is None  # "type": "error" names the event, not the error
    assert exc.error == {
        "code": "rate_limit_exceeded",
        "message": "Rate limit reached",
        "param": None,
    }
    assert exc.event is not None
    assert exc.event.event == "error"
    server.wait_disconnect(timeout=5)  # closed on the error, with no close() call


def test_responses_error_event_with_a_nested_error_object(server: SSEServer) -> None:
    error = {"type": "invalid_request_error", "code": "bad_input", "message": "Bad", "param": None}
    tail = [typed("error", sequence_number=0, error=error), hold()]
    serve(server, "responses", lambda: tail)
    with open_answer(server, "responses") as chat, pytest.raises(ChatCompletionError) as info:
        list(chat)
    assert (info.value.message, info.value.error_type, info.value.code) == (
        "Bad",
        "invalid_request_error",
        "bad_input",
    )


def test_response_failed_raises_with_its_error(server: SSEServer) -> None:
    def tail() -> list[Action]:
        r = Responses()
        error = {"code": "server_error", "message": "The model failed to generate a response."}
        failed = r.response("failed", error=error, usage=r.usage(1))
        return [*r.start(), *r.message(WORDS[:1]), r("response.failed", response=failed), hold()]

    serve(server, "responses", tail)
    chat = open_answer(server, "responses")
    texts: list[str] = []
    with pytest.raises(ChatCompletionError) as info:
        texts.extend(chat)
    assert texts == ["Hello"]
    exc = info.value
    assert exc.message == "The model failed to generate a response."
    assert exc.code == "server_error"
    assert exc.event is not None
    assert exc.event.event == "response.failed"
    assert not chat.done
    assert chat.finish_reason == "failed"
    assert chat.usage is not None
    assert chat.usage["output_tokens"] == 1
    server.wait_disconnect(timeout=5)


def test_response_failed_without_an_error_object(server: SSEServer) -> None:
    r = Responses()
    tail = [*r.start(), r("response.failed", response=r.response("failed")), hold()]
    serve(server, "responses", lambda: tail)
    with open_answer(server, "responses") as chat, pytest.raises(ChatCompletionError) as info:
        list(chat)
    assert info.value.message == "the response failed"
    assert info.value.error is None


def test_anthropic_error_event_mid_answer(server: SSEServer) -> None:
    error = {"type": "overloaded_error", "message": "Overloaded"}
    tail = [
        message_start(),
        *text_block(0, WORDS[:1])[:-1],
        typed("error", error=error, request_id="req_1"),
        hold(),
    ]
    serve(server, "messages", lambda: tail)
    chat = open_answer(server, "messages")
    texts: list[str] = []
    with pytest.raises(ChatCompletionError) as info:
        texts.extend(chat)
    assert texts == ["Hello"]
    exc = info.value
    assert exc.error == error
    assert (exc.message, exc.error_type, exc.code) == ("Overloaded", "overloaded_error", None)
    server.wait_disconnect(timeout=5)


def test_anthropic_http_error_body(server: SSEServer) -> None:
    serve(server, "messages", lambda: messages_stream())
    with pytest.raises(sse_sync.HTTPStatusError) as info:
        stream_anthropic_message(
            server.url_for(PATHS["messages"]), payload("messages"), api_key="wrong", timeout=10
        )
    assert info.value.status_code == 401
    assert json.loads(info.value.body)["error"]["type"] == "authentication_error"


def test_anthropic_usage_counts_left_null_by_message_delta_are_kept(server: SSEServer) -> None:
    delta = typed(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"input_tokens": None, "cache_read_input_tokens": 4, "output_tokens": 15},
    )
    tail = [message_start(), *text_block(0, WORDS), delta, typed("message_stop"), hold()]
    serve(server, "messages", lambda: tail)
    with open_answer(server, "messages") as chat:
        assert "".join(chat) == ANSWER
    assert chat.usage == {"input_tokens": 25, "output_tokens": 15, "cache_read_input_tokens": 4}


# -- telling the formats apart ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_keep_alives_first_do_not_decide_the_format(server: SSEServer, fmt: str) -> None:
    gate = threading.Event()
    lead = [comment(" keep-alive"), typed("ping"), event(""), event('{"type": "ping"}')]
    serve(server, fmt, lambda: [*lead, wait_for(gate), *STREAMS[fmt](), hold()])
    with open_answer(server, fmt) as chat:
        assert chat.format is None
        gate.set()
        assert "".join(chat) == ANSWER
        assert chat.format == fmt


@pytest.mark.parametrize("fmt", ["responses", "messages"])
def test_events_without_names_are_read_by_their_data_type(fmt: str) -> None:
    # A relay that drops the event: lines keeps the data, whose "type" still tells.
    wire = b"".join(_wire(STREAMS[fmt]()))
    unnamed = b"\n".join(line for line in wire.split(b"\n") if not line.startswith(b"event:"))
    events = sse_sync.decode(unnamed)
    assert all(e.event == "message" for e in events)
    assert "".join(iter_text_deltas(events)) == ANSWER
    assert "".join(iter_text_deltas(sse_sync.decode(wire))) == ANSWER


@pytest.mark.parametrize("fmt", ["responses", "messages"])
def test_named_events_whose_data_lacks_the_type(fmt: str) -> None:
    # The event name alone says what the data is.
    events = [
        sse_sync.Event(e.event, json.dumps({k: v for k, v in e.json().items() if k != "type"}))
        for e in sse_sync.decode(b"".join(_wire(STREAMS[fmt]())))
    ]
    assert "".join(iter_text_deltas(events)) == ANSWER
    chunks = list(iter_chat_chunks(events))
    assert [c["type"] for c in chunks] == [e.event for e in events if e.event != "ping"]


def test_vendor_events_are_skipped_in_every_format() -> None:
    vendor = event('{"type": "response.output_text.delta", "delta": "X"}', event="vendor.note")
    for fmt in FORMATS:
        stream = STREAMS[fmt]()
        wire = b"".join(_wire([stream[0], vendor, *stream[1:]]))
        assert "".join(iter_text_deltas(sse_sync.decode(wire))) == ANSWER, fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_iter_text_deltas_stops_at_the_end_marker_without_closing(
    server: SSEServer, fmt: str
) -> None:
    serve(server, fmt, lambda: [*STREAMS[fmt](), hold()])
    headers = (
        {"x-api-key": KEY, "anthropic-version": ANTHROPIC_VERSION}
        if fmt == "messages"
        else {"Authorization": f"Bearer {KEY}"}
    )
    with sse_sync.connect(
        server.url_for(PATHS[fmt]),
        method="POST",
        json={**payload(fmt), "stream": True},
        headers=headers,
        retry=None,
        timeout=10,
    ) as stream:
        assert list(iter_text_deltas(stream)) == WORDS
        assert server.connections_open == 1  # not the helper's to close
    server.wait_disconnect(timeout=5)


def test_chat_stream_around_an_event_stream_reports_the_end(server: SSEServer) -> None:
    serve(server, "responses", lambda: [*responses_stream(), hold()])
    events = sse_sync.connect(
        server.url_for(PATHS["responses"]),
        method="POST",
        json={**payload("responses"), "stream": True},
        headers={"Authorization": f"Bearer {KEY}"},
        retry=None,
        timeout=10,
    )
    with ChatStream(events) as chat:
        assert "".join(chat) == ANSWER
        assert (chat.done, chat.finish_reason, chat.format) == (True, "completed", "responses")
        assert "format='responses'" in repr(chat)
    server.wait_disconnect(timeout=5)


# -- the request helpers ---------------------------------------------------------------------


def test_anthropic_request_carries_its_headers_and_stream_true(server: SSEServer) -> None:
    serve(server, "messages", lambda: messages_stream())
    body = payload("messages")
    with stream_anthropic_message(
        server.url_for(PATHS["messages"]),
        body,
        api_key=KEY,
        headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"},
        timeout=10,
    ) as chat:
        assert "".join(chat) == ANSWER
    request = server.wait_request(PATHS["messages"])
    assert request.method == "POST"
    assert request.json() == {**body, "stream": True}
    assert "stream" not in body
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"
    assert "Authorization" not in request.headers
    assert request.headers["Accept"] == "text/event-stream"


def test_anthropic_version_and_headers_may_be_replaced(server: SSEServer) -> None:
    server.route(PATHS["messages"], messages_stream())
    with stream_anthropic_message(
        server.url_for(PATHS["messages"]),
        payload("messages"),
        anthropic_version="2099-01-01",
        headers={"x-api-key": "from-headers"},
        timeout=10,
    ) as chat:
        assert "".join(chat) == ANSWER
    request = server.wait_request(PATHS["messages"])
    assert request.headers.get_all("anthropic-version") == ["2099-01-01"]
    assert request.headers.get_all("x-api-key") == ["from-headers"]


def test_anthropic_helper_refuses_what_connect_would_misuse(server: SSEServer) -> None:
    url = server.url_for(PATHS["messages"])
    with pytest.raises(TypeError, match=r"stream_anthropic_message\(\).*'retry'"):
        stream_anthropic_message(url, payload("messages"), retry=None)
    with pytest.raises(ValueError, match="stream"):
        stream_anthropic_message(url, {**payload("messages"), "stream": False})
    assert server.requests == []


def test_responses_request_through_stream_chat_completion(server: SSEServer) -> None:
    serve(server, "responses", lambda: responses_stream())
    with open_answer(server, "responses") as chat:
        assert "".join(chat) == ANSWER
    request = server.wait_request(PATHS["responses"])
    assert request.json() == {"model": "gpt-test", "input": "Say hello", "stream": True}
    assert request.headers["Authorization"] == f"Bearer {KEY}"


# -- delta_text on each shape ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "text"),
    [
        ({"type": "response.output_text.delta", "delta": "a"}, "a"),
        ({"type": "response.reasoning_text.delta", "delta": "b"}, ""),
        ({"type": "response.reasoning_summary_text.delta", "delta": "b"}, ""),
        ({"type": "response.refusal.delta", "delta": "b"}, ""),
        ({"type": "response.function_call_arguments.delta", "delta": "{"}, ""),
        ({"type": "response.output_text.done", "text": "whole"}, ""),
        ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "c"}}, "c"),
        ({"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "d"}}, ""),
        (
            {"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "e"}},
            "",
        ),
        (
            {
                "type": "content_block_delta",
                "delta": {"type": "input_json_delta", "partial_json": "{"},
            },
            "",
        ),
        ({"type": "content_block_start", "content_block": {"type": "text", "text": "f"}}, "f"),
        (
            {"type": "content_block_start", "content_block": {"type": "thinking", "thinking": "g"}},
            "",
        ),
        ({"type": "message_start", "message": {"content": [{"type": "text", "text": "h"}]}}, ""),
        ({"choices": [{"index": 0, "delta": {"content": "i"}}]}, "i"),
        ({"choices": [{"index": 0, "delta": {"reasoning_content": "j"}}]}, ""),
        ({"type": "content_block_delta", "delta": "not an object"}, ""),
        ({"type": "response.output_text.delta", "delta": 5}, ""),
    ],
)
def test_delta_text(chunk: dict[str, Any], text: str) -> None:
    assert delta_text(chunk) == text


# -- the example -----------------------------------------------------------------------------

EXAMPLE_API = {"chat.completions": "chat", "responses": "responses", "messages": "messages"}
EXAMPLE_KEY = {"messages": "ANTHROPIC_API_KEY"}


def load_example() -> Any:
    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "llm_chat.py"
    spec = importlib.util.spec_from_file_location("llm_chat_formats_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(server: SSEServer, fmt: str, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv(EXAMPLE_KEY.get(fmt, "OPENAI_API_KEY"), KEY)
    argv = ["--api", EXAMPLE_API[fmt], "--url", server.url_for(PATHS[fmt]), "--model", "m1"]
    result: int = load_example().main([*argv, "--prompt", "Say hello", *extra])
    return result


@pytest.mark.parametrize("fmt", FORMATS)
def test_example_streams_each_api(
    server: SSEServer, fmt: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(server, fmt, lambda: [*STREAMS[fmt](), hold()])
    assert run_example(server, fmt, monkeypatch, "--system", "Be brief.") == 0
    out, err = capsys.readouterr()
    assert out == ANSWER + "\n"
    assert f"finish_reason={FINISH[fmt]} usage={USAGE[fmt]}" in err
    body = server.wait_request(PATHS[fmt]).json()
    assert body["model"] == "m1"
    assert body["stream"] is True
    if fmt == "responses":
        assert (body["input"], body["instructions"]) == ("Say hello", "Be brief.")
    elif fmt == "messages":
        assert body["system"] == "Be brief."
        assert body["messages"] == [{"role": "user", "content": "Say hello"}]
        assert body["max_tokens"] > 0
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("fmt", FORMATS)
def test_example_reports_a_cut_answer(
    server: SSEServer, fmt: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(server, fmt, lambda: [*STREAMS[fmt](WORDS[:1], end=False), close()])
    assert run_example(server, fmt, monkeypatch) == 1
    out, err = capsys.readouterr()
    assert out == "Hello\n"
    assert "ended before the answer did" in err


def test_example_reports_an_anthropic_error_event(
    server: SSEServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = typed("error", error={"type": "overloaded_error", "message": "Overloaded"})
    serve(server, "messages", lambda: [message_start(), error, hold()])
    assert run_example(server, "messages", monkeypatch) == 1
    assert "error from the API: Overloaded" in capsys.readouterr().err
