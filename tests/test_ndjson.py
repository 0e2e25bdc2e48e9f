"""The NDJSON decoder and encoder: conformance vectors in every chunking, rules, properties."""

from __future__ import annotations

import base64
import functools
import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sse_sync
from sse_sync import DecodeError, LineTooLong, SSEError
from sse_sync._ndjson import (
    NDJSON_MEDIA_TYPES,
    NDJSONDecodeError,
    NDJSONDecoder,
    decode_ndjson,
    encode_ndjson,
    iter_ndjson,
)

pytestmark = pytest.mark.timeout(60)

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
VECTORS_PATH = TESTS_DIR / "ndjson_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

Outcome = tuple[str, type[BaseException] | None, int | None]


def cut(raw: bytes, sizes: list[int] | None) -> list[bytes]:
    """``raw`` in chunks whose sizes repeat ``sizes`` (``None``: one chunk)."""
    if sizes is None:
        return [raw]
    chunks = []
    pos = k = 0
    while pos < len(raw):
        n = sizes[k % len(sizes)]
        chunks.append(raw[pos : pos + n])
        pos += n
        k += 1
    return chunks


def cut_lines(raw: bytes) -> list[bytes]:
    """``raw`` cut after every LF, as a server flushing line by line sends it."""
    return [line for line in raw.splitlines(keepends=True) if line] if raw else []


def run(
    chunks: Iterable[bytes], max_line_length: int | None = 1 << 20
) -> tuple[list[Any], BaseException | None]:
    """Feed ``chunks`` then close; every value delivered (error values included) and the error."""
    decoder = NDJSONDecoder(max_line_length=max_line_length)
    got: list[Any] = []
    try:
        for chunk in chunks:
            got += decoder.feed(chunk)
        got += decoder.close()
    except NDJSONDecodeError as exc:
        return got + exc.values, exc
    except LineTooLong as exc:
        return got + list(exc.events), exc
    return got, None


def outcome(values: list[Any], error: BaseException | None) -> Outcome:
    # json.dumps tells 1 from 1.0 and 0.0 from -0.0, and NaN equals itself in it.
    return json.dumps(values), type(error) if error else None, getattr(error, "line", None)


def vector_input(vector: dict[str, Any]) -> bytes:
    return base64.b64decode(vector["input_b64"], validate=True)


def vector_chunkings(vector: dict[str, Any]) -> list[tuple[str, Callable[[bytes], list[bytes]]]]:
    found: list[tuple[str, Callable[[bytes], list[bytes]]]] = [
        ("whole", lambda raw: cut(raw, None)),
        ("bytes", lambda raw: cut(raw, [1])),
        ("lines", cut_lines),
    ]
    for sizes in vector["chunkings"]:
        found.append(("-".join(map(str, sizes)), functools.partial(cut, sizes=sizes)))
    return found


CASES = [
    pytest.param(vector, chunker, id=f"{vector['name']}@{label}")
    for vector in VECTORS
    for label, chunker in vector_chunkings(vector)
]


def check_error(vector: dict[str, Any], error: BaseException | None) -> None:
    expected = vector["error"]
    if expected is None:
        assert error is None, f"{vector['name']}: unexpected {error!r}"
        return
    assert error is not None, f"{vector['name']}: expected {expected['type']}"
    assert type(error).__name__ == expected["type"], repr(error)
    if isinstance(error, NDJSONDecodeError):
        assert error.line == expected["line"], str(error)
        assert error.reason.startswith(expected["reason"]), error.reason
        assert f"line {error.line}" in str(error)


# -- conformance vectors ---------------------------------------------------------------------


def test_vectors_are_well_formed() -> None:
    assert len(VECTORS) >= 50
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names)), "vector names must be unique"
    keys = {"name", "category", "input_b64", "chunkings", "expected", "error", "notes"}
    for vector in VECTORS:
        assert keys <= set(vector) <= keys | {"max_line_length"}, vector["name"]
        vector_input(vector)
        assert all(sizes and min(sizes) >= 1 for sizes in vector["chunkings"]), vector["name"]
        error = vector["error"]
        assert error is None or error["type"] in ("NDJSONDecodeError", "LineTooLong")
    # Both outcomes and every rule family are covered.
    assert {v["category"] for v in VECTORS} >= {"bom", "crlf", "utf8", "limit", "invalid"}
    assert any(v["error"] for v in VECTORS)
    assert any(not v["error"] for v in VECTORS)


