"""The embedded store: summaries, chunked series index, refresh and rebuild."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

import polytrack
from polytrack.store.journal import BLOCK
from polytrack.store.local import INDEX_FILE, LocalStore
from polytrack.store.reader import CHUNK

pytestmark = pytest.mark.usefixtures("hot_path")


def test_summary_last_is_at_the_highest_step(home: Path) -> None:
    """`last` is the value at the highest step, the latest logged among equal steps."""
    with polytrack.init(dir=home) as run:
        run.log_metrics({"m": 1.0}, step=5)
        run.log_metrics({"m": 2.0}, step=9)
        run.log_metrics({"m": 3.0}, step=2)  # logged later, but an earlier step
        run.log_metrics({"m": 4.0}, step=9)  # same highest step, logged later: wins
    summary = polytrack.get_run(run.id, home=home).metrics["m"]
    assert (summary.last, summary.last_step, summary.count) == (4.0, 9, 4)
    assert (summary.min, summary.max) == (1.0, 4.0)


def test_all_nan_series_summary(home: Path) -> None:
    """A series of only NaN has NaN summaries and is still counted."""
    with polytrack.init(dir=home) as run:
        for step in range(3):
            run.log_metrics({"m": math.nan}, step=step)
    summary = polytrack.get_run(run.id, home=home).metrics["m"]
    assert summary.count == 3 and math.isnan(summary.min) and math.isnan(summary.last)


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        ([math.nan, math.inf], math.inf, math.inf),
        ([math.nan, -math.inf], -math.inf, -math.inf),
        ([math.nan, math.inf, -math.inf, 2.0], -math.inf, math.inf),
        ([math.inf, math.nan, 1.0], 1.0, math.inf),
    ],
    ids=["nan and inf", "nan and -inf", "both infinities", "inf, nan, 1"],
)
def test_min_and_max_ignore_nan_beside_infinities(
    home: Path, values: list[float], low: float, high: float
) -> None:
    """NaN is ignored, as documented, also when the other values are infinite: they used
    to read as "no value" and report NaN."""
    with polytrack.init(dir=home) as run:
        for value in values:
            run.log_metrics({"m": value})
    (view,) = polytrack.runs(home=home)
    assert (view.metrics["m"].min, view.metrics["m"].max) == (low, high)
    assert polytrack.runs(home=home, where=f"max(metrics.m) >= {min(high, 1e308)}")


def test_series_are_indexed_in_chunks_not_rows(home: Path) -> None:
    """The index holds one chunk row per CHUNK points with count, step range and extremes."""
    points = 3 * CHUNK + 10
    with polytrack.init(dir=home, capture={"system": False}) as run:
        for step in range(points):
            run.log_metrics({"m": float(step)}, step=step)
    polytrack.runs(home=home)  # indexes
    with sqlite3.connect(home / INDEX_FILE) as db:
        rows = db.execute(
            "SELECT count, step_min, step_max, min, max FROM metric_chunks WHERE run_id = ?"
            " ORDER BY chunk",
            (run.id,),
        ).fetchall()
    assert sum(r[0] for r in rows) == points
    assert len(rows) < points / 1000
    assert rows[0][1] == 0 and max(r[2] for r in rows) == points - 1
    assert max(r[4] for r in rows) == float(points - 1)


def test_refresh_sees_a_resumed_run(home: Path) -> None:
    """A finished, indexed run that is resumed is indexed again with its new points."""
    with polytrack.init(dir=home, project="p") as run:
        run.log_metrics({"m": 1.0})
    assert polytrack.runs(project="p", home=home)[0].metrics["m"].count == 1
    with polytrack.init(dir=home, resume=run.id) as again:
        again.log_metrics({"m": 2.0})
    assert polytrack.runs(project="p", home=home)[0].metrics["m"].count == 2


def test_rebuild_restores_a_damaged_index(home: Path) -> None:
    """`rebuild` re-reads every run, even after the index lost rows."""
    for lr in (0.1, 0.2):
        with polytrack.init(dir=home, params={"lr": lr}) as run:
            run.log_metrics({"m": lr})
    polytrack.runs(home=home)
    with sqlite3.connect(home / INDEX_FILE) as db:
        db.execute("DELETE FROM metrics")
    with LocalStore.open(home) as store:
        assert store.query(where="exists(metrics.m)") == []  # the cache is wrong...
        assert store.rebuild() == 2  # ...until rebuilt
        assert len(store.query(where="metrics.m > 0")) == 2


def test_deleted_run_directory_leaves_the_index(home: Path) -> None:
    """Removing a run's directory removes it from listings."""
    import shutil

    with polytrack.init(dir=home) as run:
        pass
    assert len(polytrack.runs(home=home)) == 1
    shutil.rmtree(run.dir)
    assert polytrack.runs(home=home) == []


def test_first_reader_creates_the_index(home: Path) -> None:
    """Runs finished without indexing are indexed, persistently, by the first reader."""
    settings = polytrack.Settings.from_env().evolve(home=home, index_on_finish=False)
    with polytrack.init(settings=settings):
        pass
    assert not (home / INDEX_FILE).exists()
    assert len(polytrack.runs(home=home)) == 1
    assert (home / INDEX_FILE).exists()


def test_point_times_are_wall_clock_also_in_spare_segments(home: Path) -> None:
    """Each point's time is when it was logged, also in a segment mapped ahead of need."""
    import time

    settings = polytrack.Settings.from_env().evolve(home=home, fsync_interval=0.05)
    with polytrack.init(settings=settings) as run:
        capacity = (settings.first_segment_bytes - 64) // 24
        for step in range(capacity * 2 // 3):  # past half: the flusher maps a spare
            run.log_metrics({"m": 1.0}, step=step)
        time.sleep(0.6)  # the spare ages before it is used
        before = time.time()
        for step in range(capacity * 2 // 3, capacity * 2):
            run.log_metrics({"m": 1.0}, step=step)
        after = time.time()
    steps, _, times = polytrack.get_run(run.id, home=home).history("m", with_time=True)
    late = times[steps >= capacity * 2 // 3]
    assert late.min() >= before - 0.05 and late.max() <= after + 0.05
    assert len(list(run.dir.glob("points-000-000-*.seg"))) >= 2


def test_sealed_segments_of_a_live_run_are_read_once(home: Path) -> None:
    """A live run's full (sealed) segments are summarized once; later reads skip them."""
    # Without the sampler: its points would share the first segment with the test's.
    settings = polytrack.Settings.from_env().evolve(
        home=home, fsync_interval=0.05, capture_system=False
    )
    run = polytrack.init(settings=settings)
    capacity = (settings.first_segment_bytes - 64) // 24
    for step in range(capacity * 4):  # fills and seals a few segments
        run.log_metrics({"m": 1.0}, step=step)
    import time

    time.sleep(1.5)  # the flusher seals retired segments (after a grace period in Python)
    assert polytrack.runs(home=home)[0].metrics["m"].count == capacity * 4
    first = sorted(run.dir.glob("points-000-000-*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[64:88] = bytes(24)  # wipe its first record behind the reader's back
    first.write_bytes(bytes(data))
    run.log_metrics({"m": 2.0}, step=capacity * 4)
    # The sealed segment's totals come from the index; only open segments are read.
    assert polytrack.runs(home=home)[0].metrics["m"].count == capacity * 4 + 1
    run.finish()
    with LocalStore.open(home) as store:
        store.rebuild()  # re-reads everything: the wiped record's block fails its checksum
        first_block = (BLOCK - 64) // 24  # the records in bytes 64-4096, all dropped
        assert store.get(run.id).metrics["m"].count == capacity * 4 + 1 - first_block
