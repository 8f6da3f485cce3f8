"""Taking a run's reproducibility snapshot at `init()` within a time budget.

The quick parts (code, the git HEAD read from `.git` files) are recorded inline; the
slow ones (git status and diff, the package list, hardware) run on the thread
`polytrack-snapshot-<run>`. `init()` waits for git's answer only, and at most
`Settings.capture_budget`: the working tree should be seen as it was when the run
started, while the package list and the hardware do not change under it: they are taken
after a quiet first second (`QUIET_START`) or at `finish()`, whichever comes first. Where
git has not answered in time, the HEAD-only record goes in first, marked partial, and the
complete one follows from the thread: readers take the latest.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import attrs

from polytrack import _forkgate
from polytrack.capture.code import capture_code
from polytrack.capture.git_files import read_head
from polytrack.errors import StoreError
from polytrack.models import Event, GitState
from polytrack.settings import Settings, default_cache_dir

__all__ = ["SnapshotCapture"]

# How long `finish()` waits for captures still running (git on a huge tree).
STOP_WAIT: Final = 2.0

# How long the capture thread waits for `settle()`, past the budget, before going on.
_SETTLE_WAIT: Final = 1.0

# The first second after `init()` is the user's (issue 21): the environment and hardware
# captures (importing psutil and platform, reading the package list) hold the GIL for
# ~20 ms, which the first steps of a training loop would pay. They run this long after
# the start, or at once when `stop()` comes first (a short run pays them in `finish()`).
QUIET_START: Final = 1.0

Record = Callable[[Event], None]
Warn = Callable[[str, str], None]


class SnapshotCapture:
    """The snapshot of one run attempt; owns its capture thread until `stop()`."""

    def __init__(
        self,
        *,
        settings: Settings,
        directory: Path,
        attempt: int,
        run_id: str,
        record: Record,
        warn: Warn,
        environ: Mapping[str, str],
        cwd: Path,
        quiet: float = QUIET_START,
    ) -> None:
        self._settings = settings
        self._quiet = quiet
        self._directory = directory
        self._attempt = attempt
        self._run_id = run_id
        self._record = record
        self._warn = warn
        self._environ = environ
        self._cwd = cwd
        self._lock = threading.RLock()  # orders records, and none after stop()
        self._git_recorded = False
        self._stopped = False
        self._cancel = threading.Event()  # set by stop(): git gives up
        self._git_answered = threading.Event()
        self._settled = threading.Event()  # init() is done waiting
        self._stopping = threading.Event()  # stop() was called: the quiet start is over
        self._head: GitState | None = None  # recorded as partial if git answers late
        self._deadline = 0.0
        self._quiet_until = 0.0
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        *,
        settings: Settings,
        directory: Path,
        attempt: int,
        run_id: str,
        record: Record,
        warn: Warn,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        quiet: float = QUIET_START,
    ) -> SnapshotCapture:
        """Record what is quick and start the rest; `settle()` then waits for git. The
        environment and the hardware are taken `quiet` seconds after this, or at `stop()`."""
        capture = cls(
            settings=settings,
            directory=directory,
            attempt=attempt,
            run_id=run_id,
            record=record,
            warn=warn,
            environ=os.environ if environ is None else environ,
            cwd=Path.cwd() if cwd is None else cwd,
            quiet=quiet,
        )
        capture._begin()
        return capture

    def _begin(self) -> None:
        started = time.monotonic()
        self._deadline = started + self._settings.capture_budget
        self._quiet_until = started + self._quiet
        settings = self._settings
        if settings.capture_code:
            self._safely("code", lambda: self._save(capture_code(environ=self._environ)))
        head: GitState | None = None
        if settings.capture_git:
            head = read_head(self._cwd)
            if not head.available:
                self._save(head)  # nothing more to learn in the background
                head = None
        if head is None and not (settings.capture_environment or settings.capture_hardware):
            return
        self._thread = threading.Thread(
            target=self._background,
            args=(head is not None,),
            name=f"polytrack-snapshot-{self._run_id}",
            daemon=True,
        )
        self._head = head
        self._thread.start()

    def settle(self) -> None:
        """Wait for git's answer until the budget (counted from `start`) is spent; if it
        has not come, record what `.git` said, marked partial."""
        try:
            if self._head is None:
                return
            self._git_answered.wait(max(0.0, self._deadline - time.monotonic()))
            with self._lock:
                if not self._git_recorded:
                    self._save(attrs.evolve(self._head, partial=True))
            self._head = None
        finally:
            self._settled.set()

    def _background(self, git: bool) -> None:
        settings = self._settings
        if git:
            try:
                self._safely("git", self._capture_git)
            finally:
                self._git_answered.set()
        # The rest once init() has returned: importing psutil and platform, and reading
        # the package list, hold the GIL for ~20 ms that init() should not wait through.
        self._settled.wait(settings.capture_budget + _SETTLE_WAIT)
        self._stopping.wait(max(0.0, self._quiet_until - time.monotonic()))
        if self._cancel.is_set():
            return  # the run finished first: what would be captured now is dropped anyway
        # All of it inside the fork gate: the imports (of these modules, and the lazy ones
        # of importlib.metadata, platform and psutil) and psutil's and NVML's own locks.
        with _forkgate.held():
            from polytrack.capture import environment, hardware

            if settings.capture_environment:
                cache_dir = settings.cache_dir or default_cache_dir(self._environ)
                self._safely(
                    "environment",
                    lambda: self._save(
                        environment.capture_environment(
                            allowlist=settings.env_allowlist,
                            cache_dir=cache_dir,
                            environ=self._environ,
                        )
                    ),
                )
            if settings.capture_hardware:
                self._safely("hardware", lambda: self._save(hardware.capture_hardware()))

    def _capture_git(self) -> None:
        # Imported on this thread (subprocess and selectors are not init()'s to load), and
        # inside the fork gate. Git itself runs outside it: waiting on a subprocess holds
        # no lock a child could need, and running it imports nothing more (a test in
        # tests/test_fork.py keeps it so).
        with _forkgate.held():
            from polytrack.capture.git import capture_git
        settings = self._settings
        result = capture_git(
            self._cwd,
            timeout=settings.git_timeout,
            max_diff_bytes=settings.max_diff_bytes,
            max_untracked=settings.max_untracked,
            environ=self._environ,
            cancel=self._cancel,
        )
        state = result.state
        if result.diff:
            name = f"git-{self._attempt:03d}.diff"
            _write_durably(self._directory / name, result.diff)
            state = attrs.evolve(state, diff_file=name)
        with self._lock:
            self._save(state)
            self._git_recorded = True

    def _save(self, event: Event) -> None:
        with self._lock:
            if self._stopped:
                return
            try:
                self._record(event)
            except StoreError as exc:
                self._warn("store", f"polytrack could not record the run's snapshot: {exc}")

    def _safely(self, what: str, capture: Callable[[], None]) -> None:
        """A capture that fails is a gap in the snapshot, never a failed `init()`."""
        try:
            capture()
        except Exception as exc:
            self._warn(f"capture-{what}", f"polytrack could not capture the {what}: {exc!r}")

    def stop(self, timeout: float | None = None) -> None:
        """Wait for the background captures, at most `timeout` seconds.

        A run that ends while git still works on a huge tree keeps the partial record:
        its end is not held up for the snapshot. Git is then stopped, and what the
        thread would still record is dropped (the journal is closing).
        """
        self._stopping.set()  # what waits for the quiet start to end runs now
        if self._thread is not None:
            self._thread.join(STOP_WAIT if timeout is None else timeout)
            if self._thread.is_alive():
                self._cancel.set()
                self._thread.join()  # git is killed within _CANCEL_POLL
        with self._lock:
            self._stopped = True


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
