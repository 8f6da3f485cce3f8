"""Polyaxon's contrib names for XGBoost, LightGBM and scikit-learn: the same calls as
Polyaxon's, recording through polytrack's integrations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
datasets = pytest.importorskip("sklearn.datasets")
from sklearn import metrics  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402

import polytrack  # noqa: E402
from polytrack.errors import InvalidInputError  # noqa: E402
from polytrack.tracking.contrib import lightgbm, scikit, xgboost  # noqa: E402


def _classification() -> tuple[Any, Any]:
    return datasets.make_classification(n_samples=100, n_features=4, random_state=0)


def test_xgboost_callback_and_callback_class_take_polyaxons_arguments() -> None:
    """`Callback(run, log_model, log_importance, importance_type, max_num_features)` and
    `callback(...)` record metrics by Polyaxon's names; `polyaxon_callback` is `callback`."""
    X, y = _classification()
    train = xgb.DMatrix(X, label=y)
    params = {"max_depth": 2, "objective": "binary:logistic"}
    with polytrack.init() as run:
        xgb.train(params, train, 2, evals=[(train, "train")], verbose_eval=False,
                  callbacks=[xgboost.Callback(run, False, True, "gain", 2)])  # fmt: skip
    view = polytrack.get_run(run.id)
    assert view.history("train-logloss")[0].tolist() == [0, 1]
    table = view.media("feature_importance")[0].value
    assert table.columns[:2] == ["feature", "gain"] and len(table.rows) <= 2
    assert view.artifacts() == []
    assert xgboost.polyaxon_callback is xgboost.callback
    xgb.train(params, train, 2, callbacks=[xgboost.callback(log_importance=False)])
    [newest, _] = polytrack.runs()
    assert newest.status == "succeeded"
    assert [a.framework for a in newest.artifacts()] == ["xgboost"]


def test_lightgbm_callback_records_polyaxons_metric_names() -> None:
    """`callback(run=None)` records `<data>-<metric>` per iteration, as Polyaxon did."""
    X, y = _classification()
    reported: dict[str, Any] = {}
    lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(X, y), 3,
        valid_sets=[lgb.Dataset(X, y)], valid_names=["valid"],
        callbacks=[lightgbm.polyaxon_callback(), lgb.record_evaluation(reported)],
    )  # fmt: skip
    [run] = polytrack.runs()
    assert run.history("valid-binary_logloss")[1].tolist() == reported["valid"]["binary_logloss"]


def test_log_classifier_records_polyaxons_metrics_and_tables() -> None:
    """Per-class precision/recall/fbeta/support, accuracy, weighted f1, and the
    prediction tables, besides log_estimator's test scores."""
    X, y = _classification()
    model = LogisticRegression().fit(X[:60], y[:60])
    scikit.log_classifier(model, X[60:], y[60:], nrows=5)
    [run] = polytrack.runs()
    predicted = model.predict(X[60:])
    precision = metrics.precision_score(y[60:], predicted, average=None)
    assert run.metrics["precision_class_1_test"].last == precision[1]
    assert run.metrics["accuracy"].last == metrics.accuracy_score(y[60:], predicted)
    assert run.metrics["f1"].last == metrics.f1_score(y[60:], predicted, average="weighted")
    assert "test/roc_auc" in run.metrics
    table = run.media("test_predictions")[0].value
    assert table.columns == ["y_true", "y_pred"]
    assert table.rows == [[int(t), int(p)] for t, p in zip(y[60:65], predicted[:5], strict=True)]
    proba = run.media("test_proba_predictions")[0].value
    assert proba.columns == ["0", "1"] and len(proba.rows) == 5
    assert np.allclose(proba.rows, model.predict_proba(X[60:65]))


def test_log_regressor_records_polyaxons_metrics() -> None:
    """evs, me, mae and r2 equal scikit-learn's; a classifier there is refused."""
    X, y = datasets.make_regression(n_samples=50, n_features=3, noise=0.5, random_state=0)
    model = LinearRegression().fit(X, y)
    scikit.log_regressor(model, X, y)
    [run] = polytrack.runs()
    predicted = model.predict(X)
    assert run.metrics["me"].last == metrics.max_error(y, predicted)
    assert run.metrics["r2"].last == metrics.r2_score(y, predicted)
    assert run.media("test_predictions")[0].value.columns == ["y_true", "y_pred"]
    with pytest.raises(InvalidInputError, match="regressor"):
        scikit.log_regressor(LogisticRegression(), X, y)
