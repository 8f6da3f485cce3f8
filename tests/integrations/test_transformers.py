"""The Transformers callback on a real Trainer with a tiny BERT built from a config (CPU,
no Hub), read back from the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack.errors import InvalidInputError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from polytrack.integrations.transformers import PolytrackCallback  # noqa: E402

RUN_ARGS: dict[str, Any] = {"project": "hf", "capture": False}
VOCAB, LENGTH = 50, 8


class TinyData(torch.utils.data.Dataset):
    """Random token ids and labels, the same for a seed."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
        self.labels = torch.randint(0, 2, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH * 4,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def trainer(tmp_path: Path, callback: Any, model: Any = None, **options: Any) -> Any:
    """6 steps of 4 samples, the loss logged every 2 steps, evaluated every 3."""
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **options,
    )
    return transformers.Trainer(
        model=model if model is not None else tiny_bert(),
        args=args,
        train_dataset=TinyData(24, 0),
        eval_dataset=TinyData(8, 1),
        callbacks=[callback],
    )


def test_logs_are_grouped_at_the_global_step_with_arguments_and_config(tmp_path: Path) -> None:
    """Training logs land as train/<name>, evaluation as eval/<name> at the global step;
    the totals are outputs; the arguments and the model's config are params."""
    callback = PolytrackCallback(**RUN_ARGS)
    job = trainer(tmp_path, callback, run_name="tiny-bert")
    job.train()
    view = polytrack.get_run(callback.run.id)

    assert view.status == "succeeded"  # started by the callback, finished at train end
    assert view.name == "tiny-bert"
    assert view.history("train/loss")[0].tolist() == [2, 4, 6]
    assert view.history("eval/loss")[0].tolist() == [3, 6]
    assert {"train/learning_rate", "train/grad_norm", "train/epoch", "eval/runtime"} <= set(
        view.metrics
    )
    assert not {"loss", "eval_loss", "train_loss", "train/train_runtime"} & set(view.metrics)
    losses = [e["eval_loss"] for e in job.state.log_history if "eval_loss" in e]
    assert view.history("eval/loss")[1].tolist() == pytest.approx(losses)
    assert set(view.outputs) >= {"train_runtime", "train_loss", "total_flos"}
    assert view.outputs["train_loss"] == pytest.approx(job.state.log_history[-1]["train_loss"])
    assert view.params["learning_rate"] == pytest.approx(5e-5)
    assert view.params["per_device_train_batch_size"] == 4
    assert view.params["max_steps"] == 6
    assert view.params["model.hidden_size"] == 16
    assert view.params["model.id2label.1"] == "LABEL_1"
    assert view.params["model.num_parameters"] == job.model.num_parameters()
    assert view.artifacts() == []  # no model unless asked


def test_predict_metrics_go_to_the_test_group_of_the_current_run(tmp_path: Path) -> None:
    """A current run is recorded into and left running; `Trainer.predict`'s metrics,
    which the Trainer does not log, are recorded as test/<name>."""
    run = polytrack.init(**RUN_ARGS)
    callback = PolytrackCallback()
    job = trainer(tmp_path, callback)
    job.train()
    assert callback.run is run and not run.finished
    metrics = job.predict(TinyData(8, 2)).metrics
    run.finish()
    view = polytrack.get_run(run.id)

    steps, values = view.history("test/loss")
    assert (steps.tolist(), values.tolist()) == ([6], [pytest.approx(metrics["test_loss"])])


def test_the_final_model_is_kept_when_the_environment_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POLYTRACK_LOG_MODEL=true keeps the trained model (save_pretrained), framework
    "transformers", and it loads back to the same outputs."""
    monkeypatch.setenv("POLYTRACK_LOG_MODEL", "true")
    callback = PolytrackCallback(**RUN_ARGS)
    job = trainer(tmp_path, callback)
    job.train()
    view = polytrack.get_run(callback.run.id)

    model = view.artifact("model")
    assert (model.kind, model.framework) == ("model", "transformers")
    assert {"config.json", "model.safetensors"} <= {f.path for f in model.files}
    assert model.metadata["global_step"] == 6
    restored = transformers.BertForSequenceClassification.from_pretrained(
        model.download(tmp_path / "restored")
    )
    batch = TinyData(4, 3).ids
    job.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(batch).logits, job.model(batch).logits)


def test_log_model_argument_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log_model=False keeps no model whatever POLYTRACK_LOG_MODEL says; a value that is
    no boolean is refused when the callback is made."""
    monkeypatch.setenv("POLYTRACK_LOG_MODEL", "1")
    callback = PolytrackCallback(log_model=False, **RUN_ARGS)
    trainer(tmp_path, callback).train()
    assert polytrack.get_run(callback.run.id).artifacts() == []
    monkeypatch.setenv("POLYTRACK_LOG_MODEL", "sometimes")
    with pytest.raises(InvalidInputError, match="POLYTRACK_LOG_MODEL"):
        PolytrackCallback()


def test_the_callback_class_itself_can_be_given(tmp_path: Path) -> None:
    """`callbacks=[PolytrackCallback]` (the class; the Trainer makes it) records too."""
    run = polytrack.init(**RUN_ARGS)
    trainer(tmp_path, PolytrackCallback).train()
    run.finish()
    assert polytrack.get_run(run.id).history("train/loss")[0].tolist() == [2, 4, 6]


def test_processes_other_than_world_zero_record_nothing(tmp_path: Path) -> None:
    """Where `state.is_world_process_zero` is False no run is started or written."""
    callback = PolytrackCallback(**RUN_ARGS)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none")
    state = transformers.TrainerState(is_world_process_zero=False, global_step=3)
    control = transformers.TrainerControl()
    callback.on_train_begin(args, state, control, model=tiny_bert())
    callback.on_log(args, state, control, logs={"loss": 0.5})
    callback.on_predict(args, state, control, metrics={"test_loss": 0.5})
    callback.on_train_end(args, state, control)
    assert callback.run is None
    assert polytrack.current_run() is None
    assert polytrack.runs(project="hf") == []


def test_only_numbers_are_recorded_tensors_and_numpy_scalars_included(tmp_path: Path) -> None:
    """Values that are not numbers (text, lists, many-element tensors) are left out; a
    1-element tensor and a numpy scalar are recorded as their number."""
    callback = PolytrackCallback(**RUN_ARGS)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none")
    state = transformers.TrainerState(global_step=7)
    logs = {
        "loss": torch.tensor([0.25]),
        "grad_norm": np.float32(1.5),
        "note": "warmup",
        "flag": True,
        "lengths": [1, 2],
        "logits": torch.zeros(2),
        "eval_accuracy": 0.5,
    }
    callback.on_log(args, state, transformers.TrainerControl(), logs=logs)
    run = callback.run
    assert run is not None
    run.finish()
    view = polytrack.get_run(run.id)
    assert set(view.metrics) == {"train/loss", "train/grad_norm", "eval/accuracy"}
    assert view.history("train/grad_norm")[1].tolist() == [1.5]
    assert view.history("train/loss")[0].tolist() == [7]


def test_without_transformers_the_import_names_the_extra() -> None:
    """Importing the integration where Transformers is missing says which extra to install."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['transformers'] = None\n"
            "try:\n"
            "    import polytrack.integrations.transformers\n"
            "except ImportError as exc:\n"
            "    print(exc)\n",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "pip install 'polytrack[transformers]'" in done.stdout, done.stderr
