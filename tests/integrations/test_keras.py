"""The Keras 3 callback on a real two-layer model (torch backend, CPU), read back from the store."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack.errors import InvalidInputError

keras = pytest.importorskip("keras")

from polytrack.integrations.keras import PolytrackCallback  # noqa: E402

# Keras's torch backend turns variables into numpy arrays the NumPy 1 way (keras#20742).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

SAMPLES, BATCH = 32, 8  # four training batches an epoch
RUN_ARGS: dict[str, Any] = {"project": "keras", "capture": False}


def tiny_model() -> Any:
    """Dense(8) -> Dense(1): 4*8+8 + 8*1+1 = 49 parameters."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


def tiny_data(seed: int = 0, n: int = SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4), dtype=np.float32)
    return x, (x.sum(axis=1, keepdims=True) + rng.normal(0, 0.1, (n, 1))).astype(np.float32)


def fit(model: Any, callback: Any, epochs: int = 3, *, validation: bool = True) -> Any:
    x, y = tiny_data()
    return model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=BATCH,
        validation_data=tiny_data(1, 16) if validation else None,
        callbacks=[callback],
        verbose=0,
        shuffle=False,
    )


def test_epoch_metrics_params_and_summary_reach_the_run(tmp_path: Path) -> None:
    """Keras's epoch logs land at step = epoch under Keras's names, with the optimizer's
    and compile's settings and the model's size as params, and its summary as a file."""
    callback = PolytrackCallback(**RUN_ARGS)
    model = tiny_model()
    history = fit(model, callback)
    view = polytrack.get_run(callback.run.id)

    assert view.status == "succeeded"  # the callback started the run, and finished it
    assert set(view.metrics) == {"loss", "mae", "val_loss", "val_mae"}
    steps, values = view.history("val_loss")
    assert steps.tolist() == [0, 1, 2]
    np.testing.assert_allclose(values, history.history["val_loss"], rtol=1e-6)
    assert view.params["model.params"] == 49
    assert view.params["model.trainable_params"] == 49
    assert view.params["model.layers"] == 2
    assert view.params["optimizer.class"] == "Adam"
    assert view.params["optimizer.learning_rate"] == pytest.approx(0.01)
    assert view.params["optimizer.beta_1"] == pytest.approx(0.9)
    assert view.params["loss"] == "mse"
    assert view.params["metrics"] == ["mae"]
    best = int(np.argmin(history.history["val_loss"]))
    assert view.outputs["best_epoch"] == best
    assert view.outputs["best_val_loss"] == pytest.approx(history.history["val_loss"][best])
    summary = view.artifact("model_summary").download(tmp_path / "summary").read_text()
    assert "Trainable params: 49 " in summary
    # Keras numbers layer names process-wide (dense_1 in a fresh process, more after others)
    assert f"{model.layers[-1].name} (Dense)" in summary
    assert [a.name for a in view.artifacts()] == ["model_summary"]  # no model unless asked


def test_batch_metrics_share_one_global_step_with_epochs() -> None:
    """With log_every_n_batches, batch logs are `batch/<name>` every n batches and the
    epoch logs go to the same global batch step, with the metric `epoch`."""
    callback = PolytrackCallback(log_every_n_batches=2, metrics=["loss"], **RUN_ARGS)
    fit(tiny_model(), callback, epochs=2, validation=False)
    view = polytrack.get_run(callback.run.id)

    assert set(view.metrics) == {"batch/loss", "loss", "epoch"}
    assert view.history("batch/loss")[0].tolist() == [2, 4, 6, 8]
    assert view.history("loss")[0].tolist() == [4, 8]
    steps, epochs = view.history("epoch")
    assert (steps.tolist(), epochs.tolist()) == ([4, 8], [0.0, 1.0])


def test_best_model_is_kept_as_a_keras_file_that_loads(tmp_path: Path) -> None:
    """log_model=True keeps the model at each improvement of `monitor`; the last one kept
    is the best epoch's model, and Keras loads it back to the same validation loss."""
    callback = PolytrackCallback(log_model=True, monitor="val_loss", mode="min", **RUN_ARGS)
    history = fit(tiny_model(), callback, epochs=3)
    view = polytrack.get_run(callback.run.id)

    val_losses = history.history["val_loss"]
    improvements = [i for i, v in enumerate(val_losses) if v < min(val_losses[:i], default=np.inf)]
    models = [a for a in view.artifacts() if a.name == "model"]
    assert [m.metadata["epoch"] for m in models] == improvements
    latest = view.artifact("model")
    assert (latest.kind, latest.framework) == ("model", "keras")
    assert [f.path for f in latest.files] == ["model.keras"]
    restored = keras.saving.load_model(latest.download(tmp_path / "restored"))
    x_val, y_val = tiny_data(1, 16)
    loss = restored.evaluate(x_val, y_val, batch_size=BATCH, verbose=0)[0]
    assert loss == pytest.approx(min(val_losses), rel=1e-5)
    assert latest.metadata["val_loss"] == pytest.approx(min(val_losses))


