"""PyTorch Lightning: a `Logger` that records a Trainer's metrics, hyperparameters and
checkpoints into a polytrack run.

```python
from polytrack.integrations.lightning import PolytrackLogger

trainer = lightning.Trainer(logger=PolytrackLogger(project="mnist"), max_epochs=5)
trainer.fit(model, datamodule)
```

It speaks Lightning's own `Logger` interface, as `MLFlowLogger` and `WandbLogger` do:
`log_hyperparams` gets the LightningModule's `save_hyperparameters()` (a dict, an
`argparse.Namespace`, an OmegaConf config), `log_metrics` what `self.log()` logged at the
Trainer's global step, `after_save_checkpoint` each `ModelCheckpoint` save, and
`finalize` the end of `fit`/`test`. Every hook that records is `@rank_zero_only`: in a
multi-process run only global rank 0 records, as with Lightning's loggers.

The run is the current one when the logger first records, else one it starts with
`polytrack.init(**init_args)` and finishes in `finalize`: succeeded, failed, or stopped
after a KeyboardInterrupt. A later `trainer.test()` with the same logger continues that
run (`polytrack.init(resume=...)`) rather than starting another.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

try:
    import lightning  # noqa: F401
except ImportError as exc:  # said once, here, with what to do
    raise ImportError(
        "polytrack.integrations.lightning needs PyTorch Lightning 2 (the `lightning` "
        "package): pip install 'polytrack[lightning]'"
    ) from exc

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.logger import _add_prefix
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks.model_checkpoint import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.loggers.utilities import _scan_checkpoints

from polytrack.errors import InvalidInputError, PolytrackError
from polytrack.integrations._run import RunHandle
from polytrack.run import DisabledRun, Run

__all__ = ["FRAMEWORK", "PolytrackLogger"]

# The `framework` of every checkpoint this logger records (`ArtifactView.framework`).
FRAMEWORK: Final = "pytorch lightning"
# ModelCheckpoint's settings kept with each checkpoint, as MLFlowLogger and WandbLogger do.
_CHECKPOINT_SETTINGS: Final = (
    "monitor",
    "mode",
    "save_last",
    "save_top_k",
    "save_weights_only",
    "_every_n_train_steps",
)


class PolytrackLogger(Logger):
    """Lightning `Logger` that records into a polytrack run.

    Args:
        run: record into this run; default the current run when the logger first
            records, else one started then with `polytrack.init(**init_args)`.
        log_model: checkpoints saved by `ModelCheckpoint`, as `MLFlowLogger` takes it:
            False records none; True records them when training ends (or each save,
            with `save_top_k=-1`); "all" records each as it is saved. Each is a model
            artifact named `checkpoints/<file stem>` (framework "pytorch lightning",
            metadata: score, aliases, the callback's settings); the best one is also
            recorded as `model`.
        prefix: put before every metric key, joined with "-" (Lightning's habit).
        save_dir: where the Trainer puts checkpoints (`<save_dir>/<project>/<run
            id>/checkpoints`); default the Trainer's `default_root_dir`.
        **init_args: passed to `polytrack.init()` when the logger starts the run
            (project, name, params, tags, notes, dir, mode, ...).

    Raises:
        InvalidInputError: `log_model` is not True, False or "all".

    Example:
        >>> logger = PolytrackLogger(project="mnist", log_model=True)
        >>> lightning.Trainer(logger=logger, callbacks=[ModelCheckpoint(monitor="val_loss")])
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        *,
        run: Run | DisabledRun | None = None,
        log_model: bool | Literal["all"] = False,
        prefix: str = "",
        save_dir: str | os.PathLike[str] | None = None,
        **init_args: Any,
    ) -> None:
        super().__init__()
        if log_model not in (True, False, "all"):
            raise InvalidInputError(f'log_model must be True, False or "all"; got {log_model!r}')
        self._handle = RunHandle(run, **init_args)
        self._init_args = init_args
        self._log_model = log_model
        self._prefix = prefix
        self._save_dir = None if save_dir is None else os.fspath(save_dir)
        # ModelCheckpoint callbacks whose checkpoints are recorded at `finalize`.
        self._checkpoint_callbacks: dict[int, ModelCheckpoint] = {}
        # checkpoint path -> the mtime it had when recorded (Lightning's `_scan_checkpoints`).
        self._logged_model_time: dict[str, float] = {}
        self._staging: str | None = None  # hard links of checkpoints being copied
        self._staged: set[str] = set()  # the artifact names recorded from those links

    # -- the run ---------------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Run | DisabledRun:
        """The polytrack run (started now if there is none yet); on ranks other than 0,
        Lightning's dummy that ignores every call."""
        return self._recording_run()

    def _recording_run(self) -> Run | DisabledRun:
        """The run the hooks record into (they run on rank 0 only)."""
        run = self._handle.run
        if self._handle.owned and run.finished:
            # finalize() finished it, and the Trainer goes on (`fit` then `test`): the
            # same run continues, as a new attempt, instead of a second run starting.
            self._handle = RunHandle(**{**self._init_args, "resume": run.id})
            run = self._handle.run
        return run

    @property
    def name(self) -> str | None:
        """The run's project (Lightning's experiment name: the checkpoint directory's
        parent)."""
        if _rank() > 0:
            return None
        return str(self._handle.run.project)  # not `experiment`: reading it reopens no run

    @property
    def version(self) -> str | None:
        """The run's id (the directory under `name` that holds the checkpoints)."""
        if _rank() > 0:
            return None
        return str(self._handle.run.id)

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    # -- what Lightning logs ----------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace | None, *args: Any, **kwargs: Any
    ) -> None:
        """Record the hyperparameters as the run's params, nested ones with dots; values
        polytrack cannot record (a module, a transform) as their text."""
        if params is not None:
            self._recording_run().log_params(_recordable(params))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record the metrics at `step` (the Trainer's global step); text values are left
        out, as MLFlowLogger leaves them."""
        prefixed: Mapping[str, Any] = _add_prefix(
            dict(metrics), self._prefix, self.LOGGER_JOIN_CHAR
        )
        numbers = {key: value for key, value in prefixed.items() if not isinstance(value, str)}
        if numbers:
            self._recording_run().log_metrics(numbers, step=None if step is None else int(step))

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: every record is durable when its call returns."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Record the checkpoints kept for the end, then finish a run this logger started:
        "success" as succeeded, "failed" as failed (stopped after a KeyboardInterrupt).
        "finished" (a SLURM requeue: the job goes on elsewhere) leaves the run open."""
        if self._checkpoint_callbacks or (self._handle.owned and not self._handle.run.finished):
            run = self._recording_run()
        else:
            return  # nothing recorded since the run ended, or never: nothing to finish
        for callback in self._checkpoint_callbacks.values():
            self._scan_and_log_checkpoints(callback)
        self._checkpoint_callbacks.clear()
        if status == "finished" or not self._handle.owned:
            self._release_staging(run)
            return
        exc = sys.exc_info()[1]  # Lightning calls this from its `except` block
        message: str | None
        if status == "failed" and isinstance(exc, KeyboardInterrupt):
            final, message = "stopped", "KeyboardInterrupt"
        elif status == "failed":
            final = "failed"
            message = f"{type(exc).__name__}: {exc}" if exc is not None else None
        else:
            final, message = "succeeded", None
        run.finish(final, message=message)
        self._release_staging(run)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Record the checkpoints now (`log_model="all"`, or True with `save_top_k=-1`),
        or keep the callback to record its checkpoints at `finalize` (True)."""
        if self._log_model == "all" or (
            self._log_model is True and checkpoint_callback.save_top_k == -1
        ):
            self._scan_and_log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    # -- checkpoints ------------------------------------------------------------------------

    def _scan_and_log_checkpoints(self, callback: ModelCheckpoint) -> None:
        """Record each checkpoint of `callback` not recorded yet (or changed since)."""
        run = self._recording_run()
        settings = {
            key: getattr(callback, key) for key in _CHECKPOINT_SETTINGS if hasattr(callback, key)
        }
        for mtime, path, score, _tag in _scan_checkpoints(callback, self._logged_model_time):
            is_best = path == callback.best_model_path
            metadata = {
                "score": _number(score),
                "original_filename": Path(path).name,
                "aliases": ["latest", "best"] if is_best else ["latest"],
                callback.__class__.__name__: _recordable(settings),  # a weakref proxy's too
            }
            source = self._stable_copy(path)
            names = [f"checkpoints/{Path(path).stem}", *(["model"] if is_best else [])]
            for name in names:
                run.log_model(source, name, framework=FRAMEWORK, metadata=metadata)
            if source != path:
                self._staged.update(names)
            self._logged_model_time[path] = mtime

    def _stable_copy(self, path: str) -> str:
        """`path`, or a hard link to it that outlives the checkpoint: with `log_model="all"`
        ModelCheckpoint deletes a checkpoint once a better one is saved, which may be
        before the run's artifact thread has copied it."""
        if self._log_model != "all":
            return path
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="polytrack-checkpoints-")
        count = len(os.listdir(self._staging))
        target = os.path.join(self._staging, f"{count}-{Path(path).name}")
        try:
            os.link(path, target)
        except OSError:  # another file system, or no hard links there: copy the bytes
            shutil.copyfile(path, target)
        return target

    def _release_staging(self, run: Run | DisabledRun) -> None:
        """Remove the hard links once the run has copied them (it waits for that)."""
        if self._staging is None:
            return
        if isinstance(run, Run) and not run.finished:
            for name in sorted(self._staged):
                # A failed copy warned already; the links go all the same.
                with contextlib.suppress(PolytrackError):
                    run.artifact(name)  # waits for its copies
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None
        self._staged.clear()


def _rank() -> int:
    """This process' global rank, as Lightning set it (0 outside distributed training)."""
    return int(getattr(rank_zero_only, "rank", 0))


def _number(value: Any) -> float | None:
    """A checkpoint's score (a tensor, a float or None) as a JSON number."""
    if value is None:
        return None
    item = getattr(value, "item", None)
    return float(item() if callable(item) else value)


def _recordable(value: Any) -> Any:
    """Hyperparameters as values `log_params` records: mappings (OmegaConf's too) with
    text keys, sequences (ListConfig, tuples) as lists, numbers, text, None; anything
    else as its text, as Lightning's own loggers keep it."""
    if isinstance(value, Mapping):
        return {str(key): _recordable(item) for key, item in value.items()}
    if isinstance(value, Namespace):
        return _recordable(vars(value))
    if value is None or isinstance(value, (bool, int, float, str, os.PathLike)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_recordable(item) for item in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return str(value)
