"""The notebook example (docs/examples/notebook.ipynb) run by a real Jupyter kernel.

One kernel executes the whole notebook through nbclient; another is interrupted with
``KernelManager.interrupt_kernel()`` (what the ■ button does) while a cell streams from a
server that never ends the stream.  Kernels take seconds to start: each test starts one.
"""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from sse_sync.testing import SSEServer, event, hold  # noqa: E402

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "examples" / "notebook.ipynb"
KERNEL = "python3"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Environment for the kernels this test starts (they inherit it)."""
    # The checkout's sse_sync, whether or not it is installed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    if KERNEL not in KernelSpecManager().find_kernel_specs():
        # ipykernel's wheel installs this spec; if it is missing, write one for this
        # interpreter where only these kernels look.
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL, prefix=str(tmp_path))
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))


def text_of(outputs: list[Any]) -> str:
    """The text of a cell's outputs: printed text, plain-text displays and error names."""
    parts = []
    for output in outputs:
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            parts.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "\n".join(parts)


@pytest.mark.usefixtures("kernel_env")
def test_notebook_runs_and_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSE_SYNC_NOTEBOOK_AUTOINTERRUPT", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    # Execution order, not positions, would shift if cells were added: find them by content.
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    kernels: list[Any] = []
    client: Any = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(ROOT)}},
        # Keeps the kernel's process (a Popen) to check that nbclient ended it.
        on_notebook_start=lambda notebook: kernels.append(client.km.provisioner.process),
    )
    client.execute()
    assert len(kernels) == 1
    assert kernels[0].poll() is not None, "nbclient left its kernel running"
    outputs = [text_of(cell.outputs) for cell in code]
    ticks = next(text for text in outputs if "the stream ended" in text)
    # The live display ends showing the last event; the summary lists all five.
    assert "5 events; latest: id=5 tick: tick 5" in ticks
    assert (
        "the stream ended after 5 events: ['tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5']"
        in (ticks)
    )
    interrupted = next(cell for cell in code if "raises-exception" in cell.metadata.get("tags", []))
    assert [o["ename"] for o in interrupted.outputs if o["output_type"] == "error"] == [
        "KeyboardInterrupt"
    ]
    assert "3 events; latest: id=3: reading 3" in text_of(interrupted.outputs)
    check = next(text for text in outputs if "sse_sync threads:" in text)
    assert "open connections: 0" in check
    assert "sse_sync threads: []" in check


def iopub_until(
    kc: Any, msg_id: str, done: Any, timeout: float, seen: list[dict[str, Any]]
) -> dict[str, Any]:
    """Read the kernel's iopub messages for request ``msg_id`` until ``done(msg)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no such message within {timeout} s; saw {seen}")
        try:
            msg: dict[str, Any] = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append({"type": msg["msg_type"], "content": msg["content"]})
        if done(msg):
            return msg


def shell_reply(kc: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.0))
        if msg["parent_header"].get("msg_id") == msg_id:
            content: dict[str, Any] = msg["content"]
            return content


@pytest.mark.usefixtures("kernel_env")
def test_kernel_interrupt_stops_stream_and_leaves_no_thread(server: SSEServer) -> None:
    server.route("/forever", [event("first", id="1"), hold()])
    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(cwd=str(ROOT))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute(
            "import sse_sync\n"
            f"with sse_sync.connect({server.url_for('/forever')!r}) as stream:\n"
            "    for ev in stream:\n"
            "        print('event', ev.id, ev.data, flush=True)\n",
            # Otherwise the kernel aborts requests that arrive soon after the error.
            stop_on_error=False,
        )
        seen: list[dict[str, Any]] = []
        iopub_until(
            kc,
            msg_id,
            lambda m: m["msg_type"] == "stream" and "event 1 first" in m["content"]["text"],
            60,
            seen,
        )
        # The cell now waits for an event that never comes; interrupt it as ■ does.
        km.interrupt_kernel()
        started = time.monotonic()
        reply = shell_reply(kc, msg_id, 30)
        elapsed = time.monotonic() - started
        assert reply["status"] == "error"
        assert reply["ename"] == "KeyboardInterrupt"
        assert elapsed < 10, f"the cell took {elapsed:.1f} s to stop"
        # The with block closed the stream: the server saw the client leave ...
        server.wait_disconnect(timeout=10)
        assert server.client_disconnects == 1
        # ... and the kernel, still running, has no sse_sync thread left.
        check_id = kc.execute(
            "import threading",
            user_expressions={
                "left": "[t.name for t in threading.enumerate() if t.name.startswith('sse_sync-')]"
            },
        )
        check = shell_reply(kc, check_id, 30)
        assert check["status"] == "ok"
        assert check["user_expressions"]["left"]["data"]["text/plain"] == "[]"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert not km.is_alive()


# Run in the kernel: a thread that prints "waiting" once the main thread (where cells run) is
# blocked in Channel.take, i.e. the loop waits for the next event; nothing else tells.
TELL_WHEN_WAITING = """\
import sys, threading, time

