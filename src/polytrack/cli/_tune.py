"""`polytrack run` of a tuner matrix (hyperband, bayes, hyperopt): this process is the
study's controller (`polytrack.launch.tuner`).

It records the study as a run of its own (tag `study`, params = the matrix, outputs = the
best trial's params and value, and every trial's run id), starts each trial where the
command says (a local process through the local runner, or a Kubernetes workload through
the same submission and watch as a plain matrix), tags each trial's run `study:<id>`
(`polytrack runs ls --where '"study:<id>" in tags'` lists them), and reads each
trial's metric from its run in the store: the run's own journal locally, the run its
pod attached to on a cluster.

The glue lives here, over the command line's run API (the study's and the trials' runs
are made with `polytrack.init`), which the launch wing may not import.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from polytrack.cli._context import Context

if TYPE_CHECKING:
    from polytrack.launch.local import LocalOutcome, LocalRun, RunMaker
    from polytrack.launch.plan import Plan
    from polytrack.launch.tuner import (
        StudyPlan,
        StudyResult,
        TrialHandle,
        TrialLauncher,
        TrialRequest,
        TrialResult,
    )
    from polytrack.run import DisabledRun, Run
    from polytrack.settings import Settings
    from polytrack.store.reader import RunFiles

SessionMaker = Callable[[Any, Any, Any], Any]
"""`(plan, client, auth) -> polytrack run's session` (`cli.run._Session`)."""

__all__ = ["LocalTrials", "StoreReader", "drive", "record_study", "study_tag", "tune"]


def study_tag(study_id: str) -> str:
    """The tag every trial of study `study_id` carries: `runs ls --where` finds them."""
    return f"study:{study_id}"


class StoreReader:
    """A `MetricReader` over the run directories of the store at `home`.

    It reads a run's files as the public readers do (`read_run_files`), without their
    damage warnings: a live run read mid-write can show points whose key is not named
    yet, which the next look reads whole, and a trial stopped by the pruner can leave a
    torn record; neither is for the controller to report (`polytrack runs show` does).
    """

    def __init__(self, home: Path) -> None:
        self.home = home

    def _files(self, run_id: str, metric: str) -> RunFiles | None:
        from polytrack.errors import StoreError
        from polytrack.store.local import read_settled
        from polytrack.store.reader import read_run_files

        directory = self.home / "runs" / run_id
        if not directory.is_dir():
            return None  # not made yet (a pod that has not started)
        try:
            return read_settled(
                directory, lambda path: read_run_files(path, keys=frozenset([metric]))
            )
        except StoreError:
            return None

    def points(self, run_id: str, metric: str) -> Sequence[tuple[int, float]]:
        files = self._files(run_id, metric)
        series = files.series.get(metric) if files is not None else None
        if series is None:
            return []
        return sorted(zip(series.steps.tolist(), series.values.tolist(), strict=True))

    def value(self, run_id: str, metric: str) -> float | None:
        from polytrack.models import OutputsSet

        files = self._files(run_id, metric)
        if files is None:
            return None
        outputs: dict[str, Any] = {}
        for _, event in files.events:
            if isinstance(event, OutputsSet):
                if event.reset:
                    outputs.clear()
                outputs.update(event.outputs)
        output = outputs.get(metric)
        if isinstance(output, int | float) and not isinstance(output, bool):
            return float(output)
        series = files.series.get(metric)
        if series is None or not len(series.values):
            return None
        return float(series.values[-1])


def _matrix_config(plan: StudyPlan) -> dict[str, Any]:
    """The matrix as params of the study's run (nested: flattened with dots; a list is
    kept as its JSON text)."""
    raw = attrs.asdict(plan.matrix, recurse=True)
    config = {key: value for key, value in raw.items() if value is not None}
    config["trials"] = plan.trials
    if plan.seed is not None:
        config["seed"] = plan.seed
    config["concurrency"] = plan.concurrency
    return {key: _plain(value) for key, value in config.items()}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items() if item is not None}
    return json.dumps(value, default=str)


def record_study(run: Run | DisabledRun, plan: StudyPlan, result: StudyResult) -> str:
    """Write the study's results into its run and finish it; returns the status it got."""
    trials = [
        {
            "run": trial.run_id,
            "state": trial.state,
            "status": trial.status,
            "value": trial.value,
            "params": dict(trial.params),
        }
        for trial in result.trials
    ]
    outputs: dict[str, Any] = {
        "trials": len(trials),
        "complete": sum(1 for trial in result.trials if trial.state == "complete"),
        "pruned": sum(1 for trial in result.trials if trial.state == "pruned"),
        "failed": sum(1 for trial in result.trials if trial.state == "failed"),
        "runs": trials,
    }
    if result.best is not None:
        outputs["best_value"] = result.best.value
        outputs["best_params"] = dict(result.best.params)
        outputs["best_run"] = result.best.run_id
    if result.stopped_by is not None:
        outputs["early_stopped"] = result.stopped_by
    run.log_outputs(**outputs)
    status = "succeeded" if result.best is not None else "failed"
    message = None if result.best is not None else f"no trial gave {plan.metric}"
    run.finish(status, message=message)
    return status


