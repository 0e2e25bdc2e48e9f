"""Unit tests of the body readers under the socket (``_unchunk`` and ``_direct_chunks``), and of
the test servers' chunked request reader.

In the style of urllib3's mock-socket chunked tests: a fake buffered socket file hands out
scripted reads, so a failure names the framing rule that broke, not a server somewhere.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

import pytest

from sse_sync import StreamError
from sse_sync._transport import _MAX_CHUNK_LINE, _direct_chunks, _unchunk
from sse_sync.testing._http import read_chunked_body

SIZE = 64 * 1024


class FakeSocketFile:
    """A buffered socket file whose ``read1`` returns the scripted reads, then ``b""`` (EOF).

    A scripted read longer than the size asked for is split, as a real ``read1`` would; every
    size asked for is recorded in ``asked``.
    """

    def __init__(self, reads: Iterable[bytes]) -> None:
        self.reads = list(reads)
        self.asked: list[int] = []

    def read1(self, size: int) -> bytes:
        assert size > 0
        self.asked.append(size)
        if not self.reads:
            return b""
        data = self.reads.pop(0)
        if len(data) > size:
            data, rest = data[:size], data[size:]
            self.reads.insert(0, rest)
        return data

    @property
    def exhausted(self) -> bool:
        return not self.reads


def unchunk(reads: Iterable[bytes], size: int = SIZE) -> list[bytes]:
    return list(_unchunk(FakeSocketFile(reads).read1, size))


def chunked(*payloads: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


# -- _unchunk: what passes -------------------------------------------------------------------------


def test_one_read_of_several_chunks_gives_one_piece() -> None:
    assert unchunk([chunked(b"data: a\n\n", b"data: b\n\n")]) == [b"data: a\n\ndata: b\n\n"]


def test_each_read_gives_its_own_piece_as_soon_as_it_arrives() -> None:
    sock = FakeSocketFile([b"5\r\nhello\r\n", b"3\r\nabc\r\n", b"0\r\n\r\n"])
    pieces = _unchunk(sock.read1, SIZE)
    assert next(pieces) == b"hello"
    assert len(sock.asked) == 1  # the next read waits until the consumer wants more
    assert list(pieces) == [b"abc"]


@pytest.mark.parametrize("cut", range(1, len(chunked(b"hello", b"world!")) - 1))
def test_a_body_cut_anywhere_between_two_reads_decodes_the_same(cut: int) -> None:
    body = chunked(b"hello", b"world!")
    assert b"".join(unchunk([body[:cut], body[cut:]])) == b"helloworld!"


def test_a_body_read_byte_by_byte_decodes_the_same() -> None:
    body = chunked(b"hello", b"x" * 300)
    assert b"".join(unchunk([body], size=1)) == b"hello" + b"x" * 300


def test_a_chunk_larger_than_a_read_comes_out_as_it_arrives() -> None:
    payload = bytes(range(256)) * 8
    pieces = unchunk([b"%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n"], size=100)
    assert b"".join(pieces) == payload
    assert max(len(p) for p in pieces) <= 100


# A chunk size line of each kind -> its name in the test ids.
VALID_SIZE_LINES = {
    b"5\r\n": "crlf",
    b"5\n": "bare-lf",
    b"05\r\n": "leading-zero",
    b"5;name=value\r\n": "extension",
    b"5 ; name\r\n": "extension-with-spaces",
}
INVALID_SIZE_LINES = {
    b"zz\r\n": "not-hex",
    b"0x5\r\n": "0x-prefix",
    b"-5\r\n": "negative",
    b"+5\r\n": "plus-sign",
    b"\r\n": "empty",
    b";ext\r\n": "extension-only",
    b"5 5\r\n": "inner-space",
}


@pytest.mark.parametrize("header", VALID_SIZE_LINES, ids=VALID_SIZE_LINES.values())
def test_chunk_size_lines_that_are_accepted(header: bytes) -> None:
    assert unchunk([header + b"hello\r\n0\r\n\r\n"]) == [b"hello"]


def test_hex_digits_of_either_case() -> None:
    assert unchunk([b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"]) == [
        b"0123456789abcdefghij"
    ]


def test_the_last_chunk_ends_the_body_without_reading_trailers() -> None:
    sock = FakeSocketFile([b"3\r\nabc\r\n0\r\n", b"Trailer: x\r\n\r\n"])
    assert list(_unchunk(sock.read1, SIZE)) == [b"abc"]
    assert not sock.exhausted  # the trailers were never read: the connection is not reused


def test_reads_ask_for_the_given_size() -> None:
    sock = FakeSocketFile([b"3\r\nabc\r\n", b"0\r\n\r\n"])
    list(_unchunk(sock.read1, 777))
    assert sock.asked == [777, 777]


# -- _unchunk: what fails, and how -----------------------------------------------------------------


@pytest.mark.parametrize("header", INVALID_SIZE_LINES, ids=INVALID_SIZE_LINES.values())
def test_an_invalid_chunk_size_is_a_stream_error(header: bytes) -> None:
    with pytest.raises(StreamError, match=r"^invalid chunk size"):
        unchunk([header + b"hello\r\n0\r\n\r\n"])


def test_the_error_quotes_at_most_twenty_bytes_of_a_bad_size() -> None:
    with pytest.raises(StreamError) as info:
        unchunk([b"g" * 100 + b"\r\n"])
    assert str(info.value) == f"invalid chunk size {b'g' * 20!r}"


def test_a_chunk_size_line_longer_than_the_limit_is_a_stream_error() -> None:
    # The line never ends: the reader must give up instead of buffering it without bound.
    sock = FakeSocketFile([b"5;" + b"x" * 1000] * 100)
    with pytest.raises(StreamError, match=r"^chunk header too long$"):
        list(_unchunk(sock.read1, SIZE))
    assert not sock.exhausted
    assert len(sock.asked) <= _MAX_CHUNK_LINE // 1000 + 2


def test_a_chunk_size_line_at_the_limit_is_still_read() -> None:
    line = b"5;" + b"x" * (_MAX_CHUNK_LINE - 2)
    assert len(line) == _MAX_CHUNK_LINE
    assert unchunk([line, b"\r\nhello\r\n0\r\n\r\n"]) == [b"hello"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"3\r\nabcX\r\n0\r\n\r\n", id="extra-byte"),
        pytest.param(b"3\r\nabcd\r\n0\r\n\r\n", id="chunk-longer-than-its-size"),
        pytest.param(b"3\r\nabc3\r\ndef\r\n0\r\n\r\n", id="no-crlf-before-next-size"),
    ],
)
def test_a_chunk_not_followed_by_crlf_is_a_stream_error(body: bytes) -> None:
    with pytest.raises(StreamError, match=r"^a chunk was not followed by CRLF$"):
        unchunk([body])


def test_the_missing_crlf_is_caught_when_it_straddles_reads() -> None:
    with pytest.raises(StreamError, match="not followed by CRLF"):
        unchunk([b"3\r\nabc", b"X", b"\r\n0\r\n\r\n"])


@pytest.mark.parametrize(
    ("reads", "message"),
    [
        pytest.param([b"5\r\nhel"], "the stream ended inside a chunk", id="inside-a-chunk"),
        pytest.param([b"5\r\nhello\r\n"], "the stream ended between chunks", id="between"),
        pytest.param([b"5\r\nhello"], "the stream ended between chunks", id="before-crlf"),
        pytest.param([b"5\r"], "the stream ended between chunks", id="inside-a-size-line"),
        pytest.param([], "the stream ended between chunks", id="no-body-at-all"),
    ],
)
def test_an_early_end_is_a_stream_error_that_says_where(reads: list[bytes], message: str) -> None:
    with pytest.raises(StreamError, match=f"^{re.escape(message)}$"):
        unchunk(reads)


def test_payload_of_an_earlier_read_is_delivered_before_a_later_error() -> None:
    pieces = _unchunk(FakeSocketFile([b"5\r\nhello\r\n", b"zz\r\n"]).read1, SIZE)
    assert next(pieces) == b"hello"
    with pytest.raises(StreamError, match="invalid chunk size"):
        next(pieces)


# -- _direct_chunks: the other framings ------------------------------------------------------------


def test_close_delimited_body_yields_every_read_until_eof() -> None:
    sock = FakeSocketFile([b"data: a\n", b"\n", b"data: b\n\n"])
    assert list(_direct_chunks(sock, False, None, SIZE)) == [b"data: a\n", b"\n", b"data: b\n\n"]
    assert sock.asked == [SIZE] * 4


def test_content_length_body_never_reads_past_its_length() -> None:
    sock = FakeSocketFile([b"0123456789", b"NEXT RESPONSE"])
    assert list(_direct_chunks(sock, False, 10, 4)) == [b"0123", b"4567", b"89"]
    assert sock.asked == [4, 4, 2]  # the last read asks only for what is still due
    assert sock.reads == [b"NEXT RESPONSE"]


def test_an_empty_content_length_body_reads_nothing() -> None:
    sock = FakeSocketFile([b"unrelated"])
    assert list(_direct_chunks(sock, False, 0, SIZE)) == []
    assert sock.asked == []


def test_a_content_length_body_cut_short_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match=r"^the stream ended 4 bytes before its length$"):
        list(_direct_chunks(FakeSocketFile([b"012345"]), False, 10, SIZE))


def test_chunked_framing_goes_through_unchunk() -> None:
    sock = FakeSocketFile([chunked(b"hello"), b"NEXT"])
    assert list(_direct_chunks(sock, True, None, SIZE)) == [b"hello"]
    with pytest.raises(StreamError, match="invalid chunk size"):
        list(_direct_chunks(FakeSocketFile([b"hello\r\n"]), True, None, SIZE))


# -- read_chunked_body: request bodies on the test servers' side ---------------------------------


def test_a_chunked_request_body_is_read_whole_with_its_trailers() -> None:
    rfile = io.BytesIO(b"5;ext\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: x\r\n\r\nNEXT")
    assert read_chunked_body(rfile) == b"hello!"
    assert rfile.read() == b"NEXT"  # the next request on the connection is left alone


CUT_SHORT = {
    b"5\r\nhel": "the request body ended inside a chunk",
    b"5\r\nhello\r\n": "the request body ended inside a chunk size line",
    b"5": "the request body ended inside a chunk size line",
}


@pytest.mark.parametrize(("body", "message"), CUT_SHORT.items(), ids=["chunk", "gap", "line"])
def test_a_request_body_cut_short_is_eof(body: bytes, message: str) -> None:
    with pytest.raises(EOFError, match=f"^{message}$"):
        read_chunked_body(io.BytesIO(body))


@pytest.mark.parametrize("line", [b"zz\r\n", b"-5\r\n", b"\r\n"])
def test_a_malformed_request_chunk_size_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError, match=r"^malformed chunked body"):
        read_chunked_body(io.BytesIO(line + b"hello\r\n0\r\n\r\n"))


def test_a_request_body_over_the_limit_is_a_value_error() -> None:
    body = chunked(b"x" * 10, b"y" * 10)
    assert read_chunked_body(io.BytesIO(body), max_size=20) == b"x" * 10 + b"y" * 10
    with pytest.raises(ValueError, match=r"^request body too large$"):
        read_chunked_body(io.BytesIO(body), max_size=19)
