"""Running a script with its stdout and stderr each on a pseudo-terminal, as a user's
terminal would be, and reading both until the script exits."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


def run_on_terminals(
    argv: Sequence[str], *, size: tuple[int, int] = (24, 80), timeout: float = 120
) -> tuple[int, bytes, bytes]:
    """Run `argv` with stdout and stderr on two terminals of `size` (rows, columns);
    its exit status and what it wrote on each."""
    masters, slaves = zip(*(os.openpty() for _ in range(2)), strict=True)
    for slave in slaves:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slaves[0], stderr=slaves[1])
    for slave in slaves:
        os.close(slave)
    got = {fd: b"" for fd in masters}
    reading = list(masters)
    deadline = time.monotonic() + timeout
    while reading and time.monotonic() < deadline:
        ready, _, _ = select.select(reading, [], [], 1.0)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every writer closed the terminal
                data = b""
            got[fd] += data
            if not data:
                reading.remove(fd)
    returncode = child.wait(timeout=30)
    for fd in masters:
        os.close(fd)
    return returncode, got[masters[0]], got[masters[1]]
