"""`SyncWorker`: the thread that ships a live run to its backend while it records.

Kept apart from `polytrack.sync.engine` so that `init()` imports only this: the engine (numpy,
the journal reader, the backend's HTTP client) is imported by the thread itself.

At `finish()` the worker gets `timeout` seconds (`POLYTRACK_SYNC_TIMEOUT`, 5 by default) to
send what is left, and none at all once a request after the journal closed finds no server
to connect to (refused, unknown host, connect timeout) or another process sending the run:
a script never waits on a server that is not there. A server that answers, if with a 503
or a reset connection, is retried within the timeout. What is left then is handed to the
home's one background uploader (`polytrack.sync.uploader`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from polytrack import _forkgate
from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendUnavailableError,
)

if TYPE_CHECKING:
    from polytrack.sync.backends.base import Backend
    from polytrack.sync.engine import RunSync

__all__ = ["GRACE", "SyncWorker", "no_connection"]

# How long `finish()` waits for the thread once it gave up: long enough to leave a backoff
# wait; a request in flight ends by its own timeout, on a daemon thread, after finish().
GRACE = 1.0


class SyncWorker:
    """The thread that ships a live run to its backend while it records.

    Started by `init()`; `finish(timeout)` is called once the run's journal is closed, and
    waits at most `timeout` seconds for the rest to go out, less when the server fails
    (see the module docstring). What is left then stays on disk; with a `key` (a backend
    named by URI) the run is handed to the home's background uploader, which `handoff`
    starts (its argv and environment) where none is running.
    """

    def __init__(
        self,
        directory: Path,
        run_id: str,
        *,
        open_backend: Callable[[], Backend],
        close_backend: bool,
        interval: float,
        artifact_store: Callable[[], Any] | None = None,
        handoff: Callable[[], tuple[list[str], dict[str, str]]] | None = None,
        key: str | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.directory = directory
        self.run_id = run_id
        self._open_backend = open_backend
        self._close_backend = close_backend
        self._open_store = artifact_store
        self._interval = interval
        self._handoff = handoff
        self._key = key
        self._stderr = stderr
        self._wake = threading.Event()
        self._closed = threading.Event()  # the journal is closed: everything is final
        self._abort = threading.Event()
        self._caught_up = threading.Event()
        # Set by the thread for a waiting finish(): no server, once the journal closed.
        self._done_waiting = threading.Event()
        self._given_up: str | None = None
        self._warned: set[str] = set()
        self._backend: Backend | None = None
        self._store: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"polytrack-sync-{run_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float) -> bool:
        """The journal is closed: ship the rest for at most `timeout` seconds.

        Gives up at once on a server it cannot connect to (see the module docstring).
        Returns whether everything went out. If not, says so in one line, and hands the
        rest to the home's background uploader where it can.
        """
        deadline = time.monotonic() + timeout
        self._closed.set()
        self._wake.set()  # out of a backoff wait: one more try, now
        # Set by the thread when it ends too, so this wait ends with it.
        self._done_waiting.wait(timeout)
        done = self._caught_up.is_set()
        if done:
            # It is returning: closing the backend is all it has left to do.
            self._thread.join(timeout=max(GRACE, deadline - time.monotonic()))
            if self._key is not None:
                self._settle()
        else:
            self._abort.set()
            self._wake.set()
            self._thread.join(timeout=GRACE)
            self._report_backlog()
        return done

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        sync: RunSync | None = None
        try:
            with _forkgate.held():  # see _open
                from polytrack.sync.engine import Backoff, SyncBusyError
            backoff = Backoff()
            while not self._abort.is_set():
                try:
                    if sync is None:
                        sync = self._open()
                    closed = self._closed.is_set()
                    result = sync.step(live=not closed)
                    backoff.reset()
                    if result.caught_up:
                        if closed:
                            self._caught_up.set()
                            return
                        self._wait(self._interval)
                except SyncBusyError:
                    self._no_way()
                    self._wait(self._interval * 5)
                except BackendConfigError as exc:
                    self._give_up(f"cannot sync run {self.run_id}: {exc}")
                    return
                except BackendAuthError as exc:
                    self._give_up(f"{exc}; syncing this run stopped: fix the credentials, "
                                  f"then run `polytrack sync {self.run_id}`")
                    return
                except BackendUnavailableError as exc:
                    delay = backoff.next_delay(exc.retry_after)
                    self._warn_once("unavailable", f"{exc}; retrying in the background")
                    if no_connection(exc):
                        self._no_way()
                    self._wait(delay)
                except (BackendError, OSError) as exc:
                    self._warn_once(type(exc).__name__, f"sync failed: {exc}; retrying")
                    self._wait(backoff.next_delay())
        except BaseException as exc:  # never let the thread die silently
            self._give_up(f"sync stopped: {exc!r}")
        finally:
            self._done_waiting.set()  # done, one way or another: finish() waits no longer
            if sync is not None:
                sync.close()
            if self._backend is not None and self._close_backend:
                with contextlib.suppress(Exception):  # closing: nothing left to tell
                    self._backend.close()
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()

    def _open(self) -> RunSync:
        """Open the backend, the artifact store and the run's sync state inside the fork
        gate: it is imports (the engine, numpy, the backend's HTTP client), constructors
        that connect to nothing (the built-in backends'; a plug-in's factory that does
        connect delays a fork by as long, at most `FORK_WAIT`), and small local reads. A
        fork right after `init()` must find none of them half done. The first request is
        `step()`'s, outside: the gate never waits on a server."""
        with _forkgate.held():
            from polytrack.sync.engine import RunSync

            if self._backend is None:
                self._backend = self._open_backend()
            if self._store is None and self._open_store is not None:
                self._store = self._open_store()
            sync = RunSync.open(
                self.directory, self._backend, artifact_store=self._store, warn=self._say
            )
            _import_lazy_modules()
            return sync

    def _no_way(self) -> None:
        """No server to connect to, or another process sends the run: once the journal
        is closed, finish() waits no longer (the uploader tries again later)."""
        if self._closed.is_set():
            self._done_waiting.set()

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _give_up(self, message: str) -> None:
        self._given_up = message
        self._say(message)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._say(message)

    def _say(self, message: str) -> None:
        print(f"polytrack: {message}", file=self._stderr or sys.stderr, flush=True)

    def _report_backlog(self) -> None:
        """Say what is left and who sends it: the home's uploader, started if need be."""
        if self._given_up is not None:
            return  # said already, with the fix: no uploader can do better
        key = self._key or (self._backend.key if self._backend is not None else "the backend")
        left = f"run {self.run_id} is not all at {key} yet; it is safe on disk"
        command = f"`polytrack sync {self.run_id}` sends the rest"
        if self._key is None:  # a Backend instance: no other process can reach it
            self._say(f"{left}: {command}")
            return
        try:
            self._say(f"{left}{self._hand_off(self._key)}")
        except Exception as exc:  # OSError, a failed or slow launcher: say how instead
            self._say(f"{left} ({exc}): {command}")

    def _hand_off(self, key: str) -> str:
        """Leave the run to the home's uploader (started where none runs); say how."""
        from polytrack.sync import uploader

        home = self.directory.parents[1]
        # The marker first: an uploader about to find nothing left then finds it.
        uploader.hand_off(home, self.run_id, key)
        status = "`polytrack sync --status` shows it, `polytrack sync --stop` stops it"
        if self._handoff is None:
            return f": `polytrack sync {self.run_id}` or `polytrack sync --uploader` sends it"
        fd = uploader.claim(home)
        if fd is None:
            running = uploader.running_uploader(home)
            which = "" if running is None or running.pid is None else f" (pid {running.pid})"
            if running is not None and running.backend not in (key, None):
                return (
                    f": `polytrack sync {self.run_id}` sends the rest (the background "
                    f"uploader{which} sends to {running.backend} only)"
                )
            return f"; the background uploader{which} sends it: {status}"
        try:  # the uploader inherits the lock: no second one can start meanwhile
            argv, env = self._handoff()
            pid = self._spawn(home, [*argv, "--lock-fd", str(fd)], env, fd)
            # Named at once, for `--status` and the next finish(); it says so itself too.
            until = time.time() + uploader.LIFETIME
            uploader.write_record(home, pid=pid, backend=key, until=until)
        finally:
            os.close(fd)
        return f"; the background uploader (pid {pid}) sends it: {status}"

    def _settle(self) -> None:
        """All sent: a marker left by an earlier attempt of the run is done with."""
        from polytrack.sync import uploader

        with contextlib.suppress(OSError):
            uploader.settle(self.directory.parents[1], self.run_id, self._key or "")

    def _spawn(self, home: Path, argv: list[str], env: dict[str, str], fd: int) -> int:
        """Start `argv` detached, passing it descriptor `fd`: in its own session, and not
        our child (a launcher starts it and exits), so it outlives this process and nobody
        has to reap it."""
        import subprocess

        from polytrack.sync.uploader import LOG_NAME, sync_dir

        log = sync_dir(home) / LOG_NAME
        with contextlib.suppress(OSError):
            if log.stat().st_size > _LOG_LIMIT:  # keep the last two MiB or so
                log.replace(log.with_name(LOG_NAME + ".1"))
        with log.open("ab") as out:
            launched = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, str(fd), *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=out,
                start_new_session=True,  # away from the terminal's Ctrl-C
                pass_fds=(fd,),
                env=env,
                timeout=10,
                check=True,
            )
        return int(launched.stdout)


