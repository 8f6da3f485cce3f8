"""LightGBM's callback on a tiny real training: metrics as record_evaluation keeps them,
params, the split/gain importance table and a booster that loads back."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
datasets = pytest.importorskip("sklearn.datasets")

import polytrack  # noqa: E402
from polytrack.integrations.lightgbm import PolytrackCallback  # noqa: E402

PARAMS = {"objective": "binary", "metric": ["binary_logloss", "auc"], "num_leaves": 4,
          "verbose": -1, "seed": 3}  # fmt: skip


def _data() -> tuple[Any, Any, Any]:
    X, y = datasets.make_classification(n_samples=200, n_features=5, random_state=0)
    train = lgb.Dataset(X[:150], y[:150])
    return train, lgb.Dataset(X[150:], y[150:], reference=train), X[150:]


def test_train_records_metrics_params_importance_and_model(tmp_path: Path) -> None:
    """Metric `<data>-<metric>` per iteration equals record_evaluation's; the table holds
    LightGBM's split and gain; the model file loads back and predicts the same."""
    train, valid, X_valid = _data()
    reported: dict[str, Any] = {}
    booster = lgb.train(
        PARAMS, train, 5, valid_sets=[train, valid], valid_names=["train", "valid"],
        callbacks=[PolytrackCallback(name="lgb"), lgb.record_evaluation(reported)],
    )  # fmt: skip
    [run] = polytrack.runs()
    assert (run.name, run.status) == ("lgb", "succeeded")
    keys = {k for k in run.metrics if not k.startswith("system/")}
    assert keys == {f"{d}-{m}" for d in ("train", "valid") for m in ("binary_logloss", "auc")}
    for data, metrics in reported.items():
        for metric, values in metrics.items():
            steps, recorded = run.history(f"{data}-{metric}")
            assert steps.tolist() == [0, 1, 2, 3, 4]
            assert recorded.tolist() == [float(v) for v in values]
    assert run.params["num_leaves"] == 4
    assert run.params["metric"] == ["binary_logloss", "auc"]
    table = run.media("feature_importance")[0].value
    assert table.columns == ["feature", "split", "gain"]
    assert [row[0] for row in table.rows] == booster.feature_name()
    assert [row[1] for row in table.rows] == booster.feature_importance("split").tolist()
    assert [row[2] for row in table.rows] == pytest.approx(booster.feature_importance("gain"))
    model = run.artifact("model")
    assert (model.framework, model.metadata["num_trees"]) == ("lightgbm", 5)
    restored = lgb.Booster(model_file=str(model.download(tmp_path / "restored")))
    np.testing.assert_allclose(restored.predict(X_valid), booster.predict(X_valid))


def test_early_stopping_is_finished_by_log_booster() -> None:
    """Early stopping ends training unseen by callbacks: log_booster records the model with
    best_iteration and finishes the run; a second call does nothing."""
    train, valid, _ = _data()
    callback = PolytrackCallback()
    booster = lgb.train(
        {**PARAMS, "metric": "binary_logloss", "learning_rate": 0.5}, train, 200,
        valid_sets=[valid], callbacks=[callback, lgb.early_stopping(1, verbose=False)],
    )  # fmt: skip
    assert booster.best_iteration < 200
    assert not callback.run.finished
    callback.log_booster(booster)
    callback.log_booster(booster)
    [run] = polytrack.runs()
    assert run.status == "succeeded"
    steps, _ = run.history("valid_0-binary_logloss")
    assert steps.tolist() == list(range(len(steps)))
    assert len(steps) > booster.best_iteration  # the rounds after the best one too
    assert run.outputs["best_iteration"] == booster.best_iteration
    assert [a.name for a in run.artifacts()] == ["model"]


def test_the_sklearn_api_records_into_the_current_run() -> None:
    """LGBMRegressor.fit(callbacks=[...]) records `valid_0-l2` into the user's run."""
    X, y = datasets.make_regression(n_samples=100, n_features=4, random_state=0)
    with polytrack.init() as run:
        model = lgb.LGBMRegressor(n_estimators=3, num_leaves=4, verbose=-1)
        # LightGBM 4.7 renamed eval_set (a deprecation warning); older ones know only it.
        if "eval_X" in inspect.signature(model.fit).parameters:
            evals = {"eval_X": (X[70:],), "eval_y": (y[70:],)}
        else:
            evals = {"eval_set": [(X[70:], y[70:])]}
        model.fit(X[:70], y[:70], callbacks=[PolytrackCallback()], **evals)
        assert not run.finished
    view = polytrack.get_run(run.id)
    assert view.history("valid_0-l2")[1].tolist() == model.evals_result_["valid_0"]["l2"]


def test_cv_records_mean_and_stdv_and_finishes() -> None:
    """lgb.cv's results become `<data>-<metric>-mean`/`-stdv`; the run ends with it."""
    X, y = datasets.make_classification(n_samples=150, n_features=5, random_state=0)
    results = lgb.cv(
        {**PARAMS, "metric": "auc"}, lgb.Dataset(X, y), 3, nfold=3,
        callbacks=[PolytrackCallback()],
    )  # fmt: skip
    [run] = polytrack.runs()
    assert run.status == "succeeded"
    assert run.history("valid-auc-mean")[1].tolist() == results["valid auc-mean"]
    assert run.history("valid-auc-stdv")[1].tolist() == results["valid auc-stdv"]
    assert run.artifacts() == []


def _break_blob_store(home: Path) -> None:
    """Make every artifact copy into `home` fail: its blob store is a file, not a folder."""
    blobs = home / "blobs"
    if blobs.exists():
        import shutil

        shutil.rmtree(blobs)
    blobs.write_text("not a folder")


def test_a_failed_model_copy_warns_and_training_succeeds() -> None:
    """The model's copy failing (a tracking failure) warns; lgb.train returns its booster."""
    train, _, _ = _data()
    run = polytrack.init(capture=False)
    _break_blob_store(run.settings.home)
    with pytest.warns(polytrack.TrackingWarning, match="could not store artifact 'model'"):
        booster = lgb.train(PARAMS, train, 3, callbacks=[PolytrackCallback(log_importance=False)])
    assert booster.num_trees() == 3
    assert not run.finished  # a run it found is left to its owner
    run.finish()
