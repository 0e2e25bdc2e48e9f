"""The contract-test service: sse_sync behind the SSE conformance suite's test-service protocol.

Run it from the repository root::

    python -m tests.contract.service [--port 8000]

and point the suite at ``http://127.0.0.1:8000``.  The protocol is described in the shared
``contract/PROTOCOL.md``: the suite creates a client per test with ``POST /``, sends it commands
with ``POST /streams/<n>``, closes it with ``DELETE /streams/<n>`` and stops the service with
``DELETE /``.  Everything a client sees is reported, in order, by ``POST <callbackUrl>/<k>`` with
``k`` = 1, 2, 3... (no gaps: the suite holds back every message after a missing one).

How each instance uses sse_sync:

* ``connect()`` blocks until the response headers are in and raises on a bad first response, so
  each instance connects in its own thread and ``POST /`` answers 201 at once.  A failed first
  connection is reported as an ``error`` callback; if the :class:`~sse_sync.RetryPolicy` says the
  failure is retryable (network error, 408, 429, 5xx) it is tried again after the policy's delay
  and every failed attempt is reported.  ``RetryPolicy(retry_first=True)`` would retry silently,
  and the suite wants errors reported, so the first connection is retried here instead.
* Events, comments and the final error come from the stream's callback mode (``on_unknown``,
  ``on_comment``, ``on_error``) in its dispatch thread (``stream.start()``), which posts the
  callbacks one after another, so they leave in stream order.
* sse_sync reconnects by itself and reports every lost connection and failed attempt to
  ``on_retry`` handlers (a ``restart()`` is not reported: it is no failure).  Each becomes one
  ``error`` callback, as EventSource fires ``onerror`` on every drop: this is what the suite's
  read-timeout test needs (an error, then a new connection).

Standard library only, apart from sse_sync and requests; listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import urlsplit

import requests
import urllib3

import sse_sync
from sse_sync import Event, EventStream, RetryPolicy
from sse_sync.testing._http import LocalHTTPServer, read_chunked_body

__all__ = (
    "CAPABILITIES",
    "CallbackReporter",
    "ContractService",
    "ParamsError",
    "StreamInstance",
    "StreamParams",
    "main",
    "parse_params",
    "serve",
)

NAME = "sse_sync"
CAPABILITIES = (
    "bom",
    "comments",
    "event-type-listeners",
    "headers",
    "last-event-id",
    "post",
    "report",
    "read-timeout",
    "restart",
    "server-directed-shutdown-request",
)
HOST = "127.0.0.1"

DEFAULT_INITIAL_DELAY = 1.0
"""Seconds before a reconnection when the suite sends ``initialDelayMs: null``.

