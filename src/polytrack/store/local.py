"""The embedded store: run directories under a home, indexed by SQLite.

```
$POLYTRACK_HOME/
  index.sqlite3           the index: a cache, rebuilt from the run directories at will
  runs/<run id>/          one directory per run, written only by the run's own process
    events-000.log  points-000-000-00000.seg  ...  heartbeat
    ranks/<rank>/         a distributed run's other ranks: each one's side journal
```
Writers never take a cross-process lock: each run writes its own directory, so parallel
runs and distributed ranks can share a home, also on a shared volume. Readers bring the
index up to date (`refresh`) before they answer, so they see every run and every point the
files hold, also those of a run killed before anything was indexed.

The index never breaks or blocks a reader (issue 12): a damaged one is set aside and made
anew, and while another process holds its write lock, or it cannot be written, readers
answer from the run files through an index in memory. Readers never write into a folder
that nothing was recorded into, and refuse one that holds another tool's files
(`check_home`, issue 13). Files that a live run removes while they are read (its spare
segment, when it closes) are read again (`read_settled`).
"""

from __future__ import annotations

import functools
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import attrs

from polytrack.errors import (
    AmbiguousRunError,
    NotAStoreError,
    RunNotFoundError,
    StoreError,
    TrackingWarning,
)
from polytrack.models import (
    FINAL_STATUSES,
    ArtifactLogged,
    DataRef,
    Event,
    HandedOver,
    NoteSet,
    OutputsSet,
    ParamsSet,
    RunInfo,
    RunLinked,
    RunRenamed,
    RunRestored,
    RunStarted,
    RunTrashed,
    StatusChanged,
    TagsAdded,
    TagsChanged,
)
from polytrack.store import query
from polytrack.store.index import (
    BUSY_TIMEOUT,
    Index,
    IndexBusyError,
    IndexCorruptError,
    IndexUnusableError,
    RunLink,
    RunRef,
    set_aside,
)
from polytrack.store.journal import CHANGES_ATTEMPT
from polytrack.store.liveness import owner_alive
from polytrack.store.reader import (
    MetricSeries,
    SealedSegment,
    SeriesSummary,
    _list,
    _read_all_events,
    read_series,
    summarize_run_files,
)

__all__ = [
    "INDEX_FILE",
    "LocalStore",
    "RunRead",
    "check_home",
    "read_events",
    "read_outputs",
    "read_settled",
]

INDEX_FILE: Final = "index.sqlite3"

_P = ParamSpec("_P")
_T = TypeVar("_T")


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
    # The earliest and latest time an event carries (None: no event carries one).
    first_at: float | None = None
    last_at: float | None = None
    # An attempt before the first surviving start record left events: its start was lost.
    lost_start: bool = False
    # Changes made afterwards (`polytrack.store.changes`): a new name, and when the run
    # was last put in the trash (None: never, or restored since).
    renamed: str | None = None
    trashed_at: float | None = None
    outputs: dict[str, object] = attrs.field(factory=dict)  # `log_outputs`, latest wins


def _fold(events: Sequence[tuple[int, Event]]) -> _Folded:
    """Fold a run's events, in the order written, into its record."""
    folded = _Folded()
    for attempt, event in events:
        if attempt != CHANGES_ATTEMPT:  # the changes log is no attempt
            folded.attempts = max(folded.attempts, attempt + 1)
        at = _event_time(event)
        if at is not None:
            folded.first_at = at if folded.first_at is None else min(folded.first_at, at)
            folded.last_at = at if folded.last_at is None else max(folded.last_at, at)
        if isinstance(event, RunStarted):
            folded.started = event
            if folded.first is None:
                folded.first = event
                folded.lost_start = any(earlier < attempt for earlier, _ in events)
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
        elif isinstance(event, OutputsSet):
            if event.reset:
                folded.outputs.clear()
            folded.outputs.update(event.outputs)
        elif isinstance(event, RunRenamed):
            folded.renamed = event.name
        elif isinstance(event, TagsChanged):
            folded.tags = [t for t in folded.tags if t not in event.removed]
            folded.tags.extend(t for t in event.added if t not in folded.tags)
        elif isinstance(event, NoteSet):
            folded.notes = event.notes
        elif isinstance(event, RunTrashed):
            folded.trashed_at = event.at
        elif isinstance(event, RunRestored):
            folded.trashed_at = None
    return folded


