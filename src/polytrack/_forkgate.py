"""Holding `os.fork()` off while one of the run's threads holds a lock a child would need.

A forked child gets one thread (the one that forked) and a copy of every lock as it was.
A lock held by another thread at that instant is held forever in the child: nobody there
will release it. The run's threads start at `init()`, exactly when DataLoader workers and
multiprocessing pools fork, and what they do first is import: the capture threads psutil,
subprocess and the capture modules, the sync worker the engine, numpy and its backend's
client, the output reader detect-secrets (`polytrack.redact`, at the first line shaped
like a token). An import holds that module's import lock, and the child's own
`polytrack.init()` then waits on it for good, or finds the module half-initialised.
psutil and NVML keep locks of their own while they are read.

So such a thread does that work inside `held()`, and a fork, from any thread, first
waits for the gate (`os.register_at_fork(before=...)`), at most `FORK_WAIT` seconds:
the child is then forked between two pieces of that work, never inside one. What a
thread does outside the gate must take no lock a child could ask for; waiting on a
subprocess (git) or on a server is such work, which is why the gate is never held for a
whole capture, nor across a request.

This is a module of the base layer (it imports nothing of polytrack), so that `capture`,
`sync` and `redact` can all hold the one gate.

The wait is bounded because a fork can come from inside an import (a module that starts a
pool at import time) that a thread inside the gate then waits for: after `FORK_WAIT` the
fork goes on, with the old risk, rather than hang the program.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Final

__all__ = ["FORK_WAIT", "held", "held_here"]

# How long a fork waits for a thread to leave the gate (the longest hold, the snapshot's
# imports, takes ~20 ms).
FORK_WAIT: Final = 5.0

_gate = threading.RLock()  # re-entrant: a capture thread may fork a helper (preexec_fn)
_local = threading.local()
_registered = False
_register_lock = threading.Lock()


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold forks off while the body runs: for a thread's imports and library calls that
    take locks. Keep the body short, and never wait on a server or a subprocess in it:
    it delays a fork by its duration."""
    _register()
    gate, local = _gate, _local  # the same objects on the way out, even past a fork
    with gate:
        local.depth = getattr(local, "depth", 0) + 1
        try:
            yield
        finally:
            local.depth -= 1


def held_here() -> bool:
    """Whether the calling thread is inside `held()` (for tests proving that a run's
    thread imports nothing outside it)."""
    return getattr(_local, "depth", 0) > 0


def _register() -> None:
    """Register the fork hooks at first use, never at import (`import polytrack` changes
    nothing in the process). They cannot be unregistered: they cost a lock when idle."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if not _registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(
                before=_before_fork,
                after_in_parent=_after_fork_in_parent,
                after_in_child=_after_fork_in_child,
            )
            _registered = True


def _before_fork() -> None:
    # Per thread: two threads may fork at once, and one may give up waiting.
    _local.fork_holds = _gate.acquire(timeout=FORK_WAIT)


def _after_fork_in_parent() -> None:
    if getattr(_local, "fork_holds", False):
        _local.fork_holds = False
        _gate.release()


def _after_fork_in_child() -> None:
    global _gate, _local
    # The child's copy is held by the thread that forked, the only thread there: a new one
    # is simpler than releasing a copy whose owner bookkeeping came from the parent.
    _gate = threading.RLock()
    _local = threading.local()
