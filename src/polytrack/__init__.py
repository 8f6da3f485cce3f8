"""polytrack: experiment tracking for reproducible machine learning.

    import polytrack
    run = polytrack.init(project="mnist", params={"lr": 0.01})
    polytrack.log_metrics({"loss": 0.5}, step=0)
    run.finish()

Importing polytrack touches nothing: no files, no environment, no threads. Names are
loaded on first use (PEP 562), so the import itself costs about a millisecond.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from polytrack._version import __version__ as __version__

# public name -> module that defines it
_EXPORTS = {
    "current_run": "polytrack._api",
    "finish": "polytrack._api",
    "init": "polytrack._api",
    "log_metric": "polytrack._api",
    "log_metrics": "polytrack._api",
    "log_params": "polytrack._api",
    "log_tags": "polytrack._api",
    "log_data_ref": "polytrack._api",
    "log_artifact": "polytrack._api",
    "log_inputs": "polytrack._api",
    "log_model": "polytrack._api",
    "log_outputs": "polytrack._api",
    "log_image": "polytrack._api",
    "log_image_with_boxes": "polytrack._api",
    "log_histogram": "polytrack._api",
    "log_np_histogram": "polytrack._api",
    "log_text": "polytrack._api",
    "log_html": "polytrack._api",
    "log_table": "polytrack._api",
    "log_figure": "polytrack._api",
    "log_audio": "polytrack._api",
    "log_video": "polytrack._api",
    "log_curve": "polytrack._api",
    "log_roc_curve": "polytrack._api",
    "log_pr_curve": "polytrack._api",
    "log_confusion_matrix": "polytrack._api",
    "MediaItem": "polytrack.media.read",
    "ArtifactView": "polytrack.artifacts",
    "seed_everything": "polytrack._api",
    "AmbiguousRunError": "polytrack.errors",
    "ArtifactNotFoundError": "polytrack.errors",
    "BackendAuthError": "polytrack.errors",
    "BackendConfigError": "polytrack.errors",
    "BackendError": "polytrack.errors",
    "BackendRejectedError": "polytrack.errors",
    "BackendUnavailableError": "polytrack.errors",
    "DamagedRecordsWarning": "polytrack.errors",
    "Backend": "polytrack.sync.backends.base",
    "InMemoryBackend": "polytrack.sync.backends.memory",
    "InvalidInputError": "polytrack.errors",
    "InvalidMetricError": "polytrack.errors",
    "MediaNotFoundError": "polytrack.errors",
    "NotAStoreError": "polytrack.errors",
    "PolytrackError": "polytrack.errors",
    "QueryError": "polytrack.errors",
    "RunNotFoundError": "polytrack.errors",
    "RunStateError": "polytrack.errors",
    "StoreError": "polytrack.errors",
    "TrackingWarning": "polytrack.errors",
    "CodeState": "polytrack.models",
    "DataRef": "polytrack.models",
    "EnvironmentState": "polytrack.models",
    "GitState": "polytrack.models",
    "GpuInfo": "polytrack.models",
    "HardwareState": "polytrack.models",
    "MetricSummary": "polytrack.models",
    "RunInfo": "polytrack.models",
    "SeedState": "polytrack.models",
    "Snapshot": "polytrack.models",
    "LogLine": "polytrack.capture.logs",
    "RunView": "polytrack.history.runs",
    "get_run": "polytrack.history.runs",
    "runs": "polytrack.history.runs",
    "RunList": "polytrack.history.runs",
    "search_runs": "polytrack.history.runs",
    "plot": "polytrack.history.plot",
    "Comparison": "polytrack.history.compare",
    "compare": "polytrack.history.compare",
    "LineageGraph": "polytrack.history.lineage",
    "lineage": "polytrack.history.lineage",
    "GcReport": "polytrack.history.manage",
    "delete_run": "polytrack.history.manage",
    "gc": "polytrack.history.manage",
    "rename_run": "polytrack.history.manage",
    "restore_run": "polytrack.history.manage",
    "set_note": "polytrack.history.manage",
    "tag_run": "polytrack.history.manage",
    "trashed_runs": "polytrack.history.manage",
    "untag_run": "polytrack.history.manage",
    "DisabledRun": "polytrack.run",
    "Run": "polytrack.run",
    "Settings": "polytrack.settings",
    "ui": "polytrack.dashboard.server",
}

__all__ = [
    "AmbiguousRunError",
    "ArtifactNotFoundError",
    "ArtifactView",
    "Backend",
    "BackendAuthError",
    "BackendConfigError",
    "BackendError",
    "BackendRejectedError",
    "BackendUnavailableError",
    "CodeState",
    "Comparison",
    "DamagedRecordsWarning",
    "DataRef",
    "DisabledRun",
    "EnvironmentState",
    "GcReport",
    "GitState",
    "GpuInfo",
    "HardwareState",
    "InMemoryBackend",
    "InvalidInputError",
    "InvalidMetricError",
    "LineageGraph",
    "LogLine",
    "MediaItem",
    "MediaNotFoundError",
    "MetricSummary",
    "NotAStoreError",
    "PolytrackError",
    "QueryError",
    "Run",
    "RunInfo",
    "RunList",
    "RunNotFoundError",
    "RunStateError",
    "RunView",
    "SeedState",
    "Settings",
    "Snapshot",
    "StoreError",
    "TrackingWarning",
    "__version__",
    "compare",
    "current_run",
    "delete_run",
    "finish",
    "gc",
    "get_run",
    "init",
    "lineage",
    "log_artifact",
    "log_audio",
    "log_confusion_matrix",
    "log_curve",
    "log_data_ref",
    "log_figure",
    "log_histogram",
    "log_html",
    "log_image",
    "log_image_with_boxes",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_np_histogram",
    "log_outputs",
    "log_params",
    "log_pr_curve",
    "log_roc_curve",
    "log_table",
    "log_tags",
    "log_text",
    "log_video",
    "plot",
    "rename_run",
    "restore_run",
    "runs",
    "search_runs",
    "seed_everything",
    "set_note",
    "tag_run",
    "trashed_runs",
    "ui",
    "untag_run",
]

if TYPE_CHECKING:  # explicit re-exports (`X as X`) for type checkers
    from polytrack._api import (
        current_run as current_run,
        finish as finish,
        init as init,
        log_artifact as log_artifact,
        log_audio as log_audio,
        log_confusion_matrix as log_confusion_matrix,
        log_curve as log_curve,
        log_data_ref as log_data_ref,
        log_figure as log_figure,
        log_histogram as log_histogram,
        log_html as log_html,
        log_image as log_image,
        log_image_with_boxes as log_image_with_boxes,
        log_inputs as log_inputs,
        log_metric as log_metric,
        log_metrics as log_metrics,
        log_model as log_model,
        log_np_histogram as log_np_histogram,
        log_outputs as log_outputs,
        log_params as log_params,
        log_pr_curve as log_pr_curve,
        log_roc_curve as log_roc_curve,
        log_table as log_table,
        log_tags as log_tags,
        log_text as log_text,
        log_video as log_video,
        seed_everything as seed_everything,
    )
    from polytrack.artifacts import ArtifactView as ArtifactView
    from polytrack.capture.logs import LogLine as LogLine
    from polytrack.dashboard.server import ui as ui
    from polytrack.errors import (
        AmbiguousRunError as AmbiguousRunError,
        ArtifactNotFoundError as ArtifactNotFoundError,
        BackendAuthError as BackendAuthError,
        BackendConfigError as BackendConfigError,
        BackendError as BackendError,
        BackendRejectedError as BackendRejectedError,
        BackendUnavailableError as BackendUnavailableError,
        DamagedRecordsWarning as DamagedRecordsWarning,
        InvalidInputError as InvalidInputError,
        InvalidMetricError as InvalidMetricError,
        MediaNotFoundError as MediaNotFoundError,
        NotAStoreError as NotAStoreError,
        PolytrackError as PolytrackError,
        QueryError as QueryError,
        RunNotFoundError as RunNotFoundError,
        RunStateError as RunStateError,
        StoreError as StoreError,
        TrackingWarning as TrackingWarning,
    )
    from polytrack.history.compare import (
        Comparison as Comparison,
        compare as compare,
    )
    from polytrack.history.lineage import (
        LineageGraph as LineageGraph,
        lineage as lineage,
    )
    from polytrack.history.manage import (
        GcReport as GcReport,
        delete_run as delete_run,
        gc as gc,
        rename_run as rename_run,
        restore_run as restore_run,
        set_note as set_note,
        tag_run as tag_run,
        trashed_runs as trashed_runs,
        untag_run as untag_run,
    )
    from polytrack.history.plot import plot as plot
    from polytrack.history.runs import (
        RunList as RunList,
        RunView as RunView,
        get_run as get_run,
        runs as runs,
        search_runs as search_runs,
    )
    from polytrack.media.read import MediaItem as MediaItem
    from polytrack.models import (
        CodeState as CodeState,
        DataRef as DataRef,
        EnvironmentState as EnvironmentState,
        GitState as GitState,
        GpuInfo as GpuInfo,
        HardwareState as HardwareState,
        MetricSummary as MetricSummary,
        RunInfo as RunInfo,
        SeedState as SeedState,
        Snapshot as Snapshot,
    )
    from polytrack.run import (
        DisabledRun as DisabledRun,
        Run as Run,
    )
    from polytrack.settings import (
        Settings as Settings,
    )
    from polytrack.sync.backends.base import Backend as Backend
    from polytrack.sync.backends.memory import InMemoryBackend as InMemoryBackend


# Subpackages a user reaches as attributes after `import polytrack` alone
# (`polytrack.importers.mlflow(...)`, as with `from polytrack import importers`).
_SUBPACKAGES = frozenset({"importers", "integrations", "tracking"})


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"polytrack.{name}")  # sets the attribute itself
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'polytrack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
