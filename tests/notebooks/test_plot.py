"""`run.plot(key)` and `polytrack.plot(runs, key)` draw with matplotlib (the `plot` extra,
installed by the notebooks tox env)."""

from __future__ import annotations

from pathlib import Path

import pytest

import polytrack

matplotlib = pytest.importorskip("matplotlib", reason="the notebooks tox env installs it")
matplotlib.use("Agg")  # no display on CI
plt = pytest.importorskip("matplotlib.pyplot")

QUIET = {"git": False, "system": False, "environment": False, "hardware": False}


def test_run_and_runs_plot_their_series(home: Path) -> None:
    """A live run, its RunView and a list of runs draw one line per run, its points the
    series' steps and values, on the Axes they return (or the one given)."""
    first = polytrack.init(project="p", name="first", dir=home, capture=QUIET)
    assert isinstance(first, polytrack.Run)
    for step, loss in enumerate([3.0, 2.0, 1.0]):
        first.log_metrics({"loss": loss}, step=step * 10)
    ax = first.plot("loss")
    ((xs, ys),) = [line.get_data() for line in ax.get_lines()]
    assert list(xs) == [0, 10, 20] and list(ys) == [3.0, 2.0, 1.0]
    assert ax.get_ylabel() == "loss" and ax.get_xlabel() == "step"
    first.finish()
    second = polytrack.init(project="p", name="second", dir=home, capture=QUIET)
    second.log_metrics({"loss": 5.0}, step=0)
    second.finish()
    ax = polytrack.plot(polytrack.runs(home=home), "loss")
    labels = sorted(line.get_label() for line in ax.get_lines())
    assert labels == [f"first ({first.id})", f"second ({second.id})"]
    _, given = plt.subplots()
    assert polytrack.get_run(first.id, home=home).plot("loss", ax=given) is given
    plt.close("all")
