"""The one writer of every importer: `SourceRun`s into the store, idempotently.

A source run becomes the polytrack run whose id is `import_run_id(kind, uri, original_id)`:
the same on every import, so importing again finds the run made the first time. What the
store holds already is read first (its record, each key's point count, its artifacts' and
media's names), and one new attempt (`polytrack.store.imported.ImportedRun`) gets only
the rest:

- points: a key's points are put in (timestamp, step) order, and the first `count` of them
  (what is stored) are skipped. A run that grew at the source gets its new points; an
  interrupted import left each key's earliest points (segments go in time order) and
  gets the rest. A point logged at the source *before* points already imported would
  shift that count: sources append, so this does not happen in practice.
- params, tags, notes: written where they differ; the status and end time last, so an
  attempt cut short reads as crashed and is finished by the next import.
- artifacts by name, media by (name, step): the blobs first (synced), then the record.

Nothing at all is written for a run with nothing new: a second import adds no attempt.
None of the importing process' own environment is recorded (no snapshot capture): the
run's host, git and environment are what the source recorded. Secrets are redacted as
for a live run (`polytrack.redact`): a W&B config's api key or an MLflow param holding a
token is no more recorded than one given to `init(params=...)`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from attrs import define, field

from polytrack.capture.data import manifest_digest
from polytrack.errors import ImportSourceError, InvalidInputError, StoreError
from polytrack.importers._progress import ImportSummary, Progress
from polytrack.importers.source import (
    SourceFile,
    SourceMedia,
    SourceProblem,
    SourceRun,
    SourceSeries,
)
from polytrack.models import (
    FINAL_STATUSES,
    ArtifactFile,
    ArtifactLogged,
    CodeState,
    EnvironmentState,
    Event,
    HandedOver,
    MediaBlob,
    MediaLogged,
    OutputsSet,
    ParamsSet,
    RunLinked,
    RunStarted,
    StatusChanged,
)
from polytrack.redact import redact_argv, redact_remote, redact_text, redact_url, redact_value
from polytrack.store.blobs import BlobStore
from polytrack.store.imported import ImportedRun
from polytrack.store.local import LocalStore, RunRead, read_events
from polytrack.store.writer import check_key

__all__ = ["import_run_id", "write_runs"]

_ID_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
# Points held before they are written: a run's keys go in batches of about this many.
_BATCH_POINTS: Final = 2_000_000
_ENVIRONMENT_FIELDS: Final = (
    "python", "implementation", "platform", "hostname", "packages", "frameworks",
    "variables", "conda_env",
)  # fmt: skip
_CODE_FIELDS: Final = ("argv", "cwd", "executable", "entrypoint", "notebook")


def import_run_id(kind: str, uri: str, original_id: str) -> str:
    """The polytrack id of a source run: eight base-36 characters of a hash of where it
    came from, so that every import of it finds the same run."""
    digest = hashlib.sha256(f"{kind}\0{uri}\0{original_id}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(8):
        number, digit = divmod(number, 36)
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def source_link(run: SourceRun) -> str:
    """Where a run came from, as its `imported-from` link records it: `kind:uri#id`."""
    return f"{run.kind}:{run.uri}#{run.original_id}"


@define
class _Outcome:
    """What importing one run did."""

    state: str = "unchanged"  # new, updated, unchanged
    points: int = 0
    artifacts: int = 0
    media: int = 0
    problems: list[str] = field(factory=list)


def write_runs(
    runs: Iterable[SourceRun | SourceProblem],
    *,
    kind: str,
    source: str,
    home: Path,
    project: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    limit: int | None = None,
) -> ImportSummary:
    """Import `runs` into the store at `home`; what was done (see the module doc).

    `limit` stops after that many runs (an import cut short on purpose).

    Raises:
        ImportSourceError: the source cannot be opened at all (from the reader).
        StoreError: the store cannot be written.
    """
    started = time.monotonic()
    say = progress if progress is not None else Progress.choose(False)
    problems: list[str] = []
    ids: list[str] = []
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    points = artifacts = media = 0
    source = redact_url(source)
    store = LocalStore.open(home, create=not dry_run)
    blobs = BlobStore(home)
    try:
        for item in runs:
            if isinstance(item, SourceProblem):
                message = redact_text(f"{item.where}: {item.message}")
                problems.append(message)
                say.problem(message)
                continue
            if limit is not None and len(ids) >= limit:
                break
            run = _redacted(item if project is None else _with_project(item, project))
            run_id = import_run_id(run.kind, run.uri, run.original_id)
            ids.append(run_id)
            outcome = _import_run(store, blobs, home, run, run_id, dry_run=dry_run, say=say)
            counts[outcome.state] += 1
            points += outcome.points
            artifacts += outcome.artifacts
            media += outcome.media
            for message in outcome.problems:
                message = redact_text(message)
                problems.append(message)
                say.problem(message)
            say.run_done(run.name, _what(outcome, dry_run))
        if not dry_run and ids:
            store.refresh()
    finally:
        say.close()
        store.close()
    return ImportSummary(
        kind=kind,
        source=source,
        dry_run=dry_run,
        runs_seen=len(ids),
        runs_new=counts["new"],
        runs_updated=counts["updated"],
        runs_unchanged=counts["unchanged"],
        points=points,
        artifacts=artifacts,
        media=media,
        problems=tuple(problems),
        run_ids=tuple(ids),
        seconds=time.monotonic() - started,
    )


def _with_project(run: SourceRun, project: str) -> SourceRun:
    import attrs

    return attrs.evolve(run, project=project)


def _redacted(run: SourceRun) -> SourceRun:
    """`run` with its secrets redacted as a live run's are (`Run` and `polytrack.capture`
    do the same): params and outputs by name and shape, tags, notes and name as text,
    the git remote and the source's URI without credentials."""
    import attrs

    git = run.git
    if git is not None and git.remote:
        git = attrs.evolve(git, remote=redact_remote(git.remote))
    return attrs.evolve(
        run,
        uri=redact_url(run.uri),
        name=redact_text(run.name),
        params={key: redact_value(key, value) for key, value in _params(run.params).items()},
        tags=tuple(redact_text(tag) for tag in run.tags),
        notes=None if run.notes is None else redact_text(run.notes),
        outputs={str(key): redact_value(str(key), value) for key, value in run.outputs.items()},
        git=git,
    )


