"""Downsampling a metric series for a chart: min and max per bucket, with NaN and ±inf kept.

A chart a few thousand pixels wide cannot show 10^6 points, and sending them would take
seconds. Averaging would hide spikes, and LTTB may drop a lone divergence; keeping each
bucket's minimum and maximum draws the same envelope as the full series at that width
(the global min and max always survive), with the first and last points kept so the line
spans the whole range. A non-finite value is never hidden: every step whose value is
NaN, +inf or -inf is listed, and each bucket that holds one keeps its first, so the chart
shows a gap there too.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from attrs import frozen

__all__ = ["Downsampled", "downsample", "nonfinite_steps"]


@frozen
class Downsampled:
    """The points kept of a series, in step order, and what the whole series held."""

    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]  # may hold NaN and ±inf: the caller sends them as null
    times: npt.NDArray[np.float64]
    total: int  # points in the whole series
    nonfinite: dict[str, list[int]]  # "nan" / "posinf" / "neginf" -> steps, whole series

    @property
    def downsampled(self) -> bool:
        return len(self.steps) < self.total


def nonfinite_steps(
    steps: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> dict[str, list[int]]:
    """The steps whose value is NaN, +inf and -inf, as plain lists."""
    return {
        "nan": steps[np.isnan(values)].tolist(),
        "posinf": steps[np.isposinf(values)].tolist(),
        "neginf": steps[np.isneginf(values)].tolist(),
    }


def downsample(
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    times: npt.NDArray[np.float64],
    points: int,
) -> Downsampled:
    """About `points` points of the series (at most `3 * (points // 2) + 2`): the
    minimum and maximum finite value of each of `points // 2` buckets of consecutive
    points, the first non-finite point of each bucket that has one, and the first and
    last points. A series of `points` points or fewer comes back whole.

    The arrays are parallel and in step order (as `RunView.history` returns them).
    """
    if points < 2:
        raise ValueError(f"points must be 2 or more; got {points}")
    total = len(steps)
    nonfinite = nonfinite_steps(steps, values)
    if total <= points:
        return Downsampled(steps, values, times, total, nonfinite)
    keep = _kept_indices(values, points // 2)
    return Downsampled(steps[keep], values[keep], times[keep], total, nonfinite)


def _kept_indices(values: npt.NDArray[np.float64], buckets: int) -> npt.NDArray[np.intp]:
    """Indices of the points to keep, sorted: per bucket the finite min and max and the
    first non-finite point, and the first and last points overall.

    Buckets are equal runs of `width` points (the last one padded), so that one reshape
    turns the per-bucket argmin/argmax into a single vectorised call each.
    """
    total = len(values)
    width = -(-total // buckets)  # ceil: buckets * width >= total
    size = buckets * width
    finite = np.isfinite(values)
    rows = np.arange(buckets)
    base = rows * width

    low = np.full(size, np.inf)
    low[:total] = np.where(finite, values, np.inf)
    low_rows = low.reshape(buckets, width)
    arg_min = low_rows.argmin(axis=1)
    # A bucket without a finite value (all padding, or all NaN/inf) keeps no min or max.
    has_finite = np.isfinite(low_rows[rows, arg_min])
    minima = (base + arg_min)[has_finite]

    high = np.full(size, -np.inf)
    high[:total] = np.where(finite, values, -np.inf)
    arg_max = high.reshape(buckets, width).argmax(axis=1)
    maxima = (base + arg_max)[has_finite]

    bad = np.zeros(size, dtype=bool)
    bad[:total] = ~finite
    bad_rows = bad.reshape(buckets, width)
    has_bad = bad_rows.any(axis=1)
    first_bad = (base + bad_rows.argmax(axis=1))[has_bad]

    ends = np.array([0, total - 1], dtype=np.intp)
    return np.unique(np.concatenate([ends, minima, maxima, first_bad]).astype(np.intp))
