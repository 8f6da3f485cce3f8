"""Is a run's owner alive? Process start times, read cheaply where the OS allows."""

from __future__ import annotations

import os
from functools import cache

from polytrack.models import RunStarted

__all__ = ["hostname", "owner_alive", "process_started"]


def hostname() -> str:
    """This machine's name, as `socket.gethostname()` gives it.

    From `os.uname()` where there is one: the socket module costs `init()` ~4 ms to import.
    """
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


@cache
def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith("btime"):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_started(pid: int) -> float:
    """Unix time at which process `pid` started (what psutil's create_time() returns).

    Reads /proc on Linux, which keeps psutil's import (tens of ms) off `init()`.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return _boot_time() + int(fields[19]) / ticks
    except (OSError, IndexError, ValueError):
        import psutil

        return float(psutil.Process(pid).create_time())


def owner_alive(
    started: RunStarted, heartbeat_mtime: float | None, *, stale_after: float, now: float
) -> bool:
    """Is the process that wrote `started` still running?

    On the same host, by PID and the process' start time (a reused PID has another);
    elsewhere, by the heartbeat file that the run's flusher touches.
    """
    if started.host == hostname():
        try:
            return abs(process_started(started.pid) - started.process_started) < 1.0
        except Exception:
            return False
    return heartbeat_mtime is not None and now - heartbeat_mtime < stale_after
