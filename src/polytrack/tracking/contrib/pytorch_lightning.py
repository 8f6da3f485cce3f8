"""Polyaxon's PyTorch Lightning logger (`polyaxon.tracking.contrib.pytorch_lightning`),
recorded by polytrack.

```python
from polytrack.tracking.contrib.pytorch_lightning import PolyaxonCallback   # was: polyaxon.

trainer = lightning.Trainer(logger=PolyaxonCallback(project="mnist"), max_epochs=5)
```

`Callback` (traceml 1.5's name; `PolyaxonCallback` is Polyaxon's) takes the arguments of
Polyaxon's logger and is `polytrack.integrations.lightning.PolytrackLogger` with
Polyaxon's habits: the run is the current one, else one started at the first record
with Polyaxon's `init()` arguments; metric keys are prefixed with `prefix` joined by
"_"; the run is ended by `finalize()` only with `end_on_finalize=True` (else when the
process exits, as Polyaxon's); `experiment` is the `tracking.Run`; `name` is the run's
name, `version` its id, `save_dir` its outputs path; `log_model_summary` keeps Lightning's
model summary as the file `model_summary`. Hyperparameters are the run's inputs, nested
ones joined with dots (Polyaxon joined them with "/"). Checkpoints are not recorded, as
Polyaxon's did not: `PolytrackLogger(log_model=True)` records them.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning  # noqa: F401
except ImportError:
    # Importing the integration raises the ImportError that says what to do.
    import polytrack.integrations.lightning  # noqa: F401

    raise

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.model_summary.model_summary import ModelSummary

from polytrack.integrations._run import RunHandle
from polytrack.integrations.lightning import PolytrackLogger, _rank
from polytrack.run import DisabledRun, Run
from polytrack.tracking.run import Run as TrackingRun, current

__all__ = ["Callback", "PolyaxonCallback"]


class _PolyaxonHandle(RunHandle):
    """The run as Polyaxon's logger finds it: the current one, else one started with
    Polyaxon's `init()` arguments; "owned" (ended by `finalize`) with `end_on_finalize`."""

    def __init__(self, init_args: dict[str, Any], *, end_on_finalize: bool) -> None:
        super().__init__()
        self._polyaxon_args = init_args
        self._end_on_finalize = end_on_finalize

    @property
    def run(self) -> Run | DisabledRun:
        if self._run is None:
            self._run = TrackingRun(**self._polyaxon_args, auto_create=False).polytrack_run
            self._owned = self._end_on_finalize
        return self._run


class Callback(PolytrackLogger):
    """Polyaxon's Lightning logger: metrics, hyperparameters as inputs, the run ended by
    `finalize` when asked.

    Args (Polyaxon's, in its order):
        owner, project, run_uuid, client, track_code, track_env, refresh_data,
            artifacts_path, collect_artifacts, collect_resources, is_offline, is_new,
            name, description, tags: as `tracking.init()` takes them, for the run started
            when none is current.
        end_on_finalize: finish the run when the Trainer finalizes its loggers.
        prefix: put before every metric key, joined with "_".

    Example:
        >>> lightning.Trainer(logger=Callback(project="mnist", end_on_finalize=True))
    """

    LOGGER_JOIN_CHAR = "_"

    def __init__(
        self,
        owner: str | None = None,
        project: str | None = None,
        run_uuid: str | None = None,
        client: Any = None,
        track_code: bool = True,
        track_env: bool = True,
        refresh_data: bool = False,
        artifacts_path: str | None = None,
        collect_artifacts: str | None = None,
        collect_resources: str | None = None,
        is_offline: bool | None = None,
        is_new: bool | None = None,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        end_on_finalize: bool = False,
        prefix: str = "",
    ) -> None:
        super().__init__(prefix=prefix)
        self._handle = _PolyaxonHandle(
            {
                "owner": owner, "project": project, "run_uuid": run_uuid, "client": client,
                "track_code": track_code, "track_env": track_env,
                "refresh_data": refresh_data, "artifacts_path": artifacts_path,
                "collect_artifacts": collect_artifacts,
                "collect_resources": collect_resources, "is_offline": is_offline,
                "is_new": is_new, "name": name, "description": description, "tags": tags,
            },
            end_on_finalize=end_on_finalize,
        )  # fmt: skip
        self._end_on_finalize = end_on_finalize

    @property
    @rank_zero_experiment
    def experiment(self) -> TrackingRun:
        """The run as Polyaxon's `tracking.Run` (`log_inputs`, `get_outputs_path`, ...)."""
        run = self._recording_run()
        facade = current()  # `tracking.TRACKING_RUN`, when it is that run
        return facade if facade is not None and facade.polytrack_run is run else TrackingRun.of(run)

    @property
    def name(self) -> str | None:
        """The run's name (Polyaxon's `run_data.name`)."""
        if _rank() > 0:
            return None
        return str(self._handle.run.name)

    @property
    def save_dir(self) -> str | None:
        """The run's outputs path: Lightning puts the checkpoints there."""
        if _rank() > 0:
            return None
        return str(TrackingRun.of(self._handle.run).get_outputs_path())

    @rank_zero_only
    def log_model_summary(self, model: LightningModule, max_depth: int = -1) -> None:
        """Keep Lightning's summary of `model` as the file `model_summary` (an output).

        Example:
            >>> logger.log_model_summary(model)
        """
        summary = str(ModelSummary(model=model, max_depth=max_depth))
        run = TrackingRun.of(self._recording_run())
        path = run.get_outputs_path("model_summary.txt")
        with open(path, "w", encoding="utf-8") as file:
            file.write(summary)
        run.log_file_ref(path=path, name="model_summary", is_input=False)


PolyaxonCallback = Callback
