"""Polyaxon's PyTorch Ignite logger (`polyaxon.tracking.contrib.ignite`), recorded by
polytrack.

```python
from polytrack.tracking.contrib.ignite import PolyaxonLogger   # was: polyaxon.
from ignite.handlers.polyaxon_logger import OutputHandler       # Ignite's, unchanged

plx_logger = PolyaxonLogger(project="mnist")
plx_logger.log_inputs(batch_size=64)
plx_logger.attach_output_handler(trainer, event_name=Events.ITERATION_COMPLETED,
                                 tag="training", output_transform=lambda loss: {"loss": loss})
plx_logger.attach(evaluator, log_handler=OutputHandler(tag="validation", metric_names="all"),
                  event_name=Events.EPOCH_COMPLETED)
plx_logger.close()
```

`Logger` (traceml 1.5's name), `PolyaxonLogger` and `PolyaxonIgniteLogger` (Polyaxon's)
take Polyaxon's arguments: `run=` a run to record into, else the arguments of
`tracking.Run(...)`, which starts a run. They are Ignite's `PolyaxonLogger` to Ignite,
so that Ignite's own Polyaxon handlers (`ignite.handlers.polyaxon_logger.OutputHandler`,
`OptimizerParamsHandler`) attach to them unchanged, and
`polytrack.integrations.ignite.PolytrackLogger` underneath: `attach_output_handler` and
`attach_opt_params_handler` make polytrack's handlers, which record the same keys at the
same steps. Other attributes are the `tracking.Run`'s (`log_inputs`, `log_outputs`, ...),
as Ignite's logger passes them on to Polyaxon's client; `close()` ends the run.
"""

from __future__ import annotations

from typing import Any

try:
    import ignite  # noqa: F401
except ImportError:
    # Importing the integration raises the ImportError that says what to do.
    import polytrack.integrations.ignite  # noqa: F401

    raise

from ignite.handlers.polyaxon_logger import PolyaxonLogger as _IgnitePolyaxonLogger

from polytrack.integrations.ignite import OptimizerParamsHandler, OutputHandler, PolytrackLogger
from polytrack.run import DisabledRun, Run
from polytrack.tracking.run import Run as TrackingRun

__all__ = ["Logger", "PolyaxonIgniteLogger", "PolyaxonLogger"]


class Logger(PolytrackLogger, _IgnitePolyaxonLogger):
    """Polyaxon's Ignite logger, recording into a polytrack run.

    Args:
        *args, **kwargs: `tracking.Run`'s (project, name, tags, ...), for the run it
            starts; or `run=` a `tracking.Run` or polytrack run to record into.

    Example:
        >>> plx_logger = Logger(project="mnist")
        >>> plx_logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED,
        ...                                  tag="training", output_transform=lambda l: {"loss": l})
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given = kwargs.pop("run", None)
        if given is None:
            facade = TrackingRun(*args, **kwargs)
        elif isinstance(given, TrackingRun):
            facade = given
        else:
            facade = TrackingRun.of(given)
        self._facade = facade
        super().__init__(run=facade.polytrack_run)

    @property
    def experiment(self) -> TrackingRun:  # type: ignore[override]
        """The run as Polyaxon's `tracking.Run`, as Ignite's logger holds its client."""
        return self._facade

    @property
    def run(self) -> Run | DisabledRun:
        return self._facade.polytrack_run

    def close(self) -> None:
        """End the run (succeeded), as Ignite's Polyaxon logger ends its experiment."""
        self._facade.end()

    # polytrack's handlers (which Ignite's Polyaxon logger would make its own).
    def _create_output_handler(self, *args: Any, **kwargs: Any) -> Any:
        return OutputHandler(*args, **kwargs)

    def _create_opt_params_handler(self, *args: Any, **kwargs: Any) -> Any:
        return OptimizerParamsHandler(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._facade, name)


PolyaxonLogger = Logger
PolyaxonIgniteLogger = Logger
