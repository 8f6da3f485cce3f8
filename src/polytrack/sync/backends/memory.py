"""`InMemoryBackend`: a real backend that keeps what it receives in memory.

For tests (of polytrack, and of code built on it) and as the smallest example of the
`Backend` contract: like a server, it drops a batch it has already applied, so a test can
check that what arrived equals what was logged, exactly once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from polytrack.errors import BackendRejectedError
from polytrack.models import (
    Event,
    NoteSet,
    ParamValue,
    RunRenamed,
    RunRestored,
    RunStarted,
    RunTrashed,
    TagsChanged,
)
from polytrack.sync.backends.base import Artifact, Batch

__all__ = ["InMemoryBackend", "RemoteRun"]

# memory://NAME instances, so that a URI in the environment reaches the same object.
_NAMED: dict[str, InMemoryBackend] = {}
_NAMED_LOCK = threading.Lock()


@attrs.define
class RemoteRun:
    """What the backend holds of one run."""

    started: RunStarted
    seqs: set[int] = attrs.field(factory=set)
    events: list[Event] = attrs.field(factory=list)
    params: dict[str, ParamValue] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)
    # key -> [(step, value, time)] in arrival order
    metrics: dict[str, list[tuple[int, float, float]]] = attrs.field(factory=dict)
    statuses: list[tuple[str, float, str | None]] = attrs.field(factory=list)
    artifacts: dict[str, tuple[str, bytes]] = attrs.field(factory=dict)
    opened: int = 0
    writes: int = 0  # write() calls, repeats included
    # Changes made after the run was recorded (`polytrack.history.manage`).
    name: str | None = None  # None: the name it started with
    notes: str | None = None
    deleted: bool = False

    @property
    def status(self) -> str | None:
        return self.statuses[-1][0] if self.statuses else None


class InMemoryBackend:
    """Keeps every run it is sent in `runs` (run id -> `RemoteRun`); thread-safe.

    Example:
        >>> backend = InMemoryBackend()
        >>> with polytrack.init(backend=backend) as run:
        ...     run.log_metrics({"loss": 0.5}, step=0)
        >>> backend.runs[run.id].metrics["loss"]
        [(0, 0.5, 1732612345.123456)]
    """

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.runs: dict[str, RemoteRun] = {}
        self.closed = 0
        self._lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str, **_: object) -> InMemoryBackend:
        """`memory://NAME`: the process-wide instance of that name (made on first use)."""
        parts = urlsplit(uri)  # never a user or password in the name: it becomes the key
        name = f"{parts.hostname or ''}{parts.path}".strip("/") or "default"
        with _NAMED_LOCK:
            return _NAMED.setdefault(name, cls(name))

    def __repr__(self) -> str:
        return f"<InMemoryBackend {self.name}: {len(self.runs)} runs>"

    @property
    def key(self) -> str:
        return f"memory://{self.name}"

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        with self._lock:
            remote = self.runs.setdefault(run.id, RemoteRun(started=run))
            remote.opened += 1

    def write(self, run_id: str, batch: Batch) -> None:
        with self._lock:
            remote = self._run(run_id)
            remote.writes += 1
            if batch.seq in remote.seqs:
                return  # a repeat: applied already
            remote.seqs.add(batch.seq)
            remote.events.extend(batch.events)
            remote.params.update(batch.params())
            remote.tags.extend(tag for tag in batch.tags() if tag not in remote.tags)
            for key, step, value, at in batch.iter_points():
                remote.metrics.setdefault(key, []).append((step, value, at))
            for event in batch.events:
                _apply_change(remote, event)

    def set_status(
        self, run_id: str, status: str, *, at: float, message: str | None = None
    ) -> None:
        with self._lock:
            statuses = self._run(run_id).statuses
            if not statuses or statuses[-1] != (status, at, message):
                statuses.append((status, at, message))

    def upload_artifact(self, run_id: str, artifact: Artifact) -> None:
        data = artifact.path.read_bytes()
        with self._lock:
            self._run(run_id).artifacts[artifact.name] = (artifact.digest, data)

    def close(self) -> None:
        with self._lock:
            self.closed += 1

    def _run(self, run_id: str) -> RemoteRun:
        try:
            return self.runs[run_id]
        except KeyError:
            raise BackendRejectedError(f"run {run_id} was never opened", status=404) from None

    def points(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of one metric as received, for assertions."""
        return [(step, value) for step, value, _ in self.runs[run_id].metrics.get(key, [])]

    def summary(self) -> dict[str, Any]:
        """Counts per run, for failure messages."""
        return {
            run_id: {"points": sum(map(len, run.metrics.values())), "seqs": len(run.seqs)}
            for run_id, run in self.runs.items()
        }


def _apply_change(remote: RemoteRun, event: Event) -> None:
    """A change made to the run afterwards, as a server applies it."""
    if isinstance(event, RunRenamed):
        remote.name = event.name
    elif isinstance(event, TagsChanged):
        remote.tags = [tag for tag in remote.tags if tag not in event.removed]
        remote.tags.extend(tag for tag in event.added if tag not in remote.tags)
    elif isinstance(event, NoteSet):
        remote.notes = event.notes
    elif isinstance(event, RunTrashed):
        remote.deleted = True
    elif isinstance(event, RunRestored):
        remote.deleted = False
