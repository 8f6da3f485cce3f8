"""Polyaxon's tracking functions, recorded by polytrack: change one import and keep the rest.

```python
from polytrack import tracking        # was: from polyaxon import tracking

tracking.init(project="mnist", name="baseline")
tracking.log_inputs(lr=0.01, batch_size=64)
tracking.log_metrics(step=1, loss=0.09, accuracy=0.75)
tracking.log_model("model.pt", name="classifier", framework="pytorch")
tracking.log_outputs(accuracy=0.93)
tracking.end()
```

Each function has the name, parameters (keyword names included) and defaults of Polyaxon's
`polyaxon.tracking` (polyaxon 2.18, whose functions live in traceml 1.5's
`traceml/tracking/__init__.py`), and does what polytrack does for the same intent. What has
no meaning for a local-first store is accepted and ignored, as listed in
`docs/artifacts.md`: connection and server options of `init()` (`owner`, `client`,
`refresh_data`, `artifacts_path`, `collect_artifacts`, `log_context`), `async_req` (every
record is durable when the call returns), `timestamp` (polytrack stamps each point itself),
`rel_path` and `skip_hash_calculation` (artifacts are stored by content hash, always).
Like Polyaxon's, the functions act on the run `init()` started (`TRACKING_RUN`); called
before it they warn once and record nothing. Polyaxon functions without a polytrack
counterpart (images, curves, charts, ...) are absent: using one raises AttributeError.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from polytrack import _api, _state
from polytrack.errors import TrackingWarning
from polytrack.models import DataRef, GitState
from polytrack.redact import redact_remote
from polytrack.run import DisabledRun, Run

__all__ = [
    "end",
    "init",
    "log_artifact",
    "log_code_ref",
    "log_data_ref",
    "log_failed",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_outputs",
    "log_progress",
    "log_stopped",
    "log_succeeded",
    "log_tags",
]

# Polyaxon's default status messages: recorded only when the caller chose another.
_SUCCEEDED: Final = "Operation has succeeded"
_STOPPED: Final = "Operation is stopped"


def __getattr__(name: str) -> Any:
    if name == "TRACKING_RUN":  # Polyaxon's module-level handle on the current run
        return _state.current
    raise AttributeError(
        f"module 'polytrack.tracking' has no attribute {name!r}: polytrack maps these "
        f"Polyaxon tracking functions only: {', '.join(__all__)}"
    )


def init(
    owner: str | None = None,
    project: str | None = None,
    run_uuid: str | None = None,
    client: Any = None,
    track_code: bool = True,
    track_env: bool = True,
    track_logs: bool = True,
    refresh_data: bool = False,
    artifacts_path: str | None = None,
    collect_artifacts: str | None = None,
    collect_resources: str | None = None,
    is_offline: bool | None = None,
    is_new: bool | None = None,
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | str | None = None,
    *,
    log_context: bool = False,
) -> Run | DisabledRun:
    """Start a polytrack run, as Polyaxon's `tracking.init` starts a tracked run.

    Mapped: `project`, `name`, `description` (the run's notes), `tags`; `run_uuid`
    continues that recorded run (as `polytrack.init(resume=...)`) unless `is_new`;
    `is_offline=True` is mode "offline"; `track_code=False` skips the git and code
    capture, `track_env=False` the environment and hardware, `track_logs=False` the
    output, and `collect_resources` false-ish the system metrics. Ignored: `owner`,
    `client`, `refresh_data`, `artifacts_path`, `collect_artifacts`, `log_context`.

    Raises:
        InvalidInputError, RunStateError: as `polytrack.init`.

    Example:
        >>> tracking.init(project="mnist", name="baseline", tags=["cnn"])
    """
    off = {
        "git": not track_code,
        "code": not track_code,
        "environment": not track_env,
        "hardware": not track_env,
        "logs": not track_logs,
        "system": collect_resources is not None and not _truthy(collect_resources),
    }
    capture = {what: False for what, skipped in off.items() if skipped}
    return _api.init(
        project=project,
        name=name,
        tags=[tags] if isinstance(tags, str) else tags,
        notes=description,
        mode="offline" if is_offline else None,
        resume=None if is_new else run_uuid,
        capture=capture or None,  # only switches off: POLYTRACK_CAPTURE_* keep the rest
    )


def _truthy(value: object) -> bool:
    # Polyaxon takes these flags as env-var style strings too ("false", "0").
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def log_metric(
    name: str,
    value: float,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record one metric value; `timestamp` is ignored (polytrack stamps it).

    Example:
        >>> tracking.log_metric(name="loss", value=0.01, step=10)
    """
    _api.log_metrics({name: value}, step)


def log_metrics(step: int | None = None, timestamp: datetime | None = None, **metrics: Any) -> None:
    """Record metrics given as keywords; `timestamp` is ignored (polytrack stamps them).

    Raises:
        InvalidMetricError: a value is not a real number (names it).

    Example:
        >>> tracking.log_metrics(step=123, loss=0.023, accuracy=0.91)
    """
    _api.log_metrics(metrics, step)


def log_inputs(reset: bool = False, async_req: bool = True, **inputs: Any) -> None:
    """Record inputs (polytrack's params). A recorded param cannot be removed: with
    `reset=True` the given ones are recorded and a warning says the others stay.

    Example:
        >>> tracking.log_inputs(lr=0.01, batch_size=64)
    """
    if reset:
        _cannot_reset("log_inputs", "inputs (params)")
    _api.log_inputs(**inputs)


def log_outputs(reset: bool = False, async_req: bool = True, **outputs: Any) -> None:
    """Record outputs (results) by name; `reset=True` forgets the ones recorded before.

    Example:
        >>> tracking.log_outputs(accuracy=0.93, best_epoch=7)
    """
    _api.log_outputs(reset=reset, **outputs)


def log_tags(
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
        _cannot_reset("log_tags", "tags")
    _api.log_tags(tags)


def log_progress(value: float) -> None:
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
    run = _state.current
    if run is None:
        _no_run("log_progress")
        return
    run.log_metrics({"progress": value}, max(run.step, 0))  # at the step, not a new one


def log_data_ref(
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
    recorded (a warning says so). `summary` is not kept.

    Example:
        >>> tracking.log_data_ref(name="train", path="data/train.csv")
    """
    role = "input" if is_input else "output"
    if content is not None:
        source = content.encode() if isinstance(content, str) else content
    elif path is not None:
        source = path
    else:
        _warn_once(
            "tracking-data-hash",
            f"log_data_ref({name!r}): polytrack records data by hashing it; pass path= or "
            "content= (a hash alone is not recorded)",
            stacklevel=3,
        )
        return None
    return _api.log_data_ref(name, source, role)


def log_code_ref(code_ref: dict[str, Any] | None = None, is_input: bool = True) -> None:
    """Record the code version the run used.

    Without `code_ref`, polytrack's own capture at `init()` (commit, branch, remote,
    dirty flag, the uncommitted diff) is the record, unless `track_code=False` turned it
    off: then the repository around the working directory is read now. A `code_ref`
    dict as Polyaxon's (`commit`, `branch`, `url`, `is_dirty`) replaces that record;
    without a `commit` it is ignored, as by Polyaxon. `is_input` is ignored.

    Example:
        >>> tracking.log_code_ref({"commit": "3f2a...", "branch": "main"})
    """
    run = _state.current
    if run is None:
        _no_run("log_code_ref")
        return
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
    _api.log_model(
        path, name or _default_name(path), framework=framework, metadata=_metadata(summary, step)
    )


def log_artifact(
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
    _api.log_artifact(
        path,
        name or _default_name(path),
        kind=None if kind is None else str(kind),
        metadata=_metadata(summary, step),
    )


def end() -> None:
    """Finish the run as succeeded (unless it ended already), as Polyaxon's `end()`.

    Example:
        >>> tracking.end()
    """
    _api.finish("succeeded")


def log_succeeded(reason: str | None = None, message: str | None = _SUCCEEDED) -> None:
    """Finish the run as succeeded; `reason` and `message` become its status message."""
    _api.finish("succeeded", message=_status_message(reason, message, _SUCCEEDED))


def log_stopped(reason: str | None = None, message: str | None = _STOPPED) -> None:
    """Finish the run as stopped; `reason` and `message` become its status message."""
    _api.finish("stopped", message=_status_message(reason, message, _STOPPED))


def log_failed(reason: str | None = None, message: str | None = None) -> None:
    """Finish the run as failed; `reason` and `message` become its status message.

    Example:
        >>> tracking.log_failed(reason="OOM", message="CUDA out of memory")
    """
    _api.finish("failed", message=_status_message(reason, message, None))


def _status_message(reason: str | None, message: str | None, default: str | None) -> str | None:
    if message == default:
        message = None
    parts = [str(part) for part in (reason, message) if part]
    return ": ".join(parts) or None


def _default_name(path: str | os.PathLike[str]) -> str | None:
    """Polyaxon's default name: the file name up to its first dot ("model.pt" -> "model")."""
    base = os.path.basename(os.path.normpath(os.fsdecode(path)))
    return base.split(".")[0] or None  # ".hidden": polytrack's default, the whole name


def _metadata(summary: Mapping[str, Any] | None, step: int | None) -> dict[str, Any] | None:
    metadata = dict(summary or {})
    if step is not None:
        metadata["step"] = step
    return metadata or None


def _cannot_reset(what: str, kept: str) -> None:
    _warn_once(
        f"tracking-reset-{what}",
        f"{what}(reset=True): polytrack never removes recorded {kept}; the new values are "
        "recorded and earlier ones stay",
    )


def _no_run(what: str) -> None:
    _warn_once(
        f"no-run:{what}",
        f"polytrack.tracking.{what}() called before tracking.init(); nothing is recorded",
    )


def _warn_once(what: str, message: str, *, stacklevel: int = 4) -> None:
    """Warn the first time in this process; `stacklevel` 4 points at the user's call
    through one helper and one public function."""
    if _state.first_time(what):
        warnings.warn(message, TrackingWarning, stacklevel=stacklevel)
