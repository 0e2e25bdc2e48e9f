"""The requests/urllib3 edge: open a streaming response, read its body, wake a blocked read.

This is the only module that imports requests or urllib3.  Their exceptions are translated here,
once, into sse_sync's (the original chained as ``__cause__``), so no other module needs to know
which HTTP stack is underneath.

Reading: an uncompressed body is read straight from the socket's buffered file with
``read1()``, chunked framing parsed here, so each piece is handed over as soon as it arrives
(``iter_content`` and ``stream(n)`` wait for ``n`` bytes on a close-delimited body, and
urllib3's ``read_chunked(n)`` for ``n`` bytes of a large chunk: both stall events).  A
compressed body goes through urllib3's ``read1(n, decode_content=True)``.  Every read is given
an upper bound, so neither a huge chunk nor a gzip bomb is ever materialised in one piece.
"""

from __future__ import annotations

import http.client
import re
import socket
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from urllib3.exceptions import ConnectTimeoutError as _Urllib3ConnectTimeout
from urllib3.exceptions import DecodeError as _Urllib3DecodeError
from urllib3.exceptions import HTTPError as _Urllib3Error
from urllib3.exceptions import LocationParseError as _Urllib3LocationParseError
from urllib3.exceptions import NameResolutionError as _Urllib3NameResolutionError
from urllib3.exceptions import NewConnectionError as _Urllib3NewConnectionError
from urllib3.exceptions import ReadTimeoutError as _Urllib3ReadTimeout
from urllib3.util.connection import allowed_gai_family as _allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from ._errors import (
    ConnectError,
    ContentTypeError,
    HTTPStatusError,
    ReadTimeout,
    RequestError,
    SSEError,
    StreamError,
)

__all__ = ("Connection", "Tracker", "Transport", "build_headers", "open_connection")

READ_SIZE = 1 << 18
PREVIEW_BYTES = 4096
PREVIEW_SECONDS = 2.0


def build_headers(
    headers: Mapping[str, str] | None, last_event_id: str, accept: str = "text/event-stream"
) -> dict[str, Any]:
    """Request headers for one attempt: the SSE ones, the caller's, then ``Last-Event-ID``.

    The caller's mapping is copied, never mutated.  ``Last-Event-ID`` is sent UTF-8 encoded (as
    browsers do) and only when non-empty; a value that could inject a header is refused.
    """
    result: dict[str, Any] = {"Accept": accept, "Cache-Control": "no-cache"}
    if headers:
        for name, value in headers.items():
            _check_header(name, value)
            result[name] = value
    if last_event_id:
        if any(c in last_event_id for c in "\r\n\0"):
            raise RequestError("Last-Event-ID must not contain CR, LF or NUL")
        # HTTP parsers drop surrounding whitespace anyway; requests refuses to send it.
        value = last_event_id.strip(" \t")
        if value:
            result["Last-Event-ID"] = value.encode("utf-8")
    return result


def _check_header(name: str, value: object) -> None:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        raise RequestError(f"header {name!r} must be str or bytes, not {type(value).__name__}")
    if any(c in text for c in "\r\n\0") or any(c in name for c in "\r\n\0:"):
        raise RequestError(f"header {name!r} has a CR, LF or NUL in its name or value")


