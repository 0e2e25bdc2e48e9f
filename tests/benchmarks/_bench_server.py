"""A small, fast ``text/event-stream`` server for ``bench_client``, run in its own process.

Standard library only, and importable without side effects: ``bench_client`` imports it for the
payload generators (so client and server agree on what is sent) and starts it as a script::

    python tests/benchmarks/_bench_server.py     # prints "PORT <n>", serves until stdin closes

It listens on 127.0.0.1 only, on a port the OS picks, one thread per connection, TCP_NODELAY on
every accepted socket.  Payloads are built before the client's clock starts (``/prepare``) and
written with large ``sendall`` calls; with chunked framing every event is still its own HTTP
chunk inside those writes.  Routes (all ``GET``, query parameters as shown)::

    /prepare?kind=tokens|big&n=&size=       build and cache a payload; 200 "ok"
    /tokens?n=&framing=                     n small JSON events (the last is "[DONE]")
    /big?n=&size=&framing=                  n events of >= size bytes of data, many data lines
    /latency?n=&interval_ms=&hold_ms=&framing=
                                            one event every interval, data carrying
                                            time.monotonic_ns() at the write; then silence for
                                            hold_ms before the stream ends
    /silent?hold=&framing=                  one event, then silence until the client goes away
                                            or hold seconds pass; then the socket is closed
    /flood?id=&total=&size=&framing=        events of size bytes of data, as fast as the socket
                                            takes them, until total body bytes; bytes accepted by
                                            the socket are counted under id
    /stats?id=                              JSON {"sent": bytes, "done": bool} for a flood

``framing`` is ``chunked`` (HTTP/1.1, Transfer-Encoding: chunked, keep-alive) or ``close``
(HTTP/1.1, Connection: close, no length: the body ends when the server closes).
"""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
WRITE_BATCH = 256 * 1024  # bytes per sendall for pre-built payloads
FLOOD_WRITE = 64 * 1024  # bytes per sendall (and per counter update) for /flood
POOL = 16  # distinct big events, cycled

# -- payloads (shared with the client) -----------------------------------------------------------

# fmt: off
VOCAB: tuple[str, ...] = (
    "Hello", " world", ",", ".", " the", " a", " quick", " brown", " fox", " jumps", " over",
    " lazy", " dog", " stream", " token", " event", "\n", '"', " café", " naïve", "你好", "世界",
    "🙂", "🚀", " привет", "—", "{", "}", ":",
)
WORDS: tuple[str, ...] = (
    "lorem", "ipsum", "dolor", "sit", "amet", "event", "stream", "data:", "id:", "café",
    "Straße", "naïve", "東京", "数据", "🙂", "x=1;y=2", '{"k":[1,2]}', "a:b:c",
)
# fmt: on


def token_events(n: int, seed: int = 1) -> list[bytes]:
    """An LLM completion stream: ``n - 1`` one-token JSON deltas, then ``data: [DONE]``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n - 1):
        token = json.dumps(rng.choice(VOCAB), ensure_ascii=False).encode()
        out.append(b'data: {"choices":[{"delta":{"content":' + token + b"}}]}\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def big_pool(size: int, seed: int = 2, line: tuple[int, int] = (1024, 4096)) -> list[bytes]:
    """``POOL`` distinct events of at least ``size`` bytes of data, over many ``data:`` lines."""
    rng = random.Random(seed)
    text = " ".join(rng.choice(WORDS) for _ in range(40_000))
    low, high = min(line[0], size), min(line[1], size)
    pool = []
    for _ in range(POOL):
        values: list[str] = []
        total = 0
        while total < size:
            start = rng.randrange(len(text) - high)
            value = text[start : start + rng.randint(low, high)].strip(" ")
            values.append(value)
            total += len(value.encode())
        pool.append("".join(f"data: {v}\n" for v in values).encode() + b"\n")
    return pool


def event_data(raw: bytes) -> str:
    """The data of one pre-built event (data-only lines, LF, ``data: `` prefix)."""
    lines = raw.decode().split("\n")
    return "\n".join(x[6:] for x in lines if x.startswith("data: "))


def chunk(event: bytes) -> bytes:
    """One HTTP/1.1 chunk holding ``event``."""
    return b"%x\r\n%s\r\n" % (len(event), event)


LAST_CHUNK = b"0\r\n\r\n"


def latency_event(seq: int, t_ns: int) -> bytes:
    """One event of the latency stream; ``parse_latency`` reads it back."""
    data = f'{{"seq":{seq},"t":{t_ns},"choices":[{{"delta":{{"content":"tok"}}}}]}}'
    return b"data: " + data.encode() + b"\n\n"


def parse_latency(data: str) -> tuple[int, int]:
    """(seq, send time in ns) of a latency event's data."""
    head = data[: data.index(',"choices"')]
    seq, t = head[len('{"seq":') :].split(',"t":')
    return int(seq), int(t)


