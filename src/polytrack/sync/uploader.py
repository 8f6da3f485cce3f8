"""The home's one background uploader: the runs handed to it, its lock and its record.

```
<home>/.sync/
  pending/<run id>.<target>.json   a run whose finish() could not wait for its server:
                                   {"run", "backend" (the URI without credentials), "since"}
  uploader.lock                    flock'ed by the live uploader for as long as it lives
  uploader.json                    the live uploader: {"pid", "backend", "started_at", "until"}
  uploader.log                     what background uploaders said (the last two MiB)
```
A `finish()` that could not send everything leaves a *pending* marker, then starts an
uploader (`polytrack sync --uploader`) only where none is running: a sweep of a hundred
runs against a server that is down leaves one process behind, not a hundred. Markers are
needed because a run that never reached its server has no sync state to be found by, and
because the backend URI, which may hold credentials, is never written to disk: the
uploader gets it through its environment and sends the pending runs of its own backend.

The lock is an `flock`, which the kernel lets go of however the process ends (kill -9
included), so a live uploader is exactly one whose lock is held, whatever a stale record
says. No run is ever left behind by the race between an uploader that finds nothing left
and a `finish()` that hands it one more: `finish()` writes its marker *before* it looks
for an uploader, and an uploader lets go of its lock *before* its last look for markers
(see `polytrack.cli.sync`), so one of the two always sees the other.

A damaged or foreign file under `.sync/` is skipped, never fatal: it is bookkeeping, and
the runs themselves (their sync state included) stay the truth.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Final

import attrs

from polytrack.errors import StoreError
from polytrack.sync.engine import target_name

__all__ = [
    "LIFETIME",
    "LOG_NAME",
    "SYNC_DIR",
    "Pending",
    "UploaderInfo",
    "UploaderLock",
    "claim",
    "hand_off",
    "pending_runs",
    "running_uploader",
    "settle",
    "stop_uploader",
    "sync_dir",
    "write_record",
]

# How long an uploader lives at most, by default, whatever is left: a server down for
# longer waits for the next run's finish(), or `polytrack sync`.
LIFETIME: Final = 3600.0
SYNC_DIR: Final = ".sync"
LOG_NAME: Final = "uploader.log"
_LOCK: Final = "uploader.lock"
_RECORD: Final = "uploader.json"
_PENDING: Final = "pending"


def sync_dir(home: Path) -> Path:
    """`<home>/.sync`: the uploader's lock, record and log, and the pending markers."""
    return home / SYNC_DIR


# -- the runs handed off -------------------------------------------------------------------


@attrs.frozen
class Pending:
    """A run handed to the uploader: sent to `backend` only in part, or not at all."""

    run_id: str
    backend: str  # the URI without credentials (`uri_key`)
    since: float


def _marker(home: Path, run_id: str, backend: str) -> Path:
    return sync_dir(home) / _PENDING / f"{run_id}.{target_name(backend)}.json"


