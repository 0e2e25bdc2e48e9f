"""The threaded NDJSON client: :func:`connect_ndjson` and :class:`NDJSONStream`.

The stream machinery (reader thread, bounded queue, cancel, errors, limits) is the SSE client's;
only the decoder and the accepted media types differ.  This module imports requests, so
``_ndjson`` loads it only on first use.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Mapping
from typing import Any

import requests

from ._client import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_TIMEOUT,
    Timeout,
    _open,
    _Stream,
)
from ._ndjson import DEFAULT_MAX_NDJSON_LINE_LENGTH, NDJSON_MEDIA_TYPES, NDJSONDecoder
from ._retry import RetryPolicy

__all__ = ("NDJSONStream", "connect_ndjson")

_ACCEPT = ", ".join(NDJSON_MEDIA_TYPES)


class NDJSONStream(_Stream[Any]):
    """An open NDJSON stream: iterate it for the decoded values, one per line.

    Made by :func:`connect_ndjson`.  Iteration, :meth:`next_event`, :meth:`cancel`,
    :meth:`restart`, :meth:`close`, :meth:`stats`, ``on_open``, ``on_retry`` and the context
    manager work as on :class:`EventStream`.  An invalid line ends the stream with
    :class:`NDJSONDecodeError`, after the values before it.  Values have no event type, so
    there is no callback dispatch (``on``, ``run``, ``start``): iterate instead.
    """


def connect_ndjson(
    url: str,
    *,
    method: str = "GET",
    session: requests.Session | None = None,
    headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
    params: Any = None,
    data: Any = None,
    json: Any = None,
    retry: RetryPolicy | None = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    idle_timeout: float | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    max_line_length: int | None = DEFAULT_MAX_NDJSON_LINE_LENGTH,
    loads: Callable[[str], Any] = _json.loads,
    **request_kwargs: Any,
) -> NDJSONStream:
    """Open an NDJSON stream and return once its response headers have arrived.

    Sends ``Accept`` with every NDJSON media type and requires a ``Content-Type`` among
    :data:`NDJSON_MEDIA_TYPES`.  Parameters are those of :func:`connect`, except:

    :param retry: ``None`` by default: NDJSON has no event IDs, so a reconnect cannot resume
        where the stream broke; it sends the request again and the server starts over.  Pass
        a :class:`RetryPolicy` only where that is right (a live feed with no history).
    :param idle_timeout: end the stream with :class:`IdleTimeout` when no complete line
        arrives for this many seconds.
    :param max_line_length: longest line accepted, in bytes (1 MiB by default); ``None`` for no
        limit.  A longer line ends the stream with :class:`LineTooLong`.
    :param loads: parses one line into a value (see :class:`NDJSONDecoder`).
    :raises ConnectError, ReadTimeout, HTTPStatusError, ContentTypeError, RequestError:
    """
    decoder = NDJSONDecoder(max_line_length=max_line_length, loads=loads)
    return _open(
        NDJSONStream,
        decoder,
        url,
        accept=_ACCEPT,
        media_types=NDJSON_MEDIA_TYPES,
        method=method,
        session=session,
        headers=headers,
        params=params,
        data=data,
        json=json,
        retry=retry,
        timeout=timeout,
        idle_timeout=idle_timeout,
        comments=False,
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        request_kwargs=request_kwargs,
        caller="connect_ndjson",
    )
