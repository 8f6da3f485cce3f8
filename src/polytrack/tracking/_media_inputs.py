"""Polyaxon's media arguments read into what polytrack's `Run` takes: tensors and lists as
arrays, image layouts (`dataformats`), files named by path (images, GIFs, WAVs), video
batches tiled, sounds clipped, matplotlib figures drawn, curves per class."""

from __future__ import annotations

import os
from typing import Any, Final

from polytrack.errors import InvalidInputError
from polytrack.run import Run
from polytrack.tracking._common import warn_once


def annotation_text(value: object) -> str | None:
    # Polyaxon's rule: str(value) when truthy (an AUC of 0 is not annotated).
    return str(value) if value else None


def as_numpy(data: Any) -> Any:
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


def file_path(data: Any, arg: str) -> str | None:
    """`data` as a file's path when it names one (Polyaxon logs a file by its path)."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if not isinstance(data, str):
        return None
    if not os.path.isfile(data):
        raise InvalidInputError(f"{arg} {data!r} is neither an array nor an existing file")
    return data


def read_image(path: str, arg: str) -> Any:
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


def image_array(data: Any, dataformats: object) -> tuple[Any, str | None]:
    """`data` in a layout polytrack names, and that name: Polyaxon's `dataformats` (any
    order of N, C, H, W) transposed to HW / HWC / NHWC; None (read from the shape) where
    `data` is no array or its shape does not fit them."""
    if hasattr(data, "encoded_image_string"):  # a TensorFlow Summary.Image, as Polyaxon
        import io

        from PIL import Image

        return Image.open(io.BytesIO(data.encoded_image_string)), None
    array = as_numpy(data)
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


def rescaled(data: Any, layout: str | None, rescale: object) -> tuple[Any, str]:
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


def is_mpl_figure(figure: object) -> bool:
    return type(figure).__module__.startswith("matplotlib.") and hasattr(figure, "savefig")


def mpl_figure(figure: Any, arg: str) -> Any:
    """The matplotlib figure `figure` is, holds (an Axes' figure) or, for the pyplot
    module, the current one."""
    if is_mpl_figure(figure):
        return figure
    if getattr(figure, "__name__", None) == "matplotlib.pyplot":
        return figure.gcf()
    owner = getattr(figure, "figure", None)
    if type(figure).__module__.startswith("matplotlib.") and is_mpl_figure(owner):
        return owner
    raise InvalidInputError(
        f"{arg} must be a matplotlib figure (or matplotlib.pyplot); got {type(figure).__name__}"
    )


def close_figure(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def figures_batch(figures: list[Any], close: bool) -> Any:
    """Figures drawn to pixels on this thread, stacked as an NHWC batch."""
    import numpy as np

    from polytrack.media.images import decode_png, figure_png

    if not figures:
        raise InvalidInputError("data is an empty list: no figure to draw")
    drawn = [
        decode_png([figure_png(mpl_figure(figure, "data"), close=close)]) for figure in figures
    ]
    shapes = sorted({image.shape for image in drawn})
    if len(shapes) > 1:
        raise InvalidInputError(
            f"data holds figures of different sizes {shapes}: a batch is of one size"
        )
    return np.stack(drawn)


def submit_mpl_plotly(
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
            warn_once(
                "tracking-mpl-plotly",
                f"{what}({name!r}): plotly cannot convert this matplotlib figure; it is "
                "kept drawn as an image instead",
                stacklevel=5,
            )
        run._submit_media(job, what)
    finally:
        if close:
            close_figure(figure)


def submit_curve(
    run: Run, what: str, name: str, x: Any, y: Any, step: int | None, kind: str, area: str,
    value: Any,
) -> None:  # fmt: skip
    """A curve computed already, its area (AUC, AP) as Polyaxon annotates it and in meta."""
    import numbers

    from polytrack.media.curves import curve_job
    from polytrack.media.jobs import check_name, check_step

    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    job = curve_job(
        check_name(name), as_numpy(x), as_numpy(y), check_step(step, run.step), kind=kind,
        annotation=annotation_text(value), meta={area: float(value)} if real else None,
    )  # fmt: skip
    run._submit_media(job, what)


def plotly_figure(figure: dict[str, Any] | list[Any]) -> Any:
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


def video_frames(data: Any) -> Any:
    """Polyaxon's 5-D (batch, time, channels, height, width) as frames (time, height,
    width, channels), the batch tiled into each frame: rows and columns of powers of
    two, the batch padded with black; other shapes as they are."""
    import numpy as np

    array = as_numpy(data)
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
    return tiled.transpose(2, 0, 4, 1, 5, 3).reshape(time, rows * height, columns * width, channels)


def read_gif(path: str, fps: float) -> tuple[Any, float]:
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


def audio_samples(data: Any) -> Any:
    """Samples squeezed, and clipped to [-1, 1] (int16 aside), as Polyaxon's processor
    does."""
    import numpy as np

    array = as_numpy(data)
    if not isinstance(array, np.ndarray):
        return array
    array = array.squeeze()
    if array.dtype.kind in "uib" and array.dtype != np.int16:
        array = array.astype(np.float64)  # Polyaxon's scale: [-1, 1] whatever the type
    if array.dtype.kind == "f" and array.size and np.nanmax(np.abs(array)) > 1:
        array = np.clip(array, -1.0, 1.0)
    return array


def read_wav(path: str) -> tuple[Any, int]:
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


def per_class(
    name: str, y_preds: Any, y_targets: Any, is_multi_class: bool
) -> list[tuple[str, Any, Any]]:
    """(curve name, scores, labels) per curve: one, or one per class against the rest
    ("<name>_<i>" for the i-th class of the sorted labels, as Polyaxon names them)."""
    import numpy as np

    scores, labels = as_numpy(y_preds), as_numpy(y_targets)
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
