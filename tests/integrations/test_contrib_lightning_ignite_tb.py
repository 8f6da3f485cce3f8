"""Polyaxon's contrib names for PyTorch Lightning, Ignite and TensorBoard: Polyaxon's
calls, recorded through polytrack's integrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("lightning")
pytest.importorskip("ignite")
pytest.importorskip("tensorboard")

import lightning as L
import torch
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.handlers.polyaxon_logger import (
    OutputHandler as IgnitePolyaxonOutputHandler,
    PolyaxonLogger as IgnitePolyaxonLogger,
)
from ignite.metrics import MeanSquaredError
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import summary as tb_summary

import polytrack
from polytrack import tracking
from polytrack.tracking.contrib import (
    ignite as plx_ignite,
    pytorch_lightning as plx_lightning,
    tensorboard as plx_tensorboard,
)
from polytrack.tracking.run import Run as TrackingRun

pytestmark = [
    # Lightning 2.6 on torch 2.13: its own use of torch's deprecated pytree LeafSpec.
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)`:FutureWarning"),
]


class TinyModel(L.LightningModule):
    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def _fit(tmp_path: Path, logger: Any, max_epochs: int = 1) -> L.Trainer:
    trainer = L.Trainer(
        logger=logger, max_epochs=max_epochs, log_every_n_steps=1, accelerator="cpu",
        devices=1, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(TinyModel(lr=0.02), _loader())
    return trainer


def test_lightning_callback_records_into_tracking_run_and_leaves_it_open(
    tmp_path: Path,
) -> None:
    """PolyaxonCallback(prefix=...) records into tracking.init()'s run, keys joined by "_",
    hparams as inputs; without end_on_finalize the run goes on; experiment is the Run."""
    assert plx_lightning.PolyaxonCallback is plx_lightning.Callback
    run = tracking.init(project="plx", name="lit")
    logger = plx_lightning.PolyaxonCallback(prefix="fit")
    trainer = _fit(tmp_path, logger)
    assert isinstance(logger.experiment, TrackingRun)
    assert logger.experiment.run_uuid == run.run_uuid
    assert logger.name == "lit" and logger.version == run.run_uuid
    assert trainer.checkpoint_callback is not None
    assert Path(trainer.checkpoint_callback.dirpath).is_relative_to(logger.save_dir or "")
    assert run.polytrack_run.status == "running"
    logger.experiment.log_outputs(done=True)
    tracking.end()
    view = polytrack.get_run(run.run_uuid)
    assert view.status == "succeeded"
    assert view.params == {"lr": 0.02}
    assert view.history("fit_train_loss")[0].tolist() == [0, 1, 2, 3]
    assert view.outputs == {"done": True}


def test_lightning_callback_end_on_finalize_and_model_summary(tmp_path: Path) -> None:
    """Callback(project=..., end_on_finalize=True) starts a run, ends it at finalize, and
    log_model_summary keeps the summary as the file `model_summary`."""
    logger = plx_lightning.Callback(project="plx", name="own", end_on_finalize=True)
    logger.log_model_summary(TinyModel())
    _fit(tmp_path, logger)
    (view,) = polytrack.runs(project="plx")
    assert (view.name, view.status) == ("own", "succeeded")
    assert view.history("train_loss")[0].tolist() == [0, 1, 2, 3]
    summary = view.artifact("model_summary").download(tmp_path / "summary")
    assert "Linear" in summary.read_text()


def test_ignite_polyaxon_logger_takes_ignites_own_polyaxon_handlers(tmp_path: Path) -> None:
    """PolyaxonLogger(project=...) is Ignite's PolyaxonLogger to Ignite: its handlers and
    ours both record; other attributes are the tracking Run's; close() ends the run."""
    assert plx_ignite.PolyaxonIgniteLogger is plx_ignite.PolyaxonLogger is plx_ignite.Logger
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = create_supervised_trainer(model, optimizer, torch.nn.MSELoss())
    evaluator = create_supervised_evaluator(model, metrics={"mse": MeanSquaredError()})
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run(_loader()))

    plx_logger = plx_ignite.PolyaxonLogger(project="plx", name="ign")
    assert isinstance(plx_logger, IgnitePolyaxonLogger)
    plx_logger.log_inputs(batch_size=4)
    plx_logger.attach_output_handler(
        trainer, event_name=Events.ITERATION_COMPLETED, tag="training",
        output_transform=lambda loss: {"loss": loss},
    )  # fmt: skip
    plx_logger.attach(
        evaluator,
        log_handler=IgnitePolyaxonOutputHandler(
            tag="validation", metric_names=["mse"],
            global_step_transform=lambda *_: trainer.state.epoch,
        ),
        event_name=Events.EPOCH_COMPLETED,
    )  # fmt: skip
    trainer.run(_loader(), max_epochs=2)
    run_id = plx_logger.experiment.run_uuid
    plx_logger.close()

    view = polytrack.get_run(run_id)
    assert (view.name, view.status) == ("ign", "succeeded")
    assert view.params == {"batch_size": 4}
    assert view.history("training/loss")[0].tolist() == list(range(1, 9))
    assert view.history("validation/mse")[0].tolist() == [1, 2]


def _summary_bytes() -> bytes:
    pixels = np.full((3, 2, 2), 255, dtype=np.uint8)
    values = [
        *tb_summary.scalar("loss", 0.5).value,
        *tb_summary.image("img", pixels, dataformats="CHW").value,
        *tb_summary.histogram("h", np.arange(8.0), bins="auto").value,
        *tb_summary.text("note", "hi").value,
    ]
    return Summary(value=values).SerializeToString()


def test_polyaxon_tensorboard_logger_records_every_kind(tmp_path: Path) -> None:
    """PolyaxonTensorboardLogger.process_summary records scalars, images, histograms and
    text at the global step, into the current run."""
    with polytrack.init(project="plx") as run:
        plx_tensorboard.PolyaxonTensorboardLogger.process_summary(_summary_bytes(), 2)
        assert [item.step for item in run.media("img")] == [2]
        assert [item.step for item in run.media("h")] == [2]
        assert [item.value for item in run.media("note")] == ["hi"]
    assert polytrack.get_run(run.id).history("loss")[0].tolist() == [2]


def test_traceml_tensorboard_logger_records_scalars_unless_switched_on(tmp_path: Path) -> None:
    """traceml's Logger records only scalars by default; log_image=True adds images."""
    assert plx_tensorboard.Logger.get_writer_name("/logs/run-1/") == "run-1"
    with polytrack.init(project="plx") as run:
        plx_tensorboard.Logger.process_summary(_summary_bytes(), global_step=1, run=run)
        assert run.media("img") == [] and run.media("note") == []
        plx_tensorboard.Logger.process_summary(
            _summary_bytes(), global_step=3, run=TrackingRun.of(run), log_image=True
        )
        assert [item.step for item in run.media("img")] == [3]
        assert run.media("h") == []
    assert polytrack.get_run(run.id).history("loss")[0].tolist() == [1, 3]
