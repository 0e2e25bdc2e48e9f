"""Reconnection policy: which failures retry, how long to wait, when to give up.

Pure and immutable: the reader thread asks the policy for decisions and keeps the counters
itself, so one policy object can be shared by any number of streams.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from typing import Any

import attrs

from ._errors import (
    ConnectError,
    HTTPStatusError,
    LimitExceeded,
    StreamError,
)

__all__ = ("RetryPolicy", "retry_after")

_RETRY_STATUSES = frozenset({408, 429})


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a stream reconnects, the way a browser's EventSource does, with capped backoff.

    The first wait is the server's ``retry:`` time if it sent one, else ``initial_delay``.  Each
    further consecutive failure multiplies it by ``multiplier`` up to ``max_delay`` (a server's
    ``retry:`` above ``max_delay`` is honoured as it is), and every wait is scaled by a random
    factor in ``[1 - jitter, 1]`` so that many clients do not reconnect in step.  A connection
    that stayed up ``reset_after`` seconds and delivered an event starts the count afresh.
    """

    initial_delay: float = attrs.field(default=3.0, validator=_non_negative)
    """Seconds before reconnecting when the server gave no ``retry:`` (browsers use about 3)."""
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    """Upper bound of the backoff, in seconds."""
    multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    """Growth of the wait per consecutive failure."""
    jitter: float = attrs.field(default=0.5)
    """Fraction of each wait that is random (0 for none, at most 1)."""
    max_attempts: int | None = attrs.field(default=None, validator=_non_negative)
    """Consecutive failed attempts before giving up with RetriesExhausted; None for no limit."""
    max_elapsed: float | None = attrs.field(default=None, validator=_non_negative)
    """Seconds of consecutive failure before giving up; None for no limit.  No attempt starts
    later than this: a wait (a server's long ``Retry-After`` included) that would end past it
    gives up at once."""
    reset_after: float = attrs.field(default=30.0, validator=_non_negative)
    """A connection up this long that delivered an event resets the backoff."""
    retry_first: bool = False
    """Also retry the first connection in ``connect()`` (by default it fails fast)."""
    resend_body: bool = False
    """Reconnect requests that carry a body (POST ...), re-sending the body unchanged."""

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {value!r}")

    def delay(self, failures: int, server_retry_ms: int | None, rng: random.Random) -> float:
        """Seconds to wait before attempt number ``failures`` (1 for the first reconnect)."""
        base = self.initial_delay if server_retry_ms is None else server_retry_ms / 1000
        cap = max(self.max_delay, base)
        # The exponent is clamped: a float power overflows long before any cap matters.
        grown = base * self.multiplier ** min(max(failures - 1, 0), 64)
        wait = min(cap, grown)
        return wait * (1 - self.jitter * rng.random())

    def should_retry(self, error: BaseException | None) -> bool:
        """Whether a connection that ended with ``error`` (``None``: the server closed it) is
        retried.  Network errors, timeouts, 408, 429 and 5xx retry; 204, other 4xx, a wrong
        content type, decoder limits and invalid requests stop for good."""
        if error is None:
            return True
        if isinstance(error, HTTPStatusError):
            return error.status_code in _RETRY_STATUSES or error.status_code >= 500
        if isinstance(error, LimitExceeded):
            return False
        return isinstance(error, (ConnectError, StreamError))


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