def open_connection(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: dict[str, Any],
    timeout: tuple[float | None, float | None],
    read_size: int = READ_SIZE,
    media_types: tuple[str, ...] = ("text/event-stream",),
    **kwargs: Any,
) -> Connection:
    """Send the request and check that the answer is an event stream.

    Returns once the response headers are in.  Raises :class:`ConnectError`,
    :class:`ReadTimeout` (no headers in time), :class:`HTTPStatusError` (not 200),
    :class:`ContentTypeError` or :class:`RequestError`.  A 204 is returned as a connection
    whose body is empty: it is the server's way of saying "stop", not an error.
    """
    try:
        response = session.request(
            method, url, headers=headers, stream=True, timeout=timeout, **kwargs
        )
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
        requests.exceptions.URLRequired,
        requests.exceptions.InvalidJSONError,
    ) as exc:
        raise RequestError(f"cannot send the request: {_scrub(str(exc))}") from _scrub_chain(exc)
    except requests.exceptions.ReadTimeout as exc:
        raise ReadTimeout(f"no response headers from {_safe_url(url)} in time") from _scrub_chain(
            exc
        )
    except requests.exceptions.ConnectTimeout as exc:
        raise ConnectError(f"connecting to {_safe_url(url)} timed out") from _scrub_chain(exc)
    except requests.exceptions.TooManyRedirects as exc:
        # A redirect loop is the server's answer, not a network failure: retrying cannot help.
        last = exc.response
        raise HTTPStatusError(
            f"too many redirects from {_safe_url(url)}",
            status_code=last.status_code if last is not None else 0,
            headers=dict(last.headers) if last is not None else {},
            url=_safe_url(last.url) if last is not None else _safe_url(url),
        ) from _scrub_chain(exc)
    except requests.exceptions.RequestException as exc:
        message = f"cannot connect to {_safe_url(url)}: {_reason(exc)}"
        raise ConnectError(message) from _scrub_chain(exc)
    except (TypeError, ValueError, UnicodeError, _Urllib3LocationParseError) as exc:
        # Raised while the request is prepared (a body or header requests cannot encode):
        # nothing was sent, and sending it again cannot help.
        message = f"cannot send the request: {type(exc).__name__}: {_scrub(str(exc))}"
        raise RequestError(message) from _scrub_chain(exc)
    try:
        _check_response(response, media_types)
    except BaseException:
        response.close()
        raise
    return Connection(response, read_size)


def _check_response(response: requests.Response, media_types: tuple[str, ...]) -> None:
    status = response.status_code
    url = _safe_url(response.url)
    if status == 204:
        return
    # As in EventSource, 200 is the only status that opens a stream.
    if status != 200:
        raise HTTPStatusError(
            f"HTTP {status} {response.reason or ''} from {url}".replace("  ", " "),
            status_code=status,
            headers=dict(response.headers),
            url=url,
            body=_preview(response),
        )
    content_type = response.headers.get("Content-Type", "")
    if content_type.split(";", 1)[0].strip().lower() not in media_types:
        raise ContentTypeError(
            f"expected Content-Type {' or '.join(media_types)} from {url}, "
            f"got {content_type or 'none'!r}",
            status_code=status,
            headers=dict(response.headers),
            url=url,
            body=_preview(response),
        )


def _preview(response: requests.Response) -> str:
    # A few KiB of an error body helps a user see why; a stalled server must not hold us up.
    raw = response.raw
    try:
        sock = _socket_of(raw)
        if sock is not None:
            sock.settimeout(PREVIEW_SECONDS)
        data = raw.read1(PREVIEW_BYTES) if isinstance(raw, urllib3.BaseHTTPResponse) else b""
    except Exception:
        return ""
    return data.decode("utf-8", "replace")


def _socket_of(raw: object) -> socket.socket | None:
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _socket_file(raw: object) -> tuple[Any, bool, int | None] | None:
    """The buffered socket file under an uncompressed urllib3 response, with its framing.

    Reading it directly hands over every byte as it arrives, chunked or not: urllib3's
    ``read_chunked`` waits for ``amt`` bytes of a large chunk, and its ``read1`` costs about
    three times as much per HTTP chunk as this loop.  The connection is never reused after a
    stream, so bypassing http.client's framing state is safe.
    """
    if not isinstance(raw, urllib3.HTTPResponse):
        return None
    encoding = raw.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        return None
    inner = getattr(raw, "_fp", None)
    if not isinstance(inner, http.client.HTTPResponse) or inner.fp is None:
        return None
    if not hasattr(inner.fp, "read1"):
        return None
    return inner.fp, bool(inner.chunked), inner.length


_HEX = b"0123456789abcdefABCDEF"
_MAX_CHUNK_LINE = 4096


def _direct_chunks(fp: Any, chunked: bool, length: int | None, size: int) -> Iterator[bytes]:
    read1 = fp.read1
    if not chunked:
        # Close-delimited (length None) or Content-Length framing.
        while length is None or length > 0:
            data = read1(size if length is None or length > size else length)
            if not data:
                if length:
                    raise StreamError(f"the stream ended {length} bytes before its length")
                return
            if length is not None:
                length -= len(data)
            yield data
        return
    yield from _unchunk(read1, size)