def _event_time(event: Event) -> float | None:
    """The unix time an event records, if it records one (0 is "not recorded")."""
    if isinstance(event, RunStarted):
        at = event.created_at
    elif isinstance(event, StatusChanged | HandedOver | RunLinked):
        at = event.at
    elif isinstance(event, RunTrashed | RunRestored | RunRenamed | TagsChanged | NoteSet):
        return None  # when it was changed, not when it ran
    elif isinstance(event, DataRef | ArtifactLogged):
        at = event.logged_at
    else:
        return None
    return at if at > 0 else None


def _latest(*times: float | None) -> float | None:
    return max((t for t in times if t is not None), default=None)


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)


# What a run whose start record was lost is listed under, where nothing else tells.
UNKNOWN_PROJECT: Final = "unknown"


def _recovered(
    directory: Path,
    run_id: str,
    folded: _Folded,
    first_point_at: float | None,
    damaged: list[str],
) -> RunStarted:
    """The first start record of a run that lost it, rebuilt from what survives, and a
    message in `damaged` that says so (issue 12: a damaged first record hid the run).

    Its id is the directory's name. Project, name, host, pid and user come from a later
    attempt's start record if one survived; else the project is "unknown", the name is
    the id (what `init()` names an unnamed run), and host and pid are unknown. It was
    created at the earliest time any surviving record carries (an event's, a point's),
    else when the oldest of its files was last written.
    """
    later = folded.first
    created_at = _earliest(folded.first_at, first_point_at)
    when = "its earliest record's time"
    if created_at is None:
        created_at, when = _oldest_file(directory), "its files' times"
    if later is not None:
        what = f"its project, name and host are attempt {later.attempt}'s"
        rebuilt = attrs.evolve(later, created_at=min(created_at, later.created_at), attempt=0)
    else:
        what = f"its project is {UNKNOWN_PROJECT!r}, its name its id, its host unknown"
        rebuilt = RunStarted(
            id=run_id,
            project=UNKNOWN_PROJECT,
            name=run_id,
            created_at=created_at,
            host="",
            pid=0,
            process_started=0.0,
        )
    damaged.append(
        f"events-000.log: the record that starts the run is lost: {what}; its start time is "
        f"{when}"
    )
    return rebuilt


def _oldest_file(directory: Path) -> float:
    """When the least recently written file of `directory` was last written (0: none)."""
    times = [_mtime(directory / name) for name in _listdir(directory)]
    return min((t for t in times if t is not None), default=0.0)


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


@attrs.frozen
class RunRead:
    """A run's files folded: its record, its series summaries, what the sealed segments
    read this time hold (for the index to keep), its hand-over if it ended so, and its
    data ref, artifact and link events (for the lineage tables)."""

    info: RunInfo
    metrics: dict[str, SeriesSummary]
    sealed: dict[str, SealedSegment]
    handed_over: HandedOver | None = None
    refs: tuple[DataRef | ArtifactLogged, ...] = ()
    links: tuple[RunLinked, ...] = ()
    # When the run was last put in the trash, if it is there (`polytrack.store.changes`).
    trashed_at: float | None = None
    outputs: dict[str, object] = attrs.field(factory=dict)


