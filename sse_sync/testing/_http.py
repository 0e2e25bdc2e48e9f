"""HTTP plumbing shared by test servers: a server that binds without DNS, a chunked body reader.

:class:`~sse_sync.testing.SSEServer` is built on these; the repository's own test servers (the
contract-test service among them) use them too, rather than keeping copies.
"""

from __future__ import annotations

import socketserver
from http.server import ThreadingHTTPServer
from typing import Protocol

__all__ = ("LocalHTTPServer", "read_chunked_body")


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server for an IP address, bound without a host name lookup."""

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS query that can stall where no
        # resolver answers); an IP address needs none.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...
    def readline(self, size: int, /) -> bytes: ...


def read_chunked_body(
    rfile: _Readable, *, max_size: int | None = None, max_line: int = 65537
) -> bytes:
    """Read a ``Transfer-Encoding: chunked`` request body, trailers included, from ``rfile``.

    Raises :class:`EOFError` if the client stops sending before the last chunk, and
    :class:`ValueError` for a malformed chunk or a body over ``max_size`` bytes.
    """
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(max_line)
        if not line.endswith(b"\n"):
            raise EOFError("the request body ended inside a chunk size line")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ValueError(f"malformed chunked body: chunk size line {line[:40]!r}") from None
        if size < 0:
            raise ValueError(f"malformed chunked body: chunk size line {line[:40]!r}")
        if size == 0:
            break
        total += size
        if max_size is not None and total > max_size:
            raise ValueError("request body too large")
        data = rfile.read(size + 2)
        if len(data) < size + 2:
            raise EOFError("the request body ended inside a chunk")
        parts.append(data[:size])
    while rfile.readline(max_line) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields
    return b"".join(parts)
