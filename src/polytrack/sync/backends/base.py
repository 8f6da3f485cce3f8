"""The `Backend` plug point: where the sync worker ships a run's records.

A backend is a plain object with five methods, passed as an instance
(`polytrack.init(backend=MyBackend())`) or named by a URI (`POLYTRACK_BACKEND`) whose
scheme a factory in the `polytrack.backends` entry-point group claims. The sync engine
(`polytrack.sync.engine`) calls it from one thread at a time:

```
open_run(run, workdir=...)          once per process and run, before anything else
write(run_id, batch)                the run's records in journal order, batch.seq = 0, 1, 2...
set_status(run_id, status, ...)     after the batch holding the status change was written
upload_artifact(run_id, artifact)   a file of the run (its diff, its output, its artifacts)
close()                             when the engine is done with the backend
```
Every call may be repeated after a crash, a timeout or a restart, with the same arguments:
a batch is rebuilt with the same `seq` and the same records (exactly), an artifact with the
same name and digest. A backend must make a repeat harmless (idempotent on
`(run_id, batch.seq)` and on `(run_id, artifact.name, artifact.digest)`), which is what
makes at-least-once delivery look exactly-once from the server.

Failures are raised as `BackendError`s: `BackendUnavailableError` (retried with backoff),
`BackendRejectedError` (set aside, named in `polytrack sync`'s report),
`BackendAuthError` (reported once; syncing that backend stops).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs
from attrs import frozen

from polytrack.models import Event, ParamsSet, ParamValue, RunStarted, TagsAdded

if TYPE_CHECKING:  # numpy is not imported by init(): the sync thread brings it
    import numpy as np
    import numpy.typing as npt

__all__ = ["Artifact", "Backend", "Batch", "Series", "home_of"]


@frozen(eq=False)
class Series:
    """Points of one metric, in the order they were logged; times are unix seconds.

    A point's time is the one the journal recorded (to the microsecond it was read
    back as), so a batch rebuilt after a restart carries bit-identical points.
    """

    key: str
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.steps.size)


@frozen(eq=False)
class Batch:
    """A slice of one run's journal: events (in journal order) and metric points.

    The events are what a server wants to know (params, tags, status changes, the
    snapshot records, data refs, artifacts, links); the journal's bookkeeping (key ids,
    row schemas, checksums) is left out.
    """

    seq: int
    events: tuple[Event, ...] = ()
    metrics: tuple[Series, ...] = ()

    @property
    def points(self) -> int:
        """How many metric points the batch holds."""
        return sum(len(series) for series in self.metrics)

    def params(self) -> dict[str, ParamValue]:
        """The params set in this batch, later values winning."""
        merged: dict[str, ParamValue] = {}
        for event in self.events:
            if isinstance(event, ParamsSet):
                merged.update(event.params)
        return merged

    def tags(self) -> tuple[str, ...]:
        """The tags added in this batch (at the start of an attempt too), first first."""
        seen: dict[str, None] = {}
        for event in self.events:
            if isinstance(event, (TagsAdded, RunStarted)):
                seen.update(dict.fromkeys(event.tags))
        return tuple(seen)

    def iter_points(self) -> Iterator[tuple[str, int, float, float]]:
        """(key, step, value, time) for every point, series by series."""
        for series in self.metrics:
            for step, value, at in zip(
                series.steps.tolist(),
                series.values.tolist(),
                series.times.tolist(),
                strict=True,
            ):
                yield series.key, step, value, at


@frozen
class Artifact:
    """A file to upload for a run: where it is here, and its name on the server.

    `name` is relative and "/"-separated (`polytrack/git-000.diff`, `model/weights.pt`);
    `digest` ("sha256:<hex>") and `size` describe the bytes at `path`.
    """

    path: Path
    name: str
    digest: str
    size: int = attrs.field(validator=attrs.validators.ge(0))


@runtime_checkable
class Backend(Protocol):
    """Where a run's records end up. Every method must be safe to repeat (see module doc).

    `key` names the destination without credentials (`mlflow+http://host:5000/`): the
    engine keeps one sync position per run and key, so the same run can go to several.
    """

    @property
    def key(self) -> str: ...

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        """Create the run on the server, or find the one an earlier sync created.

        `workdir` is a directory of this backend's own for this run, kept across
        processes (under the run's directory): where a backend that cannot append on its
        server stages what it has accepted but not yet uploaded.
        """

    def write(self, run_id: str, batch: Batch) -> None:
        """Store the batch; returns once the server holds it (or it is durably staged)."""

    def set_status(
        self, run_id: str, status: str, *, at: float, message: str | None = None
    ) -> None:
        """Record the run's status: running, succeeded, failed, stopped or crashed."""

    def upload_artifact(self, run_id: str, artifact: Artifact) -> None:
        """Upload one file of the run under `artifact.name`."""

    def close(self) -> None:
        """Release connections; the engine calls nothing after it."""


def home_of(workdir: Path) -> Path | None:
    """The home of the run whose backend workdir is `workdir`, where its blob store is
    (the engine lays workdirs out as `<home>/runs/<run>/sync/<target>`:
    `polytrack.sync.engine.state_path`); None for a workdir outside a home."""
    parents = workdir.absolute().parents
    return parents[3] if len(parents) > 3 else None
