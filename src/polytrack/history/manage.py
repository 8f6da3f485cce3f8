"""Managing recorded runs: rename, tag, note, the trash, and collecting unused blobs.

Every change is an event in the run's changes log (`polytrack.store.changes`), saying who
(`Settings.user`) and when, so `polytrack index rebuild` reproduces it from the files and
the sync engine ships it to a server like any other record. The index is brought up to
date at once, so the next `runs()` sees the change.

The trash is a folder of the home: `delete_run` appends `RunTrashed` to the run's log,
then moves its directory from `runs/` to `trash/` with one `rename(2)`. Readers list
`runs/` only, so a trashed run is skipped by `runs()`, `runs ls` and the index without
any of them knowing about the trash; `restore_run` moves it back. A crash between the
event and the move leaves the run where it was, marked trashed: `delete_run` again
finishes the move. A run whose process is alive cannot be moved (its writer holds the
directory open), nor can a run handed over to a cluster job (its owner is elsewhere).

`gc` deletes the blobs (`polytrack.store.blobs`) that no run refers to, in `runs/` or in
`trash/` (a trashed run keeps its artifacts until it is purged), and purges runs trashed
before a given age. A blob written or reused less than `grace` seconds ago is kept: a
live run stores an artifact's blob before it records the event that refers to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

from attrs import frozen

from polytrack._text import has_surrogates, safe_repr
from polytrack.errors import InvalidInputError, RunNotFoundError, RunStateError, StoreError
from polytrack.history.runs import RunView, _home
from polytrack.models import (
    ArtifactLogged,
    Event,
    MediaLogged,
    NoteSet,
    RunRenamed,
    RunRestored,
    RunTrashed,
    TagsChanged,
)
from polytrack.run import check_tags
from polytrack.settings import Settings
from polytrack.store.changes import append_changes
from polytrack.store.index import Index
from polytrack.store.local import LocalStore, RunRead, read_settled
from polytrack.store.reader import _list, _read_all_events

__all__ = [
    "GcReport",
    "delete_run",
    "gc",
    "rename_run",
    "restore_run",
    "set_note",
    "tag_run",
    "trash_store",
    "trashed_runs",
    "untag_run",
]

TRASH: Final = "trash"
# Blobs written or reused this recently are never collected (see the module doc).
DEFAULT_GRACE: Final = 3600.0
_LIVE: Final = frozenset({"created", "running"})


def rename_run(
    ref: str, name: str, *, project: str | None = None, home: str | Path | None = None
) -> RunView:
    """Give the run named by `ref` (id, unique id prefix, or name) a new name.

    Raises:
        InvalidInputError: `name` is not a non-empty string of at most 256 characters.
        RunNotFoundError: no run matches `ref` (`AmbiguousRunError`: several do).

    Example:
        >>> polytrack.rename_run("a1b2", "baseline")
    """
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise InvalidInputError(
            f"name must be a non-empty string of at most 256 characters; got {safe_repr(name)}"
        )
    if has_surrogates(name):
        raise InvalidInputError(f"name {name!r} holds a lone surrogate, which is not text")
    return _change(ref, project, home, lambda at, by: RunRenamed(name=name.strip(), at=at, by=by))


def tag_run(
    ref: str, *tags: str, project: str | None = None, home: str | Path | None = None
) -> RunView:
    """Add `tags` to a recorded run (those it has already are left as they are).

    Raises:
        InvalidInputError: no tags, or a tag that is not a non-empty string.
        RunNotFoundError: no run matches `ref`.

    Example:
        >>> polytrack.tag_run("a1b2", "best", "paper")
    """
    clean = _tags(tags)
    return _change(ref, project, home, lambda at, by: TagsChanged(added=clean, at=at, by=by))


def untag_run(
    ref: str, *tags: str, project: str | None = None, home: str | Path | None = None
) -> RunView:
    """Remove `tags` from a recorded run (tags it does not have are ignored).

    Raises:
        InvalidInputError: no tags, or a tag that is not a non-empty string.
        RunNotFoundError: no run matches `ref`.
    """
    clean = _tags(tags)
    return _change(ref, project, home, lambda at, by: TagsChanged(removed=clean, at=at, by=by))


def set_note(
    ref: str, text: str | None, *, project: str | None = None, home: str | Path | None = None
) -> RunView:
    """Replace the run's notes with `text` (None or "" clears them).

    Raises:
        InvalidInputError: `text` is not a string.
        RunNotFoundError: no run matches `ref`.
    """
    if text is not None and not isinstance(text, str):
        raise InvalidInputError(f"text must be a string or None; got {type(text).__name__}")
    notes = text or None
    return _change(ref, project, home, lambda at, by: NoteSet(notes=notes, at=at, by=by))


def delete_run(
    ref: str,
    *,
    purge: bool = False,
    project: str | None = None,
    home: str | Path | None = None,
) -> str:
    """Move a run to the trash, or with `purge` delete it for good; returns its id.

    `ref` names a run in the store or, with `purge`, also one in the trash. A purged
    run's files are gone: a server it was synced to keeps its copy unless the trashing
    was synced first.

    Raises:
        RunStateError: the run is being recorded (its process is alive) or was handed
            over to a cluster job.
        RunNotFoundError: no run matches `ref`.

    Example:
        >>> polytrack.delete_run("a1b2")              # polytrack.restore_run("a1b2") undoes it
    """
    root = _home(home)
    with LocalStore.open(root, create=False) as store:
        try:
            run_id = store.resolve(ref, project=project)
        except RunNotFoundError:
            if not purge:
                raise
            run_id = None
        if run_id is not None:
            read = store.read_run(run_id)
            _check_not_live(read)
            trash = root / TRASH
            target = trash / run_id
            if target.exists():  # another copy of the run is in the trash: keep both
                raise RunStateError(
                    f"the trash holds a run {run_id} already ({target}); purge it first "
                    f"(polytrack runs rm --purge {run_id})"
                )
            if read.trashed_at is None:
                append_changes(store.run_dir(run_id), [RunTrashed(at=time.time(), by=_who())])
            trash.mkdir(exist_ok=True)
            os.rename(store.run_dir(run_id), target)
            store.refresh()  # forgets the moved run
    if purge:
        with trash_store(root) as trashed:
            if run_id is None:
                run_id = trashed.resolve(ref, project=project)
            shutil.rmtree(trashed.run_dir(run_id))
    assert run_id is not None
    return run_id


def restore_run(ref: str, *, project: str | None = None, home: str | Path | None = None) -> RunView:
    """Bring a run back from the trash.

    Raises:
        RunNotFoundError: no run in the trash matches `ref`.
        RunStateError: a run of that id is in the store already.
    """
    root = _home(home)
    with trash_store(root) as trash:
        run_id = trash.resolve(ref, project=project)
        source = trash.run_dir(run_id)
    target = root / "runs" / run_id
    if target.exists():
        raise RunStateError(f"run {run_id} is in the store already; it was not restored")
    append_changes(source, [RunRestored(at=time.time(), by=_who())])
    os.rename(source, target)
    with LocalStore.open(root) as store:
        return RunView.of(store.index_run(run_id))


def trashed_runs(
    project: str | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    *,
    home: str | Path | None = None,
) -> list[RunView]:
    """The runs in the trash, selected and ordered as `polytrack.runs()` does (newest
    first by default).

    Raises:
        QueryError: `where` or `order_by` does not parse, or names a key no trashed run has.
    """
    with trash_store(_home(home)) as trash:
        found = trash.query(project=project, where=where, order_by=order_by)
        return [RunView.of(info) for info in found]


@frozen
class GcReport:
    """What `gc` deleted (or, with `dry_run`, would delete): blobs and purged runs."""

    blobs: tuple[str, ...]  # digests
    blob_bytes: int
    purged: tuple[str, ...]  # run ids
    run_bytes: int
    kept_blobs: int  # blobs still referenced, or too recent to judge
    dry_run: bool

    @property
    def freed(self) -> int:
        """Bytes deleted (or that would be)."""
        return self.blob_bytes + self.run_bytes


def gc(
    *,
    older_than: float | None = None,
    dry_run: bool = False,
    grace: float = DEFAULT_GRACE,
    home: str | Path | None = None,
) -> GcReport:
    """Delete the blobs no run refers to, and runs trashed more than `older_than`
    seconds ago (None: keep the trash); see the module doc.

    Only the runs' events are read (not their points). A run whose events are damaged
    may have lost the record of an artifact: while any run is damaged so, no blob is
    deleted (the runs trashed long enough still are).

    Raises:
        InvalidInputError: `older_than` or `grace` is negative.

    Example:
        >>> report = polytrack.gc(older_than=30 * 86400, dry_run=True)
        >>> report.freed
        1048576
    """
    for label, value in (("older_than", older_than), ("grace", grace)):
        if value is not None and (isinstance(value, bool) or not value >= 0):
            raise InvalidInputError(f"{label} must be 0 or more seconds; got {value!r}")
    root = _home(home)
    now = time.time()
    referenced: set[str] = set()
    damaged = False
    purge: list[tuple[str, Path]] = []
    for folder in (root / "runs", root / TRASH):
        for run_id in _run_ids(folder):
            directory = folder / run_id
            try:
                events, lost = _events(directory)
            except StoreError:
                damaged = damaged or directory.is_dir()  # unreadable, not deleted meanwhile
                continue
            trashed_at = _trashed_at(events)
            if (
                folder.name == TRASH
                and older_than is not None
                and trashed_at is not None
                and now - trashed_at >= older_than
            ):
                purge.append((run_id, directory))
                continue
            damaged = damaged or bool(lost)
            referenced.update(_digests(event for _, event in events))
    run_bytes = sum(_tree_size(path) for _, path in purge)
    blobs: list[tuple[str, Path, int]] = []
    kept = 0
    for digest, path, size, mtime in _blobs(root):
        if damaged or digest in referenced or now - mtime < grace:
            kept += 1
        else:
            blobs.append((digest, path, size))
    if not dry_run:
        for _, path in purge:
            shutil.rmtree(path, ignore_errors=True)
        for _, path, _ in blobs:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return GcReport(
        blobs=tuple(digest for digest, _, _ in blobs),
        blob_bytes=sum(size for _, _, size in blobs),
        purged=tuple(run_id for run_id, _ in purge),
        run_bytes=run_bytes,
        kept_blobs=kept,
        dry_run=dry_run,
    )


# -- helpers ------------------------------------------------------------------------------


def _who() -> str | None:
    return Settings.from_env().user


def _tags(tags: Sequence[str]) -> tuple[str, ...]:
    if not tags:
        raise InvalidInputError("give at least one tag")
    return check_tags(list(tags))


def _change(
    ref: str,
    project: str | None,
    home: str | Path | None,
    make: Callable[[float, str | None], Event],
) -> RunView:
    """Append the change `make(at, by)` to the run's log; the run as it reads now."""
    with LocalStore.open(_home(home), create=False) as store:
        run_id = store.resolve(ref, project=project)
        append_changes(store.run_dir(run_id), [make(time.time(), _who())])
    with LocalStore.open(_home(home)) as store:
        return RunView.of(store.index_run(run_id))


