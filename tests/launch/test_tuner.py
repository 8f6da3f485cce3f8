"""Tuner matrices (hyperband, bayes, hyperopt) driven by Optuna: the space mapping, the
checks, and the controller over trials that end at once (`Toy`, a real launcher and
reader kept in memory). Real processes and the cluster: test_tuner_runs.py."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from polytrack import spec
from polytrack.errors import UnsupportedMatrixError
from polytrack.launch.plan import make_plan
from polytrack.launch.tuner import (
    StudyPlan,
    TrialRequest,
    hyperband_trials,
    plan_study,
    run_study,
)
from polytrack.launch.tuner_space import dimensions
from polytrack.spec import matrix as m
from polytrack.spec.policies import FailureEarlyStopping, MetricEarlyStopping

pytest.importorskip("optuna")


class _Ended:
    """A trial that ended as soon as it started."""

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        self.stops: list[str] = []

    def poll(self) -> str | None:
        return self.status

    def stop(self, message: str) -> None:
        self.stops.append(message)


class Toy:
    """Trials that end at once, with `objective(params)` as their metric `loss` (or a
    failure where `fails(params)`): a launcher and a reader at once."""

    def __init__(
        self,
        objective: Callable[[Mapping[str, Any]], float],
        fails: Callable[[Mapping[str, Any]], bool] = lambda params: False,
    ) -> None:
        self.objective = objective
        self.fails = fails
        self.asked: list[dict[str, Any]] = []
        self.values: dict[str, float] = {}

    def __call__(self, request: TrialRequest) -> _Ended:
        params = dict(request.params)
        self.asked.append(params)
        run_id = f"run-{request.number}"
        if self.fails(params):
            return _Ended(run_id, "failed")
        self.values[run_id] = self.objective(params)
        return _Ended(run_id, "succeeded")

    def points(self, run_id: str, metric: str) -> Sequence[tuple[int, float]]:
        return [(1, self.values[run_id])] if run_id in self.values else []

    def value(self, run_id: str, metric: str) -> float | None:
        return self.values.get(run_id)


def _parabola(params: Mapping[str, Any]) -> float:
    return (params["x"] - 0.3) ** 2 + (params["y"] - 2) ** 2


_SPACE = {
    "x": m.HpUniform(m.DistValue(low=-2, high=2)),
    "y": m.HpQUniform(m.QDistValue(low=-10, high=10, q=0.5)),
}
_LOSS = m.OptimizationMetric(name="loss", optimization="minimize")


def _study(matrix: m.Matrix, **kwargs: Any) -> tuple[StudyPlan, Toy]:
    toy = Toy(_parabola, **kwargs)
    return plan_study(matrix), toy


def _run(plan: StudyPlan, toy: Toy) -> Any:
    return run_study(plan, launch=toy, read=toy, poll_interval=0.001)


# -- the space ---------------------------------------------------------------------------


def _decoded(param: m.HpParam, sampled: Any) -> Any:
    (dimension,) = dimensions({"p": param})
    assert dimension.distribution._contains(dimension.distribution.to_internal_repr(sampled))
    return dimension.decode(sampled)


def test_discrete_spaces_decode_to_their_values() -> None:
    assert _decoded(m.HpChoice(value=([1, 2], {"a": 1}, True)), 1) == {"a": 1}
    assert _decoded(m.HpRange(m.RangeValue(2, 11, 3)), 8) == 8  # ints: the value itself
    assert _decoded(m.HpRange(m.RangeValue(0, 0.4, 0.1)), 3) == 0.3  # floats: by index
    assert _decoded(m.HpGeomSpace(m.SpaceValue(1, 8, 4)), 2) == 4.0
    assert _decoded(m.HpLogSpace(m.LogSpaceValue(0, 2, 3)), 2) == 100.0


def test_distributions_keep_their_law() -> None:
    (loguniform,) = dimensions({"p": m.HpLogUniform(m.DistValue(low=-3, high=1))})
    assert loguniform.distribution.log
    assert math.isclose(loguniform.distribution.low, math.exp(-3))
    assert _decoded(m.HpQUniform(m.QDistValue(low=0.1, high=1, q=0.25)), 3) == 0.75
    assert _decoded(m.HpQUniform(m.QDistValue(low=1, high=10, q=2)), 3) == 6
    normal = m.HpNormal(m.NormalValue(loc=5, scale=2))
    assert _decoded(normal, 0.5) == pytest.approx(5)
    assert _decoded(normal, 0.8413447460685429) == pytest.approx(7)  # one deviation up
    assert _decoded(m.HpLogNormal(m.NormalValue(loc=0, scale=1)), 0.5) == pytest.approx(1)
    assert _decoded(m.HpQNormal(m.QNormalValue(loc=10, scale=3, q=4)), 0.5) == 8
    pchoice = m.HpPChoice(value=(("relu", 0.25), ("tanh", 0.75)))
    assert [_decoded(pchoice, q) for q in (0.0, 0.2, 0.3, 1.0)] == [
        "relu",
        "relu",
        "tanh",
        "tanh",
    ]


def test_a_quniform_without_a_multiple_of_q_is_refused() -> None:
    with pytest.raises(UnsupportedMatrixError, match=r"'p' \(quniform\): no multiple of q=1"):
        dimensions({"p": m.HpQUniform(m.QDistValue(low=0.2, high=0.8, q=1))})


# -- the checks --------------------------------------------------------------------------


def test_hyperband_trials_follow_its_brackets() -> None:
    assert hyperband_trials(9, 3) == 17  # brackets of 9, 5 and 3 configurations
    assert hyperband_trials(81, 3) == 143
    assert hyperband_trials(1, 3) == 1


def test_each_kind_maps_onto_optuna() -> None:
    hyperopt = plan_study(m.Hyperopt(params=_SPACE, num_runs=12, metric=_LOSS, algorithm="rand"))
    assert (hyperopt.sampler, hyperopt.trials, hyperopt.direction) == ("random", 12, "minimize")
    bayes = plan_study(
        m.Bayes(params=_SPACE, num_initial_runs=4, max_iterations=6, metric=_LOSS, seed=3)
    )
    assert (bayes.sampler, bayes.startup_trials, bayes.trials, bayes.seed) == ("tpe", 4, 10, 3)
    hyperband = plan_study(
        m.Hyperband(
            params=_SPACE,
            max_iterations=9,
            resource=m.OptimizationResource(name="epochs"),
            metric=_LOSS,
        ),
        seed=5,
        concurrency=2,
    )
    assert hyperband.resource == ("epochs", 9)
    assert (hyperband.trials, hyperband.eta, hyperband.seed, hyperband.concurrency) == (
        17,
        3,
        5,
        2,
    )


def _write(tmp_path: Path, matrix: str) -> Path:
    path = tmp_path / "tune.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1.1
            kind: operation
            matrix:
            {matrix}
            component:
              inputs:
              - {{name: x, type: float}}
              - {{name: epochs, type: int, isOptional: true, value: 1}}
              run:
                kind: job
                container: {{image: python, command: [python, -c, "print({{{{ x }}}})"]}}
            """
        ).format(matrix=textwrap.indent(textwrap.dedent(matrix), "  "))
    )
    return path


