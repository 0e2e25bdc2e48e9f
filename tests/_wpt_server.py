"""A raw HTTP server that stamps when each response ended and when the next request arrived.

Reconnection timing is measured where it happens, in the server: the gap between the moment
connection N could be seen to end by the client and the arrival of request N + 1.  ``ended`` is
stamped just before the response's last bytes are written, so a measured gap is never shorter
than the client's real wait (the client cannot see the end before those bytes and the FIN).
One request per connection; the server half-closes after its response and waits for the client
to close, so no connection ends with a reset.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal

from _net import RawServer, wait_for_client_to_leave

Ending = Literal["close", "cut", "hold"]


@dataclass(frozen=True)
class Reply:
    """One response.

    ``end``: ``"close"`` sends a close-delimited body and closes it cleanly; ``"cut"`` sends the
    body as one HTTP chunk and closes without the last chunk (a broken connection, after the
    events in the body have arrived); ``"hold"`` sends the body, then waits for the client to
    leave.  A status other than 200 gets a ``Content-Length`` body (none for 204).
    """

    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/event-stream"
    end: Ending = "close"

    def head(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}"]
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        if self.status not in (200, 204):
            lines.append(f"Content-Length: {len(self.body)}")
        elif self.status == 200 and self.end == "cut":
            lines.append("Transfer-Encoding: chunked")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def payload(self) -> bytes:
        if self.status == 204:
            return b""
        if self.status == 200 and self.end == "cut" and self.body:
            return b"%x\r\n%s\r\n" % (len(self.body), self.body)
        return self.body


@dataclass
class Hit:
    """One request: its 1-based ``number``, request line, headers (lower-case names, raw
    values), arrival time and the time its response ended (``time.monotonic()``)."""

    number: int
    request_line: str
    headers: dict[str, bytes]
    arrived: float
    ended: float | None = None


Route = Sequence[Reply] | Callable[[Hit], Reply]


@dataclass
class TimedServer:
    """Serve every request with ``route`` (the n-th reply for the n-th request, the last one
    repeating, or a callable) and record a :class:`Hit` per request."""

    route: Route
    hits: list[Hit] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _raw: RawServer | None = None

    def __enter__(self) -> TimedServer:
        self._raw = RawServer(self._serve).__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._raw is not None
        self._raw.__exit__(*exc_info)

    @property
    def url(self) -> str:
        assert self._raw is not None
        return self._raw.url + "stream"

    def _reply_for(self, hit: Hit) -> Reply:
        if callable(self.route):
            return self.route(hit)
        return self.route[min(hit.number, len(self.route)) - 1]

    def _serve(self, raw: RawServer, conn: socket.socket, stop: threading.Event) -> None:
        request = raw.read_request(conn)
        arrived = time.monotonic()
        head, _, _ = request.partition(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, bytes] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().encode("latin-1")
        with self._cond:
            hit = Hit(len(self.hits) + 1, first, headers, arrived)
            self.hits.append(hit)
            self._cond.notify_all()
        reply = self._reply_for(hit)
        if reply.end == "hold":
            conn.sendall(reply.head() + reply.payload())
            wait_for_client_to_leave(conn, stop)
            self._ended(hit)
            return
        self._ended(hit)
        conn.sendall(reply.head() + reply.payload())
        conn.shutdown(socket.SHUT_WR)
        wait_for_client_to_leave(conn, stop)

    def _ended(self, hit: Hit) -> None:
        with self._cond:
            hit.ended = time.monotonic()
            self._cond.notify_all()

    def wait_hits(self, count: int, timeout: float = 10.0) -> list[Hit]:
        """The first ``count`` hits, once each has arrived and its response has ended."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: (
                    len(self.hits) >= count and all(h.ended is not None for h in self.hits[:count])
                ),
                timeout,
            )
            assert done, f"{len(self.hits)} of {count} requests served within {timeout} s"
            return list(self.hits[:count])

    def gaps(self, count: int) -> list[float]:
        """Seconds from the end of response n to the arrival of request n + 1, for the first
        ``count`` requests (``count - 1`` gaps)."""
        hits = self.wait_hits(count)
        return [b.arrived - a.ended for a, b in itertools.pairwise(hits) if a.ended is not None]
