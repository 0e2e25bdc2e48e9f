"""A model-based test of the stream lifecycle under server faults and client actions.

A :class:`FaultServer` on 127.0.0.1 is switched between behaviours (a normal stream of numbered
events, silence before headers or mid-body, a partial event then a drop, resets, 204, 5xx,
a redirect, a one-byte trickle) while a client stream, with the private session or a user's
``requests.Session`` with an ``HTTPAdapter`` subclass mounted, is driven from several threads:
``next_event(timeout)``, iteration in another thread, ``cancel()``, ``restart()``, ``close()``,
dropping the last reference, and dispatch (``run()`` in a thread, ``start()``) to handlers that
raise.  After every step the promises of the lifecycle are checked:

* no event reaches a consumer whose call started after ``cancel()`` returned, and no handler
  runs after a handler's exception stopped dispatching;
* ``cancelled`` and ``done`` never go back, ``cancelled`` only after a cancel, ``close()``
  leaves both set, and once cancelled the next call ends iteration at once with ``done`` set;
* ``cancel()`` returns within ``CANCEL_BOUND``; ``close()`` returns within ``CLOSE_BOUND``
  with the reader thread gone, and within ``CLOSE_BOUND`` more no thread of the stream and no
  client socket to the server remains (threads counted by name, sockets held open in /proc/net/tcp);
  dropping the last reference does the same without ``gc.collect()`` (collection is disabled
  meanwhile, so a cycle cannot be reclaimed by chance);
* nothing but an ``SSEError`` or the handlers' own :class:`Boom` leaves ``connect()``,
  iteration, ``next_event()``, ``run()`` or ``join()``, and every such call returns in time;
* events are delivered exactly once and in order: the server numbers them and resumes after
  ``Last-Event-ID``, so the ids delivered are 1, 2, 3, ... whatever the reconnections;
* ``stats()``: ``events`` equals the events consumers received, ``connections`` and ``bytes``
  never exceed what the server sent, ``pending`` is 0 once the stream is done;
* a handler's exception with ``handler_errors="stop"`` ends the stream cleanly (cancelled,
  done, dispatch, reader and socket gone); with ``"continue"`` it is reported to ``on_error``
  and the stream is not cancelled.

Read timeouts are 30 s, so only the library's own wake-up can explain a prompt end.  The
interpreter's thread switch interval is lowered to ``SWITCH_INTERVAL`` for these tests: a call
that releases the GIL for a system call (``cancel()`` shuts a socket down) may otherwise wait up
to the default 5 ms to get it back from another running thread (the server's, the reader's),
which measures CPython's scheduler rather than the library.  Time bounds: ``close()`` and the
cleanups use the documented 100 ms (times ``SSE_SYNC_LIFECYCLE_SLACK``, default 1).
``cancel()`` is promised 1 ms; ``CANCEL_BOUND`` allows 5 ms (``SSE_SYNC_CANCEL_BOUND_MS``)
because on a shared 2-core machine a cancel() that does nothing but set flags and shut a socket
down was measured at 2.6 ms once in about 450 (median 30 us) when another process held the
CPU.  5 ms still fails a cancel() that waits for I/O, a lock held across a read, or a join.

Pausing (``pause``) is one of the model's actions, not synchronisation: it lets the reader move
on to another window of its lifecycle (a backoff wait, a reconnection's header wait) before the
next action.  ``test_every_state_meets_every_action`` visits each (reader state x action) pair
once, deterministically; the state machine explores sequences of them.  A broken promise does
not stop a run: every one is collected, each on a line naming the step, and reported at the end.
``test_invariants_catch_injected_bugs`` shows that each kind of check can fail.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from _fault_server import BURST, Behaviour, FaultServer, held_sockets
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import sse_sync
import sse_sync._reader
from sse_sync import Event, EventStream, RetryPolicy, SSEError

# As in test_decoder_properties: import Hypothesis's patch writer now, with its
# DeprecationWarning silenced, so that a failing example is reported as an ordinary failure.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

pytestmark = [pytest.mark.network]

SLACK = float(os.environ.get("SSE_SYNC_LIFECYCLE_SLACK", "") or 1.0)
SWITCH_INTERVAL = 0.0005
CANCEL_BOUND = float(os.environ.get("SSE_SYNC_CANCEL_BOUND_MS", "") or 5.0) / 1000
CLOSE_BOUND = 0.1 * SLACK
CANCEL_CLEANUP = 1.0 * SLACK
"""After cancel() (not close()), the reader and its socket go "at once": this long at most."""
SOAK_SECONDS = float(os.environ.get("SSE_SYNC_SOAK_SECONDS", "0") or 0)
TIMEOUT = (5.0, 30.0)

HANDLER = "a message handler"

FIRST_BEHAVIOURS = [b for b in Behaviour if b is not Behaviour.SILENT_HEADERS]
"""What the first connection may meet: connect() itself has only its timeouts to end a wait."""


@pytest.fixture(autouse=True)
def _short_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class Boom(Exception):
    """A handler's own exception: allowed to leave run() and join(), and nothing else."""