# -- server --------------------------------------------------------------------------------------

_cache: dict[tuple[object, ...], list[bytes]] = {}
_cache_lock = threading.Lock()
_flood: dict[str, dict[str, object]] = {}


def _payload(kind: str, n: int, size: int, framing: str) -> list[bytes]:
    key = (kind, n, size, framing)
    with _cache_lock:
        if key not in _cache:
            if kind == "tokens":
                events = token_events(n)
                frames = [chunk(e) for e in events] if framing == "chunked" else events
                blocks, batch, used = [], [], 0
                for frame in frames:
                    batch.append(frame)
                    used += len(frame)
                    if used >= WRITE_BATCH:
                        blocks.append(b"".join(batch))
                        batch, used = [], 0
                if batch:
                    blocks.append(b"".join(batch))
                _cache[key] = blocks
            elif kind == "big":
                pool = big_pool(size)
                _cache[key] = [chunk(e) for e in pool] if framing == "chunked" else pool
            else:
                raise ValueError(kind)
        return _cache[key]


def _head(framing: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache"]
    lines.append("Transfer-Encoding: chunked" if framing == "chunked" else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _small(conn: socket.socket, body: bytes, ctype: str = "text/plain") -> bool:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (ctype.encode(), len(body), body)
    )
    return True


def _end(conn: socket.socket, framing: str) -> bool:
    """End a stream body; True if the connection may serve another request."""
    if framing == "chunked":
        conn.sendall(LAST_CHUNK)
        return True
    # Close-delimited: FIN after the last byte, then wait for the client to hang up, so that
    # nothing it has not read yet can be lost to a reset.
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(30)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    return False


def _wait_gone(conn: socket.socket, seconds: float) -> None:
    conn.settimeout(seconds)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def _route(conn: socket.socket, target: str) -> bool:
    parts = urlsplit(target)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    path = parts.path
    framing = q.get("framing", "chunked")
    if framing not in ("chunked", "close"):
        raise ValueError(framing)
    frame = chunk if framing == "chunked" else (lambda e: e)

    if path == "/prepare":
        _payload(q["kind"], int(q.get("n", 0)), int(q.get("size", 0)), "chunked")
        _payload(q["kind"], int(q.get("n", 0)), int(q.get("size", 0)), "close")
        return _small(conn, b"ok")
    if path == "/stats":
        found = _flood.get(q["id"], {"sent": 0, "done": False})
        return _small(conn, json.dumps(found).encode(), "application/json")
    if path == "/tokens":
        blocks = _payload("tokens", int(q["n"]), 0, framing)
        conn.sendall(_head(framing))
        for block in blocks:
            conn.sendall(block)
        return _end(conn, framing)
    if path == "/big":
        pool = _payload("big", 0, int(q["size"]), framing)
        conn.sendall(_head(framing))
        for i in range(int(q["n"])):
            conn.sendall(pool[i % POOL])
        return _end(conn, framing)
    if path == "/latency":
        n, interval = int(q["n"]), float(q["interval_ms"]) / 1e3
        conn.sendall(_head(framing))
        start = time.monotonic() + interval
        for seq in range(n):
            delay = start + seq * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.sendall(frame(latency_event(seq, time.monotonic_ns())))
        time.sleep(float(q["hold_ms"]) / 1e3)
        return _end(conn, framing)
    if path == "/silent":
        conn.sendall(_head(framing) + frame(b'data: {"hello":1}\n\n'))
        _wait_gone(conn, float(q["hold"]))
        return False
    if path == "/flood":
        state: dict[str, object] = {"sent": 0, "done": False}
        _flood[q["id"]] = state
        pool = [frame(e) for e in big_pool(int(q["size"]), line=(1024, 1024))]
        total = int(q["total"])
        conn.sendall(_head(framing))
        body = sent = i = 0
        while body < total:
            batch = []
            used = 0
            while used < FLOOD_WRITE and body < total:
                event = pool[i % POOL]
                batch.append(event)
                used += len(event)
                body += len(event)
                i += 1
            conn.sendall(b"".join(batch))
            sent += used
            state["sent"] = sent
        state["done"] = True
        return _end(conn, framing)
    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    return True


def _serve(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            target = request_line.split(" ")[1]
            if not _route(conn, target):
                return
    except OSError:
        pass  # the client went away: that is how most streams here end
    except Exception as exc:  # a bug in this file: say so, keep serving other connections
        print(f"bench server error: {exc!r}", file=sys.stderr, flush=True)
    finally:
        conn.close()


def serve_forever(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


def main() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    threading.Thread(target=serve_forever, args=(listener,), daemon=True).start()
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    # Serve until the parent closes our stdin (or dies): no orphan can outlive a benchmark.
    sys.stdin.read()


if __name__ == "__main__":
    main()
