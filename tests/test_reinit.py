"""`init()` while a run is current: the one rule (`reinit`), and an empty run replaced by a
new one is not left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

import polytrack
from polytrack import _state

QUIET = {"git": False, "system": False, "environment": False, "hardware": False}


def test_finish_previous_deletes_a_run_that_recorded_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running an init cell: the first run, with only init()'s params and snapshot,
    is finished and deleted, with a one-line notice naming it."""
    first = polytrack.init(dir=home, params={"lr": 0.1}, tags=["a"], capture=QUIET)
    second = polytrack.init(dir=home, params={"lr": 0.1}, capture=QUIET)
    notice = capsys.readouterr().err
    assert f"replaces run {first.id}" in notice and "deleted it" in notice
    assert notice.count("\n") == 1
    assert not first.dir.exists()
    second.log_metrics({"loss": 1.0}, step=0)
    second.finish()
    assert [r.id for r in polytrack.runs(home=home)] == [second.id]


@pytest.mark.parametrize(
    "record",
    [
        lambda run: run.log_metrics({"loss": 0.5}, step=0),
        lambda run: run.log_params({"extra": 1}),
        lambda run: run.log_tags("later"),
        lambda run: run.log_outputs(acc=0.9),
    ],
    ids=["metric", "params", "tags", "outputs"],
)
def test_finish_previous_keeps_a_run_that_recorded_something(
    home: Path, capsys: pytest.CaptureFixture[str], record: object
) -> None:
    """A replaced run that recorded anything after init() stays, succeeded."""
    first = polytrack.init(dir=home, params={"lr": 0.1}, capture=QUIET)
    record(first)  # type: ignore[operator]
    second = polytrack.init(dir=home, capture=QUIET)
    assert "finished it: succeeded" in capsys.readouterr().err
    second.finish()
    statuses = {r.id: r.status for r in polytrack.runs(home=home)}
    assert statuses[first.id] == "succeeded"


def test_return_previous_returns_the_current_run(home: Path) -> None:
    """reinit="return_previous" hands back the current run and starts nothing."""
    first = polytrack.init(dir=home, capture=QUIET)
    again = polytrack.init(dir=home, name="ignored", reinit="return_previous")
    assert again is first and first.status == "running"
    first.finish()


def test_create_new_leaves_the_previous_run_recording(home: Path) -> None:
    """reinit="create_new" starts a second run; the first records on until finished."""
    first = polytrack.init(dir=home, capture=QUIET)
    second = polytrack.init(dir=home, capture=QUIET, reinit="create_new")
    assert polytrack.current_run() is second and first.status == "running"
    first.log_metrics({"loss": 1.0}, step=0)
    second.finish()
    first.finish()
    assert len(polytrack.runs(home=home)) == 2


def test_a_resumed_run_is_never_deleted(home: Path) -> None:
    """A replaced run that continues an earlier one keeps its files, however empty."""
    first = polytrack.init(dir=home, capture=QUIET)
    first.finish()
    resumed = polytrack.init(dir=home, resume=first.id, capture=QUIET)
    polytrack.init(dir=home, capture=QUIET)
    assert resumed.dir.exists()


def test_bad_reinit_is_refused_and_changes_nothing(home: Path) -> None:
    """An unknown reinit is an error naming the choices; the current run goes on."""
    first = polytrack.init(dir=home, capture=QUIET)
    with pytest.raises(polytrack.InvalidInputError, match="reinit must be one of"):
        polytrack.init(dir=home, reinit="replace")
    assert _state.current is first and first.status == "running"
    first.finish()
