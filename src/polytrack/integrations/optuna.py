"""Optuna: each trial of a study becomes a run, tagged with the study and linked to it.

```python
import optuna
from polytrack.integrations.optuna import PolytrackCallback

callback = PolytrackCallback(metric_name="accuracy")

@callback.track_in_polytrack()          # optional: the trial's run exists while it runs
def objective(trial):
    ...
    trial.report(accuracy, step=epoch)  # recorded as it is reported
    return accuracy

study = optuna.create_study(direction="maximize", study_name="lr-search")
study.optimize(objective, n_trials=20, callbacks=[callback])
callback.finish()                       # the study's run, if the callback started it
```

As `polytrack run` records a tuner matrix (`polytrack.cli._tune`), the study is a run
(tagged "study") and each trial a run tagged `study:<study run id>` and
`parent:<study run id>` (what `runs ls --where "tags contains 'study:...'"` finds), plus
"optuna" and `optuna-study:<study name>`. The study's run is the run current when the
first trial is recorded, else one the callback starts (named after the study, finished by
`callback.finish()` or at exit); it records the best value so far per trial
(`best_value`, step = the trial's number) and the best trial as outputs.

A trial's run holds the trial's params, its intermediate values (`trial.report`) as
metric `intermediate_value` at step = the reported step, its value(s) as metric
`metric_name` (at the last reported step) and as outputs, and a status from the trial's
state: COMPLETE succeeded, PRUNED stopped, FAIL failed. Without the decorator the run is
made when the trial has ended; with it, the run is current while the objective runs, so
`polytrack.log_metrics` inside the objective records into the trial's run (with
`n_jobs=1`; with more, trials share the one current run: record through `trial`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import optuna
from optuna.trial import FrozenTrial, TrialState

import polytrack
from polytrack import _state
from polytrack.errors import InvalidInputError
from polytrack.run import DisabledRun, Run

__all__ = ["PolytrackCallback", "STATUS_OF_STATE"]

STATUS_OF_STATE: Final = {
    TrialState.COMPLETE: "succeeded",
    TrialState.PRUNED: "stopped",
    TrialState.FAIL: "failed",
}

_Objective = Callable[[optuna.Trial], Any]


class PolytrackCallback:
    """A `study.optimize` callback that records each trial as a run of its study.

    Args:
        metric_name: the name of the objective's value, or one name per objective of a
            multi-objective study (default "value", or "value_0", "value_1", ...).
        intermediate_name: the metric that `trial.report` values become.
        tags: more tags for every trial's run.
        capture: what each trial's run captures (`polytrack.init(capture=...)`); default
            no logs and no system metrics: trials are many and short.
        init_args: more `polytrack.init` arguments (`project`, `dir`, ...), for the trial
            runs and for the study's run when the callback starts it.

    Raises:
        InvalidInputError: `metric_name` is neither a string nor a list of strings.

    Example:
        >>> study.optimize(objective, n_trials=10, callbacks=[PolytrackCallback()])
    """

    def __init__(
        self,
        metric_name: str | Sequence[str] = "value",
        *,
        intermediate_name: str = "intermediate_value",
        tags: Iterable[str] = (),
        capture: bool | Mapping[str, bool] | None = None,
        **init_args: Any,
    ) -> None:
        if not isinstance(metric_name, str) and not (
            isinstance(metric_name, Sequence) and all(isinstance(n, str) for n in metric_name)
        ):
            raise InvalidInputError(
                f"metric_name must be a string or a list of strings; got {metric_name!r}"
            )
        self.metric_name = metric_name
        self.intermediate_name = intermediate_name
        self._tags = tuple(tags)
        self._capture = {"logs": False, "system": False} if capture is None else capture
        self._init_args = init_args
        self._lock = threading.RLock()
        self._study: Run | DisabledRun | None = None
        self._owns_study = False
        self._running: dict[int, Run | DisabledRun] = {}  # decorated trials' runs
        self._ended: set[int] = set()  # trials whose run the decorator finished (failed)

    @property
    def study_run(self) -> Run | DisabledRun | None:
        """The study's run, once a trial was recorded."""
        return self._study

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            study_run = self._study_run(study)
            ended = trial.number in self._ended
            self._ended.discard(trial.number)
            run = self._running.pop(trial.number, None)
        if not ended:
            tracked = run is not None
            if run is None:
                run = self._start(study, study_run, trial.number)
            self._record_trial(run, study, trial, intermediate=not tracked)
        self._record_best(study_run, study, trial)
        _restore(study_run, run)

    def track_in_polytrack(self) -> Callable[[_Objective], _Objective]:
        """A decorator for the objective: the trial's run is started before the objective
        runs and is the current run meanwhile; `trial.report` values are recorded as they
        are reported. Use it together with the callback.

        Example:
            >>> @callback.track_in_polytrack()
            ... def objective(trial): ...
        """

        def decorator(objective: _Objective) -> _Objective:
            @functools.wraps(objective)
            def tracked(trial: optuna.Trial) -> Any:
                with self._lock:
                    study_run = self._study_run(trial.study)
                    run = self._start(trial.study, study_run, trial.number)
                    self._running[trial.number] = run
                report = trial.report

                def reporting(value: float, step: int) -> None:
                    report(value, step)
                    run.log_metrics({self.intermediate_name: value}, step=step)

                setattr(trial, "report", reporting)  # noqa: B010 - the instance's, for a while
                try:
                    return objective(trial)
                except optuna.TrialPruned:
                    raise  # the trial is told pruned: the callback finishes the run
                except BaseException as exc:
                    # Optuna raises it again past the callbacks (unless `catch` names it):
                    # the run is finished here, and the callback leaves it be.
                    with self._lock:
                        self._running.pop(trial.number, None)
                        self._ended.add(trial.number)
                    run.log_params(trial.params)
                    run.finish("failed", message=f"{type(exc).__name__}: {exc}")
                    _restore(study_run, run)
                    raise
                finally:
                    delattr(trial, "report")  # the class's method again

            return tracked

        return decorator

    def finish(self, status: str = "succeeded") -> None:
        """Finish the study's run if the callback started it; a run it found current is
        left to whoever started it.

        Example:
            >>> callback.finish()
        """
        with self._lock:
            if self._owns_study and self._study is not None and not self._study.finished:
                self._study.finish(status)

    # -- internals ------------------------------------------------------------------------

    def _study_run(self, study: optuna.Study) -> Run | DisabledRun:
        """The run current now, else one started for the study; the same for every trial."""
        if self._study is None or (self._owns_study and self._study.finished):
            current = polytrack.current_run()
            if current is not None and not current.finished:
                self._study, self._owns_study = current, False
            else:
                self._study = polytrack.init(
                    name=study.study_name,
                    tags=["study", "optuna", *self._tags],
                    params={
                        "directions": [d.name.lower() for d in study.directions],
                        "sampler": type(study.sampler).__name__,
                        "pruner": type(study.pruner).__name__,
                    },
                    capture=self._capture,
                    reinit="create_new",
                    **self._init_args,
                )
                self._owns_study = True
        return self._study

    def _start(
        self, study: optuna.Study, study_run: Run | DisabledRun, number: int
    ) -> Run | DisabledRun:
        # The trials go where their study is: its store, its mode, its project.
        args: dict[str, Any]
        if isinstance(study_run, Run):
            args = {"project": study_run.project, "dir": study_run.settings.home,
                    "mode": study_run.settings.mode}  # fmt: skip
        else:
            args = {"mode": "disabled"}
        args.update(self._init_args)
        return polytrack.init(
            name=f"{study.study_name}-{number}",
            tags=[
                "optuna",
                f"optuna-study:{study.study_name}",
                f"study:{study_run.id}",
                f"parent:{study_run.id}",
                *self._tags,
            ],
            capture=self._capture,
            reinit="create_new",
            **args,
        )

    def _names(self, count: int) -> list[str]:
        if isinstance(self.metric_name, str):
            if count == 1:
                return [self.metric_name]
            return [f"{self.metric_name}_{i}" for i in range(count)]
        if len(self.metric_name) != count:
            raise InvalidInputError(
                f"metric_name names {len(self.metric_name)} values; the study has {count}"
            )
        return list(self.metric_name)

    def _record_trial(
        self,
        run: Run | DisabledRun,
        study: optuna.Study,
        trial: FrozenTrial,
        *,
        intermediate: bool,
    ) -> None:
        status = STATUS_OF_STATE.get(trial.state, "failed")
        try:
            run.log_params(dict(trial.params))
            if intermediate:
                for step, value in sorted(trial.intermediate_values.items()):
                    run.log_metrics({self.intermediate_name: value}, step=step)
            outputs: dict[str, Any] = {"trial_number": trial.number, "state": trial.state.name}
            if trial.values is not None:
                values = dict(zip(self._names(len(study.directions)), trial.values, strict=True))
                run.log_metrics(values, step=trial.last_step or 0)
                outputs.update(values)
            run.log_outputs(**outputs)
        except BaseException:
            run.finish("failed")
            raise
        run.finish(status, message=_message(trial))

    def _record_best(
        self, study_run: Run | DisabledRun, study: optuna.Study, trial: FrozenTrial
    ) -> None:
        if len(study.directions) > 1 or study_run.finished:
            return  # a multi-objective study has a front of best trials, not one
        try:
            best = study.best_trial
        except ValueError:  # no trial completed yet
            return
        assert best.value is not None
        study_run.log_metrics({"best_value": best.value}, step=trial.number)
        study_run.log_outputs(
            best_value=best.value, best_trial=best.number, best_params=dict(best.params)
        )


def _message(trial: FrozenTrial) -> str | None:
    if trial.state == TrialState.PRUNED:
        return f"pruned at step {trial.last_step}" if trial.last_step is not None else "pruned"
    if trial.state == TrialState.FAIL:
        reason = trial.system_attrs.get("fail_reason")
        return str(reason) if reason else "the trial failed"
    return None


def _restore(previous: Run | DisabledRun, replaced: Run | DisabledRun | None) -> None:
    """Make `previous` (the study's run) current again once a trial's run,
    made current by `polytrack.init`, has finished. polytrack has no public call for this:
    `init(reinit="create_new")` leaves no run current when the new one finishes."""
    if previous is replaced or previous.finished:
        return
    if polytrack.current_run() in (None, replaced):
        _state.set_current(previous)
