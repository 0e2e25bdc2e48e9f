"""Stream an answer from an LLM API and print the text as it arrives.

    OPENAI_API_KEY=sk-... python docs/examples/llm_chat.py --prompt "Write a haiku about TCP"
    OPENAI_API_KEY=sk-... python docs/examples/llm_chat.py --api responses --model gpt-5-mini \\
        --prompt "Write a haiku about TCP"
    ANTHROPIC_API_KEY=sk-ant-... python docs/examples/llm_chat.py --api messages \\
        --model claude-sonnet-4-5 --prompt "Write a haiku about TCP"
    python docs/examples/llm_chat.py --url http://127.0.0.1:8000/v1/chat/completions \\
        --model my-local-model --prompt "Hello"

``--api`` picks the request shape and the endpoint: ``chat`` (OpenAI-compatible chat
completions, the default), ``responses`` (OpenAI Responses) or ``messages`` (Anthropic
Messages).  The API key is read from OPENAI_API_KEY, or ANTHROPIC_API_KEY for ``messages``, if
set (local servers such as vLLM, llama.cpp or Ollama usually need none).  The finish reason and
token usage go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import sse_sync
from sse_sync.chat import (
    ChatCompletionError,
    ChatStream,
    stream_anthropic_message,
    stream_chat_completion,
)

DEFAULT_URLS = {
    "chat": "https://api.openai.com/v1/chat/completions",
    "responses": "https://api.openai.com/v1/responses",
    "messages": "https://api.anthropic.com/v1/messages",
}
DEFAULT_MODELS = {"chat": "gpt-4o-mini", "responses": "gpt-5-mini", "messages": "claude-sonnet-4-5"}


def env_key(name: str) -> str | None:
    """The API key in environment variable ``name``; ``None`` if unset or empty."""
    return os.environ.get(name) or None


def open_answer(api: str, url: str, model: str, prompt: str, system: str | None) -> ChatStream:
    """Send the request in the shape ``api`` expects; the streamed answer."""
    if api == "responses":
        payload: dict[str, Any] = {"model": model, "input": prompt}
        if system:
            payload["instructions"] = system
        return stream_chat_completion(url, payload, api_key=env_key("OPENAI_API_KEY"))
    messages = [{"role": "user", "content": prompt}]
    if api == "messages":
        payload = {"model": model, "max_tokens": 1024, "messages": messages}
        if system:
            payload["system"] = system
        return stream_anthropic_message(url, payload, api_key=env_key("ANTHROPIC_API_KEY"))
    if system:
        messages.insert(0, {"role": "system", "content": system})
    payload = {
        "model": model,
        "messages": messages,
        # Ask for token counts in a final chunk; servers that do not know it ignore it.
        "stream_options": {"include_usage": True},
    }
    return stream_chat_completion(url, payload, api_key=env_key("OPENAI_API_KEY"))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, stream the answer to stdout; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--api", choices=sorted(DEFAULT_URLS), default="chat", help="API format")
    parser.add_argument("--url", help="the endpoint (default: the provider's)")
    parser.add_argument("--model", help="model name")
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--system", help="an optional system message")
    args = parser.parse_args(argv)

    url = args.url or DEFAULT_URLS[args.api]
    model = args.model or DEFAULT_MODELS[args.api]
    out = sys.stdout
    try:
        with open_answer(args.api, url, model, args.prompt, args.system) as chat:
            for text in chat:
                out.write(text)
                out.flush()  # show each delta now, not when the line buffer fills
    except sse_sync.HTTPStatusError as exc:
        # The body usually holds the API's JSON error (bad key, unknown model, rate limit).
        print(f"\nerror: {exc}\n{exc.body}", file=sys.stderr)
        return 1
    except ChatCompletionError as exc:
        print(f"\nerror from the API: {exc.message}", file=sys.stderr)
        return 1
    except sse_sync.SSEError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Leaving the with block already closed the connection; say so and stop.
        print("\n(interrupted)", file=sys.stderr)
        return 130
    out.write("\n")
    if not chat.done:
        print("error: the connection ended before the answer did", file=sys.stderr)
        return 1
    print(f"finish_reason={chat.finish_reason} usage={chat.usage}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
