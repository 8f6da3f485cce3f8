"""Polyaxon's Keras and Transformers callbacks (`polytrack.tracking.contrib.keras`,
`.hugging_face`): Polyaxon's names and arguments, recording through the integrations."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack import tracking

keras = pytest.importorskip("keras")
transformers = pytest.importorskip("transformers")

from polytrack.tracking.contrib import hugging_face, keras as contrib_keras  # noqa: E402

from .test_keras import BATCH, fit, tiny_data, tiny_model  # noqa: E402
from .test_transformers import trainer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _signature(cls: type) -> list[tuple[str, Any]]:
    return [
        (p.name, p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self"
    ]


def test_keras_callback_has_polyaxons_names_and_arguments() -> None:
    """PolyaxonCallback (alias PolyaxonKerasCallback) takes traceml's Keras Callback
    arguments, in order, with their defaults; the checkpoint takes run and filepath."""
    assert contrib_keras.PolyaxonKerasCallback is contrib_keras.PolyaxonCallback
    assert _signature(contrib_keras.PolyaxonCallback) == [
        ("run", None),
        ("metrics", None),
        ("log_model", True),
        ("save_weights_only", False),
        ("log_best_prefix", "best"),
        ("mode", "auto"),
        ("monitor", "val_loss"),
        ("use_store_path", False),
    ]
    assert _signature(contrib_keras.PolyaxonKerasModelCheckpoint)[:2] == [
        ("run", None),
        ("filepath", None),
    ]
    assert _signature(hugging_face.PolyaxonCallback) == [("run", None)]


def test_keras_callback_records_as_polyaxon_did() -> None:
    """After `tracking.init()`, the callback records the epoch logs at step = epoch,
    Polyaxon's optimizer inputs, the best value as outputs and the best model."""
    run = tracking.init(project="contrib", track_code=False, track_env=False)
    history = fit(tiny_model(), contrib_keras.PolyaxonKerasCallback(run=run), epochs=2)
    tracking.end()
    view = polytrack.get_run(run.run_uuid)

    assert view.status == "succeeded"
    assert view.history("val_loss")[0].tolist() == [0, 1]
    assert view.params["num_layers"] == 2
    assert view.params["optimizer_name"] == "Adam"
    assert view.params["optimizer_lr"] == pytest.approx(0.01)
    assert view.params["optimizer_epsilon"] == pytest.approx(1e-7)
    best = int(np.argmin(history.history["val_loss"]))
    assert view.outputs["best_epoch"] == best
    assert view.outputs["best_val_loss"] == pytest.approx(history.history["val_loss"][best])
    model = view.artifact("model")  # log_model=True by default, as Polyaxon's
    assert (model.framework, model.metadata["epoch"]) == ("keras", best)


def test_model_checkpoint_keeps_each_file_keras_saves(tmp_path: Path) -> None:
    """PolyaxonKerasModelCheckpoint saves where it is told, as ModelCheckpoint, and
    keeps each saved file as the model `model`, with its epoch."""
    run = polytrack.init(project="contrib", capture=False)
    checkpoint = contrib_keras.PolyaxonKerasModelCheckpoint(
        filepath=tmp_path / "ckpt-{epoch}.keras", monitor="val_loss"
    )
    fit(tiny_model(), checkpoint, epochs=2)
    run.finish()
    view = polytrack.get_run(run.id)

    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-1.keras", "ckpt-2.keras"]
    models = [a for a in view.artifacts() if a.name == "model"]
    assert [(m.metadata["epoch"], [f.path for f in m.files]) for m in models] == [
        (0, ["ckpt-1.keras"]),
        (1, ["ckpt-2.keras"]),
    ]
    assert models[1].digest == polytrack.get_run(run.id).artifact("model").digest
    restored = keras.saving.load_model(models[1].download(tmp_path / "restored"))
    x, _ = tiny_data(1, 4)
    assert restored.predict(x, batch_size=BATCH, verbose=0).shape == (4, 1)


def test_model_checkpoint_default_path_is_temporary() -> None:
    """Without filepath the checkpoint saves into a folder of its own, removed when
    training ends; it starts and finishes a run when none is current; save_best_only
    saves (and so keeps) only improvements."""
    checkpoint = contrib_keras.PolyaxonKerasModelCheckpoint(save_best_only=True)
    history = fit(tiny_model(), checkpoint, epochs=3)
    (view,) = polytrack.runs()
    assert view.status == "succeeded"
    val_losses = history.history["val_loss"]
    improvements = [i for i, v in enumerate(val_losses) if v < min(val_losses[:i], default=np.inf)]
    models = [a for a in view.artifacts() if a.name == "model"]
    assert [m.metadata["epoch"] for m in models] == improvements
    assert [f.path for f in models[-1].files] == ["model.keras"]
    assert Path(checkpoint.filepath).name == "model.keras"
    assert not Path(checkpoint.filepath).parent.exists()
    assert not list(Path.cwd().glob("*.keras"))


def test_hugging_face_callback_keeps_the_trainers_names(tmp_path: Path) -> None:
    """Polyaxon's Transformers callback records every number under the Trainer's name
    (`loss`, `eval_loss`, `train_runtime`) at the global step, and the arguments."""
    run = tracking.init(project="contrib", track_code=False, track_env=False)
    trainer(tmp_path, hugging_face.PolyaxonCallback(run=run)).train()
    tracking.end()
    view = polytrack.get_run(run.run_uuid)

    assert view.history("loss")[0].tolist() == [2, 4, 6]
    assert view.history("eval_loss")[0].tolist() == [3, 6]
    assert view.history("train_runtime")[0].tolist() == [6]
    assert not any(key.startswith(("train/", "eval/")) for key in view.metrics)
    assert view.params["learning_rate"] == pytest.approx(5e-5)
    assert view.params["model.hidden_size"] == 16


def test_hugging_face_callback_class_finds_the_tracking_run(tmp_path: Path) -> None:
    """`callbacks=[PolyaxonCallback]`, as Polyaxon's docs write it, records into the run
    `tracking.init()` started."""
    run = tracking.init(project="contrib", track_code=False, track_env=False)
    trainer(tmp_path, hugging_face.PolyaxonCallback).train()
    tracking.end()
    assert polytrack.get_run(run.run_uuid).history("eval_loss")[0].tolist() == [3, 6]