@pytest.mark.parametrize(("vector", "chunker"), CASES)
def test_vector(vector: dict[str, Any], chunker: Callable[[bytes], list[bytes]]) -> None:
    raw = vector_input(vector)
    chunks = chunker(raw)
    assert b"".join(chunks) == raw
    got, error = run(chunks, vector.get("max_line_length", 1 << 20))
    assert got == vector["expected"]
    assert json.dumps(got) == json.dumps(vector["expected"])
    check_error(vector, error)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_with_decode_and_iter(vector: dict[str, Any]) -> None:
    raw = vector_input(vector)
    limit = vector.get("max_line_length", 1 << 20)
    if vector["error"] is None:
        assert decode_ndjson(raw, max_line_length=limit) == vector["expected"]
        assert list(iter_ndjson(cut(raw, [3]), max_line_length=limit)) == vector["expected"]
        return
    with pytest.raises((NDJSONDecodeError, LineTooLong)) as info:
        decode_ndjson(raw, max_line_length=limit)
    check_error(vector, info.value)
    got: list[Any] = []
    with pytest.raises((NDJSONDecodeError, LineTooLong)) as info:
        got.extend(iter_ndjson(cut(raw, [1]), max_line_length=limit))
    assert got == vector["expected"]
    check_error(vector, info.value)


# -- decoder rules ---------------------------------------------------------------------------


def test_value_returned_by_the_feed_that_completes_its_line() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a"') == []
    assert decoder.feed(b":1}") == []
    assert decoder.feed(b"\n[2") == [{"a": 1}]
    assert decoder.feed(b"]\r") == []
    assert decoder.feed(b"\n") == [[2]]
    assert decoder.feed(b"") == []
    assert decoder.close() == []


def test_a_reused_buffer_is_copied_not_kept() -> None:
    # A recv_into() loop overwrites its buffer after each feed; unfinished lines must not
    # change with it, whether the buffer comes as a bytearray or as a memoryview of one.
    body = '\ufeff{"a": "caf\u00e9"}\r\n[1, 2]\n"last"'.encode()
    for size in (1, 3, 7):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        for view in (False, True):
            buf = bytearray(size)
            decoder = NDJSONDecoder()
            values: list[Any] = []
            for chunk in chunks:
                if view:
                    buf[: len(chunk)] = chunk
                    values += decoder.feed(memoryview(buf)[: len(chunk)])
                else:
                    buf[:] = chunk
                    values += decoder.feed(buf)
                buf[:] = b"\xff" * len(buf)
            values += decoder.close()
            assert values == [{"a": "café"}, [1, 2], "last"], (size, view)
    reused = bytearray(b'{"b"')
    decoder = NDJSONDecoder()
    assert decoder.feed(reused) == []
    reused[:] = b"!!!!"
    assert decoder.feed(b":1}\n") == [{"b": 1}]


@pytest.mark.parametrize("bad", ['{"a": 1}\n', 5, None])
def test_input_that_is_not_bytes_is_a_type_error(bad: Any) -> None:
    message = f"the decoder takes bytes, not {type(bad).__name__}"
    decoder = NDJSONDecoder()
    with pytest.raises(TypeError, match=message):
        decoder.feed(bad)
    with pytest.raises(TypeError, match=message):
        decode_ndjson(bad)
    with pytest.raises(TypeError, match=message):
        list(iter_ndjson([b"1\n", bad]))
    assert decoder.feed(b"2\n") == [2]


def test_decoder_protocol_members() -> None:
    decoder = NDJSONDecoder()
    assert decoder.last_event_id == ""
    assert decoder.retry is None
    assert decoder.feed_items(b"1\n2\n") == [1, 2]
    assert decoder.last_event_id == ""
    assert decoder.retry is None


