"""Polyaxon's scikit-learn loggers (`polyaxon.tracking.contrib.scikit`, from traceml
1.5's `traceml/integrations/scikit.py`), over `polytrack.integrations.sklearn`.

```python
from polytrack.tracking.contrib.scikit import log_classifier   # was: polyaxon.tracking...

log_classifier(model, X_test, y_test)
```

Each records what `log_estimator` records for the test data (params, `test/` scores,
the confusion matrix and curves, the model), and what Polyaxon recorded: its metrics by
Polyaxon's names (a classifier's `accuracy`, `f1` (weighted), and per class
`precision_class_<i>_test`, `recall_...`, `fbeta_score_...`, `support_...`; a
regressor's `evs`, `me`, `mae`, `r2`) and the first `nrows` predictions as tables
(`test_predictions`; a classifier's probabilities as `test_proba_predictions`).
Polyaxon's `f1` compared the predictions with themselves (always 1); here it scores
the predictions against `y_test`. A wrong kind of estimator raises `InvalidInputError`
where Polyaxon asserted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.base import is_classifier, is_regressor

from polytrack.errors import InvalidInputError
from polytrack.integrations._run import RunHandle
from polytrack.integrations.sklearn import log_estimator
from polytrack.run import DisabledRun, Run

__all__ = ["log_classifier", "log_regressor"]


def log_classifier(
    classifier: Any,
    X_test: Any,
    y_test: Any,
    nrows: int = 1000,
    run: Run | DisabledRun | None = None,
) -> None:
    """Polyaxon's `log_classifier(classifier, X_test, y_test, nrows=1000, run=None)`.

    Raises:
        InvalidInputError: `classifier` is not a scikit-learn classifier.

    Example:
        >>> log_classifier(LogisticRegression().fit(X, y), X_test, y_test)
    """
    if not is_classifier(classifier):
        raise InvalidInputError("log_classifier: classifier should be a sklearn classifier")
    with RunHandle(run).recording() as recording:
        log_estimator(classifier, X_test=X_test, y_test=y_test, run=recording)
        predicted = np.asarray(classifier.predict(X_test))
        results: dict[str, float] = {}
        names = ("precision", "recall", "fbeta_score", "support")
        for name, values in zip(
            names, skm.precision_recall_fscore_support(y_test, predicted), strict=True
        ):
            for i, value in enumerate(values):
                results[f"{name}_class_{i}_test"] = float(value)
        results["accuracy"] = float(skm.accuracy_score(y_test, predicted))
        results["f1"] = float(skm.f1_score(y_test, predicted, average="weighted"))
        recording.log_metrics(results)
        if hasattr(classifier, "predict_proba"):
            try:
                probabilities = np.asarray(classifier.predict_proba(X_test))
            except (AttributeError, NotImplementedError):
                probabilities = None
            if probabilities is not None:
                recording.log_table(
                    "test_proba_predictions",
                    probabilities[:nrows].tolist(),
                    columns=[str(c) for c in classifier.classes_],
                )
        _log_predictions(recording, np.asarray(y_test), predicted, nrows)


def log_regressor(
    regressor: Any,
    X_test: Any,
    y_test: Any,
    nrows: int = 1000,
    run: Run | DisabledRun | None = None,
) -> None:
    """Polyaxon's `log_regressor(regressor, X_test, y_test, nrows=1000, run=None)`.

    Raises:
        InvalidInputError: `regressor` is not a scikit-learn regressor.

    Example:
        >>> log_regressor(Ridge().fit(X, y), X_test, y_test)
    """
    if not is_regressor(regressor):
        raise InvalidInputError("log_regressor: regressor should be a sklearn regressor")
    with RunHandle(run).recording() as recording:
        log_estimator(regressor, X_test=X_test, y_test=y_test, run=recording)
        predicted = np.asarray(regressor.predict(X_test))
        truth = np.asarray(y_test)
        if predicted.ndim == 1:
            results = {
                "evs": float(skm.explained_variance_score(truth, predicted)),
                "me": float(skm.max_error(truth, predicted)),
                "mae": float(skm.mean_absolute_error(truth, predicted)),
                "r2": float(skm.r2_score(truth, predicted)),
            }
        else:
            results = {"r2": float(regressor.score(X_test, y_test))}
        recording.log_metrics(results)
        _log_predictions(recording, truth, predicted, nrows)


def _log_predictions(run: Run | DisabledRun, truth: Any, predicted: Any, nrows: int) -> None:
    """Polyaxon's `test_predictions` table: y_true and y_pred, or one pair of columns per
    output."""
    if predicted.ndim == 1:
        columns = {"y_true": truth[:nrows].tolist(), "y_pred": predicted[:nrows].tolist()}
    else:
        columns = {}
        for j in range(predicted.shape[1]):
            columns[f"y_test_output_{j}"] = truth[:nrows, j].tolist()
            columns[f"y_pred_output_{j}"] = predicted[:nrows, j].tolist()
    run.log_table("test_predictions", columns)
