"""XGBoost: a training callback that records what `xgb.train` prints, and the booster.

```python
import xgboost as xgb
from polytrack.integrations.xgboost import PolytrackCallback

booster = xgb.train(params, dtrain, 100, evals=[(dtrain, "train"), (dvalid, "valid")],
                    callbacks=[PolytrackCallback()])
# or the scikit-learn API:
xgb.XGBClassifier(n_estimators=100, callbacks=[PolytrackCallback()]).fit(X, y, eval_set=...)
```

Per iteration, every evaluation metric under the name XGBoost prints (`valid-logloss`;
`test-logloss-mean` and `-std` in `xgb.cv`) at step = the iteration. Before training, the
booster's parameters as its configuration holds them (`max_depth`, `eta`, `objective`,
`eval_metric`, ...). After training, the feature importance as a table (one row per
feature: weight, gain, cover, total_gain, total_cover), the booster as model "model"
(`save_model`, JSON or UBJSON; framework "xgboost"), and `best_iteration`/`best_score` as
outputs when early stopping set them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import xgboost as xgb

from polytrack.errors import InvalidInputError
from polytrack.integrations._model_file import log_model_file
from polytrack.integrations._run import RunHandle
from polytrack.run import DisabledRun, Run

__all__ = ["IMPORTANCE_TYPES", "PolytrackCallback", "booster_params", "feature_importance"]

IMPORTANCE_TYPES: Final = ("weight", "gain", "cover", "total_gain", "total_cover")
_FORMATS: Final = ("json", "ubj")
# Configuration entries that describe XGBoost's internals or the model's current size,
# not a choice of the user's: left out of the params.
_INTERNAL: Final = frozenset(
    {
        "debug_synchronize", "fail_on_invalid_gpu_id", "max_cached_hist_node",
        "num_trees", "seed_per_iteration", "updater_seq", "validate_parameters",
    }
)  # fmt: skip


class PolytrackCallback(xgb.callback.TrainingCallback):
    """Record an XGBoost training: metrics per iteration, parameters, importance, model.

    Records into the current run, or into one it starts (`polytrack.init(**init_args)`)
    at the first event and finishes when training ends.

    Args:
        run: the run to record into; default the current one, else a new one.
        log_model: keep the trained booster as a model.
        model_name: the model's name in the run.
        model_format: "json" or "ubj" (XGBoost's binary JSON).
        log_importance: record the feature importance table.
        importance_name: the table's name.
        importance_types: its columns, XGBoost's importance types.
        max_num_features: keep only this many rows, the most important by the first
            type; default every feature, in the booster's order.
        log_params: record the booster's parameters before training.
        init_args: for `polytrack.init` when no run is current.

    Raises:
        InvalidInputError: `model_format` is not "json" or "ubj".

    Example:
        >>> xgb.train(params, dtrain, 10, evals=[(dtrain, "train")],
        ...           callbacks=[PolytrackCallback()])
    """

    def __init__(
        self,
        *,
        run: Run | DisabledRun | None = None,
        log_model: bool = True,
        model_name: str = "model",
        model_format: str = "json",
        log_importance: bool = True,
        importance_name: str = "feature_importance",
        importance_types: Sequence[str] = IMPORTANCE_TYPES,
        max_num_features: int | None = None,
        log_params: bool = True,
        **init_args: Any,
    ) -> None:
        if model_format not in _FORMATS:
            raise InvalidInputError(
                f"model_format must be one of {', '.join(_FORMATS)}; got {model_format!r}"
            )
        super().__init__()
        self._given = run
        self._init_args = init_args
        self._handle = RunHandle(run, **init_args)
        self.log_model = log_model
        self.model_name = model_name
        self.model_format = model_format
        self.log_importance = log_importance
        self.importance_name = importance_name
        self.importance_types = tuple(importance_types)
        self.max_num_features = max_num_features
        self.log_params = log_params

    def __deepcopy__(self, memo: dict[int, Any]) -> PolytrackCallback:
        """scikit-learn's `clone` (grid searches) deep-copies an estimator's callbacks: the
        copy has the same options and no run state; a run is never copied."""
        return type(self)(
            run=self._given,
            log_model=self.log_model,
            model_name=self.model_name,
            model_format=self.model_format,
            log_importance=self.log_importance,
            importance_name=self.importance_name,
            importance_types=self.importance_types,
            max_num_features=self.max_num_features,
            log_params=self.log_params,
            **copy.deepcopy(self._init_args, memo),
        )

    @property
    def run(self) -> Run | DisabledRun:
        """The run recorded into (started now if there is none yet)."""
        return self._handle.run

    def before_training(self, model: Any) -> Any:
        if self._handle.owned and self._handle.run.finished:  # trained again: a new run
            self._handle = RunHandle(self._given, **self._init_args)
        run = self._handle.run
        if self.log_params and isinstance(model, xgb.Booster):
            run.log_params(booster_params(model))
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        metrics = dict(_metrics(evals_log))
        if metrics:
            self._handle.run.log_metrics(metrics, step=epoch)
        return False

    def after_training(self, model: Any) -> Any:
        try:
            if isinstance(model, xgb.Booster):  # xgb.cv passes its folds: no one model
                self._record_booster(model)
        except BaseException:
            self._handle.finish("failed")
            raise
        self._handle.finish()
        return model

    def _record_booster(self, booster: xgb.Booster) -> None:
        run = self._handle.run
        attributes = booster.attributes()
        outputs = {
            key: _number(value)
            for key in ("best_iteration", "best_score")
            if (value := attributes.get(key)) is not None
        }
        if outputs:
            run.log_outputs(**outputs)
        if self.log_importance:
            rows = feature_importance(booster, self.importance_types)
            if self.max_num_features is not None and rows:
                key = next((t for t in self.importance_types if t in rows[0]), None)
                if key is not None:  # the most important first, as xgb.plot_importance
                    rows.sort(key=lambda row: -row[key])
                rows = rows[: self.max_num_features]
            if rows:
                run.log_table(self.importance_name, rows)
        if self.log_model:
            log_model_file(
                run,
                lambda path: booster.save_model(str(path)),
                f"model.{self.model_format}",
                name=self.model_name,
                framework="xgboost",
                metadata={
                    "format": self.model_format,
                    "num_boosted_rounds": booster.num_boosted_rounds(),
                    "num_features": booster.num_features(),
                },
            )


def _metrics(evals_log: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The last value of each (data, metric) as `<data>-<metric>`; `xgb.cv` gives
    (mean, std) pairs, recorded as `<data>-<metric>-mean` and `-std`."""
    for data, metrics in evals_log.items():
        for metric, values in metrics.items():
            if not values:
                continue
            last = values[-1]
            if isinstance(last, tuple | list):
                mean, std = last
                yield f"{data}-{metric}-mean", float(mean)
                yield f"{data}-{metric}-std", float(std)
            else:
                yield f"{data}-{metric}", float(last)


def booster_params(booster: xgb.Booster) -> dict[str, Any]:
    """The booster's parameters from its configuration (`save_config`): every
    `*_param` section's entries by name, numbers parsed (floats to the float32
    precision XGBoost keeps), and `eval_metric` as a list of the metrics' names.

    Example:
        >>> booster_params(booster)["max_depth"]
        3
    """
    config = json.loads(booster.save_config())
    params: dict[str, Any] = {}
    for section, values in _sections(config):
        for key, value in values.items():
            if isinstance(value, str) and key not in params and key not in _INTERNAL:
                params[key] = _number(value)
        if section == "learner" and isinstance(values.get("metrics"), list):
            params["eval_metric"] = [m.get("name") for m in values["metrics"]]
    return params


def _sections(node: Any, name: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        if name.endswith("_param") or name == "learner":
            yield name, node
        for key, value in node.items():
            yield from _sections(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _sections(item, name)


def _number(text: str) -> Any:
    """Parse config text: "3" -> 3, "0.300000012" -> 0.3 (float32, as XGBoost keeps it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(f"{float(text):.7g}")
    except ValueError:
        return text


def feature_importance(
    booster: xgb.Booster, types: Sequence[str] = IMPORTANCE_TYPES
) -> list[dict[str, Any]]:
    """One row per feature (named as the booster names them, else f0, f1, ...) with
    each importance type XGBoost gives for this booster; 0 for a feature no tree splits
    on. A type the booster does not support (gain of a linear booster) is left out.

    Example:
        >>> feature_importance(booster)[0]
        {'feature': 'f0', 'weight': 4.0, 'gain': 33.18, ...}
    """
    names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
    scores: dict[str, Mapping[str, Any]] = {}
    for kind in types:
        try:
            scores[kind] = booster.get_score(importance_type=kind)
        except xgb.core.XGBoostError:
            continue
    rows: list[dict[str, Any]] = []
    for feature in names:
        row: dict[str, Any] = {"feature": feature}
        for kind, score in scores.items():
            value = score.get(feature, 0.0)
            row[kind] = float(value) if not isinstance(value, list) else float(sum(value))
        rows.append(row)
    return rows
