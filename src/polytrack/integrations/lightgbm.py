"""LightGBM: a callback that records each iteration's evaluation, and the booster.

```python
import lightgbm as lgb
from polytrack.integrations.lightgbm import PolytrackCallback

callback = PolytrackCallback()
booster = lgb.train(params, train, 100, valid_sets=[train, valid],
                    valid_names=["train", "valid"], callbacks=[callback])
```

Like `lgb.record_evaluation`, the callback is a callable of LightGBM's `CallbackEnv`. At
the first iteration it records the training's params; at each iteration every evaluation
result as `<data>-<metric>` (`valid-binary_logloss`; `lgb.cv` gives `<data>-<metric>-mean`
and `-stdv`, as `record_evaluation` names them) at step = the iteration. At the last
iteration, the feature importance as a table (split and gain per feature) and the booster
as model "model" (`model_to_string`, a `.txt` that `lgb.Booster(model_file=...)` loads;
framework "lightgbm").

Early stopping ends training by an exception the callbacks do not see: after an
early-stopped `lgb.train`, call `callback.log_booster(booster)` to record the importance
and the model (with `best_iteration`) and finish a run the callback started.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

import lightgbm as lgb

from polytrack.integrations._model_file import log_model_file, param_value
from polytrack.integrations._run import RunHandle
from polytrack.run import DisabledRun, Run

__all__ = ["PolytrackCallback", "feature_importance"]

# LightGBM runs callbacks by `order`: early stopping (30) raises after the evaluation
# loggers (10, 20); this one runs among them, so the stopping iteration is recorded.
_ORDER: Final = 25


class PolytrackCallback:
    """Record a LightGBM training: params, metrics per iteration, importance, model.

    Records into the current run, or into one it starts (`polytrack.init(**init_args)`)
    at the first iteration and finishes after the last one (or in `log_booster`).

    Args:
        run: the run to record into; default the current one, else a new one.
        log_model: keep the trained booster as a model.
        model_name: the model's name in the run.
        log_importance: record the feature importance table.
        importance_name: the table's name.
        log_params: record the training's params at the first iteration.
        init_args: for `polytrack.init` when no run is current.

    Example:
        >>> lgb.train(params, train, 10, valid_sets=[valid], callbacks=[PolytrackCallback()])
    """

    def __init__(
        self,
        *,
        run: Run | DisabledRun | None = None,
        log_model: bool = True,
        model_name: str = "model",
        log_importance: bool = True,
        importance_name: str = "feature_importance",
        log_params: bool = True,
        **init_args: Any,
    ) -> None:
        self.order = _ORDER
        self.before_iteration = False
        self._given, self._init_args = run, init_args
        self._handle = RunHandle(run, **init_args)
        self.log_model = log_model
        self.model_name = model_name
        self.log_importance = log_importance
        self.importance_name = importance_name
        self.log_params = log_params
        self._done = False

    @property
    def run(self) -> Run | DisabledRun:
        """The run recorded into (started now if there is none yet)."""
        return self._handle.run

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            if self._handle.owned and self._handle.run.finished:  # trained again: a new run
                self._handle = RunHandle(self._given, **self._init_args)
            self._done = False
        run = self._handle.run
        if env.iteration == env.begin_iteration and self.log_params:
            run.log_params({key: param_value(v) for key, v in env.params.items()})
        metrics = dict(_metrics(env.evaluation_result_list or ()))
        if metrics:
            run.log_metrics(metrics, step=env.iteration)
        if env.iteration + 1 == env.end_iteration:
            if isinstance(env.model, lgb.Booster):
                self.log_booster(env.model)
            else:  # lgb.cv's boosters, one per fold: no one model to keep
                self._done = True
                self._handle.finish()

    def log_booster(self, booster: lgb.Booster) -> None:
        """Record `booster`'s importance and the booster as a model, then finish a run
        the callback started; called by the callback after the last iteration, by you
        after an early-stopped training. A second call for the same training does nothing.

        Example:
            >>> booster = lgb.train(..., callbacks=[callback, lgb.early_stopping(5)])
            >>> callback.log_booster(booster)
        """
        if self._done:
            return
        self._done = True
        run = self._handle.run
        try:
            best = booster.best_iteration
            if best > 0:
                run.log_outputs(best_iteration=best)
            if self.log_importance:
                run.log_table(self.importance_name, feature_importance(booster))
            if self.log_model:
                log_model_file(
                    run,
                    lambda path: booster.save_model(str(path)),
                    "model.txt",
                    name=self.model_name,
                    framework="lightgbm",
                    metadata={
                        "format": "txt",
                        "num_trees": booster.num_trees(),
                        "best_iteration": best,
                    },
                )
        except BaseException:
            self._handle.finish("failed")
            raise
        self._handle.finish()


def _metrics(results: Iterable[Any]) -> Iterator[tuple[str, float]]:
    """Each evaluation result (data, metric, value, is_higher_better[, stdv]) by name."""
    for result in results:
        data, metric, value = result[0], result[1], result[2]
        if len(result) > 4 and result[4] is not None:  # lgb.cv: mean and standard deviation
            yield f"{data}-{metric}-mean", float(value)
            yield f"{data}-{metric}-stdv", float(result[4])
        else:
            yield f"{data}-{metric}", float(value)


def feature_importance(booster: lgb.Booster) -> list[dict[str, Any]]:
    """One row per feature: its name, how many splits use it, and their total gain.

    Example:
        >>> feature_importance(booster)[0]
        {'feature': 'Column_0', 'split': 12, 'gain': 301.5}
    """
    names = booster.feature_name()
    splits = booster.feature_importance(importance_type="split")
    gains = booster.feature_importance(importance_type="gain")
    return [
        {"feature": name, "split": int(split), "gain": float(gain)}
        for name, split, gain in zip(names, splits, gains, strict=True)
    ]