def test_error_attributes_message_and_cause() -> None:
    with pytest.raises(NDJSONDecodeError) as info:
        NDJSONDecoder().feed(b'1\n"two"\n{"k": tru}\n4\n')
    error = info.value
    assert isinstance(error, DecodeError)
    assert isinstance(error, SSEError)
    assert isinstance(error, ValueError)
    assert error.line == 3
    assert error.values == [1, "two"]
    assert error.events is error.values
    assert error.preview == '{"k": tru}'
    assert error.reason == "invalid JSON: Expecting value at column 7"
    assert str(error) == (
        "NDJSON line 3: invalid JSON: Expecting value at column 7 (line starts '{\"k\": tru}')"
    )
    assert isinstance(error.__cause__, json.JSONDecodeError)


def test_error_pickles() -> None:
    error = NDJSONDecodeError("invalid JSON: x", 7, "{x", [1, {"a": 2}])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NDJSONDecodeError
    assert (copy.reason, copy.line, copy.preview, copy.values) == error_fields(error)
    assert str(copy) == str(error)


def error_fields(error: NDJSONDecodeError) -> tuple[str, int, str, list[Any]]:
    return error.reason, error.line, error.preview, error.values


def test_utf8_error_names_line_byte_and_preview() -> None:
    with pytest.raises(NDJSONDecodeError) as info:
        decode_ndjson(b'1\n2\n"caf\xe9"\n')
    assert info.value.line == 3
    assert info.value.reason == "invalid UTF-8 at byte 5"
    assert info.value.preview == '"caf\ufffd"'
    assert info.value.values == [1, 2]


def test_preview_is_short() -> None:
    line = b'["' + b"x" * 5000 + b"\n"
    with pytest.raises(NDJSONDecodeError) as info:
        decode_ndjson(line)
    assert info.value.preview == '["' + "x" * 58
    assert len(str(info.value)) < 200


def test_error_is_sticky_until_close() -> None:
    decoder = NDJSONDecoder()
    with pytest.raises(NDJSONDecodeError):
        decoder.feed(b"1\nbad\n2\n")
    with pytest.raises(NDJSONDecodeError) as again:
        decoder.feed(b"3\n")
    assert again.value.line == 2
    assert again.value.values == []
    assert decoder.close() == []
    # A new stream: line numbers start over.
    assert decoder.feed(b"5\n") == [5]
    with pytest.raises(NDJSONDecodeError) as info:
        decoder.feed(b"x\n")
    assert info.value.line == 2


def test_limit_error_is_sticky_and_keeps_values() -> None:
    decoder = NDJSONDecoder(max_line_length=4)
    with pytest.raises(LineTooLong) as info:
        decoder.feed(b"1\n22\n333333\n")
    values: list[Any] = list(info.value.events)  # typed list[Event]; holds any decoder's items
    assert values == [1, 22]
    with pytest.raises(LineTooLong) as again:
        decoder.feed(b"4\n")
    assert again.value.events == []
    assert decoder.close() == []
    assert decoder.feed(b"4\n") == [4]


def test_close_resets_even_when_the_last_line_is_invalid() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b"1\n\n{") == [1]
    with pytest.raises(NDJSONDecodeError) as info:
        decoder.close()
    assert info.value.line == 3
    assert decoder.feed(b"2\n") == [2]
    assert decoder.close() == []


def test_close_after_bom_only_and_repeated_close() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.feed(b"\xbf") == []
    assert decoder.close() == []
    assert decoder.close() == []
    # The next stream may start with a BOM again.
    assert decoder.feed(b"\xef\xbb\xbf7\n") == [7]


def test_deep_nesting_is_a_decode_error_not_recursion_error() -> None:
    with pytest.raises(NDJSONDecodeError) as info:
        decode_ndjson(b"1\n" + b"[" * 200_000 + b"\n")
    assert info.value.reason == "invalid JSON: nested too deeply"
    assert info.value.values == [1]


def test_int_with_too_many_digits_is_a_decode_error() -> None:
    digits = b"9" * 20_000  # over sys.get_int_max_str_digits() (4300 by default)
    with pytest.raises(NDJSONDecodeError) as info:
        decode_ndjson(b"1\n" + digits + b"\n")
    assert info.value.line == 2
    assert info.value.values == [1]


def test_custom_loads_gets_lines_without_line_endings() -> None:
    seen: list[str] = []

    def loads(line: str) -> Any:
        seen.append(line)
        return line.upper()

    decoder = NDJSONDecoder(loads=loads)
    assert decoder.feed(b'a\r\n\r\n  \n"b c"\n') == ["A", '"B C"']
    assert decoder.close() == []
    assert decode_ndjson(b"x\ny", loads=loads) == ["X", "Y"]
    assert seen == ["a", '"b c"', "x", "y"], "blank lines never reach loads"


