"""What the test server records of each request: :class:`RecordedRequest` and its
:class:`Headers`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from ._format import _HOST


# Not sse_sync.ResponseError's Headers: that one is a dict of response headers as requests hands
# them over (a repeated field already joined into one value); it compares equal to a plain dict
# and pickles with its exception.  A test
# asserts on what the client sent exactly, so this one is read-only and keeps every field,
# repeated names and arrival order included.
class Headers(Mapping[str, str]):
    """Request headers: names keep their spelling, lookups ignore case.

    ``headers["content-type"]``, ``headers.get("Last-Event-ID")`` and ``"accept" in headers``
    ignore case; iteration yields each name once, as first spelled.  A repeated header reads as
    its values joined by ``", "``; :meth:`get_all` returns them apart and :attr:`fields` is the
    raw list in arrival order.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = fields.items() if isinstance(fields, Mapping) else fields
        self._fields = tuple((str(name), str(value)) for name, value in items)

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """Every ``(name, value)`` pair as received, in order."""
        return self._fields

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in order; ``[]`` if absent."""
        key = name.lower()
        return [value for field, value in self._fields if field.lower() == key]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name) if isinstance(name, str) else []
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._fields:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len({name.lower() for name, _ in self._fields})

    def __hash__(self) -> int:
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"


@attrs.frozen
class RecordedRequest:
    """One request as the server received it (recorded before its script runs).

    ``path`` and ``query`` are the raw request target split at ``?`` (not percent-decoded);
    ``number`` is its 1-based position among requests to the same path; ``client_address`` is
    the client's ``(host, port)`` and tells connections apart.
    """

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    number: int = 1
    client_address: tuple[str, int] = (_HOST, 0)

    @property
    def target(self) -> str:
        """``path``, plus ``?query`` if there is one."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)
