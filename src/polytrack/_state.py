"""The only process-wide mutable state: the current run and the hooks that guard it.

Hooks are installed at the first `init()`, never at import, and each chains to what was
there before and is put back once no run is left:

- `atexit` finishes a run the script forgot to finish: `succeeded`, or what the code of
  the SystemExit that ends the interpreter says (see "Exit codes" below);
- `sys.excepthook` marks it failed (stopped for `KeyboardInterrupt`);
- SIGTERM and SIGHUP (how Kubernetes, Slurm and a closed terminal stop a job) mark it
  stopped, naming the signal, and then the process ends as it would have without
  polytrack: the previous Python handler is called, or the default action is taken again;
- `os.register_at_fork` makes sure a forked child (a DataLoader worker, say) never writes
  into its parent's journal, and tells it why its log calls record nothing.

Exit codes. Python tells an exit hook nothing of how the interpreter ends: an uncaught
SystemExit is taken apart in C (`_Py_HandleSystemExit`), its code handed to `Py_Exit()`,
and the exception dropped, all before the exit hooks run. So the code is noted on its way:

- `sys.exit`, and `exit` and `quit` (site's Quitters, in `builtins`), are wrapped while a
  run lives. The wrapper's frame holds an `_ExitWatch`, which tells an exit that ends the
  interpreter from one that is caught (argparse's) by when it dies.
- On Python 3.12+, `sys.monitoring` reports every exception leaving a frame (PY_UNWIND):
  a SystemExit leaving the main thread's outermost frame is the one that ends the
  interpreter, however it was raised, `raise SystemExit(2)` included (`_on_unwind`).
  The event has no per-code-object form: while a run lives, each frame that any
  exception leaves costs the callback, ~70 ns; code that raises nothing pays nothing.
  It takes a tool id that no convention claims (4, else 3), or none if both are taken.
- Before 3.12, a SystemExit raised by hand outside a `with` block ends the script with
  its code unknown here: the run is recorded `succeeded` (docs/tracking.md says so).

Rejected ways to that last code: putting a subclass of SystemExit that notes its code in
`builtins` (the name `SystemExit` in `except SystemExit:` would then mean the subclass,
which a SystemExit raised in C does not match, from a `sys.exit` bound before `init()`
(`from sys import exit`), say: the handler would be skipped and the script would end,
changed by polytrack); glibc's `on_exit()` (it gets the real status, but after the
interpreter is finalized: no Python runs then, and the run's status is written and its
journal closed by then); `sys.settrace` or `sys.setprofile` (a cost on every call).
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType
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
# `exit` and `quit` in builtins -> what polytrack wrapped, while its wrappers are there.
_previous_quitters: dict[str, Callable[..., object]] = {}
# The code of the SystemExit that is ending the interpreter, in a tuple (it may be None).
_exit_code: tuple[object] | None = None
# Python 3.12+: the sys.monitoring tool id polytrack holds, and the code of the main
# thread's outermost frame, which the exception that ends the interpreter leaves.
_MONITORING_TOOLS: Final = (4, 3)  # unclaimed: debuggers 0, coverage 1, profilers 2, JITs 5
_monitoring_tool: int | None = None
_bottom_code: CodeType | None = None
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
    _wrap_quitters()
    _watch_unwinding()
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
    _unwrap_quitters()
    _stop_watching_unwinding()
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
    # No code noted: the script returned, or (before Python 3.12) raised a SystemExit by
    # hand; see the module docstring.
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


class _Quitter:
    """`exit` or `quit` while a run lives: site's Quitter, called and shown the same, with
    its exit code known at exit as sys.exit's is (see `_ExitWatch`)."""

    __slots__ = ("_quitter",)

    def __init__(self, quitter: Callable[..., object]) -> None:
        self._quitter = quitter

    def __repr__(self) -> str:
        return repr(self._quitter)  # what the REPL shows for a bare `exit`

    def __call__(self, code: object = None) -> object:
        watch = _ExitWatch(code)  # noqa: F841  (held by this frame: see _ExitWatch)
        return self._quitter(code)


def _wrap_quitters() -> None:
    for name in ("exit", "quit"):  # absent under `python -S`
        quitter = getattr(builtins, name, None)
        if callable(quitter) and not isinstance(quitter, _Quitter):
            _previous_quitters[name] = quitter
            setattr(builtins, name, _Quitter(quitter))


def _unwrap_quitters() -> None:
    for name, quitter in list(_previous_quitters.items()):
        if isinstance(getattr(builtins, name, None), _Quitter):  # else someone replaced it
            setattr(builtins, name, quitter)
        del _previous_quitters[name]


class _ExitWatch:
    """Held by `_exit`'s frame (or `_Quitter.__call__`'s), which the SystemExit's
    traceback keeps alive: it dies with that traceback. Caught, the exception dies in the
    frame that caught it; uncaught, the interpreter drops it once every frame has
    returned, just before the exit hooks run. So dying with no Python frame left to run
    means: the interpreter exits with this code. (Python gives an `atexit` hook no exit
    code; wrapping `sys.exit` alone would take a caught `sys.exit(2)`, argparse's say,
    for the end of the script.)"""

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


def _watch_unwinding() -> None:
    """Python 3.12+: have `_on_unwind` told of the exceptions that leave a frame, to see
    the one leaving the main thread's outermost frame (see the module docstring)."""
    global _monitoring_tool, _bottom_code
    monitoring: Any = getattr(sys, "monitoring", None)
    if monitoring is None or _monitoring_tool is not None:
        return
    main = threading.main_thread()
    frame = (
        sys._getframe()
        if threading.current_thread() is main
        else sys._current_frames().get(main.ident or -1)
    )
    if frame is None:  # the main thread runs no Python: an embedded interpreter
        return
    while frame.f_back is not None:
        frame = frame.f_back
    for tool in _MONITORING_TOOLS:
        try:
            monitoring.use_tool_id(tool, "polytrack")
        except ValueError:  # taken: by a debugger, coverage or a profiler of its own
            continue
        _bottom_code = frame.f_code
        monitoring.register_callback(tool, monitoring.events.PY_UNWIND, _on_unwind)
        monitoring.set_events(tool, monitoring.events.PY_UNWIND)
        _monitoring_tool = tool
        return


def _stop_watching_unwinding() -> None:
    global _monitoring_tool, _bottom_code
    tool, _monitoring_tool, _bottom_code = _monitoring_tool, None, None
    if tool is None:
        return
    monitoring: Any = getattr(sys, "monitoring", None)
    with contextlib.suppress(ValueError):
        monitoring.set_events(tool, 0)
        monitoring.register_callback(tool, monitoring.events.PY_UNWIND, None)
        monitoring.free_tool_id(tool)


def _on_unwind(code: CodeType, offset: int, exc: BaseException) -> None:
    """An exception leaves a frame: if a SystemExit leaves the main thread's outermost,
    note its code. Called for every such frame in the process: it must be quick, must
    never raise (into the frame that the exception leaves), and must return None
    (`sys.monitoring.DISABLE` is refused for this event, with an error in that frame)."""
    global _exit_code
    if code is _bottom_code and isinstance(exc, SystemExit):
        with contextlib.suppress(Exception):  # a subclass's `code` property may raise
            _exit_code = (exc.code,)


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
        _unwrap_quitters()
        # The child's outermost frame is another (a thread's, if one forked): a new run
        # there watches its own.
        _stop_watching_unwinding()
        atexit.unregister(_at_exit)
        # The forking thread is the child's main thread: it may put the handlers back.
        _restore_signal_handlers()
