"""Running Polyaxonfile operations as local processes, as `polytrack run --local` does.

    outcome = run_local_trial(plan, {"lr": 0.1}, runs=maker, name="study-3")
    outcome.status                                      # "succeeded", "failed", "stopped"

A `job` is its main container's `command` and `args`, rendered as for Kubernetes
(`Plan.resolve`, with the context paths made local), run in the current environment
(or in `--image` through docker or podman) as a process group of its own, in a working
directory the inits prepared (`local_inits`). Its environment names the run made for it
(`POLYTRACK_RUN_ID`, ...), so that `polytrack.init()` inside attaches to that run; its
output goes to the caller and into the run's log. `termination.timeout` ends it as
`failed`; `termination.maxRetries` starts it again, each try a new attempt of the run.
A `service` runs the same way until it ends or is stopped. Distributed kinds are
refused: they run on Kubernetes.

`run_local_plan` runs a plan's units: a matrix within its concurrency, a DAG in
dependency order, each DAG operation rendered with its upstream runs' outputs and
statuses (`dataflow`), skipped when its trigger or `conditions` say so: a skipped
operation still gets its run, made and finished `skipped` at once, its message why.

Nothing here makes or finishes runs itself (the launch wing sits below the run): the
caller passes a `RunMaker` that does, over the public API. Setting the `stop` event
stops every process (SIGTERM to its group, SIGKILL after a grace period) and records
the runs `stopped`.

A runner killed outright (SIGKILL, the OOM killer) stops nothing itself; on Linux each
process it starts asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`,
set between fork and exec). The kernel sends it when the *thread* that forked the
process ends, not the whole runner: every process is started, and waited for until it
ended, by one thread (`_Runner._process`), which therefore outlives it. Only that
process is covered: what it starts itself (and a container under `--image`, which its
engine runs) may outlive a killed runner.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from attrs import Factory, frozen

from polytrack import spec
from polytrack.errors import LaunchError
from polytrack.launch import dataflow
from polytrack.launch.manifests import GitSource, Target, launch_globals
from polytrack.launch.plan import recordable_params

if TYPE_CHECKING:
    from polytrack.launch.plan import Plan
    from polytrack.launch.submit import Unit

__all__ = [
    "LOCAL_KINDS",
    "LocalOutcome",
    "LocalRun",
    "RunMaker",
    "run_local_plan",
    "run_local_trial",
]

# Run kinds a local process can be; the distributed ones need their operators.
LOCAL_KINDS: Final = frozenset({"job", "service"})
_NO_COMMAND: Final = (
    "the container has no command; locally polytrack runs the command (an image's "
    "entrypoint is known only to the image: pass --image)"
)
# How long a stopped process group has between SIGTERM and SIGKILL.
STOP_GRACE: Final = 5.0


@frozen
class LocalRun:
    """A run a `RunMaker` made for a local process, handed over to the runner.

    `log` copies one line of the process's output into the run (no newline);
    `environ` is what the process needs to attach to the run (`POLYTRACK_RUN_ID`, ...).
    """

    id: str
    name: str
    project: str
    log: Callable[[str], None]
    environ: Mapping[str, str] = Factory(dict)


class RunMaker(Protocol):
    """Makes and finishes the runs of local processes; the command line's over the public
    API (`polytrack.cli._local.ApiRunMaker`), a fake in tests.

    `create` makes the run `run_id` (with `params` recorded, and `parent_run_id`, a matrix's or
    study's run, recorded as the link to it) and hands it over to its process, which
    attaches to it; `finish` records its end (attaching again) and closes its log.
    Both are called from the runner's threads, several at a time.
    """

    @property
    def home(self) -> Path:
        """The store the runs are in; the runner reads upstream runs from it."""
        ...

    def create(
        self,
        *,
        run_id: str,
        name: str,
        params: Mapping[str, Any],
        tags: Sequence[str],
        parent_run_id: str | None,
    ) -> LocalRun: ...

    def finish(self, run: LocalRun, status: str, *, message: str | None) -> None: ...


@frozen
class LocalOutcome:
    """How one local run ended: `status` is succeeded, failed, stopped or skipped (a DAG
    operation whose trigger or conditions did not hold: its run is recorded `skipped`;
    `run_id` is None only where that record failed, or no run was made)."""

    key: str
    run_id: str | None
    status: str
    message: str | None = None
    attempts: int = 0  # processes started (1 + retries); 0 when none started
    returncode: int | None = None  # of the last process


def run_local_trial(
    plan: Plan,
    params: Mapping[str, Any],
    *,
    runs: RunMaker,
    name: str,
    parent_run_id: str | None = None,
    environ: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    output: Callable[[str], None] | None = None,
    key: str = "0",
    image: str | None = None,
) -> LocalOutcome:
    """Run ONE trial of `plan`'s operation locally with `params`; return when it ended.

    The seam for tuners: load the operation with `params` as one matrix run (whatever
    the plan's matrix, also a tuner's), make its run through `runs`, run it as a local
    process (retries and timeout as `termination` says) and record its end. Thread-safe:
    call it from several threads to run trials at once. Read the trial's metrics back
    from the store at `runs.home` under `LocalOutcome.run_id`.

    Args:
        plan: from `make_plan`; a single operation or a matrix's (not a DAG).
        params: the trial's values, as `expand_matrix` gives them (inputs by name).
        runs: makes and finishes the run.
        name: the trial run's name.
        parent_run_id: the study's (or matrix's) run, recorded as the trial's parent.
        environ: the environment the process starts from (default `os.environ`).
        stop: set it to stop the trial (recorded `stopped`).
        output: gets each line the process prints (default: dropped; the run keeps it).
        key: the trial's key among its siblings (for messages).
        image: run in this image through docker or podman.

    Raises:
        SpecError: the file no longer loads with these params. LaunchError: the
            operation cannot run locally (a distributed kind, no command, no engine for
            `image`); no run is made then.

    Example:
        >>> run_local_trial(make_plan(["mnist.yaml"]), {"lr": 0.01}, runs=maker, name="t0")
        LocalOutcome(key='0', run_id='a1b2...', status='succeeded', ...)
    """
    if plan.kind == "dag":
        raise LaunchError("run_local_trial runs one operation, not a dag: use run_local_plan")
    runner = _Runner(
        runs=runs,
        environ=os.environ if environ is None else environ,
        stop=stop or threading.Event(),
        output=output or (lambda line: None),
        image=image,
    )
    return runner.trial(plan, key, dict(params), name=name, parent_run_id=parent_run_id)


def run_local_plan(
    plan: Plan,
    *,
    runs: RunMaker,
    environ: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    output: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
    concurrency: int | None = None,
    image: str | None = None,
    git: GitSource | None = None,
    tree: Path | None = None,
    project: str | None = None,
) -> list[LocalOutcome]:
    """Run every unit of `plan` locally and return how each ended, in the plan's order.

    A matrix's runs start within `concurrency` (default the plan's, else 1); a DAG's
    operations once their upstream operations ended, each rendered with their recorded
    outputs, inputs and statuses (`{{ ops.X.outputs.y }}`, `ref: ops.X`, joins) and
    skipped when its `trigger` or `conditions` do not hold. Output lines go to `output`
    (prefixed with the unit's key where several run), what the runner notices to `note`.

    Args:
        git: the working tree the command runs in (commit, remote, diff): a `git` init
            of that repository checks out this commit with this diff.
        tree: that working tree's directory, cloned locally instead of its remote.
        project: the runs' project, as `runs` makes them (for `{{ globals.project_name }}`;
            default `$POLYTRACK_PROJECT`).

    Raises:
        LaunchError: a unit cannot run locally (checked before anything starts).
    """
    limit = concurrency or plan.concurrency or 1
    if limit < 1:
        raise LaunchError(f"concurrency must be at least 1, got {limit}")
    runner = _Runner(
        runs=runs,
        environ=os.environ if environ is None else environ,
        stop=stop or threading.Event(),
        output=output or (lambda line: None),
        note=note or (lambda text: None),
        image=image,
        git=git,
        tree=tree,
        prefixed=len(plan.units) > 1,
        project=project,
    )
    runner.check(plan)
    return runner.run_plan(plan, limit)


def local_kind_problem(operation: spec.Operation) -> str | None:
    """Why `operation` cannot run as a local process, or None when it can."""
    component = operation.component
    if component is None:
        return f"operation {operation.name or ''} has no component (its hubRef is not fetched)"
    kind = component.run.kind
    if kind in LOCAL_KINDS:
        return None
    if kind == "dag":
        return "a dag inside a dag is not run locally"
    return (
        f"a {kind} is distributed (several processes that its operator wires together): "
        "polytrack runs it on Kubernetes only; drop --local to run it on a cluster"
    )


# -- the runner ------------------------------------------------------------------------------


class _Runner:
    """One local run of a plan (or one trial): its processes, threads and stop event."""

    def __init__(
        self,
        *,
        runs: RunMaker,
        environ: Mapping[str, str],
        stop: threading.Event,
        output: Callable[[str], None],
        note: Callable[[str], None] = lambda text: None,
        image: str | None = None,
        git: GitSource | None = None,
        tree: Path | None = None,
        prefixed: bool = False,
        project: str | None = None,
    ) -> None:
        self.runs = runs
        self.environ = environ
        self.stop = stop
        self.output = output
        self.note = note
        self.image = image
        self.engine = _engine(image, environ) if image else None
        self.git = git
        self.tree = tree
        self.prefixed = prefixed
        self.project = project or environ.get("POLYTRACK_PROJECT") or "default"

    # -- plans ---------------------------------------------------------------------------

    def check(self, plan: Plan) -> None:
        """Refuse, before anything starts, a plan with a unit that cannot run locally."""
        if plan.kind == "dag":
            dag = plan.operation.component.run if plan.operation.component else None
            assert isinstance(dag, spec.Dag)
            for unit in plan.units:
                problem = self._problem(dag.operation(unit.key))
                if problem is not None:
                    raise LaunchError(f"{unit.key}: {problem}")
            return
        problem = self._problem(plan.operation)
        if problem is not None:
            raise LaunchError(problem)

    def _problem(self, operation: spec.Operation) -> str | None:
        problem = local_kind_problem(operation)
        if problem is not None or self.engine is not None:
            return problem
        component = operation.component
        container = getattr(component.run, "container", None) if component else None
        if container is not None and not container.command:
            return _NO_COMMAND
        return None

    def run_plan(self, plan: Plan, limit: int) -> list[LocalOutcome]:
        """Start units as they become ready, at most `limit` at once, until all ended."""
        from polytrack.launch.submit import trigger_allows

        pending = list(plan.units)
        done: dict[str, LocalOutcome] = {}
        live: dict[str, threading.Thread] = {}
        ended: queue.Queue[LocalOutcome] = queue.Queue()
        try:
            while pending or live:
                skipped = False  # a skip may make ready a unit seen before it
                for unit in list(pending):
                    if len(live) >= limit or self.stop.is_set():
                        break
                    if not unit.upstream <= done.keys():
                        continue
                    pending.remove(unit)
                    statuses = [done[key].status for key in sorted(unit.upstream)]
                    if not trigger_allows(unit.trigger, statuses):
                        waited = ", ".join(f"{k} {done[k].status}" for k in sorted(unit.upstream))
                        reason = f"trigger {unit.trigger or 'all_succeeded'}: {waited}"
                        done[unit.key] = self.skipped(plan, unit, reason)
                        skipped = True
                        continue
                    upstream = {key: done[key] for key in unit.upstream}
                    thread = threading.Thread(
                        target=self._unit_thread,
                        args=(plan, unit, upstream, ended),
                        name=f"polytrack-local-{unit.key}",
                        daemon=True,
                    )
                    live[unit.key] = thread
                    thread.start()
                if not live:
                    if pending and self.stop.is_set():
                        for unit in pending:
                            done[unit.key] = LocalOutcome(
                                unit.key, None, "stopped", "not started: stopped"
                            )
                        pending.clear()
                        continue
                    if pending and not skipped:
                        keys = ", ".join(unit.key for unit in pending)
                        raise LaunchError(f"{keys} wait for operations that never run")
                    continue
                outcome = _get(ended)
                live.pop(outcome.key).join()
                done[outcome.key] = outcome
        finally:
            if live:  # an error or Ctrl-C in this thread: stop what still runs
                self.stop.set()
            for thread in live.values():
                thread.join()
        return [done[unit.key] for unit in plan.units if unit.key in done]

    def skipped(
        self,
        plan: Plan,
        unit: Unit,
        reason: str,
        *,
        operation: spec.Operation | None = None,
        run_id: str | None = None,
    ) -> LocalOutcome:
        """A DAG operation not run: its run is made and finished `skipped` at once, with
        `reason` as its message, and the params of `operation` (as rendered when its
        conditions were decided; None for a trigger's skip, which renders nothing).
        A run that cannot be recorded is noted; the operation is skipped all the same."""
        self.note(f"{unit.key}: skipped ({reason})")
        params, tags = dataflow.skipped_record(plan, unit, operation)
        try:
            run = self.runs.create(
                run_id=run_id or _new_id(),
                name=plan.run_name(unit),
                params=params,
                tags=tags,
                parent_run_id=None,
            )
            self.runs.finish(run, "skipped", message=reason)
        except Exception as exc:  # the store's failure: the DAG goes on without the run
            self.note(f"{unit.key}: the skipped run was not recorded: {exc}")
            return LocalOutcome(unit.key, None, "skipped", reason)
        return LocalOutcome(unit.key, run.id, "skipped", reason)

    def _unit_thread(
        self,
        plan: Plan,
        unit: Unit,
        upstream: Mapping[str, LocalOutcome],
        ended: queue.Queue[LocalOutcome],
    ) -> None:
        try:
            outcome = self.unit(plan, unit, upstream)
        except Exception as exc:  # reported as the unit's end; the rest goes on
            self.note(f"{unit.key}: not run: {exc}")
            outcome = LocalOutcome(unit.key, None, "failed", f"not run: {exc}")
        ended.put(outcome)

    def unit(self, plan: Plan, unit: Unit, upstream: Mapping[str, LocalOutcome]) -> LocalOutcome:
        if plan.kind != "dag":
            return self.trial(plan, unit.key, dict(unit.params), name=plan.run_name(unit))
        dag = plan.operation.component.run if plan.operation.component else None
        assert isinstance(dag, spec.Dag)
        run_id = _new_id()
        target = self._target(run_id, plan.run_name(unit))
        inflow = dataflow.dag_inflow(
            plan,
            unit,
            target,
            home=self.runs.home,
            upstream={key: (done.run_id, done.status) for key, done in upstream.items()},
            globals=self._globals(target, _ports(dag.operation(unit.key))),
        )
        if inflow.skip is not None:
            return self.skipped(plan, unit, inflow.skip, operation=inflow.operation, run_id=run_id)
        operation = inflow.operation
        return self.execute(operation, unit.key, run_id=run_id, name=target.run_name)

    def trial(
        self,
        plan: Plan,
        key: str,
        params: Mapping[str, Any],
        *,
        name: str,
        parent_run_id: str | None = None,
    ) -> LocalOutcome:
        problem = local_kind_problem(plan.operation)
        if problem is not None:
            raise LaunchError(problem)
        run_id = _new_id()
        target = self._target(run_id, name)
        ports = _ports(plan.operation)
        operation = spec.load(
            plan.paths,
            plan.params,
            matrix_run=params or None,
            globals=self._globals(target, ports),
            joined=dataflow.join_values(plan.operation, self.runs.home),
        )
        return self.execute(operation, key, run_id=run_id, name=name, parent_run_id=parent_run_id)

    # -- one operation -------------------------------------------------------------------

    def _target(self, run_id: str, name: str) -> Target:
        return Target(run_id=run_id, run_name=name, project=self.project, namespace="local")

    def _globals(self, target: Target, ports: Sequence[int]) -> dict[str, Any]:
        """Kubernetes' globals with the context paths of this machine (or the image's)."""
        values = launch_globals(target, ports=ports)
        if self.engine is None:
            context = self._context_dir(target.run_id)
            values["context_path"] = str(context)
            values["run_artifacts_path"] = str(context / "artifacts")
            values["run_outputs_path"] = str(context / "artifacts" / "outputs")
        values["base_url"] = ""
        return values

    def _context_dir(self, run_id: str) -> Path:
        return self.runs.home / "local" / run_id

    def execute(
        self,
        operation: spec.Operation,
        key: str,
        *,
        run_id: str,
        name: str,
        parent_run_id: str | None = None,
    ) -> LocalOutcome:
        """Make the run, prepare its directory, run its process (with retries), record
        how it ended."""
        from polytrack.launch.local_inits import prepare

        problem = local_kind_problem(operation)
        if problem is not None:
            raise LaunchError(problem)
        component = operation.component
        assert component is not None
        job = component.run
        assert isinstance(job, spec.Job | spec.Service)
        container = job.container
        assert container is not None  # the spec requires one
        argv = [arg for arg in (*(container.command or ()), *(container.args or ())) if arg]
        if not container.command and self.engine is None:
            raise LaunchError(f"{key}: {_NO_COMMAND}")
        if self.stop.is_set():
            return LocalOutcome(key, None, "stopped", "not started: stopped")
        run = self.runs.create(
            run_id=run_id,
            name=name,
            params=recordable_params(operation),
            tags=tuple(operation.tags or ()),
            parent_run_id=parent_run_id,
        )
        context = self._context_dir(run.id)
        try:
            workdir = prepare(
                operation,
                context,
                git=self.git,
                tree=self.tree,
                environ=self.environ,
                note=lambda text: self.note(f"{key}: {text}"),
            )
            own = self._environ(run, operation, container)
            env = {**self.environ, **own}
            if self.engine is not None:
                argv = self._in_image(container, argv, own, run, context, workdir, job)
            elif container.working_dir:
                workdir = _local_path(container.working_dir, context)
            for what, present in (
                ("connections", job.connections),
                ("sidecars", job.sidecars),
                ("volumes", job.volumes),
            ):
                if present:
                    self.note(f"{key}: {what} are Kubernetes objects: not used locally")
            if isinstance(job, spec.Service):
                shown = ", ".join(f"http://localhost:{port}" for port in job.ports or ())
                self.note(f"{key}: service {name} ({run.id}) on {shown or 'no declared port'}")
        except BaseException as exc:
            self.runs.finish(run, "failed", message=f"not started: {exc}")
            raise
        return self._attempts(operation, run, key, argv, workdir, env)

    def _environ(
        self, run: LocalRun, operation: spec.Operation, container: spec.Container
    ) -> dict[str, str]:
        """The variables the operation sets (its container's `env`, `toEnv` params, the
        run's); the process gets them over the runner's environment."""
        env: dict[str, str] = {}
        for item in container.env or ():
            if item.value_from is not None:
                self.note(f"env {item.name}: valueFrom is read on Kubernetes only (not set)")
                continue
            env[item.name] = item.value or ""
        for param in operation.params.values():
            if param.to_env and param.value is not None:
                env[param.to_env] = _text(param.value)
        env.update(
            {
                "POLYTRACK_HOME": str(self.runs.home),
                "POLYTRACK_RUN_ID": run.id,
                "POLYTRACK_RUN_NAME": run.name,
                "POLYTRACK_PROJECT": run.project,
                # The runner copies the output into the run: the process need not.
                "POLYTRACK_CAPTURE_LOGS": "0",
            }
        )
        env.update(run.environ)
        return env

    def _in_image(
        self,
        container: spec.Container,
        argv: list[str],
        own: Mapping[str, str],
        run: LocalRun,
        context: Path,
        workdir: Path,
        job: spec.Job | spec.Service,
    ) -> list[str]:
        """The engine's `run` command for the container, the context at /polytrack."""
        assert self.engine is not None and self.image is not None
        inside = "/polytrack" / workdir.relative_to(context) if workdir != context else None
        command = [self.engine, "run", "--rm", "--name", f"polytrack-{run.id}"]
        # The store at the same path inside, so that the process's run is the one here.
        home = self.runs.home
        command += ["-v", f"{context}:/polytrack", "-v", f"{home}:{home}"]
        command += ["-w", container.working_dir or str(inside or "/polytrack")]
        for name in sorted(own):
            command += ["-e", f"{name}={own[name]}"]
        if isinstance(job, spec.Service):
            for port in job.ports or ():
                command += ["-p", f"{port}:{port}"]
        if container.command:
            command += ["--entrypoint", container.command[0], self.image, *argv[1:]]
        else:
            command += [self.image, *argv]
        return command

    def _attempts(
        self,
        operation: spec.Operation,
        run: LocalRun,
        key: str,
        argv: Sequence[str],
        workdir: Path,
        env: Mapping[str, str],
    ) -> LocalOutcome:
        termination = operation.termination
        retries = (termination.max_retries or 0) if termination else 0
        timeout = termination.timeout if termination else None
        deadline = time.monotonic() + timeout if timeout else None
        prefix = f"[{key}] " if self.prefixed else ""
        tries = 0
        status, message, code = "failed", None, None
        try:
            while True:
                tries += 1
                if tries > 1:
                    text = f"polytrack: retry {tries - 1} of {retries} (exit status {code})"
                    run.log(text)
                    self.note(f"{key}: {text.removeprefix('polytrack: ')}")
                code, why = self._process(argv, workdir, env, run, deadline, prefix)
                if why == "stopped":
                    status, message = "stopped", "stopped: interrupted"
                elif why == "timeout":
                    status = "failed"
                    message = f"timeout: ran past termination.timeout ({timeout}s)"
                elif code == 0:
                    status, message = "succeeded", None
                elif tries <= retries:
                    continue
                else:
                    status = "failed"
                    message = _exit_message(code) + (f" (after {tries} tries)" if tries > 1 else "")
                break
        except OSError as exc:
            status, message = "failed", f"could not start {argv[0]!r}: {exc.strerror or exc}"
            self.note(f"{key}: {message}")
        finally:
            self.runs.finish(run, status, message=message)
        return LocalOutcome(key, run.id, status, message, tries, code)

    def _process(
        self,
        argv: Sequence[str],
        workdir: Path,
        env: Mapping[str, str],
        run: LocalRun,
        deadline: float | None,
        prefix: str,
    ) -> tuple[int | None, str | None]:
        """Run one process to its end: (its exit status, "stopped" / "timeout" / None)."""
        process = subprocess.Popen(
            list(argv),
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped whole, and not by the tty
            # Dies with the runner (Linux). This thread waits for the process to end, so
            # it never ends first: PDEATHSIG fires when the forking thread ends.
            preexec_fn=_die_with_parent(),
        )
        assert process.stdout is not None
        pump = threading.Thread(
            target=self._pump,
            args=(process.stdout, run, prefix),
            name=f"polytrack-local-output-{run.id}",
            daemon=True,
        )
        pump.start()
        why = None
        try:
            while process.poll() is None:
                if self.stop.wait(0.1):
                    why = "stopped"
                    _end_group(process)
                elif deadline is not None and time.monotonic() > deadline:
                    why = "timeout"
                    _end_group(process)
        finally:
            if process.poll() is None:  # the runner itself is going: leave nothing behind
                _end_group(process, grace=0.0)
            _kill_group(process.pid)  # what the process left running in its group
            pump.join(timeout=STOP_GRACE)
        return process.returncode, why

    def _pump(self, stream: Any, run: LocalRun, prefix: str) -> None:
        """Copy the process's output, line by line, to the run and the caller."""
        with contextlib.closing(stream):
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                run.log(line)
                self.output(prefix + line)


_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Any:
    """The C library's `prctl` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the child killed (SIGKILL) when its parent (thread) dies;
    None where the kernel has no such thing (not Linux, no `prctl` in its C library).

    Everything is looked up here, in the parent: between fork and exec the child only
    calls what was made before the fork, and imports nothing (a `preexec_fn` that
    imports can deadlock on a lock another thread held at the fork). A parent that died
    between the fork and the `prctl` is seen by the parent pid having changed."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent, kill, getppid, die = os.getpid(), int(signal.SIGKILL), os.getppid, os._exit

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if getppid() != parent:  # the runner is already gone: do not start
            die(1)

    return preexec


def _end_group(process: subprocess.Popen[bytes], *, grace: float = STOP_GRACE) -> None:
    """SIGTERM to the process's group, SIGKILL once `grace` is spent."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _get(ended: queue.Queue[LocalOutcome]) -> LocalOutcome:
    """The next unit's end; a timed wait, so that Ctrl-C is handled between two."""
    while True:
        try:
            return ended.get(timeout=0.5)
        except queue.Empty:
            continue


def _exit_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _engine(image: str | None, environ: Mapping[str, str]) -> str:
    """docker or podman, whichever is installed and whose engine answers.

    Raises:
        LaunchError: none is installed, or none answers.
    """
    path = environ.get("PATH", os.defpath)
    found = [name for name in ("docker", "podman") if shutil.which(name, path=path)]
    if not found:
        raise LaunchError(
            f"--image {image}: neither docker nor podman is installed here; install one, "
            "or drop --image to run in the current environment"
        )
    problems = []
    for name in found:
        executable = shutil.which(name, path=path)
        assert executable is not None
        try:
            done = subprocess.run(
                [executable, "info"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=20,
                check=False,
                env=dict(environ),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if done.returncode == 0:
            return executable
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no answer"]
        problems.append(f"{name}: {last[0]}")
    raise LaunchError(
        f"--image {image}: the container engine does not answer ({'; '.join(problems)}); "
        "start it, or drop --image to run in the current environment"
    )


def _local_path(path: str, context: Path) -> Path:
    """A container path under /polytrack, as the same place under the local context."""
    if path == "/polytrack" or path.startswith("/polytrack/"):
        return context / path.removeprefix("/polytrack").lstrip("/")
    return Path(path)


def _ports(operation: spec.Operation) -> tuple[int, ...]:
    run = operation.component.run if operation.component else None
    return tuple(run.ports or ()) if isinstance(run, spec.Service) else ()


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _new_id() -> str:
    """Eight random base-36 characters, as `polytrack.init()` makes them."""
    number = int.from_bytes(os.urandom(8), "big")
    chars = []
    for _ in range(8):
        number, digit = divmod(number, 36)
        chars.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(chars)