def _recovering(
    method: Callable[Concatenate[LocalStore, _P], _T],
) -> Callable[Concatenate[LocalStore, _P], _T]:
    """Run a `LocalStore` method again, from the start, on another index where the index
    failed it (`LocalStore._replace_index` says which): the index is a cache, so no
    failure of it is the caller's. Calls from one such method to another recover in
    the outer one only, which starts over whole: a refresh half done on a busy file
    and half in memory would leave runs out of the memory index."""

    @functools.wraps(method)
    def recovering(self: LocalStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._recovering:
            return method(self, *args, **kwargs)
        self._recovering = True
        try:
            for attempt in range(_RECOVERIES):
                try:
                    return method(self, *args, **kwargs)
                except IndexUnusableError as exc:
                    if self._index.in_memory_only:
                        raise  # nothing left to fall back on
                    self._replace_index(exc, reopen=attempt == 0)
            return method(self, *args, **kwargs)
        finally:
            self._recovering = False

    return recovering


# A damaged index is set aside and opened anew once; if that fails too, memory.
_RECOVERIES: Final = 2


class LocalStore:
    """Run directories under `home` plus their SQLite index.

    `busy_timeout` is how long an index statement waits for another process's write lock.
    A damaged index is set aside and made anew when `repair_index`; one that is busy, or
    cannot be written, is replaced by an index in memory when `memory_fallback`, which
    answers from the run files. Either way a `TrackingWarning` says so (not for a
    read-only home, where an index in memory is the normal way to read). Where the
    index cannot be repaired or replaced, its `StoreError` is raised.
    """

    def __init__(
        self,
        home: Path,
        index: Index,
        *,
        stale_after: float = 60.0,
        busy_timeout: float = BUSY_TIMEOUT,
        repair_index: bool = True,
        memory_fallback: bool = True,
        runs_dir: Path | None = None,
    ) -> None:
        self.home = home
        # `home/trash` for a store over the runs in the trash (`polytrack.history.manage`).
        self.runs_dir = home / "runs" if runs_dir is None else runs_dir
        self._index = index
        self._stale_after = stale_after
        self._busy_timeout = busy_timeout
        self._repair_index = repair_index
        self._memory_fallback = memory_fallback
        self._recovering = False

    @classmethod
    def open(
        cls,
        home: Path,
        *,
        stale_after: float = 60.0,
        create: bool = True,
        busy_timeout: float = BUSY_TIMEOUT,
        repair_index: bool = True,
        memory_fallback: bool = True,
    ) -> LocalStore:
        """Open the store at `home` (see the class for the keywords on the index).

        With `create=False` (readers), nothing is written to a home that nothing was
        recorded into: a missing or empty one is an empty store, indexed in memory.

        Raises:
            NotAStoreError: with `create=False`, `home` holds another tool's files.
            StoreError: the index can be neither used nor worked around (as asked).
        """
        if not create:
            check_home(home)
            if not (home / "runs").is_dir():
                return cls(home, Index.in_memory(), stale_after=stale_after)
        store = cls(
            home,
            Index.in_memory(),  # until the file is open
            stale_after=stale_after,
            busy_timeout=busy_timeout,
            repair_index=repair_index,
            memory_fallback=memory_fallback,
        )
        path = home / INDEX_FILE
        placeholder = store._index
        try:
            store._index = Index.open(path, timeout=busy_timeout)
        except IndexUnusableError as exc:
            store._index = store._usable_index(path, exc, reopen=True)
        finally:
            # Closed here, not left to the garbage collector: a connection is in a cycle
            # (its statement cache), freed on whatever thread collects it, and a fork
            # while SQLite closes it there leaves the child's SQLite locked for good.
            placeholder.close()
        return store

    def _replace_index(self, exc: IndexUnusableError, *, reopen: bool) -> None:
        """Put a usable index in place of the one that failed with `exc`."""
        self._index.close()
        self._index = self._usable_index(self._index.path, exc, reopen=reopen)

    def _usable_index(self, path: Path, exc: IndexUnusableError, *, reopen: bool) -> Index:
        """An index to use instead of the one at `path`, which failed with `exc`: the
        same file made anew if it was damaged, else one in memory (as the store allows).

        Raises:
            IndexUnusableError: `exc`, or the failure of the new file, where the store
                may not repair or fall back.
        """
        if isinstance(exc, IndexCorruptError) and self._repair_index and reopen:
            try:
                aside = set_aside(path, exc.identity)
            except OSError as move:
                exc = IndexCorruptError(f"{exc}; it cannot be set aside ({move})")
            else:
                moved = f"set aside as {aside.name}" if aside else "set aside by another process"
                _warn(f"{exc}; {moved}, and it is rebuilt from the run files")
                try:
                    return Index.open(path, timeout=self._busy_timeout)
                except IndexUnusableError as again:
                    exc = again
        if not self._memory_fallback:
            raise exc
        if isinstance(exc, IndexBusyError | IndexCorruptError):
            _warn(f"{exc}; answered from the run files instead")
        return Index.in_memory()

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # -- indexing -------------------------------------------------------------------------

    @_recovering
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
                read = self.read_run(entry.name)
            except IndexUnusableError:
                raise  # the index failed, not the run: see `_recovering`
            except StoreError:
                if not os.path.isdir(entry.path):
                    seen.discard(entry.name)  # deleted while read: forget it below
                continue  # a directory that is not (yet) a run, or no longer one
            self._keep(read)
        gone = [run_id for run_id in known if run_id not in seen]
        if gone:
            self._index.delete_runs(gone)

    @_recovering
    def rebuild(self) -> int:
        """Drop everything indexed and index every run directory again; returns the count."""
        self._index.delete_runs(list(self._index.signatures()))
        self.refresh()
        return len(self._index.signatures())

    @_recovering
    def read_run(self, run_id: str) -> RunRead:
        """Fold a run's files into its record, deriving `crashed` for a dead owner.

        Sealed segments that the index kept are not read again. Also returns what the
        sealed segments read this time hold, for the index to keep. What was damaged is
        in `RunInfo.damaged`. A run whose start record was lost is read from what
        survives (`_recovered`). A crashed run ended with the last record it wrote.

        Raises:
            StoreError: the directory holds no run (no record, none damaged), or is gone.
        """
        directory = self.run_dir(run_id)
        sealed = self._index.sealed(run_id)
        files = read_settled(directory, lambda d: summarize_run_files(d, sealed=sealed))
        folded = _fold(files.events)
        damaged = list(files.corrupt)
        heartbeat = _mtime(directory / "heartbeat")
        now = time.time()
        # When the run last wrote: its latest point or timed event. The heartbeat is
        # later only when the run logged nothing for a while: its process lived then.
        last_record = _latest(folded.last_at, files.last_point_at)
        started, first = folded.started, folded.first
        if first is None or folded.lost_start:
            if first is None and not (files.events or files.metrics or damaged):
                raise StoreError(f"{directory} holds no run")
            first = _recovered(directory, run_id, folded, files.first_point_at, damaged)
        status, finished_at = folded.status, None
        if status in FINAL_STATUSES:
            finished_at = folded.status_at
        elif folded.handed_over is not None:
            pass  # its owner is elsewhere (a cluster job): no process here to judge by
        elif not (
            owner_alive(started, heartbeat, stale_after=self._stale_after, now=now)
            if started is not None
            # No start record: no pid to ask. The heartbeat says, or, before the first
            # beat, the directory's last change (a run being created).
            else now - (heartbeat or _mtime(directory) or 0.0) < self._stale_after
        ):
            status = "crashed"
            finished_at = _latest(last_record, heartbeat, folded.status_at)
        latest = started or first
        info = RunInfo(
            id=first.id,
            project=latest.project,
            name=latest.name if folded.renamed is None else folded.renamed,
            status=status,
            created_at=first.created_at,
            updated_at=_latest(folded.status_at, heartbeat, last_record) or 0.0,
            finished_at=finished_at,
            host=latest.host,
            pid=latest.pid,
            path=str(directory),
            notes=folded.notes,
            tags=tuple(folded.tags),
            params=dict(folded.params),  # type: ignore[arg-type]
            metrics={key: s.summary for key, s in files.metrics.items()},
            message=folded.message,
            attempts=folded.attempts,
            user=first.user,
            damaged=tuple(damaged),
        )
        return RunRead(
            info,
            files.metrics,
            files.sealed,
            folded.handed_over,
            tuple(folded.refs),
            tuple(folded.links),
            folded.trashed_at,
            dict(folded.outputs),
        )

    def handed_over(self, run_id: str) -> HandedOver | None:
        """How the run was handed over, if its latest attempt ended so (`Run.hand_over`)
        and no process has attached to it since; None otherwise."""
        return self.read_run(run_id).handed_over

    @_recovering
    def index_run(self, run_id: str) -> RunInfo:
        """Re-read one run's files into the index."""
        read = self.read_run(run_id)
        self._keep(read)
        return read.info

    def _keep(self, read: RunRead) -> None:
        """Index what `read_run` read."""
        info, metrics, sealed = read.info, read.metrics, read.sealed
        run_id = info.id
        complete = info.status in FINAL_STATUSES or info.status == "crashed"
        chunks = {key: s.chunks for key, s in metrics.items()}
        self._index.replace_run(
            info,
            chunks,
            complete=complete,
            signature=_signature(self.run_dir(run_id)),
            refs=read.refs,
            links=read.links,
            outputs=read.outputs,
        )
        self._index.keep_sealed(run_id, sealed)

    # -- reading --------------------------------------------------------------------------

    @_recovering
    def query(
        self,
        *,
        project: str | None = None,
        where: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunInfo]:
        """Runs matching `where` (see `polytrack.store.query`), ordered, then the `limit`
        of them that follow the first `offset` (a page).

        A metric or param key in `where` that no run of the store has is a `QueryError`
        naming the closest keys: a typo would otherwise match nothing, silently.
        """
        infos, _ = self._page(project, where, order_by, limit, offset, summarize=False)
        return infos

    def _compiled(
        self, where: str | None, order_by: str | Sequence[str] | None
    ) -> tuple[str, list[object], str, list[object]]:
        """`where` and `order_by` as SQL with their parameters, checked against the keys
        of the index, refreshed first (a QueryError before any SQL runs)."""
        where_sql, where_params = query.compile_where(where)
        order_sql, order_params = query.compile_order_by(order_by)
        self.refresh()
        if where is not None and where.strip():
            query.check_keys(where, self._index.keys())
        return where_sql, where_params, order_sql, order_params

    @_recovering
    def summarize(
        self, *, project: str | None = None, where: str | None = None
    ) -> tuple[int, set[str], set[str], set[str]]:
        """How many runs `query` would return without a limit, and the param keys, metric
        keys and projects of those runs: `(count, param keys, metric keys, projects)`."""
        where_sql, where_params, _, _ = self._compiled(where, None)
        return self._index.summarize(where_sql, where_params, project=project)

    @_recovering
    def page(
        self,
        *,
        project: str | None = None,
        where: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[RunInfo], tuple[int, set[str], set[str], set[str]]]:
        """`query` and `summarize` at once, from one refresh of the index (which, on a
        store of many runs, costs more than both)."""
        infos, summary = self._page(project, where, order_by, limit, offset, summarize=True)
        assert summary is not None
        return infos, summary

    def _page(
        self,
        project: str | None,
        where: str | None,
        order_by: str | Sequence[str] | None,
        limit: int | None,
        offset: int,
        *,
        summarize: bool,
    ) -> tuple[list[RunInfo], tuple[int, set[str], set[str], set[str]] | None]:
        """The runs of one page, and their summary when asked, from one refresh."""
        where_sql, where_params, order_sql, order_params = self._compiled(where, order_by)
        ids = self._index.query_ids(
            where_sql,
            where_params,
            order_sql,
            order_params,
            project=project,
            limit=limit,
            offset=offset,
        )
        summary = (
            self._index.summarize(where_sql, where_params, project=project) if summarize else None
        )
        return self._index.load(ids), summary

    @_recovering
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

    @_recovering
    def get(self, ref: str, *, project: str | None = None) -> RunInfo:
        """The record of one run, read fresh from its files."""
        run_id = self.resolve(ref, project=project)
        return self.read_run(run_id).info  # afresh: a crash verdict in the index may be old

    def history(self, run_id: str, key: str, *, with_times: bool = False) -> MetricSeries:
        """Every point of one metric, read from the run files."""
        return read_settled(
            self.run_dir(run_id), lambda d: read_series(d, key, with_times=with_times)
        )

    # -- lineage: answered from the index as of the last `refresh` (or `resolve`) --------

    @_recovering
    def infos(self, run_ids: Sequence[str]) -> list[RunInfo]:
        """The indexed records of these runs, in this order; unknown ids are left out."""
        return self._index.load(run_ids)

    @_recovering
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

    @_recovering
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


def _warn(message: str) -> None:
    # stacklevel 4: past this function, `_usable_index` and `_replace_index` or `open`.
    warnings.warn(message, TrackingWarning, stacklevel=4)


# -- the files a reader meets ------------------------------------------------------------

# How often a read starts over because a file it listed was gone when it opened it.
_SETTLE_TRIES: Final = 3


def read_settled(directory: Path, read: Callable[[Path], _T]) -> _T:
    """`read(directory)`, read again from a fresh listing where a file that the listing
    named was gone when opened.

    Runs change while they are read: a live run removes its spare segment when it closes,
    and a run's directory may be deleted. Each such change happens once, so a few tries
    settle it (issue 12: runs ls failed on a segment that rotated away).

    Raises:
        StoreError: the directory itself is gone (or kept changing for every try).
    """
    error: OSError | None = None
    for _ in range(_SETTLE_TRIES):
        try:
            return read(directory)
        except FileNotFoundError as exc:
            error = exc
        except StoreError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise
            error = exc
        if not directory.is_dir():
            raise StoreError(f"run directory {directory} is gone") from error
    raise StoreError(f"the files of {directory} kept vanishing while read: {error}") from error


def read_events(directory: Path) -> list[Event]:
    """Every event of the run in `directory`, every attempt's, in the order written; read
    again from a fresh listing where the run changed while read (`read_settled`)."""
    events, _ = read_settled(directory, lambda found: _read_all_events(found, _list(found), []))
    return [event for _, event in events]


def read_outputs(directory: Path) -> dict[str, Any]:
    """What the run in `directory` reported with `log_outputs`: later values win, and a
    `reset` forgets every earlier one."""
    outputs: dict[str, Any] = {}
    for event in read_events(directory):
        if isinstance(event, OutputsSet):
            if event.reset:
                outputs.clear()
            outputs.update(event.outputs)
    return outputs


# Top-level entries of a home that polytrack makes: runs, artifacts (`blobs`), launched
# operations (`ops`), the trash (`runs rm`), the default names' counts (`counters`), the
# index with its companion files and damaged copies set aside.
_HOME_ENTRIES: Final = frozenset({"runs", "blobs", "ops", "trash", "counters"})
# Files of a run directory, by name alone: damaged bytes leave a run recognisably ours.
_RUN_FILE: Final = re.compile(
    r"(events-\d+\.log|points-\d+-\d+-\d+\.seg|heartbeat|sync|output-\d+\.log|git-\d+\.diff"
    r"|manifest-.*\.json|ranks)$"  # ranks/: a distributed run's side journals
)


def check_home(home: Path) -> None:
    """Refuse a folder that holds another tool's files and no run of ours.

    A polytrack home is what `init()` makes: `runs/<id>/` with a run's files, beside the
    index, `blobs/` and `ops/`. A missing or empty folder is an empty home. A folder with
    other files is one still, if any run directory in it holds a run's files (a home
    inside a project folder, say); otherwise it is someone else's (an MLflow `mlruns`, a
    TensorBoard logdir, a project), and a reader must neither write an index into it nor
    answer "no runs" as if the user had pointed at an empty store (issue 13). Hidden
    entries (`.DS_Store`, `.git`) say nothing either way. Only names are looked at, and
    only until a run of ours turns up: about three directory listings for a real home.

    Raises:
        NotAStoreError: `home` is a file, or a folder of someone else's files.
        StoreError: `home` cannot be listed.
    """
    try:
        names = sorted(os.listdir(home))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise NotAStoreError(f"{home} is a file, not a polytrack store") from None
    except OSError as exc:
        raise StoreError(f"cannot read the store {home}: {exc}") from exc
    strangers = [
        home / name
        for name in names
        if not (name.startswith(".") or name in _HOME_ENTRIES or name.startswith(INDEX_FILE))
    ]
    if "runs" in names:
        ours, foreign = _runs_verdict(home / "runs")
        if ours:
            return
        strangers += foreign
    if strangers:
        raise NotAStoreError(_not_a_store(home, strangers))


def _runs_verdict(runs: Path) -> tuple[bool, list[Path]]:
    """(whether `runs` holds a run of ours, what it holds that is not ours), looking no
    further than the first run of ours."""
    foreign: list[Path] = []
    try:
        entries = sorted(os.scandir(runs), key=lambda entry: entry.name)
    except NotADirectoryError:
        return False, [runs]
    except OSError as exc:
        raise StoreError(f"cannot read the store {runs.parent}: {exc}") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            foreign.append(Path(entry.path))
            continue
        try:
            names = os.listdir(entry.path)
        except OSError:
            continue  # deleted meanwhile, or unreadable: says nothing either way
        if any(_RUN_FILE.match(name) for name in names):
            return True, []
        if any(not name.startswith(".") for name in names):
            foreign.append(Path(entry.path))
    return False, foreign


def _not_a_store(home: Path, strangers: Sequence[Path]) -> str:
    """Says what `home` looks like instead, and what to do."""
    what = _whose(strangers)
    examples = ", ".join(repr(str(path.relative_to(home))) for path in strangers[:3])
    more = ", ..." if len(strangers) > 3 else ""
    return (
        f"{home} is not a polytrack store: {what} ({examples}{more}), and no run that"
        " polytrack recorded. Pass the home of a polytrack store (--home, home=, or"
        " POLYTRACK_HOME), or import these runs into one (`polytrack import KIND SOURCE`)."
        " Nothing was written here."
    )


def _whose(strangers: Sequence[Path]) -> str:
    """A guess at the tool whose files `strangers` are, from their names."""

    def names(path: Path) -> list[str]:
        try:
            return [path.name, *os.listdir(path)] if path.is_dir() else [path.name]
        except OSError:
            return [path.name]

    found = [name for path in strangers[:20] for name in names(path)]
    if any(name.startswith("events.out.tfevents") for name in found):
        return "it holds TensorBoard event files"
    if "meta.yaml" in found or "mlruns" in (path.name for path in strangers):
        return "it looks like an MLflow tracking folder (mlruns)"
    return "it holds files that polytrack did not write"