def _unchunk(read1: Any, size: int) -> Iterator[bytes]:
    # Every network read is parsed whole: the payload of all the chunks it holds, and what has
    # come of an unfinished one, goes on as one piece.  A readline()/read1() pair per chunk
    # would cost three buffered calls, a decoder feed and a queue hand-off for each event.
    carry = b""  # an unfinished chunk-size line (or CRLF) from the previous read
    left = 0  # payload bytes still due in the current chunk
    crlf = False  # the CRLF that ends a chunk's payload is still due
    while True:
        buf = read1(size)
        if not buf:
            raise StreamError(
                "the stream ended inside a chunk" if left else "the stream ended between chunks"
            )
        if carry:
            buf = carry + buf
            carry = b""
        pieces = []
        pos = 0
        end = len(buf)
        while pos < end:
            if left:
                stop = pos + left
                if stop > end:
                    pieces.append(buf[pos:] if pos else buf)
                    left = stop - end
                    break
                pieces.append(buf[pos:stop])
                pos = stop
                left = 0
                crlf = True
                continue
            newline = buf.find(b"\n", pos)
            if newline < 0:
                carry = buf[pos:]
                if len(carry) > _MAX_CHUNK_LINE:
                    raise StreamError("chunk header too long")
                break
            line = buf[pos:newline]
            pos = newline + 1
            if crlf:
                if line not in (b"", b"\r"):
                    raise StreamError("a chunk was not followed by CRLF")
                crlf = False
                continue
            digits = line.split(b";", 1)[0].strip()
            if not digits or digits.strip(_HEX):
                raise StreamError(f"invalid chunk size {digits[:20]!r}")
            left = int(digits, 16)
            if not left:
                # The last chunk: trailers carry nothing for us, and the connection is
                # never reused after a stream, so they are not read.
                if pieces:
                    yield b"".join(pieces)
                return
        if pieces:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _safe_url(url: str) -> str:
    # Query strings and user:password@ often carry secrets: keep them out of messages.
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "?..." if parts.query else ""
    return (
        f"{parts.scheme}://{netloc}{parts.path}{query}" if parts.scheme else url.partition("?")[0]
    )


def _reason(exc: BaseException) -> str:
    # requests nests urllib3's MaxRetryError, which nests the socket error a user needs to see.
    inner = exc
    for _ in range(8):
        nested = getattr(inner, "reason", None)
        if not isinstance(nested, BaseException) and inner.args:
            nested = inner.args[0]
        if not isinstance(nested, BaseException):
            break
        inner = nested
    return _scrub(f"{type(inner).__name__}: {inner}")


def _scrub_chain(exc: BaseException) -> BaseException:
    """Scrub secrets from the messages of ``exc`` and the exceptions nested in it, in place.

    The original stays chained as ``__cause__`` (its type and attributes are what a user
    debugs with), but ``logger.exception()`` prints the chain, and urllib3's messages carry
    the request path with its query string.
    """
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen or len(seen) > 16:
            continue
        seen.add(id(item))
        item.args = tuple(_scrub(a) if isinstance(a, str) else a for a in item.args)
        url = getattr(item, "url", None)
        if isinstance(url, str):
            try:
                item.url = _scrub(url)  # type: ignore[attr-defined]
            except AttributeError:
                pass
        todo.extend((getattr(item, "reason", None), item.__cause__, item.__context__, *item.args))
    return exc


def _scrub(text: str) -> str:
    # urllib3 messages embed the request path, query string included, and the URL's userinfo.
    text = _USERINFO.sub(r"\1", text)
    return _QUERY.sub("?...", text)


_USERINFO = re.compile(r"(://)[^/@\s]*@")
_QUERY = re.compile(r"\?[^\s'\")]*")


