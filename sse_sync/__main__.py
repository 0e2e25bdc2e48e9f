"""``python -m sse_sync``: the command line (see :mod:`sse_sync._cli`, ``--help``)."""

from __future__ import annotations

import sys

from ._cli import main as main
from ._cli import sample_bytes as sample_bytes

__all__ = ("main", "sample_bytes")

if __name__ == "__main__":
    sys.exit(main())
