"""`init()` and the module-level log functions: sugar over the current run."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from polytrack import _state
from polytrack._text import escape_surrogates, has_surrogates, safe_repr
from polytrack._version import __version__
from polytrack.errors import InvalidInputError, RunStateError, StoreError, TrackingWarning
from polytrack.models import DataRef, ParamsSet, RunLinked, RunStarted, SeedState, StatusChanged
from polytrack.redact import redact_text
from polytrack.run import DisabledRun, Run, check_tags, flatten_params, forked_message
from polytrack.settings import CAPTURES, MODES, Settings, config_path
from polytrack.store.journal import CHANGES_FILE, EVENTS_RE
from polytrack.store.liveness import hostname, process_started
from polytrack.store.writer import JournalWriter

if TYPE_CHECKING:
    import argparse

    from polytrack.capture.snapshot import SnapshotCapture
    from polytrack.store.local import LocalStore, RunRead
    from polytrack.sync.backends.base import Backend
    from polytrack.sync.backends.target import SyncTarget

__all__ = [
    "current_run",
    "finish",
    "init",
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
    "seed_everything",
]


def init(
    project: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | argparse.Namespace | None = None,
    tags: Iterable[str] | None = None,
    notes: str | None = None,
    *,
    mode: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    capture: bool | Mapping[str, bool] | None = None,
    backend: Backend | str | None = None,
    user: str | None = None,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
    reinit: str = "finish_previous",
    log_all_ranks: bool | None = None,
) -> Run | DisabledRun:
    """Start recording a run and make it the current run.

    Args:
        project: groups runs; default `POLYTRACK_PROJECT` or "default".
        name: a human name, unique or not; default the run id.
        params: hyperparameters; nested mappings are flattened with dots.
        tags: labels to filter by.
        notes: free text.
        mode: "online" (default), "offline" (never sync; local store only) or "disabled"
            (every call is a no-op).
        dir: the store's home; default `POLYTRACK_HOME`, else `~/.local/share/polytrack`.
        resume: the id (or prefix, or name) of a run to continue: its steps go on.
            Without it, `POLYTRACK_RUN_ID` (set in the containers `polytrack run`
            launches) names the run to record into: created under that id where the
            store lacks it, else continued like `resume`. `POLYTRACK_RUN_NAME` is the
            default `name`.
        capture: False records no snapshot, system metrics or logs; a mapping switches
            single captures ({"logs": False}): git, code, environment, hardware, system,
            logs. Default: all on, unless switched off by `POLYTRACK_CAPTURE_*`.
        backend: where the run is synced while it records, besides the local store: a
            `Backend` instance, or a URI (`mlflow+http://host:5000`,
            `polyaxon+http://host:8000/owner/project`). Default `POLYTRACK_BACKEND`, else
            the config file's `backend`, else nowhere. Offline mode syncs nothing.
        user: who runs it; default `POLYTRACK_USER`, else the login name. Shown by
            `runs ls`, queryable (`user = 'ana'`), and synced (MLflow's `mlflow.user`).
        settings: a full `Settings`; the arguments above override it.
        environ: read instead of `os.environ` (for tests).
        log_all_ranks: in a distributed job (`RANK`, `WORLD_SIZE`, ...), record the
            metrics of every rank, labelled `rank<N>/<key>`, not rank 0's only; default
            `POLYTRACK_LOG_ALL_RANKS`. Every rank records into one run: rank 0 creates
            it, the others return a `polytrack.ranks.RankRun` that records their system
            metrics (see docs/distributed.md).
        reinit: what a call made while a run is current does (W&B's `reinit`), the same
            in a notebook and in a script: "finish_previous" (the default) finishes that
            run, succeeded, says so in one line on stderr, and starts a new one; the
            finished run is deleted if it recorded nothing after `init()` (re-running a
            notebook's init cell; see docs/tracking.md). "return_previous" returns the
            current run and ignores the other arguments. "create_new" starts a new run
            and leaves the previous one recording (each is finished by its own
            `finish()`, else at exit).

    Raises:
        InvalidInputError: an argument cannot be recorded (names it).
        BackendConfigError: the backend URI or the config file is unusable (names it).
        RunStateError: `resume` (or `POLYTRACK_RUN_ID`) names a run that is still running
            in a live process. A run handed over to a cluster job (`Run.hand_over`) may
            be continued although it shows "running".

    Example:
        >>> with polytrack.init(project="mnist", params={"lr": 0.01}) as run:
        ...     run.log_metrics({"loss": 0.5}, step=0)
    """
    if reinit not in REINIT:
        raise InvalidInputError(
            f"reinit must be one of {', '.join(REINIT)}; got {safe_repr(reinit)}"
        )
    previous = _state.current
    if reinit == "return_previous" and previous is not None:
        return previous
    settings = settings or Settings.from_env(environ)
    if mode is not None:
        if mode not in MODES:
            raise InvalidInputError(
                f"mode must be one of {', '.join(MODES)};"
                f" got {safe_repr(mode)}"
            )
        settings = settings.evolve(mode=mode)
    if dir is not None:
        settings = settings.evolve(home=Path(dir).expanduser())
    if capture is not None:
        settings = settings.evolve(**_capture_switches(capture))
    if project is not None:
        _check_text("project", project)
        settings = settings.evolve(project=project)
    if name is not None:
        _check_text("name", name)
        name = redact_text(name)
    if user is not None:
        _check_text("user", user)
        settings = settings.evolve(user=user)
    if log_all_ranks is not None:
        settings = settings.evolve(log_all_ranks=bool(log_all_ranks))
    flat = flatten_params(params) if params is not None else {}
    clean_tags = check_tags(tags) if tags is not None else ()
    if notes is not None:
        if not isinstance(notes, str):
            raise InvalidInputError(f"notes must be a string; got {type(notes).__name__}")
        notes = redact_text(escape_surrogates(notes))

    target = _sync_target(backend, settings, os.environ if environ is None else environ)

    if previous is not None and reinit == "finish_previous":
        _finish_previous(previous)
    if settings.mode == "disabled":
        disabled = DisabledRun(on_finish=_state.forget)
        _state.set_current(disabled)
        return disabled
    if settings.distributed is not None:
        # A rank of a distributed job: all ranks record into one run, rank 0 creates it.
        from polytrack.ranks import RankRun, join_job

        if resume is not None and settings.distributed.rank != 0:
            # Rank 0 continues `resume`: the others record beside it, not under the job's id.
            from polytrack.store.local import LocalStore

            with LocalStore.open(settings.home) as store:
                settings = settings.evolve(run_id=store.resolve(resume))
        settings = join_job(settings)
        if settings.distributed is not None and settings.distributed.rank != 0:
            rank_run = RankRun.start(settings, on_finish=_state.forget)
            _state.set_current(rank_run)
            _state.pending_seeds = None  # every rank seeds; rank 0's run records it
            return rank_run

    run: Run | DisabledRun
    try:
        run = _start(settings, name, flat, clean_tags, notes, resume, environ)
        _start_sync(run, target, os.environ if environ is None else environ)
    except StoreError as exc:
        if resume is not None:
            raise  # asked to continue that run: recording a new one elsewhere is no answer
        # Training goes on whatever the disk says: record elsewhere, or not at all.
        import tempfile  # only here: its imports cost init() ~5 ms

        fallback = Path(tempfile.gettempdir()) / f"polytrack-{os.getuid()}"
        try:
            run = _start(
                settings.evolve(home=fallback), name, flat, clean_tags, notes, None, environ
            )
            where = f"recording to {fallback} instead"
        except StoreError as again:
            run = DisabledRun(on_finish=_state.forget)
            where = f"nor to {fallback} ({again}); recording nothing"
        warnings.warn(
            f"polytrack cannot write to {settings.home} ({exc}); {where}",
            TrackingWarning,
            stacklevel=2,
        )
    _state.set_current(run)
    seeds, _state.pending_seeds = _state.pending_seeds, None
    if seeds is not None:
        run.record_seeds(seeds)  # seeded once: recorded by one run
    return run


REINIT: Final = ("finish_previous", "return_previous", "create_new")


def _finish_previous(previous: Run | DisabledRun) -> None:
    """Finish the run a new `init()` replaces, say so, and delete it if it holds nothing
    the user recorded (see `recorded_nothing`)."""
    # Only a run this process created, under an id of its own, and kept locally only: a
    # resumed run holds earlier attempts, a launched one (POLYTRACK_RUN_ID) belongs to
    # its launcher, and a synced one is on its server already.
    started_here = (
        isinstance(previous, Run)
        and previous.attempt == 0
        and previous.settings.run_id is None
        and previous._sync is None
    )
    previous.finish()
    if not isinstance(previous, Run) or previous.status != "succeeded":
        return  # disabled, or finished before (by another init(), its `with` block)
    if started_here and recorded_nothing(previous.dir):
        import shutil

        shutil.rmtree(previous.dir, ignore_errors=True)
        said = f"deleted it: it recorded nothing after init() ({previous.dir})"
    else:
        said = f"finished it: {previous.status}"
    print(
        f"polytrack: a new init() replaces run {previous.id} ({previous.name}); {said}",
        file=sys.stderr,
    )


def recorded_nothing(directory: Path) -> bool:
    """Whether the run in `directory` holds nothing but what `init()` recorded: no
    metrics (system metrics aside), no params or tags beyond init()'s, no outputs,
    artifacts, data refs or links. Its snapshot, logs and cells do not count."""
    from polytrack.capture.system import PREFIX
    from polytrack.models import ArtifactLogged, OutputsSet, TagsAdded
    from polytrack.store.reader import read_run_files

    try:
        files = read_run_files(directory)
    except (StoreError, OSError):
        return False
    if files.corrupt or any(not key.startswith(PREFIX) for key in files.series):
        return False
    running = False  # init() writes its params before the run's first "running"
    for _, event in files.events:
        if isinstance(event, (TagsAdded, OutputsSet, ArtifactLogged, DataRef, RunLinked)):
            return False
        if isinstance(event, ParamsSet) and running:
            return False
        running = running or (isinstance(event, StatusChanged) and event.status == "running")
    return running


def _read_or_none(store: LocalStore, run_id: str) -> RunRead | None:
    """The run's files folded, or None for a directory that holds no run yet (its first
    process died before writing anything)."""
    try:
        return store.read_run(run_id)
    except StoreError:
        return None


def _capture_switches(capture: bool | Mapping[str, bool]) -> dict[str, bool]:
    if isinstance(capture, bool):
        return {f"capture_{what}": capture for what in CAPTURES}
    if not isinstance(capture, Mapping):
        raise InvalidInputError(f"capture must be a bool or a mapping; got {safe_repr(capture)}")
    unknown = sorted(set(capture) - set(CAPTURES))
    if unknown:
        raise InvalidInputError(
            f"capture: unknown {', '.join(map(repr, unknown))}; known: {', '.join(CAPTURES)}"
        )
    return {f"capture_{what}": bool(on) for what, on in capture.items()}


def _start(
    settings: Settings,
    name: str | None,
    params: dict[str, Any],
    tags: tuple[str, ...],
    notes: str | None,
    resume: str | None,
    environ: Mapping[str, str] | None,
) -> Run:
    now = time.time()
    attempt, last_step = 0, -1
    project = settings.project
    if name is None and resume is None:
        name = settings.run_name
    if resume is not None or (
        settings.run_id is not None and (settings.home / "runs" / settings.run_id).is_dir()
    ):
        # The store's reader needs numpy and SQLite: imported only to continue a run.
        from polytrack.store.local import LocalStore

        with LocalStore.open(settings.home, stale_after=6 * settings.heartbeat_interval) as store:
            if resume is not None:
                read: RunRead | None = store.read_run(store.resolve(resume))
            else:
                assert settings.run_id is not None
                read = _read_or_none(store, settings.run_id)
        info = None if read is None else read.info
        handed_over = None if read is None else read.handed_over
        run_id = settings.run_id if info is None else info.id
        assert run_id is not None
        if info is not None:
            if info.status == "running" and handed_over is None:
                raise RunStateError(
                    f"run {run_id} is still running (pid {info.pid} on {info.host})"
                )
            last_step = max((m.last_step for m in info.metrics.values()), default=-1)
            project = info.project
            name = name or info.name
        # One past every attempt on disk, also one that died before its first record.
        directory = settings.home / "runs" / run_id
        attempt = 1 + max(
            (
                int(m.group(1))
                for p in directory.iterdir()
                if (m := EVENTS_RE.match(p.name)) and p.name != CHANGES_FILE
            ),
            default=-1 if info is None else info.attempts - 1,
        )
    elif settings.run_id is not None:
        run_id = settings.run_id  # launched for a run made elsewhere: its first attempt here
    else:
        run_id = new_run_id()
    if name is None:  # memorable and unique within the project: `brave-otter-3`
        from polytrack._names import default_name

        name = default_name(settings.home, project, run_id)
    directory = settings.home / "runs" / run_id
    writer = JournalWriter.create(
        directory,
        run_id=run_id,
        attempt=attempt,
        fsync_interval=settings.fsync_interval,
        heartbeat_interval=settings.heartbeat_interval,
        first_segment_bytes=settings.first_segment_bytes,
        max_segment_bytes=settings.max_segment_bytes,
        speedups=settings.speedups,
    )
    writer.set_last_step(last_step)
    try:
        writer.append_event(
            RunStarted(
                id=run_id,
                project=project,
                name=name or run_id,
                created_at=now,
                host=hostname(),
                pid=os.getpid(),
                process_started=process_started(os.getpid()),
                attempt=attempt,
                notes=notes,
                tags=tags,
                version=__version__,
                user=settings.user,
            )
        )
        if params:
            writer.append_event(ParamsSet(params=params))
        writer.append_event(StatusChanged(status="running", at=now))
        if settings.reproduces is not None:  # started by `polytrack reproduce --run`
            writer.append_event(
                RunLinked(run_id=settings.reproduces, relation="reproduces", at=now)
            )
    except BaseException:
        writer.close()
        raise
    writer.start()
    run = Run(
        run_id=run_id,
        project=project,
        name=name or run_id,
        directory=directory,
        settings=settings,
        writer=writer,
        on_finish=_state.forget,
        attempt=attempt,
    )
    _start_captures(run, writer, attempt, os.environ if environ is None else environ)
    return run


def _start_captures(
    run: Run, writer: JournalWriter, attempt: int, environ: Mapping[str, str]
) -> None:
    """Start what the run records by itself; a capture that fails to start is skipped.

    The capture modules are imported here, not with this module: a run with
    `capture=False` never loads them (issue 21).
    """
    settings = run.settings
    if not any(settings.captures(what) for what in CAPTURES):
        return
    from polytrack.capture.logs import LogCapture
    from polytrack.capture.snapshot import QUIET_START, SnapshotCapture
    from polytrack.capture.system import SystemSampler, rank_prefix

    def warn(kind: str, message: str) -> None:
        writer.warn_once(kind, message, stacklevel=1)

    # The snapshot first: git works in its own processes while the rest starts.
    snapshot: SnapshotCapture | None = None
    try:
        snapshot = SnapshotCapture.start(
            settings=settings,
            directory=run.dir,
            attempt=attempt,
            run_id=run.id,
            record=writer.append_event,
            warn=warn,
            environ=environ,
        )
    except Exception as exc:
        warn("capture-snapshot", f"polytrack could not capture the run's snapshot: {exc!r}")
    if settings.capture_logs:
        _start_collaborator(
            run,
            "logs",
            lambda: LogCapture(
                run.dir / f"output-{attempt:03d}.log",
                max_bytes=settings.logs_max_bytes,
                mode=settings.console,
                run_id=run.id,
            ),
            warn,
        )
    if settings.capture_code and "IPython" in sys.modules:
        _start_notebook_capture(run, attempt, environ, warn)
    if snapshot is not None:
        snapshot.settle()
    # The sampler after git has answered, its first sample after the quiet first second
    # (or at finish()): it imports psutil, which would hold the GIL while init() waits
    # and while the user's loop starts.
    if settings.capture_system:
        # Beside the other ranks' in a distributed job: `system/rank0/...`.
        rank = None if settings.distributed is None else settings.distributed.rank
        _start_collaborator(
            run,
            "system",
            lambda: SystemSampler(
                writer.write_sample,
                interval=settings.system_interval,
                run_id=run.id,
                delay=QUIET_START,
                prefix=rank_prefix(rank),
            ),
            warn,
        )
    if snapshot is not None:
        run.own(snapshot)  # stopped first: its records go in before the logs close


def _start_notebook_capture(
    run: Run, attempt: int, environ: Mapping[str, str], warn: Callable[[str, str], None]
) -> None:
    """In a notebook: keep the cells the kernel runs, and the `.ipynb` (see
    `polytrack.capture.notebook`)."""
    from polytrack.capture.notebook import NotebookCapture, ipython_shell, notebook_path

    shell = ipython_shell()
    if shell is None or not hasattr(shell, "events"):
        return
    path = notebook_path(environ, shell)
    _start_collaborator(
        run, "notebook", lambda: NotebookCapture(shell, run.dir, attempt, path), warn
    )


def _sync_target(
    backend: Backend | str | None, settings: Settings, environ: Mapping[str, str]
) -> SyncTarget | None:
    """Where the run syncs to (see `resolve_target`), without importing the backends'
    modules when nothing names one: most runs stay local, and init() stays quick."""
    if settings.mode != "online":
        return None
    if backend is None and not settings.backend and not config_path(environ).is_file():
        return None
    from polytrack.sync.backends.target import resolve_target

    return resolve_target(backend, settings, environ)


def _start_sync(run: Run, target: SyncTarget | None, environ: Mapping[str, str]) -> None:
    """Start shipping the run to its backend, on a thread the run owns."""
    if target is None:
        return
    from polytrack.sync.worker import SyncWorker

    handoff = None
    if target.uri is not None and run.settings.sync_handoff:
        uri = target.uri

        def handoff() -> tuple[list[str], dict[str, str]]:
            # The URI (maybe with credentials) goes by environment, never on a command line.
            env = {**os.environ, "POLYTRACK_BACKEND": uri}
            if target.artifact_store:
                env["POLYTRACK_ARTIFACT_STORE"] = target.artifact_store
            argv = [sys.executable, "-m", "polytrack", "--home", str(run.settings.home)]
            return [*argv, "sync", "--uploader"], env  # the home's one uploader

    worker = SyncWorker(
        run.dir,
        run.id,
        open_backend=target.open_backend,
        close_backend=target.owned,
        interval=run.settings.sync_interval,
        artifact_store=(lambda: target.open_store(environ)) if target.artifact_store else None,
        handoff=handoff,
        key=target.key if target.uri is not None else None,
    )
    try:
        worker.start()
    except RuntimeError as exc:  # no more threads: the run is kept locally all the same
        run._warn_once("sync", f"polytrack could not start syncing: {exc}")
        return
    run.attach_sync(worker)


def _start_collaborator(
    run: Run, what: str, make: Callable[[], Any], warn: Callable[[str, str], None]
) -> None:
    try:
        collaborator = make()
        collaborator.start()
    except Exception as exc:
        warn(f"capture-{what}", f"polytrack could not start capturing {what}: {exc!r}")
        return
    run.own(collaborator)


_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_run_id() -> str:
    """Eight random base-36 characters, as W&B does: short enough to type.

    From os.urandom directly: `secrets` costs its imports (hmac, hashlib) on `init()`.
    """
    number = int.from_bytes(os.urandom(8), "big")
    chars = []
    for _ in range(8):
        number, digit = divmod(number, 36)
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def _check_text(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise InvalidInputError(
            f"{field} must be a non-empty string of at most 256 characters; "
            f"got {safe_repr(value)}"
        )
    if has_surrogates(value):  # a name: refused, where free text (notes) is escaped
        raise InvalidInputError(f"{field} {value!r} holds a lone surrogate, which is not text")


def current_run() -> Run | DisabledRun | None:
    """The current run, or None."""
    return _state.current


def log_metrics(
    metrics: Mapping[str, Any] | None = None,
    step: int | None = None,
    epoch: int | None = None,
    **named: Any,
) -> None:
    """Record metrics on the current run; see `Run.log_metrics`.

    Example:
        >>> polytrack.log_metrics({"loss": 0.5}, step=3)
        >>> polytrack.log_metrics(loss=0.4, step=4)
    """
    run = _state.current
    if run is None:
        _no_run("log_metrics")
        return
    run.log_metrics(metrics, step, epoch, **named)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one metric on the current run."""
    log_metrics({key: value}, step)


def log_params(params: Mapping[str, Any] | argparse.Namespace) -> None:
    """Record params on the current run; see `Run.log_params`."""
    run = _state.current
    if run is None:
        _no_run("log_params")
        return
    run.log_params(params)


def log_tags(tags: Iterable[str] | str) -> None:
    """Add tags to the current run."""
    run = _state.current
    if run is None:
        _no_run("log_tags")
        return
    run.log_tags(tags)


def log_data_ref(name: str, source: Any, role: str = "input") -> DataRef | None:
    """Record a data reference on the current run; see `Run.log_data_ref`.

    Example:
        >>> polytrack.log_data_ref("train", "data/train.csv")
    """
    run = _state.current
    if run is None:
        _no_run("log_data_ref")
        return None
    return run.log_data_ref(name, source, role)


def log_artifact(
    path: str | os.PathLike[str],
    name: str | None = None,
    *,
    kind: str | None = None,
    role: str = "output",
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Keep a copy of a file or directory with the current run; see `Run.log_artifact`.

    Example:
        >>> polytrack.log_artifact("plots/", name="plots")
    """
    run = _state.current
    if run is None:
        _no_run("log_artifact")
        return
    run.log_artifact(path, name, kind=kind, role=role, metadata=metadata)


def log_model(
    path: str | os.PathLike[str],
    name: str | None = None,
    *,
    framework: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Keep a copy of a model with the current run; see `Run.log_model`.

    Example:
        >>> polytrack.log_model("model.pt", "classifier", framework="pytorch")
    """
    run = _state.current
    if run is None:
        _no_run("log_model")
        return
    run.log_model(path, name, framework=framework, metadata=metadata)


def log_inputs(**values: Any) -> None:
    """Record inputs by name on the current run (params, as Polyaxon calls them).

    Example:
        >>> polytrack.log_inputs(lr=0.01, batch_size=64)
    """
    run = _state.current
    if run is None:
        _no_run("log_inputs")
        return
    run.log_inputs(**values)


def log_outputs(*, reset: bool = False, **values: Any) -> None:
    """Record results by name on the current run; see `Run.log_outputs`.

    Example:
        >>> polytrack.log_outputs(accuracy=0.93)
    """
    run = _state.current
    if run is None:
        _no_run("log_outputs")
        return
    run.log_outputs(reset=reset, **values)


def _on_current_run(method: str) -> Callable[..., None]:
    """The module-level form of a `Run` media method: the same signature and docs, on the
    current run; with no current run it warns once and does nothing, as `log_metrics`."""
    import functools
    import inspect

    target = getattr(Run, method)

    @functools.wraps(target)
    def call(*args: Any, **kwargs: Any) -> None:
        run = _state.current
        if run is None:
            _no_run(method)
            return
        getattr(run, method)(*args, **kwargs)

    parameters = list(inspect.signature(target).parameters.values())[1:]  # without self
    call.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    del call.__wrapped__  # help() shows the signature above, not Run's with `self`
    call.__qualname__ = method
    call.__module__ = __name__
    call.__doc__ = f"`Run.{method}` on the current run.\n\n{inspect.getdoc(target)}"
    return call


log_image = _on_current_run("log_image")
log_image_with_boxes = _on_current_run("log_image_with_boxes")
log_histogram = _on_current_run("log_histogram")
log_np_histogram = _on_current_run("log_np_histogram")
log_text = _on_current_run("log_text")
log_html = _on_current_run("log_html")
log_table = _on_current_run("log_table")
log_figure = _on_current_run("log_figure")
log_audio = _on_current_run("log_audio")
log_video = _on_current_run("log_video")
log_curve = _on_current_run("log_curve")
log_roc_curve = _on_current_run("log_roc_curve")
log_pr_curve = _on_current_run("log_pr_curve")
log_confusion_matrix = _on_current_run("log_confusion_matrix")


def seed_everything(seed: int, *, deterministic: bool = False) -> SeedState:
    """Seed `random`, numpy, and torch/TensorFlow where imported; record it with the run.

    Called before `init()` (the usual order), the seeds are recorded by the next run.

    Args:
        seed: 0 <= seed < 2**32.
        deterministic: also ask torch (and TensorFlow) for deterministic algorithms.

    Example:
        >>> polytrack.seed_everything(42)
    """
    from polytrack.capture.seeds import seed_everything as seed_all

    seeds = seed_all(seed, deterministic=deterministic)
    run = _state.current
    if run is None:
        _state.pending_seeds = seeds
    else:
        run.record_seeds(seeds)
    return seeds


def finish(status: str = "succeeded", *, message: str | None = None) -> None:
    """Finish the current run, if any."""
    run = _state.current
    if run is not None:
        run.finish(status, message=message)


def _no_run(what: str) -> None:
    if _state.first_time(f"no-run:{what}"):
        parent = _state.forked_from
        message = (
            f"polytrack.{what}() called before polytrack.init(); nothing is recorded"
            if parent is None
            else forked_message(f"polytrack.{what}", parent)
        )
        warnings.warn(message, TrackingWarning, stacklevel=3)
