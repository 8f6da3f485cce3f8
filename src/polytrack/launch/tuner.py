"""Tuner matrices (`hyperband`, `bayes`, `hyperopt`): a study whose trials are runs.

    study = plan_study(operation.matrix, seed=7)          # checks; refuses what cannot run
    result = run_study(study, launch=..., read=...)       # asks, launches, reads, tells

Optuna does the searching (its samplers and pruners, asked and told through
`Study.ask`/`Study.tell`); this module only drives it. Each kind maps onto Optuna so:

- `hyperopt`: `TPESampler(seed)` (`algorithm: tpe` or `anneal`) or `RandomSampler(seed)`
  (`rand`); `numRuns` trials.
- `bayes`: `TPESampler(seed, n_startup_trials=numInitialRuns)`; `numInitialRuns +
  maxIterations` trials.
- `hyperband`: `RandomSampler(seed)` and `HyperbandPruner(1, maxIterations, eta)`; as many
  trials as Hyperband's brackets hold (`hyperband_trials`).

Optuna's `GPSampler` would be the closer match to `bayes`, but it needs torch; TPE is the
model based sampler Optuna has without heavy dependencies. Hyperopt's `anneal` has no
Optuna counterpart: TPE, which also narrows around the best trials, stands in for it.
A hyperband trial gets the whole budget (`resource: {name: epochs}` is set to
`maxIterations`), reports its metric at each step, and is stopped once the pruner says
so: successive halving done by stopping, as Optuna does it, rather than by restarting
trials with more budget.

The controller (`run_study`) knows nothing of processes, pods or the store: it calls a
`TrialLauncher` to start each trial, polls its `TrialHandle`, and reads the trial's metric
through a `MetricReader`. Trials run in waves of `concurrency`; a wave's results are told
to Optuna in the order its trials were asked, so the same seed gives the same
suggestions whatever order the trials end in (with a pruner and a concurrency above 1,
which trials are pruned also depends on timing: the pruner compares running trials).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from attrs import define, field, frozen

from polytrack.errors import LaunchError, UnsupportedMatrixError
from polytrack.spec import matrix as m
from polytrack.spec.policies import EarlyStopping, FailureEarlyStopping, MetricEarlyStopping

if TYPE_CHECKING:
    import optuna

__all__ = [
    "TUNER_KINDS",
    "MetricReader",
    "StudyPlan",
    "StudyResult",
    "TrialHandle",
    "TrialLauncher",
    "TrialRequest",
    "TrialResult",
    "hyperband_trials",
    "locator",
    "plan_study",
    "require_optuna",
    "run_study",
]

TUNER_KINDS: Final = ("hyperband", "bayes", "hyperopt", "iterative")
"""The matrix kinds that choose each run from the results of earlier ones."""

TrialState = Literal["complete", "pruned", "failed", "stopped"]
Locate = Callable[[Sequence[str | int]], str]
"""Where a field of the matrix is written (`train.yaml:12 matrix.tuner`), for messages."""


def _nowhere(path: Sequence[str | int]) -> str:
    from polytrack.spec._source import format_path

    return format_path(path)


def locator(paths: Sequence[str]) -> Locate:
    """A `Locate` that finds a matrix field in the last of `paths` that has a `matrix`
    (presets patch the file in order: the last matrix is the one loaded)."""
    from pathlib import Path

    from polytrack.errors import SpecError
    from polytrack.spec._source import Located, format_path

    def locate(path: Sequence[str | int]) -> str:
        for file in reversed(paths):
            located = Located()
            try:
                root = located.read(Path(file), file)
            except SpecError:
                continue
            if isinstance(root, Mapping) and "matrix" in root:
                origin, _ = located.locate(root, path)
                if origin is not None:
                    return f"{origin.file}:{origin.line} {format_path(path)}"
        return format_path(path)

    return locate


@frozen
class StudyPlan:
    """What a tuner matrix asks for, checked: the sampler, pruner and budget of its study."""

    kind: Literal["hyperband", "bayes", "hyperopt"]
    matrix: m.Hyperband | m.Bayes | m.Hyperopt
    metric: str
    direction: Literal["maximize", "minimize"]
    trials: int  # at most this many trials
    concurrency: int
    seed: int | None
    sampler: Literal["tpe", "random"]
    startup_trials: int | None = None  # TPE's random trials before it models
    resource: tuple[str, int | float] | None = None  # hyperband: the param and its budget
    eta: int | None = None
    early_stopping: tuple[EarlyStopping, ...] = ()
    notes: tuple[str, ...] = ()


def hyperband_trials(max_iterations: int, eta: float) -> int:
    """How many configurations Hyperband tries: `n = ceil((s_max + 1) / (s + 1) * eta**s)`
    for each bracket `s` from `s_max = floor(log_eta(maxIterations))` down to 0.

    Example:
        >>> hyperband_trials(9, 3)
        17
    """
    s_max = math.floor(math.log(max_iterations, eta) + 1e-9)
    return sum(math.ceil((s_max + 1) / (s + 1) * eta**s) for s in range(s_max + 1))


def plan_study(
    matrix: m.Matrix,
    *,
    seed: int | None = None,
    concurrency: int | None = None,
    locate: Locate = _nowhere,
) -> StudyPlan:
    """Check a tuner matrix and lay out its study.

    Args:
        seed: overrides the matrix's `seed`.
        concurrency: overrides the matrix's `concurrency` (default 1).
        locate: names a field's place in the Polyaxonfile, for messages.

    Raises:
        UnsupportedMatrixError: `iterative` (its suggestions come from a user's tuner
            container), a custom `tuner`, a fractional hyperband `eta`, or a field the
            study needs that is missing (`metric`, hyperband's `resource`); the message names
            the field and where it is written.
    """
    if isinstance(matrix, m.Iterative):
        raise UnsupportedMatrixError(
            f"{locate(('matrix', 'kind'))}: an iterative matrix gets each iteration's runs "
            "from its own tuner component (matrix.tuner.hubRef), a container polytrack does "
            "not fetch or run; use kind hyperopt, bayes or hyperband, whose tuners polytrack "
            "runs (with Optuna)"
        )
    if not isinstance(matrix, m.Hyperband | m.Bayes | m.Hyperopt):
        raise UnsupportedMatrixError(f"a {matrix.kind} matrix is expanded, not tuned")
    if matrix.tuner is not None:
        raise UnsupportedMatrixError(
            f"{locate(('matrix', 'tuner'))}: a custom tuner ({matrix.tuner.hub_ref}) is a "
            "container polytrack does not fetch or run; remove it to use polytrack's "
            f"{matrix.kind} tuner (Optuna)"
        )
    if matrix.metric is None:
        raise UnsupportedMatrixError(
            f"{locate(('matrix',))}: a {matrix.kind} matrix needs `metric: {{name, "
            "optimization}`: the result each trial is judged by"
        )
    width = concurrency or matrix.concurrency or 1
    common: dict[str, Any] = {
        "matrix": matrix,
        "metric": matrix.metric.name,
        "direction": matrix.metric.optimization,
        "concurrency": width,
        "seed": seed if seed is not None else matrix.seed,
        "early_stopping": tuple(matrix.early_stopping or ()),
    }
    if isinstance(matrix, m.Hyperband):
        if matrix.resource is None:
            raise UnsupportedMatrixError(
                f"{locate(('matrix',))}: a hyperband matrix needs `resource: {{name, type}}`: "
                "the param (epochs, steps) that gives each trial its budget"
            )
        if matrix.eta != int(matrix.eta):
            raise UnsupportedMatrixError(
                f"{locate(('matrix', 'eta'))}: Optuna's Hyperband keeps 1/eta of the trials "
                f"per round for a whole eta; got {matrix.eta:g}"
            )
        notes: tuple[str, ...] = ()
        if matrix.resume:
            notes = (
                f"{locate(('matrix', 'resume'))}: not needed: each trial runs once with the "
                "whole budget until the pruner stops it, so no run is restarted to resume",
            )
        budget: int | float = matrix.max_iterations
        if matrix.resource.type == "float":
            budget = float(budget)
        return StudyPlan(
            kind="hyperband",
            trials=hyperband_trials(matrix.max_iterations, matrix.eta),
            sampler="random",
            resource=(matrix.resource.name, budget),
            eta=int(matrix.eta),
            notes=notes,
            **common,
        )
    if isinstance(matrix, m.Bayes):
        notes = ()
        if matrix.utility_function is not None:
            notes = (
                f"{locate(('matrix', 'utilityFunction'))}: not used: polytrack's bayes tuner "
                "is Optuna's TPE (its GP sampler needs torch), which has no acquisition "
                "function to set",
            )
        return StudyPlan(
            kind="bayes",
            trials=matrix.num_initial_runs + matrix.max_iterations,
            sampler="tpe",
            startup_trials=matrix.num_initial_runs,
            notes=notes,
            **common,
        )
    return StudyPlan(
        kind="hyperopt",
        trials=matrix.num_runs,
        sampler="random" if matrix.algorithm == "rand" else "tpe",
        **common,
    )


def require_optuna() -> None:
    """Raise `LaunchError` naming the extra to install where Optuna is missing."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise LaunchError(
            "tuner matrices (hyperband, bayes, hyperopt) run with Optuna, which is not "
            "installed: pip install 'polytrack[tune]'"
        ) from None


