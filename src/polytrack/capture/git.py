"""Running git for what only git can tell: the uncommitted diff and the untracked files.

Two stages, because `init()` must return fast. `read_head` (in `git_files`, re-exported
here) reads the repository's files directly: root, commit, branch and remote, in well
under a millisecond. `capture_git` adds the uncommitted diff and the untracked files, by
running two git processes at once within a deadline:

    git diff HEAD --binary ...              the patch of tracked files (and the dirty flag)
    git ls-files --others --directory ...   the untracked files, as `git status` shows them

`git diff` alone is the slow half (it stats every tracked file and writes the patch);
`ls-files --others` only walks directories, where `git status` would stat every tracked
file a second time. On a 20,000-file repository with a 5 MB diff, diff alone took 90-130
ms, diff and ls-files together 120-135 ms, diff and status together 155-170 ms.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Final

from attrs import evolve, frozen

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from polytrack.capture.git_files import NOT_A_REPOSITORY, read_head, read_head_details
from polytrack.models import GitState

__all__ = [
    "GIT_NOT_FOUND",
    "NOT_A_REPOSITORY",
    "GitCapture",
    "capture_git",
    "git_environment",
    "read_head",
]

GIT_NOT_FOUND: Final = "git not found; status and diff unavailable"

# `git diff <empty tree>` is the patch of an unborn branch: every tracked file is new.
_EMPTY_TREE: Final = {
    "sha1": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}
# Variables that point git at another repository or index (set inside git hooks, for
# one): dropped, so that git finds the repository `read_head` found, from its root.
# Discovery from the working directory also keeps git's `safe.directory` check, which
# an explicit `--git-dir` would skip.
_REPOSITORY_VARIABLES: Final = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
# Output is read in big batches: a reader woken for every 4-8 KiB that git writes costs
# ~40 ms more wall time on a 5 MB diff (two busy cores, 5.6 MB: 165 ms against 120 ms
# with git writing to /dev/null). A 1 MiB pipe (Linux) and a 2 ms nap after each read
# bring it back to within a few ms of /dev/null; the nap adds at most 2 ms at the end.
_CHUNK: Final = 1 << 20
_PIPE_SIZE: Final = 1 << 20
_NAP: Final = 0.002
_STDERR_KEPT: Final = 4096
_CANCEL_POLL: Final = 0.05
# Where one file's patch starts. Inside a patch no line can begin so: hunk lines start
# with " ", "+", "-", "\\" or "@", and the base85 lines of binary patches hold no space.
_FILE_BOUNDARY: Final = b"\ndiff --git "


@frozen
class GitCapture:
    """The git state, and the uncommitted diff that the caller writes to the run directory.

    `state.diff_file` is None: the caller writes `diff` and records where.
    """

    state: GitState
    diff: bytes  # `git apply`-able patch of tracked files against HEAD; b"" when clean


def capture_git(
    path: Path,
    *,
    timeout: float,
    max_diff_bytes: int,
    max_untracked: int,
    git: str | None = "git",
    environ: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> GitCapture:
    """The full git state of the working tree around `path`, and its uncommitted diff.

    Runs `git diff` and `git ls-files --others` at once, both within `timeout`. `dirty`
    means tracked files differ from HEAD (staged or not); untracked files are listed
    apart, as `git status` shows them (a wholly untracked directory is one `dir/` entry)
    and never make the tree dirty. Git runs without taking the repository's index lock
    (`GIT_OPTIONAL_LOCKS=0`), without pager, prompt, colour, external diff or textconv
    filters, so the patch is one that `git apply` takes.

    Args:
        path: a directory inside the working tree.
        timeout: seconds for everything; what did not finish is killed, and the state
            comes back with `partial=True` and a `reason` naming what timed out.
        max_diff_bytes: at most this much of the diff is kept; the rest is read from the
            pipe one 1 MiB chunk at a time, counted and dropped, never accumulated. A
            longer diff is cut at the last file that fits, so the kept part still
            applies; `diff_truncated` is set and `diff_bytes` is the full size when git
            finished within the deadline, else the size kept.
        max_untracked: at most this many untracked entries are listed; git is stopped
            at the next one and `untracked_truncated` is set.
        git: the git executable, looked up on the PATH of `environ`; None: no git, only
            what `read_head` reads (with reason `GIT_NOT_FOUND`).
        environ: the environment git runs in; default `os.environ`.
        cancel: when set (the run finished first), git is stopped as at the deadline.

    Returns:
        `GitCapture(state, diff)`; `state.diff_file` is left None. Never raises for any
        state of the repository or of git (missing, refusing a repository owned by
        another user under `safe.directory`, failing, too slow).

    Example:
        >>> capture_git(Path("/"), timeout=1.0, max_diff_bytes=1 << 20, max_untracked=100)
        GitCapture(state=GitState(available=False, reason='not a git repository', ...
    """
    head = read_head_details(path)
    state = head.state
    if not state.available or state.root is None:
        return GitCapture(state, b"")
    environ = os.environ if environ is None else environ
    executable = _find_git(git, environ)
    if executable is None:
        return GitCapture(
            evolve(state, reason=_join(state.reason, GIT_NOT_FOUND), partial=False), b""
        )
    if sys.platform == "win32":  # selectors cannot wait on pipes there
        return GitCapture(
            evolve(
                state,
                reason=_join(state.reason, "status and diff not captured on Windows"),
                partial=False,
            ),
            b"",
        )
    base = _EMPTY_TREE.get(head.object_format, "HEAD") if head.unborn else "HEAD"
    common = [executable, "--no-pager", "-c", "core.quotepath=off"]
    jobs = [
        _Job(
            "diff",
            [
                *common,
                "diff",
                base,
                "--binary",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                "--no-renames",
                "--submodule=short",
                "--ignore-submodules=dirty",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                "--",
            ],
            _DiffSink(max(0, max_diff_bytes)),
        ),
        _Job(
            "ls-files",
            [
                *common,
                "ls-files",
                "-z",
                "--others",
                "--exclude-standard",
                "--directory",
                "--no-empty-directory",
            ],
            _UntrackedSink(max(0, max_untracked)),
        ),
    ]
    reason = _run(
        jobs, cwd=state.root, env=git_environment(environ), timeout=timeout, cancel=cancel
    )
    diff_job, untracked_job = jobs
    diff_sink = diff_job.sink
    assert isinstance(diff_sink, _DiffSink)
    untracked_sink = untracked_job.sink
    assert isinstance(untracked_sink, _UntrackedSink)
    diff = diff_sink.patch(complete=diff_job.succeeded)
    timed_out = any(job.timed_out for job in jobs)
    state = evolve(
        state,
        reason=_join(state.reason, reason),
        partial=timed_out,
        # Any byte of patch means a tracked change, even when git did not finish.
        dirty=bool(diff_sink.size) if diff_job.succeeded or diff_sink.size else None,
        diff_bytes=diff_sink.size if diff_job.succeeded else len(diff),
        diff_truncated=bool(diff_sink.size) and len(diff) < diff_sink.size,
        untracked=tuple(untracked_sink.paths),
        untracked_truncated=untracked_sink.truncated,
    )
    return GitCapture(state, diff)


# -- running git --------------------------------------------------------------------------


def _find_git(git: str | None, environ: Mapping[str, str]) -> str | None:
    if git is None:
        return None
    return shutil.which(git, path=environ.get("PATH", os.defpath))


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` for running git on the user's repository: none of the variables that
    point git elsewhere, no prompts, pagers or optional locks, messages in English."""
    env = {key: value for key, value in environ.items() if key not in _REPOSITORY_VARIABLES}
    env.update(
        GIT_OPTIONAL_LOCKS="0",  # never take (or refresh) the index lock of the user's repo
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        LC_ALL="C",  # messages we record as reasons, in one language
    )
    return env


class _DiffSink:
    """Keeps the first `limit` bytes of the patch and counts all of it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept = bytearray()
        self.size = 0

    def feed(self, chunk: bytes) -> bool:
        """Take a chunk; True when there is nothing more to learn from the process."""
        if len(self._kept) < self._limit:
            self._kept += chunk[: self._limit - len(self._kept)]
        self.size += len(chunk)
        return False  # keep reading to learn the full size, until the deadline

    def patch(self, *, complete: bool) -> bytes:
        """The kept bytes, cut at the last whole file when anything is missing."""
        if complete and self.size == len(self._kept):
            return bytes(self._kept)
        cut = self._kept.rfind(_FILE_BOUNDARY)
        return bytes(self._kept[: cut + 1]) if cut >= 0 else b""


class _UntrackedSink:
    """Collects NUL-separated paths up to `limit`; one more means truncated."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._partial = b""
        self.paths: list[str] = []
        self.truncated = False

    def feed(self, chunk: bytes) -> bool:
        *complete, self._partial = (self._partial + chunk).split(b"\0")
        for raw in complete:
            if len(self.paths) == self._limit:
                self.truncated = True
                return True  # all we keep is known: stop git
            self.paths.append(raw.decode("utf-8", "backslashreplace"))
        return False


_Sink = _DiffSink | _UntrackedSink


class _Job:
    """One git process, its output sink and how it ended."""

    def __init__(self, name: str, argv: list[str], sink: _Sink) -> None:
        self.name, self.argv, self.sink = name, argv, sink
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr = bytearray()
        self.stopped = False  # by us, having read all we want
        self.timed_out = False
        self.succeeded = False


def _run(
    jobs: list[_Job],
    *,
    cwd: str,
    env: dict[str, str],
    timeout: float,
    cancel: threading.Event | None,
) -> str | None:
    """Run the jobs at once until they end, the deadline passes or `cancel` is set; why
    they failed, if so."""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    try:
        for job in jobs:
            try:
                job.process = subprocess.Popen(
                    job.argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            except OSError as exc:
                return f"could not run git: {exc}"
            assert job.process.stdout is not None and job.process.stderr is not None
            _enlarge(job.process.stdout)
            selector.register(job.process.stdout, selectors.EVENT_READ, (job, False))
            selector.register(job.process.stderr, selectors.EVENT_READ, (job, True))
        _pump(selector, deadline, cancel)
        if cancel is not None and cancel.is_set():
            deadline = time.monotonic()  # what still runs is killed below
        for job in jobs:
            # Pipes still open at the deadline: output is missing, whether or not git
            # happened to exit meanwhile.
            job.timed_out = _unregister(selector, job)
            _finish(job, deadline)
    finally:
        selector.close()
        for job in jobs:
            _reap(job)
    if cancel is not None and cancel.is_set():
        return _join("stopped: the run finished first", _reasons(jobs, timeout, timeouts=False))
    return _reasons(jobs, timeout)


def _pump(
    selector: selectors.BaseSelector, deadline: float, cancel: threading.Event | None
) -> None:
    while selector.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (cancel is not None and cancel.is_set()):
            return
        # With a cancel to watch, wake up now and then to look at it.
        events = selector.select(remaining if cancel is None else min(remaining, _CANCEL_POLL))
        for key, _ in events:
            if key.fd not in selector.get_map():  # a stopped job's other pipe
                continue
            job, is_stderr = key.data
            chunk = os.read(key.fd, _CHUNK)
            if not chunk:
                selector.unregister(key.fileobj)
            elif is_stderr:
                job.stderr += chunk[: _STDERR_KEPT - len(job.stderr)]
            elif job.sink.feed(chunk):
                job.stopped = True
                _unregister(selector, job)
                assert job.process is not None
                job.process.kill()
        if events and selector.get_map():
            time.sleep(max(0.0, min(_NAP, deadline - time.monotonic())))


def _enlarge(pipe: IO[bytes]) -> None:
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setpipe is not None:
        with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: keep 64 KiB
            fcntl.fcntl(pipe.fileno(), setpipe, _PIPE_SIZE)


def _unregister(selector: selectors.BaseSelector, job: _Job) -> bool:
    """Stop reading the job's pipes; True if any was still open."""
    keys = [key for key in selector.get_map().values() if key.data[0] is job]
    for key in keys:
        selector.unregister(key.fileobj)
    return bool(keys)


def _finish(job: _Job, deadline: float) -> None:
    """Wait for a job whose pipes closed (it is exiting); kill it at the deadline."""
    process = job.process
    assert process is not None
    if job.stopped or job.timed_out:
        return
    try:
        code = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        job.timed_out = True
        process.kill()
        return
    job.succeeded = code == 0


def _reap(job: _Job) -> None:
    # Whatever happened above: no process left running, no zombie, no open pipe.
    process = job.process
    if process is None:
        return
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _reasons(jobs: list[_Job], timeout: float, *, timeouts: bool = True) -> str | None:
    reasons: list[str] = []
    failures: dict[str, list[str]] = {}  # message -> jobs that failed with it
    for job in jobs:
        if job.timed_out:
            if timeouts:
                reasons.append(f"git {job.name} timed out after {timeout:g} s")
        elif not job.succeeded and not job.stopped:
            assert job.process is not None
            message = _first_line(bytes(job.stderr)) or f"exit status {job.process.returncode}"
            failures.setdefault(message, []).append(job.name)
    # Both fail alike when git refuses the repository (safe.directory): say it once.
    reasons += [
        f"git {' and '.join(names)} failed: {message}" for message, names in failures.items()
    ]
    return "; ".join(reasons) or None


def _first_line(stderr: bytes) -> str:
    for line in stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("fatal: ").removeprefix("error: ")
    return ""


def _join(first: str | None, second: str | None) -> str | None:
    return "; ".join(part for part in (first, second) if part) or None
