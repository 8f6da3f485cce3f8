"""A model an integration holds in memory, saved by its framework and kept as a run's model.

`Run.log_model` copies a file in the background; the file must outlive the copy. The
integrations save the model into a temporary folder, log it, wait for the copy
(`Run.artifact`), and only then remove the folder, so nothing is left behind in the user's
working directory.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polytrack.errors import StoreError
from polytrack.run import DisabledRun, Run

__all__ = ["log_model_file", "param_value"]


def log_model_file(
    run: Run | DisabledRun,
    save: Callable[[Path], object],
    filename: str,
    *,
    name: str,
    framework: str,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Have `save(path)` write the model to `<tmp>/<filename>`, keep it as model `name`.

    A failed copy into the blob store has warned (`TrackingWarning`) and raises nothing:
    a tracking failure never ends the user's training.
    """
    if isinstance(run, DisabledRun):
        return  # nothing is recorded: do not pay for saving the model either
    with tempfile.TemporaryDirectory(prefix="polytrack-model-") as folder:
        path = Path(folder) / filename
        save(path)
        run.log_model(path, name, framework=framework, metadata=metadata)
        # Waits for the background copy before the folder goes; its failure has warned.
        with contextlib.suppress(StoreError):
            run.artifact(name)


def param_value(value: Any) -> Any:
    """`value` as `log_params` records it: JSON scalars (and numpy's) and lists of them
    as they are; anything else (a callable objective, an estimator) by its text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()  # a numpy scalar
    if isinstance(value, list | tuple) and all(
        v is None or isinstance(v, str | bool | int | float) for v in value
    ):
        return list(value)
    name = getattr(value, "__name__", None)
    if callable(value) and isinstance(name, str):
        return name
    return repr(value)
