"""Small probes of this process's sockets, shared by the network tests."""

from __future__ import annotations

import os
import socket


def fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def client_sockets(port: int) -> int:
    """This machine's client-side TCP sockets to ``port`` still open (ESTABLISHED, CLOSE_WAIT).

    Closed sockets linger in FIN_WAIT/TIME_WAIT, owned by the kernel, not by a process."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] in ("01", "08"):
                count += 1
    return count


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
