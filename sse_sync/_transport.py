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
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from urllib3.exceptions import DecodeError as _Urllib3DecodeError
from urllib3.exceptions import HTTPError as _Urllib3Error
from urllib3.exceptions import ReadTimeoutError as _Urllib3ReadTimeout

from ._errors import (
    ConnectError,
    ContentTypeError,
    HTTPStatusError,
    ReadTimeout,
    RequestError,
    SSEError,
    StreamError,
)

__all__ = ("Connection", "build_headers", "open_connection")

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
    :class:`ReadTimeout` (no headers in time), :class:`HTTPStatusError` (not 2xx),
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
    if not 200 <= status < 300:
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
