"""A raw-socket SSE server on 127.0.0.1 whose behaviour for the next connections can be switched
while a client is connected, for the lifecycle model test.

Every connection is served by its own thread, which polls (every ``POLL`` seconds) the server's
stop flag and its own kick flag, so a test can end any connection at any moment (``kick()``,
with a FIN or a reset) and ``stop()`` ends every thread.  A stream (``NORMAL``, ``SILENT_BODY``,
``TRICKLE``...) sends numbered events ``id: n`` / ``data: n``, starting right after the request's
``Last-Event-ID``, so a client that delivers every event once and in order delivers exactly
1, 2, 3, ... whatever the reconnections in between.  Each event is preceded by a comment line
(for ``on_comment`` handlers).
"""

from __future__ import annotations

import enum
import socket
import struct
import threading
import time
from dataclasses import dataclass

__all__ = ("POLL", "Behaviour", "FaultServer", "Served", "held_sockets")

POLL = 0.01
"""Seconds between two looks of a connection thread at its stop and kick flags."""

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


class Behaviour(enum.Enum):
    """What the server does with the next connection to the stream path."""

    NORMAL = "normal"
    """``BURST`` events, one write each, then silence until kicked or the client leaves."""
    SILENT_HEADERS = "silent before headers"
    """Read the request, never answer."""
    SILENT_BODY = "silent mid-body"
    """Headers and one event, then silence."""
    PARTIAL_DROP = "partial event then drop"
    """Headers, one event, half of the next (no id), then a clean close."""
    RESET = "reset"
    """Headers and one event, then a reset (SO_LINGER 0 close)."""
    RESET_HEADERS = "reset before headers"
    """Read the request, then a reset."""
    NO_CONTENT = "204"
    """``204 No Content``: the server's "stop"."""
    ERROR = "500"
    """``500`` with a small body."""
    ERROR_RETRY_AFTER = "503 Retry-After: 0"
    """``503`` with ``Retry-After: 0``."""
    REDIRECT = "307"
    """``307`` to ``OTHER_PATH``, which always streams as ``NORMAL``."""
    TRICKLE = "slow trickle"
    """Headers, then events one byte at a time, every ``TRICKLE_GAP`` seconds, forever."""


BURST = 6
EVENT_GAP = 0.002
TRICKLE_GAP = 0.003
STREAM_PATH = "/s"
OTHER_PATH = "/other"


