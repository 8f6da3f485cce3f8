"""What a reader found in a source, before it is written: the contract between the
readers (one per source kind) and the one writer.

A reader yields `SourceRun`s lazily: the cheap fields at once, the bulky parts (metric
series, files, media) as callables, so that a dry run or an up-to-date run costs only the
listing. Times are seconds since the epoch (float, UTC); steps are ints.

The reader contract (one module per kind: `polytrack.importers._mlflow`, `._tensorboard`,
`._wandb`, `._polyaxon`)::

    def read(source: str, **options: Any) -> Iterable[SourceRun | SourceProblem]: ...

- `source` is what the user named (a path, a tracking URI); `options` are the kind's own
  keywords, passed through from `polytrack.importers.<kind>(source, **options)` (MLflow:
  `experiment=`); the writer takes `project=` itself and overrides `SourceRun.project`.
- Unreadable parts: a file or run that cannot be read is yielded as a `SourceProblem`
  naming it (or raised as `polytrack.errors.ImportSourceError` from a `SourceRun`'s
  callables: the writer records it, naming the run, and goes on with the rest). Only a
  source that cannot be opened at all raises `ImportSourceError` from `read` itself.
- Order: a series' points in logging order; the writer sorts by (timestamp, step).
- Identity: `(kind, uri, original_id)` must be the same on every import of the same run
  (`uri` normalised: an absolute path, no credentials), which is what makes re-imports
  add only what is new.
- `environment`: the keys of `polytrack.models.EnvironmentState` (python,
  implementation, platform, hostname, packages, frameworks, variables, conda_env) and of
  `CodeState` (argv, cwd, executable, entrypoint, notebook); any other key is kept as a
  string in the environment's `variables`.
- `system=True` series are recorded under `system/<key>` (unless already so named).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from polytrack.models import GitState

__all__ = ["SourceFile", "SourceMedia", "SourceProblem", "SourceRun", "SourceSeries"]


@frozen
class SourceSeries:
    """One metric's points in the order the source logged them (arrays or sequences of
    equal length). `system` series are the source's resource samples."""

    key: str
    steps: Any  # Sequence[int] or a numpy int array
    values: Any  # Sequence[float] or a numpy float array
    timestamps: Any  # Sequence[float] or a numpy float array, seconds since the epoch
    system: bool = False


@frozen
class SourceFile:
    """One file of an artifact or model, read when written (`open` returns its bytes
    stream; `local` is set when it is a local file that can be hashed in place)."""

    path: str  # relative, "/"-separated, inside the artifact
    size: int | None = None
    local: Path | None = None
    open: Callable[[], Any] | None = None


@frozen
class SourceMedia:
    """One media value at a step: either bytes already encoded (`payload`, `media_type`)
    or a value for polytrack's own encoders (`value`: an image array, a
    (edges, counts) histogram pair, a str for text/html, rows for a table)."""

    name: str
    kind: str  # one of polytrack.models.MEDIA_KINDS
    step: int
    timestamp: float
    payload: bytes | None = None
    media_type: str | None = None
    value: Any = None
    caption: str | None = None
    meta: Mapping[str, Any] = field(factory=dict)
    shape: tuple[int, ...] = ()  # of an encoded payload, as `MediaLogged.shape` says it


@frozen
class SourceProblem:
    """A part of the source that could not be read (a corrupt file, a run the source's
    reader refuses): `where` names it (a path, a run id), `message` says why. The writer
    reports it and imports the rest."""

    where: str
    message: str


@frozen
class SourceRun:
    """One run of a source, as the source recorded it.

    `(kind, uri, original_id)` identifies it across imports: importing it again finds the
    run made the first time and adds only what is new.
    """

    kind: str  # "mlflow", "tensorboard", "wandb", "polyaxon"
    uri: str  # the source as the user named it (a path, a tracking URI), secrets removed
    original_id: str
    project: str
    name: str
    started_at: float
    ended_at: float | None = None
    status: str = "succeeded"  # succeeded, failed, stopped, skipped, running (else: failed)
    params: Mapping[str, Any] = field(factory=dict)
    tags: tuple[str, ...] = ()
    notes: str | None = None
    user: str | None = None
    outputs: Mapping[str, Any] = field(factory=dict)  # final results (a W&B summary)
    git: GitState | None = None
    environment: Mapping[str, Any] = field(factory=dict)  # what the source recorded
    series: Callable[[], Iterable[SourceSeries]] = lambda: ()
    artifacts: Callable[[], Iterable[tuple[str, str, Iterable[SourceFile]]]] = lambda: ()
    """(name, kind "artifact" or "model", files) per artifact."""
    media: Callable[[], Iterator[SourceMedia] | Iterable[SourceMedia]] = lambda: ()
