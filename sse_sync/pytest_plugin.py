"""pytest plugin: the ``sse_server`` fixture, a started :class:`~sse_sync.testing.SSEServer`.

Installed with sse_sync under the ``pytest11`` entry point, so the fixture is available in
every test session without configuration; load it by hand with ``-p sse_sync.pytest_plugin``
or ``pytest_plugins = ["sse_sync.pytest_plugin"]``.  Nothing in ``sse_sync`` imports this module:
pytest is imported only when pytest itself loads the plugin.

::

    import sse_sync
    from sse_sync.testing import event, hold

    def test_first_event(sse_server):
        sse_server.route("/feed", [event("hello", id="1"), hold()])
        with sse_sync.connect(sse_server.url_for("/feed")) as stream:
            assert next(stream).data == "hello"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import SSEServer

__all__ = ("sse_server",)


@pytest.fixture
def sse_server() -> Iterator[SSEServer]:
    """A started :class:`~sse_sync.testing.SSEServer` on ``127.0.0.1``, stopped after the test.

    At teardown every connection is closed and every server thread joined; if anything failed
    while serving (a route callable raised, a ``wait_for`` timed out), the test errors with the
    server's report.
    """
    server = SSEServer().start()
    try:
        yield server
    finally:
        server.stop()
    try:
        server.assert_no_errors()
    except AssertionError as exc:
        report = str(exc)
    else:
        return
    # The report holds each serving error's traceback; the fixture's own would be noise.
    pytest.fail(report, pytrace=False)