class UserAdapter(requests.adapters.HTTPAdapter):
    """A user's subclass of requests' adapter, mounted for the server's URL."""

    def __init__(self) -> None:
        super().__init__()
        # A list, shared with the private copy the stream sends through (same class, same
        # attributes): an int would be counted in the copy only.
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:  # type: ignore[override]
        self.sent.append(str(request.url))
        return super().send(request, **kwargs)  # type: ignore[arg-type]


def eventually(predicate: Callable[[], bool], bound: float) -> bool:
    """Whether ``predicate`` holds within ``bound`` seconds (polled every millisecond)."""
    deadline = time.perf_counter() + bound
    while not predicate():
        if time.perf_counter() > deadline:
            return predicate()
        time.sleep(0.001)
    return True


@dataclass
class Dispatch:
    """One dispatch of the stream's handlers, in ``run()`` on a model thread or ``start()``."""

    kind: str
    mode: str
    how: str
    on_error: bool
    thread: threading.Thread | None = None
    fired: list[float] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    closed: int = 0
    outcome: str | None = None


class Harness:
    """One client stream at a time against ``server``, the records of what it delivered, and
    the invariants.  Violations seen in other threads are recorded and raised by ``check()``."""

    def __init__(
        self,
        server: FaultServer,
        *,
        user_session: bool,
        max_queue: int = 1024,
        initial_delay: float = 0.01,
        max_delay: float = 0.1,
    ) -> None:
        self.server = server
        self.adapter: UserAdapter | None = None
        self.session: requests.Session | None = None
        if user_session:
            self.session = requests.Session()
            self.adapter = UserAdapter()
            self.session.mount(f"http://127.0.0.1:{server.port}/", self.adapter)
        self.max_queue = max_queue
        self.policy = RetryPolicy(initial_delay=initial_delay, max_delay=max_delay, jitter=0)
        self.baseline = {t for t in threading.enumerate() if t.name.startswith("sse_sync-")}
        self.lock = threading.Lock()
        self.violations: list[str] = []
        self.stream: EventStream | None = None
        self._reset_records()

    def _reset_records(self) -> None:
        self.delivered: list[int] = []
        self.cancel_returned: float | None = None
        self.late_handler_calls = 0
        self.cancel_asked = False
        self.closed = False
        self.was_done = False
        self.was_cancelled = False
        self.consumer: threading.Thread | None = None
        self.dispatch: Dispatch | None = None
        self.requests_before = self.server.requests()
        self.bytes_before = self.server.bytes_sent

    # -- observation -----------------------------------------------------------------------

    def where(self) -> str:
        """The server's behaviour and the client's threads and sockets, for messages."""
        threads = sorted(t.name for t in self.stream_threads())
        return (
            f"[server: {self.server.behaviour.value}; threads {threads}; "
            f"sockets {held_sockets(self.server.port)}; "
            f"session: {'user' if self.session else 'private'}; max_queue={self.max_queue}]"
        )

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(f"{text} {self.where()}")

    def stream_threads(self) -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t.name.startswith("sse_sync-") and t.is_alive() and t not in self.baseline
        ]

    def readers(self) -> list[threading.Thread]:
        return [t for t in self.stream_threads() if t.name.endswith("-reader")]

    def nothing_left(self) -> bool:
        return not self.stream_threads() and held_sockets(self.server.port) == 0

    def consumer_busy(self) -> bool:
        if self.consumer is not None and self.consumer.is_alive():
            return True
        return self.dispatch is not None and self._dispatch_alive()

    def _dispatch_alive(self) -> bool:
        d = self.dispatch
        if d is None:
            return False
        if d.thread is not None:
            return d.thread.is_alive()
        return any(t.name.endswith("-dispatch") for t in self.stream_threads())

    def deliver(self, ev: Event, started: float, who: str) -> None:
        """Record an event a consumer received; ``started`` is when its call began."""
        with self.lock:
            cancel_returned = self.cancel_returned
            self.delivered.append(int(ev.id))
        late = cancel_returned is not None and started > cancel_returned
        if late and (who != HANDLER or self._late_handler_call()):
            self.violation(f"no event after cancel(): {who} got event {ev.id}")
        if ev.data != ev.id:
            self.violation(f"event {ev.id} carries data {ev.data!r}")

    def _late_handler_call(self) -> bool:
        # The dispatcher may have taken an event out of the stream just before cancel() and
        # call its handler just after: that one call is in flight, not delivered after cancel.
        with self.lock:
            self.late_handler_calls += 1
            return self.late_handler_calls > 1

    def escaped(self, exc: BaseException, where: str) -> None:
        """An exception left a public call: only SSEError and the handlers' Boom may."""
        if not isinstance(exc, (SSEError, Boom)):
            self.violation(f"no non-SSEError escapes: {where} raised {type(exc).__name__}: {exc}")

    # -- actions ---------------------------------------------------------------------------

    def connect(self, behaviour: Behaviour = Behaviour.NORMAL) -> None:
        assert self.stream is None
        self._reset_records()
        self.server.behaviour = behaviour
        started = time.perf_counter()
        try:
            self.stream = sse_sync.connect(
                self.server.url,
                session=self.session,
                retry=self.policy,
                timeout=TIMEOUT,
                max_queue=self.max_queue,
            )
        except BaseException as exc:
            self.escaped(exc, "connect()")
            if not eventually(self.nothing_left, CLOSE_BOUND):
                self.violation(f"a failed connect() leaves nothing: after {type(exc).__name__}")
            return
        finally:
            if time.perf_counter() - started > TIMEOUT[1]:
                self.violation("every wait is finite: connect() outlasted its read timeout")

    def next_event(self, timeout: float) -> None:
        stream = self.stream
        assert stream is not None
        started = time.perf_counter()
        try:
            ev = stream.next_event(timeout)
        except BaseException as exc:
            self.escaped(exc, f"next_event({timeout})")
            return
        finally:
            elapsed = time.perf_counter() - started
            if elapsed > timeout + CLOSE_BOUND:
                self.violation(f"every wait is finite: next_event({timeout}) took {elapsed:.3f} s")
        if ev is not None:
            self.deliver(ev, started, f"next_event({timeout})")

    def take_in_thread(self, count: int) -> None:
        stream = self.stream
        assert stream is not None
        assert not self.consumer_busy()

        def take() -> None:
            try:
                for _ in range(count):
                    started = time.perf_counter()
                    ev = next(stream, None)
                    if ev is None:
                        return
                    self.deliver(ev, started, "iteration in another thread")
            except BaseException as exc:
                self.escaped(exc, "iteration")

        self.consumer = threading.Thread(target=take, name="model-consumer", daemon=True)
        self.consumer.start()

    def cancel(self) -> None:
        stream = self.stream
        assert stream is not None
        self.cancel_asked = True
        started = time.perf_counter()
        stream.cancel()
        returned = time.perf_counter()
        with self.lock:
            if self.cancel_returned is None:
                self.cancel_returned = returned
        if returned - started > CANCEL_BOUND:
            self.violation(
                f"cancel() returns within {CANCEL_BOUND * 1e3:.1f} ms: it took "
                f"{(returned - started) * 1e3:.2f} ms"
            )

    def restart(self) -> None:
        stream = self.stream
        assert stream is not None
        started = time.perf_counter()
        stream.restart()
        elapsed = time.perf_counter() - started
        if elapsed > CLOSE_BOUND:
            self.violation(f"restart() is non-blocking: it took {elapsed * 1e3:.1f} ms")

    def close(self) -> None:
        stream = self.stream
        assert stream is not None
        self.cancel_asked = True
        started = time.perf_counter()
        stream.close()
        returned = time.perf_counter()
        with self.lock:
            if self.cancel_returned is None:
                self.cancel_returned = returned
        self.closed = True
        if returned - started > CLOSE_BOUND:
            self.violation(
                f"close() returns within {CLOSE_BOUND * 1e3:.0f} ms: it took "
                f"{(returned - started) * 1e3:.0f} ms"
            )
        if self.readers():
            self.violation("close() returns with the reader thread gone: it is still running")
        if not eventually(self.nothing_left, CLOSE_BOUND):
            self.violation(
                f"within {CLOSE_BOUND * 1e3:.0f} ms of close() no thread or socket of the "
                "stream remains"
            )
        self._check_stream(stream)  # recorded; the next check() reports them
        self._end_dispatch()
        self.stream = None

    def drop(self) -> None:
        """Drop the last reference; the stream must be cancelled at once, without collection."""
        assert self.stream is not None
        assert not self.consumer_busy()
        self.consumer = None
        self.dispatch = None
        self.cancel_asked = True
        gc.disable()
        try:
            self.stream = None
            if not eventually(self.nothing_left, CLOSE_BOUND):
                self.violation(
                    "dropping the last reference cancels the stream at once: reader or socket "
                    f"still there {CLOSE_BOUND * 1e3:.0f} ms later without gc.collect()"
                )
        finally:
            gc.enable()
        gc.collect()
        if not eventually(self.nothing_left, CLOSE_BOUND):
            self.violation("a dropped stream leaves nothing even after gc.collect()")

    def dispatch_to_raising_handler(self, kind: str, mode: str, how: str, on_error: bool) -> None:
        """Register handlers, one of which (``kind``) raises Boom each time it is called, then
        dispatch in ``run()`` on a model thread or with ``start()``."""
        stream = self.stream
        assert stream is not None
        assert not self.consumer_busy()
        assert self.dispatch is None
        d = Dispatch(kind, mode, how, on_error)
        self.dispatch = d

        def entered() -> float:
            now = time.perf_counter()
            if d.fired and d.mode == "stop":
                self.violation(
                    f"no handler runs after a handler's exception stopped dispatch ({kind})"
                )
            return now

        def boom(what: str) -> None:
            if kind == what:
                with self.lock:
                    d.fired.append(time.perf_counter())
                raise Boom(what)

        def on_message(ev: Event) -> None:
            self.deliver(ev, entered(), HANDLER)
            boom("message")

        def on_open(_: object) -> None:
            entered()
            boom("open")

        def on_retry(_: BaseException | None, __: float) -> None:
            entered()
            boom("retry")

        def on_comment(_: str) -> None:
            entered()
            boom("comment")

        def on_error_handler(exc: BaseException) -> None:
            with self.lock:
                d.reported.append(type(exc).__name__)

        def on_close() -> None:
            d.closed += 1

        stream.on("message", on_message).on_open(on_open).on_retry(on_retry)
        stream.on_comment(on_comment).on_close(on_close)
        if on_error:
            stream.on_error(on_error_handler)
        if how == "start":
            stream.start(handler_errors=mode)
            return

        def run() -> None:
            try:
                stream.run(handler_errors=mode)
                d.outcome = "returned"
            except BaseException as exc:
                d.outcome = type(exc).__name__
                self.escaped(exc, "run()")

        d.thread = threading.Thread(target=run, name="model-run", daemon=True)
        d.thread.start()

    def _end_dispatch(self) -> None:
        # After close(): dispatch ends in time, and join() gives no foreign exception.
        d = self.dispatch
        stream = self.stream
        if d is None or stream is None:
            return
        if d.how == "start":
            try:
                stream.join(CLOSE_BOUND)
                d.outcome = "returned"
            except TimeoutError:
                self.violation("every wait is finite: dispatch still running after close()")
            except BaseException as exc:
                d.outcome = type(exc).__name__
                self.escaped(exc, "join()")
        elif d.thread is not None:
            d.thread.join(CLOSE_BOUND)
            if d.thread.is_alive():
                self.violation("every wait is finite: run() still running after close()")
        if d.closed != 1:
            self.violation(f"on_close runs once when dispatch ends: it ran {d.closed} times")
        if d.fired and not d.on_error and d.outcome not in (None, "Boom"):
            self.violation(f"an unreported handler exception is raised from {d.how}: {d.outcome}")
        if d.on_error and d.outcome not in (None, "returned"):
            self.violation(f"with on_error, errors are reported, not raised: {d.outcome}")
        if d.on_error and d.mode == "continue" and len(d.reported) < len(d.fired):
            self.violation(
                f"handler_errors='continue' reports each handler exception: {len(d.fired)} "
                f"raised, {len(d.reported)} reported"
            )

    def finish(self) -> list[str]:
        """End of a run: close the stream if one is open, then the user's session; the broken
        promises not yet collected."""
        if self.stream is not None:
            self.close()
        if self.adapter is not None and self.server.requests() and not self.adapter.sent:
            self.violation("the user's mounted adapter carried the requests: it sent none")
        violations = self.collect()
        if self.session is not None:
            self.session.close()
        return violations

    # -- invariants ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise AssertionError naming every broken promise (one line each)."""
        violations = self.collect()
        assert not violations, "\n".join(violations)

    def collect(self) -> list[str]:
        """Check the stream's invariants now; the broken promises, recorded ones included."""
        stream = self.stream
        if stream is not None:
            self._check_stream(stream)
        with self.lock:
            violations, self.violations = self.violations, []
        return violations

    def _check_stream(self, stream: EventStream) -> None:
        d = self.dispatch
        cancelled, done = stream.cancelled, stream.done
        if self.was_cancelled and not cancelled:
            self.violation("cancelled never goes back to False")
        if self.was_done and not done:
            self.violation("done never goes back to False")
        stopped = d is not None and d.mode == "stop" and bool(d.fired)
        if cancelled and not (self.cancel_asked or stopped):
            self.violation("cancelled only after cancel(), close() or a stopping handler")
        if self.cancel_asked and not cancelled:
            self.violation("cancelled is True once cancel() or close() was called")
        if self.closed and not done:
            self.violation("done is True after close()")
        if (
            d is not None
            and d.mode == "continue"
            and d.fired
            and cancelled
            and not self.cancel_asked
        ):
            self.violation("handler_errors='continue': a handler's exception cancelled the stream")
        self.was_cancelled, self.was_done = cancelled, done

        if stopped:
            ended = eventually(
                lambda: (
                    not self._dispatch_alive()
                    and stream.cancelled
                    and stream.done
                    and self.nothing_left()
                ),
                CLOSE_BOUND,
            )
            if not ended:
                assert d is not None
                self.violation(
                    f"a handler's exception ({d.kind}, handler_errors='stop', {d.how}) ends the "
                    f"stream cleanly: dispatch alive {self._dispatch_alive()}, cancelled "
                    f"{stream.cancelled}, done {stream.done}"
                )
        if (
            cancelled
            and not self.closed
            and not self.consumer_busy()
            and not eventually(self.nothing_left, CANCEL_CLEANUP)
        ):
            self.violation(
                f"after cancel() the reader and its socket go at once (within "
                f"{CANCEL_CLEANUP:.1f} s)"
            )
        if cancelled and self.consumer is not None:
            self.consumer.join(CLOSE_BOUND)
            if self.consumer.is_alive():
                self.violation("every wait is finite: iteration still blocked after cancel()")
        if cancelled and not self.consumer_busy() and (d is None or not self._dispatch_alive()):
            started = time.perf_counter()
            try:
                ev = stream.next_event(0)
            except BaseException as exc:
                self.escaped(exc, "next_event(0) after cancel")
                ev = None
            if ev is not None:
                self.deliver(ev, started, "next_event(0) after cancel")
            if not stream.done:
                self.violation("done is True once a cancelled stream's iteration has ended")

        with self.lock:
            ids = list(self.delivered)
        if ids != list(range(1, len(ids) + 1)):
            self.violation(f"events are delivered once and in order: ids {ids}")
        if not self.consumer_busy():
            stats = stream.stats()
            if stats.events != len(ids):
                self.violation(
                    f"stats().events matches what was delivered: {stats.events} counted, "
                    f"{len(ids)} delivered"
                )
            if stream.done and stats.pending:
                self.violation(f"stats().pending is 0 once done: {stats.pending}")
            answered = self.server.requests() - self.requests_before
            if not 1 <= stats.connections <= answered:
                self.violation(
                    f"stats().connections is between 1 and the {answered} requests the server "
                    f"saw: {stats.connections}"
                )
            sent = self.server.bytes_sent - self.bytes_before
            if stats.bytes > sent:
                self.violation(f"stats().bytes {stats.bytes} > {sent} sent")


