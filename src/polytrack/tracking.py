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
counterpart (paths, refs, status) are absent: using one raises AttributeError.

The media functions (`log_image`, `log_histogram`, curves, charts, ...) read their
arguments as Polyaxon's event processors do (an image's `dataformats="CHW"`, a 5-D
video batch laid out as a grid, `log_np_histogram`'s `values` being the counts and
`counts` the edges, a name left out defaulting to "image", "figure", "video", "audio" or
a file's name) and record through `Run`'s media methods. Bad input raises
`InvalidInputError` and records nothing, where Polyaxon logged a warning; names are kept
as given ("weights/fc1"), where Polyaxon made file names of them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from polytrack import _api, _state
from polytrack.errors import InvalidInputError, TrackingWarning
from polytrack.models import DataRef, GitState
from polytrack.redact import redact_remote
from polytrack.run import DisabledRun, Run

__all__ = [
    "end",
    "init",
    "log_altair_chart",
    "log_artifact",
    "log_audio",
    "log_bokeh_chart",
    "log_code_ref",
    "log_confusion_matrix",
    "log_curve",
    "log_data_ref",
    "log_dataframe",
    "log_failed",
    "log_histogram",
    "log_html",
    "log_image",
    "log_image_with_boxes",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_mpl_image",
    "log_mpl_plotly_chart",
    "log_np_histogram",
    "log_outputs",
    "log_plotly_chart",
    "log_pr_curve",
    "log_progress",
    "log_roc_auc_curve",
    "log_sklearn_pr_curve",
    "log_sklearn_roc_auc_curve",
    "log_stopped",
    "log_succeeded",
    "log_tags",
    "log_text",
    "log_video",
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


# -- media ----------------------------------------------------------------------------
# Polyaxon's event calls, each onto the `Run` media method of the same intent. Polyaxon's
# order of parameters (data first, the name optional) and its reading of them live here;
# the checks, the copy and the encoding are the run's. `timestamp` is ignored: polytrack
# stamps each record itself.


def log_image(
    data: Any,
    name: str | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
    rescale: float = 1,
    dataformats: str = "CHW",
    ext: str | None = None,
) -> None:
    """Record an image, or a batch of them as one step (`Run.log_image`).

    Args:
        data: an array (numpy, torch, nested lists) laid out as `dataformats` says, a
            PIL image, a matplotlib figure, or the path of an image file (read with
            Pillow). uint8 pixels, or floats in [0, 1].
        name: default the file's name up to its first dot, else "image" (as Polyaxon).
        dataformats: Polyaxon's default "CHW" (a batch: "NCHW"), any order of those
            letters; where the shape does not fit it, polytrack reads the layout from
            the shape (Polyaxon failed).
        rescale: resize by this factor before keeping it.
        ext: ignored: images are kept as PNG.

    Unlike Polyaxon, a batch is kept as its images, not drawn into one grid.

    Raises:
        InvalidInputError: not an image (names `data` and its shape), no such file.

    Example:
        >>> tracking.log_image(np.zeros((3, 32, 32)), name="sample", step=1)
    """
    run = _media_run("log_image")
    if run is None:
        return
    path = _file_path(data, "data")
    if path is not None:
        name = name or _default_name(path) or "image"
        data, layout = _read_image(path, "data"), None
    else:
        name = name or "image"
        data, layout = _image_array(data, dataformats)
    if rescale != 1:
        data, layout = _rescaled(data, layout, rescale)
    run.log_image(name, data, step, dataformats=layout)


def log_image_with_boxes(
    tensor_image: Any,
    tensor_boxes: Any,
    name: str | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
    rescale: float = 1,
    dataformats: str = "CHW",
) -> None:
    """Record an image with bounding boxes drawn on it and kept as numbers
    (`Run.log_image_with_boxes`); `name` defaults to "figure", as in Polyaxon.

    Args:
        tensor_image: as `log_image`'s `data`.
        tensor_boxes: (n, 4) pixels: x_min, y_min, x_max, y_max (scaled with `rescale`).

    Raises:
        InvalidInputError: as `log_image`; boxes that are not (n, 4) numbers.

    Example:
        >>> tracking.log_image_with_boxes(image_chw, [[10, 10, 40, 40]], name="detected")
    """
    run = _media_run("log_image_with_boxes")
    if run is None:
        return
    path = _file_path(tensor_image, "tensor_image")
    if path is not None:
        data, layout = _read_image(path, "tensor_image"), None
    else:
        data, layout = _image_array(tensor_image, dataformats)
    boxes = _numpy(tensor_boxes)
    if rescale != 1:
        data, layout = _rescaled(data, layout, rescale)
        from polytrack.media.images import check_boxes

        boxes = [[value * float(rescale) for value in entry["box"]] for entry in check_boxes(boxes)]
    run.log_image_with_boxes(name or "figure", data, boxes, step, dataformats=layout)


def log_mpl_image(
    data: Any,
    name: str | None = None,
    close: bool = True,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a matplotlib figure as an image, or a list of figures (of one size) as a
    batch at one step; `name` defaults to "figure" and `close` closes them once drawn.

    Raises:
        InvalidInputError: not a matplotlib figure (or `matplotlib.pyplot`, its current
            figure), or figures of different sizes in the list.

    Example:
        >>> tracking.log_mpl_image(fig, "loss_landscape", step=epoch)
    """
    run = _media_run("log_mpl_image")
    if run is None:
        return
    name = name or "figure"
    if isinstance(data, list):
        run.log_image(name, _figures_batch(data, close), step, dataformats="NHWC")
        return
    figure = _mpl_figure(data, "data")
    try:
        run.log_image(name, figure, step)  # drawn to PNG here: matplotlib is not thread safe
    finally:
        if close:
            _close(figure)


def log_video(
    data: Any,
    name: str | None = None,
    fps: int = 4,
    step: int | None = None,
    timestamp: datetime | None = None,
    content_type: str | None = None,
) -> None:
    """Record a video (`Run.log_video`).

    Args:
        data: frames (time, height, width, channels) or (time, channels, height,
            width); Polyaxon's (batch, time, channels, height, width), whose batch is
            laid out as a grid in each frame as Polyaxon does; or a GIF file's path.
        name: default the file's name up to its first dot, else "video".
        content_type: "gif" (the default), "mp4" or "webm" (those need the `video`
            extra).

    Raises:
        InvalidInputError: not frames, or a file that is not a GIF (keep other video
            files with `log_artifact`).

    Example:
        >>> tracking.log_video(np.random.rand(4, 3, 1, 8, 8), name="rollout", fps=8)
    """
    run = _media_run("log_video")
    if run is None:
        return
    path = _file_path(data, "data")
    rate: float = fps
    if path is not None:
        name = name or _default_name(path) or "video"
        frames, rate = _read_gif(path, fps)
    else:
        name = name or "video"
        frames = _video_frames(data)
    run.log_video(name, frames, step, fps=rate, format=content_type)


def log_audio(
    data: Any,
    name: str | None = None,
    sample_rate: int = 44100,
    step: int | None = None,
    timestamp: datetime | None = None,
    content_type: str | None = None,
) -> None:
    """Record a sound, kept as WAV (`Run.log_audio`).

    Args:
        data: samples, squeezed and clipped to [-1, 1] as Polyaxon does (int16 is
            taken as PCM), or a WAV file's path (16-bit PCM; its sample rate is kept).
        name: default the file's name up to its first dot, else "audio".
        content_type: ignored: sounds are kept as WAV.

    Raises:
        InvalidInputError: not samples, or a file that is no 16-bit WAV.

    Example:
        >>> tracking.log_audio(np.sin(np.linspace(0, 440, 44100)), name="tone")
    """
    run = _media_run("log_audio")
    if run is None:
        return
    path = _file_path(data, "data")
    if path is not None:
        name = name or _default_name(path) or "audio"
        samples, sample_rate = _read_wav(path)
    else:
        name = name or "audio"
        samples = _audio_samples(data)
    run.log_audio(name, samples, step, sample_rate=sample_rate)


def log_text(
    name: str, text: str, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record a text at a step (`Run.log_text`).

    Example:
        >>> tracking.log_text(name="summary", text="epoch 3: ok", step=3)
    """
    run = _media_run("log_text")
    if run is not None:
        run.log_text(name, text, step)


def log_html(
    name: str, html: str, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record an HTML document at a step (`Run.log_html`).

    Example:
        >>> tracking.log_html(name="report", html="<p>value</p>")
    """
    run = _media_run("log_html")
    if run is not None:
        run.log_html(name, html, step)


def log_np_histogram(
    name: str,
    values: Any,
    counts: Any,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a histogram binned already, in Polyaxon's order: `values, counts =
    np.histogram(...)`, so `values` are the counts and `counts` the edges (one more).
    Given the other way round (edges first, as `Run.log_np_histogram` takes them), the
    lengths tell, and it is recorded the same.

    Raises:
        InvalidInputError: lengths that do not fit, NaN among them, unsorted edges.

    Example:
        >>> values, counts = np.histogram(data, bins=20)
        >>> tracking.log_np_histogram(name="data", values=values, counts=counts, step=1)
    """
    run = _media_run("log_np_histogram")
    if run is None:
        return
    import numpy as np

    try:
        polyaxon_order = np.size(counts) == np.size(values) + 1
    except (ValueError, TypeError):  # ragged: the run's check names it
        polyaxon_order = False
    if polyaxon_order:
        values, counts = counts, values
    run.log_np_histogram(name, values, counts, step)


def log_histogram(
    name: str,
    values: Any,
    bins: Any,
    max_bins: int | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record the distribution of `values`, binned now with numpy (`Run.log_histogram`).

    Args:
        values: numbers of any shape (numpy, torch, lists); only the bins are kept.
        bins: a count, a numpy rule ("auto", "fd", ...) or the edges.
        max_bins: at most this many bins (Polyaxon's and polytrack's cap: 512): a count
            or edges past it are refused; a rule that makes more is binned again into
            `max_bins`.

    Raises:
        InvalidInputError: not numbers, empty, NaN or infinity among them; too many bins.

    Example:
        >>> tracking.log_histogram("weights/fc1", weights, "auto", step=epoch)
    """
    run = _media_run("log_histogram")
    if run is None:
        return
    if max_bins is None:
        run.log_histogram(name, values, step, bins=bins)
        return
    from polytrack.media.histograms import MAX_BINS, bin_values

    if isinstance(max_bins, bool) or not isinstance(max_bins, int) or max_bins < 1:
        raise InvalidInputError(f"max_bins must be a positive int; got {max_bins!r}")
    limit = min(max_bins, MAX_BINS)
    edges, counts = bin_values(values, bins)
    if counts.size > limit:
        if not isinstance(bins, str):
            raise InvalidInputError(
                f"bins makes {counts.size} bins, past max_bins ({limit})"
            )
        edges, counts = bin_values(values, limit)
    run.log_np_histogram(name, edges, counts, step)


def log_curve(
    name: str,
    x: Any,
    y: Any,
    annotation: str | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a custom curve (`Run.log_curve`).

    Raises:
        InvalidInputError: x and y of different lengths, not numbers, NaN among them.

    Example:
        >>> tracking.log_curve("calibration", x, y, annotation="ECE 0.04", step=10)
    """
    run = _media_run("log_curve")
    if run is not None:
        run.log_curve(name, x, y, step, annotation=_annotation(annotation))


def log_roc_auc_curve(
    name: str,
    fpr: Any,
    tpr: Any,
    auc: float | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a ROC curve computed already: false (x) and true (y) positive rates;
    `auc` is kept as the curve's annotation, as by Polyaxon, and as its `meta["auc"]`.

    Raises:
        InvalidInputError: fpr and tpr of different lengths, not numbers, NaN among them.

    Example:
        >>> tracking.log_roc_auc_curve("roc", fpr, tpr, auc=0.91, step=1)
    """
    run = _media_run("log_roc_auc_curve")
    if run is not None:
        _log_curve(run, "log_roc_auc_curve", name, fpr, tpr, step, "roc", "auc", auc)


def log_pr_curve(
    name: str,
    precision: Any,
    recall: Any,
    average_precision: float | None = None,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a precision-recall curve computed already; `average_precision` is kept as
    its annotation, as by Polyaxon, and as its `meta["average_precision"]`. Kept as
    polytrack's "pr" curves are (`Run.log_pr_curve`): recall on x, precision on y.

    Raises:
        InvalidInputError: precision and recall of different lengths, not numbers, NaN.

    Example:
        >>> tracking.log_pr_curve("pr", precision, recall, average_precision=0.8, step=1)
    """
    run = _media_run("log_pr_curve")
    if run is not None:
        _log_curve(
            run, "log_pr_curve", name, recall, precision, step, "pr", "average_precision",
            average_precision,
        )  # fmt: skip


def log_sklearn_roc_auc_curve(
    name: str,
    y_preds: Any,
    y_targets: Any,
    step: int | None = None,
    timestamp: datetime | None = None,
    is_multi_class: bool = False,
) -> None:
    """Record the ROC curve of scores and labels, with its AUC (`Run.log_roc_curve`;
    computed with numpy: scikit-learn is not needed).

    With `is_multi_class`, `y_preds` holds one column of scores per class and one curve
    is recorded per class, one against the rest: "<name>_<i>" for the i-th class of the
    sorted labels, as Polyaxon names them.

    Raises:
        InvalidInputError: scores and labels that do not fit.

    Example:
        >>> tracking.log_sklearn_roc_auc_curve("roc", probabilities, labels, step=3,
        ...                                    is_multi_class=True)
    """
    run = _media_run("log_sklearn_roc_auc_curve")
    if run is None:
        return
    for curve, scores, labels in _per_class(name, y_preds, y_targets, is_multi_class):
        run.log_roc_curve(curve, labels, scores, step)


def log_sklearn_pr_curve(
    name: str,
    y_preds: Any,
    y_targets: Any,
    step: int | None = None,
    timestamp: datetime | None = None,
    is_multi_class: bool = False,
) -> None:
    """Record the precision-recall curve of scores and labels, with its average
    precision (`Run.log_pr_curve`); `is_multi_class` as for `log_sklearn_roc_auc_curve`.

    Example:
        >>> tracking.log_sklearn_pr_curve("pr", scores, labels, step=3)
    """
    run = _media_run("log_sklearn_pr_curve")
    if run is None:
        return
    for curve, scores, labels in _per_class(name, y_preds, y_targets, is_multi_class):
        run.log_pr_curve(curve, labels, scores, step)


def log_confusion_matrix(
    name: str,
    x: Any,
    y: Any,
    z: Any = None,
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a confusion matrix: `z[i][j]` for row label `y[i]` and column label `x[j]`
    (Polyaxon's form, kept as given); without `z` (which Polyaxon skipped with a
    warning), `x` and `y` are the true and predicted labels and polytrack counts them
    (`Run.log_confusion_matrix`).

    Raises:
        InvalidInputError: `z` not len(y) rows of len(x) numbers.

    Example:
        >>> tracking.log_confusion_matrix("confusion", x=classes, y=classes, z=cm, step=5)
    """
    run = _media_run("log_confusion_matrix")
    if run is None:
        return
    if z is None:
        run.log_confusion_matrix(name, x, y, step)
        return
    from polytrack.media.curves import confusion_matrix_job
    from polytrack.media.jobs import check_name, check_step

    job = confusion_matrix_job(check_name(name), x, y, z, check_step(step, run.step))
    run._submit_media(job, "log_confusion_matrix")


def log_dataframe(
    df: Any,
    name: str,
    content_type: str = "csv",
    step: int | None = None,
    timestamp: datetime | None = None,
) -> None:
    """Record a data frame as a table, cell for cell (`Run.log_table`), whether Polyaxon
    would have kept it as CSV or HTML.

    Raises:
        InvalidInputError: `content_type` is neither "csv" nor "html" (as Polyaxon); not
            a table.

    Example:
        >>> tracking.log_dataframe(predictions_df, "predictions", step=2)
    """
    run = _media_run("log_dataframe")
    if run is None:
        return
    if content_type not in ("csv", "html"):
        raise InvalidInputError(
            f"content_type must be 'csv' or 'html' (as Polyaxon's log_dataframe); "
            f"got {content_type!r}"
        )
    run.log_table(name, df, step)


def log_plotly_chart(
    name: str, figure: Any, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record a plotly figure, or a figure's dict or list of traces as plotly takes
    them; a matplotlib figure is converted to plotly, as by Polyaxon.

    Raises:
        InvalidInputError: not a plotly figure, or one matplotlib cannot be converted.

    Example:
        >>> tracking.log_plotly_chart("scatter", px.scatter(df, x="a", y="b"), step=1)
    """
    run = _media_run("log_plotly_chart")
    if run is None:
        return
    if _is_mpl_figure(figure):
        _log_mpl_plotly(run, "log_plotly_chart", name, figure, step, close=False, fallback=True)
        return
    if isinstance(figure, (dict, list)):
        figure = _plotly_figure(figure)
    run.log_figure(name, figure, step)


def log_bokeh_chart(
    name: str, figure: Any, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record a bokeh figure (`Run.log_figure`).

    Example:
        >>> tracking.log_bokeh_chart("histogram", bokeh_figure, step=1)
    """
    run = _media_run("log_bokeh_chart")
    if run is not None:
        run.log_figure(name, figure, step)


def log_altair_chart(
    name: str, figure: Any, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record an altair (Vega-Lite) chart (`Run.log_figure`).

    Example:
        >>> tracking.log_altair_chart("scatter", alt.Chart(df).mark_point(), step=1)
    """
    run = _media_run("log_altair_chart")
    if run is not None:
        run.log_figure(name, figure, step)


def log_mpl_plotly_chart(
    name: str,
    figure: Any,
    step: int | None = None,
    timestamp: datetime | None = None,
    close: bool = True,
    fallback_to_image: bool = True,
) -> None:
    """Record a matplotlib figure converted to plotly (interactive in the dashboard);
    `close` closes it once drawn. Where plotly's converter fails (it knows few of
    matplotlib's artists), with `fallback_to_image` the figure is kept drawn as a PNG
    (a figure of library "matplotlib", `meta["converted"]` False) and a warning says so
    once, as Polyaxon falls back to `log_mpl_image`.

    Raises:
        InvalidInputError: not a matplotlib figure; not convertible and no fallback.

    Example:
        >>> tracking.log_mpl_plotly_chart("loss", fig, step=epoch)
    """
    run = _media_run("log_mpl_plotly_chart")
    if run is not None:
        _log_mpl_plotly(
            run, "log_mpl_plotly_chart", name, _mpl_figure(figure, "figure"), step,
            close=close, fallback=fallback_to_image,
        )  # fmt: skip


def _media_run(what: str) -> Run | None:
    """The run a media call records into; None (after a warning, the first time) before
    `init()`, and None for a disabled run, which would drop the value anyway."""
    run = _state.current
    if run is None:
        _warn_once(
            f"no-run:{what}",
            f"polytrack.tracking.{what}() called before tracking.init(); nothing is recorded",
        )
        return None
    return None if isinstance(run, DisabledRun) else run


def _annotation(value: object) -> str | None:
    # Polyaxon's rule: str(value) when truthy (an AUC of 0 is not annotated).
    return str(value) if value else None


def _numpy(data: Any) -> Any:
    """`data` as a numpy array where it is a tensor or nested lists, else as it is."""
    import numpy as np

    if isinstance(data, np.ndarray):
        return data
    if type(data).__module__.startswith("torch") and hasattr(data, "detach"):
        return data.detach().cpu().numpy()
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data)
        except (ValueError, TypeError):  # ragged: the run's check names it
            return data
    return data


def _file_path(data: Any, arg: str) -> str | None:
    """`data` as a file's path when it names one (Polyaxon logs a file by its path)."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if not isinstance(data, str):
        return None
    if not os.path.isfile(data):
        raise InvalidInputError(f"{arg} {data!r} is neither an array nor an existing file")
    return data


def _read_image(path: str, arg: str) -> Any:
    """The image in the file at `path`, loaded with Pillow."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidInputError(f"{arg} {path!r} is no image Pillow reads: {exc}") from None


_IMAGE_LETTERS: Final = (frozenset("HW"), frozenset("CHW"), frozenset("NCHW"))
_CANONICAL: Final = {2: "HW", 3: "HWC", 4: "NHWC"}


def _image_array(data: Any, dataformats: object) -> tuple[Any, str | None]:
    """`data` in a layout polytrack names, and that name: Polyaxon's `dataformats` (any
    order of N, C, H, W) transposed to HW / HWC / NHWC; None (read from the shape) where
    `data` is no array or its shape does not fit them."""
    if hasattr(data, "encoded_image_string"):  # a TensorFlow Summary.Image, as Polyaxon
        import io

        from PIL import Image

        return Image.open(io.BytesIO(data.encoded_image_string)), None
    array = _numpy(data)
    shape = getattr(array, "shape", None)
    if shape is None or not hasattr(array, "transpose") or not isinstance(dataformats, str):
        return data, None
    letters = dataformats.upper()
    if len(letters) + 1 == len(shape) and "N" not in letters:
        letters = "N" + letters  # a batch given one image's format
    sizes = dict(zip(letters, shape, strict=False))
    if (
        len(letters) != len(shape)
        or len(sizes) != len(letters)
        or frozenset(letters) not in _IMAGE_LETTERS
        or sizes.get("C", 1) not in (1, 3, 4)
        or 0 in shape
    ):
        return array, None
    target = _CANONICAL[len(shape)]
    return array.transpose([letters.index(letter) for letter in target]), target


def _rescaled(data: Any, layout: str | None, rescale: object) -> tuple[Any, str]:
    """The image (or batch) resized by `rescale`, as uint8 HWC (NHWC)."""
    if isinstance(rescale, bool) or not isinstance(rescale, (int, float)) or not rescale > 0:
        raise InvalidInputError(f"rescale must be a positive number; got {rescale!r}")
    import numpy as np
    from PIL import Image

    from polytrack.media.images import decode_png, prepare_image, to_nhwc_uint8

    copy, found, _ = prepare_image(data, dataformats=layout)
    # A matplotlib figure comes drawn already, as PNG bytes.
    batch = decode_png([copy])[None] if isinstance(copy, bytes) else to_nhwc_uint8(copy, found)
    n, height, width, channels = batch.shape
    size = (max(1, int(width * rescale)), max(1, int(height * rescale)))
    resized = np.stack(
        [
            np.asarray(
                Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).resize(
                    size, Image.Resampling.LANCZOS
                )
            ).reshape(size[1], size[0], channels)
            for pixels in batch
        ]
    )
    return (resized[0], "HWC") if n == 1 else (resized, "NHWC")


def _is_mpl_figure(figure: object) -> bool:
    return type(figure).__module__.startswith("matplotlib.") and hasattr(figure, "savefig")


def _mpl_figure(figure: Any, arg: str) -> Any:
    """The matplotlib figure `figure` is, holds (an Axes' figure) or, for the pyplot
    module, the current one."""
    if _is_mpl_figure(figure):
        return figure
    if getattr(figure, "__name__", None) == "matplotlib.pyplot":
        return figure.gcf()
    owner = getattr(figure, "figure", None)
    if type(figure).__module__.startswith("matplotlib.") and _is_mpl_figure(owner):
        return owner
    raise InvalidInputError(
        f"{arg} must be a matplotlib figure (or matplotlib.pyplot); got {type(figure).__name__}"
    )


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _figures_batch(figures: list[Any], close: bool) -> Any:
    """Figures drawn to pixels on this thread, stacked as an NHWC batch."""
    import numpy as np

    from polytrack.media.images import decode_png, figure_png

    if not figures:
        raise InvalidInputError("data is an empty list: no figure to draw")
    drawn = [
        decode_png([figure_png(_mpl_figure(figure, "data"), close=close)]) for figure in figures
    ]
    shapes = sorted({image.shape for image in drawn})
    if len(shapes) > 1:
        raise InvalidInputError(
            f"data holds figures of different sizes {shapes}: a batch is of one size"
        )
    return np.stack(drawn)


def _log_mpl_plotly(
    run: Run, what: str, name: str, figure: Any, step: int | None, *, close: bool,
    fallback: bool,
) -> None:  # fmt: skip
    """A matplotlib figure as plotly's, or drawn where it does not convert (`fallback`)."""
    from polytrack.media.figures import mpl_to_plotly_job
    from polytrack.media.jobs import check_name, check_step

    try:
        job = mpl_to_plotly_job(check_name(name), figure, check_step(step, run.step))
        if job.meta.get("converted") is False:
            if not fallback:
                raise InvalidInputError(
                    f"figure: plotly cannot convert this matplotlib figure ({what} with "
                    "fallback_to_image=False records nothing)"
                )
            _warn_once(
                "tracking-mpl-plotly",
                f"{what}({name!r}): plotly cannot convert this matplotlib figure; it is "
                "kept drawn as an image instead",
                stacklevel=4,
            )
        run._submit_media(job, what)
    finally:
        if close:
            _close(figure)


def _log_curve(
    run: Run, what: str, name: str, x: Any, y: Any, step: int | None, kind: str, area: str,
    value: Any,
) -> None:  # fmt: skip
    """A curve computed already, its area (AUC, AP) as Polyaxon annotates it and in meta."""
    import numbers

    from polytrack.media.curves import curve_job
    from polytrack.media.jobs import check_name, check_step

    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    job = curve_job(
        check_name(name), _numpy(x), _numpy(y), check_step(step, run.step), kind=kind,
        annotation=_annotation(value), meta={area: float(value)} if real else None,
    )  # fmt: skip
    run._submit_media(job, what)


def _plotly_figure(figure: dict[str, Any] | list[Any]) -> Any:
    """A plotly Figure from a figure's dict or a list of traces (what plotly accepts)."""
    import importlib

    try:
        go = importlib.import_module("plotly.graph_objects")
    except ImportError:
        raise InvalidInputError(
            "figure is a dict or list: plotly is needed to read it (pip install plotly)"
        ) from None
    try:
        return go.Figure(figure) if isinstance(figure, dict) else go.Figure(data=figure)
    except ValueError as exc:
        raise InvalidInputError(f"figure is no plotly figure: {exc}") from None


def _video_frames(data: Any) -> Any:
    """Polyaxon's 5-D (batch, time, channels, height, width) as frames (time, height,
    width, channels), the batch tiled into each frame: rows and columns of powers of
    two, the batch padded with black; other shapes as they are."""
    import numpy as np

    array = _numpy(data)
    if not isinstance(array, np.ndarray) or array.ndim != 5:
        return array
    batch, time, channels, height, width = array.shape
    if batch == 0:
        raise InvalidInputError(f"data has shape {array.shape}: an empty batch")
    cells = 1 << (batch - 1).bit_length()
    if cells > batch:
        padding = np.zeros((cells - batch, time, channels, height, width), array.dtype)
        array = np.concatenate([array, padding])
    rows = 1 << ((batch.bit_length() - 1) // 2)
    columns = cells // rows
    tiled = array.reshape(rows, columns, time, channels, height, width)
    return tiled.transpose(2, 0, 4, 1, 5, 3).reshape(
        time, rows * height, columns * width, channels
    )


def _read_gif(path: str, fps: float) -> tuple[Any, float]:
    """A GIF file's frames (RGB) and frame rate (its own, else `fps`)."""
    import numpy as np
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "GIF":
                raise InvalidInputError(
                    f"data {path!r} is {image.format or 'not a video'}: polytrack reads GIF "
                    "files here; keep other videos with log_artifact"
                )
            duration = image.info.get("duration")
            frames = np.stack(
                [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
            )
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidInputError(f"data {path!r} is no video polytrack reads: {exc}") from None
    if isinstance(duration, (int, float)) and duration > 0:
        fps = 1000.0 / duration
    return frames, fps


def _audio_samples(data: Any) -> Any:
    """Samples squeezed, and clipped to [-1, 1] (int16 aside), as Polyaxon's processor
    does."""
    import numpy as np

    array = _numpy(data)
    if not isinstance(array, np.ndarray):
        return array
    array = array.squeeze()
    if array.dtype.kind in "uib" and array.dtype != np.int16:
        array = array.astype(np.float64)  # Polyaxon's scale: [-1, 1] whatever the type
    if array.dtype.kind == "f" and array.size and np.nanmax(np.abs(array)) > 1:
        array = np.clip(array, -1.0, 1.0)
    return array


def _read_wav(path: str) -> tuple[Any, int]:
    """A 16-bit PCM WAV file's samples (frames[, channels]) and sample rate."""
    import wave

    import numpy as np

    try:
        with wave.open(path, "rb") as sound:
            channels, width = sound.getnchannels(), sound.getsampwidth()
            rate, data = sound.getframerate(), sound.readframes(sound.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise InvalidInputError(f"data {path!r} is no WAV file: {exc}") from None
    if width != 2:
        raise InvalidInputError(
            f"data {path!r} holds {8 * width}-bit samples: polytrack reads 16-bit WAV files"
        )
    samples = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
    return (samples[:, 0] if channels == 1 else samples), rate


def _per_class(
    name: str, y_preds: Any, y_targets: Any, is_multi_class: bool
) -> list[tuple[str, Any, Any]]:
    """(curve name, scores, labels) per curve: one, or one per class against the rest
    ("<name>_<i>" for the i-th class of the sorted labels, as Polyaxon names them)."""
    import numpy as np

    scores, labels = _numpy(y_preds), _numpy(y_targets)
    if not is_multi_class:
        return [(name, scores, labels)]
    scores, labels = np.asarray(scores), np.asarray(labels).ravel()
    classes = np.unique(labels)
    if scores.ndim != 2 or scores.shape[0] != labels.size or scores.shape[1] < classes.size:
        raise InvalidInputError(
            f"y_preds has shape {scores.shape} for {labels.size} labels of {classes.size} "
            "classes: a multi-class curve needs one column of scores per class"
        )
    return [
        (f"{name}_{i}", scores[:, i], (labels == label).astype(np.int64))
        for i, label in enumerate(classes)
    ]
