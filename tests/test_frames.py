"""`search_runs()` is `runs()` as a DataFrame, column for column; `history_frame()` aligns
series by step; without pandas, the error names the extra."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import polytrack

pd = pytest.importorskip("pandas")

QUIET = {"git": False, "system": False, "environment": False, "hardware": False}


def _runs(home: Path) -> None:
    a = polytrack.init(
        project="p",
        name="a",
        params={"lr": 0.1, "opt": "sgd"},
        tags=["x"],
        dir=home,
        capture=QUIET,
        user="ana",
    )
    a.log_metrics({"loss": 3.0, "acc": 0.1}, step=0)
    a.log_metrics({"loss": 1.0, "acc": 0.5}, step=1)
    a.log_metrics({"loss": 2.0}, step=2)
    a.finish()
    b = polytrack.init(project="p", name="b", params={"lr": 0.2}, dir=home, capture=QUIET)
    b.log_metrics({"loss": 4.0}, step=0)
    b.finish("failed")


def test_search_runs_matches_runs_column_for_column(home: Path) -> None:
    """One row per run in runs()' order, MLflow's column names, values equal runs()'."""
    _runs(home)
    found = polytrack.runs(home=home, order_by="name")
    frame = polytrack.search_runs(home=home, order_by="name")
    assert list(frame.columns) == [
        "run_id",
        "project",
        "name",
        "status",
        "start_time",
        "end_time",
        "user",
        "host",
        "tags",
        "params.lr",
        "params.opt",
        "metrics.acc",
        "metrics.loss",
    ]
    assert list(frame["run_id"]) == [r.id for r in found]
    assert list(frame["status"]) == ["succeeded", "failed"]
    assert list(frame["params.lr"]) == [0.1, 0.2]
    assert frame["params.opt"][0] == "sgd" and pd.isna(frame["params.opt"][1])
    assert list(frame["metrics.loss"]) == [r.metrics["loss"].last for r in found]
    assert frame["metrics.acc"][0] == 0.5 and math.isnan(frame["metrics.acc"][1])
    assert list(frame["tags"]) == [["x"], []]
    assert frame["user"][0] == "ana"
    assert str(frame["start_time"].dt.tz) == "UTC"
    assert frame["start_time"][0].timestamp() == pytest.approx(found[0].created_at)
    assert frame["end_time"][1].timestamp() == pytest.approx(found[1].finished_at)


def test_search_runs_filters_and_adds_min_max_on_request(home: Path) -> None:
    """`where` filters as in runs(); `summaries=True` adds metrics.<k>.min/.max."""
    _runs(home)
    frame = polytrack.search_runs(home=home, where="params.lr < 0.15", summaries=True)
    assert list(frame["name"]) == ["a"]
    assert frame["metrics.loss.min"][0] == 1.0 and frame["metrics.loss.max"][0] == 3.0
    assert frame["metrics.loss"][0] == 2.0
    empty = polytrack.search_runs(home=home, where="params.lr > 5")
    assert len(empty) == 0 and "run_id" in empty.columns


def test_history_frame_aligns_series_by_step(home: Path) -> None:
    """Keys logged at different steps share one step index, NaN where absent; a step
    logged twice keeps its last point; times on request, as UTC datetimes."""
    run = polytrack.init(dir=home, capture=QUIET)
    run.log_metrics({"loss": 3.0}, step=0)
    run.log_metrics({"loss": 2.0, "acc": 0.4}, step=2)
    run.log_metrics({"acc": 0.6}, step=2)
    run.log_metrics({"acc": 0.7}, step=5)
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    frame = view.history_frame(["loss", "acc"])
    assert frame.index.name == "step" and list(frame.index) == [0, 2, 5]
    assert list(frame.columns) == ["loss", "acc"]
    assert frame.loc[2, "acc"] == 0.6 and frame.loc[2, "loss"] == 2.0
    assert math.isnan(frame.loc[5, "loss"]) and math.isnan(frame.loc[0, "acc"])
    timed = view.history_frame("acc", with_time=True)
    assert list(timed.columns) == ["acc", "acc.time"]
    assert str(timed["acc.time"].dt.tz) == "UTC"


def test_without_pandas_the_error_names_the_extra(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pandas is missing, both calls raise an ImportError naming `polytrack[pandas]`."""
    _runs(home)
    view = polytrack.runs(home=home)[0]
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"polytrack\[pandas\]"):
        polytrack.search_runs(home=home)
    with pytest.raises(ImportError, match=r"polytrack\[pandas\]"):
        view.history_frame("loss")