# -- the controller --------------------------------------------------------------------


@frozen
class TrialRequest:
    """One trial to start: its number in the study and the params it runs with (the
    matrix params, and hyperband's resource)."""

    number: int
    params: Mapping[str, Any]


class TrialHandle(Protocol):
    """A started trial: its run, and how to learn of its end or bring it about."""

    @property
    def run_id(self) -> str: ...

    def poll(self) -> str | None:
        """The trial's final status (succeeded, failed, stopped) once it ended, else None."""

    def stop(self, message: str) -> None:
        """Stop the trial and record it `stopped` with `message`; `poll()` says when done."""


class TrialLauncher(Protocol):
    """Starts a trial (a local process, a Kubernetes workload) and returns its handle."""

    def __call__(self, request: TrialRequest) -> TrialHandle: ...


class MetricReader(Protocol):
    """Reads what trials recorded, from the store."""

    def points(self, run_id: str, metric: str) -> Sequence[tuple[int, float]]:
        """Every `(step, value)` of `metric` so far, by step; nothing if none (yet)."""

    def value(self, run_id: str, metric: str) -> float | None:
        """The trial's result for `metric` (its output, else its last point), or None."""


@define
class TrialResult:
    """How a trial went: `state` is Optuna's view, `status` the run's."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: str | None = None
    state: TrialState | None = None
    value: float | None = None
    steps: int = 0  # intermediate values reported to the pruner


@frozen
class StudyResult:
    """The study's trials, in order, its best trial, and why it stopped early, if it did."""

    trials: tuple[TrialResult, ...]
    best: TrialResult | None
    stopped_by: str | None = None


