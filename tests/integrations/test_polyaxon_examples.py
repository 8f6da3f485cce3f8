"""Polyaxon's own example scripts, import lines changed, recorded by polytrack.

Each script under `polyaxon_examples/` (see its README: upstream paths, commits, license)
runs as a subprocess with a fresh `POLYTRACK_HOME` and `polyaxon_examples/shim` on its
`PYTHONPATH` (tiny synthetic stand-ins for the datasets it would download); the test reads
back what reached the run. Scripts that use `polytrack.tracking.contrib.<framework>` skip
until that module (and its framework) is importable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import polytrack
from polytrack.history.runs import RunView

EXAMPLES = Path(__file__).resolve().parent / "polyaxon_examples"
pytestmark = pytest.mark.slow  # each spawns a Python with a framework: seconds each


def run_example(
    script: str,
    *args: str,
    home: Path,
    cwd: Path,
    environ: dict[str, str] | None = None,
    expect: int = 0,
) -> subprocess.CompletedProcess[str]:
    """Run a vendored script as its README says, and check its exit code."""
    shim = str(EXAMPLES / "shim")
    path = os.pathsep.join(p for p in (shim, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env={**os.environ, "POLYTRACK_HOME": str(home), "PYTHONPATH": path, **(environ or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == expect, done.stderr[-4000:]
    return done


def only_run(home: Path) -> RunView:
    """The one run the script recorded."""
    found = polytrack.runs(home=home)
    assert len(found) == 1, [run.id for run in found]
    return found[0]


def data_refs(run: RunView) -> list[str]:
    return [ref.name for ref in run.snapshot().data_refs]


def outputs_files(run: RunView) -> list[str]:
    return sorted(file.path for file in run.artifact("outputs").files)


def test_random_forest_run_records_inputs_data_and_outputs(home: Path, tmp_path: Path) -> None:
    """tracking/sklearn/random_forest: Run(project, tags), log_inputs, log_data_ref(content),
    log_outputs; the script ends without end(): the run is finished at exit."""
    run_example("tracking/sklearn/random_forest/model.py", home=home, cwd=tmp_path)
    run = only_run(home)
    assert (run.project, run.tags, run.status) == (
        "random-forest", ("examples", "scikit-learn"), "succeeded",
    )  # fmt: skip
    assert run.params == {"n_estimators": 3, "max_features": 3, "min_samples_leaf": 80}
    assert set(run.outputs) == {"accuracy_mean", "accuracy_std"}
    assert 0 <= run.outputs["accuracy_mean"] <= 1
    assert data_refs(run) == ["dataset_X", "dataset_y"]


def test_sgd_classifier_run_is_new(home: Path, tmp_path: Path) -> None:
    """tracking/sklearn/sgd_classifier: Run(..., is_new=True) and its inputs and outputs."""
    run_example(
        "tracking/sklearn/sgd_classifier/model.py", "--loss", "log_loss", home=home, cwd=tmp_path
    )
    run = only_run(home)
    assert (run.project, run.status) == ("sgd-classifier", "succeeded")
    assert run.params == {
        "loss": "log_loss", "penalty": "elasticnet", "l1_ratio": 1.0, "max_iter": 1000,
        "tol": 0.001,
    }  # fmt: skip
    assert set(run.outputs) == {"accuracy_mean", "accuracy_std"}


def test_xgboost_iris_run(home: Path, tmp_path: Path) -> None:
    """tracking/xgboost/iris: Run, data refs of arrays (one name logged twice), outputs."""
    run_example("tracking/xgboost/iris/model.py", home=home, cwd=tmp_path)
    run = only_run(home)
    assert (run.project, run.tags) == ("iris", ("examples", "xgboost"))
    assert run.params == {
        "log_learning_rate": -3, "max_depth": 3, "num_rounds": 10, "min_child_weight": 5,
    }  # fmt: skip
    assert 0 <= run.outputs["accuracy"] <= 1
    assert data_refs(run) == ["x_train", "y_train", "X_test", "y_train"]


def test_plotly_confusion_matrix(home: Path, tmp_path: Path) -> None:
    """tracking/plotly/confusion_matrix: tracking.init and log_confusion_matrix(x, y, z)."""
    run_example("tracking/plotly/confusion_matrix.py", home=home, cwd=tmp_path)
    run = only_run(home)
    assert (run.project, run.tags, run.status) == ("demo", ("examples",), "succeeded")
    [matrix] = run.media("confusion")
    assert (matrix.kind, matrix.step, matrix.shape) == ("confusion", 1, (4, 4))


def test_evaluation_data_leakage_outputs_and_file_refs(home: Path, tmp_path: Path) -> None:
    """blog/evaluation-data-leakage: files written under get_outputs_path(), log_outputs,
    log_metrics at step 0, log_file_ref of four of them; the outputs kept at exit."""
    run_example("blog/evaluation-data-leakage/tracked.py", home=home, cwd=tmp_path)
    run = only_run(home)
    assert run.status == "succeeded"
    assert run.outputs["grouped_audit_passed"] is True
    assert (run.outputs["split_seed"], run.outputs["dataset_revision"]) == (
        23, "synthetic-support-v1",
    )  # fmt: skip
    rows = [
        int(run.history(f"grouped_{split}_rows")[1][0]) for split in ("train", "validation", "test")
    ]
    assert sum(rows) == 46 and all(rows)  # the fixture's 15 cases x 3 views + 1 reimport
    for name in ("record.json", "audit.json", "grouped-manifest.json", "resolved-requirements.txt"):
        assert run.artifact(name).kind == "file"
    files = outputs_files(run)
    assert "split-audit/record.json" in files and "split-audit/grouped/train.csv" in files


def test_hyperparameter_seeds_study(home: Path, tmp_path: Path) -> None:
    """blog/hyperparameter-seeds: metrics per seed index, outputs twice, every output file
    kept by log_file_ref, and the outputs directory."""
    run_example(
        "blog/hyperparameter-seeds/study.py", "--tracked", "--seeds", "11", "23",
        home=home, cwd=tmp_path,
    )  # fmt: skip
    run = only_run(home)
    assert run.status == "succeeded"
    assert {k: run.outputs[k] for k in ("planned_trials", "training_epochs", "panel_status")} == {
        "planned_trials": 4, "training_epochs": 40, "panel_status": "complete",
    }  # fmt: skip
    for name in ("A", "B"):
        steps, scores = run.history(f"{name}_validation_macro_f1")
        assert steps.tolist() == [1, 2] and all(0 <= s <= 1 for s in scores)
    written = [f"seed-study/{f}" for f in ("plan.json", "split-manifest.json", "summary.json")]
    assert set(written) <= set(outputs_files(run))
    assert run.artifact("summary.json").kind == "file"
    assert run.artifact("trial-B-23.json").kind == "file"


def test_training_recovery_tracked(home: Path, tmp_path: Path) -> None:
    """blog/training-recovery: checkpoints under get_outputs_path(), metrics per epoch at
    the global step, file refs of each checkpoint."""
    run_example(
        "blog/training-recovery/train.py", "--tracked", "--epochs", "2", home=home, cwd=tmp_path
    )
    run = only_run(home)
    assert run.status == "succeeded"
    assert run.history("train_loss")[0].tolist() == [8, 16]
    assert run.outputs["restored_step"] == 0 and run.outputs["restored_checkpoint"] == "none"
    assert run.artifact("checkpoint-epoch-2").kind == "file"
    checkpoints = [f for f in outputs_files(run) if "/checkpoints/" in f]
    assert checkpoints == [f"training-recovery/checkpoints/epoch-000{epoch}.pt" for epoch in (1, 2)]


def test_training_recovery_resumes_from_the_runs_outputs(home: Path, tmp_path: Path) -> None:
    """blog/training-recovery under `polytrack run`'s POLYTRACK_RUN_ID: interrupted after an
    epoch (exit 75), then resumed by a second attempt of the same run, which finds its
    checkpoint under the same outputs path and carries the steps on."""
    managed = {"POLYTRACK_RUN_ID": "recovery1"}
    script = "blog/training-recovery/train.py"
    run_example(
        script, "--tracked", "--epochs", "2", "--interrupt-at-step", "12",
        home=home, cwd=tmp_path, environ=managed, expect=75,
    )  # fmt: skip
    # Its status now: "failed" on Python 3.12+; before, a `raise SystemExit(75)` by hand is
    # recorded "succeeded" (its code is unknown at exit: see polytrack/_state.py).
    run_example(
        script, "--tracked", "--epochs", "2", "--resume",
        home=home, cwd=tmp_path, environ=managed,
    )  # fmt: skip
    run = only_run(home)
    assert (run.id, run.status, run.attempts) == ("recovery1", "succeeded", 2)
    assert run.outputs["restored_step"] == 8
    assert run.outputs["restored_checkpoint"] == "epoch-0001.pt"
    assert run.history("train_loss")[0].tolist() == [8, 16]


# -- scripts on Polyaxon's contrib callbacks: they run once those modules land ----------

Check = Callable[[RunView], None]


def _classifier(run: RunView) -> None:
    assert "accuracy" in run.metrics
    # The script's pickle and, by the contrib helper's choice, maybe its own: both "model".
    assert run.artifact("model").kind == "model"
    assert data_refs(run) == ["x_train", "y_train", "x_test", "y_test"]


def _regressor(run: RunView) -> None:
    assert {"r2", "mae"} <= set(run.metrics)
    assert run.artifact("model").kind == "model"


def _xgboost(run: RunView) -> None:
    assert len(run.history("eval-rmse")[0]) == 20
    assert len(run.history("train-mae")[0]) == 20
    assert data_refs(run) == ["x_train", "y_train", "X_test", "y_test"]


def _keras_mnist(run: RunView) -> None:
    assert (run.project, run.tags) == ("demo", ("keras",))
    assert run.params["conv1_size"] == 4
    assert "eval_accuracy" in run.outputs
    assert "loss" in run.metrics or "epoch/loss" in run.metrics


def _keras_lstm(run: RunView) -> None:
    assert run.params["max_features"] == 100
    assert "accuracy" in run.outputs


CONTRIB: list[tuple[str, tuple[str, ...], str, tuple[str, ...], Check]] = [
    (
        "in_cluster/sklearn/digits/model.py", ("--n_estimators", "3", "--max_depth", "2"),
        "scikit", ("sklearn",), _classifier,
    ),
    ("in_cluster/sklearn/boston/model.py", ("--n_estimators", "3"), "scikit", ("sklearn",),
     _regressor),
    ("in_cluster/xgboost/boston/model.py", (), "xgboost", ("xgboost", "pandas"), _xgboost),
    (
        "tracking/keras/mnist/model.py",
        ("--conv1_size", "4", "--conv2_size", "4", "--hidden1_size", "8"),
        "keras", ("keras",), _keras_mnist,
    ),
    (
        "tracking/keras/bidirectional_lstm/model.py",
        ("--max_features", "100", "--maxlen", "20", "--num_nodes", "2", "--batch_size", "16"),
        "keras", ("keras",), _keras_lstm,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "args", "contrib", "needs", "check"),
    CONTRIB,
    ids=[entry[0].rsplit("/", 1)[0] for entry in CONTRIB],
)
def test_contrib_examples(
    home: Path,
    tmp_path: Path,
    script: str,
    args: tuple[str, ...],
    contrib: str,
    needs: tuple[str, ...],
    check: Check,
) -> None:
    """The scripts on polytrack.tracking.contrib.<framework>: run and recorded."""
    for module in needs:
        pytest.importorskip(module)
    pytest.importorskip(f"polytrack.tracking.contrib.{contrib}")
    run_example(script, *args, home=home, cwd=tmp_path)
    run = only_run(home)
    assert run.status == "succeeded"
    check(run)
