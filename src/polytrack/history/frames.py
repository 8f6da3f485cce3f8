"""Runs and series as pandas DataFrames (the `pandas` extra): `polytrack.search_runs()`
and `RunView.history_frame()` build theirs here.

Column names follow `mlflow.search_runs`: `run_id`, `status`, `start_time`, `end_time`,
`params.<key>`, `metrics.<key>`; times are timezone-aware UTC datetimes. pandas is
imported only when a frame is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polytrack.models import RunInfo

__all__ = ["require_pandas", "runs_frame", "series_frame"]


def require_pandas() -> Any:
    """The pandas module, or an error naming the extra that installs it."""
    try:
        # By name: pandas ships no type hints (pandas-stubs would be a typing dependency).
        pandas = importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError("DataFrames need pandas: pip install 'polytrack[pandas]'") from exc
    return pandas


def runs_frame(infos: Sequence[RunInfo], *, summaries: bool = False) -> Any:
    """One row per run (see `polytrack.search_runs`), in the order given."""
    pd = require_pandas()
    params = sorted({key for info in infos for key in info.params})
    metrics = sorted({key for info in infos for key in info.metrics})
    columns: dict[str, list[Any]] = {
        "run_id": [info.id for info in infos],
        "project": [info.project for info in infos],
        "name": [info.name for info in infos],
        "status": [info.status for info in infos],
        "start_time": [info.created_at for info in infos],
        "end_time": [info.finished_at for info in infos],
        "user": [info.user for info in infos],
        "host": [info.host for info in infos],
        "tags": [list(info.tags) for info in infos],
    }
    for key in params:
        columns[f"params.{key}"] = [info.params.get(key) for info in infos]
    for key in metrics:
        found = [info.metrics.get(key) for info in infos]
        columns[f"metrics.{key}"] = [np.nan if m is None else m.last for m in found]
        if summaries:
            columns[f"metrics.{key}.min"] = [np.nan if m is None else m.min for m in found]
            columns[f"metrics.{key}.max"] = [np.nan if m is None else m.max for m in found]
    frame = pd.DataFrame(columns)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(
            pd.Series(columns[column], dtype="float64"), unit="s", utc=True
        )
    return frame


def series_frame(series: Mapping[str, tuple[Any, ...]], *, with_time: bool = False) -> Any:
    """Series by key, `(steps, values[, times])` each, as one frame indexed by step.

    A step logged twice keeps its last point (what the run's summary calls `last`)."""
    pd = require_pandas()
    columns = {}
    for key, parts in series.items():
        steps = pd.Index(parts[0], name="step")
        column = pd.Series(parts[1], index=steps, name=key)
        columns[key] = column[~steps.duplicated(keep="last")]
        if with_time and len(parts) > 2:
            times = pd.Series(pd.to_datetime(parts[2], unit="s", utc=True), index=steps)
            columns[f"{key}.time"] = times[~steps.duplicated(keep="last")]
    if not columns:
        return pd.DataFrame(index=pd.Index([], name="step", dtype="int64"))
    frame = pd.concat(columns, axis=1).sort_index()
    frame.index.name = "step"
    return frame