@define
class _Running:
    trial: optuna.trial.Trial
    handle: TrialHandle
    result: TrialResult
    reported: int | None = None  # the last step reported to the pruner
    pruned: bool = False
    early: bool = False  # stopped by an early stopping policy
    values: list[float] = field(factory=list)


def run_study(
    plan: StudyPlan,
    *,
    launch: TrialLauncher,
    read: MetricReader,
    on_trial: Callable[[TrialResult], None] = lambda result: None,
    poll_interval: float = 0.2,
    stop: threading.Event | None = None,
) -> StudyResult:
    """Run `plan`'s study: ask Optuna, launch trials, read their metric, tell Optuna.

    `on_trial` hears of each trial once it ended (in the order they were asked).
    `stop`, when set, stops the running trials and ends the study (Ctrl-C does too, and
    is raised again once they are stopped).
    """
    import optuna

    from polytrack.launch.tuner_space import dimensions

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI says what happens
    space = dimensions(plan.matrix.params)
    distributions = {dimension.name: dimension.distribution for dimension in space}
    study = optuna.create_study(
        study_name="polytrack",  # Hyperband's brackets hash the name: keep it fixed
        direction=plan.direction,
        sampler=_sampler(plan),
        pruner=_pruner(plan),
    )
    stopping = stop or threading.Event()
    results: list[TrialResult] = []
    stopped_by: str | None = None
    while len(results) < plan.trials and stopped_by is None and not stopping.is_set():
        wave: list[_Running] = []
        for _ in range(min(plan.concurrency, plan.trials - len(results))):
            trial = study.ask(distributions)
            params = {d.name: d.decode(trial.params[d.name]) for d in space}
            if plan.resource is not None:
                params[plan.resource[0]] = plan.resource[1]
            handle = launch(TrialRequest(number=trial.number, params=params))
            result = TrialResult(number=trial.number, run_id=handle.run_id, params=params)
            wave.append(_Running(trial, handle, result))
            results.append(result)
        try:
            stopped_by = _follow(plan, wave, read, results, poll_interval, stopping)
        except BaseException:
            for running in wave:
                if running.result.status is None:
                    running.handle.stop("the study was interrupted")
            raise
        for running in wave:
            _tell(study, running)
            on_trial(running.result)
    if stopping.is_set() and stopped_by is None:
        stopped_by = "the study was stopped"
    done = [r for r in results if r.state == "complete" and r.value is not None]
    best = None
    if done:
        pick = max if plan.direction == "maximize" else min
        best = pick(done, key=lambda r: r.value if r.value is not None else math.nan)
    return StudyResult(trials=tuple(results), best=best, stopped_by=stopped_by)


