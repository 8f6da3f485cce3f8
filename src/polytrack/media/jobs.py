"""What every media call checks on the caller's thread before its kind's own checks: the
name, the step and the caption; and the jobs of the simple kinds (images, histograms,
text, HTML). The other kinds build theirs in their modules (tables, figures, sound,
curves)."""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Final

import numpy as np

from polytrack._text import has_surrogates, safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media import histograms, images
from polytrack.media.encoder import Encoded, MediaJob

__all__ = [
    "MAX_TEXT",
    "check_caption",
    "check_name",
    "check_step",
    "histogram_job",
    "image_job",
    "np_histogram_job",
    "text_job",
]

MAX_TEXT: Final = 16 * 1024 * 1024  # a text or HTML value: past this it is a file, not media


def check_name(name: object) -> str:
    """A media name: like a metric key, 1 to 250 characters of text ("samples/val")."""
    if not isinstance(name, str) or not name or len(name) > 250:
        raise InvalidInputError(
            f"name must be a string of 1 to 250 characters; got {safe_repr(name)}"
        )
    if has_surrogates(name) or "\0" in name:
        raise InvalidInputError(f"name {name!r} holds a NUL or a lone surrogate, not text")
    return name


def check_step(step: object, last_step: int) -> int:
    """`step`, or the run's current step (the last logged, 0 before any) when None."""
    if step is None:
        return max(last_step, 0)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise InvalidInputError(f"step must be a non-negative int; got {safe_repr(step)}")
    return int(step)


def check_caption(caption: object, label: str = "caption") -> str | None:
    """A caption (or a curve's annotation: `label`): None or text of at most 4096
    characters."""
    if caption is None:
        return None
    if not isinstance(caption, str) or has_surrogates(caption) or len(caption) > 4096:
        raise InvalidInputError(
            f"{label} must be a string of at most 4096 characters; got {safe_repr(caption)}"
        )
    return caption


def image_job(
    name: str,
    data: Any,
    step: int,
    *,
    caption: str | None = None,
    dataformats: str | None = None,
    max_side: int = 0,
    boxes: Any = None,
) -> MediaJob:
    """An image or a batch of them (see `polytrack.media.images`)."""
    copy, layout, shape = images.prepare_image(data, dataformats=dataformats)
    return MediaJob(
        name=name,
        kind="image",
        step=step,
        encode=partial(images.encode_batch, copy, layout, max_side, boxes),
        has_fast=True,
        shape=shape,
        caption=caption,
        size=len(copy) if isinstance(copy, bytes) else copy.nbytes,
        logged_at=time.time(),
    )


def copied_image_job(
    name: str, step: int, copy: np.ndarray, logged_at: float, max_side: int
) -> MediaJob:
    """The job of an HWC uint8 image that `MediaLogger.image` copied and checked on the
    caller's thread: made here, on the encoder thread, to keep that call short."""
    height, width, channels = copy.shape
    return MediaJob(
        name=name,
        kind="image",
        step=step,
        encode=partial(images.encode_batch, copy, "HWC", max_side, None),
        has_fast=True,
        shape=(1, height, width, channels),
        size=copy.nbytes,
        logged_at=logged_at,
    )


def histogram_job(name: str, values: Any, step: int, *, bins: Any) -> MediaJob:
    """Binned here, on the caller's thread: the values are not kept."""
    edges, counts = histograms.bin_values(values, bins)
    return _histogram(name, step, edges, counts)


def np_histogram_job(name: str, values: Any, counts: Any, step: int) -> MediaJob:
    edges, counts_array = histograms.check_binned(values, counts)
    return _histogram(name, step, edges, counts_array)


def _histogram(name: str, step: int, edges: np.ndarray, counts: np.ndarray) -> MediaJob:
    return MediaJob(
        name=name,
        kind="histogram",
        step=step,
        encode=lambda: (histograms.encode(edges, counts), None, {}),
        shape=(int(counts.size),),
        meta={"min": float(edges[0]), "max": float(edges[-1]), "total": float(counts.sum())},
        size=edges.nbytes + counts.nbytes,
        logged_at=time.time(),
    )


def text_job(
    name: str, text: object, step: int, *, kind: str = "text", caption: str | None = None
) -> MediaJob:
    """A text ("text/plain") or an HTML document ("text/html"), kept as UTF-8."""
    arg = "html" if kind == "html" else "text"
    if not isinstance(text, str):
        raise InvalidInputError(f"{arg} must be a string; got {type(text).__name__}")
    if has_surrogates(text):
        raise InvalidInputError(f"{arg} holds a lone surrogate, which is not text")
    data = text.encode("utf-8")
    if len(data) > MAX_TEXT:
        raise InvalidInputError(
            f"{arg} is {len(data)} bytes, past {MAX_TEXT}: log it with log_artifact"
        )
    media_type = "text/html" if kind == "html" else "text/plain"
    return MediaJob(
        name=name,
        kind=kind,
        step=step,
        encode=lambda: ([Encoded(data, media_type)], None, {}),
        shape=(len(text),),
        caption=caption,
        size=len(data),
        logged_at=time.time(),
    )
