"""Suite-wide guards (no proxies from the environment, no sse_sync thread outlives its test) and
the ``server`` fixture."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sse_sync.testing import SSEServer

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Test servers live on 127.0.0.1; an inherited proxy setting must never reroute them.
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def library_threads() -> list[threading.Thread]:
    """Live threads started by sse_sync (readers and dispatchers), not by test servers."""
    return [t for t in threading.enumerate() if t.name.startswith("sse_sync-") and t.is_alive()]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(library_threads())
    yield
    leaked = [t for t in library_threads() if t not in before]
    for thread in leaked:
        # A stream that was closed ends its reader at once; allow it a moment to unwind.
        thread.join(5)
    alive = [t.name for t in leaked if t.is_alive()]
    assert not alive, f"threads outlived the test: {alive}"


@pytest.fixture
def server(sse_server: SSEServer) -> SSEServer:
    """The plugin's ``sse_server`` (a started ``SSEServer``, its errors reported at teardown),
    under the short name the network tests use."""
    return sse_server