# -- the state machine --------------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    """Random interleavings of server behaviour and client actions on one stream at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.server = FaultServer().__enter__()
        self.h: Harness | None = None
        self.step = 0
        self.last = ""
        self.found: list[str] = []
        self.seen: set[str] = set()

    def did(self, what: str) -> None:
        self.step += 1
        self.last = what

    @property
    def harness(self) -> Harness:
        assert self.h is not None
        return self.h

    # Preconditions read the model's own flags, never a thread's progress, so that a sequence
    # of steps replays the same way (Hypothesis requires it to shrink and reproduce).
    consumer_started = False
    dispatched = False

    def has_stream(self) -> bool:
        return self.h is not None and self.h.stream is not None

    def idle_stream(self) -> bool:
        return self.has_stream() and not self.consumer_started and not self.dispatched

    def stream_gone(self) -> None:
        self.consumer_started = self.dispatched = False

    @initialize(
        user_session=st.booleans(),
        max_queue=st.sampled_from([1, 1024]),
        initial_delay=st.sampled_from([0.01, 0.05]),
    )
    def start(self, user_session: bool, max_queue: int, initial_delay: float) -> None:
        self.did(f"connect(user_session={user_session}, max_queue={max_queue})")
        self.h = Harness(
            self.server, user_session=user_session, max_queue=max_queue, initial_delay=initial_delay
        )
        self.h.connect(Behaviour.NORMAL)

    @precondition(lambda self: self.h is not None and self.h.stream is None)
    @rule(behaviour=st.sampled_from(FIRST_BEHAVIOURS))
    def connect(self, behaviour: Behaviour) -> None:
        self.did(f"connect() to {behaviour.value}")
        self.stream_gone()
        self.harness.connect(behaviour)

    @rule(behaviour=st.sampled_from(list(Behaviour)))
    def server_behaviour(self, behaviour: Behaviour) -> None:
        self.did(f"server: {behaviour.value}")
        self.server.behaviour = behaviour

    @rule(reset=st.booleans())
    def server_ends_connections(self, reset: bool) -> None:
        self.did(f"server ends connections (reset={reset})")
        self.server.kick(reset=reset)

    @precondition(lambda self: self.has_stream())
    @rule(behaviour=st.sampled_from(list(Behaviour)), reset=st.booleans())
    def server_fault(self, behaviour: Behaviour, reset: bool) -> None:
        # The three steps above in one, so that short runs reach the reconnection windows.
        self.did(f"server: {behaviour.value}, ends connections (reset={reset}), await request")
        self.server.behaviour = behaviour
        seen = self.server.requests()
        self.server.kick(reset=reset)
        self.server.wait(lambda s: s.requests() > seen, 0.3)

    @precondition(lambda self: self.has_stream())
    @rule(restart=st.booleans())
    def reconnect_into_silence(self, restart: bool) -> None:
        # The window most easily missed, a reconnection waiting for headers, as a rule of its
        # own: drawn among eleven behaviours it came up too rarely in a bounded run.
        self.did(f"server: silent before headers, {'restart()' if restart else 'drop'}, await")
        self.server.behaviour = Behaviour.SILENT_HEADERS
        seen = self.server.requests()
        if restart:
            self.harness.restart()
        else:
            self.server.kick()
        self.server.wait(lambda s: s.requests() > seen, 0.3)

    @precondition(lambda self: self.has_stream())
    @rule()
    def await_next_request(self) -> None:
        self.did("await the next request")
        seen = self.server.requests()
        self.server.wait(lambda s: s.requests() > seen, 0.3)

    @rule(ms=st.integers(0, 30))
    def pause(self, ms: int) -> None:
        self.did(f"pause {ms} ms")
        time.sleep(ms / 1000)

    @precondition(lambda self: self.idle_stream())
    @rule(timeout=st.sampled_from([0.0, 0.01, 0.05]))
    def next_event(self, timeout: float) -> None:
        self.did(f"next_event({timeout})")
        self.harness.next_event(timeout)

    @precondition(lambda self: self.idle_stream())
    @rule(count=st.integers(1, 12))
    def take_in_thread(self, count: int) -> None:
        self.did(f"iterate {count} in a thread")
        self.consumer_started = True
        self.harness.take_in_thread(count)

    @precondition(lambda self: self.has_stream())
    @rule()
    def cancel(self) -> None:
        self.did("cancel()")
        self.harness.cancel()

    @precondition(lambda self: self.has_stream())
    @rule()
    def restart(self) -> None:
        self.did("restart()")
        self.harness.restart()

    @precondition(lambda self: self.has_stream())
    @rule()
    def close(self) -> None:
        self.did("close()")
        self.harness.close()
        self.stream_gone()

    @precondition(lambda self: self.idle_stream())
    @rule()
    def drop(self) -> None:
        self.did("drop the last reference")
        self.harness.drop()
        self.stream_gone()

    @precondition(lambda self: self.idle_stream())
    @rule(
        kind=st.sampled_from(["message", "open", "retry", "comment"]),
        mode=st.sampled_from(["stop", "continue"]),
        how=st.sampled_from(["run", "start"]),
        on_error=st.booleans(),
    )
    def dispatch(self, kind: str, mode: str, how: str, on_error: bool) -> None:
        self.did(f"{how}(handler_errors={mode!r}), {kind} handler raises, on_error={on_error}")
        self.dispatched = True
        self.harness.dispatch_to_raising_handler(kind, mode, how, on_error)

    # A broken promise is recorded, and the run goes on to its end: when a violation shows
    # depends on timing, so failing at once would make the number of steps drawn vary between
    # replays, which Hypothesis cannot shrink.  teardown() reports them all.
    @invariant()
    def lifecycle_promises(self) -> None:
        if self.h is not None:
            self.record(self.h.collect())

    def record(self, violations: list[str]) -> None:
        # Each broken promise once, at the first step it was seen broken.
        for v in violations:
            if v not in self.seen:
                self.seen.add(v)
                self.found.append(f"step {self.step} ({self.last}): {v}")

    def teardown(self) -> None:
        try:
            if self.h is not None:
                self.last = "teardown: close()"
                self.record(self.h.finish())
        finally:
            self.server.stop()
        assert not self.found, "broken promises:\n" + "\n".join(self.found)


