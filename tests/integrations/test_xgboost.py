"""XGBoost's callback on a tiny real training: metrics as XGBoost reports them, the
booster's params, the importance table and a booster that loads back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
datasets = pytest.importorskip("sklearn.datasets")

import polytrack  # noqa: E402
from polytrack.errors import InvalidInputError  # noqa: E402
from polytrack.integrations.xgboost import PolytrackCallback  # noqa: E402


def _data() -> tuple[Any, Any]:
    X, y = datasets.make_classification(n_samples=120, n_features=5, random_state=0)
    return xgb.DMatrix(X[:80], label=y[:80]), xgb.DMatrix(X[80:], label=y[80:])


PARAMS = {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "seed": 1}


def test_train_records_each_iterations_metrics_as_xgboost_reported_them(tmp_path: Path) -> None:
    """Every (data, metric) of evals_result is a metric `<data>-<metric>`, step = round."""
    train, valid = _data()
    reported: dict[str, Any] = {}
    booster = xgb.train(
        {**PARAMS, "eval_metric": ["logloss", "auc"]},
        train,
        4,
        evals=[(train, "train"), (valid, "valid")],
        evals_result=reported,
        verbose_eval=False,
        callbacks=[PolytrackCallback(name="xgb")],
    )
    [run] = polytrack.runs()
    assert (run.name, run.status) == ("xgb", "succeeded")
    keys = {k for k in run.metrics if not k.startswith("system/")}
    assert keys == {"train-logloss", "train-auc", "valid-logloss", "valid-auc"}
    for data, metrics in reported.items():
        for metric, values in metrics.items():
            steps, recorded = run.history(f"{data}-{metric}")
            assert steps.tolist() == [0, 1, 2, 3]
            assert recorded.tolist() == [float(v) for v in values]
    assert run.params["max_depth"] == 3
    assert run.params["eta"] == 0.3
    assert run.params["objective"] == "binary:logistic"
    assert run.params["eval_metric"] == ["logloss", "auc"]
    # The importance table: one row per feature, XGBoost's own scores.
    [table] = run.media("feature_importance")
    rows = {row[0]: dict(zip(table.value.columns, row, strict=True)) for row in table.value.rows}
    assert sorted(rows) == ["f0", "f1", "f2", "f3", "f4"]
    for kind in ("weight", "gain", "cover"):
        score = booster.get_score(importance_type=kind)
        assert {f: rows[f][kind] for f in score} == pytest.approx(score)
    # The model loads back and predicts as the trained booster does.
    model = run.artifact("model")
    assert model.framework == "xgboost" and model.kind == "model"
    assert model.metadata["num_boosted_rounds"] == 4
    restored = xgb.Booster()
    restored.load_model(str(model.download(tmp_path / "restored")))
    np.testing.assert_array_equal(restored.predict(valid), booster.predict(valid))


def test_the_sklearn_api_records_into_the_current_run_and_leaves_it_open(tmp_path: Path) -> None:
    """XGBClassifier(callbacks=[...]) records `validation_0-logloss` into the run the user
    started, which stays recording; model_format="ubj" keeps UBJSON that loads back."""
    X, y = datasets.make_classification(n_samples=120, n_features=5, random_state=0)
    with polytrack.init(name="mine") as run:
        clf = xgb.XGBClassifier(
            n_estimators=3,
            max_depth=2,
            callbacks=[PolytrackCallback(model_format="ubj", log_importance=False)],
        )
        clf.fit(X[:80], y[:80], eval_set=[(X[80:], y[80:])], verbose=False)
        assert not run.finished
    view = polytrack.get_run(run.id)
    assert view.status == "succeeded"
    expected = clf.evals_result()["validation_0"]["logloss"]
    assert view.history("validation_0-logloss")[1].tolist() == expected
    assert view.media_keys() == {}
    path = view.artifact("model").download(tmp_path / "ubj")
    assert path.name == "model.ubj"
    restored = xgb.Booster()
    restored.load_model(str(path))
    assert restored.num_boosted_rounds() == 3


def test_a_cloned_estimator_gets_a_fresh_callback() -> None:
    """scikit-learn's clone deep-copies callbacks: options kept, no run shared."""
    callback = PolytrackCallback(model_name="m", max_num_features=2, project="p")
    copied = copy.deepcopy(callback)
    assert copied is not callback
    assert (copied.model_name, copied.max_num_features) == ("m", 2)
    assert polytrack.current_run() is None  # copying started no run


def test_cv_records_mean_and_std_and_keeps_no_model() -> None:
    """xgb.cv's (mean, std) become `<data>-<metric>-mean`/`-std`; no single booster to keep."""
    train, _ = _data()
    frame = xgb.cv(
        PARAMS, train, 3, nfold=2, metrics=["logloss"], callbacks=[PolytrackCallback()],
        as_pandas=False,
    )  # fmt: skip
    [run] = polytrack.runs()
    assert run.status == "succeeded"
    assert run.history("test-logloss-mean")[1].tolist() == frame["test-logloss-mean"]
    assert run.history("train-logloss-std")[1].tolist() == frame["train-logloss-std"]
    assert run.artifacts() == []


def test_max_num_features_keeps_the_most_important() -> None:
    """max_num_features keeps the top rows by the first importance type."""
    train, _ = _data()
    booster = xgb.train(
        PARAMS,
        train,
        3,
        callbacks=[
            PolytrackCallback(importance_types=("gain",), max_num_features=2, log_model=False)
        ],
    )
    [run] = polytrack.runs()
    rows = run.media("feature_importance")[0].value.rows
    gains = sorted(booster.get_score(importance_type="gain").items(), key=lambda kv: -kv[1])
    assert [row[0] for row in rows] == [name for name, _ in gains[:2]]


def test_an_unknown_model_format_is_refused() -> None:
    """model_format other than json/ubj raises before training."""
    with pytest.raises(InvalidInputError, match="model_format"):
        PolytrackCallback(model_format="pickle")


def test_a_failed_model_copy_warns_and_the_run_it_started_succeeds() -> None:
    """The model's copy failing (a tracking failure) warns; xgb.train returns its booster
    and the callback's own run still finishes succeeded, its metrics kept."""
    train, _ = _data()
    home = Path(polytrack.Settings.from_env().home)
    home.mkdir(parents=True, exist_ok=True)
    (home / "blobs").write_text("not a folder: every artifact copy fails")
    with pytest.warns(polytrack.TrackingWarning, match="could not store artifact 'model'"):
        booster = xgb.train(
            PARAMS, train, 3, evals=[(train, "train")], verbose_eval=False,
            callbacks=[PolytrackCallback(name="xgb", capture=False, log_importance=False)],
        )  # fmt: skip
    assert booster.num_boosted_rounds() == 3
    [run] = polytrack.runs()
    assert run.status == "succeeded"
    assert run.history("train-logloss")[0].tolist() == [0, 1, 2]
