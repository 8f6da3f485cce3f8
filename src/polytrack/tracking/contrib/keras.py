"""Polyaxon's Keras callbacks (`polyaxon.tracking.contrib.keras`), recorded by polytrack.

```python
from polytrack import tracking
from polytrack.tracking.contrib.keras import PolyaxonCallback   # was: from polyaxon.

tracking.init(project="mnist")
model.fit(x, y, validation_split=0.2, callbacks=[PolyaxonCallback()])
```

`PolyaxonCallback` (also named `PolyaxonKerasCallback`, Polyaxon's older name) takes the
arguments of Polyaxon 2's callback (traceml 1.5's `traceml.integrations.keras.Callback`)
and is `polytrack.integrations.keras.PolytrackCallback` with Polyaxon's defaults: every
epoch's logs at step = the epoch, the best `monitor` value as the outputs
`<log_best_prefix>_<monitor>` and `<log_best_prefix>_epoch`, the best model as the model
`model` (framework "keras"), and, as Polyaxon recorded them, the inputs `num_layers`,
`optimizer_name`, `optimizer_lr` and `optimizer_epsilon`. `use_store_path` is accepted
and ignored (polytrack keeps models in its own store).

`PolyaxonKerasModelCheckpoint` is Keras's `ModelCheckpoint` that also keeps each file it
saves as the model `model`, as Polyaxon 1's did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

try:
    import keras
except ImportError:
    # Importing the integration raises the ImportError that says what to do.
    import polytrack.integrations.keras  # noqa: F401

    raise

from polytrack.errors import StoreError
from polytrack.integrations._run import RunHandle
from polytrack.integrations.keras import FRAMEWORK, PolytrackCallback
from polytrack.run import DisabledRun, Run
from polytrack.tracking.run import Run as TrackingRun, polytrack_run_of

__all__ = ["PolyaxonCallback", "PolyaxonKerasCallback", "PolyaxonKerasModelCheckpoint"]


class PolyaxonCallback(PolytrackCallback):
    """Polyaxon's Keras callback: metrics, the best model and the optimizer's settings.

    Args:
        run: the run to record into (`tracking.init()`'s, a `tracking.Run`, or a
            polytrack run); default the current run, else one started when training
            begins.
        metrics: record only these keys of Keras's logs; default all.
        log_model: keep the best model (by `monitor`) as the model `model`.
        save_weights_only: keep the weights (`model.weights.h5`) rather than the model.
        log_best_prefix: the prefix of the best-value outputs; None records none.
        mode: "auto", "min" or "max", as `ModelCheckpoint`'s.
        monitor: the logs' key that tells the best epoch.
        use_store_path: ignored.

    Example:
        >>> model.fit(x, y, validation_split=0.2, callbacks=[PolyaxonCallback()])
    """

    def __init__(
        self,
        run: TrackingRun | Run | DisabledRun | None = None,
        metrics: Sequence[str] | None = None,
        log_model: bool = True,
        save_weights_only: bool = False,
        log_best_prefix: str | None = "best",
        mode: str = "auto",
        monitor: str = "val_loss",
        use_store_path: bool = False,
    ) -> None:
        super().__init__(
            run=polytrack_run_of(run),
            metrics=metrics,
            log_model=log_model,
            save_weights_only=save_weights_only,
            best_prefix=log_best_prefix,
            mode=mode,
            monitor=monitor,
        )

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        optimizer = getattr(self.model, "optimizer", None)
        inputs: dict[str, Any] = {"num_layers": len(self.model.layers)}
        if optimizer is not None:
            inputs["optimizer_name"] = type(optimizer).__name__
            for name in ("learning_rate", "epsilon"):
                value = _float(getattr(optimizer, name, None))
                if value is not None:
                    inputs[f"optimizer_{'lr' if name == 'learning_rate' else name}"] = value
        self.run.log_inputs(**inputs)


PolyaxonKerasCallback = PolyaxonCallback


class PolyaxonKerasModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's `ModelCheckpoint` that keeps each saved file as the run's model `model`.

    Args:
        run: the run to record into; default the current run, else one started when
            training begins (and finished at its end).
        filepath: where Keras saves (`ModelCheckpoint`'s, placeholders included);
            default `model.keras` (`model.weights.h5` with `save_weights_only=True`) in a
            temporary folder, removed when training ends.
        **kwargs: `ModelCheckpoint`'s other arguments (monitor, save_best_only, mode, ...).

    Example:
        >>> model.fit(x, y, callbacks=[PolyaxonKerasModelCheckpoint(save_best_only=True)])
    """

    def __init__(
        self,
        run: TrackingRun | Run | DisabledRun | None = None,
        filepath: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # Keras's file name when the caller gives none: saved into a folder of the
        # callback's own for each fit(), removed when training ends.
        self._default: str | None = None
        if filepath is None:
            filepath = self._default = (
                "model.weights.h5" if kwargs.get("save_weights_only") else "model.keras"
            )
        super().__init__(os.fspath(filepath), **kwargs)
        self._run = polytrack_run_of(run)
        self._handle = RunHandle(self._run)
        self._folder: str | None = None
        self._stamps: dict[str, tuple[int, int]] = {}  # path -> (mtime_ns, size) when kept
        self._kept = False

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self._handle.owned and self._handle.run.finished:  # a second fit(): a new run
            self._handle = RunHandle(self._run)
        if self._default is not None:
            self._folder = tempfile.mkdtemp(prefix="polytrack-keras-")
            # Removed at train end; should training fail, when the callback goes.
            weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
            self.filepath = os.path.join(self._folder, self._default)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        run = self._handle.run
        self._wait(run)  # Keras may overwrite the file the last copy is reading
        super().on_epoch_end(epoch, logs)
        path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        try:
            stat = os.stat(path)
        except OSError:
            return  # not saved this epoch (save_best_only, save_freq in batches)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._stamps.get(path) == stamp:
            return
        self._stamps[path] = stamp
        run.log_model(path, "model", framework=FRAMEWORK, metadata={"epoch": epoch})
        self._kept = True

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        self._wait(self._handle.run)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._handle.finish()

    def _wait(self, run: Run | DisabledRun) -> None:
        """Until the last file kept is in the store."""
        if not self._kept or isinstance(run, DisabledRun) or run.finished:
            return
        with contextlib.suppress(StoreError):  # the run has warned; training goes on
            run.artifact("model")


def _float(value: Any) -> float | None:
    """An optimizer's setting as a number (a Keras variable too), or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
