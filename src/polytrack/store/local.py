"""The embedded store: run directories under a home, indexed by SQLite.

```
$POLYTRACK_HOME/
  index.sqlite3           the index: a cache, rebuilt from the run directories at will
  runs/<run id>/          one directory per run, written only by the run's own process
    events-000.log  points-000-000-00000.seg  ...  heartbeat
```
Writers never take a cross-process lock: each run writes its own directory, so parallel
runs and distributed ranks can share a home, also on a shared volume. Readers bring the
index up to date (`refresh`) before they answer, so they see every run and every point the
files hold, also those of a run killed before anything was indexed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

from polytrack.errors import AmbiguousRunError, RunNotFoundError, StoreError
from polytrack.models import (
    FINAL_STATUSES,
    ArtifactLogged,
    DataRef,
    HandedOver,
    ParamsSet,
    RunInfo,
    RunLinked,
    RunStarted,
    StatusChanged,
    TagsAdded,
)
from polytrack.store import query
from polytrack.store.index import Index, RunLink, RunRef
from polytrack.store.liveness import owner_alive
from polytrack.store.reader import (
    MetricSeries,
    SegmentTotals,
    SeriesSummary,
    read_series,
    summarize_run_files,
)

__all__ = ["LocalStore", "RunRead"]

INDEX_FILE: Final = "index.sqlite3"


@attrs.define
class _Folded:
    """A run's record, folded from its events in order."""

    started: RunStarted | None = None
    first: RunStarted | None = None
    status: str = "created"
    status_at: float = 0.0
    message: str | None = None
    params: dict[str, object] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)
    attempts: int = 0
    notes: str | None = None
    # Set while the latest attempt ended by handing the run over (to a cluster job).
    handed_over: HandedOver | None = None
    # What the run consumed, produced and links to, for the lineage tables of the index.
    refs: list[DataRef | ArtifactLogged] = attrs.field(factory=list)
    links: list[RunLinked] = attrs.field(factory=list)


@attrs.frozen
class RunRead:
    """A run's files folded: its record, its series summaries, the totals of the sealed
    segments read this time (for the index to keep), its hand-over if it ended so, and its
    data ref, artifact and link events (for the lineage tables)."""

    info: RunInfo
    metrics: dict[str, SeriesSummary]
    sealed: dict[str, SegmentTotals]
    handed_over: HandedOver | None = None
    refs: tuple[DataRef | ArtifactLogged, ...] = ()
    links: tuple[RunLinked, ...] = ()


