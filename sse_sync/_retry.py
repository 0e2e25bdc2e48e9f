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


MAX_SERVER_DELAY = 3600.0
"""Default cap, in seconds, on a wait that a server asks for (``retry:`` or ``Retry-After``)."""


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a stream reconnects, the way a browser's EventSource does, with capped backoff.

    After a connection that delivered an event, the wait is the reconnection time: the server's
    ``retry:`` if it sent one, else ``initial_delay``.  Attempts that deliver nothing (a failed
    connection, a retryable status, a connection closed before any event) are consecutive
    failures: each multiplies the wait by ``multiplier``, from at least ``min_delay``, up to
    ``max_delay`` (a server's ``retry:`` above ``max_delay`` is honoured as it is, up to
    ``max_server_delay``).  Every wait is lengthened by a random fraction of up to ``jitter``,
    never shortened, so that many clients do not reconnect in step.
    """

    initial_delay: float = attrs.field(default=3.0, validator=_non_negative)
    """Seconds before reconnecting when the server gave no ``retry:`` (browsers use about 3)."""
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    """Upper bound of the backoff, in seconds."""
    multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    """Growth of the wait per consecutive failure."""
    jitter: float = attrs.field(default=0.25)
    """Largest random lengthening of each wait, as a fraction of it (0 for none, at most 1)."""
    min_delay: float = attrs.field(default=0.1, validator=_non_negative)
    """Smallest wait after the second consecutive failure, so that a reconnection time of 0
    (``retry: 0``) still backs off from a server that keeps failing."""
    max_server_delay: float = attrs.field(default=MAX_SERVER_DELAY, validator=_non_negative)
    """Cap, in seconds, on what a server may ask for with ``retry:`` or ``Retry-After``."""
    max_attempts: int | None = attrs.field(default=None, validator=_non_negative)
    """Consecutive failed attempts before giving up with RetriesExhausted; None for no limit."""
    max_elapsed: float | None = attrs.field(default=None, validator=_non_negative)
    """Seconds of consecutive failure before giving up; None for no limit.  No attempt starts
    later than this: a wait (a server's long ``Retry-After`` included) that would end past it
    gives up at once."""
    reset_after: float | None = attrs.field(default=None, validator=_non_negative)
    """``None``: a connection that delivered an event resets the backoff, as in a browser.  A
    number of seconds: it must also have stayed up that long (for servers that flap)."""
    retry_first: bool = False
    """Also retry the first connection in ``connect()`` (by default it fails fast)."""
    resend_body: bool = False
    """Reconnect requests that carry a body (POST ...), re-sending the body unchanged."""

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {value!r}")

    def delay(self, failures: int, server_retry_ms: int | None, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1: the first, or the end of
        a connection that delivered events), given the server's ``retry:`` in milliseconds."""
        cap = self.max_server_delay
        if server_retry_ms is None:
            base = self.initial_delay
        else:
            # Clamped while still an int: a float of a huge value overflows.
            base = min(server_retry_ms, int(cap * 1000)) / 1000
        wait = base
        if failures > 1:
            # The exponent is clamped: a float power overflows long before any cap matters.
            grown = max(base, self.min_delay) * self.multiplier ** min(failures - 1, 64)
            wait = min(max(self.max_delay, base), grown)
        return wait * (1 + self.jitter * rng.random())

    def should_retry(self, error: BaseException | None) -> bool:
        """Whether a connection that ended with ``error`` (``None``: the server closed it) is
        retried.  Network errors, timeouts, 408, 429 and 5xx retry; 204, any other status, a
        wrong content type, decoder limits and invalid requests stop for good."""
        if error is None:
            return True
        if isinstance(error, HTTPStatusError):
            return error.status_code in _RETRY_STATUSES or error.status_code >= 500
        if isinstance(error, LimitExceeded):
            return False
        return isinstance(error, (ConnectError, StreamError))


def retry_after(
    headers: Mapping[str, str], now: float | None = None, cap: float = MAX_SERVER_DELAY
) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date), at most
    ``cap``; None if there is none or it cannot be read."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        # Compared as text first: int() refuses very long digit strings.
        return cap if len(value) > 15 else min(float(int(value)), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, seconds), cap)
