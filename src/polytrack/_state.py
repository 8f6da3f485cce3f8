"""The only process-wide mutable state: the current run and the hooks that guard it.

Hooks are installed at the first `init()`, never at import, and each chains to what was
there before and is put back once no run is left:

- `atexit` finishes a run the script forgot to finish: `succeeded`, or what the exit code
  given to `sys.exit()` says (see `_ExitWatch`);
- `sys.excepthook` marks it failed (stopped for `KeyboardInterrupt`);
- SIGTERM and SIGHUP (how Kubernetes, Slurm and a closed terminal stop a job) mark it
  stopped, naming the signal, and then the process ends as it would have without
  polytrack: the previous Python handler is called, or the default action is taken again;
- `os.register_at_fork` makes sure a forked child (a DataLoader worker, say) never writes
  into its parent's journal, and tells it why its log calls record nothing.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Final, NoReturn, Union

from polytrack.run import exit_status

if TYPE_CHECKING:
    from polytrack.models import SeedState
    from polytrack.run import DisabledRun, Run

__all__ = ["current", "first_time", "forked_from", "forget", "reset", "set_current"]

current: Union[Run, DisabledRun, None] = None  # read on the hot path
# Seeds set before `init()` (the usual order): recorded by the next run.
pending_seeds: SeedState | None = None
# In a forked child of a process that had a run: "run <id> (pid <parent>)", for messages.
forked_from: str | None = None

# The signals by which a job is told to stop; SIGINT is KeyboardInterrupt's already.
STOP_SIGNALS: Final = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)

# Re-entrant: a signal handler that finishes the runs may interrupt the main thread while
# it holds this lock (in init() or finish()).
_lock = threading.RLock()
_live: weakref.WeakSet[Run | DisabledRun] = weakref.WeakSet()
_hooks_installed = False
_fork_hook_registered = False
_previous_excepthook = sys.excepthook
_previous_exit = sys.exit
# Signal -> the handler polytrack replaced, while polytrack's is installed for it.
_previous_handlers: dict[int, Callable[[int, FrameType | None], Any] | int] = {}
# The code of the sys.exit() that is ending the interpreter, in a tuple (it may be None).
_exit_code: tuple[object] | None = None
_said: set[str] = set()  # warnings already given once in this process


def set_current(run: Run | DisabledRun) -> None:
    """Make `run` the current run and install the hooks once."""
    global current, forked_from
    with _lock:
        current = run
        forked_from = None  # a forked child's own run: its calls are recorded
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
    global current, pending_seeds, forked_from, _exit_code
    with _lock:
        current = None
        pending_seeds = None
        forked_from = None
        _exit_code = None
        _said.clear()
        _uninstall_hooks()


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook, _previous_exit, _fork_hook_registered
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    if sys.exit is not _exit:
        _previous_exit = sys.exit
        sys.exit = _exit
    atexit.register(_at_exit)
    _install_signal_handlers()
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
    if sys.exit is _exit:
        sys.exit = _previous_exit
    atexit.unregister(_at_exit)
    _restore_signal_handlers()


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    try:
        _previous_excepthook(exc_type, exc, tb)  # first, so the run's log holds the traceback
    finally:
        status, message = exit_status(exc)
        for run in list(_live):
            run.finish(status, message=message)


def _at_exit() -> None:
    # A SystemExit raised by hand (`raise SystemExit(2)`, not `sys.exit(2)`) outside a
    # `with` block leaves no trace Python shows an exit hook: recorded as succeeded.
    status, message = (
        ("succeeded", None) if _exit_code is None else exit_status(SystemExit(_exit_code[0]))
    )
    for run in list(_live):
        run.finish(status, message=message)


def _exit(status: str | int | None = None, /) -> NoReturn:
    """`sys.exit` while a run lives: the same, and the exit code is known at exit if this
    SystemExit is what ends the interpreter (see `_ExitWatch`)."""
    watch = _ExitWatch(status)  # noqa: F841  (held by this frame: see _ExitWatch)
    _previous_exit(status)


class _ExitWatch:
    """Held by `_exit`'s frame, which the SystemExit's traceback keeps alive: it dies
    with that traceback. Caught, the exception dies in the frame that caught it; uncaught,
    the interpreter drops it once every frame has returned, just before the exit hooks
    run. So dying with no Python frame left to run means: the interpreter exits with
    this code. (Python gives an `atexit` hook no exit code; wrapping `sys.exit` alone
    would take a caught `sys.exit(2)`, argparse's say, for the end of the script.)"""

    __slots__ = ("code",)

    def __init__(self, code: object) -> None:
        self.code = code

    def __del__(self) -> None:
        global _exit_code
        try:
            sys._getframe(1)
        except ValueError:  # no caller: nothing caught the exception
            _exit_code = (self.code,)
        except Exception:  # late in the interpreter's shutdown: nothing to record into
            pass


def _install_signal_handlers() -> None:
    """Handle the stop signals, where Python lets us: from the main thread only, never
    over SIG_IGN (a job that asked to ignore them), nor over a handler installed outside
    Python (None), which could not be chained."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        try:
            previous = signal.getsignal(signum)
            if previous is _on_stop_signal or previous is None or previous == signal.SIG_IGN:
                continue
            signal.signal(signum, _on_stop_signal)
        except (OSError, ValueError):  # an embedded interpreter, say
            continue
        _previous_handlers[signum] = previous


def _restore_signal_handlers() -> None:
    """Put the previous handlers back; only the main thread can. Elsewhere, polytrack's
    handler stays, and with no run left it only passes the signal on."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_previous_handlers.items()):
        try:
            if signal.getsignal(signum) is _on_stop_signal:
                signal.signal(signum, previous)
        except (OSError, ValueError):
            continue
        del _previous_handlers[signum]


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """Record the runs stopped by `signum`, then end the process as without polytrack.

    A previous Python handler is called, and decides: if it raises (SystemExit,
    KeyboardInterrupt, ...), the runs are recorded stopped first; if it returns (a
    graceful shutdown that saves a checkpoint, say), the run goes on, and its end says
    how it ended. Otherwise the default action (termination) is taken again, so that
    the process's exit status is the signal's, as a scheduler expects.
    """
    name = signal.Signals(signum).name
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        try:
            previous(signum, frame)
        except BaseException:
            _finish_all("stopped", f"stopped by {name}")
            raise
        return
    _finish_all("stopped", f"stopped by {name}")
    # Finishing is cheap (a record into the mapped journal; threads joined): now die
    # of the signal, as the default action would have.
    _previous_handlers.pop(signum, None)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _finish_all(status: str, message: str | None) -> None:
    for run in list(_live):
        run.finish(status, message=message)


def _after_fork_in_child() -> None:
    global current, _lock, _hooks_installed, forked_from
    _lock = threading.RLock()  # the parent may have held it at fork time
    parent_run = current if current is not None else next(iter(_live), None)
    if parent_run is not None and parent_run.id != "disabled":
        forked_from = f"run {parent_run.id} (pid {os.getppid()})"
    for run in list(_live):
        run.detach_after_fork()
    _live.clear()
    current = None
    if _hooks_installed:
        _hooks_installed = False
        if sys.excepthook is _excepthook:
            sys.excepthook = _previous_excepthook
        if sys.exit is _exit:
            sys.exit = _previous_exit
        atexit.unregister(_at_exit)
        # The forking thread is the child's main thread: it may put the handlers back.
        _restore_signal_handlers()
