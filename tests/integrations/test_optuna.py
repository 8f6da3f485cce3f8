"""Optuna studies on a real optuna: each trial a run of the study, with its params,
reported values, final value and a status from its state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import polytrack  # noqa: E402
from polytrack.integrations.optuna import PolytrackCallback  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def _objective(trial: Any) -> float:
    x = trial.suggest_float("x", -10, 10)
    if trial.number == 2:
        raise ValueError("boom")
    for step in range(3):
        trial.report((x - 2) ** 2 + 3 - step, step)
    if trial.number == 1:
        raise optuna.TrialPruned()
    return float((x - 2) ** 2)


def _by_name() -> dict[str, Any]:
    return {run.name: run for run in polytrack.runs()}


@pytest.mark.parametrize("decorated", [False, True], ids=["callback", "decorator"])
def test_each_trial_is_a_run_of_the_study(decorated: bool) -> None:
    """Trials become runs named `<study>-<n>`, tagged with the study and its run, with
    params, intermediate values at their steps, the value, and the state's status."""
    callback = PolytrackCallback(metric_name="loss")
    objective = callback.track_in_polytrack()(_objective) if decorated else _objective
    study = optuna.create_study(study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=4, callbacks=[callback], catch=(ValueError,))
    callback.finish()
    runs = _by_name()
    assert sorted(runs) == ["s", "s-0", "s-1", "s-2", "s-3"]
    study_run = runs["s"]
    assert set(study_run.tags) == {"study", "optuna"}
    assert study_run.status == "succeeded"
    statuses = {name: runs[name].status for name in ("s-0", "s-1", "s-2", "s-3")}
    assert statuses == {"s-0": "succeeded", "s-1": "stopped", "s-2": "failed", "s-3": "succeeded"}
    # The decorator saw the exception; optuna keeps no reason a callback could read.
    assert runs["s-2"].message == ("ValueError: boom" if decorated else "the trial failed")
    for trial in study.trials:
        run = runs[f"s-{trial.number}"]
        assert set(run.tags) == {
            "optuna", "optuna-study:s", f"study:{study_run.id}", f"parent:{study_run.id}"
        }  # fmt: skip
        assert run.params == {"x": trial.params["x"]}
        steps, values = run.history("intermediate_value")
        assert dict(zip(steps.tolist(), values.tolist(), strict=True)) == trial.intermediate_values
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert run.history("loss")[1].tolist() == [trial.value]
            assert run.outputs["loss"] == trial.value
    assert study_run.outputs["best_trial"] == study.best_trial.number
    assert study_run.outputs["best_params"] == study.best_params
    assert study_run.history("best_value")[1][-1] == study.best_value


def test_the_decorated_trials_run_is_current_while_the_objective_runs() -> None:
    """Inside a decorated objective, polytrack.log_metrics records into the trial's run;
    after the study, the user's own run, which is the study's, is current again."""
    callback = PolytrackCallback()

    @callback.track_in_polytrack()
    def objective(trial: Any) -> float:
        polytrack.log_metrics({"inside": trial.number})
        return float(trial.suggest_int("n", 0, 3))

    with polytrack.init(name="mine") as mine:
        study = optuna.create_study(study_name="t")
        study.optimize(objective, n_trials=2, callbacks=[callback])
        assert polytrack.current_run() is mine
        callback.finish()  # not the callback's: left to its `with`
        assert not mine.finished
    runs = _by_name()
    assert runs["t-1"].metrics["inside"].last == 1
    assert f"study:{mine.id}" in runs["t-0"].tags
    assert "inside" not in runs["mine"].metrics
    assert runs["mine"].outputs["best_trial"] in (0, 1)


def test_an_uncaught_failure_finishes_the_decorated_run_failed() -> None:
    """An exception optuna raises past the callbacks still ends the trial's run, failed."""
    callback = PolytrackCallback()

    @callback.track_in_polytrack()
    def objective(trial: Any) -> float:
        trial.suggest_float("x", 0, 1)
        raise RuntimeError("bad data")

    study = optuna.create_study(study_name="u")
    with pytest.raises(RuntimeError, match="bad data"):
        study.optimize(objective, n_trials=1, callbacks=[callback])
    callback.finish()
    runs = _by_name()
    assert runs["u-0"].status == "failed"
    assert runs["u-0"].message == "RuntimeError: bad data"
    assert "x" in runs["u-0"].params


def test_a_multi_objective_study_names_each_value() -> None:
    """Two objectives are recorded under the two names given."""
    callback = PolytrackCallback(metric_name=["a", "b"])
    study = optuna.create_study(study_name="m", directions=["minimize", "maximize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 2.0), n_trials=1, callbacks=[callback])
    callback.finish()
    run = _by_name()["m-0"]
    assert run.history("a")[1].tolist() == list(study.trials[0].values[:1])
    assert run.history("b")[1].tolist() == [2.0]


def test_trials_go_to_the_store_and_project_of_the_study_run(tmp_path: Path) -> None:
    """A study run recording elsewhere (another home, a project) takes its trials along."""
    callback = PolytrackCallback()
    elsewhere = tmp_path / "elsewhere"
    with polytrack.init(project="p", name="mine", dir=elsewhere):
        study = optuna.create_study(study_name="v")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[callback])
    found = {run.name: (run.project, run.status) for run in polytrack.runs(home=elsewhere)}
    assert found == {n: ("p", "succeeded") for n in ("mine", "v-0", "v-1")}
    assert polytrack.runs() == []  # nothing in the default home


def test_a_disabled_study_run_records_no_trial() -> None:
    """Under a disabled run, the trials' runs are disabled too: nothing is recorded."""
    callback = PolytrackCallback()
    objective = callback.track_in_polytrack()(_objective)
    with polytrack.init(mode="disabled") as run:
        study = optuna.create_study(study_name="d")
        study.optimize(objective, n_trials=3, callbacks=[callback], catch=(ValueError,))
        assert polytrack.current_run() is run
    assert polytrack.runs() == []
