"""scikit-learn: one call records a fitted estimator, its params, its scores and the model.

```python
from polytrack.integrations.sklearn import log_estimator

model = LogisticRegression(C=0.5).fit(X_train, y_train)
log_estimator(model, X_train, y_train, X_test=X_test, y_test=y_test)
```

Records the estimator's `get_params()` (nested estimators' params flattened with dots:
`clf__C` is `clf.C`; an estimator-valued param by its class name), its scores on each
dataset given, prefixed by the dataset (`train/`, `test/`): for a classifier `accuracy`,
`f1_macro`, and where it has `predict_proba` `log_loss` and `roc_auc` (one-vs-rest for
more than two classes); for a regressor `r2`, `mse` and `mae`. A classifier's confusion
matrix, ROC and precision-recall curves go through the run's media (`<dataset>/confusion`,
`<dataset>/roc`, `<dataset>/pr`; one curve per class, `<dataset>/roc/<class>`, for more
than two classes). The fitted estimator is kept as model "model" (a joblib pickle that
`joblib.load` reads back; framework "sklearn").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn import metrics as skm
from sklearn.base import is_classifier, is_regressor

from polytrack.errors import InvalidInputError
from polytrack.integrations._model_file import log_model_file, param_value
from polytrack.integrations._run import RunHandle
from polytrack.run import DisabledRun, Run

__all__ = ["classifier_scores", "estimator_params", "log_estimator", "regressor_scores"]


def log_estimator(
    estimator: Any,
    X: Any = None,
    y: Any = None,
    *,
    X_test: Any = None,
    y_test: Any = None,
    name: str = "model",
    log_model: bool = True,
    log_media: bool = True,
    run: Run | DisabledRun | None = None,
) -> dict[str, float]:
    """Record a fitted estimator: params, scores on the data given, plots, the model.

    Args:
        estimator: a fitted scikit-learn estimator (or one with its API).
        X, y: data to score it on, recorded under `train/`; optional.
        X_test, y_test: more data, recorded under `test/`; optional.
        name: the model's name in the run.
        log_model: keep the pickled estimator as a model.
        log_media: for a classifier, record the confusion matrix and the curves.
        run: the run to record into; default the current one, else a new one that is
            finished before returning.

    Returns:
        The scores recorded, by metric name ("test/accuracy": 0.93, ...).

    Raises:
        InvalidInputError: only one of a pair (X and y, X_test and y_test) is given.

    Example:
        >>> log_estimator(model, X_test=X_test, y_test=y_test)
        {'test/accuracy': 0.93, 'test/f1_macro': 0.92, ...}
    """
    datasets = {}
    for split, features, target in (("train", X, y), ("test", X_test, y_test)):
        if (features is None) != (target is None):
            which = "X and y" if split == "train" else "X_test and y_test"
            raise InvalidInputError(f"log_estimator: give both {which}, or neither")
        if features is not None:
            datasets[split] = (features, target)
    with RunHandle(run).recording() as recording:
        recording.log_params(estimator_params(estimator))
        scores: dict[str, float] = {}
        for split, (features, target) in datasets.items():
            if is_classifier(estimator):
                found = classifier_scores(estimator, features, target)
                if log_media:
                    _log_classifier_media(recording, estimator, split, features, target)
            elif is_regressor(estimator):
                found = regressor_scores(estimator, features, target)
            else:
                found = {}
            scores.update({f"{split}/{key}": value for key, value in found.items()})
        if scores:
            recording.log_metrics(scores)
        if log_model:
            kind = type(estimator)
            log_model_file(
                recording,
                lambda path: joblib.dump(estimator, path),
                "model.joblib",
                name=name,
                framework="sklearn",
                metadata={
                    "format": "joblib",
                    "class": f"{kind.__module__}.{kind.__qualname__}",
                    "sklearn_version": sklearn.__version__,
                },
            )
    return scores


def estimator_params(estimator: Any) -> dict[str, Any]:
    """`get_params(deep=True)` as params: `a__b` keys as `a.b`, estimators by class name.

    Example:
        >>> estimator_params(make_pipeline(StandardScaler(), SVC()))["svc.C"]
        1.0
    """
    params: dict[str, Any] = {}
    for key, value in estimator.get_params(deep=True).items():
        if hasattr(value, "get_params") and not isinstance(value, type):
            value = type(value).__name__
        elif key == "steps" and isinstance(value, list):  # a Pipeline's (name, step) pairs
            value = [step for step, _ in value]
        params[key.replace("__", ".")] = param_value(value)
    # A param named like the prefix of another ("clf" and "clf.C") cannot be flattened
    # beside it: the prefixed ones win, the estimator's class stays under `<name>.class`.
    for key in [k for k in params if any(other.startswith(f"{k}.") for other in params)]:
        params[f"{key}.class"] = params.pop(key)
    return params


def classifier_scores(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    """accuracy, f1_macro, and with `predict_proba` log_loss and roc_auc, on (X, y)."""
    predicted = estimator.predict(X)
    scores = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "f1_macro": float(skm.f1_score(y, predicted, average="macro")),
    }
    probabilities = _probabilities(estimator, X)
    if probabilities is not None:
        classes = list(estimator.classes_)
        scores["log_loss"] = float(skm.log_loss(y, probabilities, labels=classes))
        if len(np.unique(y)) == len(classes):  # AUC needs every class among the labels
            if len(classes) == 2:
                scores["roc_auc"] = float(skm.roc_auc_score(y, probabilities[:, 1]))
            else:
                scores["roc_auc"] = float(
                    skm.roc_auc_score(y, probabilities, multi_class="ovr", labels=classes)
                )
    return scores


def regressor_scores(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    """r2, mse and mae on (X, y)."""
    predicted = estimator.predict(X)
    return {
        "r2": float(skm.r2_score(y, predicted)),
        "mse": float(skm.mean_squared_error(y, predicted)),
        "mae": float(skm.mean_absolute_error(y, predicted)),
    }


def _probabilities(estimator: Any, X: Any) -> Any:
    """`predict_proba(X)`, or None for a classifier without it (an SVC without
    `probability=True` has the method and raises)."""
    if not hasattr(estimator, "predict_proba"):
        return None
    try:
        return np.asarray(estimator.predict_proba(X))
    except (AttributeError, NotImplementedError):
        return None


def _log_classifier_media(
    run: Run | DisabledRun,
    estimator: Any,
    split: str,
    X: Any,
    y: Any,
) -> None:
    classes = list(estimator.classes_)
    run.log_confusion_matrix(f"{split}/confusion", y, estimator.predict(X), labels=classes)
    probabilities = _probabilities(estimator, X)
    if probabilities is None:
        return
    truth = np.asarray(y)
    if len(classes) == 2:
        curves: Mapping[str, tuple[Any, Any]] = {"": (truth == classes[1], probabilities[:, 1])}
    else:
        curves = {
            f"/{label}": (truth == label, probabilities[:, index])
            for index, label in enumerate(classes)
        }
    for suffix, (positive, score) in curves.items():
        if positive.all() or not positive.any():
            continue  # a curve needs both classes among the labels
        run.log_roc_curve(f"{split}/roc{suffix}", positive, score)
        run.log_pr_curve(f"{split}/pr{suffix}", positive, score)
