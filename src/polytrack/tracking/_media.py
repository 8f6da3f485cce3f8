"""Polyaxon's media calls (images, videos, sounds, texts, histograms, curves, charts, data
frames), each onto the polytrack `Run` media method of the same intent.

Polyaxon's order of parameters (data first, the name optional) and its reading of them
live here; the checks, the copy and the encoding are the run's. `timestamp` is ignored:
polytrack stamps each record itself. Each takes the run first; `_bind` makes the module
function and the `Run` method of each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from polytrack.errors import InvalidInputError
from polytrack.run import Run
from polytrack.tracking._common import default_name
from polytrack.tracking._media_inputs import (
    annotation_text,
    as_numpy,
    audio_samples,
    close_figure,
    figures_batch,
    file_path,
    image_array,
    is_mpl_figure,
    mpl_figure,
    per_class,
    plotly_figure,
    read_gif,
    read_image,
    read_wav,
    rescaled,
    submit_curve,
    submit_mpl_plotly,
    video_frames,
)


def log_image(
    run: Run,
    /,
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
    path = file_path(data, "data")
    if path is not None:
        name = name or default_name(path) or "image"
        data, layout = read_image(path, "data"), None
    else:
        name = name or "image"
        data, layout = image_array(data, dataformats)
    if rescale != 1:
        data, layout = rescaled(data, layout, rescale)
    run.log_image(name, data, step, dataformats=layout)


def log_image_with_boxes(
    run: Run,
    /,
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
    path = file_path(tensor_image, "tensor_image")
    if path is not None:
        data, layout = read_image(path, "tensor_image"), None
    else:
        data, layout = image_array(tensor_image, dataformats)
    boxes = as_numpy(tensor_boxes)
    if rescale != 1:
        data, layout = rescaled(data, layout, rescale)
        from polytrack.media.images import check_boxes

        boxes = [[value * float(rescale) for value in entry["box"]] for entry in check_boxes(boxes)]
    run.log_image_with_boxes(name or "figure", data, boxes, step, dataformats=layout)


def log_mpl_image(
    run: Run,
    /,
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
    name = name or "figure"
    if isinstance(data, list):
        run.log_image(name, figures_batch(data, close), step, dataformats="NHWC")
        return
    figure = mpl_figure(data, "data")
    try:
        run.log_image(name, figure, step)  # drawn to PNG here: matplotlib is not thread safe
    finally:
        if close:
            close_figure(figure)


def log_video(
    run: Run,
    /,
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
    path = file_path(data, "data")
    rate: float = fps
    if path is not None:
        name = name or default_name(path) or "video"
        frames, rate = read_gif(path, fps)
    else:
        name = name or "video"
        frames = video_frames(data)
    run.log_video(name, frames, step, fps=rate, format=content_type)


def log_audio(
    run: Run,
    /,
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
    path = file_path(data, "data")
    if path is not None:
        name = name or default_name(path) or "audio"
        samples, sample_rate = read_wav(path)
    else:
        name = name or "audio"
        samples = audio_samples(data)
    run.log_audio(name, samples, step, sample_rate=sample_rate)


def log_text(
    run: Run, /, name: str, text: str, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record a text at a step (`Run.log_text`).

    Example:
        >>> tracking.log_text(name="summary", text="epoch 3: ok", step=3)
    """
    run.log_text(name, text, step)


def log_html(
    run: Run, /, name: str, html: str, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record an HTML document at a step (`Run.log_html`).

    Example:
        >>> tracking.log_html(name="report", html="<p>value</p>")
    """
    run.log_html(name, html, step)


def log_np_histogram(
    run: Run,
    /,
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
    import numpy as np

    try:
        polyaxon_order = np.size(counts) == np.size(values) + 1
    except (ValueError, TypeError):  # ragged: the run's check names it
        polyaxon_order = False
    if polyaxon_order:
        values, counts = counts, values
    run.log_np_histogram(name, values, counts, step)


def log_histogram(
    run: Run,
    /,
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
            raise InvalidInputError(f"bins makes {counts.size} bins, past max_bins ({limit})")
        edges, counts = bin_values(values, limit)
    run.log_np_histogram(name, edges, counts, step)


def log_curve(
    run: Run,
    /,
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
    run.log_curve(name, x, y, step, annotation=annotation_text(annotation))


def log_roc_auc_curve(
    run: Run,
    /,
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
    submit_curve(run, "log_roc_auc_curve", name, fpr, tpr, step, "roc", "auc", auc)


def log_pr_curve(
    run: Run,
    /,
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
    submit_curve(
        run, "log_pr_curve", name, recall, precision, step, "pr", "average_precision",
        average_precision,
    )  # fmt: skip


def log_sklearn_roc_auc_curve(
    run: Run,
    /,
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
    for curve, scores, labels in per_class(name, y_preds, y_targets, is_multi_class):
        run.log_roc_curve(curve, labels, scores, step)


def log_sklearn_pr_curve(
    run: Run,
    /,
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
    for curve, scores, labels in per_class(name, y_preds, y_targets, is_multi_class):
        run.log_pr_curve(curve, labels, scores, step)


def log_confusion_matrix(
    run: Run,
    /,
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
    if z is None:
        run.log_confusion_matrix(name, x, y, step)
        return
    from polytrack.media.curves import confusion_matrix_job
    from polytrack.media.jobs import check_name, check_step

    job = confusion_matrix_job(check_name(name), x, y, z, check_step(step, run.step))
    run._submit_media(job, "log_confusion_matrix")


def log_dataframe(
    run: Run,
    /,
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
    if content_type not in ("csv", "html"):
        raise InvalidInputError(
            f"content_type must be 'csv' or 'html' (as Polyaxon's log_dataframe); "
            f"got {content_type!r}"
        )
    run.log_table(name, df, step)


def log_plotly_chart(
    run: Run, /, name: str, figure: Any, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record a plotly figure, or a figure's dict or list of traces as plotly takes
    them; a matplotlib figure is converted to plotly, as by Polyaxon.

    Raises:
        InvalidInputError: not a plotly figure, or one matplotlib cannot be converted.

    Example:
        >>> tracking.log_plotly_chart("scatter", px.scatter(df, x="a", y="b"), step=1)
    """
    if is_mpl_figure(figure):
        submit_mpl_plotly(run, "log_plotly_chart", name, figure, step, close=False, fallback=True)
        return
    if isinstance(figure, (dict, list)):
        figure = plotly_figure(figure)
    run.log_figure(name, figure, step)


def log_bokeh_chart(
    run: Run, /, name: str, figure: Any, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record a bokeh figure (`Run.log_figure`).

    Example:
        >>> tracking.log_bokeh_chart("histogram", bokeh_figure, step=1)
    """
    run.log_figure(name, figure, step)


def log_altair_chart(
    run: Run, /, name: str, figure: Any, step: int | None = None, timestamp: datetime | None = None
) -> None:
    """Record an altair (Vega-Lite) chart (`Run.log_figure`).

    Example:
        >>> tracking.log_altair_chart("scatter", alt.Chart(df).mark_point(), step=1)
    """
    run.log_figure(name, figure, step)


def log_mpl_plotly_chart(
    run: Run,
    /,
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
    submit_mpl_plotly(
        run, "log_mpl_plotly_chart", name, mpl_figure(figure, "figure"), step,
        close=close, fallback=fallback_to_image,
    )  # fmt: skip