def test_a_tuner_matrix_plans_a_study(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        kind: hyperopt
        numRuns: 3
        metric: {name: loss, optimization: minimize}
        params: {x: {kind: uniform, value: [0, 1]}}
        """,
    )
    plan = make_plan([path], seed=1)
    assert (plan.kind, plan.units, plan.study is not None and plan.study.trials) == (
        "study",
        (),
        3,
    )


@pytest.mark.parametrize(
    ("matrix", "where", "message"),
    [
        (
            """\
            kind: iterative
            maxIterations: 3
            params: {x: {kind: uniform, value: [0, 1]}}
            """,
            "tune.yaml:4 matrix.kind",
            "an iterative matrix gets each iteration's runs from its own tuner component",
        ),
        (
            """\
            kind: bayes
            numInitialRuns: 2
            maxIterations: 3
            metric: {name: loss}
            tuner: {hubRef: acme/suggest}
            params: {x: {kind: uniform, value: [0, 1]}}
            """,
            "tune.yaml:8 matrix.tuner",
            "a custom tuner (acme/suggest) is a container polytrack does not fetch or run",
        ),
        (
            """\
            kind: hyperopt
            numRuns: 3
            params: {x: {kind: uniform, value: [0, 1]}}
            """,
            "tune.yaml:3 matrix:",
            "a hyperopt matrix needs `metric: {name, optimization}`",
        ),
        (
            """\
            kind: hyperband
            maxIterations: 9
            metric: {name: loss}
            params: {x: {kind: uniform, value: [0, 1]}}
            """,
            "tune.yaml:3 matrix:",
            "a hyperband matrix needs `resource: {name, type}`",
        ),
        (
            """\
            kind: hyperband
            maxIterations: 9
            eta: 2.5
            resource: {name: epochs}
            metric: {name: loss}
            params: {x: {kind: uniform, value: [0, 1]}}
            """,
            "tune.yaml:6 matrix.eta",
            "for a whole eta; got 2.5",
        ),
    ],
)
def test_what_cannot_run_is_refused_where_it_is_written(
    tmp_path: Path, matrix: str, where: str, message: str
) -> None:
    path = _write(tmp_path, matrix)
    spec.load([path])  # a valid Polyaxonfile: only running it is refused
    with pytest.raises(UnsupportedMatrixError) as caught:
        make_plan([path])
    assert where in str(caught.value)
    assert message in str(caught.value)


def test_hyperband_resume_is_noted_as_not_needed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        kind: hyperband
        maxIterations: 9
        resume: true
        resource: {name: epochs}
        metric: {name: loss}
        params: {x: {kind: uniform, value: [0, 1]}}
        """,
    )
    study = make_plan([path]).study
    assert study is not None
    assert [note.split(": ", 1)[0].rsplit("/", 1)[-1] for note in study.notes] == [
        "tune.yaml:6 matrix.resume"
    ]