def tell_when_waiting():
    main = threading.main_thread().ident
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame, names = sys._current_frames().get(main), []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        if "take" in names:
            print("waiting", flush=True)
            return
        time.sleep(0.001)
"""

LIBRARY_THREADS = "[t.name for t in threading.enumerate() if t.name.startswith('sse_sync-')]"
# A cancelled reader ends a moment after its socket is shut; give it that moment.
JOIN_LIBRARY_THREADS = """\
for thread in threading.enumerate():
    if thread.name.startswith("sse_sync-"):
        thread.join(5)
"""


@pytest.mark.usefixtures("kernel_env")
def test_kernel_interrupt_without_with_ends_a_waiting_stream_not_a_busy_one(
    server: SSEServer,
) -> None:
    """docs/guide/jupyter.md: without ``with``, an interrupt while the loop waits for an event
    cancels the stream; one that lands in the loop body leaves it open until ``close()``."""
    server.route("/forever", [event("first", id="1"), hold()])
    url = server.url_for("/forever")
    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(cwd=str(ROOT))
    kc = km.client()
    kc.start_channels()

    def run_until_interrupted(code: str, marker: str) -> None:
        msg_id = kc.execute(code, stop_on_error=False)
        seen: list[dict[str, Any]] = []
        iopub_until(
            kc,
            msg_id,
            lambda m: m["msg_type"] == "stream" and marker in m["content"]["text"],
            60,
            seen,
        )
        km.interrupt_kernel()
        reply = shell_reply(kc, msg_id, 30)
        assert (reply["status"], reply.get("ename")) == ("error", "KeyboardInterrupt"), seen

    def evaluate(expression: str, code: str = "") -> str:
        """The repr of ``expression`` in the kernel, after running ``code`` there."""
        check_id = kc.execute(code, user_expressions={"value": expression})
        check = shell_reply(kc, check_id, 30)
        assert check["status"] == "ok"
        value = check["user_expressions"]["value"]
        assert value["status"] == "ok", value
        return str(value["data"]["text/plain"])

    try:
        kc.wait_for_ready(timeout=60)
        # Waiting for the next event when interrupted: the stream ends, reader and connection.
        run_until_interrupted(
            TELL_WHEN_WAITING + "import sse_sync\n"
            f"waiting = sse_sync.connect({url!r})\n"
            "for ev in waiting:\n"
            "    threading.Thread(target=tell_when_waiting).start()\n",
            "waiting",
        )
        server.wait_disconnect(timeout=10)
        assert evaluate("waiting.cancelled") == "True"
        assert evaluate(LIBRARY_THREADS, code=JOIN_LIBRARY_THREADS) == "[]"
        # Busy in the loop body when interrupted: the stream stays open until close().
        run_until_interrupted(
            f"busy = sse_sync.connect({url!r})\n"
            "for ev in busy:\n"
            "    print('event', ev.id, flush=True)\n"
            # Short sleeps: SIGINT may reach another of the kernel's threads, and the main
            # thread raises KeyboardInterrupt only when it next runs Python code.
            "    for _ in range(600):\n"
            "        time.sleep(0.1)\n",
            "event 1",
        )
        assert evaluate("busy.cancelled") == "False"
        assert server.connections_open == 1
        live = evaluate(LIBRARY_THREADS)
        assert "-reader" in live, live
        assert evaluate("busy.cancelled", code="busy.close()") == "True"
        server.wait_disconnect(timeout=10)
        assert server.client_disconnects == 2
        assert evaluate(LIBRARY_THREADS, code=JOIN_LIBRARY_THREADS) == "[]"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert not km.is_alive()
