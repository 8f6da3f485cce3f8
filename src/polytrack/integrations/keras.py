"""Keras 3: a callback that records `model.fit()` into a polytrack run.

```python
from polytrack.integrations.keras import PolytrackCallback

model.fit(x, y, validation_split=0.2, epochs=10,
          callbacks=[PolytrackCallback(project="mnist", log_model=True)])
```

What it records, with Keras's own names:

- every value of the epoch's `logs` (`loss`, `accuracy`, `val_loss`, ...) at step = the
  epoch (0-based, as Keras counts); with `log_every_n_batches`, also `batch/<name>`
  every n training batches, and then every point's step is the global batch count (the
  epoch metrics go there too, with the metric `epoch`), so both share one axis;
- when training begins, as params: the optimizer's config (`optimizer.*`), the compiled
  loss and metrics, the model's name, layer count and parameter counts (`model.*`), and
  the text of `model.summary()` as the artifact `model_summary`;
- the best value of `monitor` so far as the outputs `best_<monitor>` and `best_epoch`;
- with `log_model=True`, the best model (by `monitor` and `mode`, as `ModelCheckpoint`
  judges it) saved as `model.keras` and kept as the model `model` (framework "keras") at
  each improvement; the model as training left it when `monitor` never appeared.

Works on every Keras 3 backend (the tests run it on torch: `KERAS_BACKEND=torch`). The run
is the current one when the callback first records, else one it starts with
`polytrack.init(**init_args)` and finishes when training ends.
"""

from __future__ import annotations

import contextlib
import math
import operator
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from polytrack.errors import InvalidInputError, StoreError
from polytrack.integrations._model_file import log_model_file, param_value
from polytrack.integrations._run import RunHandle
from polytrack.run import DisabledRun, Run

try:
    import keras
except ImportError as exc:  # said once, here, with what to do
    if exc.name == "keras":
        raise ImportError(
            "polytrack.integrations.keras needs Keras 3: pip install 'polytrack[keras]'"
        ) from exc
    raise ImportError(
        f"Keras is installed but could not load its backend ({exc}); set KERAS_BACKEND "
        "to an installed one (torch, jax or tensorflow)"
    ) from exc

__all__ = ["FRAMEWORK", "PolytrackCallback"]

# The `framework` of every model this callback records (`ArtifactView.framework`).
FRAMEWORK: Final = "keras"
MODES: Final = ("auto", "min", "max")
# Metrics that grow as the model improves, for mode "auto" when the compiled metric
# object does not say (Keras metrics carry `_direction`; a name in `logs` may not).
_RISING: Final = ("acc", "auc", "precision", "recall", "f1", "fmeasure", "iou")