def test_bayes_utility_function_is_noted_as_unused() -> None:
    utility = m.UtilityFunction(acquisition_function="ucb", kappa=1.2)
    plan = plan_study(
        m.Bayes(
            params=_SPACE,
            num_initial_runs=2,
            max_iterations=2,
            metric=_LOSS,
            utility_function=utility,
        )
    )
    assert any("utilityFunction: not used" in note for note in plan.notes)


# -- the controller ----------------------------------------------------------------------


def test_the_same_seed_gives_the_same_suggestions() -> None:
    matrix = m.Hyperopt(params=_SPACE, num_runs=15, metric=_LOSS, seed=7)
    first, second, other = Toy(_parabola), Toy(_parabola), Toy(_parabola)
    _run(plan_study(matrix), first)
    _run(plan_study(matrix), second)
    _run(plan_study(matrix, seed=8), other)
    assert len(first.asked) == 15
    assert first.asked == second.asked
    assert first.asked != other.asked


def test_concurrent_trials_are_told_in_order_so_the_seed_still_holds() -> None:
    matrix = m.Bayes(
        params=_SPACE, num_initial_runs=3, max_iterations=9, metric=_LOSS, seed=7, concurrency=4
    )
    first, second = Toy(_parabola), Toy(_parabola)
    result = _run(plan_study(matrix), first)
    _run(plan_study(matrix), second)
    assert first.asked == second.asked
    assert [trial.number for trial in result.trials] == list(range(12))