class Connection:
    """One open event-stream response: its status, headers, body chunks and a way to wake it."""

    def __init__(self, response: requests.Response, read_size: int = READ_SIZE) -> None:
        self.response = response
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self.url: str = response.url
        self._read_size = read_size

    def chunks(self) -> Iterator[bytes]:
        """Yield the body in pieces as they arrive; errors are sse_sync errors."""
        if self.status == 204:
            return
        raw = self.response.raw
        size = self._read_size
        try:
            direct = _socket_file(raw)
            if direct is not None:
                yield from _direct_chunks(*direct, size)
            elif not isinstance(raw, urllib3.BaseHTTPResponse):
                # A custom adapter's response: the generic path is all we can rely on.
                yield from self.response.iter_content(None)
            else:
                # Compressed bodies: urllib3 decodes them, bounded by size per call.
                read1 = raw.read1
                while chunk := read1(size, decode_content=True):
                    yield chunk
        except SSEError:
            raise
        except (_Urllib3ReadTimeout, requests.exceptions.ReadTimeout, TimeoutError) as exc:
            raise ReadTimeout("no bytes arrived within the read timeout") from exc
        except _Urllib3DecodeError as exc:
            raise StreamError(f"cannot decode the response's content encoding: {exc}") from exc
        except (
            _Urllib3Error,
            requests.exceptions.RequestException,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as exc:
            raise StreamError(f"the stream broke: {_reason(exc)}") from _scrub_chain(exc)

    def interrupt(self) -> None:
        """Wake a read blocked in another thread (it then sees end of stream). Thread-safe."""
        raw = self.response.raw
        try:
            if isinstance(raw, urllib3.BaseHTTPResponse):
                raw.shutdown()
                return
        except Exception:
            pass
        sock = _socket_of(raw)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the response and its connection (an unfinished stream cannot go back to a pool)."""
        try:
            self.response.close()
        except Exception:
            pass


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Tracker:
    """The sockets of one connection attempt, so that another thread can wake it at once.

    Each socket is registered before it connects, as a duplicate descriptor of the same
    socket: shutting that down wakes whatever blocks on the socket (connect, TLS handshake,
    the wait for response headers, a body read), even after TLS has wrapped the original
    object.  :meth:`interrupt` takes no lock and never blocks, so a finalizer may call it.
    """

    __slots__ = ("_socks", "stopped")

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []
        self.stopped = False

    def add(self, sock: socket.socket) -> None:
        try:
            dup = sock.dup()
        except OSError:
            return
        self._socks.append(dup)
        # Registered first, then the flag read: interrupt() sets the flag first, then reads
        # the list, so one of the two always sees the other.
        if self.stopped:
            _shutdown(dup)

    def interrupt(self) -> None:
        """Shut down every socket of the attempt, now and any it opens later."""
        self.stopped = True
        for sock in list(self._socks):
            _shutdown(sock)

    def close(self) -> None:
        """Close the duplicate descriptors (the attempt's own sockets are closed with it)."""
        socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()


class _Slot:
    """The tracker of the attempt in progress, read by the connections the stream opens."""

    __slots__ = ("tracker",)

    def __init__(self) -> None:
        self.tracker: Tracker | None = None


def _create_connection(
    address: tuple[str, int],
    timeout: Any,
    source_address: tuple[str, int] | None,
    socket_options: Any,
    tracker: Tracker,
) -> socket.socket:
    # urllib3's create_connection, but each socket is registered before it connects, so a
    # connect that hangs (a full backlog, a silent host) can be woken.
    host, port = address
    if host.startswith("["):
        host = host.strip("[]")
    try:
        host.encode("idna")
    except UnicodeError:
        raise _Urllib3LocationParseError(f"'{host}', label empty or too long") from None
    error: OSError | None = None
    for family, kind, proto, _, target in socket.getaddrinfo(
        host, port, _allowed_gai_family(), socket.SOCK_STREAM
    ):
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            tracker.add(sock)
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(target)
            if tracker.stopped:
                raise OSError("the connection attempt was cancelled")
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    if error is not None:
        raise error
    raise OSError("getaddrinfo returns an empty list")


_BASE_NEW_CONN = urllib3.connection.HTTPConnection._new_conn


def _tracked_class(base: type[Any], slot: _Slot) -> type[Any]:
    """A subclass of the connection class ``base`` whose sockets register with ``slot``."""
    exact = base._new_conn is _BASE_NEW_CONN

    def _new_conn(self: Any) -> socket.socket:
        tracker = slot.tracker
        if tracker is None:
            sock: socket.socket = base._new_conn(self)
            return sock
        if not exact:
            # A connection class with its own way to connect (SOCKS): wakeable once connected.
            sock = base._new_conn(self)
            tracker.add(sock)
            return sock
        try:
            sock = _create_connection(
                (self._dns_host, self.port),
                self.timeout,
                self.source_address,
                self.socket_options,
                tracker,
            )
        except socket.gaierror as exc:
            raise _Urllib3NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise _Urllib3ConnectTimeout(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise _Urllib3NewConnectionError(
                self, f"Failed to establish a new connection: {exc}"
            ) from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    return type(base.__name__, (base,), {"_new_conn": _new_conn, "__module__": __name__})


def _hook_manager(manager: Any, slot: _Slot, classes: dict[type[Any], type[Any]]) -> None:
    # Each pool the manager makes gets a tracked connection class.
    if not isinstance(manager, urllib3.PoolManager) or "_new_pool" in vars(manager):
        return
    original = manager._new_pool

    def _new_pool(scheme: str, host: str, port: int, request_context: Any = None) -> Any:
        pool = original(scheme, host, port, request_context)
        base = getattr(pool, "ConnectionCls", None)
        if isinstance(base, type) and issubclass(base, urllib3.connection.HTTPConnection):
            if base not in classes:
                classes[base] = _tracked_class(base, slot)
            pool.ConnectionCls = classes[base]
        return pool

    manager._new_pool = _new_pool  # type: ignore[method-assign]


def _clone_adapter(
    adapter: object, slot: _Slot, classes: dict[type[Any], type[Any]]
) -> requests.adapters.HTTPAdapter | None:
    """A private copy of a user's ``HTTPAdapter`` (subclasses included), with its own pools
    whose connections register with ``slot``; ``None`` where that cannot be done safely."""
    if not isinstance(adapter, requests.adapters.HTTPAdapter):
        return None
    try:
        clone: Any = object.__new__(type(adapter))
        # Every attribute, not only __attrs__: a subclass's init_poolmanager may use its own
        # (an SSL context, a source address).
        clone.__dict__.update(adapter.__dict__)
        clone.proxy_manager = {}
        clone.init_poolmanager(
            clone._pool_connections, clone._pool_maxsize, block=clone._pool_block
        )
    except Exception:
        return None
    if not isinstance(getattr(clone, "poolmanager", None), urllib3.PoolManager):
        return None
    _hook_manager(clone.poolmanager, slot, classes)
    make_proxy_manager = clone.proxy_manager_for

    def proxy_manager_for(proxy: str, **proxy_kwargs: Any) -> Any:
        manager = make_proxy_manager(proxy, **proxy_kwargs)
        _hook_manager(manager, slot, classes)
        return manager

    clone.proxy_manager_for = proxy_manager_for
    adapter_copy: requests.adapters.HTTPAdapter = clone
    return adapter_copy


class Transport:
    """The session a stream sends its requests with: the user's session, seen through private
    copies of its ``HTTPAdapter``\\ s, so that every socket of the stream can be shut down from
    another thread and closed when the stream ends.

    The user's session is not changed: the view shares its headers, cookies, auth, proxies,
    hooks and settings; only the adapters (and so the connection pools) are the stream's own.
    An adapter that is not an ``HTTPAdapter`` is used as it is: its requests cannot be woken
    (``reachable`` is then False for the URL), only bounded by the timeouts.
    """

    def __init__(self, session: requests.Session, url: str) -> None:
        self._slot = _Slot()
        self._clones: list[requests.adapters.HTTPAdapter] = []
        classes: dict[type[Any], type[Any]] = {}
        view = session
        try:
            adapters: OrderedDict[str, Any] = OrderedDict()
            for prefix, adapter in session.adapters.items():
                clone = _clone_adapter(adapter, self._slot, classes)
                if clone is not None:
                    self._clones.append(clone)
                adapters[prefix] = adapter if clone is None else clone
            view = object.__new__(type(session))
            view.__dict__.update(session.__dict__)
            view.adapters = adapters
        except Exception:
            view = session
        self.session = view
        try:
            self.reachable = any(view.get_adapter(url) is clone for clone in self._clones)
        except Exception:
            self.reachable = False

    def open(self, tracker: Tracker, method: str, url: str, **kwargs: Any) -> Connection:
        """:func:`open_connection` through the stream's pools, its sockets kept in ``tracker``."""
        self._slot.tracker = tracker
        try:
            return open_connection(self.session, method, url, **kwargs)
        finally:
            self._slot.tracker = None

    def release(self) -> None:
        """Close every pooled connection (after a failed attempt, or at the end)."""
        for clone in self._clones:
            for manager in (clone.poolmanager, *clone.proxy_manager.values()):
                _close_pools(manager)


def _close_pools(manager: Any) -> None:
    # PoolManager.clear() forgets its pools without closing them (urllib3 2.x): their idle
    # keep-alive connections would stay open until the pools are garbage-collected.
    try:
        container = manager.pools
        # RecentlyUsedContainer refuses iteration; keys() is its thread-safe copy.
        pools = [container.get(key) for key in container.keys()]  # noqa: SIM118
        manager.clear()
    except Exception:
        return
    for pool in pools:
        if pool is not None:
            try:
                pool.close()
            except Exception:
                pass
