"""Telemetry: one log record per lifecycle transition, structured, and never a secret."""

from __future__ import annotations

import logging

import pytest
import requests

import sse_sync
from sse_sync import RetryPolicy
from sse_sync.testing import SSEServer, close, event, respond

pytestmark = [pytest.mark.network, pytest.mark.timeout(30)]

FIELDS = ("stream", "url")


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("sse_sync")]


def test_silent_by_default(sse_server: SSEServer, capfd: pytest.CaptureFixture[str]) -> None:
    # No handler configured: the library's NullHandler keeps even warnings off stderr.
    sse_server.route("/s", [[event("a"), close()], [respond(401)]])
    policy = RetryPolicy(initial_delay=0, jitter=0)
    with (
        pytest.raises(sse_sync.HTTPStatusError),
        sse_sync.connect(sse_server.url_for("/s"), retry=policy) as stream,
    ):
        list(stream)
    assert capfd.readouterr().err == ""


def test_a_stream_that_connects_drops_reconnects_and_gives_up(
    sse_server: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    sse_server.route(
        "/s", [[event("a", id="7"), close()], [respond(503)], [respond(503)], [respond(503)]]
    )
    policy = RetryPolicy(initial_delay=0, min_delay=0, jitter=0, max_attempts=2)
    caplog.set_level(logging.DEBUG, logger="sse_sync")
    with (
        pytest.raises(sse_sync.RetriesExhausted),
        sse_sync.connect(sse_server.url_for("/s"), retry=policy) as stream,
    ):
        list(stream)
    got = records(caplog)
    messages = [r.getMessage() for r in got]
    assert all(r.stream == stream._name for r in got)  # type: ignore[attr-defined]
    assert all(r.url == sse_server.url_for("/s") for r in got)  # type: ignore[attr-defined]
    connecting = [r for r in got if " connecting: " in r.getMessage()]
    assert [r.attempt for r in connecting] == [1, 1, 2]  # type: ignore[attr-defined]
    assert [r.last_event_id for r in connecting] == ["", "7", "7"]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.DEBUG for r in connecting)
    connected = [r for r in got if " connected: " in r.getMessage()]
    assert [r.status for r in connected] == [200]  # type: ignore[attr-defined]
    assert connected[0].elapsed_ms >= 0  # type: ignore[attr-defined]
    ended = [r for r in got if "connection ended" in r.getMessage()]
    assert [(r.reason, r.events) for r in ended] == [("end", 1)]  # type: ignore[attr-defined]
    scheduled = [r for r in got if " reconnecting in " in r.getMessage()]
    assert [r.delay for r in scheduled] == [0, 0]  # type: ignore[attr-defined]
    gave_up = [r for r in got if "gave up" in r.getMessage()]
    assert len(gave_up) == 1
    assert gave_up[0].levelno == logging.WARNING
    assert messages.index(gave_up[0].getMessage()) == len(messages) - 1


def test_a_decoder_limit_is_a_warning(
    sse_server: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    sse_server.route("/s", [[event("x" * 100)]])
    caplog.set_level(logging.DEBUG, logger="sse_sync")
    with (
        pytest.raises(sse_sync.EventTooLarge),
        sse_sync.connect(sse_server.url_for("/s"), max_event_size=10) as stream,
    ):
        list(stream)
    warnings = [r for r in records(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "decoder limit" in warnings[0].getMessage()


def test_cancel_is_recorded(sse_server: SSEServer, caplog: pytest.LogCaptureFixture) -> None:
    sse_server.route("/s", [[event("a"), event("b")]])
    caplog.set_level(logging.DEBUG, logger="sse_sync")
    with sse_sync.connect(sse_server.url_for("/s")) as stream:
        assert next(stream).data == "a"
    stream._reader.thread.join(1)
    reasons = [getattr(r, "reason", None) for r in records(caplog)]
    assert "cancel" in reasons


SECRETS = ("s3cr3t-token", "hunter2", "qs-secret", "body-secret", "cookie-secret", "id-tok")


def test_no_secret_in_any_record(sse_server: SSEServer, caplog: pytest.LogCaptureFixture) -> None:
    sse_server.route("/s", [[event("a"), close()], [respond(500)], [respond(401)]])
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included, but only ours is read
    session = requests.Session()
    session.cookies.set("session", "cookie-secret")
    url = sse_server.url_for("/s").replace("http://", "http://user:hunter2@") + "?key=qs-secret"
    policy = RetryPolicy(initial_delay=0, jitter=0, resend_body=True)
    with (
        pytest.raises(sse_sync.HTTPStatusError),
        sse_sync.connect(
            url,
            method="POST",
            session=session,
            headers={"Authorization": "Bearer s3cr3t-token"},
            json={"q": "body-secret"},
            retry=policy,
        ) as stream,
    ):
        list(stream)
    got = records(caplog)
    assert got
    for record in got:
        text = record.getMessage() + " " + repr(vars(record))
        for secret in SECRETS:
            assert secret not in text, (secret, text)
