"""`tracking.Run`: Polyaxon's tracking client (`traceml.tracking.Run`), over a polytrack run.

    from polytrack.tracking import Run        # was: from polyaxon.tracking import Run

    experiment = Run(project="iris", tags=["examples"])
    experiment.log_inputs(max_depth=3)
    experiment.log_outputs(accuracy=0.93)

A thin facade: each method is the same implementation as the `tracking` function of that
name (`_bind`), on this Run's polytrack run rather than on the current one. Creating a
Run starts a polytrack run (it becomes the current one, as Polyaxon's becomes
`TRACKING_RUN` through `init()`), or continues one: `run_uuid` names a recorded run
unless `is_new`, and in a workload `polytrack run` started (`settings.CLIENT_CONFIG.
is_managed`) the run made at submission is the one recorded into.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from polytrack import _state
from polytrack.errors import PolytrackError
from polytrack.run import DisabledRun, Run as PolytrackRun
from polytrack.tracking import _functions, _media, _paths, _refs
from polytrack.tracking._bind import as_method, as_recording_method
from polytrack.tracking.client import SERVER_ONLY, server_only

__all__ = ["Run", "RunData", "current", "get_or_create_run", "init", "polytrack_run_of"]

# The facade of the current run, so that `TRACKING_RUN` is one object, the one `init()`
# returned; a cache of `_state.current`, made again when that run changes.
_facade: Run | None = None


@frozen
class RunData:
    """What Polyaxon's `run_data` (a `V1Run`) says of the run that polytrack records:
    read from the store when asked."""

    uuid: str
    name: str | None
    project: str | None
    owner: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    status: str | None = None
    inputs: dict[str, Any] = field(factory=dict)
    outputs: dict[str, Any] = field(factory=dict)


class Run:
    """Polyaxon's tracking `Run`, recording into polytrack's store.

    Args (Polyaxon's, in its order):
        owner: kept as `owner`; polytrack has no owners.
        project: the run's project.
        run_uuid: a recorded run to continue (`polytrack.init(resume=...)`), unless
            `is_new`; the current run itself when it is that run.
        track_code, track_env, track_logs: False switches off polytrack's capture of git
            and code, of environment and hardware, of the output.
        collect_resources: false-ish switches off system metrics.
        is_new: start a new run even with `run_uuid`.
        is_offline: mode "offline" (never synced).
        no_op: mode "disabled" (records nothing).
        name, description, tags: the new run's name, notes and tags.
        auto_create: False with no `run_uuid` wraps the current run instead of starting
            one (as a callback does), when there is one.
        Ignored: `client`, `refresh_data`, `artifacts_path` (the run's paths are in the
        store: `get_artifacts_path`), `collect_artifacts`, `log_context`.

    Raises:
        InvalidInputError, RunStateError: as `polytrack.init`.

    Example:
        >>> experiment = Run(project="random-forest", tags=["examples"])
        >>> experiment.log_outputs(accuracy_mean=0.95)
    """

    def __init__(
        self,
        owner: str | None = None,
        project: str | None = None,
        run_uuid: str | None = None,
        client: Any = None,
        track_code: bool = True,
        track_env: bool = True,
        track_logs: bool = True,
        refresh_data: bool = False,
        artifacts_path: str | None = None,
        collect_artifacts: bool | None = None,
        collect_resources: bool | None = None,
        is_new: bool | None = None,
        is_offline: bool | None = None,
        no_op: bool | None = None,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | str | None = None,
        auto_create: bool = True,
        *,
        log_context: bool = False,
    ) -> None:
        global _facade
        running = _state.current
        if running is not None and not is_new and _is(running, run_uuid, auto_create):
            run = running
        else:
            run = _functions.start(
                owner, project, run_uuid, client, track_code, track_env, track_logs,
                refresh_data, artifacts_path, collect_artifacts, collect_resources,
                is_offline, is_new, name, description, tags, no_op=no_op,
            )  # fmt: skip
        self._run = run
        self._owner = owner
        if _state.current is run:
            _facade = self

    @classmethod
    def of(cls, run: PolytrackRun | DisabledRun) -> Run:
        """The facade of a polytrack run that is recording already (no new run)."""
        facade = cls.__new__(cls)
        facade._run = run
        facade._owner = None
        return facade

    def __repr__(self) -> str:
        return f"<polytrack.tracking.Run {self.run_uuid} {self.project}/{self.name}>"

    def __getattr__(self, name: str) -> Any:
        if name in SERVER_ONLY:  # Polyaxon's calls on its server: say what to do instead
            return server_only(name)
        raise AttributeError(
            f"polytrack.tracking.Run has no attribute {name!r}: polytrack maps Polyaxon's "
            "tracking calls, not its server's (see docs/polyaxon-client.md)"
        )

    # -- who it is ------------------------------------------------------------------------

    @property
    def polytrack_run(self) -> PolytrackRun | DisabledRun:
        """The polytrack run this Run records into (for polytrack's own API)."""
        return self._run

    @property
    def run_uuid(self) -> str:
        """The run's id."""
        return self._run.id

    @property
    def id(self) -> str:
        """The run's id, as polytrack's `Run.id` names it (`run_uuid`)."""
        return self._run.id

    @property
    def owner(self) -> str | None:
        """The `owner` given; polytrack has no owners."""
        return self._owner

    @property
    def project(self) -> str:
        return self._run.project

    @property
    def name(self) -> str:
        return self._run.name

    @property
    def status(self) -> str:
        """ "running" while it records, then its final status."""
        return self._run.status

    @property
    def is_offline(self) -> bool:
        run = self._run
        return isinstance(run, PolytrackRun) and run.settings.mode == "offline"

    @property
    def run_data(self) -> RunData:
        """The run as recorded so far, read from the store."""
        run = self._run
        if isinstance(run, DisabledRun):
            return RunData(uuid=run.id, name=run.name, project=run.project, status=run.status)
        found = _read(run)
        if found is None:
            return RunData(uuid=run.id, name=run.name, project=run.project, status=run.status)
        info, outputs = found
        return RunData(
            uuid=info.id,
            name=info.name,
            project=info.project,
            owner=self._owner,
            description=info.notes,
            tags=info.tags,
            status=run.status,
            inputs=dict(info.params),
            outputs=dict(outputs),
        )

    def refresh_data(self) -> None:
        """Nothing to fetch: `run_data` reads the store each time."""

    def get_inputs(self) -> dict[str, Any]:
        """The inputs (params) recorded so far."""
        return dict(self.run_data.inputs)

    def get_outputs(self) -> dict[str, Any]:
        """The outputs recorded so far."""
        return dict(self.run_data.outputs)

    def create(self, **kwargs: Any) -> None:
        """As Polyaxon's tracking Run: not called by hand; create a `Run(is_new=True)`."""
        raise NotImplementedError(
            "The tracking `Run` subclass does not allow to call `create` method manually, "
            "please create a new instance of `Run` with `is_new=True`"
        )

    # -- Polyaxon's calls: the same implementations as the `tracking` functions ---------
    log_metric = as_method(_functions.log_metric)
    log_metrics = as_method(_functions.log_metrics)
    log_inputs = as_method(_functions.log_inputs)
    log_outputs = as_method(_functions.log_outputs)
    log_tags = as_method(_functions.log_tags)
    log_progress = as_method(_functions.log_progress)
    log_data_ref = as_method(_functions.log_data_ref)
    log_code_ref = as_method(_functions.log_code_ref)
    log_model = as_method(_functions.log_model)
    log_artifact = as_method(_functions.log_artifact)
    end = as_method(_functions.end)
    log_succeeded = as_method(_functions.log_succeeded)
    log_stopped = as_method(_functions.log_stopped)
    log_failed = as_method(_functions.log_failed)
    log_status = as_method(_functions.log_status)

    get_artifacts_path = as_method(_paths.get_artifacts_path)
    get_outputs_path = as_method(_paths.get_outputs_path)
    get_tensorboard_path = as_method(_paths.get_tensorboard_path)
    log_tensorboard_ref = as_method(_paths.log_tensorboard_ref)

    log_file_ref = as_method(_refs.log_file_ref)
    log_dir_ref = as_method(_refs.log_dir_ref)
    log_model_ref = as_method(_refs.log_model_ref)
    log_artifact_ref = as_method(_refs.log_artifact_ref)
    log_env = as_method(_refs.log_env)

    log_image = as_recording_method(_media.log_image)
    log_image_with_boxes = as_recording_method(_media.log_image_with_boxes)
    log_mpl_image = as_recording_method(_media.log_mpl_image)
    log_video = as_recording_method(_media.log_video)
    log_audio = as_recording_method(_media.log_audio)
    log_text = as_recording_method(_media.log_text)
    log_html = as_recording_method(_media.log_html)
    log_np_histogram = as_recording_method(_media.log_np_histogram)
    log_histogram = as_recording_method(_media.log_histogram)
    log_curve = as_recording_method(_media.log_curve)
    log_roc_auc_curve = as_recording_method(_media.log_roc_auc_curve)
    log_pr_curve = as_recording_method(_media.log_pr_curve)
    log_sklearn_roc_auc_curve = as_recording_method(_media.log_sklearn_roc_auc_curve)
    log_sklearn_pr_curve = as_recording_method(_media.log_sklearn_pr_curve)
    log_confusion_matrix = as_recording_method(_media.log_confusion_matrix)
    log_dataframe = as_recording_method(_media.log_dataframe)
    log_plotly_chart = as_recording_method(_media.log_plotly_chart)
    log_bokeh_chart = as_recording_method(_media.log_bokeh_chart)
    log_altair_chart = as_recording_method(_media.log_altair_chart)
    log_mpl_plotly_chart = as_recording_method(_media.log_mpl_plotly_chart)


def init(
    owner: str | None = None,
    project: str | None = None,
    run_uuid: str | None = None,
    client: Any = None,
    track_code: bool = True,
    track_env: bool = True,
    track_logs: bool = True,
    refresh_data: bool = False,
    artifacts_path: str | None = None,
    collect_artifacts: str | None = None,
    collect_resources: str | None = None,
    is_offline: bool | None = None,
    is_new: bool | None = None,
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | str | None = None,
    *,
    log_context: bool = False,
) -> Run:
    """Start a polytrack run, as Polyaxon's `tracking.init` starts a tracked run, and
    return its `Run` (also `tracking.TRACKING_RUN` while it records).

    Mapped: `project`, `name`, `description` (the run's notes), `tags`; `run_uuid`
    continues that recorded run (as `polytrack.init(resume=...)`) unless `is_new`;
    `is_offline=True` is mode "offline"; `track_code=False` skips the git and code
    capture, `track_env=False` the environment and hardware, `track_logs=False` the
    output, and `collect_resources` false-ish the system metrics. Ignored: `owner`,
    `client`, `refresh_data`, `artifacts_path`, `collect_artifacts`, `log_context`.

    Raises:
        InvalidInputError, RunStateError: as `polytrack.init`.

    Example:
        >>> tracking.init(project="mnist", name="baseline", tags=["cnn"])
    """
    global _facade
    run = _functions.start(
        owner, project, run_uuid, client, track_code, track_env, track_logs, refresh_data,
        artifacts_path, collect_artifacts, collect_resources, is_offline, is_new, name,
        description, tags,
    )  # fmt: skip
    facade = Run.of(run)
    facade._owner = owner
    _facade = facade
    return facade


def current() -> Run | None:
    """The `Run` of the current polytrack run (Polyaxon's `TRACKING_RUN`), or None."""
    global _facade
    run = _state.current
    if run is None:
        return None
    if _facade is None or _facade.polytrack_run is not run:
        _facade = Run.of(run)
    return _facade


def get_or_create_run(tracking_run: Run | None = None) -> Run:
    """`tracking_run`, else the current run's `Run`, else a new run's (`init()`): how
    Polyaxon's callbacks find the run to record into.

    Example:
        >>> run = tracking.get_or_create_run()
    """
    return tracking_run or current() or init()


def polytrack_run_of(
    run: Run | PolytrackRun | DisabledRun | None,
) -> PolytrackRun | DisabledRun | None:
    """The polytrack run behind `run`, which may be a tracking `Run` (`TRACKING_RUN`,
    a user's `Run(...)`): for callbacks that take Polyaxon's `run=` argument.

    Example:
        >>> handle = RunHandle(polytrack_run_of(run))
    """
    return run.polytrack_run if isinstance(run, Run) else run


def _is(running: PolytrackRun | DisabledRun, run_uuid: str | None, auto_create: bool) -> bool:
    """Whether the new `Run` is the one recording already: named by its id, or not to be
    created (`auto_create=False`) and not named."""
    if run_uuid is None:
        return not auto_create
    return bool(run_uuid) and running.id == run_uuid


def _read(run: PolytrackRun) -> tuple[Any, Mapping[str, object]] | None:
    """The run's record and outputs as a reader sees them now; None where the store
    cannot be read (a property never raises for that)."""
    from polytrack.store.local import LocalStore

    try:
        with LocalStore.open(run.settings.home, create=False, repair_index=False) as store:
            read = store.read_run(run.id)
    except (PolytrackError, OSError):
        return None
    return read.info, read.outputs
