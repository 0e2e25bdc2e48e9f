"""Helpers shared by the tests: socket probes, a raw TCP server, thread-tracked servers, and a
call run in a background thread.

The scripted event-stream server is the library's own (``sse_sync.testing``, fixture
``sse_server``); what is here covers the rest.
"""

from __future__ import annotations

import itertools
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any


def fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def client_sockets(port: int) -> int:
    """This machine's client-side TCP sockets to ``port`` still open (ESTABLISHED, CLOSE_WAIT).

    Closed sockets linger in FIN_WAIT/TIME_WAIT, owned by the kernel, not by a process."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] in ("01", "08"):
                count += 1
    return count


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``handler(server, conn, stop)`` per connection, each
    in its own thread, for HTTP that the scripted server will not produce.  ``stop()`` shuts every
    connection down and joins every thread."""

    def __init__(
        self,
        handler: Callable[[RawServer, socket.socket, threading.Event], None],
        *,
        scheme: str = "http",
        path: str = "/",
    ) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # the accept loop looks at the stop flag this often
        self.port = int(self._listener.getsockname()[1])
        self.url = f"{scheme}://127.0.0.1:{self.port}{path}"
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Condition()
        self._accepter = threading.Thread(target=self._accept, name="raw-server", daemon=True)

    def __enter__(self) -> RawServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._accepter.join(5)
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)
        assert not any(t.is_alive() for t in [self._accepter, *threads])
        if self.errors and exc_info[0] is None:
            raise AssertionError(f"raw server failed: {self.errors!r}") from self.errors[0]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._handler(self, conn, self._stop)
        except (ConnectionError, TimeoutError):
            pass  # the client left
        except OSError as exc:
            if not self._stop.is_set():
                self.errors.append(exc)
        except BaseException as exc:
            self.errors.append(exc)

    def read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionResetError("client left before its request was complete")
            data += chunk
        with self._lock:
            self.requests.append(data)
            self._lock.notify_all()
        return data

    def wait_requests(self, count: int, timeout: float = 5) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.requests) >= count, timeout)


def wait_for_client_to_leave(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(0.05)
    while not stop.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue


class TrackedRequestThreads(socketserver.ThreadingMixIn):
    """Mix in before a threading server class: each request thread is named and kept in
    ``request_threads``, so a test can join them all and prove none outlives it
    (``ThreadingMixIn`` makes them daemons and, without ``block_on_close``, forgets them)."""

    request_thread_name = "test-request"
    _numbers = itertools.count(1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.request_threads: list[threading.Thread] = []
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.request_thread_name}-{next(self._numbers)}",
            daemon=True,
        )
        self.request_threads.append(thread)
        thread.start()

    def alive_request_threads(self, timeout: float) -> list[str]:
        """Join every request thread, ``timeout`` seconds in all; the names of those still alive."""
        deadline = time.monotonic() + timeout
        for thread in list(self.request_threads):
            thread.join(max(deadline - time.monotonic(), 0.0))
        return [t.name for t in self.request_threads if t.is_alive()]


class BackgroundCall:
    """``fn()`` run in a started daemon thread, recording what it returns or raises; ``done`` is
    set when it has.  As a context manager it joins the thread on exit, even when the test
    failed, so no thread is left behind."""

    def __init__(
        self, fn: Callable[[], Any], *, name: str = "test-background", timeout: float = 10.0
    ) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._fn = fn
        self._timeout = timeout
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> Any:
        """Wait for the call (at most ``timeout`` seconds); its result, or raise its error."""
        self._thread.join(self._timeout)
        assert not self._thread.is_alive(), f"the call in {self._thread.name} did not return"
        if self.error is not None:
            raise self.error
        return self.result

    def __enter__(self) -> BackgroundCall:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(self._timeout)