def test_without_the_monitor_the_final_weights_are_kept() -> None:
    """When `monitor` never appears (no validation data), the model as training left it
    is kept once, at the end; save_weights_only keeps `model.weights.h5`."""
    callback = PolytrackCallback(log_model=True, save_weights_only=True, **RUN_ARGS)
    fit(tiny_model(), callback, epochs=2, validation=False)
    view = polytrack.get_run(callback.run.id)

    models = [a for a in view.artifacts() if a.name == "model"]
    assert len(models) == 1
    assert [f.path for f in models[0].files] == ["model.weights.h5"]
    assert models[0].metadata == {"final": True}
    assert "best_val_loss" not in view.outputs


def test_records_into_the_current_run_and_leaves_it_running() -> None:
    """A callback made while a run is current records there and does not finish it."""
    run = polytrack.init(**RUN_ARGS, name="mine")
    callback = PolytrackCallback()
    fit(tiny_model(), callback, epochs=2)
    assert callback.run is run
    assert not run.finished
    run.log_metrics({"after": 1.0}, step=5)
    run.finish()
    view = polytrack.get_run(run.id)
    assert view.name == "mine"
    assert {"loss", "val_loss", "after"} <= set(view.metrics)


def test_a_callback_reused_across_runs_follows_the_current_run() -> None:
    """One callback, two `with polytrack.init()` folds: each fold's epochs go into that
    fold's run, not into the first run after it finished."""
    callback = PolytrackCallback(metrics=["loss"])
    model = tiny_model()
    folds = []
    for fold in range(2):
        with polytrack.init(**RUN_ARGS, name=f"fold{fold}") as run:
            fit(model, callback, epochs=2, validation=False)
            assert callback.run is run
        folds.append(run.id)
    for run_id in folds:
        assert polytrack.get_run(run_id).history("loss")[0].tolist() == [0, 1]


def test_a_second_fit_records_a_second_run() -> None:
    """A callback that started (and finished) a run starts another for the next fit(),
    whose global batch steps count from the start again."""
    callback = PolytrackCallback(log_every_n_batches=4, metrics=["loss"], **RUN_ARGS)
    model = tiny_model()
    fit(model, callback, epochs=1, validation=False)
    first = callback.run.id
    fit(model, callback, epochs=1, validation=False)
    second = callback.run.id
    assert first != second
    for run_id in (first, second):
        view = polytrack.get_run(run_id)
        assert view.status == "succeeded"
        assert view.history("batch/loss")[0].tolist() == [4]


def test_auto_mode_maximizes_an_accuracy() -> None:
    """mode="auto" keeps the epoch with the highest accuracy, as ModelCheckpoint would."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((SAMPLES, 4), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    callback = PolytrackCallback(monitor="val_accuracy", **RUN_ARGS)
    history = model.fit(
        x, y, epochs=3, batch_size=BATCH, validation_data=(x, y), callbacks=[callback], verbose=0
    )
    view = polytrack.get_run(callback.run.id)
    assert view.outputs["best_val_accuracy"] == pytest.approx(max(history.history["val_accuracy"]))


def test_a_disabled_run_saves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With POLYTRACK_MODE=disabled the callback records nothing and saves no model."""
    monkeypatch.setenv("POLYTRACK_MODE", "disabled")
    callback = PolytrackCallback(log_model=True, project="keras")
    fit(tiny_model(), callback, epochs=1)
    assert isinstance(callback.run, polytrack.DisabledRun)
    assert polytrack.runs(project="keras") == []


@pytest.mark.parametrize(
    ("options", "message"),
    [({"mode": "best"}, "mode must be"), ({"log_every_n_batches": 0}, "log_every_n_batches")],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    """A mode other than auto/min/max, or a batch interval under 1, is refused at once."""
    with pytest.raises(InvalidInputError, match=message):
        PolytrackCallback(**options)


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_without_keras_the_import_names_the_extra() -> None:
    """Importing the integration where Keras is missing says which extra to install."""
    done = _python(
        "import sys; sys.modules['keras'] = None\n"
        "try:\n"
        "    import polytrack.integrations.keras\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'polytrack[keras]'" in done.stdout, done.stderr


def test_a_backend_that_is_not_installed_is_named(tmp_path: Path) -> None:
    """Keras present but its backend missing (TensorFlow, Keras's default) is told apart
    from Keras missing: the message says to set KERAS_BACKEND."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(HOME=str(tmp_path), KERAS_HOME=str(tmp_path / ".keras"))
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: Keras's default backend loads")
    done = _python(
        "try:\n"
        "    import polytrack.integrations.keras\n"
        "except ImportError as exc:\n"
        "    print(exc)\n",
        env,
    )
    assert "set KERAS_BACKEND" in done.stdout, done.stderr
    assert "tensorflow" in done.stdout


def test_the_integration_imports_no_other_framework() -> None:
    """Importing the Keras integration loads neither Transformers nor Lightning."""
    done = _python(
        "import sys, polytrack.integrations.keras\n"
        "print(sorted(m for m in ('transformers', 'lightning', 'pytorch_lightning') "
        "if m in sys.modules))\n"
    )
    assert done.stdout.strip() == "[]", done.stderr