def test_custom_loads_value_error_is_mapped_other_errors_propagate() -> None:
    def strict(line: str) -> Any:
        if line == "bad":
            raise ValueError("no")
        if line == "boom":
            raise KeyError("boom")
        return line

    with pytest.raises(NDJSONDecodeError) as info:
        NDJSONDecoder(loads=strict).feed(b"ok\nbad\n")
    assert info.value.reason == "invalid JSON: no"
    assert info.value.values == ["ok"]
    with pytest.raises(KeyError):
        NDJSONDecoder(loads=strict).feed(b"boom\n")


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_max_line_length_is_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        NDJSONDecoder(max_line_length=bad)


def test_loads_must_be_callable() -> None:
    with pytest.raises(TypeError):
        NDJSONDecoder(loads="json")  # type: ignore[arg-type]


def test_no_limit_with_none() -> None:
    value = "x" * (3 << 20)
    raw = json.dumps(value).encode() + b"\n"
    assert decode_ndjson(raw, max_line_length=None) == [value]
    with pytest.raises(LineTooLong):
        decode_ndjson(raw)  # the default limit is 1 MiB


def test_memory_is_bounded_by_the_line_limit() -> None:
    # An endless line fails as soon as the buffered part exceeds the limit.
    decoder = NDJSONDecoder(max_line_length=1000)
    fed = 0
    error: LineTooLong | None = None
    for _ in range(10_000):
        fed += 64
        try:
            decoder.feed(b"x" * 64)
        except LineTooLong as exc:
            error = exc
            break
    assert error is not None
    assert 1000 < fed <= 1000 + 2 * 64


def test_media_types() -> None:
    assert NDJSON_MEDIA_TYPES[0] == "application/x-ndjson"
    assert set(NDJSON_MEDIA_TYPES) == {
        "application/x-ndjson",
        "application/jsonl",
        "application/json-lines",
        "application/x-jsonlines",
    }


# -- linear time -----------------------------------------------------------------------------


def test_many_small_values_in_7_byte_chunks_decode_in_linear_time() -> None:
    # Quadratic buffering would take minutes here; the suite timeout is the assertion's bound.
    count = 100_000
    raw = b"".join(b'{"i":%d}\n' % i for i in range(count))
    decoder = NDJSONDecoder()
    got: list[Any] = []
    for pos in range(0, len(raw), 7):
        got += decoder.feed(raw[pos : pos + 7])
    got += decoder.close()
    assert len(got) == count
    assert got[0] == {"i": 0}
    assert got[-1] == {"i": count - 1}


def test_one_long_line_in_7_byte_chunks_decodes_in_linear_time() -> None:
    value = "y" * (2 << 20)
    raw = json.dumps(value).encode() + b"\n"
    decoder = NDJSONDecoder(max_line_length=None)
    got: list[Any] = []
    for pos in range(0, len(raw), 7):
        got += decoder.feed(raw[pos : pos + 7])
    assert got == [value]


# -- encoder ---------------------------------------------------------------------------------


def test_encode_is_compact_utf8_with_one_lf() -> None:
    assert encode_ndjson({"a": [1, 2.5, None], "é": "ü"}) == (
        '{"a":[1,2.5,null],"é":"ü"}\n'.encode()
    )
    assert encode_ndjson("line\nbreak") == b'"line\\nbreak"\n'
    assert encode_ndjson(0) == b"0\n"


def test_encode_lone_surrogate_round_trips_as_escape() -> None:
    raw = encode_ndjson({"s": "a\ud800b"})
    assert raw == b'{"s":"a\\ud800b"}\n'
    assert decode_ndjson(raw) == [{"s": "a\ud800b"}]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_encode_refuses_nan_and_infinity(value: Any) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_ndjson(value)


def test_encode_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        encode_ndjson({1, 2})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"[Cc]ircular"):
        encode_ndjson(loop)


