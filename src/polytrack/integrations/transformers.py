"""Hugging Face Transformers: a `TrainerCallback` that records a `Trainer` into a polytrack run.

```python
from polytrack.integrations.transformers import PolytrackCallback

trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                  callbacks=[PolytrackCallback(project="glue")])
trainer.train()
```

Transformers finds its own trackers by name (`TrainingArguments(report_to="wandb")`), from
a list inside Transformers; polytrack is not on it, so the callback is passed to the
`Trainer` as above (the class itself, `callbacks=[PolytrackCallback]`, works too).

What it records, as Weights & Biases' `WandbCallback` does:

- when training begins, as params: `TrainingArguments.to_sanitized_dict()` under the
  arguments' own names (`learning_rate`, `per_device_train_batch_size`, ...), the
  model's `config` under `model.` (`model.hidden_size`, ...) and `model.num_parameters`;
- everything the Trainer logs, at step = `state.global_step`, grouped as W&B groups it:
  `eval_loss` as `eval/loss`, `test_accuracy` (from `trainer.predict`) as
  `test/accuracy`, and the training values (`loss`, `learning_rate`, `grad_norm`,
  `epoch`) as `train/loss`, ... The run's totals (`train_runtime`, `train_loss`,
  `total_flos`, `train_samples_per_second`, `train_steps_per_second`) are outputs, as
  W&B keeps them in the run's summary. Non-numeric values are left out;
- with `log_model=True` (or `POLYTRACK_LOG_MODEL=true`), the final model (and its
  tokenizer or processor) saved with `save_pretrained` and kept as the model `model`,
  framework "transformers", when training ends.

Evaluation metrics arrive through the Trainer's log (`Trainer.evaluate` logs them, then
calls `on_evaluate`), so `on_evaluate` records nothing more. In a multi-process run only
the world's process zero records. The run is the current one when the callback first
records, else one it starts with `polytrack.init(**init_args)` (named after
`TrainingArguments.run_name` when set) and finishes when training ends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from polytrack.errors import InvalidInputError
from polytrack.integrations._model_file import log_model_file, param_value
from polytrack.integrations._run import RunHandle
from polytrack.run import DisabledRun, Run

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as exc:  # said once, here, with what to do
    if exc.name in ("transformers", "torch"):
        raise ImportError(
            "polytrack.integrations.transformers needs Transformers and PyTorch: "
            "pip install 'polytrack[transformers]'"
        ) from exc
    raise

__all__ = ["FRAMEWORK", "LOG_MODEL_ENV", "PolytrackCallback"]

# The `framework` of the model this callback records (`ArtifactView.framework`).
FRAMEWORK: Final = "transformers"
# Whether to keep the final model when `log_model` is not given (W&B's WANDB_LOG_MODEL).
LOG_MODEL_ENV: Final = "POLYTRACK_LOG_MODEL"
_TRUE: Final = frozenset({"1", "true", "yes", "on", "end"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
# The Trainer logs these once, at the end of training: the run's totals, not a series
# (WandbCallback's `single_value_scalars`, kept in W&B's run summary).
_TOTALS: Final = frozenset(
    {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "train_loss",
        "total_flos",
    }
)
# Transformers' prefixes for evaluation and prediction metrics, and their groups.
_GROUPS: Final = (("eval_", "eval/"), ("test_", "test/"))


class PolytrackCallback(TrainerCallback):
    """`TrainerCallback` that records a Trainer's arguments, logs and final model.

    Args:
        run: record into this run; default the current run when training begins, else
            one started then with `polytrack.init(**init_args)` (and finished at its end).
        log_model: keep the final model as the model artifact `model`; default
            `POLYTRACK_LOG_MODEL` (true, 1, yes or end), else False.
        group_keys: record metrics under W&B's groups (`train/loss`, `eval/loss`) and
            the totals as outputs; False records every value as a metric under the
            Trainer's own name (`loss`, `eval_loss`, `train_runtime`), as Polyaxon's
            callback did.
        **init_args: passed to `polytrack.init()` when the callback starts the run
            (project, name, params, tags, notes, dir, mode, ...).

    Raises:
        InvalidInputError: `POLYTRACK_LOG_MODEL` holds something other than a boolean.

    Example:
        >>> Trainer(model, args, train_dataset=ds, callbacks=[PolytrackCallback(project="glue")])
    """

    def __init__(
        self,
        *,
        run: Run | DisabledRun | None = None,
        log_model: bool | None = None,
        group_keys: bool = True,
        **init_args: Any,
    ) -> None:
        super().__init__()
        self._given_run = run
        self._init_args = init_args
        self._handle: RunHandle | None = None
        self._log_model = _log_model_from_env(os.environ) if log_model is None else log_model
        self._group_keys = bool(group_keys)

    @property
    def run(self) -> Run | DisabledRun | None:
        """The run this callback records into; None before it first recorded."""
        return None if self._handle is None else self._handle.run

    # -- the Trainer's hooks ---------------------------------------------------------------

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        handle = self._handle
        if handle is not None and handle.owned and handle.run.finished:
            self._handle = None  # a second train() (a hyperparameter search): a new run
        self._setup(args, model)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        run = self._setup(args, model)
        values = _numbers(logs)
        if not self._group_keys:
            run.log_metrics(values, step=state.global_step)
            return
        totals: dict[str, Any] = {key: v for key, v in values.items() if key in _TOTALS}
        series = _grouped({key: v for key, v in values.items() if key not in _TOTALS})
        if series:
            run.log_metrics(series, step=state.global_step)
        if totals:
            run.log_outputs(**totals)

    def on_predict(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # `Trainer.predict` does not log its metrics: they come here only.
        if not state.is_world_process_zero or not metrics:
            return
        run = self._setup(args, kwargs.get("model"))
        values = _numbers(metrics)
        if values:
            run.log_metrics(_grouped(values) if self._group_keys else values, state.global_step)

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        processing_class: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or self._handle is None:
            return
        run = self._handle.run
        if self._log_model and model is not None:
            self._keep_model(run, state, model, processing_class)
        self._handle.finish()

    # -- what is recorded --------------------------------------------------------------------

    def _setup(self, args: TrainingArguments, model: Any) -> Run | DisabledRun:
        """The run, with the arguments and the model's config recorded on first use."""
        if self._handle is not None:
            return self._handle.run
        init_args = dict(self._init_args)
        run_name = getattr(args, "run_name", None)
        if run_name and run_name != args.output_dir:  # W&B's rule: an output dir is no name
            init_args.setdefault("name", run_name)
        self._handle = handle = RunHandle(self._given_run, **init_args)
        self._given_run = None  # a later run (another train()) is the callback's own
        run = handle.run
        params: dict[str, Any] = _params(args.to_sanitized_dict())
        config = getattr(model, "config", None)
        if config is not None:
            as_dict = config if isinstance(config, Mapping) else config.to_dict()
            params["model"] = _params(as_dict)
        num_parameters = getattr(model, "num_parameters", None)
        if callable(num_parameters):
            params.setdefault("model", {})["num_parameters"] = int(num_parameters())
        run.log_params(params)
        return run

    def _keep_model(
        self, run: Run | DisabledRun, state: TrainerState, model: Any, processing_class: Any
    ) -> None:
        def save(path: Path) -> None:
            model.save_pretrained(path)
            if processing_class is not None and hasattr(processing_class, "save_pretrained"):
                processing_class.save_pretrained(path)

        metadata: dict[str, Any] = {"global_step": state.global_step}
        if state.best_metric is not None:
            metadata["best_metric"] = state.best_metric
        if state.best_model_checkpoint is not None:
            metadata["best_model_checkpoint"] = state.best_model_checkpoint
        log_model_file(run, save, "model", name="model", framework=FRAMEWORK, metadata=metadata)


