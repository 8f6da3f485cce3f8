"""polytrack.integrations.ignite: a real Ignite trainer and evaluator on a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ignite")

import torch
from ignite.engine import Engine, Events, create_supervised_evaluator, create_supervised_trainer
from ignite.metrics import Loss, MeanSquaredError
from torch.utils.data import DataLoader, TensorDataset

import polytrack
from polytrack.integrations.ignite import (
    OptimizerParamsHandler,
    OutputHandler,
    PolytrackLogger,
    global_step_from_engine,
)


def _loader() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def _engines() -> tuple[Engine, Engine, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss = torch.nn.MSELoss()
    trainer = create_supervised_trainer(model, optimizer, loss)
    evaluator = create_supervised_evaluator(
        model, metrics={"mse": MeanSquaredError(), "loss": Loss(loss)}
    )
    return trainer, evaluator, optimizer


def test_trainer_and_evaluator_metrics_at_their_global_steps(tmp_path: Path) -> None:
    """Training losses at each iteration, evaluator metrics at the trainer's epoch, lr too."""
    home = tmp_path / "home"
    trainer, evaluator, optimizer = _engines()
    losses: list[float] = []
    evaluated: list[dict[str, float]] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output))

    @trainer.on(Events.EPOCH_COMPLETED)
    def _evaluate(engine: Engine) -> None:
        evaluator.run(_loader())
        evaluated.append(dict(evaluator.state.metrics))

    with PolytrackLogger(project="ign", dir=home, capture=False) as logger:
        logger.attach_output_handler(
            trainer,
            event_name=Events.ITERATION_COMPLETED,
            tag="training",
            output_transform=lambda loss: {"loss": loss},
        )
        logger.attach_output_handler(
            evaluator,
            event_name=Events.EPOCH_COMPLETED,
            tag="validation",
            metric_names="all",
            global_step_transform=global_step_from_engine(trainer),
        )
        logger.attach_opt_params_handler(
            trainer, event_name=Events.ITERATION_STARTED, optimizer=optimizer
        )
        logger.log_params({"lr": 0.05})  # the run's own method, through the logger
        trainer.run(_loader(), max_epochs=2)
        run_id = logger.run.id

    view = polytrack.get_run(run_id, home=home)
    assert view.status == "succeeded"
    assert view.params == {"lr": 0.05}
    steps, values = view.history("training/loss")
    assert steps.tolist() == list(range(1, 9))
    assert values.tolist() == losses
    for key in ("mse", "loss"):
        steps, values = view.history(f"validation/{key}")
        assert steps.tolist() == [1, 2]
        assert values.tolist() == pytest.approx([e[key] for e in evaluated])
    steps, values = view.history("lr/group_0")
    assert steps.tolist() == list(range(1, 9))
    assert values.tolist() == [0.05] * 8


def test_handlers_attached_with_attach_and_state_attributes(tmp_path: Path) -> None:
    """Handlers made by hand record state attributes and a tagged optimizer parameter."""
    home = tmp_path / "home"
    trainer, _, optimizer = _engines()
    trainer.state.alpha = 0.5  # type: ignore[attr-defined]
    logger = PolytrackLogger(project="ign", dir=home, capture=False)
    logger.attach(
        trainer,
        log_handler=OutputHandler(tag="train", state_attributes=["alpha"]),
        event_name=Events.EPOCH_COMPLETED,
    )
    logger.attach(
        trainer,
        log_handler=OptimizerParamsHandler(optimizer, param_name="lr", tag="generator"),
        event_name=Events.EPOCH_STARTED,
    )
    trainer.run(_loader(), max_epochs=3)
    logger.close()
    view = polytrack.get_run(logger.run.id, home=home)
    assert view.history("train/alpha")[0].tolist() == [1, 2, 3]
    assert view.history("train/alpha")[1].tolist() == [0.5] * 3
    assert view.history("generator/lr/group_0")[0].tolist() == [1, 2, 3]


def test_records_into_the_current_run_and_leaves_it_open(tmp_path: Path) -> None:
    """With a run current, the logger records into it; close() leaves it running."""
    home = tmp_path / "home"
    run = polytrack.init(project="mine", dir=home, capture=False)
    trainer, _, _ = _engines()
    logger = PolytrackLogger()
    logger.attach_output_handler(
        trainer, event_name=Events.ITERATION_COMPLETED, tag="t", output_transform=lambda x: x
    )
    trainer.run(_loader(), max_epochs=1)
    logger.close()
    assert logger.run is run and not run.finished
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert view.history("t/output")[0].tolist() == [1, 2, 3, 4]


def test_handler_refuses_another_logger(tmp_path: Path) -> None:
    """Polytrack's handlers name the logger they need when attached to another."""
    from ignite.handlers.base_logger import BaseLogger

    class Other(BaseLogger):
        def _create_output_handler(self, *args: Any, **kwargs: Any) -> Any: ...
        def _create_opt_params_handler(self, *args: Any, **kwargs: Any) -> Any: ...

    trainer, _, _ = _engines()
    Other().attach(trainer, OutputHandler("t", output_transform=lambda x: x), Events.STARTED)
    with pytest.raises(polytrack.InvalidInputError, match="PolytrackLogger"):
        trainer.run(_loader(), max_epochs=1)


def test_a_with_block_that_raises_finishes_the_run_failed(tmp_path: Path) -> None:
    """A `with PolytrackLogger()` block left by an exception records the run as failed."""
    home = tmp_path / "home"
    trainer, _, _ = _engines()

    @trainer.on(Events.ITERATION_COMPLETED(once=2))
    def _crash(engine: Engine) -> None:
        raise ValueError("diverged")

    logger = PolytrackLogger(project="ign", dir=home, capture=False)
    with pytest.raises(ValueError, match="diverged"), logger:
        logger.attach_output_handler(
            trainer, event_name=Events.ITERATION_COMPLETED, tag="t", output_transform=lambda x: x
        )
        trainer.run(_loader(), max_epochs=1)
    assert logger.run.finished
    view = polytrack.get_run(logger.run.id, home=home)
    assert view.status == "failed"
    assert view.history("t/output")[0].tolist() == [1]  # the crash came first at 2
