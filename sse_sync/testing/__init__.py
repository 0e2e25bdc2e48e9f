"""A scripted ``text/event-stream`` server for tests.

Start an :class:`SSEServer` in a test, give each path a *script* (a list of actions such as
:func:`event`, :func:`wait_for` and :func:`drop`) and point the client under test at
``server.url_for(path)``::

    import sse_sync
    from sse_sync.testing import SSEServer, event, hold

    def test_first_event():
        with SSEServer() as server:
            server.route("/feed", [event("hello", id="1"), hold()])
            with sse_sync.connect(server.url_for("/feed")) as stream:
                assert next(stream).data == "hello"
            assert server.wait_request("/feed").headers.get("accept") == "text/event-stream"
            server.wait_disconnect()  # the client really closed its connection

The server listens on ``127.0.0.1`` only, on a port the operating system picks, and uses nothing
but the standard library and attrs (it never imports requests or urllib3).  Each connection is
served by its own thread; :meth:`SSEServer.stop` (and leaving the ``with`` block) shuts every
connection down and joins every thread, so no test leaks a thread or a socket.  Exceptions raised
while serving (a route callable that fails, a :func:`wait_for` that times out) are collected in
:attr:`SSEServer.errors` and raised as one :class:`AssertionError` when the ``with`` block ends,
so a broken script fails the test instead of vanishing into a log.

Synchronise tests with :meth:`SSEServer.wait_request`, :func:`wait_for` and
:meth:`SSEServer.wait_disconnect`, never with sleeps.
"""

from typing import TypeAlias

from . import _script
from ._requests import Headers as Headers
from ._requests import RecordedRequest as RecordedRequest
from ._script import Action as Action
from ._script import Close as Close
from ._script import Drop as Drop
from ._script import Framing as Framing
from ._script import Hold as Hold
from ._script import Pause as Pause
from ._script import Respond as Respond
from ._script import Script as Script
from ._script import Send as Send
from ._script import WaitFor as WaitFor
from ._script import close as close
from ._script import comment as comment
from ._script import drop as drop
from ._script import event as event
from ._script import hold as hold
from ._script import pause as pause
from ._script import respond as respond
from ._script import send as send
from ._script import wait_for as wait_for
from ._server import SSEServer as SSEServer

ScriptLike: TypeAlias = _script.ScriptLike
"""What a route callable returns: a :class:`Script`, one action, or a list of actions."""

RouteSpec: TypeAlias = _script.RouteSpec
"""What :meth:`SSEServer.route` accepts."""

__all__ = (
    "Action",
    "Close",
    "Drop",
    "Framing",
    "Headers",
    "Hold",
    "Pause",
    "RecordedRequest",
    "Respond",
    "RouteSpec",
    "SSEServer",
    "Script",
    "ScriptLike",
    "Send",
    "WaitFor",
    "close",
    "comment",
    "drop",
    "event",
    "hold",
    "pause",
    "respond",
    "send",
    "wait_for",
)
