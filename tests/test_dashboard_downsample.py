"""Min/max downsampling for charts: counts, extremes kept, non-finite values never hidden."""

from __future__ import annotations

import numpy as np
import pytest

from polytrack.dashboard.downsample import downsample


def _series(values: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    array = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(array), dtype=np.int64) * 10
    return steps, array, 1000.0 + steps.astype(np.float64)


def test_short_series_comes_back_whole() -> None:
    steps, values, times = _series([3.0, np.nan, 1.0])
    kept = downsample(steps, values, times, 3)
    assert not kept.downsampled and kept.total == 3
    assert kept.steps.tolist() == [0, 10, 20]
    assert kept.nonfinite == {"nan": [10], "posinf": [], "neginf": []}


def test_min_and_max_of_each_bucket_plus_the_ends() -> None:
    # 12 points, 3 buckets of 4 (points=6): each bucket's min and max, and both ends.
    values = [5, 1, 9, 4, 7, 8, 2, 6, 3, 0, 11, 10]
    steps, array, times = _series(values)
    kept = downsample(steps, array, times, 6)
    assert kept.downsampled and kept.total == 12
    # bucket 0: min 1 (i1), max 9 (i2); bucket 1: min 2 (i6), max 8 (i5);
    # bucket 2: min 0 (i9), max 11 (i10); ends: i0, i11.
    assert kept.steps.tolist() == [i * 10 for i in (0, 1, 2, 5, 6, 9, 10, 11)]
    assert kept.values.tolist() == [5, 1, 9, 8, 2, 0, 11, 10]
    assert kept.times.tolist() == [1000.0 + s for s in kept.steps.tolist()]


def test_uneven_last_bucket_and_counts() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=100_003)
    steps, array, times = _series(values)
    kept = downsample(steps, array, times, 1000)
    assert 500 <= len(kept.steps) <= 3 * 500 + 2
    assert np.all(np.diff(kept.steps) > 0)  # sorted, no point twice
    assert kept.steps[0] == 0 and kept.steps[-1] == steps[-1]
    assert kept.values.min() == values.min() and kept.values.max() == values.max()


@pytest.mark.parametrize("where", [0, 1, 499, 500, 99_999])
def test_global_extremes_survive_anywhere(where: int) -> None:
    values = np.linspace(0.0, 1.0, 100_000)
    values[where] = -5.0
    values[(where + 777) % 100_000] = 9.0
    steps, array, times = _series(values)
    kept = downsample(steps, array, times, 200)
    assert -5.0 in kept.values.tolist() and 9.0 in kept.values.tolist()


def test_nonfinite_steps_are_all_reported_and_shown() -> None:
    values = np.ones(10_000)
    values[[10, 20, 5000]] = np.nan
    values[[30, 7000]] = np.inf
    values[9000] = -np.inf
    steps, array, times = _series(values)
    kept = downsample(steps, array, times, 100)
    assert kept.nonfinite == {"nan": [100, 200, 50000], "posinf": [300, 70000], "neginf": [90000]}
    shown = kept.steps.tolist()
    # each bucket (of 200 points) holding one keeps its first: gaps stay visible
    for step in (100, 50000, 70000, 90000):
        assert step in shown
    assert 300 not in shown  # the same bucket as step 100 shows its gap already


def test_an_all_nan_series() -> None:
    steps, array, times = _series([np.nan] * 50)
    kept = downsample(steps, array, times, 10)
    assert kept.nonfinite["nan"] == steps.tolist()
    assert np.isnan(kept.values).all() and kept.steps[0] == 0 and kept.steps[-1] == 490


def test_points_must_be_two_or_more() -> None:
    steps, array, times = _series([1.0, 2.0])
    with pytest.raises(ValueError, match="points"):
        downsample(steps, array, times, 1)


def test_empty_series() -> None:
    steps, array, times = _series([])
    kept = downsample(steps, array, times, 10)
    assert kept.total == 0 and kept.steps.tolist() == [] and not kept.downsampled
