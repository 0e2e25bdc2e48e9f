"""``sse-sync demo``: a local demo server and an sse_sync client reading from it.

The server is an :class:`~sse_sync.testing.SSEServer` on ``127.0.0.1`` (standard library only,
in this process).  It serves an LLM-style token stream and a tick feed; each cuts its first
connection mid-way and resumes from the ``Last-Event-ID`` the client sends on reconnecting.
The whole run takes about two seconds and needs no network.
"""

from __future__ import annotations

import json
from typing import TextIO

from ._client import EventStream, connect
from ._retry import RetryPolicy
from .testing import RecordedRequest, ScriptLike, SSEServer, drop, event, pause, respond

__all__ = ("run",)

TOKENS = (
    "Server", "-sent", " events", " carry", " an", " answer", " token", " by", " token",
    ",", " and", " a", " dropped", " connection", " resumes", " right", " where", " it",
    " left", " off", ".",
)  # fmt: skip
TOKEN_DELAY = 0.04
# Cut after " a": no token text near the cut repeats on either side (" token" would look replayed).
TOKENS_DROP_AFTER = 12
TICKS = 8
TICK_DELAY = 0.07
TICKS_DROP_AFTER = 4

# Fast and bounded: the demo must reconnect at once and can never hang.
POLICY = RetryPolicy(initial_delay=0.2, max_delay=0.5, jitter=0.2, max_attempts=3, reset_after=0.0)
TIMEOUT = (2.0, 5.0)


def _resume_from(request: RecordedRequest, total: int) -> int:
    # How many events the client already has: the demo's IDs are 1, 2, 3, ...
    value = request.headers.get("Last-Event-ID", "")
    return min(int(value), total) if value.isascii() and value.isdigit() else 0


def tokens_script(request: RecordedRequest) -> ScriptLike:
    """Tokens of one sentence, ``id`` 1, 2, ..., then ``data: [DONE]``; the first connection
    is cut after ``TOKENS_DROP_AFTER`` tokens."""
    actions = []
    for index in range(_resume_from(request, len(TOKENS)), len(TOKENS)):
        data = json.dumps({"token": TOKENS[index]})
        actions += [pause(TOKEN_DELAY), event(data, id=str(index + 1))]
        if request.number == 1 and index + 1 == TOKENS_DROP_AFTER:
            return [*actions, pause(TOKEN_DELAY), drop()]
    return [*actions, pause(TOKEN_DELAY), event("[DONE]")]


def ticks_script(request: RecordedRequest) -> ScriptLike:
    """``tick`` events with ``id`` 1 to ``TICKS``, the first connection cut after
    ``TICKS_DROP_AFTER``; a client that has them all gets 204, the way to say "no more"."""
    start = _resume_from(request, TICKS)
    if start >= TICKS:
        return respond(204)
    actions = []
    for index in range(start, TICKS):
        actions += [pause(TICK_DELAY), event(f"tick {index + 1}", event="tick", id=str(index + 1))]
        if request.number == 1 and index + 1 == TICKS_DROP_AFTER:
            return [*actions, pause(TICK_DELAY), drop()]
    return actions


class _Client:
    """Consumes the demo streams, printing what happens and counting it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.events = 0
        self.reconnections = 0
        self.last_id = ""
        self._opened = 0

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def open(self, url: str) -> EventStream:
        self._opened = 0
        stream = connect(url, retry=POLICY, timeout=TIMEOUT)
        return stream.on_open(self._on_open).on_retry(self._on_retry)

    def _on_open(self, stream: EventStream) -> None:
        self._opened += 1
        if self._opened > 1:
            self.reconnections += 1
            self.say(
                f"  >> reconnected with Last-Event-ID: {stream.last_event_id}; the server "
                "resumes after it, nothing is replayed"
            )

    def _on_retry(self, error: BaseException | None, delay: float) -> None:
        why = "the server ended the stream" if error is None else f"connection lost ({error})"
        self.say(f"  !! {why}; reconnecting in {delay:.2f} s")

    def received(self, stream: EventStream) -> None:
        self.events += 1
        self.last_id = stream.last_event_id

    def tokens(self, url: str) -> None:
        self.say(f"1. LLM-style token stream: GET {url}")
        answer = []
        with self.open(url) as stream:
            for ev in stream:
                self.received(stream)
                if ev.data == "[DONE]":
                    self.say("  [DONE]")
                    break  # the end of the answer: close rather than reconnect
                token = ev.json()["token"]
                answer.append(token)
                self.say(f"  token id={ev.id:<3} {token!r}")
        self.say(f"  answer: {''.join(answer)}")

    def ticks(self, url: str) -> None:
        self.say(f"2. tick feed: GET {url}")
        with self.open(url) as stream:
            for ev in stream:
                self.received(stream)
                self.say(f"  {ev.event} id={ev.id:<3} {ev.data}")
        self.say("  feed over: the server answered the reconnection with 204 No Content")


def run(out: TextIO) -> int:
    """Run the demo, writing to ``out``; returns the exit code (0)."""
    client = _Client(out)
    with SSEServer() as server:
        server.route("/tokens", tokens_script)
        server.route("/ticks", ticks_script)
        client.say(f"demo server on {server.url} (127.0.0.1 only, stopped at the end)")
        client.tokens(server.url_for("/tokens"))
        client.ticks(server.url_for("/ticks"))
    client.say(
        f"summary: {client.events} events received, {client.reconnections} reconnections, "
        f"last event id {client.last_id!r}"
    )
    return 0