def _sampler(plan: StudyPlan) -> optuna.samplers.BaseSampler:
    import optuna

    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=plan.seed)
    if plan.startup_trials is not None:
        return optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=plan.startup_trials)
    return optuna.samplers.TPESampler(seed=plan.seed)


def _pruner(plan: StudyPlan) -> optuna.pruners.BasePruner:
    import optuna

    if plan.kind != "hyperband":
        return optuna.pruners.NopPruner()
    assert plan.resource is not None and plan.eta is not None
    return optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=int(plan.resource[1]), reduction_factor=plan.eta
    )


def _follow(
    plan: StudyPlan,
    wave: list[_Running],
    read: MetricReader,
    results: Sequence[TrialResult],
    poll_interval: float,
    stopping: threading.Event,
) -> str | None:
    """Wait for a wave's trials to end: feed the pruner, stop what it prunes, check the
    early stopping policies as each trial ends. Returns which policy stopped the study."""
    stopped_by: str | None = None
    while any(r.result.status is None for r in wave):
        if stopping.is_set() and stopped_by is None:
            stopped_by = "the study was stopped"
            for running in wave:
                if running.result.status is None and not running.early:
                    running.early = True
                    running.handle.stop("the study was stopped")
        for running in wave:
            if running.result.status is not None:
                continue
            if plan.kind == "hyperband" and not running.pruned and not running.early:
                _report(plan, running, read)
            status = running.handle.poll()
            if status is None:
                continue
            if plan.kind == "hyperband" and not running.pruned and not running.early:
                _report(plan, running, read)  # the points logged since the last look
            running.result.status = status
            if status == "succeeded" and not running.pruned and not running.early:
                running.result.value = read.value(running.result.run_id, plan.metric)
            if stopped_by is None:
                stopped_by = _early_stop(plan, running, read, results)
                if stopped_by is not None:
                    for other in wave:
                        if other.result.status is None and not other.early:
                            other.early = True
                            other.handle.stop(f"early stopping: {stopped_by}")
        if any(r.result.status is None for r in wave):
            stopping.wait(poll_interval)
    return stopped_by


def _report(plan: StudyPlan, running: _Running, read: MetricReader) -> None:
    """Report each new point to the pruner, one step at a time (as if the trial had
    reported it itself), and stop the trial at the first step the pruner prunes it."""
    for step, value in read.points(running.result.run_id, plan.metric):
        if running.reported is not None and step <= running.reported:
            continue
        if not math.isfinite(value):
            continue
        running.trial.report(value, step)
        running.reported = step
        running.values.append(value)
        running.result.steps += 1
        if running.trial.should_prune():
            running.pruned = True
            where = plan.resource[0] if plan.resource else "step"
            running.handle.stop(f"pruned by hyperband at {where} {step}")
            return


def _early_stop(
    plan: StudyPlan, running: _Running, read: MetricReader, results: Sequence[TrialResult]
) -> str | None:
    """Which early stopping policy, if any, holds once `running` ended."""
    for policy in plan.early_stopping:
        if isinstance(policy, FailureEarlyStopping):
            failed = sum(1 for r in results if r.status == "failed")
            if failed * 100 >= policy.percent * plan.trials:
                return f"{failed} of {plan.trials} trials failed (at most {policy.percent}%)"
        elif isinstance(policy, MetricEarlyStopping) and running.result.status == "succeeded":
            direction = policy.optimization or (
                plan.direction if policy.metric == plan.metric else "maximize"
            )
            if policy.metric == plan.metric:
                value = running.result.value
            else:
                value = read.value(running.result.run_id, policy.metric)
            if value is None or not math.isfinite(value):
                continue
            if value >= policy.value if direction == "maximize" else value <= policy.value:
                return (
                    f"trial {running.result.number} reached {policy.metric} {value:g} "
                    f"({'>=' if direction == 'maximize' else '<='} {policy.value:g})"
                )
    return None


def _tell(study: optuna.Study, running: _Running) -> None:
    from optuna.trial import TrialState as State

    result = running.result
    if running.pruned:
        result.state = "pruned"
        study.tell(running.trial, state=State.PRUNED)
    elif result.status == "succeeded" and result.value is not None and math.isfinite(result.value):
        result.state = "complete"
        study.tell(running.trial, result.value)
    else:
        result.state = "stopped" if result.status == "stopped" else "failed"
        study.tell(running.trial, state=State.FAIL)