def tune(args: argparse.Namespace, context: Context, plan: Plan, *, session: SessionMaker) -> int:
    """`polytrack run` of a `study` plan: its trials local (`--local`) or on the cluster,
    where `session(plan, client, auth)` makes the `polytrack run` session that submits
    and records workloads (passed in: `cli.run` imports this module)."""
    study = plan.study
    assert study is not None
    if args.concurrency is not None:
        study = attrs.evolve(study, concurrency=args.concurrency)
    for note in study.notes:
        context.note(note)
    if args.dry_run:
        context.note(
            f"dry run: a {study.kind} study of up to {study.trials} trials, "
            f"{study.concurrency} at a time; each trial's params come from the results of "
            "earlier ones, so none is compiled ahead"
        )
        return 0
    from polytrack.errors import LaunchError
    from polytrack.launch.tuner import require_optuna

    require_optuna()
    local = getattr(args, "local", False)
    if getattr(args, "image", None) and not local:
        raise LaunchError("--image runs a local process in an image: use it with --local")
    if local:
        from polytrack.launch.local import local_kind_problem

        problem = local_kind_problem(plan.operation)
        if problem is not None:  # before the study's run is made
            raise LaunchError(problem)
        return drive(
            context,
            plan,
            study,
            project=args.project,
            trials=lambda tagged, study_id: LocalTrials(
                tagged,
                _api_run_maker(context, args.project),
                study_id=study_id,
                environ=context.environ,
                output=context.out,
                image=getattr(args, "image", None),
            ),
        )
    return drive(
        context,
        plan,
        study,
        project=args.project,
        trials=lambda tagged, study_id: _KubeTrials(args, context, tagged, session),
    )


