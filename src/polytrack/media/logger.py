"""The run's media calls: what is checked on the caller's thread, handed to the encoder.

`Run` holds one `MediaLogger`, made by its first media call, and forwards every media
method to it: the run stays a thin facade, and the calls reach this module's functions
without an import statement per call. `image` has a hot path for the common case (a
uint8 HWC array under a name logged before, an int step): a few type checks, the copy,
and a tuple handed to the encoder, which makes the job on its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from polytrack.media.encoder import MediaEncoder, MediaJob
from polytrack.media.jobs import (
    check_caption,
    check_name,
    check_step,
    copied_image_job,
    image_job,
)

__all__ = ["MediaLogger"]


class MediaLogger:
    """Checks on the caller's thread, then the encoder (owned by the run, see there).

    Example:
        >>> media = MediaLogger(encoder, last_step=writer_last_step, max_side=2048,
        ...                     refused=run_after_finish)
        >>> media.image("samples", array, 3)
    """

    def __init__(
        self,
        encoder: MediaEncoder,
        *,
        last_step: Callable[[], int],
        max_side: int,
        refused: Callable[[str], object],
    ) -> None:
        self.encoder = encoder
        self._last_step = last_step
        self._max_side = max_side
        self._refused = refused  # warns once that the run took no more (it finished)
        self._names: set[str] = set()  # checked once: a loop logs the same few names
        self._submit_later = encoder.submit_later

    def step(self, step: object) -> int:
        """`step` checked, or the run's current step when None."""
        return check_step(step, self._last_step())

    def name(self, name: object) -> str:
        """`name` checked (once per name and run)."""
        if name not in self._names:
            self._names.add(check_name(name))
        return name  # type: ignore[return-value]

    def submit(self, job: MediaJob, what: str) -> None:
        """Queue `job`; after `finish()` warn once (as `what`) instead."""
        if not self.encoder.submit(job):
            self._refused(what)

    def image(
        self,
        name: str,
        data: Any,
        step: int | None = None,
        *,
        caption: str | None = None,
        dataformats: str | None = None,
        boxes: Any = None,
        what: str = "log_image",
    ) -> None:
        """`Run.log_image` (the run binds it as its own once media started), and, with
        `boxes`, `log_image_with_boxes`."""
        if (
            type(data) is np.ndarray
            and type(step) is int
            and step >= 0
            and caption is None
            and dataformats is None
            and boxes is None
            and name in self._names
            and data.dtype.char == "B"  # uint8
        ):
            shape = data.shape
            if len(shape) == 3 and shape[2] in (3, 4) and shape[0] and shape[1]:
                copy = data.copy()  # C order: the caller may change theirs once we return
                later = (copied_image_job, name, step, copy, time.time(), self._max_side)
                if not self._submit_later(copy.nbytes, later):
                    self._refused(what)
                return
        job = image_job(
            self.name(name),
            data,
            self.step(step),
            caption=check_caption(caption),
            dataformats=dataformats,
            max_side=self._max_side,
            boxes=boxes,
        )
        self.submit(job, what)
