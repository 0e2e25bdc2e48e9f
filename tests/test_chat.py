"""sse_sync.chat against a fake OpenAI-compatible endpoint on 127.0.0.1 (an SSEServer route)."""

from __future__ import annotations

import importlib.util
import json
import pickle
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sse_sync
from sse_sync.chat import (
    ChatCompletionError,
    ChatStream,
    delta_text,
    iter_chat_chunks,
    iter_text_deltas,
    stream_chat_completion,
)
from sse_sync.testing import (
    Action,
    RecordedRequest,
    ScriptLike,
    SSEServer,
    close,
    comment,
    event,
    hold,
    respond,
    wait_for,
)

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

PATH = "/v1/chat/completions"
KEY = "sk-test"
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "llm_chat.py"
UNAUTHORIZED = {
    "error": {
        "message": "Incorrect API key provided: sk-wrong.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def chunk(
    content: str | None = None,
    *,
    role: str | None = None,
    finish_reason: str | None = None,
    index: int = 0,
) -> Action:
    """One ``chat.completion.chunk`` event, as OpenAI sends it."""
    delta: dict[str, str] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }
    return event(json.dumps(body))


def usage_chunk(prompt: int, completion: int) -> Action:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "fake-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return event(json.dumps(body))


DONE = event("[DONE]")


def fake_openai(
    reply: Callable[[list[str]], Sequence[Action]] | None = None,
) -> Callable[[RecordedRequest], ScriptLike]:
    """A route that acts like /v1/chat/completions: checks the key and the body, then streams
    a role chunk, ``reply(words of the last user message)``, a stop chunk, usage and [DONE],
    and holds the connection open (as a keep-alive server may) until the client leaves."""

    def words_back(words: list[str]) -> Sequence[Action]:
        return [chunk(w) for w in words]

    make = reply or words_back

    def route(request: RecordedRequest) -> ScriptLike:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return respond(401, json.dumps(UNAUTHORIZED), {"Content-Type": "application/json"})
        body = request.json()
        if body.get("stream") is not True:
            return respond(400, '{"error": {"message": "stream must be true"}}')
        words = body["messages"][-1]["content"].split(" ")
        tokens = [w + " " for w in words[:-1]] + words[-1:]
        return [
            chunk("", role="assistant"),
            *make(tokens),
            chunk(finish_reason="stop"),
            usage_chunk(9, len(tokens)),
            DONE,
            hold(),
        ]

    return route


