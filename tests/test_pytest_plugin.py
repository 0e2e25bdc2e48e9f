"""The pytest plugin's ``sse_server`` fixture, exercised in inner pytest runs (``pytester``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(30)

REPO_DIR = Path(__file__).resolve().parents[1]
PLUGIN = "sse_sync.pytest_plugin"


def plugin_args() -> list[str]:
    """``-p sse_sync.pytest_plugin``, unless an installed entry point of another name already
    loads the module: pytest refuses one module registered under two names."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return ["-p", PLUGIN]
    for ep in metadata.entry_points(group="pytest11"):
        if ep.value == PLUGIN and ep.name != PLUGIN:
            return []
    return ["-p", PLUGIN]


def run_inner(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=textwrap.dedent(source))
    return pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "-p", "no:randomly")


def test_fixture_serves_streams_to_the_client(pytester: pytest.Pytester) -> None:
    result = run_inner(
        pytester,
        """
        import socket

        import pytest

        import sse_sync
        from sse_sync.testing import SSEServer, event, hold

        servers = []

        def test_stream(sse_server):
            assert isinstance(sse_server, SSEServer)
            assert sse_server.host == "127.0.0.1"
            sse_server.route("/feed", [event("hello", id="1"), hold()])
            with sse_sync.connect(sse_server.url_for("/feed")) as stream:
                first = next(stream)
            assert (first.data, first.id) == ("hello", "1")
            assert sse_server.wait_request("/feed").headers["Accept"] == "text/event-stream"
            sse_server.wait_disconnect()
            servers.append(sse_server)

        def test_each_test_gets_a_new_server_and_the_old_one_is_stopped(sse_server):
            assert sse_server.requests == []
            (previous,) = servers
            assert previous is not sse_server
            assert "stopped" in repr(previous)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", previous.port), timeout=5).close()
        """,
    )
    result.assert_outcomes(passed=2)


def test_server_errors_fail_the_test(pytester: pytest.Pytester) -> None:
    result = run_inner(
        pytester,
        """
        import pytest

        import sse_sync

        def broken_route(request):
            raise RuntimeError("route exploded")

        def test_route_raises(sse_server):
            sse_server.route("/feed", broken_route)
            with pytest.raises(sse_sync.HTTPStatusError) as info:
                sse_sync.connect(sse_server.url_for("/feed"))
            assert info.value.status_code == 500
        """,
    )
    # The test body passed; the fixture's teardown reports what went wrong in the server.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_route_raises*"])
    result.stdout.fnmatch_lines(["*SSEServer: 1 error(s) while serving*", "*route exploded*"])
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_importing_sse_sync_does_not_import_pytest() -> None:
    code = (
        "import sys, sse_sync, sse_sync.testing, sse_sync.__main__; "
        "print(sorted(m for m in ('pytest', '_pytest', 'sse_sync.pytest_plugin') "
        "if m in sys.modules))"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
