"""polytrack.integrations.lightning: a real Lightning Trainer on a tiny model, on CPU."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import polytrack
from polytrack.integrations.lightning import PolytrackLogger

pytestmark = [
    # Lightning 2.6 on torch 2.13: its own use of torch's deprecated pytree LeafSpec.
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)`:FutureWarning"),
]


class TinyModel(L.LightningModule):
    def __init__(self, lr: float = 0.1, net: dict[str, Any] | None = None, fail_at: int = -1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError("boom at step 2")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def _trainer(tmp_path: Path, logger: PolytrackLogger, **kwargs: Any) -> L.Trainer:
    return L.Trainer(
        logger=logger,
        max_epochs=2,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )


def test_fit_records_metrics_at_global_steps_params_and_success(tmp_path: Path) -> None:
    """Metrics land at the Trainer's global steps, hparams as params, the run succeeds."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False, prefix="")
    model = TinyModel(lr=0.05, net={"depth": 2, "acts": ("relu", "tanh")})
    _trainer(tmp_path, logger, enable_checkpointing=False).fit(model, _loader(), _loader())

    view = polytrack.get_run(logger.version or "", home=home)
    assert view.project == "lit" == logger.name
    assert view.status == "succeeded"
    assert view.params["lr"] == 0.05
    assert view.params["net.depth"] == 2
    assert view.params["net.acts"] == ["relu", "tanh"]
    steps, values = view.history("train_loss")
    assert steps.tolist() == list(range(8))  # 4 batches x 2 epochs
    assert all(v >= 0 for v in values)
    val_steps, _ = view.history("val_loss")
    assert val_steps.tolist() == [3, 7]  # the last training step of each epoch
    _, epochs = view.history("epoch")
    assert epochs.tolist()[0] == 0.0 and epochs.tolist()[-1] == 1.0


def test_log_model_true_records_best_checkpoint_bytes(tmp_path: Path) -> None:
    """log_model=True records the best checkpoint as model artifact `model`, same bytes."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False, log_model=True)
    checkpoint = ModelCheckpoint(monitor="val_loss", save_top_k=1, save_last=True)
    _trainer(tmp_path, logger, callbacks=[checkpoint]).fit(TinyModel(), _loader(), _loader())

    view = polytrack.get_run(logger.version or "", home=home)
    best = view.artifact("model")
    assert best.kind == "model"
    assert best.framework == "pytorch lightning"
    assert best.metadata["original_filename"] == Path(checkpoint.best_model_path).name
    assert best.metadata["aliases"] == ["latest", "best"]
    assert best.metadata["ModelCheckpoint"]["monitor"] == "val_loss"
    assert best.metadata["score"] == pytest.approx(float(checkpoint.best_model_score))
    restored = best.download(tmp_path / "restored")
    assert restored.read_bytes() == Path(checkpoint.best_model_path).read_bytes()
    last = view.artifact("checkpoints/last")
    assert (
        last.download(tmp_path / "last").read_bytes()
        == Path(checkpoint.last_model_path).read_bytes()
    )
    # Checkpoints went where Lightning puts a logger's: <root>/<name>/<version>/checkpoints.
    assert Path(checkpoint.dirpath) == tmp_path / "lit" / view.id / "checkpoints"


def test_log_model_all_keeps_checkpoints_that_lightning_deleted(tmp_path: Path) -> None:
    """log_model="all" records each save, even one ModelCheckpoint deletes later."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False, log_model="all")
    # Monitoring the epoch, "max": each epoch's checkpoint beats and deletes the last one.
    checkpoint = ModelCheckpoint(monitor="epoch", mode="max", save_top_k=1)
    _trainer(tmp_path, logger, callbacks=[checkpoint]).fit(TinyModel(), _loader(), _loader())

    assert [p.name for p in Path(checkpoint.dirpath).iterdir()] == ["epoch=1-step=8.ckpt"]
    view = polytrack.get_run(logger.version or "", home=home)
    names = [a.name for a in view.artifacts()]
    assert names.count("checkpoints/epoch=0-step=4") == 1
    assert names.count("checkpoints/epoch=1-step=8") == 1
    first = view.artifact("checkpoints/epoch=0-step=4").download(tmp_path / "first")
    assert torch.load(first, weights_only=False)["epoch"] == 0
    best = view.artifact("model").download(tmp_path / "best")
    assert torch.load(best, weights_only=False)["global_step"] == 8


def test_records_into_the_current_run_and_leaves_it_open(tmp_path: Path) -> None:
    """With a run current, the logger records into it and does not finish it."""
    home = tmp_path / "home"
    run = polytrack.init(project="mine", dir=home, capture=False)
    logger = PolytrackLogger()
    _trainer(tmp_path, logger, enable_checkpointing=False).fit(TinyModel(), _loader(), _loader())
    assert logger.experiment is run
    assert not run.finished
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert view.history("train_loss")[0].tolist() == list(range(8))