# Sized so that the bounded run takes about half a minute on this 2-core machine when every
# promise holds (shrinking a failure takes longer).
BOUNDED = settings(
    max_examples=30,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# Typed through a variable: older hypothesis releases leave the runner unannotated, newer annotate
# it, and a call site's ignore comment would be wrong for one of them.
_run_machine: Callable[..., None] = run_state_machine_as_test


def run_machine(config: settings) -> None:
    _run_machine(LifecycleMachine, settings=config)


@pytest.mark.timeout(180)
def test_lifecycle_model() -> None:
    run_machine(BOUNDED)


@pytest.mark.soak
@pytest.mark.timeout(180 + SOAK_SECONDS)
def test_soak_lifecycle_model() -> None:
    # CI runs soak tests too, so by default this is one short round of longer runs with fresh
    # random seeds; SSE_SYNC_SOAK_SECONDS asks for more rounds until that time is up.  No
    # shrinking: replaying 40-step runs full of waits would take minutes; the printed blob
    # (@reproduce_failure) replays the failing run as found.
    soak = settings(
        BOUNDED,
        derandomize=False,
        max_examples=10,
        stateful_step_count=40,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    deadline = time.monotonic() + SOAK_SECONDS
    run_machine(soak)
    while time.monotonic() < deadline:
        run_machine(soak)


# -- every state meets every action, once ---------------------------------------------------


@dataclass(frozen=True)
class State:
    """A window of the reader's lifecycle and how to bring a fresh stream into it."""

    name: str
    enter: Callable[[Harness], None]
    max_queue: int = 1024
    initial_delay: float = 0.01


def _wait(h: Harness, predicate: Callable[[FaultServer], bool], what: str) -> None:
    assert h.server.wait(predicate, 5), f"setting up the state: {what} never happened"


def _streaming(h: Harness) -> None:
    h.connect(Behaviour.NORMAL)
    _wait(h, lambda s: s.bursts_done >= 1, "the burst")


def _reconnecting_to(behaviour: Behaviour, requests_seen: int) -> Callable[[Harness], None]:
    def enter(h: Harness) -> None:
        _streaming(h)
        h.server.behaviour = behaviour
        h.server.kick()
        _wait(h, lambda s: s.requests() >= requests_seen, f"{requests_seen} requests")

    return enter


def _restarting_to_silence(h: Harness) -> None:
    _streaming(h)
    h.server.behaviour = Behaviour.SILENT_HEADERS
    h.restart()
    _wait(h, lambda s: s.requests() >= 2, "the restart's request")


def _backoff(h: Harness) -> None:
    _streaming(h)
    h.server.kick()
    assert eventually(lambda: held_sockets(h.server.port) == 0, 5), "the reader let go"
    assert h.server.requests() == 1, "still in the backoff wait"


def _connected_with(behaviour: Behaviour, requests_seen: int) -> Callable[[Harness], None]:
    def enter(h: Harness) -> None:
        h.connect(behaviour)
        _wait(h, lambda s: s.requests() >= requests_seen, f"{requests_seen} requests")

    return enter


_connected = _connected_with(Behaviour.NORMAL, 1)


def _trickling(h: Harness) -> None:
    h.connect(Behaviour.TRICKLE)
    _wait(h, lambda s: s.bytes_sent >= 5, "a few bytes")


def _silent_mid_body(h: Harness) -> None:
    h.connect(Behaviour.SILENT_BODY)
    _wait(h, lambda s: s.bytes_sent > 0, "the first event")


STATES = [
    State("streaming", _streaming),
    State("queue full (max_queue=1)", _streaming, max_queue=1),
    State("silent mid-body", _silent_mid_body),
    State("slow trickle", _trickling),
    State("reconnection waits for headers", _reconnecting_to(Behaviour.SILENT_HEADERS, 2)),
    State("restart waits for headers", _restarting_to_silence),
    State("backoff wait", _backoff, initial_delay=3.0),
    State("5xx with Retry-After: 0, retrying", _reconnecting_to(Behaviour.ERROR_RETRY_AFTER, 3)),
    State("500, retrying", _reconnecting_to(Behaviour.ERROR, 3)),
    State("reset before headers, retrying", _reconnecting_to(Behaviour.RESET_HEADERS, 3)),
    State("redirected reconnection", _reconnecting_to(Behaviour.REDIRECT, 3)),
    State("reconnection answered 204", _reconnecting_to(Behaviour.NO_CONTENT, 2)),
    State("204 at connect", _connected_with(Behaviour.NO_CONTENT, 1)),
    State("partial event then drop, retrying", _connected_with(Behaviour.PARTIAL_DROP, 2)),
    State("reset mid-body, retrying", _connected_with(Behaviour.RESET, 2)),
]


def _taker_then_cancel(h: Harness) -> None:
    h.take_in_thread(1000)
    time.sleep(0.02)  # the model's "time passes": the consumer is now blocked or consuming
    h.cancel()


ACTIONS: dict[str, Callable[[Harness], None]] = {
    "cancel": Harness.cancel,
    "close": Harness.close,
    "restart": Harness.restart,
    "next_event(0.05)": lambda h: h.next_event(0.05),
    "iterate in a thread, then cancel": _taker_then_cancel,
    "drop the last reference": Harness.drop,
    "on_open raises (stop, start)": lambda h: h.dispatch_to_raising_handler(
        "open", "stop", "start", False
    ),
    "message handler raises (continue, run)": lambda h: h.dispatch_to_raising_handler(
        "message", "continue", "run", True
    ),
}


# Every pair once; the session alternates so that each state and each action meets both the
# private session and a user's session with an HTTPAdapter subclass.
PAIRS = [
    pytest.param(state, action, (i + j) % 2 == 1, id=f"{state.name}-{action}-{session}")
    for i, state in enumerate(STATES)
    for j, action in enumerate(ACTIONS)
    for session in [("private", "user session")[(i + j) % 2]]
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("state", "action", "user_session"), PAIRS)
def test_every_state_meets_every_action(state: State, action: str, user_session: bool) -> None:
    with FaultServer() as server:
        h = Harness(
            server,
            user_session=user_session,
            max_queue=state.max_queue,
            initial_delay=state.initial_delay,
        )
        violations: list[str] = []
        try:
            state.enter(h)
            violations += h.collect()
            if h.stream is None:
                pytest.fail(f"setting up {state.name}: connect() failed")
            ACTIONS[action](h)
            violations += h.collect()
        finally:
            violations += h.finish()
    assert not violations, "broken promises:\n" + "\n".join(dict.fromkeys(violations))


# -- the invariants can fail ----------------------------------------------------------------


def _broken(h: Harness, action: Callable[[Harness], None]) -> str:
    """What ``action`` on ``h``'s stream breaks, as one text (empty if nothing)."""
    action(h)
    return "\n".join(h.collect())


def _cancel_then_read(h: Harness) -> None:
    h.cancel()
    h.next_event(0.05)


def _take_across_a_reconnection(h: Harness) -> None:
    for _ in range(BURST):
        h.next_event(1)
    h.server.kick()
    h.server.wait(lambda s: s.requests() >= 2, 5)
    for _ in range(3):
        h.next_event(1)


def _iterate(h: Harness) -> None:
    h.take_in_thread(3)
    assert h.consumer is not None
    h.consumer.join(5)


@pytest.mark.timeout(60)
# "socket never closed" leaks sockets on purpose; the collector finds them later.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("bug", "state", "action", "promise"),
    [
        pytest.param(*case, id=f"{case[0]}: {case[3]}")
        for case in [
            ("slow cancel", _streaming, Harness.cancel, "cancel() returns within"),
            ("cancel ignored", _streaming, _cancel_then_read, "no event after cancel()"),
            ("cancel ignored", _streaming, _cancel_then_read, "cancelled is True once cancel()"),
            ("close does not wait", _silent_mid_body, Harness.close, "reader thread gone"),
            ("socket never closed", _streaming, Harness.close, "no thread or socket"),
            ("no Last-Event-ID", _streaming, _take_across_a_reconnection, "once and in order"),
            ("foreign exception", _connected, _iterate, "no non-SSEError escapes"),
            ("stats off by one", _streaming, Harness.restart, "stats().events matches"),
        ]
    ],
)
def test_invariants_catch_injected_bugs(
    monkeypatch: pytest.MonkeyPatch,
    bug: str,
    state: Callable[[Harness], None],
    action: Callable[[Harness], None],
    promise: str,
) -> None:
    """Each promise is reported broken on a client with a bug that breaks it, and (where
    today's client keeps it in that state) not without the bug: the checks can fail."""
    import sse_sync._client as client
    import sse_sync._transport as transport

    def run(inject: bool) -> str:
        with FaultServer() as server:
            h = Harness(server, user_session=False)
            leaked: list[Any] = []
            try:
                with monkeypatch.context() as patch:
                    if inject:
                        _inject(patch, bug, client, transport, leaked)
                    state(h)
                    assert h.stream is not None
                    return _broken(h, action)
            finally:
                h.violations.clear()
                h.finish()  # without the bug: the stream ends as it should
                for connection in leaked:
                    connection.close()

    assert promise in run(inject=True)
    assert promise not in run(inject=False)


def _inject(
    patch: pytest.MonkeyPatch, bug: str, client: object, transport: object, leaked: list[Any]
) -> None:
    reader_class = sse_sync._reader.Reader
    reader_cancel = reader_class.cancel
    stream_class = client._Stream  # type: ignore[attr-defined]
    if bug == "slow cancel":

        def slow(self: sse_sync._reader.Reader) -> None:
            time.sleep(max(0.01, 3 * CANCEL_BOUND))
            reader_cancel(self)

        patch.setattr(reader_class, "cancel", slow)
    elif bug == "cancel ignored":
        patch.setattr(stream_class, "cancel", lambda self: None)
    elif bug == "close does not wait":

        def close(self: object, timeout: float | None = None) -> None:
            self._consumer.done.set()  # type: ignore[attr-defined]
            reader = self._reader  # type: ignore[attr-defined]
            reader.cancelled = True
            reader.channel.cancel()  # the socket is not woken, the reader not awaited

        patch.setattr(stream_class, "close", close)
    elif bug == "socket never closed":
        # Both ways the stream closes its sockets (the response, its private pools) skipped,
        # and the responses kept alive, as a leak would: nothing then closes them.
        # The tracker's full shutdown is skipped too: a socket shut down both ways leaves the
        # kernel's table (TIME_WAIT, inode 0) even while a descriptor still holds it.
        patch.setattr(transport.Connection, "close", leaked.append)  # type: ignore[attr-defined]
        patch.setattr(transport.Transport, "release", lambda self: None)  # type: ignore[attr-defined]
        patch.setattr(transport.Tracker, "interrupt", lambda self: None)  # type: ignore[attr-defined]
    elif bug == "no Last-Event-ID":
        build = transport.build_headers  # type: ignore[attr-defined]
        patch.setattr(client, "build_headers", lambda h, _, a: build(h, "", a))
    elif bug == "foreign exception":

        def chunks(self: object) -> Iterator[bytes]:
            yield from ()
            raise RuntimeError("a bug in the reader")

        patch.setattr(transport.Connection, "chunks", chunks)  # type: ignore[attr-defined]
    else:
        stats = stream_class.stats

        def more(self: object) -> sse_sync.StreamStats:
            real = stats(self)
            return sse_sync.StreamStats(
                events=real.events + 1,
                bytes=real.bytes,
                connections=real.connections,
                connected_seconds=real.connected_seconds,
                pending=real.pending,
            )

        patch.setattr(stream_class, "stats", more)
