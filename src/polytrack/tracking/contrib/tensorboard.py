"""Polyaxon's TensorBoard summary logger (`polyaxon.tracking.contrib.tensorboard`),
recorded by polytrack.

```python
from polytrack.tracking.contrib.tensorboard import PolyaxonTensorboardLogger  # was: polyaxon.

PolyaxonTensorboardLogger.process_summary(summary, global_step=step)
```

`PolyaxonTensorboardLogger` (Polyaxon's name) records every value of a TensorBoard
`Summary` (a proto of tensorboard, tensorboardX or TensorFlow, or its bytes): scalars as
metrics, images, histograms and text tensors as media, under their tags.
`Logger` (traceml 1.5's name) takes traceml's switches, `log_image`, `log_histo` and
`log_tensor`, off by default as there: only scalars then. Both record through
`polytrack.integrations.tensorboard.record_value`; the run is `run=` (a `tracking.Run`
or a polytrack run), else the current one, else one started (`get_or_create_run`).

To mirror a `SummaryWriter` without handling its summaries, use
`polytrack.integrations.tensorboard.patch()`.
"""

from __future__ import annotations

import os
from typing import Any

from polytrack.integrations.tensorboard import parse_summary, record_value
from polytrack.run import DisabledRun, Run
from polytrack.tracking.run import Run as TrackingRun, get_or_create_run

__all__ = ["Logger", "PolyaxonTensorboardLogger"]


class Logger:
    """traceml's TensorBoard logger: scalars always; images, histograms and text
    tensors when switched on.

    Example:
        >>> Logger.process_summary(summary_bytes, global_step=3, log_image=True)
    """

    @classmethod
    def process_summary(
        cls,
        summary: Any,
        global_step: int | None = None,
        run: TrackingRun | Run | DisabledRun | None = None,
        log_image: bool = False,
        log_histo: bool = False,
        log_tensor: bool = False,
    ) -> None:
        """Record the values of `summary` at `global_step`."""
        target = _target(run)
        if isinstance(summary, (bytes, bytearray)):
            summary = parse_summary(bytes(summary))
        step = cls._process_step(global_step)
        for value in summary.value:
            record_value(
                target, value, step, images=log_image, histograms=log_histo, texts=log_tensor
            )

    @classmethod
    def add_value(
        cls,
        run: TrackingRun | Run | DisabledRun,
        step: int | None,
        value: Any,
        log_image: bool = False,
        log_histo: bool = False,
        log_tensor: bool = False,
    ) -> None:
        """Record one `Summary.Value`."""
        record_value(
            _target(run), value, step, images=log_image, histograms=log_histo, texts=log_tensor
        )

    @staticmethod
    def get_writer_name(log_dir: str) -> str:
        """The last folder of `log_dir` (Polyaxon's name for a writer)."""
        return os.path.basename(os.path.normpath(log_dir))

    @staticmethod
    def _process_step(global_step: Any) -> int | None:
        return int(global_step) if global_step is not None else None


class PolyaxonTensorboardLogger(Logger):
    """Polyaxon's TensorBoard logger: every scalar, image, histogram and text tensor.

    Example:
        >>> PolyaxonTensorboardLogger.process_summary(summary, global_step=3)
    """

    @classmethod
    def process_summary(  # type: ignore[override]  # Polyaxon's takes no switches
        cls,
        summary: Any,
        global_step: int | None = None,
        run: TrackingRun | Run | DisabledRun | None = None,
    ) -> None:
        """Record every value of `summary` at `global_step`."""
        super().process_summary(summary, global_step, run, True, True, True)

    @classmethod
    def add_value(  # type: ignore[override]
        cls, run: TrackingRun | Run | DisabledRun, step: int | None, value: Any
    ) -> None:
        """Record one `Summary.Value`."""
        super().add_value(run, step, value, True, True, True)


def _target(run: TrackingRun | Run | DisabledRun | None) -> Run | DisabledRun:
    """The polytrack run to record into: the one given, else the current, else a new one."""
    if run is None:
        run = get_or_create_run()
    return run.polytrack_run if isinstance(run, TrackingRun) else run
