"""Runs' metrics drawn with matplotlib (the `plot` extra): `polytrack.plot(runs, key)`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from polytrack import _display

__all__ = ["plot"]


class _Readable(Protocol):
    """A recorded run (a `RunView`): its name, id and series."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...

    def history(
        self, key: str, *, with_time: bool = False
    ) -> (
        tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
        | tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    ): ...


def plot(runs: Iterable[_Readable], key: str, *, ax: Any | None = None) -> Any:
    """Draw metric `key` of each run against the step, one line per run, with
    matplotlib (the `plot` extra); returns the Axes. A run without the key draws nothing.

    Args:
        runs: recorded runs (`polytrack.runs()`, or `RunView`s).
        key: the metric.
        ax: the Axes to draw on; default a new figure's.

    Raises:
        ImportError: matplotlib is not installed (names the extra).
        InvalidInputError: `key` is not a non-empty string.

    Example:
        >>> polytrack.plot(polytrack.runs(project="mnist"), "loss")
    """
    _display.require_matplotlib()
    lines = []
    for run in runs:
        steps, values = run.history(key)[:2]
        lines.append((f"{run.name} ({run.id})", steps, values))
    return _display.draw(lines, key, ax)
