"""The only process-wide mutable state: the current run and the hooks that guard it.

Hooks are installed at the first `init()`, never at import: `atexit` finishes a run the
script forgot to finish, `sys.excepthook` (chained to the previous hook, restored when no
run is left) marks it failed, and `os.register_at_fork` makes sure a forked child
(a DataLoader worker, say) never writes into its parent's journal.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from polytrack.models import SeedState
    from polytrack.run import DisabledRun, Run

__all__ = ["current", "first_time", "forget", "reset", "set_current"]

current: Union[Run, DisabledRun, None] = None  # read on the hot path
# Seeds set before `init()` (the usual order): recorded by the next run.
pending_seeds: SeedState | None = None

_lock = threading.Lock()
_live: weakref.WeakSet[Run | DisabledRun] = weakref.WeakSet()
_hooks_installed = False
_fork_hook_registered = False
_previous_excepthook = sys.excepthook
_said: set[str] = set()  # warnings already given once in this process


def set_current(run: Run | DisabledRun) -> None:
    """Make `run` the current run and install the hooks once."""
    global current
    with _lock:
        current = run
        _live.add(run)
        _install_hooks()


def forget(run: Run | DisabledRun) -> None:
    """`run` finished: it is no longer current; hooks go when no run is left."""
    global current
    with _lock:
        if current is run:
            current = None
        _live.discard(run)
        if current is None and not _live:
            _uninstall_hooks()


def first_time(what: str) -> bool:
    """True the first time `what` is asked about in this process: for warn-once."""
    with _lock:
        if what in _said:
            return False
        _said.add(what)
        return True


def reset() -> None:
    """Finish every live run, restore the hooks, forget warnings; for tests and notebooks."""
    for run in list(_live):
        run.finish("stopped", message="polytrack state reset")
    global current, pending_seeds
    with _lock:
        current = None
        pending_seeds = None
        _said.clear()
        _uninstall_hooks()


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook, _fork_hook_registered
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        # register_at_fork cannot be undone: register once, act only on live runs.
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True


def _uninstall_hooks() -> None:
    global _hooks_installed
    if not _hooks_installed:
        return
    _hooks_installed = False
    if sys.excepthook is _excepthook:
        sys.excepthook = _previous_excepthook
    atexit.unregister(_at_exit)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    try:
        _previous_excepthook(exc_type, exc, tb)  # first, so the run's log holds the traceback
    finally:
        for run in list(_live):
            if issubclass(exc_type, KeyboardInterrupt):
                run.finish("stopped", message="KeyboardInterrupt")
            else:
                run.finish("failed", message=f"{exc_type.__name__}: {exc}")


def _at_exit() -> None:
    for run in list(_live):
        run.finish("succeeded")


def _after_fork_in_child() -> None:
    global current, _lock, _hooks_installed
    _lock = threading.Lock()  # the parent may have held it at fork time
    for run in list(_live):
        run.detach_after_fork()
    _live.clear()
    current = None
    if _hooks_installed:
        _hooks_installed = False
        if sys.excepthook is _excepthook:
            sys.excepthook = _previous_excepthook
        atexit.unregister(_at_exit)
