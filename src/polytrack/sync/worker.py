"""`SyncWorker`: the thread that ships a live run to its backend while it records.

Kept apart from `polytrack.sync.engine` so that `init()` imports only this: the engine (numpy,
the journal reader, the backend's HTTP client) is imported by the thread itself.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendUnavailableError,
)

if TYPE_CHECKING:
    from polytrack.sync.backends.base import Backend
    from polytrack.sync.engine import RunSync

__all__ = ["SyncWorker"]


class SyncWorker:
    """The thread that ships a live run to its backend while it records.

    Started by `init()`; `finish(timeout)` is called once the run's journal is closed, and
    waits at most `timeout` seconds for the rest to go out. What is left then stays on
    disk for `polytrack sync`, started in the background (`handoff`) where it can be.
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
        stderr: TextIO | None = None,
    ) -> None:
        self.directory = directory
        self.run_id = run_id
        self._open_backend = open_backend
        self._close_backend = close_backend
        self._open_store = artifact_store
        self._interval = interval
        self._handoff = handoff
        self._stderr = stderr
        self._wake = threading.Event()
        self._closed = threading.Event()  # the journal is closed: everything is final
        self._abort = threading.Event()
        self._caught_up = threading.Event()
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

        Returns whether everything went out. If not, says so in one line, and hands the
        rest to a background `polytrack sync` where it can.
        """
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout)
        done = self._caught_up.is_set() and not self._thread.is_alive()
        if not done:
            self._abort.set()
            self._wake.set()
            self._thread.join(timeout=5.0)  # a request in flight ends by its own timeout
            self._report_backlog()
        return done

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        from polytrack.sync.engine import Backoff, SyncBusyError

        sync: RunSync | None = None
        backoff = Backoff()
        try:
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
                    self._wait(delay)
                except (BackendError, OSError) as exc:
                    self._warn_once(type(exc).__name__, f"sync failed: {exc}; retrying")
                    self._wait(backoff.next_delay())
        except BaseException as exc:  # never let the thread die silently
            self._give_up(f"sync stopped: {exc!r}")
        finally:
            if sync is not None:
                sync.close()
            if self._backend is not None and self._close_backend:
                with contextlib.suppress(Exception):  # closing: nothing left to tell
                    self._backend.close()
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()

    def _open(self) -> RunSync:
        from polytrack.sync.engine import RunSync

        if self._backend is None:
            self._backend = self._open_backend()
        if self._store is None and self._open_store is not None:
            self._store = self._open_store()
        return RunSync.open(
            self.directory, self._backend, artifact_store=self._store, warn=self._say
        )

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
        key = self._backend.key if self._backend is not None else "the backend"
        if self._given_up is not None:
            return  # said already
        command = f"polytrack sync {self.run_id}"
        if self._handoff is not None:
            try:
                pid = self._spawn(*self._handoff())
            except Exception as exc:  # OSError, a failed or slow launcher: say how instead
                self._say(f"run {self.run_id} is not all at {key} yet ({exc}); run `{command}`")
                return
            self._say(
                f"run {self.run_id} is not all at {key} yet; it is safe on disk, and "
                f"`{command}` goes on sending it in the background (pid {pid})"
            )
        else:
            self._say(
                f"run {self.run_id} is not all at {key} yet; it is safe on disk: `{command}`"
                " sends the rest"
            )

    def _spawn(self, argv: list[str], env: dict[str, str]) -> int:
        """Start `argv` detached: in its own session, and not our child (a launcher starts
        it and exits), so it outlives this process and nobody has to reap it."""
        import subprocess

        log = self.directory / "sync" / "background.log"
        with log.open("ab") as out:
            launched = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=out,
                start_new_session=True,  # away from the terminal's Ctrl-C
                env=env,
                timeout=60,
                check=True,
            )
        return int(launched.stdout)


# Starts the command with its output on our stderr (the log), prints its pid, and exits.
_LAUNCHER = (
    "import subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=sys.stderr,"
    " stderr=sys.stderr)\n"
    "print(p.pid)\n"
)