def _what(outcome: _Outcome, dry_run: bool) -> str:
    if outcome.state == "unchanged":
        return "up to date"
    verb = "would add" if dry_run else "added"
    return (
        f"{outcome.state}, {verb} {outcome.points:,} points, {outcome.artifacts} artifacts, "
        f"{outcome.media} media"
    )


def _existing(store: LocalStore, home: Path, run_id: str) -> RunRead | None:
    if not (home / "runs" / run_id).is_dir():
        return None
    try:
        return store.read_run(run_id)
    except StoreError:
        return None  # a directory that holds no record yet: written anew


class _Attempt:
    """The new attempt of one run, opened on its first write (none for a run with
    nothing new) and started with the run's start record."""

    def __init__(self, home: Path, run: SourceRun, run_id: str, *, first: bool) -> None:
        self._home, self._run, self._run_id, self._first = home, run, run_id, first
        self.writer: ImportedRun | None = None

    def get(self) -> ImportedRun:
        if self.writer is None:
            run = self._run
            writer = ImportedRun.create(self._home, run_id=self._run_id)
            writer.append(
                RunStarted(
                    id=self._run_id,
                    project=run.project or "imported",
                    name=run.name or run.original_id,
                    created_at=run.started_at,
                    host="",
                    pid=0,
                    process_started=0.0,
                    attempt=writer.attempt,
                    notes=run.notes,
                    tags=tuple(run.tags),
                    version=_version(),
                    user=run.user,
                )
            )
            if self._first:
                writer.append(
                    RunLinked(run_id=source_link(run), relation="imported-from", at=run.started_at)
                )
            self.writer = writer
        return self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _version() -> str:
    from polytrack._version import __version__

    return __version__


