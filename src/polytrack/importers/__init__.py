"""Importers: bring runs recorded by MLflow, TensorBoard, W&B and Polyaxon into the store.

Each source is read by a reader module (`_mlflow`, `_tensorboard`, `_wandb`, `_polyaxon`:
underscored, so that importing one never hides the function of the same name here) that
yields `SourceRun`s (see `source.py`); one writer (`_writer.py`) puts them in the store
with their original times, idempotently: importing again adds only what is new.

Example:
    >>> summary = polytrack.importers.mlflow("sqlite:///mlflow.db", experiment="mnist")
    >>> summary.runs_new, summary.points, summary.problems
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from polytrack.errors import InvalidInputError
from polytrack.importers._progress import ImportSummary, Progress
from polytrack.settings import Settings

__all__ = ["KINDS", "ImportSummary", "import_source", "mlflow", "polyaxon", "tensorboard", "wandb"]

KINDS = ("mlflow", "tensorboard", "wandb", "polyaxon")


def mlflow(
    source: str | os.PathLike[str],
    *,
    experiment: str | list[str] | None = None,
    project: str | None = None,
    home: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
    limit: int | None = None,
) -> ImportSummary:
    """Import an MLflow store's runs: `./mlruns`, `sqlite:///mlflow.db`, `http(s)://host`.

    Args:
        source: the tracking store or server (a path or a tracking URI).
        experiment: import only this experiment (or these); default all active ones.
        project: the polytrack project of every run; default each run's experiment name.
        home: the polytrack store; default `POLYTRACK_HOME` or its default.
        dry_run: read the source and say what would be imported; write nothing.
        progress: a progress bar on stderr (True), one line per run (None, unless stderr
            is a terminal: then a bar), or nothing (False).
        limit: import at most this many runs (the rest on a later import).

    Raises:
        ImportSourceError: MLflow's client is missing, or the store cannot be opened.

    Example:
        >>> polytrack.importers.mlflow("./mlruns", project="imported").describe()
    """
    options: dict[str, Any] = {} if experiment is None else {"experiment": experiment}
    return import_source(
        "mlflow", source, options, project=project, home=home, dry_run=dry_run,
        progress=progress, limit=limit,
    )  # fmt: skip


def tensorboard(
    source: str | os.PathLike[str],
    *,
    project: str | None = None,
    home: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
    limit: int | None = None,
    **options: Any,
) -> ImportSummary:
    """Import TensorBoard event files (a log directory: one run per directory of event
    files). Keywords as `mlflow()`; `options` go to the TensorBoard reader."""
    return import_source(
        "tensorboard", source, options, project=project, home=home, dry_run=dry_run,
        progress=progress, limit=limit,
    )  # fmt: skip


def wandb(
    source: str | os.PathLike[str],
    *,
    project: str | None = None,
    home: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
    limit: int | None = None,
    **options: Any,
) -> ImportSummary:
    """Import W&B runs (offline run directories). Keywords as `mlflow()`; `options` go to
    the W&B reader."""
    return import_source(
        "wandb", source, options, project=project, home=home, dry_run=dry_run,
        progress=progress, limit=limit,
    )  # fmt: skip


def polyaxon(
    source: str | os.PathLike[str],
    *,
    project: str | None = None,
    home: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
    limit: int | None = None,
    **options: Any,
) -> ImportSummary:
    """Import Polyaxon runs (traceml offline runs). Keywords as `mlflow()`; `options` go
    to the Polyaxon reader."""
    return import_source(
        "polyaxon", source, options, project=project, home=home, dry_run=dry_run,
        progress=progress, limit=limit,
    )  # fmt: skip


def import_source(
    kind: str,
    source: str | os.PathLike[str],
    options: dict[str, Any],
    *,
    project: str | None,
    home: str | os.PathLike[str] | None,
    dry_run: bool,
    progress: bool | Progress | None,
    limit: int | None,
) -> ImportSummary:
    """Import `source` with the reader of `kind` (one of `KINDS`), `options` going to that
    reader: what `mlflow()`, `tensorboard()`, `wandb()` and `polyaxon()` do, for a caller
    that picks the kind at run time (the CLI). `progress` is as those functions take it,
    or a `Progress` made by the caller (the CLI's, on its stderr).

    Raises:
        InvalidInputError: `kind` is none of `KINDS`.
        ImportSourceError: the source, or the reader it needs, cannot be opened.
    """
    from polytrack.importers._writer import write_runs

    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    reader = importlib.import_module(f"polytrack.importers._{kind}")
    store_home = Path(home).expanduser() if home is not None else Settings.from_env().home
    return write_runs(
        reader.read(os.fspath(source), **options),
        kind=kind,
        source=os.fspath(source),
        home=store_home,
        project=project,
        dry_run=dry_run,
        progress=progress if isinstance(progress, Progress) else Progress.choose(progress),
        limit=limit,
    )