class PolytrackCallback(keras.callbacks.Callback):
    """Keras callback that records `fit()`'s metrics, the model's config and its best model.

    Args:
        run: record into this run; default the current run when training begins, else
            one started then with `polytrack.init(**init_args)` (and finished at its end).
        metrics: record only these keys of Keras's logs; default all of them.
        log_every_n_batches: also record the batch logs (`batch/<name>`) every n
            training batches; steps are then global batch counts. Default: epochs only.
        log_model: keep the best model as the model artifact `model` (see the module).
        monitor: the logs' key that tells the best epoch ("val_loss").
        mode: "min", "max" or "auto" (a loss is minimized; a metric as it says, or
            accuracy-like names maximized), as `keras.callbacks.ModelCheckpoint`.
        save_weights_only: keep `model.weights.h5` (the weights) instead of `model.keras`.
        best_prefix: record the best value as the outputs `<prefix>_<monitor>` and
            `<prefix>_epoch`; None records neither.
        log_summary: keep `model.summary()` as the text artifact `model_summary`.
        **init_args: passed to `polytrack.init()` when the callback starts the run
            (project, name, params, tags, notes, dir, ...; `mode` is Keras's here: a
            disabled or offline run is `run=polytrack.init(mode=...)` or
            `POLYTRACK_MODE`).

    Raises:
        InvalidInputError: `mode` is not one of "auto", "min", "max", or
            `log_every_n_batches` is not a positive integer.

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[PolytrackCallback(project="mnist")])
    """

    def __init__(
        self,
        *,
        run: Run | DisabledRun | None = None,
        metrics: Sequence[str] | None = None,
        log_every_n_batches: int | None = None,
        log_model: bool = False,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_weights_only: bool = False,
        best_prefix: str | None = "best",
        log_summary: bool = True,
        **init_args: Any,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if log_every_n_batches is not None and (
            isinstance(log_every_n_batches, bool)
            or not isinstance(log_every_n_batches, int)
            or log_every_n_batches < 1
        ):
            raise InvalidInputError(
                f"log_every_n_batches must be a positive integer or None; "
                f"got {log_every_n_batches!r}"
            )
        self._handle = RunHandle(run, **init_args)
        self._init_args = init_args
        self._keys = None if metrics is None else frozenset(metrics)
        self._every = log_every_n_batches
        self._log_model = bool(log_model)
        self.monitor = monitor
        self.mode = mode
        self._save_weights_only = bool(save_weights_only)
        self._best_prefix = best_prefix
        self._log_summary = bool(log_summary)
        self._better: Callable[[float, float], bool] | None = None  # set when training begins
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._global_step = 0
        self._model_logged = False

    @property
    def run(self) -> Run | DisabledRun:
        """The run this callback records into (started now if there is none yet)."""
        return self._handle.run

    # -- Keras's hooks -----------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._handle.owned and self._handle.run.finished:  # a second fit(): a new run
            self._handle = RunHandle(None, **self._init_args)
            self._global_step = 0
        self._better = self._comparison()
        self.best, self.best_epoch, self._model_logged = None, None, False
        run = self._handle.run
        run.log_params(self._model_params())
        if self._log_summary and not isinstance(run, DisabledRun):
            self._keep_summary(run)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._global_step += 1
        if self._every is None or self._global_step % self._every or not logs:
            return
        values = self._numbers(logs)
        if values:
            self._handle.run.log_metrics(
                {f"batch/{key}": value for key, value in values.items()}, step=self._global_step
            )

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        values = self._numbers(logs)
        run = self._handle.run
        if values:
            if self._every is None:
                run.log_metrics(values, step=epoch)
            else:
                run.log_metrics(values, step=self._global_step, epoch=epoch)
        current = _number(logs.get(self.monitor))
        if current is None or math.isnan(current) or self._better is None:
            return
        if self.best is not None and not self._better(current, self.best):
            return
        self.best, self.best_epoch = current, epoch
        if self._best_prefix:
            best: dict[str, Any] = {
                f"{self._best_prefix}_{self.monitor}": current,
                f"{self._best_prefix}_epoch": epoch,
            }
            run.log_outputs(**best)
        if self._log_model:
            self._keep_model(run, {"epoch": epoch, "monitor": self.monitor, self.monitor: current})

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        run = self._handle.run
        if self._log_model and not self._model_logged:  # `monitor` never appeared
            self._keep_model(run, {"final": True})
        self._handle.finish()

    # -- what is recorded ----------------------------------------------------------------------

    def _numbers(self, logs: Mapping[str, Any]) -> dict[str, float]:
        """The logs' numeric values (of the chosen keys), as Python floats."""
        values: dict[str, float] = {}
        for key, value in logs.items():
            if self._keys is not None and key not in self._keys:
                continue
            number = _number(value)
            if number is not None:
                values[key] = number
        return values

    def _comparison(self) -> Callable[[float, float], bool]:
        """Whether a value beats the best so far, as `ModelCheckpoint` judges `mode`."""
        if self.mode == "min":
            return operator.lt
        if self.mode == "max":
            return operator.gt
        name = self.monitor.removeprefix("val_")
        if name == "loss" or name.endswith("_loss"):
            return operator.lt
        for metric in _compiled_metrics(self.model):
            if getattr(metric, "name", None) == name:
                return operator.gt if getattr(metric, "_direction", None) == "up" else operator.lt
        return operator.gt if any(word in name for word in _RISING) else operator.lt

    def _model_params(self) -> dict[str, Any]:
        """The optimizer's and compile's settings and the model's size, as params."""
        model = self.model
        params: dict[str, Any] = {"model": {"name": model.name, "layers": len(model.layers)}}
        if model.built:
            trainable = _count(model.trainable_weights)
            non_trainable = _count(model.non_trainable_weights)
            params["model"].update(
                params=trainable + non_trainable,
                trainable_params=trainable,
                non_trainable_params=non_trainable,
            )
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = {"class": type(optimizer).__name__}
            with contextlib.suppress(NotImplementedError):  # a custom one may have none
                params["optimizer"].update(optimizer.get_config())
        # Read from the model, not `get_compile_config()`: that serializes the loss,
        # and warns for a lambda.
        if getattr(model, "loss", None) is not None:
            params["loss"] = _names(model.loss)
        metrics = [m.name for m in _compiled_metrics(model) if m.name != "loss"]
        if metrics:
            params["metrics"] = metrics
        for key in ("run_eagerly", "jit_compile", "steps_per_execution"):
            params[key] = getattr(model, key, None)
        return _params(params)

    def _keep_summary(self, run: Run) -> None:
        lines: list[str] = []
        try:
            self.model.summary(print_fn=lambda text, *_, **__: lines.append(str(text)))
        except ValueError:  # a subclassed model not built yet has no summary
            return
        with tempfile.TemporaryDirectory(prefix="polytrack-keras-") as folder:
            path = Path(folder) / "model_summary.txt"
            path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
            run.log_artifact(path, "model_summary", kind="text")
            # The copy is done before the folder goes; a failed one has warned
            # (TrackingWarning), and training goes on.
            with contextlib.suppress(StoreError):
                run.artifact("model_summary")

    def _keep_model(self, run: Run | DisabledRun, metadata: Mapping[str, Any]) -> None:
        model = self.model
        if self._save_weights_only:
            filename = "model.weights.h5"

            def save(path: Path) -> None:
                model.save_weights(str(path), overwrite=True)
        else:
            filename = "model.keras"

            def save(path: Path) -> None:
                model.save(str(path), overwrite=True)

        self._model_logged = True
        log_model_file(run, save, filename, name="model", framework=FRAMEWORK, metadata=metadata)


def _number(value: Any) -> float | None:
    """`value` as a float when it is a real number (a numpy or backend scalar too)."""
    if value is None or isinstance(value, str | bytes | bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _count(weights: Sequence[Any]) -> int:
    return sum(math.prod(int(d) for d in weight.shape) for weight in weights)


def _compiled_metrics(model: Any) -> list[Any]:
    """The metric objects `compile(metrics=...)` made, where Keras keeps them (built
    before training begins), and the loss's mean (named "loss")."""
    found: list[Any] = []
    for metric in getattr(model, "metrics", ()):
        found.extend(getattr(metric, "metrics", None) or [metric])
    return found


def _names(value: Any) -> Any:
    """A loss (or losses, per output) by name: a string as it is, a Loss object or a
    function by its name; lists and per-output mappings keep their shape."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(key): _names(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_names(item) for item in value]
    name = getattr(value, "name", None) or getattr(value, "__name__", None)
    return name if isinstance(name, str) else type(value).__name__


def _params(value: Mapping[str, Any]) -> dict[str, Any]:
    """A nested mapping `log_params` accepts: keys as text, leaves as `param_value` makes
    them, lists of mappings as their text."""
    clean: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            clean[str(key)] = _params(item)
        else:
            clean[str(key)] = param_value(item)
    return clean
