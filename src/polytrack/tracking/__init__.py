"""Polyaxon's tracking API, recorded by polytrack: change the import line and keep the rest.

```python
from polytrack import tracking        # was: from polyaxon import tracking

tracking.init(project="mnist", name="baseline")
tracking.log_inputs(lr=0.01, batch_size=64)
tracking.log_metrics(step=1, loss=0.09, accuracy=0.75)
torch.save(model.state_dict(), tracking.get_outputs_path("model.pt"))
tracking.log_outputs(accuracy=0.93)
tracking.end()
```

Each function has the name, parameters (keyword names included) and defaults of Polyaxon's
`polyaxon.tracking` (polyaxon 2.18, whose functions live in traceml 1.5's
`traceml/tracking/__init__.py`), and does what polytrack does for the same intent;
`tracking.Run` is Polyaxon's tracking client with the same methods (`run.py`). What has
no meaning for a local-first store is accepted and ignored: connection and server options
of `init()` (`owner`, `client`, `refresh_data`, `artifacts_path`, `collect_artifacts`,
`log_context`), `async_req` (every record is durable when the call returns), `timestamp`
(polytrack stamps each point itself), `rel_path` and `skip_hash_calculation` (artifacts
are stored by content hash, always). Like Polyaxon's, the functions act on the run
`init()` started (`TRACKING_RUN`); called before it they warn once and record nothing
(the path functions raise `RunStateError`: a script cannot go on without the path).
Calls that only Polyaxon's server answers (`promote_to_model_version`, `push_offline_run`,
the clients of `tracking.client`, ...) raise `ServerOnlyError` saying what to use
instead; other names raise AttributeError. docs/polyaxon-client.md has the whole table.

The modules, one subject each: `_functions` (metrics, inputs, outputs, tags, data and
code refs, models, artifacts, statuses), `_media` and `_media_inputs` (images, videos,
sounds, histograms, curves, charts: read as Polyaxon's event processors read them),
`_paths` (the artifacts, outputs and TensorBoard directories, and the outputs kept when
the run finishes), `_refs` (file, directory, model and artifact refs; `log_env`), `run`
(the `Run` class, `init`), `client` (the server-only calls), `_bind` (one
implementation as both the module function and the `Run` method), `contrib` (Polyaxon's
framework callbacks, over `polytrack.integrations`).
"""

from __future__ import annotations

from typing import Any

from polytrack.tracking import _functions, _media, _paths, _refs
from polytrack.tracking._bind import on_current, on_current_recording, on_current_required
from polytrack.tracking.client import SERVER_ONLY, server_only
from polytrack.tracking.run import Run, current, get_or_create_run, init

__all__ = [
    "Run",
    "end",
    "get_artifacts_path",
    "get_or_create_run",
    "get_outputs_path",
    "get_tensorboard_path",
    "init",
    "log_altair_chart",
    "log_artifact",
    "log_artifact_ref",
    "log_audio",
    "log_bokeh_chart",
    "log_code_ref",
    "log_confusion_matrix",
    "log_curve",
    "log_data_ref",
    "log_dataframe",
    "log_dir_ref",
    "log_env",
    "log_failed",
    "log_file_ref",
    "log_histogram",
    "log_html",
    "log_image",
    "log_image_with_boxes",
    "log_inputs",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_model_ref",
    "log_mpl_image",
    "log_mpl_plotly_chart",
    "log_np_histogram",
    "log_outputs",
    "log_plotly_chart",
    "log_pr_curve",
    "log_progress",
    "log_roc_auc_curve",
    "log_sklearn_pr_curve",
    "log_sklearn_roc_auc_curve",
    "log_status",
    "log_stopped",
    "log_succeeded",
    "log_tags",
    "log_tensorboard_ref",
    "log_text",
    "log_video",
]

# -- core: metrics, inputs, outputs, tags, refs, models, artifacts, statuses -----------
log_metric = on_current(_functions.log_metric)
log_metrics = on_current(_functions.log_metrics)
log_inputs = on_current(_functions.log_inputs)
log_outputs = on_current(_functions.log_outputs)
log_tags = on_current(_functions.log_tags)
log_progress = on_current(_functions.log_progress)
log_data_ref = on_current(_functions.log_data_ref)
log_code_ref = on_current(_functions.log_code_ref)
log_model = on_current(_functions.log_model)
log_artifact = on_current(_functions.log_artifact)
end = on_current(_functions.end)
log_succeeded = on_current(_functions.log_succeeded)
log_stopped = on_current(_functions.log_stopped)
log_failed = on_current(_functions.log_failed)
log_status = on_current(_functions.log_status)

# -- paths: real directories of the run, the outputs kept when it finishes -------------
get_artifacts_path = on_current_required(_paths.get_artifacts_path)
get_outputs_path = on_current_required(_paths.get_outputs_path)
get_tensorboard_path = on_current_required(_paths.get_tensorboard_path)
log_tensorboard_ref = on_current(_paths.log_tensorboard_ref)

# -- refs: outputs kept as artifacts, inputs hashed as data refs -----------------------
log_file_ref = on_current(_refs.log_file_ref)
log_dir_ref = on_current(_refs.log_dir_ref)
log_model_ref = on_current(_refs.log_model_ref)
log_artifact_ref = on_current(_refs.log_artifact_ref)
log_env = on_current(_refs.log_env)

# -- media: onto the run's media methods ------------------------------------------------
log_image = on_current_recording(_media.log_image)
log_image_with_boxes = on_current_recording(_media.log_image_with_boxes)
log_mpl_image = on_current_recording(_media.log_mpl_image)
log_video = on_current_recording(_media.log_video)
log_audio = on_current_recording(_media.log_audio)
log_text = on_current_recording(_media.log_text)
log_html = on_current_recording(_media.log_html)
log_np_histogram = on_current_recording(_media.log_np_histogram)
log_histogram = on_current_recording(_media.log_histogram)
log_curve = on_current_recording(_media.log_curve)
log_roc_auc_curve = on_current_recording(_media.log_roc_auc_curve)
log_pr_curve = on_current_recording(_media.log_pr_curve)
log_sklearn_roc_auc_curve = on_current_recording(_media.log_sklearn_roc_auc_curve)
log_sklearn_pr_curve = on_current_recording(_media.log_sklearn_pr_curve)
log_confusion_matrix = on_current_recording(_media.log_confusion_matrix)
log_dataframe = on_current_recording(_media.log_dataframe)
log_plotly_chart = on_current_recording(_media.log_plotly_chart)
log_bokeh_chart = on_current_recording(_media.log_bokeh_chart)
log_altair_chart = on_current_recording(_media.log_altair_chart)
log_mpl_plotly_chart = on_current_recording(_media.log_mpl_plotly_chart)


def __getattr__(name: str) -> Any:
    if name == "TRACKING_RUN":  # Polyaxon's module-level handle on the current run
        return current()
    if name in SERVER_ONLY:  # callable, and raising then: importing it does not fail
        return server_only(name)
    raise AttributeError(
        f"module 'polytrack.tracking' has no attribute {name!r}: polytrack maps these "
        f"Polyaxon tracking functions only: {', '.join(__all__)}"
    )
