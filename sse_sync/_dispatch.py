"""Callback dispatch: handlers per event type, lifecycle handlers, handler objects.

The dispatcher runs in whichever thread calls :meth:`EventStream.run` (or the dispatch thread of
:meth:`EventStream.start`): every handler of one stream runs in that one thread, in stream order,
so handlers need no locks among themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ._models import Comment, Event

__all__ = ("Handlers", "Opened", "Retrying", "handler_method_name")

_RESERVED = frozenset({"open", "error", "close", "comment", "unknown"})
_NON_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


class Opened:
    """Stream marker: a (re)connection is open; ``on_open`` handlers run at this point."""

    __slots__ = ("connection",)

    def __init__(self, connection: object) -> None:
        self.connection = connection


class Retrying:
    """Stream marker: the connection ended (``error`` is ``None`` for a clean close by the
    server) and the next attempt comes after ``delay`` seconds; ``on_retry`` handlers run."""

    __slots__ = ("delay", "error")

    def __init__(self, error: BaseException | None, delay: float) -> None:
        self.error = error
        self.delay = delay


def handler_method_name(event_type: str) -> str:
    """The handler-object method that receives events of ``event_type``.

    ``"on_" + event_type`` with every character outside ``[A-Za-z0-9_]`` replaced by ``_``
    (``"user.created"`` -> ``on_user_created``).  Types that would clash with the lifecycle
    methods (open, error, close, comment, unknown) get an ``_event`` suffix: ``on_error_event``.
    """
    name = _NON_IDENTIFIER.sub("_", event_type)
    return f"on_{name}_event" if name in _RESERVED else f"on_{name}"


class Handlers:
    """Registered callbacks of one stream, and the loop that calls them."""

    def __init__(self) -> None:
        self.by_type: dict[str, list[Callable[[Event], object]]] = {}
        self.objects: list[object] = []
        self.opened: list[Callable[[Any], object]] = []
        self.errors: list[Callable[[BaseException], object]] = []
        self.closed: list[Callable[[], object]] = []
        self.comments: list[Callable[[str], object]] = []
        self.retrying: list[Callable[[BaseException | None, float], object]] = []
        self.unknown: list[Callable[[Event], object]] = []
        self._resolved: dict[str, list[Callable[[Event], object]]] = {}

    def add(self, event_type: str, handler: Callable[[Event], object]) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        self.by_type.setdefault(event_type, []).append(handler)
        self._resolved.clear()

    def bind(self, obj: object) -> bool:
        """Take ``obj``'s lifecycle methods (``on_open``, ``on_error``, ``on_close``,
        ``on_comment``, ``on_unknown``, ``on_retry``); ``True`` if it wants comments."""
        self.objects.append(obj)
        self._resolved.clear()
        for name, target in (
            ("on_open", self.opened),
            ("on_error", self.errors),
            ("on_close", self.closed),
            ("on_comment", self.comments),
            ("on_unknown", self.unknown),
            ("on_retry", self.retrying),
        ):
            method = getattr(obj, name, None)
            if callable(method):
                target.append(method)
        return callable(getattr(obj, "on_comment", None))

    def _resolve(self, event_type: str) -> list[Callable[[Event], object]]:
        found = list(self.by_type.get(event_type, ()))
        name = handler_method_name(event_type)
        for obj in self.objects:
            method = getattr(obj, name, None)
            if callable(method):
                found.append(method)
        result = found or self.unknown
        self._resolved[event_type] = result
        return result

    def report(self, error: BaseException) -> bool:
        """Give ``error`` to the ``on_error`` handlers; ``False`` if there are none."""
        for handler in self.errors:
            handler(error)
        return bool(self.errors)

    def signal(self, stream: Any, item: object) -> None:
        """Run the handlers for a comment or a marker (anything but an event)."""
        kind = type(item)
        if kind is Comment:
            for on_comment in self.comments:
                on_comment(item.text)  # type: ignore[attr-defined]
        elif kind is Opened:
            for on_open in self.opened:
                on_open(stream)
        elif kind is Retrying:
            for on_retry in self.retrying:
                on_retry(item.error, item.delay)  # type: ignore[attr-defined]

    def run(
        self,
        stream: Any,
        items: Iterable[object],
        policy: str,
        set_signal: Callable[[Callable[[Any, object], None] | None], None],
    ) -> None:
        """Dispatch ``items`` (events) until they end; comments and markers reach
        :meth:`signal` through ``set_signal``, under the same error policy.

        An ``on_error`` handler that raises is not called again with its own exception: it
        cancels the stream, and its exception is raised from here after ``on_close``.
        """
        if policy not in ("stop", "continue"):
            raise ValueError('handler_errors must be "stop" or "continue"')
        unreported: BaseException | None = None
        fatal: BaseException | None = None

        def report(exc: BaseException) -> None:
            nonlocal unreported, fatal
            try:
                reported = self.report(exc)
            except Exception as failure:
                # Nothing is left to report an error handler's error to: stop here.
                stream.cancel()
                if fatal is None:
                    fatal = failure
                return
            if not reported and unreported is None:
                unreported = exc

        def failed(exc: Exception) -> None:
            if policy == "stop":
                stream.cancel()
            report(exc)

        def guarded_signal(target: Any, item: object) -> None:
            try:
                self.signal(target, item)
            except Exception as exc:
                failed(exc)

        set_signal(guarded_signal)
        try:
            for item in items:
                try:
                    event: Event = item  # type: ignore[assignment]
                    handlers = self._resolved.get(event.event)
                    if handlers is None:
                        handlers = self._resolve(event.event)
                    for handler in handlers:
                        handler(event)
                except Exception as exc:
                    failed(exc)
                    if policy == "stop":
                        break
                if fatal is not None:
                    break
        except Exception as exc:
            # The stream's own error (network, timeout, limits), raised by the item source.
            report(exc)
        except BaseException:
            # KeyboardInterrupt and the like: stop reading, then let it through.
            stream.cancel()
            raise
        finally:
            set_signal(None)
            try:
                for on_close in self.closed:
                    on_close()
            except BaseException:
                stream.cancel()
                raise
        if fatal is not None:
            raise fatal
        if unreported is not None:
            raise unreported