class LocalStore:
    """Run directories under `home` plus their SQLite index."""

    def __init__(self, home: Path, index: Index, *, stale_after: float = 60.0) -> None:
        self.home = home
        self.runs_dir = home / "runs"
        self._index = index
        self._stale_after = stale_after

    @classmethod
    def open(cls, home: Path, *, stale_after: float = 60.0, create: bool = True) -> LocalStore:
        """Open the store at `home`. A read-only or locked index falls back to memory.

        With `create=False` (readers), a missing home is an empty store, not created.
        """
        try:
            if not create and not home.is_dir():
                raise StoreError(f"there is no store at {home}")
            index = Index.open(home / INDEX_FILE)
        except StoreError:
            index = Index.in_memory()
        return cls(home, index, stale_after=stale_after)

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # -- indexing -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Index new runs, live runs and runs whose files changed; forget deleted ones."""
        known = self._index.signatures()
        seen: set[str] = set()
        try:
            entries = list(os.scandir(self.runs_dir))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            seen.add(entry.name)
            previous = known.get(entry.name)
            # One stat per run: a finished run changes only by gaining files (a resume).
            if previous is not None and previous[0] and previous[1] == _signature(entry):
                continue
            try:
                self.index_run(entry.name)
            except StoreError:
                continue  # a directory that is not (yet) a run
        gone = [run_id for run_id in known if run_id not in seen]
        if gone:
            self._index.delete_runs(gone)

    def rebuild(self) -> int:
        """Drop everything indexed and index every run directory again; returns the count."""
        self._index.delete_runs(list(self._index.signatures()))
        self.refresh()
        return len(self._index.signatures())

    def read_run(self, run_id: str) -> RunRead:
        """Fold a run's files into its record, deriving `crashed` for a dead owner.

        Sealed segments whose totals the index kept are not read again. Also returns the
        totals of the sealed segments read this time, for the index to keep.
        """
        directory = self.run_dir(run_id)
        files = summarize_run_files(directory, sealed=self._index.sealed(run_id))
        folded = _Folded()
        for attempt, event in files.events:
            if isinstance(event, RunStarted):
                folded.started = event
                folded.first = folded.first or event
                folded.attempts = max(folded.attempts, attempt + 1)
                folded.tags.extend(t for t in event.tags if t not in folded.tags)
                folded.status, folded.status_at, folded.message = "created", event.created_at, None
                folded.notes = event.notes if event.notes is not None else folded.notes
                folded.handed_over = None  # a process owns the run again
            elif isinstance(event, HandedOver):
                folded.handed_over = event
            elif isinstance(event, StatusChanged):
                folded.status, folded.status_at, folded.message = (
                    event.status,
                    event.at,
                    event.message,
                )
            elif isinstance(event, ParamsSet):
                folded.params.update(event.params)
            elif isinstance(event, TagsAdded):
                folded.tags.extend(t for t in event.tags if t not in folded.tags)
            elif isinstance(event, DataRef | ArtifactLogged):
                folded.refs.append(event)
            elif isinstance(event, RunLinked):
                folded.links.append(event)
        if folded.started is None or folded.first is None:
            raise StoreError(f"{directory} holds no run")
        heartbeat = _mtime(directory / "heartbeat")
        status, finished_at = folded.status, None
        if status in FINAL_STATUSES:
            finished_at = folded.status_at
        elif folded.handed_over is not None:
            pass  # its owner is elsewhere (a cluster job): no process here to judge by
        elif not owner_alive(
            folded.started, heartbeat, stale_after=self._stale_after, now=time.time()
        ):
            status = "crashed"
            finished_at = max(heartbeat or 0.0, folded.status_at)
        info = RunInfo(
            id=folded.first.id,
            project=folded.started.project,
            name=folded.started.name,
            status=status,
            created_at=folded.first.created_at,
            updated_at=max(folded.status_at, heartbeat or 0.0),
            finished_at=finished_at,
            host=folded.started.host,
            pid=folded.started.pid,
            path=str(directory),
            notes=folded.notes,
            tags=tuple(folded.tags),
            params=dict(folded.params),  # type: ignore[arg-type]
            metrics={key: s.summary for key, s in files.metrics.items()},
            message=folded.message,
            attempts=folded.attempts,
        )
        return RunRead(
            info,
            files.metrics,
            files.sealed,
            folded.handed_over,
            tuple(folded.refs),
            tuple(folded.links),
        )

    def handed_over(self, run_id: str) -> HandedOver | None:
        """How the run was handed over, if its latest attempt ended so (`Run.hand_over`)
        and no process has attached to it since; None otherwise."""
        return self.read_run(run_id).handed_over

    def index_run(self, run_id: str) -> RunInfo:
        """Re-read one run's files into the index."""
        read = self.read_run(run_id)
        info, metrics, sealed = read.info, read.metrics, read.sealed
        complete = info.status in FINAL_STATUSES or info.status == "crashed"
        chunks = {key: s.chunks for key, s in metrics.items()}
        self._index.replace_run(
            info,
            chunks,
            complete=complete,
            signature=_signature(self.run_dir(run_id)),
            refs=read.refs,
            links=read.links,
        )
        self._index.keep_sealed(run_id, sealed)
        return info

    # -- reading --------------------------------------------------------------------------

    def query(
        self,
        *,
        project: str | None = None,
        where: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs matching `where` (see `polytrack.store.query`), ordered and limited."""
        where_sql, where_params = query.compile_where(where)
        order_sql, order_params = query.compile_order_by(order_by)
        self.refresh()
        ids = self._index.query_ids(
            where_sql, where_params, order_sql, order_params, project=project, limit=limit
        )
        return self._index.load(ids)

    def resolve(self, ref: str, *, project: str | None = None) -> str:
        """The id of the run named by an id, a unique id prefix, or a name in `project`."""
        if not ref:
            raise RunNotFoundError("a run reference must not be empty")
        self.refresh()
        matches = self._index.resolve(ref, project=project)
        if not matches:
            where = f" in project {project!r}" if project else ""
            raise RunNotFoundError(f"no run{where} has the id, id prefix or name {ref!r}")
        if len(matches) > 1:
            raise AmbiguousRunError(
                f"{ref!r} matches {len(matches)} runs ({', '.join(matches[:5])}"
                f"{', ...' if len(matches) > 5 else ''}); give more of the id"
            )
        return matches[0]

    def get(self, ref: str, *, project: str | None = None) -> RunInfo:
        """The record of one run, read fresh from its files."""
        run_id = self.resolve(ref, project=project)
        return self.read_run(run_id).info  # afresh: a crash verdict in the index may be old

    def history(self, run_id: str, key: str, *, with_times: bool = False) -> MetricSeries:
        """Every point of one metric, read from the run files."""
        return read_series(self.run_dir(run_id), key, with_times=with_times)

    # -- lineage: answered from the index as of the last `refresh` (or `resolve`) --------

    def infos(self, run_ids: Sequence[str]) -> list[RunInfo]:
        """The indexed records of these runs, in this order; unknown ids are left out."""
        return self._index.load(run_ids)

    def refs(
        self,
        *,
        run_ids: Sequence[str] | None = None,
        digests: Sequence[str] | None = None,
        digest_prefix: str | None = None,
        name: str | None = None,
        path: str | None = None,
        role: str | None = None,
    ) -> list[RunRef]:
        """What runs consumed and produced, matching every condition given."""
        return self._index.refs(
            run_ids=run_ids,
            digests=digests,
            digest_prefix=digest_prefix,
            name=name,
            path=path,
            role=role,
        )

    def links(self, run_id: str) -> list[RunLink]:
        """Links from and to one run ("reproduces")."""
        return self._index.links(run_id)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _signature(directory: os.PathLike[str]) -> str:
    """Changes when a run directory gains files (a resume)."""
    try:
        stat = directory.stat() if isinstance(directory, os.DirEntry) else os.stat(directory)
    except OSError:
        return ""
    return str(stat.st_mtime_ns)