def drive(
    context: Context,
    plan: Plan,
    study: StudyPlan,
    *,
    trials: Callable[[Plan, str], ContextManager[TrialLauncher]],
    project: str | None = None,
    poll_interval: float = 0.2,
) -> int:
    """Record the study's run, run its trials through `trials(plan, study_id)` (a
    launcher that is closed at the end), record the results; 0 if a trial gave the metric.
    """
    import polytrack
    from polytrack.cli._launch import run_settings
    from polytrack.launch.tuner import run_study

    settings = run_settings(context)
    base = plan.name
    run = polytrack.init(
        project=project,
        name=f"{base}-study",
        tags=["study", *(plan.operation.tags or ())],
        params={"matrix": _matrix_config(study)},
        capture={"logs": False, "system": False},
        settings=settings,
        reinit="create_new",
    )
    study_id = run.id
    # Let go of it while the trials' runs are made in this process (each init() would
    # finish the current run); it is attached again to record the results.
    run.hand_over(f"study:{os.getpid()}")
    tagged = attrs.evolve(
        plan,
        operation=attrs.evolve(
            plan.operation, tags=(*(plan.operation.tags or ()), study_tag(study_id))
        ),
    )
    context.note(f"study {study_id}: {study.kind}, up to {study.trials} trials")
    try:
        with trials(tagged, study_id) as launch:
            result = run_study(
                study,
                launch=launch,
                read=StoreReader(settings.home),
                on_trial=lambda trial: _say(context, base, trial),
                poll_interval=poll_interval,
            )
    except KeyboardInterrupt:
        _reattach(settings, study_id).finish("stopped", message="interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        _reattach(settings, study_id).finish("failed", message=f"the study failed: {exc}")
        raise
    status = record_study(_reattach(settings, study_id), study, result)
    if result.stopped_by:
        context.note(f"study {study_id}: early stopping: {result.stopped_by}")
    if result.best is None:
        context.note(f"study {study_id}: no trial gave {study.metric}")
    else:
        shown = ", ".join(f"{k}={v!r}" for k, v in result.best.params.items())
        context.out(
            f"study {study_id}: best {study.metric} {result.best.value:g} "
            f"(run {result.best.run_id}: {shown})"
        )
    return 0 if status == "succeeded" else 1


def _reattach(settings: Settings, study_id: str) -> Run | DisabledRun:
    import polytrack

    return polytrack.init(
        settings=settings.evolve(run_id=study_id), capture=False, reinit="create_new"
    )


def _say(context: Context, base: str, trial: TrialResult) -> None:
    value = "" if trial.value is None or not math.isfinite(trial.value) else f" {trial.value:g}"
    context.note(f"{base}-{trial.number}: {trial.state} ({trial.status}){value} run {trial.run_id}")


def _api_run_maker(context: Context, project: str | None) -> RunMaker:
    """The local runner's `RunMaker` over the public API."""
    from polytrack.cli._local import ApiRunMaker

    return ApiRunMaker.for_context(context, project=project)


# -- local trials ----------------------------------------------------------------------


class LocalTrials:
    """A `TrialLauncher` of local processes: each trial is `run_local_trial` on a thread
    of its own; its run, made through `runs`, is tagged with the study and linked to it.
    Closing it stops the trials still running and waits for them."""

    def __init__(
        self,
        plan: Plan,
        runs: RunMaker,
        *,
        study_id: str,
        environ: Mapping[str, str] | None = None,
        output: Callable[[str], None] | None = None,
        image: str | None = None,
    ) -> None:
        self.plan = plan
        self.runs = runs
        self.study_id = study_id
        self.environ = environ
        self.output = output
        self.image = image
        self._trials: list[_LocalTrial] = []

    def __enter__(self) -> TrialLauncher:
        return self.start

    def __exit__(self, *exc: object) -> None:
        for trial in self._trials:
            trial.stop("the study ended")
        for trial in self._trials:
            trial.join()

    def start(self, request: TrialRequest) -> TrialHandle:
        trial = _LocalTrial(self, request)
        self._trials.append(trial)
        return trial


class _TrialRuns:
    """The launcher's `RunMaker` for one trial: tags the run with its study, and tells
    the trial its run id as soon as the run exists (the pruner reads it meanwhile)."""

    def __init__(self, inner: RunMaker, tag: str, made: Callable[[str], None]) -> None:
        self._inner = inner
        self._tag = tag
        self._made = made

    @property
    def home(self) -> Path:
        return self._inner.home

    def create(
        self,
        *,
        run_id: str,
        name: str,
        params: Mapping[str, Any],
        tags: Sequence[str],
        parent_run_id: str | None,
    ) -> LocalRun:
        tags = [*tags, self._tag] if self._tag not in tags else list(tags)
        run = self._inner.create(
            run_id=run_id, name=name, params=params, tags=tags, parent_run_id=parent_run_id
        )
        self._made(run.id)
        return run

    def finish(self, run: LocalRun, status: str, *, message: str | None) -> None:
        self._inner.finish(run, status, message=message)


class _LocalTrial:
    """One local trial: `run_local_trial` on its thread; `stop` sets its stop event."""

    def __init__(self, launcher: LocalTrials, request: TrialRequest) -> None:
        self._made = threading.Event()
        self._stop = threading.Event()
        self._run_id: str | None = None
        self._outcome: LocalOutcome | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main,
            args=(launcher, request),
            name=f"polytrack-trial-{request.number}",
            daemon=True,
        )
        self._thread.start()

    def _main(self, launcher: LocalTrials, request: TrialRequest) -> None:
        from polytrack.launch.local import run_local_trial

        def made(run_id: str) -> None:
            self._run_id = run_id
            self._made.set()

        try:
            self._outcome = run_local_trial(
                launcher.plan,
                request.params,
                runs=_TrialRuns(launcher.runs, study_tag(launcher.study_id), made),
                name=f"{launcher.plan.name}-{request.number}",
                parent_run_id=launcher.study_id,
                environ=launcher.environ,
                stop=self._stop,
                output=launcher.output,
                key=str(request.number),
                image=launcher.image,
            )
        except BaseException as exc:  # raised again in the controller's thread
            self._error = exc
        finally:
            self._made.set()

    @property
    def run_id(self) -> str:
        while not self._made.wait(0.5):  # a timed wait: Ctrl-C is handled between two
            pass
        if self._error is not None:
            raise self._error
        if self._run_id is None:  # stopped before it started
            assert self._outcome is not None
            return self._outcome.run_id or ""
        return self._run_id

    def poll(self) -> str | None:
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome.status

    def stop(self, message: str) -> None:
        del message  # the local runner records its own ("stopped: interrupted")
        self._stop.set()

    def join(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.5)


