"""Coverage-guided fuzzing of :class:`NDJSONDecoder` and :func:`iter_ndjson` with atheris.

Run from the repository root (``pip install atheris``; Linux x86_64 wheels only)::

    python -m tests.fuzz.fuzz_ndjson -atheris_runs=200000
    python -m tests.fuzz.fuzz_ndjson CORPUS_DIR --add-seeds -max_total_time=600

Any libFuzzer flag works; a directory argument is a corpus that new inputs are saved to, and
``--add-seeds`` (ours) first writes the hand-made ``SEEDS`` into it, which reach the rarer paths
in far fewer runs than starting from nothing.

atheris.FuzzedDataProvider splits each input into a configuration (a small ``max_line_length``
or the default, a list of chunk sizes) and a byte stream, fed in those chunks and then closed.
The reference is the same stream fed as one chunk to a decoder without a limit, then closed;
NDJSON decoding can end in an error even there (invalid UTF-8 or JSON), so an outcome is the
values delivered plus the error that stopped the stream, if any.  Checked on every input:

1. Feeding and closing never raise anything but :class:`LineTooLong` or
   :class:`NDJSONDecodeError` (any other exception escapes to atheris as a crash).
2. With the default limit, or a small one that is never exceeded, the outcome equals the
   reference's: the same values, and the same decode error (line, reason, preview) or none.
   ``iter_ndjson`` and ``decode_ndjson`` agree too.
3. On :class:`LineTooLong`, the values delivered before it (earlier feeds plus ``error.events``)
   are a prefix of the reference's.  After any error from ``feed()`` the error repeats on later
   feeds, ``close()`` then returns ``[]``, and the decoder works again.
4. After every feed the unfinished line (``_parts``, ``_room``) is within ``max_line_length``,
   plus the one CR that may be the first half of its CRLF; the decoder checks this after each
   feed, so the strict bound is asserted, not merely "limit plus one chunk".
5. A one-chunk decoder with the same limit has the same outcome.

Values are compared as ``json.dumps`` text, because ``NaN`` (which ``json.loads`` accepts) is
not equal to itself.  Where a line is "nested too deeply" on either side, only the values before
it are compared: json's recursion limit depends on the caller's stack depth (see ``nested``).

A violation raises AssertionError, which atheris reports as a crash, saving the input as
``crash-<sha1>`` (or under ``-artifact_prefix``); pass that file to replay it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

# atheris ships no type hints (import-untyped) and has no wheel for some platforms
# (import-not-found); only one of the two applies at a time, hence unused-ignore.
import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

from . import _harness
from ._harness import MAX_CHUNK, MAX_SIZES, SMALL_LIMIT, split

# Instrument the package so that libFuzzer sees which branches of the decoder an input reaches;
# the package __init__ imports every decoder module, so all of them are instrumented here.
with atheris.instrument_imports(include=["sse_sync"]):
    from sse_sync._errors import LineTooLong, NDJSONDecodeError
    from sse_sync._ndjson import (
        DEFAULT_MAX_NDJSON_LINE_LENGTH,
        NDJSONDecoder,
        decode_ndjson,
        iter_ndjson,
    )

DecoderError = LineTooLong | NDJSONDecodeError


class Limits(TypedDict, total=False):
    """Keyword arguments for NDJSONDecoder and iter_ndjson; a missing key keeps the default."""

    max_line_length: int


@dataclass
class Case:
    """One decoded fuzzer input."""

    stream: bytes
    chunks: list[bytes]
    limits: Limits = field(default_factory=Limits)  # empty: the decoder's default

    @property
    def max_line(self) -> int:
        return self.limits.get("max_line_length", DEFAULT_MAX_NDJSON_LINE_LENGTH)


@dataclass
class Outcome:
    """What a decoder delivered, and the error that stopped it, if any."""

    values: list[Any]
    error: DecoderError | None = None

    def key(self) -> tuple[str, tuple[Any, ...] | None]:
        """A comparable form: values as JSON text, the error by its class and details."""
        error = self.error
        described: tuple[Any, ...] | None
        if error is None:
            described = None
        elif isinstance(error, NDJSONDecodeError):
            described = ("NDJSONDecodeError", error.line, error.reason, error.preview)
        else:
            described = (type(error).__name__, error.value)
        return json.dumps(self.values), described


def make_case(stream: bytes, sizes: list[int], limits: Limits | None = None) -> Case:
    return Case(stream, split(stream, sizes), Limits(**(limits or {})))


def parse(data: bytes) -> Case:
    # The configuration is read with ConsumeIntInRange only: atheris takes each such value from
    # the end of the input, one byte per value for these ranges, which lets encode() build seeds.
    fdp = atheris.FuzzedDataProvider(data)
    limits = Limits()
    if fdp.ConsumeIntInRange(0, 1):
        limits["max_line_length"] = fdp.ConsumeIntInRange(1, SMALL_LIMIT)
    count = fdp.ConsumeIntInRange(0, MAX_SIZES)
    sizes = [fdp.ConsumeIntInRange(0, MAX_CHUNK) for _ in range(count)]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    return make_case(stream, sizes, limits)


def encode(stream: bytes, sizes: list[int], limits: Limits | None = None) -> bytes | None:
    """The fuzzer input that parse() reads as this case, or None if this atheris reads it
    differently (the byte layout is atheris's, not a documented format)."""
    # A byte is its value minus the range's low end: 1 for the limit, 0 for the others.
    values = [1, limits["max_line_length"] - 1] if limits else [0]
    values += [len(sizes), *sizes]
    data = stream + bytes(reversed(values))
    return data if parse(data) == make_case(stream, sizes, limits) else None


_EVERYTHING = (
    b'\xef\xbb\xbf{"a": [1, 2.5, null, true, "\\u00e9\xc3\xa9"]}\r\n\n  \t\r\n"x"\n'
    b"NaN\n-Infinity\n1e400\n-0.0\n2"
)

SEEDS: list[tuple[bytes, list[int], Limits]] = [
    # (stream, chunk sizes, limits): one input for each path worth starting from.
    (_EVERYTHING, [MAX_CHUNK], {}),
    (_EVERYTHING, [], {}),  # one byte per chunk
    (_EVERYTHING, [2, 3, 0, 5], {}),
    (b'1\n"\xff"\n2\n', [3], {}),  # invalid UTF-8
    (b"1\n{\n2\n", [2], {}),  # invalid JSON
    (b"1\n{", [2], {}),  # invalid JSON in the last line, which close() parses
    (b"1" * 641 + b"\n", [MAX_CHUNK], {}),  # more digits than int() takes
    (b"1\r\n2\r\n\r\n", [2, 1], {"max_line_length": 1}),  # a CR one over the limit, then LF
    (b"12\n345\n", [1], {"max_line_length": 2}),
    (b"\xef\xbb", [1], {"max_line_length": 1}),  # a BOM's start, then the end of the stream
]


def write_seeds(directory: Path) -> int:
    """Write SEEDS as fuzzer inputs into ``directory``; return how many this atheris reads back."""
    return _harness.write_seeds(directory, SEEDS, encode)


def check_buffers(decoder: NDJSONDecoder, case: Case) -> None:
    """Property 4: what the decoder holds between feeds is within its limit."""
    parts = decoder._parts
    plen = sum(map(len, parts))
    assert decoder._room == decoder._max_line - plen, f"_room {decoder._room} != pieces {parts!r}"
    # One byte over is allowed only for a CR that the next chunk's LF may turn into a CRLF.
    assert plen <= case.max_line or (plen == case.max_line + 1 and parts[-1].endswith(b"\r")), (
        f"unfinished line of {plen} bytes held: {parts!r}"
    )
    assert decoder._bom is None or len(decoder._bom) < 3, f"BOM buffer {decoder._bom!r}"


def check_error(error: DecoderError, case: Case) -> None:
    if isinstance(error, LineTooLong):
        # Only a configured limit can be hit, and the error names it.
        assert case.limits, f"{error!r} with the default limit"
        assert error.value == case.max_line, f"{error!r} for max_line_length={case.max_line}"


def check_after_error(decoder: NDJSONDecoder, error: DecoderError, case: Case) -> None:
    assert not decoder._parts, f"line pieces kept after {error!r}"
    assert decoder._room == decoder._max_line, f"_room {decoder._room} after {error!r}"
    # The stream stays failed until close(), which then returns nothing.
    again: DecoderError | None = None
    try:
        decoder.feed(b"1\n")
    except (LineTooLong, NDJSONDecodeError) as exc:
        again = exc
    assert type(again) is type(error), f"feed() after {error!r} raised {again!r}"
    assert decoder.close() == [], f"close() after {error!r} returned values"
    # A new stream decodes normally (b"1" fits any limit).
    values = decoder.feed(b"1\n")
    assert values == [1], f"after close(): {values!r}"


def reference(case: Case) -> Outcome:
    """The whole stream as one chunk, to a decoder without a limit, then closed."""
    decoder = NDJSONDecoder(max_line_length=None)
    values: list[Any] = []
    try:
        values += decoder.feed(case.stream)
        values += decoder.close()
    except NDJSONDecodeError as exc:
        # Either call may fail; its values are the ones decoded by that call before the error.
        return Outcome(values + exc.values, exc)
    return Outcome(values)


def one_chunk(case: Case) -> Outcome:
    """The whole stream as one chunk, to a decoder with the case's limit, then closed."""
    decoder = NDJSONDecoder(**case.limits)
    values: list[Any] = []
    try:
        values += decoder.feed(case.stream)
        values += decoder.close()
    except (LineTooLong, NDJSONDecodeError) as exc:
        return Outcome(values + exc.events, exc)
    return Outcome(values)


def chunked(case: Case) -> Outcome:
    decoder = NDJSONDecoder(**case.limits)
    got: list[Any] = []
    for chunk in case.chunks:
        try:
            got += decoder.feed(chunk)
        except (LineTooLong, NDJSONDecodeError) as exc:
            # Any other exception propagates: property 1 is then violated and atheris reports it.
            check_error(exc, case)
            check_after_error(decoder, exc, case)
            return Outcome(got + exc.events, exc)
        check_buffers(decoder, case)
    error: DecoderError | None = None
    try:
        got += decoder.close()
    except (LineTooLong, NDJSONDecodeError) as exc:
        check_error(exc, case)
        got += exc.events
        error = exc
    # close() resets before it parses the last line, so even after raising it is ready again.
    assert decoder.feed(b"1\n") == [1], f"decoder unusable after close() (error {error!r})"
    return Outcome(got, error)


def via_iter_ndjson(case: Case) -> Outcome:
    got: list[Any] = []
    try:
        for value in iter_ndjson(case.chunks, **case.limits):
            got.append(value)
    except (LineTooLong, NDJSONDecodeError) as exc:
        return Outcome(got + exc.events, exc)
    return Outcome(got)


NESTED = "invalid JSON: nested too deeply"


def nested(outcome: Outcome) -> bool:
    # json.loads gives up on deep nesting when the interpreter's recursion budget runs out, and
    # how much is left depends on how deep the decoder was called (feed or close, its slow path,
    # from a generator): the same line can parse on one path and not on another.  That is
    # json's doing, not the decoder's, so only the values before such a line must agree.
    error = outcome.error
    return isinstance(error, NDJSONDecodeError) and error.reason == NESTED


def check_prefix(shorter: list[Any], longer: list[Any], what: str) -> None:
    got, want = json.dumps(shorter), json.dumps(longer[: len(shorter)])
    assert got == want, f"{what}: {got} is not a prefix of {json.dumps(longer)}"


def agree(got: Outcome, want: Outcome, what: str, *, unlimited_want: bool) -> None:
    """Properties 2, 3 and 5: ``got`` ended as ``want`` did.  With ``unlimited_want``, ``want``
    had no limit, so ``got`` may instead stop early with LineTooLong."""
    if nested(got) or nested(want):
        shorter, longer = sorted((got.values, want.values), key=len)
        check_prefix(shorter, longer, what)
    elif unlimited_want and isinstance(got.error, LineTooLong):
        check_prefix(got.values, want.values, f"{what} before {got.error!r}")
    else:
        # No limit was exceeded, or both decoders had the same one: every line up to the end or
        # to the first bad one was decoded the same way, and the same error ended the stream.
        assert got.key() == want.key(), f"{what}: {got.key()} != {want.key()}"


def fuzz_one_input(data: bytes) -> None:
    case = parse(data)
    want = reference(case)
    assert not isinstance(want.error, LineTooLong), "LineTooLong without a limit"
    if want.error is None:
        try:
            body = Outcome(decode_ndjson(case.stream, max_line_length=None))
        except NDJSONDecodeError as exc:
            body = Outcome(list(exc.values), exc)
        agree(body, want, "decode_ndjson", unlimited_want=False)

    outcome = chunked(case)
    agree(outcome, want, "chunked", unlimited_want=True)
    agree(one_chunk(case), outcome, "one chunk vs chunked", unlimited_want=False)
    agree(via_iter_ndjson(case), want, "iter_ndjson", unlimited_want=True)


def main(argv: list[str]) -> None:
    _harness.main(argv, fuzz_one_input, write_seeds)


if __name__ == "__main__":
    main(sys.argv)