def test_test_after_fit_continues_the_same_run(tmp_path: Path) -> None:
    """trainer.test() after fit() records into the run fit() finished, not a new one."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False)
    trainer = _trainer(tmp_path, logger, enable_checkpointing=False)
    model = TinyModel()
    trainer.fit(model, _loader(), _loader())
    first_id = logger.version
    trainer.test(model, _loader(), verbose=False)
    assert logger.version == first_id
    (view,) = polytrack.runs(project="lit", home=home)
    assert view.id == first_id
    assert view.status == "succeeded"
    assert set(view.metrics) >= {"train_loss", "test_loss"}


def test_exception_in_training_finishes_the_run_failed(tmp_path: Path) -> None:
    """An exception in training_step finishes the run failed, with its message."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False)
    trainer = _trainer(tmp_path, logger, enable_checkpointing=False)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(TinyModel(fail_at=2), _loader(), _loader())
    view = polytrack.get_run(logger.version or "", home=home)
    assert view.status == "failed"
    assert view.message == "RuntimeError: boom at step 2"
    assert view.history("train_loss")[0].tolist() == [0, 1]


class ConfigLike(Mapping[str, Any]):
    """A mapping that is no dict, as OmegaConf's DictConfig."""

    def __init__(self, **values: Any) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class ListLike(Sequence[Any]):
    """A sequence that is no list, as OmegaConf's ListConfig."""

    def __init__(self, *items: Any) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


def test_log_hyperparams_takes_namespaces_and_unrecordable_values(tmp_path: Path) -> None:
    """Namespaces, config-like mappings and sequences, tuples and arbitrary objects become
    recordable params."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False)
    opt = ConfigLike(name="sgd", betas=(0.9, 0.99), layers=ListLike(8, 4))
    logger.log_hyperparams(Namespace(lr=0.1, opt=opt, act=torch.nn.ReLU()))
    logger.log_metrics({"loss": 0.5, "note": "text is left out"}, step=3)
    logger.finalize("success")
    view = polytrack.get_run(logger.version or "", home=home)
    assert view.params == {
        "lr": 0.1,
        "opt.name": "sgd",
        "opt.betas": [0.9, 0.99],
        "opt.layers": [8, 4],
        "act": "ReLU()",
    }
    assert list(view.metrics) == ["loss"]
    assert view.history("loss")[0].tolist() == [3]


def test_keyboard_interrupt_finishes_the_run_stopped(tmp_path: Path) -> None:
    """finalize("failed") while a KeyboardInterrupt is handled (as Lightning calls it)
    finishes the run stopped, not failed."""
    home = tmp_path / "home"
    logger = PolytrackLogger(project="lit", dir=home, capture=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        logger.finalize("failed")
    view = polytrack.get_run(logger.version or "", home=home)
    assert (view.status, view.message) == ("stopped", "KeyboardInterrupt")


def test_ranks_other_than_zero_record_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On global rank 1 the logger starts no run and records nothing (rank_zero_only)."""
    home = tmp_path / "home"
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = PolytrackLogger(project="lit", dir=home, capture=False)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finalize("success")
    assert logger.name is None and logger.version is None
    assert polytrack.current_run() is None
    assert not home.exists() or not polytrack.runs(home=home)


def test_log_model_is_checked() -> None:
    """log_model other than True, False or "all" is refused when the logger is made."""
    with pytest.raises(polytrack.InvalidInputError, match="log_model"):
        PolytrackLogger(log_model="best")  # type: ignore[arg-type]


def test_pytorch_lightning_trainer_takes_the_logger(tmp_path: Path) -> None:
    """The older `pytorch_lightning` package's Trainer and ModelCheckpoint work too."""
    pl = pytest.importorskip("pytorch_lightning")

    class Module(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.save_hyperparameters({"lr": 0.1})
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    home = tmp_path / "home"
    logger = PolytrackLogger(project="pl", dir=home, capture=False, log_model=True)
    trainer = pl.Trainer(
        logger=logger, max_epochs=2, log_every_n_steps=1, accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Module(), _loader())
    view = polytrack.get_run(logger.version or "", home=home)
    assert (view.status, view.params) == ("succeeded", {"lr": 0.1})
    assert view.history("loss")[0].tolist() == list(range(8))
    best = view.artifact("model").download(tmp_path / "best")
    assert best.read_bytes() == Path(trainer.checkpoint_callback.best_model_path).read_bytes()
