"""Polyaxon's core tracking calls (metrics, inputs, outputs, tags, refs to data and code,
models, artifacts, statuses), each on the polytrack run given first; `_bind` makes the
module function and the `Run` method of each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from polytrack import _api
from polytrack.models import DataRef, GitState
from polytrack.redact import redact_remote
from polytrack.run import DisabledRun, Run
from polytrack.tracking._common import (
    STOPPED,
    SUCCEEDED,
    cannot_reset,
    default_name,
    metadata,
    status_message,
    truthy,
    warn_once,
)

# Polyaxon's statuses (`V1Statuses`) that end a run, as polytrack's final statuses.
FINAL_STATUSES: Final = {
    "succeeded": "succeeded",
    "done": "succeeded",
    "failed": "failed",
    "upstream_failed": "failed",
    "stopped": "stopped",
    "skipped": "skipped",
}


def start(
    owner: str | None = None,
    project: str | None = None,
    run_uuid: str | None = None,
    client: Any = None,
    track_code: bool = True,
    track_env: bool = True,
    track_logs: bool = True,
    refresh_data: bool = False,
    artifacts_path: str | None = None,
    collect_artifacts: object = None,
    collect_resources: object = None,
    is_offline: bool | None = None,
    is_new: bool | None = None,
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | str | None = None,
    *,
    no_op: bool | None = None,
) -> Run | DisabledRun:
    """Start (or, with `run_uuid`, continue) a polytrack run as Polyaxon's `init()` and
    `Run()` do; see `tracking.init` for what is mapped and what is ignored."""
    off = {
        "git": not track_code,
        "code": not track_code,
        "environment": not track_env,
        "hardware": not track_env,
        "logs": not track_logs,
        "system": collect_resources is not None and not truthy(collect_resources),
    }
    capture = {what: False for what, skipped in off.items() if skipped}
    mode = "disabled" if no_op else "offline" if is_offline else None
    return _api.init(
        project=project,
        name=name,
        tags=[tags] if isinstance(tags, str) else tags,
        notes=description,
        mode=mode,
        resume=None if is_new else run_uuid,
        capture=capture or None,  # only switches off: POLYTRACK_CAPTURE_* keep the rest
    )


def log_metric(
    run: Run | DisabledRun,
    /,
    name: str,
    value: float,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record one metric value; `timestamp` is ignored (polytrack stamps it).

    Example:
        >>> tracking.log_metric(name="loss", value=0.01, step=10)
    """
    run.log_metrics({name: value}, step)


def log_metrics(
    run: Run | DisabledRun,
    /,
    step: int | None = None,
    timestamp: datetime | None = None,
    **metrics: Any,
) -> None:
    """Record metrics given as keywords; `timestamp` is ignored (polytrack stamps them).

    Raises:
        InvalidMetricError: a value is not a real number (names it).

    Example:
        >>> tracking.log_metrics(step=123, loss=0.023, accuracy=0.91)
    """
    run.log_metrics(metrics, step)


def log_inputs(
    run: Run | DisabledRun, /, reset: bool = False, async_req: bool = True, **inputs: Any
) -> None:
    """Record inputs (polytrack's params). A recorded param cannot be removed: with
    `reset=True` the given ones are recorded and a warning says the others stay.

    Example:
        >>> tracking.log_inputs(lr=0.01, batch_size=64)
    """
    if reset:
        cannot_reset("log_inputs", "inputs (params)")
    run.log_inputs(**inputs)


def log_outputs(
    run: Run | DisabledRun, /, reset: bool = False, async_req: bool = True, **outputs: Any
) -> None:
    """Record outputs (results) by name; `reset=True` forgets the ones recorded before.

    Example:
        >>> tracking.log_outputs(accuracy=0.93, best_epoch=7)
    """
    run.log_outputs(reset=reset, **outputs)