EventSource's usual 3 s, doubled and jittered, would miss the suite's 5 s bound for a
reconnection; one second, doubling to :data:`MAX_DELAY`, stays inside it."""
MAX_DELAY = 4.0
"""Cap of the reconnection backoff, in seconds (below the suite's 5 s bound)."""
CALLBACK_TIMEOUT = (2.0, 5.0)
"""(connect, read) timeout of one callback POST."""
CALLBACK_ATTEMPTS = 3
"""Tries per callback: a lost callback would stall every later one in the suite."""
CLOSE_TIMEOUT = 5.0
"""Seconds to wait for an instance's threads when it is closed."""
MAX_REQUEST_BODY = 1 << 20

RECONNECTED = "the server closed the stream; reconnecting"

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STREAM_PATH = re.compile(r"^/streams/([0-9]+)$")


# -- parameters ------------------------------------------------------------------------------


class ParamsError(ValueError):
    """The ``POST /`` body or a command is not what the protocol allows (answered with 400)."""


@dataclass(frozen=True)
class StreamParams:
    """The ``POST /`` body, checked."""

    stream_url: str
    callback_url: str
    tag: str = ""
    initial_delay_ms: int | None = None
    read_timeout_ms: int | None = None
    last_event_id: str | None = None
    method: str = "GET"
    body: str | None = None
    headers: Mapping[str, str] | None = None

    def retry_policy(self) -> RetryPolicy:
        """Reconnect as the suite expects: at ``initialDelayMs`` (1 s if null), no jitter, the
        body re-sent (the "resends request body" test)."""
        initial = (
            DEFAULT_INITIAL_DELAY if self.initial_delay_ms is None else self.initial_delay_ms / 1000
        )
        return RetryPolicy(
            initial_delay=initial,
            max_delay=max(MAX_DELAY, initial),
            jitter=0.0,
            resend_body=True,
        )

    @property
    def idle_timeout(self) -> float | None:
        """``readTimeoutMs`` in seconds; ``None`` (no timeout) for null or 0."""
        if not self.read_timeout_ms:
            return None
        return self.read_timeout_ms / 1000


def parse_params(obj: object) -> StreamParams:
    """Check the decoded ``POST /`` body; raise :class:`ParamsError` naming what is wrong."""
    if not isinstance(obj, dict):
        raise ParamsError("the parameters must be a JSON object")
    headers = obj.get("headers")
    if headers is not None:
        if not isinstance(headers, dict):
            raise ParamsError("headers must be an object of strings")
        for name, value in headers.items():
            if not isinstance(value, str) or not _TOKEN.match(name):
                raise ParamsError(f"invalid header {name!r}: {value!r}")
            if any(c in value for c in "\r\n\0"):
                raise ParamsError(f"header {name!r} has a CR, LF or NUL in its value")
    method = _optional_str(obj, "method") or "GET"
    if not _TOKEN.match(method):
        raise ParamsError(f"invalid method {method!r}")
    return StreamParams(
        stream_url=_url(obj, "streamUrl"),
        callback_url=_url(obj, "callbackUrl"),
        tag=_optional_str(obj, "tag") or "",
        initial_delay_ms=_optional_ms(obj, "initialDelayMs"),
        read_timeout_ms=_optional_ms(obj, "readTimeoutMs"),
        last_event_id=_optional_str(obj, "lastEventId"),
        method=method,
        body=_optional_str(obj, "body"),
        headers=dict(headers) if headers is not None else None,
    )


def _url(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ParamsError(f"{key} must be a string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ParamsError(f"{key} must be an http(s) URL, not {value!r}")
    return value


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ParamsError(f"{key} must be a string or null")
    return value


def _optional_ms(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParamsError(f"{key} must be a non-negative integer or null, not {value!r}")
    return value


# -- callbacks -------------------------------------------------------------------------------


class CallbackReporter:
    """Posts one instance's callbacks to ``<callbackUrl>/<k>``, k = 1, 2, 3..., one at a time.

    A counter value is taken and its POST made under one lock, so callbacks leave in counter
    order.  Any status is accepted (404 once the suite has torn the endpoint down).  A POST is
    tried again only if its connection could not be made, since the suite would deliver a
    repeated counter twice.  Once ``closed`` is set nothing more is sent.
    """

    def __init__(self, callback_url: str, closed: threading.Event) -> None:
        self._base = callback_url.rstrip("/")
        self._closed = closed
        self._lock = threading.Lock()
        self._counter = 0
        self._session = requests.Session()
        self._session.trust_env = False  # the suite is local: no proxies, no .netrc

    def send(self, message: Mapping[str, Any]) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._counter += 1
            url = f"{self._base}/{self._counter}"
            for _ in range(CALLBACK_ATTEMPTS):
                if self._closed.is_set():
                    return
                try:
                    self._session.post(url, json=message, timeout=CALLBACK_TIMEOUT).close()
                    return
                except requests.RequestException as exc:
                    if not _never_sent(exc):
                        # Perhaps received: the suite delivers a repeated counter twice, so
                        # a retry could add a message.  Give up on this one.
                        return

    def event(self, event: Event) -> None:
        fields = {"type": event.event, "data": event.data, "id": event.id}
        self.send({"kind": "event", "event": fields})

    def comment(self, text: str) -> None:
        self.send({"kind": "comment", "comment": text})

    def error(self, message: str) -> None:
        self.send({"kind": "error", "error": message})

    def close(self) -> None:
        self._session.close()


def _never_sent(exc: requests.RequestException) -> bool:
    # Only a connection that was never made is safe to retry.
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def describe(exc: BaseException) -> str:
    """An error's text for an ``error`` callback: its class and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- instances -------------------------------------------------------------------------------


class StreamInstance:
    """One client created by ``POST /``: an sse_sync stream and its callback reporter."""

    def __init__(self, number: int, params: StreamParams) -> None:
        self.number = number
        self.params = params
        self.listened: set[str] = set()
        """Event types named by ``listen`` commands (sse_sync dispatches every type anyway)."""
        self._policy = params.retry_policy()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream: EventStream | None = None
        self._session = requests.Session()
        self._session.trust_env = False
        self.reporter = CallbackReporter(params.callback_url, self._closed)
        self._thread = threading.Thread(
            target=self._run, name=f"contract-instance-{number}", daemon=True
        )

    @property
    def path(self) -> str:
        return f"/streams/{self.number}"

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        self._thread.start()

    # -- the connecting thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            stream = self._connect()
            if stream is None:
                return
            stream.on_retry(self._on_retry)
            stream.on_unknown(self.reporter.event)
            stream.on_comment(self.reporter.comment)
            stream.on_error(self._on_error)
            with self._lock:
                if not self._closed.is_set():
                    self._stream = stream
                    stream.start(handler_errors="continue")
                    return
            stream.close(CLOSE_TIMEOUT)  # closed while connecting
        finally:
            if self._closed.is_set():
                self._release()

    def _connect(self) -> EventStream | None:
        # The first connection, retried here (not by retry_first) so each failure is reported.
        params = self.params
        failures = 0
        rng = random.Random()
        while not self._closed.is_set():
            try:
                return sse_sync.connect(
                    params.stream_url,
                    method=params.method,
                    session=self._session,
                    headers=params.headers,
                    data=None if params.body is None else params.body.encode("utf-8"),
                    last_event_id=params.last_event_id,
                    retry=self._policy,
                    idle_timeout=params.idle_timeout,
                    comments=True,
                )
            except Exception as exc:
                self.reporter.error(describe(exc))
                if not self._policy.should_retry(exc):
                    return None
                failures += 1
                if self._closed.wait(self._policy.delay(failures, None, rng)):
                    return None
        return None

    # -- handlers, in the stream's dispatch thread -----------------------------------------

    def _on_retry(self, exc: BaseException | None, delay: float) -> None:
        self.reporter.error(RECONNECTED if exc is None else describe(exc))

    def _on_error(self, exc: BaseException) -> None:
        self.reporter.error(describe(exc))

    # -- commands --------------------------------------------------------------------------

    def restart(self) -> None:
        """Drop the connection and reconnect at once; the reconnection is not an error."""
        with self._lock:
            stream = self._stream
            if stream is None or self._closed.is_set() or stream.done:
                return  # still connecting (a new connection is coming anyway) or over
        stream.restart()

    def listen(self, event_type: str) -> None:
        with self._lock:
            self.listened.add(event_type)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Cancel and close the stream, wait for its threads; nothing is reported afterwards."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed.set()
            stream = self._stream
        if stream is not None:
            stream.close(timeout)
            stream.wait(max(deadline - time.monotonic(), 0.0))
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(max(deadline - time.monotonic(), 0.0))
        if not self._thread.is_alive():
            # Otherwise it is still inside connect(); it releases everything when that returns.
            self._release()

    def _release(self) -> None:
        self.reporter.close()
        self._session.close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the connecting thread; ``True`` if it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


# -- the HTTP service ------------------------------------------------------------------------


class _HTTPServer(LocalHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins every handler thread

    def __init__(self, port: int, service: ContractService) -> None:
        self.service = service
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return  # the suite hung up; nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so server_close() never waits on an idle
    # keep-alive connection.  Every response has a Content-Length all the same.
    protocol_version = "HTTP/1.0"
    server_version = "sse_sync-contract-service"
    timeout = 10.0  # a client that stalls mid-request must not hold up server_close()

    @property
    def service(self) -> ContractService:
        return cast(_HTTPServer, self.server).service

    def log_message(self, format: str, *args: Any) -> None:
        if self.service.verbose:
            super().log_message(format, *args)

    # -- plumbing --------------------------------------------------------------------------

    def _reply(
        self,
        status: int,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.wfile.flush()

    def _fail(self, status: HTTPStatus, message: str) -> None:
        self._reply(status, {"error": message})

    def _read_json(self) -> object:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise ParamsError("invalid Content-Length") from None
            if length < 0 or length > MAX_REQUEST_BODY:
                raise ParamsError("request body missing or too large")
            data = self.rfile.read(length)
        try:
            return json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParamsError(f"the body is not valid JSON: {exc}") from None

    def _read_chunked(self) -> bytes:
        try:
            return read_chunked_body(self.rfile, max_size=MAX_REQUEST_BODY, max_line=1024)
        except EOFError:
            raise ParamsError("malformed chunked body: it ends early") from None
        except ValueError as exc:
            raise ParamsError(str(exc)) from None

    def _route(self) -> tuple[str, StreamInstance | None] | None:
        # ("root", None), ("stream", instance or None for an unknown number), or None.
        path = urlsplit(self.path).path
        if path == "/":
            return "root", None
        match = _STREAM_PATH.match(path)
        if match:
            return "stream", self.service.instance(int(match.group(1)))
        return None

    def _handle(self, method: str) -> None:
        try:
            route = self._route()
            if route is None:
                self._fail(HTTPStatus.NOT_FOUND, f"no such resource: {self.path}")
                return
            kind, instance = route
            endpoint = getattr(self, f"_{kind}_{method}", None)
            if endpoint is None:
                self._fail(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} not allowed on {self.path}"
                )
            elif kind == "root":
                endpoint()
            elif instance is None:
                self._fail(HTTPStatus.NOT_FOUND, f"no such stream: {self.path}")
            else:
                endpoint(instance)
        except ParamsError as exc:
            self._fail(HTTPStatus.BAD_REQUEST, str(exc))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            raise
        except Exception as exc:
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, describe(exc))

    def do_GET(self) -> None:
        self._handle("get")

    def do_POST(self) -> None:
        self._handle("post")

    def do_DELETE(self) -> None:
        self._handle("delete")

    # -- endpoints -------------------------------------------------------------------------

    def _root_get(self) -> None:
        self._reply(HTTPStatus.OK, {"name": NAME, "capabilities": list(CAPABILITIES)})

    def _root_post(self) -> None:
        params = parse_params(self._read_json())
        instance = self.service.create(params)
        if instance is None:
            self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "the service is stopping")
            return
        self._reply(HTTPStatus.CREATED, None, {"Location": instance.path})

    def _root_delete(self) -> None:
        self._reply(HTTPStatus.NO_CONTENT)
        self.service.stop_soon()

    def _stream_post(self, instance: StreamInstance) -> None:
        command = self._read_json()
        if not isinstance(command, dict) or not isinstance(command.get("command"), str):
            raise ParamsError('a command is a JSON object with a "command" string')
        name = command["command"]
        if name == "restart":
            instance.restart()
        elif name == "listen":
            listen = command.get("listen")
            if not isinstance(listen, dict) or not isinstance(listen.get("type"), str):
                raise ParamsError('"listen" needs {"listen": {"type": "<event type>"}}')
            instance.listen(listen["type"])
        else:
            raise ParamsError(f"unknown command {name!r}")
        self._reply(HTTPStatus.NO_CONTENT)

    def _stream_delete(self, instance: StreamInstance) -> None:
        self.service.close(instance)
        self._reply(HTTPStatus.NO_CONTENT)


class ContractService:
    """The running service: an HTTP server on 127.0.0.1 and the instances it created.

    Made and started by :func:`serve`.  :meth:`stop` (also run by ``DELETE /``) closes every
    instance, stops the server and joins its threads; :meth:`wait` waits for that.
    """

    def __init__(self, port: int = 0, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self._lock = threading.Lock()
        self._instances: dict[int, StreamInstance] = {}
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._serve_thread: threading.Thread | None = None
        self._stop_thread: threading.Thread | None = None
        self._httpd = _HTTPServer(port, self)

    @property
    def port(self) -> int:
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash (the suite's base URL)."""
        return f"http://{HOST}:{self.port}"

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def start(self) -> ContractService:
        with self._lock:
            if self._serve_thread is not None or self._stopping.is_set():
                raise RuntimeError("the service can be started only once")
            self._serve_thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"contract-service-{self.port}",
                daemon=True,
            )
            self._serve_thread.start()
        return self

    # -- instances -------------------------------------------------------------------------

    def create(self, params: StreamParams) -> StreamInstance | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            instance = StreamInstance(next(self._numbers), params)
            self._instances[instance.number] = instance
            instance.start()
        return instance

    def instance(self, number: int) -> StreamInstance | None:
        with self._lock:
            return self._instances.get(number)

    def instances(self) -> list[StreamInstance]:
        with self._lock:
            return list(self._instances.values())

    def close(self, instance: StreamInstance) -> None:
        with self._lock:
            self._instances.pop(instance.number, None)
        instance.close()

    # -- stopping --------------------------------------------------------------------------

    def stop_soon(self) -> None:
        """Stop from another thread (a request handler cannot wait for its own server)."""
        with self._lock:
            if self._stopping.is_set() or self._stop_thread is not None:
                return
            self._stop_thread = threading.Thread(
                target=self.stop, name=f"contract-service-{self.port}-stop", daemon=True
            )
            self._stop_thread.start()

    def stop(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close every instance, stop serving and join the threads.  Idempotent."""
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            instances = list(self._instances.values())
            self._instances.clear()
            stopper = self._stop_thread
        if first:
            for instance in instances:
                instance.close(timeout)
            if self._serve_thread is not None:
                self._httpd.shutdown()
                self._serve_thread.join(timeout)
            self._httpd.server_close()  # joins the request handler threads
            for instance in instances:
                instance.join(timeout)
            self._stopped.set()
        else:
            self._stopped.wait(timeout)
        if stopper is not None and stopper is not threading.current_thread():
            stopper.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the service has stopped (after ``DELETE /``); ``True`` if it has."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> ContractService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "stopping" if self._stopping.is_set() else "up"
        return f"<ContractService {self.url} {state}, {len(self.instances())} instance(s)>"


def serve(port: int = 0, *, verbose: bool = False) -> ContractService:
    """Start the service on ``127.0.0.1:port`` (0: any free port) in a background thread."""
    return ContractService(port, verbose=verbose).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.contract.service",
        description="sse_sync's test service for the SSE contract-test suite (127.0.0.1 only).",
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    service = serve(args.port, verbose=args.verbose)
    print(f"sse_sync contract-test service listening on {service.url}", flush=True)
    try:
        while not service.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
