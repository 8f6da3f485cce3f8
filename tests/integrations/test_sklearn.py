"""log_estimator on real fitted scikit-learn estimators: params, scores equal to
scikit-learn's, confusion matrix and curves, and a model that loads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("sklearn.datasets")
joblib = pytest.importorskip("joblib")
from sklearn import metrics  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import polytrack  # noqa: E402
from polytrack.errors import InvalidInputError  # noqa: E402
from polytrack.integrations.sklearn import log_estimator  # noqa: E402


def test_a_binary_classifier_is_recorded_with_scores_media_and_model(tmp_path: Path) -> None:
    """Scores per dataset equal scikit-learn's; confusion matrix, ROC and PR curves go to
    the media; the pickled model predicts as the original."""
    X, y = datasets.make_classification(n_samples=120, n_features=5, random_state=0)
    model = LogisticRegression(C=0.5).fit(X[:80], y[:80])
    scores = log_estimator(model, X[:80], y[:80], X_test=X[80:], y_test=y[80:], name="clf")
    [run] = polytrack.runs()
    assert run.status == "succeeded"  # started by log_estimator, finished by it
    proba = model.predict_proba(X[80:])[:, 1]
    assert scores["test/accuracy"] == metrics.accuracy_score(y[80:], model.predict(X[80:]))
    assert scores["test/roc_auc"] == metrics.roc_auc_score(y[80:], proba)
    assert scores["test/log_loss"] == pytest.approx(metrics.log_loss(y[80:], proba))
    assert {f"{s}/{m}" for s in ("train", "test") for m in (
        "accuracy", "f1_macro", "log_loss", "roc_auc")} == set(scores)  # fmt: skip
    assert {k: v.last for k, v in run.metrics.items() if "/" in k and "system" not in k} == scores
    assert run.params["C"] == 0.5 and run.params["solver"] == "lbfgs"
    assert set(run.media_keys()) == {
        f"{s}/{m}" for s in ("train", "test") for m in ("confusion", "roc", "pr")
    }
    [confusion] = run.media("test/confusion")
    expected = metrics.confusion_matrix(y[80:], model.predict(X[80:]))
    assert np.array_equal(confusion.value.z, expected)
    [roc] = run.media("test/roc")
    assert roc.meta["auc"] == pytest.approx(scores["test/roc_auc"])
    artifact = run.artifact("clf")
    assert artifact.framework == "sklearn"
    assert artifact.metadata["class"].endswith("LogisticRegression")
    restored = joblib.load(artifact.download(tmp_path / "restored"))
    assert restored.predict(X).tolist() == model.predict(X).tolist()


def test_a_pipeline_flattens_nested_params_and_multiclass_gets_curves_per_class() -> None:
    """`step__param` becomes `step.param`; three classes give one ROC/PR curve each."""
    X, y = datasets.make_classification(
        n_samples=150, n_features=6, n_informative=4, n_classes=3, random_state=1
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=2.0)).fit(X, y)
    with polytrack.init() as run:
        log_estimator(model, X_test=X, y_test=y, log_model=False)
    view = polytrack.get_run(run.id)
    assert view.params["logisticregression.C"] == 2.0
    assert view.params["logisticregression.class"] == "LogisticRegression"
    assert view.params["steps"] == ["standardscaler", "logisticregression"]
    assert sorted(k for k in view.media_keys() if "/roc" in k) == [
        "test/roc/0", "test/roc/1", "test/roc/2"
    ]  # fmt: skip
    assert view.artifacts() == []


def test_a_regressor_gets_r2_mse_and_mae() -> None:
    """A regressor's scores are r2, mse and mae, equal to scikit-learn's; no media."""
    X, y = datasets.make_regression(n_samples=80, n_features=3, noise=1.0, random_state=0)
    model = Ridge(alpha=0.1).fit(X, y)
    with polytrack.init() as run:
        scores = log_estimator(model, X, y, log_model=False)
    predicted = model.predict(X)
    assert scores == {
        "train/r2": metrics.r2_score(y, predicted),
        "train/mse": metrics.mean_squared_error(y, predicted),
        "train/mae": metrics.mean_absolute_error(y, predicted),
    }
    assert polytrack.get_run(run.id).media_keys() == {}


def test_an_estimator_that_neither_classifies_nor_regresses_keeps_params_and_model() -> None:
    """A clusterer has no scores: params and the model only."""
    X, _ = datasets.make_blobs(n_samples=30, centers=2, random_state=0)
    model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)
    assert log_estimator(model, X, np.zeros(30)) == {}
    [run] = polytrack.runs()
    assert run.params["n_clusters"] == 2
    assert [a.name for a in run.artifacts()] == ["model"]


def test_half_a_dataset_is_refused() -> None:
    """X without y raises before anything is recorded."""
    with pytest.raises(InvalidInputError, match="X and y"):
        log_estimator(Ridge(), np.zeros((2, 2)))
    assert polytrack.runs() == []
