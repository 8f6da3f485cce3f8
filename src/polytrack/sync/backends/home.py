"""`HomeBackend`: sync a run into another polytrack home (a team's store on NFS, say).

`polytrack+file:///abs/path/to/home` names the home. A synced run there is a run like a
local one: `polytrack --home HOME runs ls`, `get_run(id, home=HOME).history(...)`,
`.snapshot()`, `.diff()`, `.artifacts()` read it with the ordinary readers. What it writes:

```
HOME/runs/<run id>/
  events-000.log                   every attempt's events, in journal order, one file
  points-000-000-<seq>.seg         the points of batch <seq>, stream 0 (single points)
  git-000.diff  output-000.log  manifest-*.json     the snapshot's files, copied
HOME/blobs/sha256/..               the files of logged artifacts, by digest
```
A batch is applied in two steps that each leave the run readable and every batch whole:

1. its points go to their own segment file, written to a temporary name, fsynced and
   renamed into place (a leftover of a crash is simply replaced: same seq, same bytes);
2. the events are appended: `KeyDefined` for keys new to the target (the target's own
   ids), the batch's events, then a `Checksum` of the segment's records, fsynced. That
   checksum is the batch's *marker*: its file name carries the seq, so a batch whose
   checksum is in the log was applied and a repeat is dropped. When the backend opens a
   run whose log ends with events after the last marker (a batch that died half-written),
   it cuts them (`journal.Events.open_existing`), and the batch is written again whole.

Limits: the points of a batch may show in the target a moment before its events do
(between the two steps). Times are stored as float32 seconds from the batch's earliest
point: about a microsecond of precision for a batch spanning seconds, 0.5 ms for one
spanning an hour (a batch holds at most `max_points`, 20,000 by default, so long spans
come only from slow loggers). `crashed` is not recorded (no event says it): the target's
readers judge it themselves, from the run's `heartbeat`, which each write touches. All
attempts go into attempt 000, so the target counts one attempt. At most 100,000 batches
per run (the segment name's five digits).

One process writes a given run (the sync engine's lock); runs from different homes may
be synced into one target at the same time, each writing its own directory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import attrs

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendRejectedError,
    BackendUnavailableError,
    StoreError,
)
from polytrack.models import (
    Checksum,
    Event,
    KeyDefined,
    RunStarted,
    SchemaDefined,
    StatusChanged,
)
from polytrack.store.journal import (
    HEADER_SIZE,
    KIND_POINT,
    MAX_KEYS,
    POINT_SIZE,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    Events,
    checksum_of,
    fsync_dir,
)
from polytrack.sync.backends.base import Artifact, Batch
from polytrack.sync.backends.config import BackendConfig, uri_key

__all__ = ["HomeBackend"]

SCHEME: Final = "polytrack+file"
EVENTS_FILE: Final = "events-000.log"
MAX_BATCHES: Final = 100_000
_SEGMENT_NAME_RE: Final = re.compile(r"points-000-000-(\d{5})\.seg$")
_WRITTEN: Final = frozenset({"created", "running", "succeeded", "failed", "stopped", "skipped"})
_SNAPSHOT_FILE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _segment_name(seq: int) -> str:
    return f"points-000-000-{seq:05d}.seg"


@attrs.define(eq=False)
class _TargetRun:
    """One run open in the target: its events log and what that log already holds."""

    directory: Path
    events: Events
    keys: dict[str, int] = attrs.field(factory=dict)  # name -> target key id
    applied: set[int] = attrs.field(factory=set)  # seqs whose marker is in the log
    status: str | None = None  # the last status the log records

    def note(self, event: Event) -> None:
        """Fold one event of the log into what the run holds."""
        if isinstance(event, KeyDefined):
            self.keys[event.name] = event.id
        elif isinstance(event, Checksum):
            match = _SEGMENT_NAME_RE.match(event.file)
            if match:
                self.applied.add(int(match.group(1)))
        elif isinstance(event, RunStarted):
            self.status = "created"
        elif isinstance(event, StatusChanged):
            self.status = event.status


class HomeBackend:
    """A `Backend` whose destination is another polytrack home; see the module doc.

    Example:
        >>> run = polytrack.init(backend="polytrack+file:///mnt/team/polytrack")
        >>> polytrack.get_run(run.id, home="/mnt/team/polytrack").history("loss")
    """

    def __init__(self, home: Path, *, uri: str | None = None) -> None:
        self.home = home
        self._key = uri_key(uri) if uri else f"{SCHEME}://{home}"
        self._runs: dict[str, _TargetRun] = {}
        self._lost: dict[str, Path] = {}  # runs whose log a failed write left to reload
        self._blobs: Any = None  # a BlobStore, made on the first artifact

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        environ: Mapping[str, str] | None = None,
        config: BackendConfig | None = None,
    ) -> HomeBackend:
        """`polytrack+file:///absolute/path/to/home`: that home (created on first write).

        Raises:
            BackendConfigError: not that scheme, a host other than localhost, or a path
                that is not absolute.
        """
        parts = urlsplit(uri)
        if parts.scheme.lower() != SCHEME:
            raise BackendConfigError(f"{uri!r} is not a {SCHEME}:// URI")
        if parts.netloc not in ("", "localhost"):
            raise BackendConfigError(
                f"{SCHEME}:// names a directory of this machine (a mounted share): "
                f"{SCHEME}:///path, not host {parts.netloc!r}"
            )
        path = unquote(parts.path)
        if not path.startswith("/") or parts.query or parts.fragment:
            raise BackendConfigError(
                f"{SCHEME}:// needs an absolute path and nothing after it, e.g. "
                f"{SCHEME}:///mnt/team/polytrack; got {uri!r}"
            )
        return cls(Path(os.path.normpath(path)), uri=uri)

    def __repr__(self) -> str:
        return f"<HomeBackend {self.home}: {len(self._runs)} runs open>"

    @property
    def key(self) -> str:
        return self._key

    # -- the Backend protocol -------------------------------------------------------------

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        if run.id in self._runs or run.id in self._lost:
            self._run(run.id)
            return
        directory = self.home / "runs" / run.id
        if _same_directory(workdir.parent.parent, directory):
            raise BackendConfigError(f"run {run.id} cannot be synced into its own home {self.home}")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            try:
                events = Events.create(directory / EVENTS_FILE)
                fsync_dir(directory)
                opened = _TargetRun(directory, events)
            except FileExistsError:
                opened = _load(directory)
        except OSError as exc:
            raise _translate(f"cannot open run {run.id} in {self.home}", exc) from exc
        self._runs[run.id] = opened

    def write(self, run_id: str, batch: Batch) -> None:
        target = self._run(run_id)
        if batch.seq in target.applied:
            return  # a repeat: its marker is in the log
        if batch.seq >= MAX_BATCHES:
            raise BackendRejectedError(
                f"run {run_id} has more than {MAX_BATCHES} batches, the most a "
                f"{SCHEME}:// target holds per run"
            )
        new_keys = self._new_keys(target, batch)
        name = _segment_name(batch.seq)
        try:
            records = self._records(target, batch, new_keys)
            if records is not None:
                _write_segment(target.directory / name, records)
            for key, key_id in new_keys.items():
                target.events.append(KeyDefined(id=key_id, name=key))
            for event in batch.events:
                if not isinstance(event, KeyDefined | SchemaDefined | Checksum):
                    target.events.append(event)
            data = records.array.tobytes() if records is not None else b""
            target.events.append(checksum_of(name, data))  # a CRC per 4 KiB block too
            target.events.flush()
            _touch(target.directory / "heartbeat")
        except BaseException as exc:
            self._roll_back(run_id)
            if isinstance(exc, OSError):
                what = f"cannot write batch {batch.seq} of run {run_id}"
                raise _translate(what, exc) from exc
            raise
        target.keys.update(new_keys)
        for event in batch.events:
            target.note(event)
        target.applied.add(batch.seq)

    def set_status(
        self, run_id: str, status: str, *, at: float, message: str | None = None
    ) -> None:
        target = self._run(run_id)
        if status == "crashed":
            return  # no event records it: readers judge it from the heartbeat
        if status not in _WRITTEN:
            raise BackendRejectedError(f"unknown status {status!r}")
        if target.status == status:
            return
        try:
            target.events.append(StatusChanged(status=status, at=at, message=message))
            target.events.flush()
        except OSError as exc:
            raise _translate(f"cannot record the status of run {run_id}", exc) from exc
        target.status = status

    def upload_artifact(self, run_id: str, artifact: Artifact) -> None:
        target = self._run(run_id)
        try:
            if artifact.name.startswith("polytrack/"):
                self._copy_snapshot_file(target, artifact)
            else:
                self._store_blob(artifact)
        except OSError as exc:
            raise _translate(f"cannot store {artifact.name} of run {run_id}", exc) from exc

    def close(self) -> None:
        runs, self._runs = self._runs, {}
        for target in runs.values():
            with contextlib.suppress(OSError):  # everything written was fsynced already
                target.events.close()

    # -- helpers ---------------------------------------------------------------------------

    def _run(self, run_id: str) -> _TargetRun:
        found = self._runs.get(run_id)
        if found is not None:
            return found
        directory = self._lost.get(run_id)
        if directory is None:
            raise BackendRejectedError(f"run {run_id} was never opened", status=404)
        try:
            found = self._runs[run_id] = _load(directory)
        except OSError as exc:
            raise _translate(f"cannot reopen run {run_id} in {self.home}", exc) from exc
        del self._lost[run_id]
        return found

    def _roll_back(self, run_id: str) -> None:
        """Cut what a failed write appended (after the last marker), so that the retry
        of the batch, on this instance, appends it once."""
        target = self._runs.pop(run_id)
        with contextlib.suppress(OSError):
            target.events.close()
        self._lost[run_id] = target.directory  # reloaded by the next call
        with contextlib.suppress(BackendError):
            self._run(run_id)

    @staticmethod
    def _new_keys(target: _TargetRun, batch: Batch) -> dict[str, int]:
        """Target ids for the batch's keys the target has not seen, in batch order."""
        new: dict[str, int] = {}
        next_id = max(target.keys.values(), default=0) + 1
        for series in batch.metrics:
            if len(series) and series.key not in target.keys and series.key not in new:
                if next_id > MAX_KEYS:
                    raise BackendRejectedError(f"run has more than {MAX_KEYS} metric keys")
                new[series.key] = next_id
                next_id += 1
        return new

    @staticmethod
    def _records(target: _TargetRun, batch: Batch, new_keys: dict[str, int]) -> Any:
        """The batch's points as stream-0 records with their base time, or None."""
        import numpy as np

        from polytrack.store.reader import segment_dtype

        if not batch.points:
            return None
        base = min(float(series.times.min()) for series in batch.metrics if len(series))
        base_ns = int(base * 1e9)
        records = np.zeros(batch.points, dtype=segment_dtype(POINT_SIZE))
        at = 0
        for series in batch.metrics:
            n = len(series)
            if not n:
                continue
            key_id = target.keys.get(series.key) or new_keys[series.key]
            chunk = records[at : at + n]
            chunk["step"] = series.steps
            chunk["values"][:, 0] = series.values
            chunk["t"] = (series.times - base_ns / 1e9).astype(np.float32)
            chunk["key"] = key_id
            chunk["kind"] = KIND_POINT
            at += n
        return _Records(records, base_ns)

    def _copy_snapshot_file(self, target: _TargetRun, artifact: Artifact) -> None:
        name = artifact.name.removeprefix("polytrack/")
        if not _SNAPSHOT_FILE_RE.fullmatch(name) or _SEGMENT_NAME_RE.match(name):
            raise BackendRejectedError(f"{artifact.name!r} is not a snapshot file name")
        if name == EVENTS_FILE or name == "heartbeat":
            raise BackendRejectedError(f"{artifact.name!r} would replace the run's own files")
        destination = target.directory / name
        if _digest_of(destination) == artifact.digest:
            return
        temporary = destination.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            with artifact.path.open("rb") as source, temporary.open("wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, destination)
        finally:
            temporary.unlink(missing_ok=True)
        fsync_dir(target.directory)

    def _store_blob(self, artifact: Artifact) -> None:
        from polytrack.store.blobs import BlobStore

        if self._blobs is None:
            self._blobs = BlobStore(self.home)
        blobs: BlobStore = self._blobs
        try:
            if blobs.exists(artifact.digest):
                return
        except ValueError as exc:
            raise BackendRejectedError(f"{artifact.name}: {exc}") from exc
        try:
            stored = blobs.put_file(artifact.path)
            blobs.flush()
        except StoreError as exc:
            raise _translate(f"cannot store {artifact.name}", exc) from exc
        if stored.digest != artifact.digest:
            raise BackendRejectedError(
                f"{artifact.name}: its file hashes to {stored.digest}, not {artifact.digest}"
            )


def _load(directory: Path) -> _TargetRun:
    """A target run's events log opened for appending, cut back to its last marker."""
    events, kept = Events.open_existing(
        directory / EVENTS_FILE, complete=lambda event: isinstance(event, Checksum)
    )
    loaded = _TargetRun(directory, events)
    for event in kept:
        loaded.note(event)
    return loaded


@attrs.frozen(eq=False)
class _Records:
    """A batch's point records and the wall-clock ns their times count from."""

    array: Any
    base_ns: int

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


def _write_segment(path: Path, records: _Records) -> None:
    """The segment file of one batch, whole or not at all (temp, fsync, rename)."""
    count = int(records.array.size)
    header = bytearray(HEADER_SIZE)
    SEGMENT_HEADER.pack_into(header, 0, SEGMENT_MAGIC, 0, POINT_SIZE, count, 0, records.base_ns)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            out.write(header)
            out.write(records.array.tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _touch(path: Path) -> None:
    """Move the run's heartbeat: readers elsewhere see the run alive while it syncs."""
    path.touch()


def _digest_of(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            digest = hashlib.sha256()
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return f"sha256:{digest.hexdigest()}"


def _same_directory(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _translate(what: str, exc: OSError) -> BackendError:
    """An OS error as the backend error the engine acts on: a store that refuses us
    (permissions, read-only) stops the sync and says so; anything else is retried."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BackendAuthError(f"{what}: {reason} (is the store writable?)")
    return BackendUnavailableError(f"{what}: {reason}")
