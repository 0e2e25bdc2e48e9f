"""sse_sync: a synchronous, threaded Server-Sent Events client with a spec-exact decoder.

The client names (``connect``, ``EventStream``, ...) are loaded on first use, so that the
decoder, encoder and models can be used without importing requests or urllib3.
"""

import logging
from typing import TYPE_CHECKING, Any

from ._decoder import DEFAULT_MAX_EVENT_SIZE as DEFAULT_MAX_EVENT_SIZE
from ._decoder import DEFAULT_MAX_LINE_LENGTH as DEFAULT_MAX_LINE_LENGTH
from ._decoder import SSEDecoder as SSEDecoder
from ._decoder import decode as decode
from ._decoder import iter_events as iter_events
from ._dispatch import handler_method_name as handler_method_name
from ._encoder import HEARTBEAT as HEARTBEAT
from ._encoder import SSE_HEADERS as SSE_HEADERS
from ._encoder import EventWriter as EventWriter
from ._encoder import encode as encode
from ._encoder import encode_event as encode_event
from ._errors import ConnectError as ConnectError
from ._errors import ContentTypeError as ContentTypeError
from ._errors import DecodeError as DecodeError
from ._errors import EventJSONError as EventJSONError
from ._errors import EventTooLarge as EventTooLarge
from ._errors import HTTPStatusError as HTTPStatusError
from ._errors import IdleTimeout as IdleTimeout
from ._errors import LimitExceeded as LimitExceeded
from ._errors import LineTooLong as LineTooLong
from ._errors import NDJSONDecodeError as NDJSONDecodeError
from ._errors import ReadTimeout as ReadTimeout
from ._errors import RequestError as RequestError
from ._errors import ResponseError as ResponseError
from ._errors import RetriesExhausted as RetriesExhausted
from ._errors import SendTimeout as SendTimeout
from ._errors import SSEError as SSEError
from ._errors import StreamError as StreamError
from ._errors import WriterClosed as WriterClosed
from ._models import Comment as Comment
from ._models import Event as Event
from ._ndjson import NDJSON_MEDIA_TYPES as NDJSON_MEDIA_TYPES
from ._ndjson import NDJSONDecoder as NDJSONDecoder
from ._ndjson import decode_ndjson as decode_ndjson
from ._ndjson import encode_ndjson as encode_ndjson
from ._ndjson import iter_ndjson as iter_ndjson
from ._retry import RetryPolicy as RetryPolicy
from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._client import DEFAULT_RETRY as DEFAULT_RETRY
    from ._client import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
    from ._client import EventStream as EventStream
    from ._client import StreamStats as StreamStats
    from ._client import connect as connect
    from ._ndjson_client import NDJSONStream as NDJSONStream
    from ._ndjson_client import connect_ndjson as connect_ndjson

# Silent unless the application configures logging (as urllib3 and requests do).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_CLIENT_NAMES = frozenset(
    {"DEFAULT_RETRY", "DEFAULT_TIMEOUT", "EventStream", "StreamStats", "connect"}
)


_NDJSON_CLIENT_NAMES = frozenset({"NDJSONStream", "connect_ndjson"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from . import _client as module
    elif name in _NDJSON_CLIENT_NAMES:
        from . import _ndjson_client as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'sse_sync' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = (
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "HEARTBEAT",
    "NDJSON_MEDIA_TYPES",
    "SSE_HEADERS",
    "Comment",
    "ConnectError",
    "ContentTypeError",
    "DecodeError",
    "Event",
    "EventJSONError",
    "EventStream",
    "EventTooLarge",
    "EventWriter",
    "HTTPStatusError",
    "IdleTimeout",
    "LimitExceeded",
    "LineTooLong",
    "NDJSONDecodeError",
    "NDJSONDecoder",
    "NDJSONStream",
    "ReadTimeout",
    "RequestError",
    "ResponseError",
    "RetriesExhausted",
    "RetryPolicy",
    "SSEDecoder",
    "SSEError",
    "SendTimeout",
    "StreamError",
    "StreamStats",
    "WriterClosed",
    "__version__",
    "connect",
    "connect_ndjson",
    "decode",
    "decode_ndjson",
    "encode",
    "encode_event",
    "encode_ndjson",
    "handler_method_name",
    "iter_events",
    "iter_ndjson",
)
