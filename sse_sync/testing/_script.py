"""The script language of the test server: actions, their factories and :class:`Script`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, Protocol, TypeAlias, cast

import attrs

from ._format import (
    _EVENT_STREAM,
    _check_status,
    _format_comment,
    _format_event,
    _header_pairs,
    _single_line,
)
from ._requests import RecordedRequest

Framing: TypeAlias = Literal["chunked", "close", "length"]
_FRAMINGS = ("chunked", "close", "length")


class _Response(Protocol):
    """What an action may do to the response it is part of (the server's side of a script)."""

    def write(self, data: bytes) -> None: ...
    def sleep(self, seconds: float) -> None: ...
    def wait(self, event: threading.Event, timeout: float | None) -> None: ...
    def close(self) -> None: ...
    def drop(self) -> None: ...
    def hold(self) -> None: ...
    def respond(self, response: Respond) -> None: ...


class Action:
    """One step of a :class:`Script`; build them with the lower-case factory functions."""

    __slots__ = ()

    def _run(self, stream: _Response) -> None:
        raise NotImplementedError


@attrs.frozen
class Send(Action):
    """Write ``data`` (one write, one HTTP chunk in chunked framing) and flush it."""

    data: bytes

    def _run(self, stream: _Response) -> None:
        stream.write(self.data)


@attrs.frozen
class Pause(Action):
    """Sleep server-side for ``seconds``; a server stop cuts it short."""

    seconds: float

    def _run(self, stream: _Response) -> None:
        stream.sleep(self.seconds)


@attrs.frozen(eq=False)
class WaitFor(Action):
    """Block until the test sets ``event``; a timeout is a server error (see ``errors``)."""

    event: threading.Event
    timeout: float | None = 10.0

    def _run(self, stream: _Response) -> None:
        stream.wait(self.event, self.timeout)


@attrs.frozen
class Close(Action):
    """End the response cleanly: the client sees the end of the stream."""

    def _run(self, stream: _Response) -> None:
        stream.close()


@attrs.frozen
class Drop(Action):
    """Abort the TCP connection with a reset, wherever the response is."""

    def _run(self, stream: _Response) -> None:
        stream.drop()


@attrs.frozen
class Hold(Action):
    """Keep the connection open, sending nothing, until the client leaves or the server stops."""

    def _run(self, stream: _Response) -> None:
        stream.hold()


@attrs.frozen
class Respond(Action):
    """A complete, non-streaming response; must be the only action of its script."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def _run(self, stream: _Response) -> None:
        stream.respond(self)


_TERMINAL = (Close, Drop, Hold)


def send(raw: bytes | str) -> Send:
    """Write ``raw`` as-is (a ``str`` is UTF-8 encoded), as one write, flushed at once."""
    if isinstance(raw, str):
        raw = raw.encode()
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"send() takes bytes or str, not {type(raw).__name__}")
    return Send(bytes(raw))


def event(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> Send:
    """One event in wire format, ending with its blank line.

    Fields come in the order ``event``, ``id``, ``retry``, then one ``data:`` line per line of
    ``data`` (any of CRLF, CR or LF splits it).  A field left as ``None`` is omitted, so
    ``event(retry=500)`` is a block with a ``retry`` field only and ``event(id="")`` resets the
    last event ID.  For malformed fields, write them yourself with :func:`send`.
    """
    return Send(_format_event(data, event, id, retry))


def comment(text: str = "") -> Send:
    """A comment line: ``":" + text`` (one such line per line of ``text``).

    No space is added after the colon, so a decoder that reports comments returns ``text``
    exactly; write ``comment(" ping")`` for the conventional ``": ping"``.
    """
    return Send(_format_comment(text))


def pause(seconds: float) -> Pause:
    """Sleep ``seconds`` in the server (for trickle tests); interrupted by a server stop."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"seconds must be a non-negative number, not {seconds!r}")
    return Pause(float(seconds))


def wait_for(event: threading.Event, timeout: float | None = 10.0) -> WaitFor:
    """Block the handler until the test calls ``event.set()``.

    Use it to hold a response at an exact point.  If the event is not set within ``timeout``
    seconds (``None``: no limit), the connection is reset and a :class:`TimeoutError` is added to
    :attr:`SSEServer.errors`; a server stop always ends the wait.
    """
    if not isinstance(event, threading.Event):
        raise TypeError(f"wait_for() takes a threading.Event, not {type(event).__name__}")
    return WaitFor(event, timeout)


def close() -> Close:
    """End the response cleanly (zero-length chunk, or socket close when close-delimited)."""
    return Close()


def drop() -> Drop:
    """Reset the connection (``SO_LINGER`` 0, then close): the client sees a broken stream."""
    return Drop()


def hold() -> Hold:
    """Send nothing more and keep the connection until the client disconnects or server stops."""
    return Hold()


def respond(
    status: int,
    body: bytes | str = b"",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> Respond:
    """A complete response with ``Content-Length`` (none for 204 and 304, which have no body).

    ``Content-Type`` defaults to ``text/plain; charset=utf-8`` when ``body`` is not empty; set
    it (or ``Location`` for a redirect) in ``headers``.  A ``str`` body is UTF-8 encoded.
    """
    _check_status(status)
    if isinstance(body, str):
        body = body.encode()
    if body and status in (204, 304):
        raise ValueError(f"a {status} response has no body")
    return Respond(status, bytes(body), _header_pairs(headers))


@attrs.frozen(init=False)
class Script:
    """The actions for one response, and how to frame it.

    :param actions: what to send, in order.  A script that does not end with :func:`close`,
        :func:`drop` or :func:`hold` ends as if :func:`close` came last.
    :param status: the status code of the stream response.
    :param headers: extra response headers; one named like a default header replaces it.
    :param content_type: the ``Content-Type``; ``None`` sends none.
    :param framing: ``"chunked"`` (``Transfer-Encoding: chunked``, one chunk per action),
        ``"close"`` (no length, ``Connection: close``; the body ends when the socket closes) or
        ``"length"`` (the whole body is built first and sent with ``Content-Length``; only
        :func:`send`, :func:`event`, :func:`comment` and a final :func:`close` are allowed).
    :param gzip: send ``Content-Encoding: gzip``, compressing incrementally with a sync flush
        after every action, so each event can be decompressed as soon as it arrives.
    :param keep_alive: keep the connection open for another request after a clean end of the
        response (no ``Connection: close``).  The default closes it, so one connection carries
        one response.

    Default headers: ``Content-Type``, ``Cache-Control: no-cache``, the framing header
    (``Transfer-Encoding`` or ``Content-Length``), ``Content-Encoding`` with gzip and
    ``Connection: close`` without keep-alive.  With :func:`respond` as the only action, the
    respond's status, body and headers are the whole response and only ``keep_alive`` applies.
    """

    actions: tuple[Action, ...]
    status: int
    headers: tuple[tuple[str, str], ...]
    content_type: str | None
    framing: Framing
    gzip: bool
    keep_alive: bool

    def __init__(
        self,
        actions: Iterable[Action] | Action = (),
        *,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content_type: str | None = _EVENT_STREAM,
        framing: Framing = "chunked",
        gzip: bool = False,
        keep_alive: bool = False,
    ) -> None:
        items: tuple[object, ...] = (actions,) if isinstance(actions, Action) else tuple(actions)
        for item in items:
            if not isinstance(item, Action):
                hint = " (wrap raw data in send())" if isinstance(item, (bytes, str)) else ""
                raise TypeError(f"a script holds actions, not {type(item).__name__}{hint}")
        steps = cast("tuple[Action, ...]", items)
        if any(isinstance(step, Respond) for step in steps) and len(steps) != 1:
            raise ValueError("respond() must be the only action of its script")
        for step in steps[:-1]:
            if isinstance(step, _TERMINAL):
                raise ValueError(f"{step!r} must be the last action of its script")
        if framing not in _FRAMINGS:
            raise ValueError(f"framing must be one of {_FRAMINGS}, not {framing!r}")
        if framing == "length":
            for step in steps:
                if not isinstance(step, (Send, Close)):
                    raise ValueError(f'framing="length" allows only send/event/comment: {step!r}')
        if framing == "close" and keep_alive:
            raise ValueError('framing="close" cannot keep the connection alive')
        if content_type is not None:
            _single_line("content_type", content_type)
        object.__setattr__(self, "actions", steps)
        object.__setattr__(self, "status", _check_status(status))
        object.__setattr__(self, "headers", _header_pairs(headers))
        object.__setattr__(self, "content_type", content_type)
        object.__setattr__(self, "framing", framing)
        object.__setattr__(self, "gzip", bool(gzip))
        object.__setattr__(self, "keep_alive", bool(keep_alive))


def _as_script(spec: object) -> Script:
    if isinstance(spec, Script):
        return spec
    if isinstance(spec, Action):
        return Script((spec,))
    if isinstance(spec, (list, tuple)):
        return Script(spec)
    raise TypeError(f"expected a Script, an action or a list of actions, not {spec!r}")


def _as_route(spec: object) -> tuple[Script, ...] | Callable[[RecordedRequest], object]:
    if isinstance(spec, (list, tuple)) and spec and not all(isinstance(s, Action) for s in spec):
        if not all(isinstance(s, (Script, list, tuple)) for s in spec):
            raise TypeError(
                "a route list holds either actions (one script) or scripts / action lists "
                f"(one per request), not a mix: {spec!r}"
            )
        return tuple(_as_script(s) for s in spec)
    if isinstance(spec, (Script, Action, list, tuple)):
        return (_as_script(spec),)
    if callable(spec):
        return cast("Callable[[RecordedRequest], object]", spec)
    raise TypeError(f"a route is a script, a list of scripts or a callable, not {spec!r}")


# Documented where they are public, in sse_sync.testing.
ScriptLike: TypeAlias = Script | Action | Sequence[Action]

# One Sequence in the union, not two: mypy then infers a nested list literal (one action list per
# request) against it instead of joining its items to object.  The accepted values are the same:
# a list of actions is one script, a list of scripts or action lists one per request.
RouteSpec: TypeAlias = (
    Script
    | Action
    | Sequence[Action | Script | Sequence[Action]]
    | Callable[[RecordedRequest], ScriptLike]
)
