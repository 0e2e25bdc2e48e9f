"""Security: TLS verification, credentials across redirects, header injection, secrets in
messages and logs.

TLS runs against a small threaded HTTPS event-stream server defined here (the scripted server
has no TLS), with a throw-away CA from ``trustme``; everything listens on 127.0.0.1.

Redirects follow requests' rules (``SessionRedirectMixin.rebuild_auth`` / ``should_strip_auth``
and ``resolve_redirects``), which these tests pin down as they are today:

* ``Authorization`` is dropped when the scheme, the host *or the port* changes (except
  http:80 -> https:443), and kept on a redirect within the same origin;
* an explicit ``Cookie`` header is dropped on every redirect; requests rebuilds ``Cookie``
  from its jars for the new URL;
* a cookie in the session's jar is scoped to a host, not to a port (RFC 6265 section 8.5:
  "cookies do not provide isolation by port"), so it follows a redirect to another port of
  the same host, and not to another host;
* a cookie passed as ``cookies=`` to the request has no domain, and requests sends it to
  whatever host the redirect names.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from _net import RawServer, free_port, wait_for_client_to_leave

import sse_sync
from sse_sync import (
    ConnectError,
    ContentTypeError,
    HTTPStatusError,
    ReadTimeout,
    RequestError,
    RetryPolicy,
    SSEError,
    StreamError,
)
from sse_sync.testing import Script, SSEServer, close, drop, event, hold, respond, send

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

SECRET = "SECRET-7f3a9c"
FAST = RetryPolicy(initial_delay=0, min_delay=0, jitter=0)


@pytest.fixture(autouse=True)
def _hermetic_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # requests reads CA bundles and .netrc credentials from the environment: keep them out.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))


@pytest.fixture
def other() -> Iterator[SSEServer]:
    """A second server: same host, another port."""
    with SSEServer() as srv:
        yield srv


# -- TLS -----------------------------------------------------------------------------------------


def tls_stream(context: ssl.SSLContext) -> RawServer:
    """HTTPS on 127.0.0.1: every request gets an event stream of two events, then the server
    holds the connection until the client leaves.  A failed handshake records no request."""

    def handler(raw: RawServer, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused the certificate: what the verification tests expect
        with tls:
            try:
                raw.read_request(tls)
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
                    b"id: 1\ndata: secure\n\ndata: second\n\n"
                )
                wait_for_client_to_leave(tls, stop)
            except (OSError, ssl.SSLError):
                return  # a TLS client that goes away may not say goodbye

    return RawServer(handler, scheme="https", path="/stream")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_path(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[RawServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with tls_stream(context) as srv:
        yield srv


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the errors requests and urllib3 nest in them."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        for nested in (item.__cause__, item.__context__, getattr(item, "reason", None)):
            if isinstance(nested, BaseException):
                todo.append(nested)
        todo.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return seen


def test_tls_is_verified_by_default(tls_server: RawServer) -> None:
    with pytest.raises(ConnectError) as info:
        sse_sync.connect(tls_server.url, retry=None)
    chain = exception_chain(info.value)
    assert isinstance(info.value.__cause__, requests.exceptions.SSLError)
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in chain), chain
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert tls_server.requests == []  # no request went out over an unverified connection


def test_tls_with_the_ca_in_the_users_session(tls_server: RawServer, ca_path: str) -> None:
    session = requests.Session()
    session.verify = ca_path
    with session:
        with sse_sync.connect(tls_server.url, session=session, retry=None) as stream:
            assert [(e.data, e.id) for e in (next(stream), next(stream))] == [
                ("secure", "1"),
                ("second", "1"),
            ]
        # sse_sync never closes the user's session: it still works.
        assert session.get_adapter(tls_server.url) is not None
    assert len(tls_server.requests) == 1


def test_tls_with_verify_passed_through(tls_server: RawServer, ca_path: str) -> None:
    with sse_sync.connect(tls_server.url, verify=ca_path, retry=None) as stream:
        assert next(stream).data == "secure"


def test_tls_with_the_wrong_ca_fails(tls_server: RawServer, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with pytest.raises(ConnectError) as info:
        sse_sync.connect(tls_server.url, verify=str(stranger), retry=None)
    assert any(isinstance(e, ssl.SSLError) for e in exception_chain(info.value))
    assert tls_server.requests == []


# -- credentials and redirects -----------------------------------------------------------------


def test_authorization_is_dropped_on_a_redirect_to_another_port(
    server: SSEServer, other: SSEServer
) -> None:
    server.route("/start", respond(307, headers={"Location": other.url_for("/feed")}))
    other.route("/feed", [event("there"), hold()])
    mine = {"Authorization": f"Bearer {SECRET}", "X-Trace": "t-1"}
    with sse_sync.connect(server.url_for("/start"), headers=mine, retry=None) as stream:
        assert next(stream).data == "there"
    assert server.wait_request("/start").headers.get("Authorization") == f"Bearer {SECRET}"
    there = other.wait_request("/feed")
    assert "Authorization" not in there.headers
    assert there.headers.get("X-Trace") == "t-1"  # other headers do follow the redirect


def test_basic_auth_is_dropped_on_a_redirect_to_another_port(
    server: SSEServer, other: SSEServer
) -> None:
    server.route("/start", respond(302, headers={"Location": other.url_for("/feed")}))
    other.route("/feed", [event("there"), hold()])
    with sse_sync.connect(server.url_for("/start"), auth=("user", SECRET), retry=None) as stream:
        assert next(stream).data == "there"
    assert server.wait_request("/start").headers.get("Authorization", "").startswith("Basic ")
    assert "Authorization" not in other.wait_request("/feed").headers


def test_authorization_is_kept_on_a_redirect_within_the_origin(server: SSEServer) -> None:
    server.route("/start", respond(307, headers={"Location": "/feed"}))
    server.route("/feed", [event("here"), hold()])
    mine = {"Authorization": f"Bearer {SECRET}"}
    with sse_sync.connect(server.url_for("/start"), headers=mine, retry=None) as stream:
        assert next(stream).data == "here"
    assert server.wait_request("/feed").headers.get("Authorization") == f"Bearer {SECRET}"


def test_cookies_on_a_redirect_to_another_port(server: SSEServer, other: SSEServer) -> None:
    server.route("/start", respond(307, headers={"Location": other.url_for("/feed")}))
    other.route("/feed", [event("there"), hold()])
    session = requests.Session()
    session.cookies.set("jar", f"jar-{SECRET}", domain="127.0.0.1", path="/")
    with session:
        headers = {"Cookie": f"explicit={SECRET}"}
        url = server.url_for("/start")
        with sse_sync.connect(url, session=session, headers=headers, retry=None) as stream:
            assert next(stream).data == "there"
    assert server.wait_request("/start").headers.get("Cookie") == f"explicit={SECRET}"
    there = other.wait_request("/feed").headers.get("Cookie", "")
    assert f"explicit={SECRET}" not in there  # an explicit Cookie header never follows
    assert f"jar=jar-{SECRET}" in there  # same host, other port: RFC 6265 cookies do follow


def localhost_is_loopback_only() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(info[4][0] == "127.0.0.1" for info in infos)


@pytest.mark.skipif(
    not localhost_is_loopback_only(), reason="'localhost' does not resolve to 127.0.0.1 only"
)
def test_credentials_on_a_redirect_to_another_host_name(
    server: SSEServer, other: SSEServer
) -> None:
    # Both servers are on 127.0.0.1; "localhost" names the second one, a different host for
    # requests and for cookies.
    server.route("/start", respond(307, headers={"Location": f"http://localhost:{other.port}/f"}))
    other.route("/f", [event("there"), hold()])
    session = requests.Session()
    session.cookies.set("jar", f"jar-{SECRET}", domain="127.0.0.1", path="/")
    with (
        session,
        sse_sync.connect(
            server.url_for("/start"),
            session=session,
            headers={"Authorization": f"Bearer {SECRET}"},
            cookies={"loose": f"loose-{SECRET}"},
            retry=None,
        ) as stream,
    ):
        assert next(stream).data == "there"
    first = server.wait_request("/start").headers
    assert first.get("Authorization") == f"Bearer {SECRET}"
    assert "jar=" in first.get("Cookie", "")
    there = other.wait_request("/f").headers
    assert there.get("Host") == f"localhost:{other.port}"
    assert "Authorization" not in there
    assert f"jar-{SECRET}" not in there.get("Cookie", "")
    # Pinned as it is, not as it should be: requests gives a request-level cookie no domain
    # and sends it to the redirect's host.  Put cookies in the session's jar, with a domain.
    assert there.get("Cookie") == f"loose=loose-{SECRET}"


# -- header injection --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1\r\nX-Evil: 1", "1\nX-Evil: 1", "1\rX-Evil: 1", "1\r\n"])
def test_last_event_id_with_cr_or_lf_is_refused_before_sending(
    server: SSEServer, value: str
) -> None:
    server.route("/s", [event("a"), hold()])
    with pytest.raises(RequestError) as info:
        sse_sync.connect(server.url_for("/s"), last_event_id=value)
    assert isinstance(info.value, ValueError)
    assert server.requests == []


def test_last_event_id_with_nul_is_refused_as_a_request_error(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    with pytest.raises(RequestError):
        sse_sync.connect(server.url_for("/s"), last_event_id="1\x002")
    assert server.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "v\r\nX-Evil: 1"},
        {"X-A": "v\nX-Evil: 1"},
        {"X-A": "v\r"},
        {"X-A": "v\x00"},
        {"X-A": b"v\r\nX-Evil: 1"},
        {"X-A\r\nX-Evil": "1"},
        {"X-A:B": "1"},
        {"Authorization": f"Bearer {SECRET}\r\nX-Evil: 1"},
    ],
    ids=["crlf", "lf", "cr", "nul", "bytes", "name-crlf", "name-colon", "auth"],
)
def test_header_with_cr_lf_or_nul_is_refused_before_sending(
    server: SSEServer, headers: dict[str, str]
) -> None:
    server.route("/s", [event("a"), hold()])
    with pytest.raises(RequestError) as info:
        sse_sync.connect(server.url_for("/s"), headers=headers)
    assert isinstance(info.value, ValueError)
    assert SECRET not in str(info.value)
    assert server.requests == []


def test_header_callable_turning_bad_on_a_reconnect_stops_the_stream(server: SSEServer) -> None:
    values = iter(["good", "bad\r\nX-Evil: 1"])
    server.route("/s", [[event("a"), close()], [event("never"), hold()]])
    with sse_sync.connect(
        server.url_for("/s"), headers=lambda: {"X-Token": next(values)}, retry=FAST
    ) as stream:
        assert next(stream).data == "a"
        with pytest.raises(RequestError):
            next(stream)  # not retried: sending it again would not make it valid
    assert len(server.requests) == 1


# -- secrets in messages, reprs and logs -------------------------------------------------------

QUERY = f"/s?token={SECRET}&x=1"
AUTH = {"Authorization": f"Bearer {SECRET}"}


def assert_no_secret(error: BaseException) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    for attribute in ("url", "body"):
        assert SECRET not in str(getattr(error, attribute, ""))
    assert SECRET not in repr(getattr(error, "headers", {}))


def test_stream_repr_has_no_secret(server: SSEServer) -> None:
    server.route("/s", [event("a"), hold()])
    with sse_sync.connect(server.url_for(QUERY), headers=AUTH) as stream:
        assert next(stream).data == "a"
        assert SECRET not in repr(stream)
        assert SECRET not in repr(stream.stats())
    assert SECRET not in repr(stream)


@pytest.mark.parametrize(
    "url_form",
    ["query", "userinfo"],
)
def test_http_status_error_has_no_secret(server: SSEServer, url_form: str) -> None:
    server.route("/s", respond(500, "internal"))
    url = (
        server.url_for(QUERY)
        if url_form == "query"
        else f"http://user:{SECRET}@127.0.0.1:{server.port}/s"
    )
    with pytest.raises(HTTPStatusError) as info:
        sse_sync.connect(url, headers=AUTH)
    assert info.value.status_code == 500
    assert_no_secret(info.value)


def test_content_type_error_has_no_secret(server: SSEServer) -> None:
    server.route("/s", Script([send("<html>"), close()], content_type="text/html"))
    with pytest.raises(ContentTypeError) as info:
        sse_sync.connect(server.url_for(QUERY), headers=AUTH)
    assert_no_secret(info.value)
    assert info.value.url.startswith(server.url_for("/s"))


@pytest.mark.parametrize("url_form", ["query", "userinfo"])
def test_connect_error_has_no_secret(url_form: str) -> None:
    port = free_port()
    url = (
        f"http://127.0.0.1:{port}{QUERY}"
        if url_form == "query"
        else f"http://user:{SECRET}@127.0.0.1:{port}/s"
    )
    with pytest.raises(ConnectError) as info:
        sse_sync.connect(url, headers=AUTH)
    assert_no_secret(info.value)


def test_read_timeout_and_stream_errors_have_no_secret(server: SSEServer) -> None:
    server.route("/slow", [hold()])
    server.route("/drop", [event("a"), send("data: b"), drop()])
    with (
        sse_sync.connect(
            server.url_for(f"/slow?token={SECRET}"), headers=AUTH, timeout=(2, 0.2), retry=None
        ) as stream,
        pytest.raises(ReadTimeout) as timeout_info,
    ):
        next(stream)
    assert_no_secret(timeout_info.value)
    with (
        sse_sync.connect(server.url_for(f"/drop?token={SECRET}"), headers=AUTH, retry=None) as s,
        pytest.raises(StreamError) as drop_info,
    ):
        list(s)
    assert_no_secret(drop_info.value)


def test_a_logged_connect_error_has_no_secret_in_its_traceback() -> None:
    # Applications log failures with logger.exception(), which prints the whole chain.
    with pytest.raises(ConnectError) as info:
        sse_sync.connect(f"http://127.0.0.1:{free_port()}{QUERY}", headers=AUTH)
    text = "".join(traceback.format_exception(info.value))
    assert SECRET not in text


def test_no_secret_in_any_log_record_over_a_streams_lifetime(
    server: SSEServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another test's dictConfig (disable_existing_loggers) may have switched these off.
    for name in ("urllib3", "urllib3.connectionpool", "requests", "sse_sync"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    caplog.set_level(logging.DEBUG)  # every logger: sse_sync's, requests', urllib3's
    server.route(
        "/s",
        [
            [event("a", id="1"), close()],
            [respond(503)],
            [event("b", id="2"), hold()],
        ],
    )
    server.route("/bad", respond(404))
    with sse_sync.connect(server.url_for(QUERY), headers=AUTH, retry=FAST) as stream:
        assert [next(stream).data, next(stream).data] == ["a", "b"]
    with pytest.raises(SSEError):
        sse_sync.connect(server.url_for(f"/bad?token={SECRET}"), headers=AUTH)
    assert caplog.records  # the capture works: the HTTP stack does log at DEBUG
    # urllib3 logs each request line, query string included, at DEBUG: documented in
    # docs/guide/security.md as the one place sse_sync cannot scrub (it is not sse_sync's logger).
    leaks = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if SECRET in r.getMessage() and r.name != "urllib3.connectionpool"
    ]
    assert leaks == []