def _check_not_live(read: RunRead) -> None:
    info = read.info
    if read.handed_over is not None and info.status in _LIVE:
        raise RunStateError(
            f"run {info.id} was handed over to {read.handed_over.owner} and may still be "
            "recorded there; it was not removed"
        )
    if info.status in _LIVE:
        raise RunStateError(
            f"run {info.id} is being recorded (pid {info.pid} on {info.host}); it was not "
            "removed: finish it first"
        )


def trash_store(root: Path) -> LocalStore:
    """A store over the runs in the trash, indexed in memory (the trash is small)."""
    return LocalStore(root, Index.in_memory(), runs_dir=root / TRASH)


def _run_ids(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    except FileNotFoundError:
        return []


def _events(directory: Path) -> tuple[list[tuple[int, Event]], list[str]]:
    """A run's events (no points: what gc needs is there), and what was lost reading them."""
    lost: list[str] = []

    def read(folder: Path) -> list[tuple[int, Event]]:
        lost.clear()
        return _read_all_events(folder, _list(folder), lost)[0]

    return read_settled(directory, read), lost


def _trashed_at(events: Sequence[tuple[int, Event]]) -> float | None:
    at: float | None = None
    for _, event in events:
        if isinstance(event, RunTrashed):
            at = event.at
        elif isinstance(event, RunRestored):
            at = None
    return at


def _digests(events: Iterable[Event]) -> set[str]:
    """The blobs that a run's artifact and media events refer to."""
    found: set[str] = set()
    for event in events:
        if isinstance(event, ArtifactLogged):
            found.add(event.digest)
            found.update(file.digest for file in event.files)
        elif isinstance(event, MediaLogged):
            found.update(blob.digest for blob in event.blobs)
    return found


def _blobs(root: Path) -> list[tuple[str, Path, int, float]]:
    """(digest, path, size, mtime) of every blob of the home."""
    found: list[tuple[str, Path, int, float]] = []
    base = root / "blobs" / "sha256"
    try:
        prefixes = sorted(os.scandir(base), key=lambda entry: entry.name)
    except FileNotFoundError:
        return found
    for prefix in prefixes:
        if not prefix.is_dir() or len(prefix.name) != 2:
            continue
        for entry in os.scandir(prefix.path):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            digest = f"sha256:{prefix.name}{entry.name}"
            found.append((digest, Path(entry.path), stat.st_size, stat.st_mtime))
    return found


def _tree_size(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total
