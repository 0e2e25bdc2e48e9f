"""Stream a chat completion from an OpenAI-compatible API and print the text as it arrives.

    OPENAI_API_KEY=sk-... python docs/examples/llm_chat.py --prompt "Write a haiku about TCP"
    python docs/examples/llm_chat.py --url http://127.0.0.1:8000/v1/chat/completions \\
        --model my-local-model --prompt "Hello"

The API key is read from the environment variable OPENAI_API_KEY, if set (local servers such as
vLLM, llama.cpp or Ollama usually need none).  The finish reason and token usage go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import sse_sync
from sse_sync.chat import ChatCompletionError, stream_chat_completion

DEFAULT_URL = "https://api.openai.com/v1/chat/completions"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, stream the completion to stdout; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="chat-completions endpoint")
    parser.add_argument("--model", default="gpt-4o-mini", help="model name")
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--system", help="an optional system message")
    args = parser.parse_args(argv)

    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": args.prompt})
    payload = {
        "model": args.model,
        "messages": messages,
        # Ask for token counts in a final chunk; servers that do not know it ignore it.
        "stream_options": {"include_usage": True},
    }
    out = sys.stdout
    try:
        with stream_chat_completion(
            args.url, payload, api_key=os.environ.get("OPENAI_API_KEY") or None
        ) as chat:
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
    print(f"finish_reason={chat.finish_reason} usage={chat.usage}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