def _import_run(
    store: LocalStore,
    blobs: BlobStore,
    home: Path,
    run: SourceRun,
    run_id: str,
    *,
    dry_run: bool,
    say: Progress,
) -> _Outcome:
    """Import one run: see the module doc for what is compared and written."""
    read = _existing(store, home, run_id)
    info = None if read is None else read.info
    outcome = _Outcome(state="new" if info is None else "unchanged")
    attempt = _Attempt(home, run, run_id, first=info is None)
    changed = info is None
    try:
        # Params, tags, notes, snapshot: what the start record does not carry.
        params = _params(run.params)
        if info is not None:
            params = {k: v for k, v in params.items() if info.params.get(k, _MISSING) != v}
            if any(tag not in info.tags for tag in run.tags) or (
                run.notes is not None and run.notes != info.notes
            ):
                changed = True
        changed = changed or bool(params)
        series = _new_points(run, read, outcome)
        changed = changed or any(part[1].size for part in series)
        status_events = _status(run, info)
        changed = changed or bool(status_events)
        if dry_run:
            outcome.points = sum(part[1].size for part in series)
        elif changed:
            writer = attempt.get()
            if params:
                writer.append(ParamsSet(params=params))
            if info is None:
                for event in _snapshot(run):
                    writer.append(event)
                if run.outputs:
                    writer.append(OutputsSet(outputs=dict(run.outputs)))
            for batch in _batches(series):
                written = writer.write_series(batch)
                outcome.points += written
                say.add_points(written)
        # Artifacts and media: by name, (name, step); each read only when it is new.
        stored = _stored_names(read, home, run_id)
        outcome.artifacts = _artifacts(run, stored[0], blobs, attempt, dry_run, outcome)
        outcome.media = _media(run, stored[1], blobs, attempt, dry_run, outcome)
        if not dry_run and (attempt.writer is not None or status_events):
            # Last, so that an attempt cut short reads as crashed. A new attempt's start
            # record resets the status: it is written whole again.
            writer = attempt.get()
            for event in _status(run, None):
                writer.append(event)
    finally:
        attempt.close()
    if outcome.state == "unchanged" and (
        attempt.writer is not None or (dry_run and (changed or outcome.artifacts or outcome.media))
    ):
        outcome.state = "updated"
    return outcome


_MISSING: Final = object()


