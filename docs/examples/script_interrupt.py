"""Print the events of an SSE stream until Ctrl-C.

Usage: ``python script_interrupt.py URL``

Ctrl-C raises ``KeyboardInterrupt`` in the ``for`` loop (even while it waits for the next
event); leaving the ``with`` block closes the stream, which stops the reader thread and closes
the socket before the interpreter exits.  The interrupt is not caught, so the script ends with
the usual traceback and exit status.
"""

from __future__ import annotations

import sys

import sse_sync


def main(url: str) -> None:
    """Print each event of ``url`` as ``ID TYPE: DATA``, one line each."""
    with sse_sync.connect(url) as stream:
        for event in stream:
            print(f"{event.id or '-'} {event.event}: {event.data}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} URL")
    main(sys.argv[1])