def payload(prompt: str = "Hello there world", **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": prompt}], **extra}


def open_chat(server: SSEServer, body: dict[str, Any] | None = None, **kwargs: Any) -> ChatStream:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("timeout", 10)
    return stream_chat_completion(server.url_for(PATH), body or payload(), **kwargs)


# -- the happy path ---------------------------------------------------------------------------


def test_deltas_arrive_in_order_as_they_are_sent(server: SSEServer) -> None:
    gate = threading.Event()
    server.route(
        PATH,
        fake_openai(
            lambda words: [chunk(words[0]), wait_for(gate), *(chunk(w) for w in words[1:])]
        ),
    )
    with open_chat(server) as chat:
        # The server is blocked before the second word until the gate opens: the first
        # delta can only have arrived on its own.
        assert next(chat) == "Hello "
        finish_before = chat.finish_reason
        gate.set()
        rest = list(chat)
    assert rest == ["there ", "world"]
    assert chat.done
    assert finish_before is None
    assert chat.finish_reason == "stop"
    assert chat.usage == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_done_ends_iteration_and_closes_the_connection_at_once(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    chat = open_chat(server)
    assert "".join(chat) == "Hello there world"
    assert chat.done
    # The server holds the connection after [DONE]; only the client can have closed it.
    server.wait_disconnect(timeout=5)
    assert server.client_disconnects == 1
    assert chat.event_stream.cancelled
    assert list(chat) == []  # and iteration stays over
    chat.close()


def test_request_carries_json_body_stream_true_and_headers(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    body = payload(temperature=0)
    with open_chat(server, body, headers={"OpenAI-Organization": "org-1"}) as chat:
        assert list(chat)
    request = server.wait_request(PATH)
    assert request.method == "POST"
    assert request.json() == {**body, "stream": True}
    assert "stream" not in body  # the caller's payload is not modified
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["OpenAI-Organization"] == "org-1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "text/event-stream"


def test_headers_authorization_without_api_key(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    with open_chat(server, api_key=None, headers={"Authorization": f"Bearer {KEY}"}) as chat:
        assert "".join(chat) == "Hello there world"
    assert server.wait_request(PATH).headers.get_all("Authorization") == [f"Bearer {KEY}"]


def test_stream_false_is_refused_before_sending(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    with pytest.raises(ValueError, match="stream"):
        open_chat(server, payload(stream=False))
    with pytest.raises(TypeError, match="retry"):
        open_chat(server, retry=sse_sync.RetryPolicy())
    assert server.requests == []


def test_chunks_and_texts_share_one_position(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    with open_chat(server) as chat:
        chunks = chat.iter_chunks()
        first = next(chunks)
        assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert delta_text(first) == ""
        assert next(chat) == "Hello "
        rest = list(chunks)
    assert [delta_text(c) for c in rest] == ["there ", "world", "", ""]
    assert rest[-1]["usage"]["total_tokens"] == 12
    assert chat.done


def test_only_choice_zero_makes_the_text(server: SSEServer) -> None:
    # With n=2 the chunks of both choices interleave, each naming its index.
    server.route(
        PATH,
        fake_openai(
            lambda words: [
                chunk("B-one ", index=1),
                chunk(words[0]),
                chunk("B-two", index=1),
                chunk(finish_reason="length", index=1),
                *(chunk(w) for w in words[1:]),
            ]
        ),
    )
    with open_chat(server) as chat:
        assert list(chat) == ["Hello ", "there ", "world"]
    assert chat.finish_reason == "stop"


def test_other_event_types_comments_and_empty_data_are_skipped(server: SSEServer) -> None:
    server.route(
        PATH,
        fake_openai(
            lambda words: [
                comment(" keep-alive"),
                event('{"note": "vendor event"}', event="ping"),
                event(""),
                *(chunk(w) for w in words),
            ]
        ),
    )
    with open_chat(server) as chat:
        assert "".join(chat) == "Hello there world"


def test_server_ending_without_done(server: SSEServer) -> None:
    server.route(PATH, [chunk("partial"), close()])
    with open_chat(server) as chat:
        assert list(chat) == ["partial"]
    assert not chat.done
    assert chat.finish_reason is None


def test_cancel_from_another_thread_ends_iteration(server: SSEServer) -> None:
    server.route(PATH, [chunk("first"), hold()])
    got: queue.Queue[object] = queue.Queue()
    with open_chat(server) as chat:

        def consume() -> None:
            try:
                for text in chat:
                    got.put(text)
                got.put("<end>")
            except BaseException as exc:
                got.put(exc)

        thread = threading.Thread(target=consume, name="chat-consumer")
        thread.start()
        try:
            assert got.get(timeout=10) == "first"
            chat.cancel()
            assert got.get(timeout=10) == "<end>"
        finally:
            chat.close()
            thread.join(10)
        assert not thread.is_alive()
    assert not chat.done
    server.wait_disconnect(timeout=5)


# -- errors ----------------------------------------------------------------------------------


def test_error_event_raises_chat_completion_error(server: SSEServer) -> None:
    error = {"message": "The server is overloaded", "type": "server_error", "code": 529}
    server.route(
        PATH,
        fake_openai(
            lambda words: [chunk(words[0]), event(json.dumps({"error": error}), event="error")]
        ),
    )
    chat = open_chat(server)
    texts: list[str] = []
    with pytest.raises(ChatCompletionError) as info:
        texts.extend(chat)
    assert texts == ["Hello "]  # what came before the error was delivered
    exc = info.value
    assert isinstance(exc, sse_sync.SSEError)
    assert exc.error == error
    assert exc.message == str(exc) == "The server is overloaded"
    assert exc.error_type == "server_error"
    assert exc.code == 529
    assert exc.event is not None
    assert exc.event.event == "error"
    server.wait_disconnect(timeout=5)  # closed on the error, with no close() call


def test_error_event_with_plain_text_data(server: SSEServer) -> None:
    server.route(PATH, fake_openai(lambda words: [event("upstream timed out", event="error")]))
    with open_chat(server) as chat, pytest.raises(ChatCompletionError) as info:
        list(chat)
    assert info.value.error == "upstream timed out"
    assert info.value.message == "upstream timed out"
    assert info.value.code is None
    assert info.value.error_type is None


def test_error_object_in_a_data_chunk(server: SSEServer) -> None:
    error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
    server.route(PATH, fake_openai(lambda words: [event(json.dumps({"error": error}))]))
    with open_chat(server) as chat, pytest.raises(ChatCompletionError) as info:
        list(chat)
    assert info.value.error == error
    assert info.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in str(info.value)
    server.wait_disconnect(timeout=5)


def test_invalid_json_raises_event_json_error(server: SSEServer) -> None:
    server.route(PATH, fake_openai(lambda words: [chunk(words[0]), event('{"choices": [')]))
    chat = open_chat(server)
    assert next(chat) == "Hello "
    with pytest.raises(sse_sync.EventJSONError) as info:
        next(chat)
    assert isinstance(info.value, json.JSONDecodeError)
    assert info.value.doc == '{"choices": ['
    server.wait_disconnect(timeout=5)
    chat.close()


def test_json_that_is_not_an_object(server: SSEServer) -> None:
    server.route(PATH, [event("[1, 2]"), hold()])
    with open_chat(server) as chat, pytest.raises(sse_sync.DecodeError, match="not a JSON object"):
        list(chat)


def test_http_401_carries_the_api_error_json(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    with pytest.raises(sse_sync.HTTPStatusError) as info:
        open_chat(server, api_key="sk-wrong")
    exc = info.value
    assert exc.status_code == 401
    assert json.loads(exc.body) == UNAUTHORIZED
    assert server.wait_request(PATH).headers["Authorization"] == "Bearer sk-wrong"


def test_chat_completion_error_pickles() -> None:
    exc = ChatCompletionError("boom", {"message": "boom", "code": 1}, sse_sync.Event("error", "x"))
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is ChatCompletionError
    assert (copy.message, copy.error, copy.event, copy.code) == ("boom", exc.error, exc.event, 1)


# -- helpers for an EventStream of your own ----------------------------------------------------


def test_iter_text_deltas_over_an_event_stream(server: SSEServer) -> None:
    server.route(PATH, fake_openai())
    with sse_sync.connect(
        server.url_for(PATH),
        method="POST",
        json=payload(stream=True),
        headers={"Authorization": f"Bearer {KEY}"},
        retry=None,
        timeout=10,
    ) as stream:
        assert list(iter_text_deltas(stream)) == ["Hello ", "there ", "world"]
        # The helper stopped at [DONE] without closing what it does not own.
        assert server.connections_open == 1
    server.wait_disconnect(timeout=5)


def test_iter_chat_chunks_over_decoded_events() -> None:
    body = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    wire = f"data: {json.dumps(body)}\n\ndata: [DONE]\n\ndata: after\n\n"
    events = sse_sync.decode(wire.encode())
    assert list(iter_chat_chunks(events)) == [body]
    assert list(iter_text_deltas(events)) == ["hi"]


# -- the example -----------------------------------------------------------------------------


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llm_chat_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llm_chat_example_prints_the_deltas(
    server: SSEServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(PATH, fake_openai())
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    example = load_example()
    argv = ["--url", server.url_for(PATH), "--model", "m1", "--prompt", "Stream me please"]
    assert example.main(argv) == 0
    out, err = capsys.readouterr()
    assert out == "Stream me please\n"
    assert "finish_reason=stop" in err
    assert "'total_tokens': 12" in err
    body = server.wait_request(PATH).json()
    assert body["model"] == "m1"
    assert body["messages"] == [{"role": "user", "content": "Stream me please"}]
    assert body["stream"] is True


def test_llm_chat_example_reports_http_errors(
    server: SSEServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route(PATH, fake_openai())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    example = load_example()
    assert example.main(["--url", server.url_for(PATH), "--prompt", "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "HTTP 401" in err
    assert "invalid_api_key" in err