@pytest.mark.parametrize(
    "matrix",
    [
        m.Hyperopt(params=_SPACE, num_runs=40, metric=_LOSS, seed=7),
        m.Bayes(params=_SPACE, num_initial_runs=6, max_iterations=34, metric=_LOSS, seed=7),
    ],
    ids=["hyperopt", "bayes"],
)
def test_the_model_finds_better_values_than_its_first_suggestions(matrix: m.Matrix) -> None:
    plan, toy = _study(matrix)
    startup = plan.startup_trials or 10  # TPE's random draws before it models
    result = _run(plan, toy)
    values = [trial.value for trial in result.trials]
    assert len(values) == 40
    assert all(trial.state == "complete" for trial in result.trials)
    first, modelled = values[:startup], values[startup:]
    assert min(modelled) < min(first) / 10
    assert statistics.median(modelled) < statistics.median(first)
    assert result.best is not None and result.best.value == min(values)


def test_maximize_picks_the_largest() -> None:
    matrix = m.Hyperopt(params=_SPACE, num_runs=8, metric=m.OptimizationMetric(name="loss"), seed=1)
    plan, toy = _study(matrix)
    result = _run(plan, toy)
    assert result.best is not None
    assert result.best.value == max(trial.value for trial in result.trials)


def test_metric_early_stopping_ends_the_study_at_the_threshold() -> None:
    matrix = m.Hyperopt(
        params=_SPACE,
        num_runs=60,
        metric=_LOSS,
        seed=7,
        early_stopping=(MetricEarlyStopping(metric="loss", value=1.0),),
    )
    plan, toy = _study(matrix)
    result = _run(plan, toy)
    reached = [trial for trial in result.trials if trial.value is not None and trial.value <= 1]
    assert len(reached) == 1 and reached[0] is result.trials[-1]
    assert len(result.trials) < 60
    assert result.stopped_by is not None and "reached loss" in result.stopped_by


def test_metric_early_stopping_stops_the_trials_still_running() -> None:
    class Slow(Toy):
        """Trial 0 reaches the threshold at once; the others of its wave never end."""

        def __call__(self, request: TrialRequest) -> _Ended:
            handle = super().__call__(request)
            if request.number > 0:
                handle.status = None  # type: ignore[assignment]
                handle.stop = lambda message: setattr(handle, "status", "stopped")  # type: ignore[method-assign]
            return handle

    matrix = m.Hyperopt(
        params=_SPACE,
        num_runs=9,
        concurrency=3,
        metric=_LOSS,
        seed=7,
        early_stopping=(MetricEarlyStopping(metric="loss", value=1e9, optimization="minimize"),),
    )
    toy = Slow(_parabola)
    result = _run(plan_study(matrix), toy)
    assert [trial.status for trial in result.trials] == ["succeeded", "stopped", "stopped"]
    assert [trial.state for trial in result.trials] == ["complete", "stopped", "stopped"]


def test_failure_early_stopping_ends_the_study() -> None:
    matrix = m.Hyperopt(
        params=_SPACE,
        num_runs=20,
        metric=_LOSS,
        seed=7,
        early_stopping=(FailureEarlyStopping(percent=15),),
    )
    plan, toy = _study(matrix, fails=lambda params: params["x"] > 0)
    result = _run(plan, toy)
    failed = [trial for trial in result.trials if trial.status == "failed"]
    assert len(failed) == 3  # 15% of 20
    assert result.trials[-1].status == "failed"
    assert result.stopped_by == "3 of 20 trials failed (at most 15%)"


def test_failed_trials_are_told_as_failures() -> None:
    matrix = m.Hyperopt(params=_SPACE, num_runs=6, metric=_LOSS, seed=2)
    plan, toy = _study(matrix, fails=lambda params: params["x"] < 0)
    result = _run(plan, toy)
    states = {trial.state for trial in result.trials}
    assert states == {"failed", "complete"}
    assert result.best is not None and result.best.state == "complete"