def _params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The source's params as `init(params=...)` records them (`flatten_params`: nested
    mappings as dotted keys, lists kept, secrets redacted); a value it refuses as text,
    and a float that is not finite as text too (NaN would never compare equal to what
    is stored, and every import would write it again)."""
    from polytrack.run import flatten_params

    result: dict[str, Any] = {}
    for key, value in params.items():
        try:
            flat: dict[str, Any] = dict(flatten_params({str(key): value}))
        except InvalidInputError:
            flat = {str(key): str(value)}
        for name, leaf in flat.items():
            finite = not isinstance(leaf, float) or math.isfinite(leaf)
            result[name] = leaf if finite else str(leaf)
    return result


def _status(run: SourceRun, info: Any) -> list[Event]:
    """The events that bring the stored status to the source's (none when it is there).

    A run still running at the source is handed over to it: readers then show it
    running, not crashed, until an import records its end."""
    end = run.ended_at if run.ended_at is not None else run.started_at
    status = run.status if run.status in FINAL_STATUSES or run.status == "running" else "failed"
    if status in FINAL_STATUSES:
        if (
            info is not None
            and info.status == status
            and info.finished_at is not None
            and abs(info.finished_at - end) < 1e-3
        ):
            return []
        return [StatusChanged(status=status, at=end)]
    if info is not None and info.status == "running":
        return []
    at = run.ended_at if run.ended_at is not None else run.started_at
    return [
        StatusChanged(status="running", at=run.started_at),
        HandedOver(owner=f"{run.kind}:{run.uri}", at=at),
    ]


def _snapshot(run: SourceRun) -> list[Event]:
    """The git, environment and code records the source kept (never this process')."""
    events: list[Event] = []
    if run.git is not None:
        events.append(run.git)
    env = dict(run.environment)
    if not env:
        return events
    code = {k: env.pop(k) for k in _CODE_FIELDS if k in env}
    known = {k: env.pop(k) for k in _ENVIRONMENT_FIELDS if k in env}
    variables = {str(k): v for k, v in dict(known.pop("variables", {}) or {}).items()}
    variables.update({str(k): v for k, v in env.items()})
    # As `polytrack.capture.environment` records a live run's variables.
    variables = {k: str(redact_value(k, str(v), strict=True)) for k, v in variables.items()}
    if known or variables:
        events.append(
            EnvironmentState(
                python=str(known.get("python", "")),
                implementation=str(known.get("implementation", "")),
                platform=str(known.get("platform", "")),
                hostname=str(known.get("hostname", "")),
                packages={str(k): str(v) for k, v in dict(known.get("packages") or {}).items()},
                conda_env=None if known.get("conda_env") is None else str(known["conda_env"]),
                frameworks={str(k): str(v) for k, v in dict(known.get("frameworks") or {}).items()},
                variables=variables,
            )
        )
    if code:
        argv = code.get("argv") or ()
        events.append(
            CodeState(
                argv=tuple(redact_argv([str(a) for a in argv])),
                cwd=str(code.get("cwd", "")),
                executable=str(code.get("executable", "")),
                entrypoint=None if code.get("entrypoint") is None else str(code["entrypoint"]),
                notebook=None if code.get("notebook") is None else str(code["notebook"]),
            )
        )
    return events


_Part = tuple[str, npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def _new_points(run: SourceRun, read: RunRead | None, outcome: _Outcome) -> list[_Part]:
    """Each key's points that the store lacks: in (timestamp, step) order, past the
    count already stored (see the module doc)."""
    gathered: dict[str, list[SourceSeries]] = {}
    try:
        for series in run.series():
            key = series.key
            if series.system and not key.startswith("system/"):
                key = f"system/{key}"
            gathered.setdefault(key, []).append(series)
    except ImportSourceError as exc:
        outcome.problems.append(f"run {run.name} ({run.original_id}): {exc}")
    parts: list[_Part] = []
    stored = {} if read is None else read.metrics
    for key, found in gathered.items():
        try:
            check_key(key)  # here, not in the writer: one bad key must not stop the rest
            steps = np.concatenate([np.asarray(s.steps, dtype=np.int64).reshape(-1) for s in found])
            values = np.concatenate(
                [np.asarray(s.values, dtype=np.float64).reshape(-1) for s in found]
            )
            times = np.concatenate(
                [np.asarray(s.timestamps, dtype=np.float64).reshape(-1) for s in found]
            )
        except InvalidInputError as exc:
            outcome.problems.append(f"run {run.name}: {exc}")
            continue
        except (TypeError, ValueError, OverflowError) as exc:
            outcome.problems.append(f"run {run.name}: metric {key!r}: {exc}")
            continue
        if not steps.size == values.size == times.size:
            outcome.problems.append(
                f"run {run.name}: metric {key!r} has {steps.size} steps, {values.size} "
                f"values and {times.size} times; skipped"
            )
            continue
        bad = ~np.isfinite(times) | (times < 0)
        if bad.any():  # a point the source did not time: at the run's start
            times = np.where(bad, run.started_at, times)
        order = np.lexsort((steps, times))
        summary = stored.get(key)
        skip = 0 if summary is None else summary.summary.count
        if skip >= order.size:
            continue
        new = order[skip:]
        parts.append((key, steps[new], values[new], times[new]))
    return parts


def _batches(parts: list[_Part]) -> Iterable[list[_Part]]:
    """Keys in groups of about `_BATCH_POINTS` points: they share segments."""
    batch: list[_Part] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += part[1].size
        if size >= _BATCH_POINTS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _stored_names(
    read: RunRead | None, home: Path, run_id: str
) -> tuple[set[str], set[tuple[str, int]]]:
    """The names of the run's artifacts, and the (name, step) of its media."""
    if read is None:
        return set(), set()
    names = {ref.name for ref in read.refs if isinstance(ref, ArtifactLogged)}
    media = {
        (event.name, event.step)
        for event in read_events(home / "runs" / run_id)
        if isinstance(event, MediaLogged)
    }
    return names, media


def _artifacts(
    run: SourceRun,
    stored: set[str],
    blobs: BlobStore,
    attempt: _Attempt,
    dry_run: bool,
    outcome: _Outcome,
) -> int:
    count = 0
    try:
        for name, kind, files in run.artifacts():
            if name in stored:
                continue
            count += 1
            if dry_run:
                continue
            try:
                event = _store_artifact(name, kind, files, blobs, run)
            except OSError as exc:
                if isinstance(exc, StoreError):
                    raise  # the store cannot be written: no run can be
                # A source file gone or unreadable (a dangling symlink): this artifact only.
                outcome.problems.append(f"run {run.name}: artifact {name!r}: {exc}")
                count -= 1
                continue
            if event is not None:
                attempt.get().append(event)
    except ImportSourceError as exc:
        outcome.problems.append(f"run {run.name} ({run.original_id}): {exc}")
    return count


def _store_artifact(
    name: str, kind: str, files: Iterable[SourceFile], blobs: BlobStore, run: SourceRun
) -> ArtifactLogged | None:
    """Put an artifact's files into the blob store (synced); its record."""
    stored: list[ArtifactFile] = []
    for file in files:
        if file.local is not None:
            put = blobs.put_file(file.local)
        elif file.open is not None:
            with file.open() as stream:
                put = blobs.put_bytes(stream.read())
        else:
            continue
        stored.append(ArtifactFile(path=file.path, digest=put.digest, size=put.size))
    if not stored:
        return None
    stored.sort(key=lambda f: f.path)
    blobs.flush()
    single = len(stored) == 1 and stored[0].path == name.rsplit("/", 1)[-1]
    digest = (
        stored[0].digest
        if single
        else manifest_digest(
            [f.path for f in stored], [f.digest for f in stored], [f.size for f in stored]
        )
    )
    return ArtifactLogged(
        name=name,
        kind="model" if kind == "model" else ("file" if single else "directory"),
        role="output",
        digest=digest,
        size=sum(f.size for f in stored),
        files=tuple(stored),
        source=f"{source_link(run)}/{name}",
        logged_at=run.ended_at if run.ended_at is not None else run.started_at,
    )


def _media(
    run: SourceRun,
    stored: set[tuple[str, int]],
    blobs: BlobStore,
    attempt: _Attempt,
    dry_run: bool,
    outcome: _Outcome,
) -> int:
    count = 0
    try:
        for item in run.media():
            if (item.name, item.step) in stored:
                continue
            stored.add((item.name, item.step))
            count += 1
            if dry_run:
                continue
            try:
                event = _store_media(item, blobs)
            except InvalidInputError as exc:
                outcome.problems.append(
                    f"run {run.name}: media {item.name!r} at step {item.step}: {exc}"
                )
                count -= 1
                continue
            attempt.get().append(event)
    except ImportSourceError as exc:
        outcome.problems.append(f"run {run.name} ({run.original_id}): {exc}")
    return count


def _store_media(item: SourceMedia, blobs: BlobStore) -> MediaLogged:
    """Encode (where given a value) and store one media value; its record."""
    shape: tuple[int, ...] = tuple(item.shape)
    meta = dict(item.meta)
    if item.payload is not None:
        files = [(item.payload, item.media_type or "application/octet-stream")]
    else:
        job = _media_job(item)
        encoded, found_shape, found_meta = job.encode()
        files = [(e.data, e.media_type) for e in encoded]
        shape = found_shape if found_shape is not None else job.shape
        meta = {**job.meta, **found_meta, **meta}
    stored = []
    for data, media_type in files:
        put = blobs.put_bytes(data)
        stored.append(MediaBlob(digest=put.digest, size=put.size, media_type=media_type))
    blobs.flush()
    return MediaLogged(
        name=item.name,
        kind=item.kind,
        step=item.step,
        blobs=tuple(stored),
        shape=tuple(shape),
        caption=item.caption,
        meta=meta,
        logged_at=item.timestamp,
    )


def _media_job(item: SourceMedia) -> Any:
    """polytrack's own encoder job for a media value (see `SourceMedia`)."""
    from polytrack.media import jobs, tables

    if item.kind == "image":
        return jobs.image_job(item.name, item.value, item.step, caption=item.caption)
    if item.kind == "histogram":
        edges, counts = item.value
        return jobs.np_histogram_job(item.name, edges, counts, item.step)
    if item.kind in ("text", "html"):
        return jobs.text_job(item.name, item.value, item.step, kind=item.kind)
    if item.kind == "table":
        return tables.table_job(item.name, item.value, item.step)
    raise InvalidInputError(f"a {item.kind} value must come encoded (payload=, media_type=)")