_LOG_LIMIT = 1 << 20

# How urllib3 (under requests) and the socket module say that no connection was made.
_NO_CONNECTION = frozenset(
    {"ConnectionRefusedError", "gaierror", "NewConnectionError", "ConnectTimeoutError"}
)


def no_connection(exc: BaseException) -> bool:
    """Whether `exc` (a `BackendUnavailableError`) came of a connection never made:
    refused, an unknown host, a connect timeout. Read from the causes that the backends
    chain (`raise ... from`), by class name, so that this module imports no HTTP client; a
    connection reset or a 5xx is an answer, and no such failure."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if any(kind.__name__ in _NO_CONNECTION for kind in type(current).__mro__):
            return True
        stack += [current.__cause__, current.__context__]
        stack += [arg for arg in current.args if isinstance(arg, BaseException)]
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False


# Starts the command with its output on our stderr (the log) and the descriptor named
# first passed on, prints its pid, and exits.
_LAUNCHER = (
    "import subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=sys.stderr,"
    " stderr=sys.stderr, pass_fds=(int(sys.argv[1]),))\n"
    "print(p.pid)\n"
)


# What the first `step()` would import on its own, outside the fork gate, unless imported
# in it first: numpy 2 loads `numpy.ma` at the first `np.unique` (`JournalTail.read`), and
# requests loads `netrc` (with `shlex`) at its first request, to read ~/.netrc. A test in
# tests/test_fork.py finds any other.
_LAZY_IMPORTS: Final = ("numpy.ma", "netrc", "shlex")


def _import_lazy_modules() -> None:
    for name in _LAZY_IMPORTS:
        with contextlib.suppress(ImportError):  # a warm-up only: the step will say
            importlib.import_module(name)