def test_encode_refuses_a_dumps_that_breaks_lines_or_gives_blank() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_ndjson({"a": 1}, dumps=lambda v: json.dumps(v, indent=2))
    with pytest.raises(ValueError, match="line break"):
        encode_ndjson(1, dumps=lambda v: "1\r")
    with pytest.raises(ValueError, match="blank"):
        encode_ndjson(1, dumps=lambda v: "  ")
    with pytest.raises(ValueError, match="surrogate"):
        encode_ndjson("\udc80", dumps=lambda v: json.dumps(v, ensure_ascii=False))
    with pytest.raises(TypeError, match="str or bytes"):
        encode_ndjson(1, dumps=lambda v: 1)  # type: ignore[arg-type,return-value]


def test_encode_with_custom_dumps_returning_bytes() -> None:
    raw = encode_ndjson({"b": 1}, dumps=lambda v: json.dumps(v, sort_keys=True).encode())
    assert raw == b'{"b": 1}\n'
    assert decode_ndjson(raw) == [{"b": 1}]


# -- properties ------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
SIZES = st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=6)
FRAGMENTS = st.sampled_from(
    [
        *(b"\n", b"\r", b"\r\n", b" ", b"\t", b"\xef\xbb\xbf", b"\xef", b"\xff", b"\xc3", b"\xa9"),
        *(b"{", b"}", b"[", b"]", b'"', b":", b",", b"1", b"-", b"e", b"null", b"\\u00e9", b"x"),
    ]
)
ARBITRARY = st.binary(max_size=80) | st.lists(FRAGMENTS, max_size=40).map(b"".join)
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(values=st.lists(JSON_VALUES, max_size=8), sizes=SIZES, crlf=st.booleans())
def test_any_chunking_of_encoded_values_gives_the_values(
    values: list[Any], sizes: list[int], crlf: bool
) -> None:
    raw = b"".join(encode_ndjson(v) for v in values)
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    got, error = run(cut(raw, sizes))
    assert error is None
    assert json.dumps(got) == json.dumps(values)
    assert list(iter_ndjson(cut(raw, sizes))) == values


@PROPERTY
@given(value=JSON_VALUES, final_lf=st.booleans(), bom=st.booleans())
def test_round_trip(value: Any, final_lf: bool, bom: bool) -> None:
    line = encode_ndjson(value)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert b"\r" not in line
    line.decode("utf-8")  # valid UTF-8
    raw = (b"\xef\xbb\xbf" if bom else b"") + (line if final_lf else line[:-1])
    got = decode_ndjson(raw)
    assert got == [value]
    assert json.dumps(got[0]) == json.dumps(value)


@PROPERTY
@given(
    raw=ARBITRARY,
    sizes=SIZES,
    limit=st.none() | st.integers(min_value=1, max_value=24),
)
def test_arbitrary_bytes_raise_only_documented_errors_whatever_the_chunking(
    raw: bytes, sizes: list[int], limit: int | None
) -> None:
    # run() lets any exception but the two documented ones escape and fail the test.
    whole = outcome(*run([raw], limit))
    assert outcome(*run(cut(raw, sizes), limit)) == whole
    assert outcome(*run(cut(raw, [1]), limit)) == whole


# -- import isolation ------------------------------------------------------------------------

ISOLATION_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from sse_sync._ndjson import NDJSONDecoder, decode_ndjson, encode_ndjson, iter_ndjson

    assert NDJSONDecoder().feed(b'{"a": 1}\\n') == [{"a": 1}]
    assert decode_ndjson(encode_ndjson([1, "x"])) == [[1, "x"]]
    assert list(iter_ndjson([b"1\\n2"])) == [1, 2]
    def loaded():
        return sorted(n for n in sys.modules if n.split(".")[0] in ("requests", "urllib3"))
    before = loaded()
    import sse_sync as mod
    stream_class = mod.NDJSONStream
    after = loaded()
    print(json.dumps({"before": before, "after": after, "class": stream_class.__name__}))
    """
)


def test_decoder_does_not_import_requests_but_client_loads_lazily() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", ISOLATION_SCRIPT],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["before"] == []
    assert "requests" in result["after"]
    assert result["class"] == "NDJSONStream"


def test_unknown_attribute_of_the_module() -> None:
    import sse_sync._ndjson as module

    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    assert sse_sync.DecodeError is DecodeError
