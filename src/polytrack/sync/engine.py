"""Shipping a run's journal to a `Backend`: the position kept, the batches, the retries.

```
run directory/
  sync/<target>.json      where shipping to that backend got (written atomically)
  sync/<target>.lock      held by the one process shipping the run there now
  sync/<target>/          the backend's own files for the run (`open_run(workdir=)`)
```
`RunSync` ships one run to one backend, a batch per `step()`. Before a batch goes out, its
range of the journal and its `seq` are recorded as *pending*; once the backend took it, the
position moves past it. A process that dies in between leaves the pending range behind,
and whoever syncs the run next sends exactly that batch again, with the same `seq` and the
same records (`polytrack.store.tail`), which the backend recognizes. So the server holds
every point once, whatever crashed when.

`polytrack.sync.worker.SyncWorker` is the thread that drives `RunSync` for a run while it
records; `polytrack sync` drives it from the command line for runs recorded offline,
unfinished, or left behind by a `finish()` that could not wait any longer.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs

from polytrack.errors import (
    BackendError,
    BackendRejectedError,
    StoreError,
)
from polytrack.models import (
    FINAL_STATUSES,
    ArtifactLogged,
    DataRef,
    Event,
    GitState,
    RunStarted,
)
from polytrack.store.blobs import blob_path
from polytrack.store.journal import fsync_dir
from polytrack.store.tail import JournalTail, Position, Slice
from polytrack.sync.backends.base import Artifact, Backend, Batch, Series
from polytrack.sync.backends.config import uri_key

__all__ = [
    "Backlog",
    "Backoff",
    "RunSync",
    "StepResult",
    "SyncBusyError",
    "SyncState",
    "read_backlog",
    "state_path",
    "target_name",
]

_LOG_RE: Final = re.compile(r"output-\d{3}\.log$")


class SyncBusyError(StoreError):
    """Another process (the run's own, or a `polytrack sync`) is shipping this run there."""


def target_name(key: str) -> str:
    """A file name for a backend key: readable, and unique by a hash of the whole key."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", key.split("://", 1)[-1]).strip("_")[:60]
    scheme = key.split("://", 1)[0].replace("+", "-")
    return f"{scheme}-{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def state_path(directory: Path, key: str) -> Path:
    """Where the sync state of the run in `directory` for backend `key` is kept."""
    return directory / "sync" / f"{target_name(uri_key(key))}.json"


@attrs.define
class SyncState:
    """How far a run got to one backend; persisted as JSON after every batch."""

    backend: str
    seq: int = 0  # the next batch's
    acked: Position = attrs.field(factory=Position)
    pending: tuple[int, Position] | None = None  # a batch sent, not yet known to have landed
    status: tuple[str, float, str | None] | None = None  # the last status sent
    artifacts: dict[str, str] = attrs.field(factory=dict)  # name -> digest uploaded
    set_aside: list[dict[str, Any]] = attrs.field(factory=list)  # batches refused for good
    points: int = 0
    events: int = 0
    synced_at: float | None = None

    @classmethod
    def load(cls, path: Path, key: str) -> SyncState:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(backend=key)
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the sync state {path}: {exc}") from exc
        pending = data.get("pending")
        status = data.get("status")
        return cls(
            backend=data.get("backend", key),
            seq=int(data.get("seq", 0)),
            acked=Position.from_json(data.get("acked", {})),
            pending=(int(pending[0]), Position.from_json(pending[1])) if pending else None,
            status=(status[0], float(status[1]), status[2]) if status else None,
            artifacts=dict(data.get("artifacts", {})),
            set_aside=list(data.get("set_aside", [])),
            points=int(data.get("points", 0)),
            events=int(data.get("events", 0)),
            synced_at=data.get("synced_at"),
        )

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old state or the new one, never a mix."""
        data = {
            "backend": self.backend,
            "seq": self.seq,
            "acked": self.acked.to_json(),
            "pending": [self.pending[0], self.pending[1].to_json()] if self.pending else None,
            "status": list(self.status) if self.status else None,
            "artifacts": self.artifacts,
            "set_aside": self.set_aside,
            "points": self.points,
            "events": self.events,
            "synced_at": self.synced_at,
        }
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with temporary.open("w") as file:
            json.dump(data, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        fsync_dir(path.parent)


@attrs.frozen
class StepResult:
    """What one `RunSync.step` did."""

    points: int = 0
    events: int = 0
    artifacts: int = 0
    caught_up: bool = False  # nothing is left to send now


class RunSync:
    """Ships one run directory to one backend, a batch per `step()`.

    Open it with `RunSync.open`, which takes the run's sync lock for this backend (so one
    process at a time ships a run to a backend) and opens the run on the backend.
    """

    def __init__(
        self,
        directory: Path,
        backend: Backend,
        state: SyncState,
        lock_fd: int,
        started: RunStarted,
        tail: JournalTail,
        *,
        artifact_store: Any = None,
        max_points: int = 20_000,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.backend = backend
        self.state = state
        self.run_id = started.id
        self._started = started
        self._lock_fd = lock_fd
        self._path = state_path(directory, backend.key)
        self._tail = tail
        self._store = artifact_store
        self._max_points = max_points
        self._warn = warn or (lambda message: print(f"polytrack: {message}", file=sys.stderr))
        self._opened = False
        self._damage_said = 0  # how many of `tail.corrupt` were said

    @classmethod
    def open(
        cls,
        directory: Path,
        backend: Backend,
        *,
        artifact_store: Any = None,
        max_points: int = 20_000,
        warn: Callable[[str], None] | None = None,
    ) -> RunSync:
        """Take the run's sync lock for `backend` and read where shipping got.

        Raises:
            SyncBusyError: another process holds the lock.
            StoreError: the run directory holds no run, or cannot be written.
        """
        path = state_path(directory, backend.key)
        try:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot write the sync state of {directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise SyncBusyError(
                    f"run {directory.name} is being synced to {backend.key} by another process"
                ) from None
            raise StoreError(f"cannot lock the sync state of {directory}: {exc}") from exc
        try:
            state = SyncState.load(path, uri_key(backend.key))
            tail = JournalTail(directory)
            started = _first_started(tail, directory)
        except BaseException:
            os.close(fd)
            raise
        return cls(
            directory,
            backend,
            state,
            fd,
            started,
            tail,
            artifact_store=artifact_store,
            max_points=max_points,
            warn=warn,
        )

    def close(self) -> None:
        """Let go of the lock (the backend is the caller's to close)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @property
    def workdir(self) -> Path:
        return self._path.with_suffix("")

    def step(self, *, live: bool, crashed_at: float | None = None) -> StepResult:
        """Ship the next batch (or re-send the pending one); then, once caught up, the
        status and the output logs.

        Args:
            live: the run's latest attempt may still write (see `polytrack.store.tail`).
            crashed_at: the run's process died without a final status, and its last
                record was written then (readers derive `crashed` and its end time,
                `RunInfo.finished_at`; no event records it): sent as its status.

        Raises:
            BackendUnavailableError, BackendAuthError: nothing moved; try again later.
        """
        if not self._opened:
            self.workdir.mkdir(exist_ok=True)
            self.backend.open_run(self._started, workdir=self.workdir)
            self._opened = True
        state = self.state
        if state.pending is not None:
            seq, end = state.pending
            piece = self._tail.read(state.acked, live=live, stop=end)
            piece.exhausted = False  # whatever follows the pending batch is unknown yet
        else:
            piece = self._tail.read(state.acked, live=live, max_points=self._max_points)
            if piece.empty and piece.end == state.acked:
                self._say_damaged()
                return self._finish_step(live, crashed_at)
            seq = state.seq
            state.pending = (seq, piece.end)
            self._save()
        self._say_damaged()
        batch = _batch(seq, piece)
        try:
            self.backend.write(self.run_id, batch)
        except BackendRejectedError as exc:
            # Some records were refused (a changed param, a media blob gc removed): the
            # rest went, and so do the batch's artifacts.
            self._set_aside(seq, f"batch {seq}", exc, str(exc))
        uploaded = self._upload(_artifacts_of(piece.events, self.directory))
        state.acked = piece.end
        state.seq = max(state.seq, seq + 1)
        state.pending = None
        state.points += batch.points
        state.events += len(batch.events)
        state.synced_at = time.time()
        self._save()
        if piece.exhausted:
            return attrs.evolve(
                self._finish_step(live, crashed_at),
                points=batch.points,
                events=len(batch.events),
                artifacts=uploaded,
            )
        return StepResult(batch.points, len(batch.events), uploaded, caught_up=False)

    def _say_damaged(self) -> None:
        """Say what the journal's reader skipped as damaged since the last time, each loss
        once: those records never reach the backend (issue 12)."""
        found = self._tail.corrupt
        new, self._damage_said = found[self._damage_said :], len(found)
        if new:
            more = f"; and {len(new) - 3} more" if len(new) > 3 else ""
            self._warn(
                f"run {self.run_id}: damaged records were skipped, not sent to "
                f"{self.backend.key}: {'; '.join(new[:3])}{more}"
            )

    def _finish_step(self, live: bool, crashed_at: float | None) -> StepResult:
        """Caught up with the journal: send the latest status, and the logs once final."""
        recorded = self._tail.latest_status
        latest: tuple[str, float, str | None] | None = None
        if recorded is not None:
            latest = (recorded.status, recorded.at, recorded.message)
        if crashed_at is not None and (latest is None or latest[0] not in FINAL_STATUSES):
            latest = ("crashed", crashed_at, None)
        uploaded = 0
        if latest is not None:
            status = latest
            if self.state.status != status:
                if not live or status[0] in FINAL_STATUSES:
                    # The output is complete once the attempt is over: sent before the
                    # status, so that a server showing the run done shows all of it.
                    uploaded = self._upload(_logs_of(self.directory))
                self.backend.set_status(self.run_id, status[0], at=status[1], message=status[2])
                self.state.status = status
                self._save()
        elif self.state.status is None:
            at = self._started.created_at
            self.backend.set_status(self.run_id, "running", at=at)
            self.state.status = ("running", at, None)
            self._save()
        return StepResult(artifacts=uploaded, caught_up=True)

    def _upload(self, artifacts: Iterator[Artifact]) -> int:
        count = 0
        for artifact in artifacts:
            if self.state.artifacts.get(artifact.name) == artifact.digest:
                continue
            if not artifact.path.is_file():
                self._set_aside(None, f"artifact {artifact.name}", None, "its file is gone")
                self.state.artifacts[artifact.name] = artifact.digest
                self._save()
                continue
            try:
                if self._store is not None:
                    self._store.put(self.run_id, artifact)
                else:
                    self.backend.upload_artifact(self.run_id, artifact)
            except BackendRejectedError as exc:
                self._set_aside(None, f"artifact {artifact.name}", exc, str(exc))
            self.state.artifacts[artifact.name] = artifact.digest
            self._save()
            count += 1
        return count

    def _set_aside(
        self, seq: int | None, what: str, exc: BackendError | None, reason: str
    ) -> None:
        """Record what can never be sent (a 4xx, a vanished file), say so, and go on."""
        entry = {"seq": seq, "what": what, "error": reason, "at": time.time()}
        self.state.set_aside.append(entry)
        verb = "refused" if exc is not None else "could not be sent"
        self._warn(f"{what} of run {self.run_id} {verb} ({self.backend.key}): {reason}; set aside")

    def _save(self) -> None:
        self.state.save(self._path)

    def up_to_date(self) -> bool:
        """Everything the journal holds went out, the final status too: nothing to do."""
        state = self.state
        if state.pending is not None or state.status is None:
            return False
        if state.status[0] not in FINAL_STATUSES and state.status[0] != "crashed":
            return False
        piece = self._tail.read(state.acked, live=False, max_points=1, max_events=1)
        return piece.empty and piece.end == state.acked

    def backlog(self, *, live: bool) -> int:
        """Points not yet shipped (read from disk: for progress reports, not hot paths)."""
        start = self.state.acked
        total = 0
        while True:
            piece = self._tail.read(start, live=live, max_points=1_000_000, max_events=1_000_000)
            total += piece.points
            if piece.exhausted or piece.end == start:
                return total
            start = piece.end


@attrs.frozen
class Backlog:
    """What syncing a run to a backend would send now (`read_backlog`)."""

    points: int
    events: int
    bytes: int  # about: 24 per point, the events' bytes, the files not yet uploaded
    new: bool  # nothing of the run was ever sent there: syncing creates it on the server
    up_to_date: bool  # all sent, the final status too: syncing would do nothing


def read_backlog(directory: Path, key: str, *, live: bool) -> Backlog:
    """What syncing the run in `directory` to backend `key` would send now.

    Read from disk only: no lock (a process syncing the run meanwhile makes it an
    estimate) and no network, for `polytrack sync --dry-run` and `--status`.

    Raises:
        StoreError: the run's journal or sync state cannot be read.
    """
    path = state_path(directory, key)
    state = SyncState.load(path, uri_key(key))
    tail = JournalTail(directory)
    start = state.acked
    points = events = size = 0
    while True:
        piece = tail.read(start, live=live, max_points=1_000_000, max_events=100_000)
        points += piece.points
        events += len(piece.events)
        size += 24 * piece.points  # step, value and time: 8 bytes each
        size += sum(end - start.events.get(name, 0) for name, end in piece.end.events.items())
        for artifact in _artifacts_of(piece.events, directory):
            if state.artifacts.get(artifact.name) != artifact.digest:
                size += artifact.size
        if piece.exhausted or piece.end == start:
            break
        start = piece.end
    final = state.status is not None and (
        state.status[0] in FINAL_STATUSES or state.status[0] == "crashed"
    )
    return Backlog(
        points=points,
        events=events,
        bytes=size,
        new=not path.is_file(),
        up_to_date=final and state.pending is None and points == 0 and events == 0,
    )


def _batch(seq: int, piece: Slice) -> Batch:
    series = tuple(
        Series(key=chunk.key, steps=chunk.steps, values=chunk.values, times=chunk.times)
        for chunk in piece.chunks
    )
    return Batch(seq=seq, events=tuple(piece.events), metrics=series)


def _first_started(tail: JournalTail, directory: Path) -> RunStarted:
    """The run's first start; the read also teaches `tail` the key names (reused).

    The first event, nearly always; where it was damaged, the first start that survived
    (a later attempt's), which names the run as well."""
    piece = tail.read(Position(), live=True, max_points=0, max_events=1)
    if not (piece.events and isinstance(piece.events[0], RunStarted)) and piece.events:
        piece = tail.read(Position(), live=True, max_points=0, max_events=1 << 30)
    for event in piece.events:
        if isinstance(event, RunStarted):
            return event
    lost = f": {tail.corrupt[0]}" if tail.corrupt else ""
    raise StoreError(f"{directory} holds no run{lost}")


def _artifacts_of(events: list[Event], directory: Path) -> Iterator[Artifact]:
    """The files that the batch's events point at, to upload with it."""
    home = directory.parents[1]
    for event in events:
        if isinstance(event, GitState) and event.diff_file:
            yield _file_artifact(directory / event.diff_file, f"polytrack/{event.diff_file}")
        elif isinstance(event, DataRef) and event.manifest_file:
            path = directory / event.manifest_file
            yield _file_artifact(path, f"polytrack/{event.manifest_file}")
        elif isinstance(event, ArtifactLogged):
            for file in event.files:
                yield Artifact(
                    path=blob_path(home, file.digest),
                    name=f"{event.name}/{file.path}",
                    digest=file.digest,
                    size=file.size,
                )


def _logs_of(directory: Path) -> Iterator[Artifact]:
    for name in sorted(os.listdir(directory)):
        if _LOG_RE.match(name):
            yield _file_artifact(directory / name, f"polytrack/{name}")


def _file_artifact(path: Path, name: str) -> Artifact:
    digest = hashlib.sha256()
    size = 0
    if not path.is_file():  # gone: `_upload` sets it aside
        return Artifact(path=path, name=name, digest="sha256:" + "0" * 64, size=0)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return Artifact(path=path, name=name, digest=f"sha256:{digest.hexdigest()}", size=size)


@attrs.define
class Backoff:
    """Exponential backoff with full jitter, honouring a server's `Retry-After`."""

    initial: float = 0.5
    maximum: float = 60.0
    failures: int = 0
    rng: random.Random = attrs.field(factory=random.Random)

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        ceiling = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        delay = self.rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.maximum * 5))
        return delay

    def reset(self) -> None:
        self.failures = 0