# -- trials on Kubernetes --------------------------------------------------------------


class _KubeTrials:
    """Trials as Kubernetes workloads, submitted and watched as a matrix's runs are (the
    `polytrack run` session's `submit` and `on_state`), each handed over to its pod;
    `stop` cancels the workload and records the run `stopped`."""

    def __init__(
        self, args: argparse.Namespace, context: Context, plan: Plan, session: SessionMaker
    ) -> None:
        self.args = args
        self.context = context
        self.plan = plan
        self._make_session = session
        self._client: Any = None
        self._session: Any = None
        self._handles: list[_KubeTrial] = []

    def __enter__(self) -> TrialLauncher:
        from polytrack.launch.client import KubeClient
        from polytrack.launch.kubeconfig import load_cluster

        auth = load_cluster(
            kubeconfig=self.args.kubeconfig,
            context=self.args.context,
            namespace=self.args.namespace or self.plan.operation.namespace,
            environ=self.context.environ,
        )
        self._client = KubeClient.connect(auth, environ=self.context.environ)
        self._session = self._make_session(self.plan, self._client, auth)
        return self.start

    def start(self, request: TrialRequest) -> TrialHandle:
        from polytrack.launch.submit import Unit

        unit = Unit(key=str(request.number), params=dict(request.params))
        submitted = self._session.submit(unit)
        handle = _KubeTrial(self._session, submitted)
        self._handles.append(handle)
        return handle

    def __exit__(self, *exc: object) -> None:
        try:
            for handle in self._handles:
                handle.close()
        finally:
            if self._client is not None:
                self._client.close()


class _KubeTrial:
    """One trial's workload: its watch reports its states; `stop` cancels it."""

    def __init__(self, session: Any, submitted: Any) -> None:
        from polytrack.launch.watch import WorkloadWatch

        self._session = session
        self._submitted = submitted
        self._lock = threading.Lock()
        self._final: str | None = None
        self._states: list[Any] = []
        workload = submitted.workload
        self._watch = WorkloadWatch(
            session.client,
            workload.resource,
            workload.namespace,
            workload.name,
            on_state=self._on_event,
            on_error=self._on_event,
        )
        self._watch.start()

    @property
    def run_id(self) -> str:
        return str(self._submitted.run_id)

    def _on_event(self, event: Any) -> None:
        with self._lock:
            self._states.append(event)

    def poll(self) -> str | None:
        from polytrack.errors import KubernetesError

        with self._lock:
            events, self._states = self._states, []
        for event in events:
            if self._final is not None:
                break
            if isinstance(event, KubernetesError):
                raise event
            self._session.on_state(self._submitted, event)
            if event.final:
                self._final = event.status
                self._watch.stop()
        return self._final

    def stop(self, message: str) -> None:
        from polytrack.cli._launch import record_end
        from polytrack.errors import KubernetesError
        from polytrack.launch.submit import cancel
        from polytrack.launch.watch import JobState

        if self._final is not None:
            return
        self._watch.stop()
        session = self._session
        key = self._submitted.unit.key
        record = session.records[key]
        try:
            cancel(session.client, record.namespace, record.objects)
        except KubernetesError as exc:
            session.context.note(f"{record.name}: could not cancel: {exc}")
        state = JobState("stopped", message)
        session.records[key] = record_end(
            session.context, None, session.registry, record, state, lines=[]
        )
        self._final = "stopped"

    def close(self) -> None:
        if self._final is None:
            self.stop("the study ended")