def held_sockets(port: int) -> int:
    """Client-side TCP sockets to ``port`` on 127.0.0.1 that a process still holds open.

    Any state counts (a socket shut down but never closed sits in FIN_WAIT); a socket its
    process has closed is orphaned, owned by the kernel alone, and shows inode 0."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[9] != "0":
                count += 1
    return count


def wire(n: int) -> bytes:
    """Event ``n`` on the wire, with its heartbeat comment."""
    return f": hb {n}\nid: {n}\ndata: {n}\n\n".encode()


@dataclass(frozen=True)
class Served:
    """One request as the server saw it, and what it answered."""

    path: str
    last_event_id: int
    behaviour: Behaviour


class _Kicked(Exception):
    """The test ended this connection (kick or stop)."""


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.kick = threading.Event()
        self.reset = False


class FaultServer:
    """The server; a context manager.  ``behaviour`` applies to every later connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}{STREAM_PATH}"
        self.behaviour = Behaviour.NORMAL
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._conns: list[_Conn] = []
        self._threads: list[threading.Thread] = []
        self.served: list[Served] = []
        self.bytes_sent = 0
        """Body bytes of event streams sent."""
        self.bursts_done = 0
        """``NORMAL`` connections that have written all of their burst."""
        self.errors: list[BaseException] = []
        self._accepter = threading.Thread(target=self._accept, name="fault-server", daemon=True)

    def __enter__(self) -> FaultServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End every connection and join every thread of the server."""
        self._stop.set()
        self._accepter.join(5)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)
        alive = [t.name for t in [self._accepter, *threads] if t.is_alive()]
        assert not alive, f"fault server threads still running: {alive}"
        assert not self.errors, f"fault server failed: {self.errors!r}"

    def kick(self, *, reset: bool = False) -> None:
        """End every open connection now: a clean close, or a reset."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.reset = reset
            conn.kick.set()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def wait(self, predicate: object, timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (re-checked on every server change)."""
        assert callable(predicate)
        with self._lock:
            return bool(self._lock.wait_for(lambda: predicate(self), timeout))

    def requests(self) -> int:
        with self._lock:
            return len(self.served)

    # -- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn = _Conn(sock)
            thread = threading.Thread(target=self._serve, args=(conn,), name="fault-conn")
            thread.daemon = True
            with self._lock:
                self._conns.append(conn)
                self._threads.append(thread)
                self._threads = [t for t in self._threads if t.is_alive() or t is thread]
            thread.start()

    def _serve(self, conn: _Conn) -> None:
        sock = conn.sock
        sock.settimeout(POLL)
        try:
            self._handle(conn)
        except (_Kicked, ConnectionError, TimeoutError):
            pass
        except OSError as exc:
            if not self._stop.is_set():
                self.errors.append(exc)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            if conn.reset:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            sock.close()
            with self._lock:
                self._conns.remove(conn)
                self._lock.notify_all()

    def _check(self, conn: _Conn) -> None:
        if self._stop.is_set() or conn.kick.is_set():
            raise _Kicked

    def _recv_request(self, conn: _Conn) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            self._check(conn)
            try:
                chunk = conn.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionResetError("client left before its request was complete")
            data += chunk
        return data

    def _hold(self, conn: _Conn) -> None:
        # Silence until the client leaves, the test kicks, or the server stops.
        while True:
            self._check(conn)
            try:
                if not conn.sock.recv(65536):
                    return
            except TimeoutError:
                continue

    def _send(self, conn: _Conn, data: bytes, *, body: bool = True) -> None:
        self._check(conn)
        if body:
            # Counted first: the client may have read them before sendall() returns here.
            with self._lock:
                self.bytes_sent += len(data)
                self._lock.notify_all()
        conn.sock.sendall(data)

    def _pause(self, conn: _Conn, seconds: float) -> None:
        if conn.kick.wait(seconds) or self._stop.is_set():
            raise _Kicked

    def _handle(self, conn: _Conn) -> None:
        request = self._recv_request(conn)
        head, _, _ = request.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        last_id = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "last-event-id":
                last_id = int(value.strip())
        with self._lock:
            behaviour = Behaviour.NORMAL if path == OTHER_PATH else self.behaviour
            self.served.append(Served(path, last_id, behaviour))
            self._lock.notify_all()
        n = last_id + 1
        if behaviour is Behaviour.SILENT_HEADERS:
            self._hold(conn)
        elif behaviour is Behaviour.RESET_HEADERS:
            conn.reset = True
        elif behaviour is Behaviour.NO_CONTENT:
            self._send(conn, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", body=False)
        elif behaviour in (Behaviour.ERROR, Behaviour.ERROR_RETRY_AFTER):
            status = "500 Internal Server Error" if behaviour is Behaviour.ERROR else "503 Busy"
            extra = "Retry-After: 0\r\n" if behaviour is Behaviour.ERROR_RETRY_AFTER else ""
            response = (
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                f"{extra}Connection: close\r\n\r\nboom"
            )
            self._send(conn, response.encode(), body=False)
        elif behaviour is Behaviour.REDIRECT:
            response = (
                f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {OTHER_PATH}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self._send(conn, response.encode(), body=False)
        else:
            self._send(conn, STREAM_HEAD, body=False)
            if behaviour is Behaviour.NORMAL:
                for i in range(BURST):
                    if i:
                        self._pause(conn, EVENT_GAP)
                    self._send(conn, wire(n + i))
                with self._lock:
                    self.bursts_done += 1
                    self._lock.notify_all()
                self._hold(conn)
            elif behaviour is Behaviour.SILENT_BODY:
                self._send(conn, wire(n))
                self._hold(conn)
            elif behaviour is Behaviour.PARTIAL_DROP:
                self._send(conn, wire(n))
                self._send(conn, b": partial\ndata: half of an event")
            elif behaviour is Behaviour.RESET:
                self._send(conn, wire(n))
                conn.reset = True
            else:
                while True:
                    for byte in wire(n):
                        self._pause(conn, TRICKLE_GAP)
                        self._send(conn, bytes([byte]))
                    n += 1
        # Let the client see the end before the socket goes: a FIN after everything was sent.
        if not conn.reset:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                self._check(conn)
                try:
                    if not conn.sock.recv(65536):
                        return
                except TimeoutError:
                    continue