def _log_model_from_env(environ: Mapping[str, str]) -> bool:
    """`POLYTRACK_LOG_MODEL` as a boolean ("end" too, W&B's word for the final model)."""
    value = environ.get(LOG_MODEL_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInputError(
        f"{LOG_MODEL_ENV} must be true or false (1, yes, end / 0, no); got {value!r}"
    )


def _numbers(logs: Mapping[str, Any]) -> dict[str, float]:
    """The real numbers among the logs (a 1-element tensor's or array's too), as floats."""
    values: dict[str, float] = {}
    for key, value in logs.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            values[key] = float(value)
        elif callable(getattr(value, "item", None)) and _size(value) == 1:
            item = value.item()  # a 1-element tensor or array, a numpy scalar
            if isinstance(item, int | float) and not isinstance(item, bool):
                values[key] = float(item)
    return values


def _size(value: Any) -> Any:
    numel = getattr(value, "numel", None)  # torch's; numpy's `size` is an attribute
    return numel() if callable(numel) else getattr(value, "size", None)


def _grouped(values: Mapping[str, float]) -> dict[str, float]:
    """W&B's names (`rewrite_logs` in Transformers' integrations): `eval_loss` ->
    `eval/loss`, `test_loss` -> `test/loss`, anything else -> `train/<name>`."""
    grouped: dict[str, float] = {}
    for key, value in values.items():
        for prefix, group in _GROUPS:
            if key.startswith(prefix):
                grouped[group + key.removeprefix(prefix)] = value
                break
        else:
            grouped[f"train/{key}"] = value
    return grouped


def _params(value: Mapping[Any, Any]) -> dict[str, Any]:
    """A nested mapping `log_params` accepts: keys as text (a config's `id2label` has
    ints), leaves as `param_value` makes them, empty keys left out."""
    clean: dict[str, Any] = {}
    for key, item in value.items():
        name = str(key)
        if not name:
            continue
        clean[name] = _params(item) if isinstance(item, Mapping) else param_value(item)
    return clean