def hand_off(home: Path, run_id: str, backend: str) -> None:
    """Leave `run_id` to the uploader of `backend` (idempotent; written atomically).

    Raises:
        StoreError: the marker cannot be written (the home is read-only, say).
    """
    path = _marker(home, run_id, backend)
    if path.is_file():
        return  # handed off already (an earlier attempt): keep its `since`
    data = {"run": run_id, "backend": backend, "since": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
    except OSError as exc:
        raise StoreError(f"cannot hand run {run_id} to the uploader: {exc}") from exc


def settle(home: Path, run_id: str, backend: str) -> None:
    """Forget the marker of `run_id` for `backend`: everything went out."""
    with contextlib.suppress(FileNotFoundError):
        _marker(home, run_id, backend).unlink()


def pending_runs(home: Path, backend: str | None = None) -> list[Pending]:
    """The runs handed off (to `backend` only, if given), oldest first; unreadable
    markers are skipped."""
    found: list[Pending] = []
    try:
        entries = list(os.scandir(sync_dir(home) / _PENDING))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        data = _read_json(Path(entry.path))
        try:
            item = Pending(str(data["run"]), str(data["backend"]), float(data["since"]))
        except (KeyError, TypeError, ValueError):
            continue
        if backend is None or item.backend == backend:
            found.append(item)
    return sorted(found, key=lambda item: (item.since, item.run_id))


# -- the uploader --------------------------------------------------------------------------


@attrs.frozen
class UploaderInfo:
    """The live uploader of a home, as its record says (`pid` None: it is starting)."""

    pid: int | None
    backend: str | None
    started_at: float | None
    until: float | None  # when it gives up on what is left, unix seconds

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def claim(home: Path) -> int | None:
    """Take the uploader lock for an uploader about to be started, which inherits it
    (`UploaderLock.adopt`); None when an uploader holds it. So of several processes
    finishing at once, exactly one starts an uploader, and none starts a second one.

    Raises:
        StoreError: the lock cannot be created (a read-only home).
    """
    fd = _open_lock(home)
    deadline = time.monotonic() + 0.5
    while not _try_lock(fd, fcntl.LOCK_EX):
        # Held: by an uploader, or for a moment by a `running_uploader()` probe.
        if running_uploader(home) is not None or time.monotonic() >= deadline:
            os.close(fd)
            return None
        time.sleep(0.01)
    return fd


def write_record(home: Path, *, pid: int, backend: str, until: float | None) -> None:
    """Say which process is the uploader (by its holder of the lock only)."""
    data = {"pid": pid, "backend": backend, "started_at": time.time(), "until": until}
    _write_atomically(sync_dir(home) / _RECORD, data)


class UploaderLock:
    """The home's uploader lock, held by the one process that uploads for it."""

    def __init__(self, home: Path, fd: int) -> None:
        self._home = home
        self._fd = fd

    @classmethod
    def adopt(
        cls, home: Path, fd: int, *, backend: str, until: float | None
    ) -> UploaderLock | None:
        """The lock that `claim()` took for this process and passed on as `fd`; None when
        `fd` is not that lock."""
        try:
            same = os.fstat(fd).st_ino == (sync_dir(home) / _LOCK).stat().st_ino
            if not same or not _try_lock(fd, fcntl.LOCK_EX):  # held: a no-op, or not ours
                return None
        except OSError:
            return None
        os.set_inheritable(fd, False)
        lock = cls(home, fd)
        lock._record(backend, until)
        return lock

    @classmethod
    def acquire(
        cls, home: Path, *, backend: str, until: float | None, wait: float = 1.0
    ) -> UploaderLock | None:
        """Become the home's uploader: None when another one is (after `wait` seconds).

        The wait covers a `running_uploader()` probe that holds the lock for a moment.

        Raises:
            StoreError: the lock cannot be created (a read-only home).
        """
        fd = _open_lock(home)
        deadline = time.monotonic() + wait
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)
        lock = cls(home, fd)
        lock._record(backend, until)
        return lock

    def _record(self, backend: str, until: float | None) -> None:
        try:
            write_record(self._home, pid=os.getpid(), backend=backend, until=until)
        except OSError as exc:
            self.release()
            raise StoreError(f"cannot write the uploader record in {self._home}: {exc}") from exc

    def release(self) -> None:
        """Remove the record, then let go of the lock; a second call does nothing."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            (sync_dir(self._home) / _RECORD).unlink()
        os.close(self._fd)  # closing the descriptor lets go of the flock
        self._fd = -1


def running_uploader(home: Path) -> UploaderInfo | None:
    """The home's live uploader, or None: read without disturbing it (a shared probe of
    its lock, which it holds exclusively for as long as it lives)."""
    directory = sync_dir(home)
    try:
        fd = os.open(directory / _LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            return None  # nobody holds it (closing the descriptor lets go of it)
    finally:
        os.close(fd)
    # Held: the record follows the lock within moments (written right after it is taken).
    deadline = time.monotonic() + 1.0
    while True:
        data = _read_json(directory / _RECORD)
        pid = data.get("pid")
        if isinstance(pid, int) and _alive(pid):
            break
        if time.monotonic() >= deadline:
            return UploaderInfo(None, None, None, None)
        time.sleep(0.02)
    return UploaderInfo(
        pid=pid,
        backend=_optional(data.get("backend"), str),
        started_at=_optional(data.get("started_at"), float),
        until=_optional(data.get("until"), float),
    )


def stop_uploader(home: Path, *, timeout: float = 10.0) -> UploaderInfo | None:
    """Stop the home's uploader: SIGTERM, wait until it let go of its lock, SIGKILL after
    `timeout` seconds. Returns what ran, or None when none did.

    SIGTERM ends it between two records: what it sent is recorded, a batch in flight is
    pending and goes again, with the same sequence number, next time.
    """
    info = running_uploader(home)
    if info is None or info.pid is None:
        return info
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(info.pid, signum)
        except ProcessLookupError:
            return info
        deadline = time.monotonic() + wait
        while _alive(info.pid):  # gone, not only its lock: nothing of it is left running
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        else:
            return info
    raise StoreError(f"the uploader (pid {info.pid}) did not stop")


# -- helpers -------------------------------------------------------------------------------


def _open_lock(home: Path) -> int:
    directory = sync_dir(home)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the uploader lock in {directory}: {exc}") from exc


def _try_lock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    # A zombie is gone too: the uploader's parent (a launcher) exited, and a container's
    # PID 1 may never reap what it inherits.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: alive, as far as one can tell
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _optional(value: Any, kind: type[Any]) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as file:
        json.dump(data, file, separators=(",", ":"))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
