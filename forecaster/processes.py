"""Whether a process that recorded itself (host, pid) is still alive: what locks and run records
need to tell a dead owner from a busy one."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_gone(host: str | None, pid: int | None) -> bool:
    """True only for another process on this host that no longer exists. Processes on other
    hosts cannot be checked from here: their liveness shows only through expiry or heartbeats."""
    if host != socket.gethostname() or pid is None or pid == os.getpid():
        return False
    return not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    # A zombie has ended and holds nothing; it stays in the table until its parent waits for it,
    # which in a container whose PID 1 does not reap orphans is never.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux), or it just went away
        return not Path("/proc").is_dir()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
