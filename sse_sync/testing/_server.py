"""The test server itself: :class:`SSEServer`, its HTTP handler and the runner of a script."""

from __future__ import annotations

import itertools
import selectors
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import attrs

from ._format import _HOST, _head
from ._http import LocalHTTPServer, read_chunked_body
from ._requests import Headers, RecordedRequest
from ._script import _TERMINAL, Respond, RouteSpec, Script, _as_route, _as_script, respond

_POLL = 0.05  # how often blocked handlers look at the stop flag; never test synchronisation
_JOIN_TIMEOUT = 5.0
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_CONN_IDS = itertools.count(1)
# struct linger {l_onoff, l_linger}: on, zero seconds -> close() sends RST, not FIN.
_LINGER_ZERO = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)


class _ClientGone(Exception):
    """The client closed or reset the connection."""


class _Stopped(Exception):
    """The server is stopping."""


class _Stream:
    """Runs one script on one handler: framing, compression and the blocking actions."""

    def __init__(self, handler: _Handler, script: Script) -> None:
        self._handler = handler
        self._script = script
        self._stop = handler.owner._stop
        self._zip = zlib.compressobj(wbits=31) if script.gzip else None
        self._body: list[bytes] | None = [] if script.framing == "length" else None
        self._chunked = script.framing == "chunked"
        self.clean = False  # the response ended cleanly (the connection may be reused)

    def run(self) -> None:
        actions = self._script.actions
        if self._body is None and not (actions and isinstance(actions[0], Respond)):
            self._handler.send_bytes(self._head(None))
        for action in actions:
            action._run(self)
        if not actions or not isinstance(actions[-1], (*_TERMINAL, Respond)):
            self.close()

    def _head(self, length: int | None) -> bytes:
        script = self._script
        fields: list[tuple[str, str]] = []
        if script.content_type is not None:
            fields.append(("Content-Type", script.content_type))
        fields.append(("Cache-Control", "no-cache"))
        if script.gzip:
            fields.append(("Content-Encoding", "gzip"))
        if self._chunked:
            fields.append(("Transfer-Encoding", "chunked"))
        elif length is not None:
            fields.append(("Content-Length", str(length)))
        if not script.keep_alive:
            fields.append(("Connection", "close"))
        return _head(script.status, fields, script.headers)

    def _frame(self, data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if self._chunked and data else data

    def write(self, data: bytes) -> None:
        if self._zip is not None:
            data = self._zip.compress(data) + self._zip.flush(zlib.Z_SYNC_FLUSH)
        if self._body is not None:
            self._body.append(data)
        elif data:
            self._handler.send_bytes(self._frame(data))

    def close(self) -> None:
        tail = self._zip.flush(zlib.Z_FINISH) if self._zip is not None else b""
        if self._body is not None:
            body = b"".join(self._body) + tail
            self._handler.send_bytes(self._head(len(body)) + body)
        elif self._chunked:
            self._handler.send_bytes(self._frame(tail) + b"0\r\n\r\n")
        elif tail:
            self._handler.send_bytes(tail)
        self.clean = True

    def drop(self) -> None:
        self._handler.reset()

    def hold(self) -> None:
        # Wait for EOF (or a reset) from the client.  stop() shuts the socket down, which also
        # wakes select(); the stop flag is checked as well in case a platform does not.
        sock = self._handler.connection
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while True:
                ready = selector.select(_POLL)
                if self._stop.is_set():
                    raise _Stopped
                if ready:
                    try:
                        data = sock.recv(65536)  # a client may send bytes: discard them
                    except OSError as exc:
                        self._handler.owner._raise_io(exc)
                    if not data:
                        raise _ClientGone

    def sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def wait(self, event: threading.Event, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if event.wait(max(left, 0.0)):
                return
            if self._stop.is_set():
                raise _Stopped
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"wait_for(): the event was not set within {timeout} s")

    def respond(self, response: Respond) -> None:
        status, body = response.status, response.body
        fields: list[tuple[str, str]] = []
        if body:
            fields.append(("Content-Type", "text/plain; charset=utf-8"))
        if status not in (204, 304):
            fields.append(("Content-Length", str(len(body))))
        if not self._script.keep_alive:
            fields.append(("Connection", "close"))
        self._handler.send_bytes(_head(status, fields, response.headers) + body)
        self.clean = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sse_sync.testing"
    sent_head = False

    @property
    def owner(self) -> SSEServer:
        return cast(_HTTPServer, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log; errors go to ``SSEServer.errors`` instead."""

    def send_bytes(self, data: bytes) -> None:
        self.sent_head = True
        try:
            self.wfile.write(data)
        except OSError as exc:
            self.owner._raise_io(exc)

    def reset(self) -> None:
        # SO_LINGER 0 makes close() send RST.  The socket is only really closed once rfile
        # (a makefile() reference) is closed too, so close both now.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        except OSError:
            pass
        self.connection.close()
        self.rfile.close()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            try:
                return read_chunked_body(self.rfile)
            except EOFError:
                raise _ClientGone from None
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        size = int(length)
        body = self.rfile.read(size)
        if len(body) < size:
            raise _ClientGone
        return body

    def _serve(self) -> None:
        owner = self.owner
        client_keep_alive = not self.close_connection
        self.close_connection = True
        self.sent_head = False
        try:
            body = self._read_body()
            target = urlsplit(self.path)
            request = owner._record(
                RecordedRequest(
                    self.command,
                    target.path,
                    target.query,
                    Headers(self.headers.items()),
                    body,
                    0,
                    (str(self.client_address[0]), int(self.client_address[1])),
                )
            )
            script = owner._script_for(request)
            if script is None:
                text = f"sse_sync.testing: no route for {request.path} ({owner._route_list()})\n"
                script = Script(respond(404, text))
            stream = _Stream(self, script)
            stream.run()
            if stream.clean and script.keep_alive and client_keep_alive:
                self.close_connection = False
        except _ClientGone:
            owner._client_gone()
        except _Stopped:
            pass
        except Exception as exc:
            if owner._stop.is_set() and isinstance(exc, OSError):
                return
            owner._add_error(exc)
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        # Before the head went out the client gets a 500 naming the error; after it, a reset.
        try:
            if self.sent_head:
                self.reset()
            else:
                text = f"sse_sync.testing: {type(exc).__name__}: {exc}\n"
                _Stream(self, Script(respond(500, text))).run()
        except (_ClientGone, _Stopped, OSError):
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve


class _HTTPServer(LocalHTTPServer):
    daemon_threads = True
    block_on_close = False  # SSEServer.stop() shuts connections down and joins their threads
    allow_reuse_address = False  # port 0: nothing to reuse
    request_queue_size = 128

    def __init__(self, owner: SSEServer) -> None:
        self.owner = owner
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            super().__init__((_HOST, 0), _Handler)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise

    def serve(self, stop: threading.Event) -> None:
        # Like serve_forever(), but woken by wake() instead of polling a shutdown flag, so that
        # stop() takes no time.  The listening socket is non-blocking: a connection that goes
        # away between select() and accept() must not block the loop.
        self.socket.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not stop.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            sock, address = self.get_request()
        except OSError:
            return  # the client left before accept(), or nothing was there after all
        try:
            self.process_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
            self.shutdown_request(sock)

    def wake(self) -> None:
        self._wake_w.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        try:
            # Blocking whatever the listener's mode or socket.getdefaulttimeout() say.
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._spawn(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, Exception) and not isinstance(exc, _CLIENT_GONE):
            self.owner._add_error(exc)


@attrs.define
class _Route:
    spec: tuple[Script, ...] | Callable[[RecordedRequest], object]
    count: int = 0


class SSEServer:
    """A scripted HTTP/1.1 server on ``127.0.0.1`` for testing SSE clients.

    Use it as a context manager (``__enter__`` starts it and returns it; ``__exit__`` stops it
    and raises :class:`AssertionError` if anything in the server failed), or call
    :meth:`start` and :meth:`stop` yourself.  Routes may be added before or after starting.
    Every request is recorded before its script runs.  A path without a route gets a 404.
    Methods GET, POST, PUT, PATCH, DELETE and OPTIONS are served (HEAD gets a 501).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._routes: dict[str, _Route] = {}
        self._requests: list[RecordedRequest] = []
        self._by_path: dict[str, list[RecordedRequest]] = {}
        self._cursors: dict[str | None, int] = {}
        self._errors: list[Exception] = []
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._finished: list[threading.Thread] = []
        self._disconnects = 0
        self._stop = threading.Event()
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SSEServer:
        """Bind ``127.0.0.1`` on a free port and start serving in a thread; return ``self``."""
        with self._lifecycle:
            if self._httpd is not None or self._stop.is_set():
                raise RuntimeError("an SSEServer can be started only once")
            httpd = _HTTPServer(self)
            self._httpd = httpd
            self._port = httpd.server_port
            self._thread = threading.Thread(
                target=self._accept_loop,
                args=(httpd,),
                name=f"sse_sync.testing-server-{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread.  Idempotent.

        The listening socket is closed first (new connections are refused), then each open
        connection is shut down, which wakes its handler wherever it is blocked.
        """
        with self._lifecycle:
            if self._stop.is_set():
                return
            self._stop.set()
            httpd, thread = self._httpd, self._thread
            if httpd is None or thread is None:
                return
            deadline = time.monotonic() + _JOIN_TIMEOUT
            httpd.wake()
            thread.join(_JOIN_TIMEOUT)  # the accept loop has ended: the set of connections is final
            httpd.server_close()  # new connections are refused from here on
            with self._cond:
                socks = list(self._conns)
            for sock in socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by its handler
            with self._cond:
                threads = [thread, *self._conns.values(), *self._finished]
                self._finished = []
            for t in threads:
                t.join(max(deadline - time.monotonic(), 0.0))
            stuck = [t.name for t in threads if t.is_alive()]
            if stuck:
                self._add_error(RuntimeError(f"threads still running after stop(): {stuck}"))

    def __enter__(self) -> SSEServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        errors = self.errors
        if not errors:
            return
        report = self._error_report(errors)
        if exc is None:
            raise AssertionError(report) from errors[0]
        if hasattr(exc, "add_note"):  # Python 3.11+: keep the test's own error in front
            exc.add_note(report)

    def assert_no_errors(self) -> None:
        """Raise :class:`AssertionError` now if the server has recorded any error."""
        errors = self.errors
        if errors:
            raise AssertionError(self._error_report(errors)) from errors[0]

    @staticmethod
    def _error_report(errors: list[Exception]) -> str:
        parts = [f"sse_sync.testing.SSEServer: {len(errors)} error(s) while serving:"]
        parts += ["".join(traceback.format_exception(e)).rstrip() for e in errors]
        return "\n\n".join(parts)

    # -- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``."""
        return _HOST

    @property
    def port(self) -> int:
        """The port the operating system assigned."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """``"http://127.0.0.1:PORT"``, without a trailing slash."""
        return f"http://{_HOST}:{self.port}"

    def url_for(self, path: str) -> str:
        """The full URL of ``path`` (a leading ``/`` is added if missing; a query may follow)."""
        return self.url + (path if path.startswith("/") else "/" + path)

    # -- routes ----------------------------------------------------------------------------

    def route(self, path: str, script: RouteSpec) -> None:
        """Serve ``path`` (matched exactly, without the query) with ``script``.

        ``script`` is one of:

        * a :class:`Script`, an action, or a list of actions: the same script for every request;
        * a list of scripts (each a :class:`Script` or a list of actions): the *n*-th request to
          ``path`` gets the *n*-th script and later requests the last one;
        * a callable taking the :class:`RecordedRequest` and returning a script; if it raises,
          the client gets a 500 and the exception goes to :attr:`errors`.

        Routing a path again replaces its route and restarts its request count.
        """
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"a route path starts with '/' and has no query: {path!r}")
        entry = _Route(_as_route(script))
        with self._cond:
            self._routes[path] = entry

    def _route_list(self) -> str:
        with self._cond:
            return "routes: " + (", ".join(sorted(self._routes)) or "none")

    def _script_for(self, request: RecordedRequest) -> Script | None:
        with self._cond:
            entry = self._routes.get(request.path)
            if entry is None:
                return None
            index = entry.count
            entry.count += 1
        if isinstance(entry.spec, tuple):
            return entry.spec[min(index, len(entry.spec) - 1)]
        return _as_script(entry.spec(request))

    # -- requests --------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> RecordedRequest:
        with self._cond:
            same_path = self._by_path.setdefault(request.path, [])
            request = RecordedRequest(
                request.method,
                request.path,
                request.query,
                request.headers,
                request.body,
                len(same_path) + 1,
                request.client_address,
            )
            same_path.append(request)
            self._requests.append(request)
            self._cond.notify_all()
        return request

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._cond:
            return list(self._requests)

    def wait_request(self, path: str | None = None, timeout: float | None = 5.0) -> RecordedRequest:
        """Return the next request to ``path`` (any path if ``None``), waiting if needed.

        Each path has its own queue: successive calls return successive requests to that path,
        including requests that arrived before the call.  Raises :class:`TimeoutError` after
        ``timeout`` seconds (``None``: wait forever).
        """
        if path is not None and not path.startswith("/"):
            raise ValueError(f"a path starts with '/': {path!r}")
        with self._cond:
            cursor = self._cursors.get(path, 0)

            def pending() -> list[RecordedRequest]:
                return self._requests if path is None else self._by_path.get(path, [])

            if not self._cond.wait_for(lambda: len(pending()) > cursor, timeout):
                seen = [r.target for r in self._requests]
                raise TimeoutError(
                    f"no request to {path or 'any path'} within {timeout} s; so far: {seen}"
                )
            self._cursors[path] = cursor + 1
            return pending()[cursor]

    # -- connections -----------------------------------------------------------------------

    @property
    def connections_open(self) -> int:
        """How many client connections are open right now."""
        with self._cond:
            return len(self._conns)

    @property
    def client_disconnects(self) -> int:
        """How many responses ended because the client went away (EOF or reset) first."""
        with self._cond:
            return self._disconnects

    def wait_disconnect(self, timeout: float | None = 5.0) -> None:
        """Wait until no connection is open, and their threads have ended.

        Raises :class:`TimeoutError` after ``timeout`` seconds (``None``: wait forever).
        A handler notices a client leaving while it writes, holds or waits for a request; one
        blocked in :func:`wait_for` or :func:`pause` notices only when that step ends.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: not self._conns, timeout):
                raise TimeoutError(f"{len(self._conns)} connection(s) still open after {timeout} s")
            finished, self._finished = self._finished, []
        for thread in finished:  # each has left its handler: the join is immediate
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))

    def _accept_loop(self, httpd: _HTTPServer) -> None:
        try:
            httpd.serve(self._stop)
        except Exception as exc:
            self._add_error(exc)

    def _spawn(self, sock: socket.socket, address: Any) -> None:
        thread = threading.Thread(
            target=self._connection,
            args=(sock, address),
            name=f"sse_sync.testing-conn-{next(_CONN_IDS)}",
            daemon=True,
        )
        with self._cond:
            self._finished = [t for t in self._finished if t.is_alive()]
            self._conns[sock] = thread
        try:
            thread.start()
        except BaseException:
            with self._cond:
                del self._conns[sock]
                self._cond.notify_all()
            raise

    def _connection(self, sock: socket.socket, address: Any) -> None:
        httpd = self._httpd
        assert httpd is not None
        try:
            httpd.finish_request(sock, address)
        except Exception as exc:
            if not isinstance(exc, _CLIENT_GONE) and not self._stop.is_set():
                self._add_error(exc)
        finally:
            httpd.shutdown_request(sock)
            with self._cond:
                del self._conns[sock]
                self._finished.append(threading.current_thread())
                self._cond.notify_all()

    # -- errors ----------------------------------------------------------------------------

    @property
    def errors(self) -> list[Exception]:
        """Exceptions raised while serving (not clients going away), in order (a copy)."""
        with self._cond:
            return list(self._errors)

    def _add_error(self, exc: Exception) -> None:
        with self._cond:
            self._errors.append(exc)

    def _client_gone(self) -> None:
        with self._cond:
            self._disconnects += 1

    def _raise_io(self, exc: OSError) -> NoReturn:
        if self._stop.is_set():
            raise _Stopped from exc
        if isinstance(exc, _CLIENT_GONE):
            raise _ClientGone from exc
        raise exc

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        state = "stopped" if self._stop.is_set() else "running" if self._httpd else "new"
        return f"<SSEServer {where} {state}, {self.connections_open} connection(s) open>"