def log_tags(
    run: Run | DisabledRun,
    /,
    tags: str | Sequence[str],
    reset: bool = False,
    async_req: bool = True,
) -> None:
    """Add tags. A recorded tag cannot be removed: with `reset=True` the given ones are
    added and a warning says the others stay.

    Example:
        >>> tracking.log_tags(["cnn", "baseline"])
    """
    if reset:
        cannot_reset("log_tags", "tags")
    run.log_tags(tags)


def log_progress(run: Run | DisabledRun, /, value: float) -> None:
    """Record the run's progress, 0 to 1, as the metric `progress` at the current step.

    Raises:
        TypeError: `value` is not a number. ValueError: it is not within [0, 1]
        (as Polyaxon).

    Example:
        >>> tracking.log_progress(0.5)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"`log_progress` received the value `{value}` of type `{type(value).__name__}` "
            "which is not supported. Please pass a valid percentage between [0, 1]."
        )
    if not 0 <= value <= 1:
        raise ValueError(
            f"`log_progress` received an invalid value `{value}`. "
            "Please pass a valid percentage between [0, 1]."
        )
    run.log_metrics({"progress": value}, max(run.step, 0))  # at the step, not a new one


def log_data_ref(
    run: Run | DisabledRun,
    /,
    name: str,
    hash: str | None = None,
    path: str | None = None,
    content: Any = None,
    summary: dict[str, Any] | None = None,
    is_input: bool = True,
    skip_hash_calculation: bool = False,
) -> DataRef | None:
    """Record the content hash of data the run read (`is_input`) or wrote.

    polytrack hashes `content` (bytes, text, an array, a data frame) if given, else the
    file or directory at `path`; a `hash` given alone cannot be checked and is not
    recorded (a warning says so). `summary` is not kept. An array of Python objects
    (ragged sequences, as Keras' `imdb.load_data` returns), whose buffer holds pointers,
    is hashed as the text of its elements, as Polyaxon hashes content by its text.

    Example:
        >>> tracking.log_data_ref(name="train", path="data/train.csv")
    """
    role = "input" if is_input else "output"
    if content is not None:
        source = content.encode() if isinstance(content, str) else content
        if getattr(getattr(source, "dtype", None), "kind", None) == "O":
            source = _objects_text(source)  # pointers are no content: hash what they point to
    elif path is not None:
        source = path
    else:
        warn_once(
            "tracking-data-hash",
            f"log_data_ref({name!r}): polytrack records data by hashing it; pass path= or "
            "content= (a hash alone is not recorded)",
        )
        return None
    return run.log_data_ref(name, source, role)


def _objects_text(array: Any) -> bytes:
    """An object array as text: its shape, then each element's repr (lists of numbers
    exactly; an element that is an array as its list, which numpy would abbreviate)."""
    items = (item.tolist() if hasattr(item, "tolist") else item for item in array.ravel())
    return "\n".join([repr(array.shape), *(repr(item) for item in items)]).encode()


def log_code_ref(
    run: Run | DisabledRun, /, code_ref: dict[str, Any] | None = None, is_input: bool = True
) -> None:
    """Record the code version the run used.

    Without `code_ref`, polytrack's own capture at `init()` (commit, branch, remote,
    dirty flag, the uncommitted diff) is the record, unless `track_code=False` turned it
    off: then the repository around the working directory is read now. A `code_ref`
    dict as Polyaxon's (`commit`, `branch`, `url`, `is_dirty`) replaces that record;
    without a `commit` it is ignored, as by Polyaxon. `is_input` is ignored.

    Example:
        >>> tracking.log_code_ref({"commit": "3f2a...", "branch": "main"})
    """
    if isinstance(run, DisabledRun):
        return
    if code_ref is None:
        if run.settings.capture_git:
            return  # captured at init(), diff and all
        from polytrack.capture.git_files import read_head

        run.record_git(read_head(Path.cwd()))
        return
    if not isinstance(code_ref, Mapping) or not code_ref.get("commit"):
        return
    url = code_ref.get("url")
    dirty = code_ref.get("is_dirty")
    run.record_git(
        GitState(
            available=True,
            commit=str(code_ref["commit"]),
            branch=None if code_ref.get("branch") is None else str(code_ref["branch"]),
            remote=redact_remote(str(url)) if url else None,
            dirty=dirty if isinstance(dirty, bool) else None,
        )
    )


def log_model(
    run: Run | DisabledRun,
    /,
    path: str,
    name: str | None = None,
    framework: str | None = None,
    summary: dict[str, Any] | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
    rel_path: str | None = None,
    skip_hash_calculation: bool = False,
    **kwargs: Any,
) -> None:
    """Keep a copy of a model file or directory (`polytrack.log_model`).

    `name` defaults, as in Polyaxon, to the file name up to its first dot; `summary` is
    kept as the model's metadata, with `step` when given.

    Example:
        >>> tracking.log_model("model.pt", name="classifier", framework="pytorch")
    """
    run.log_model(
        path, name or default_name(path), framework=framework, metadata=metadata(summary, step)
    )


def log_artifact(
    run: Run | DisabledRun,
    /,
    path: str,
    name: str | None = None,
    kind: str | None = None,
    summary: dict[str, Any] | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
    rel_path: str | None = None,
    skip_hash_calculation: bool = False,
    **kwargs: Any,
) -> None:
    """Keep a copy of a file or directory (`polytrack.log_artifact`).

    `name` defaults as for `log_model`; `kind` (or the older `artifact_kind`) is kept as
    given, else "file" or "directory"; `summary` is kept as metadata, with `step`.

    Example:
        >>> tracking.log_artifact("confusion.csv", kind="csv")
    """
    kind = kind or kwargs.get("artifact_kind")  # Polyaxon's older keyword
    run.log_artifact(
        path,
        name or default_name(path),
        kind=None if kind is None else str(kind),
        metadata=metadata(summary, step),
    )


def end(run: Run | DisabledRun) -> None:
    """Finish the run as succeeded (unless it ended already), as Polyaxon's `end()`;
    what was written under the outputs path is kept with it (see `get_outputs_path`).

    Example:
        >>> tracking.end()
    """
    run.finish("succeeded")


def log_succeeded(
    run: Run | DisabledRun, /, reason: str | None = None, message: str | None = SUCCEEDED
) -> None:
    """Finish the run as succeeded; `reason` and `message` become its status message."""
    run.finish("succeeded", message=status_message(reason, message, SUCCEEDED))


def log_stopped(
    run: Run | DisabledRun, /, reason: str | None = None, message: str | None = STOPPED
) -> None:
    """Finish the run as stopped; `reason` and `message` become its status message."""
    run.finish("stopped", message=status_message(reason, message, STOPPED))


def log_failed(
    run: Run | DisabledRun, /, reason: str | None = None, message: str | None = None
) -> None:
    """Finish the run as failed; `reason` and `message` become its status message.

    Example:
        >>> tracking.log_failed(reason="OOM", message="CUDA out of memory")
    """
    run.finish("failed", message=status_message(reason, message, None))


def log_status(
    run: Run | DisabledRun,
    /,
    status: str,
    reason: str | None = None,
    message: str | None = None,
    last_transition_time: datetime | None = None,
    last_update_time: datetime | None = None,
) -> None:
    """Finish the run where `status` is one of Polyaxon's final ones ("succeeded",
    "done", "failed", "upstream_failed", "stopped", "skipped"); another status
    ("running", "warning", ...) is not recorded: a polytrack run is "running" while it
    records, and a warning says so once. The times are ignored.

    Example:
        >>> tracking.log_status("failed", reason="OOM")
    """
    final = FINAL_STATUSES.get(str(getattr(status, "value", status)).lower())
    if final is None:
        warn_once(
            f"tracking-status-{status}",
            f"log_status({status!r}): polytrack records only a run's final status "
            f"({', '.join(sorted(FINAL_STATUSES))}); this one is not recorded",
        )
        return
    run.finish(final, message=status_message(reason, message, None))
