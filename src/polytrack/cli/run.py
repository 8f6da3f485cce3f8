"""`polytrack run`: launch a Polyaxonfile on Kubernetes, as runs of the store.

For each workload it submits (one; one per matrix run; one per DAG operation), it makes
a run in the store (`polytrack.init`, which records the launching working tree: git
commit and diff), compiles the operation for that run (`polytrack.launch.manifests`),
creates the objects and records the operation under `<home>/ops/`. Then either

- `--watch`: it follows every workload, prints the pods' logs, and records each end into
  its run (succeeded, failed, stopped); Ctrl-C cancels the workloads and records them
  `stopped`. A single workload's run stays owned by this process meanwhile, its logs
  written into the run as they come; or
- without `--watch`: each run is handed over (`Run.hand_over`) to its workload, and
  `polytrack ops ls` later records how it ended. A matrix or DAG still keeps this
  process until the last workload is submitted (within the concurrency limit, in
  dependency order).

`--dry-run` prints the manifests and submits nothing, makes no run: the run id in them
is a fresh random one. `--local` runs the file on this machine instead
(`polytrack.cli._local`, `polytrack.launch.local`).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command
from polytrack.cli.check import _ParamAction

if TYPE_CHECKING:
    from polytrack.cli._launch import LogPrinter
    from polytrack.cli._parser import Subcommands
    from polytrack.launch.client import KubeClient
    from polytrack.launch.dataflow import Inflow
    from polytrack.launch.kubeconfig import ClusterAuth
    from polytrack.launch.manifests import GitSource, Target
    from polytrack.launch.ops import OpRecord
    from polytrack.launch.plan import Plan
    from polytrack.launch.submit import Submitted, Unit
    from polytrack.launch.watch import JobState, PodLogs
    from polytrack.run import DisabledRun, Run
    from polytrack.spec import Operation

__all__ = ["launch", "register"]

# Variables forwarded into the containers, so that their runs sync where this one does.
_FORWARDED = ("POLYTRACK_BACKEND",)


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `run` to the `polytrack` parser."""
    parser = add_command(
        commands,
        parent,
        "run",
        help="launch a Polyaxonfile on Kubernetes as tracked runs",
        description=(
            "Compile a Polyaxonfile into Kubernetes objects and create them, each workload\n"
            "with its own run in the store: a job, a service, a Kubeflow job; a matrix as\n"
            "many jobs within its concurrency; a DAG in dependency order."
        ),
    )
    parser.add_argument(
        "-f", "--file", dest="files", action="append", required=True, metavar="FILE",
        help="the Polyaxonfile; repeat to patch it with presets, in order",
    )  # fmt: skip
    parser.add_argument(
        "-P", "--param", dest="params", action=_ParamAction, default={}, metavar="NAME=VALUE",
        help="a value for an input, converted to its type; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true",
        help="print the manifests; submit nothing, make no run",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", choices=("yaml", "json"), default="yaml",
        help="how --dry-run prints the manifests (default: yaml, one document each)",
    )  # fmt: skip
    parser.add_argument(
        "--watch", action="store_true",
        help="follow the workloads, print their logs, record how they end",
    )  # fmt: skip
    parser.add_argument(
        "--name", help="the run name, and the workload's exact name (default: <name>-<run id>)"
    )
    parser.add_argument("--project", help="the runs' project (default: $POLYTRACK_PROJECT)")
    parser.add_argument(
        "-n", "--namespace", help="the namespace (default: the spec's, else the context's)"
    )
    parser.add_argument("--context", help="the kubeconfig context (default: current-context)")
    parser.add_argument("--kubeconfig", metavar="FILE", help="instead of $KUBECONFIG")
    parser.add_argument(
        "--concurrency", type=int, metavar="N",
        help="at most N workloads at once (default: the matrix's or DAG's concurrency)",
    )  # fmt: skip
    parser.add_argument(
        "--secret", dest="secrets", action="append", default=[], metavar="NAME",
        help="a Secret whose keys become the main container's environment; repeatable",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, help="seed of a random matrix")
    parser.add_argument(
        "--local", action="store_true",
        help="run on this machine as local processes instead of on Kubernetes",
    )  # fmt: skip
    parser.add_argument(
        "--image", metavar="IMAGE",
        help="with --local: run in this image through docker or podman",
    )  # fmt: skip
    parser.set_defaults(handler=launch)


def launch(args: argparse.Namespace, context: Context) -> int:
    """Submit `args.files` (or print them compiled, with `--dry-run`); see the module."""
    from polytrack.errors import LaunchError
    from polytrack.launch.plan import make_plan

    if args.concurrency is not None and args.concurrency < 1:
        raise LaunchError(f"--concurrency must be at least 1, got {args.concurrency}")
    plan = make_plan(args.files, args.params, name=args.name, seed=args.seed)
    for note in plan.notes:
        context.note(note)
    if plan.kind == "study":  # a tuner matrix: this process drives its study
        from polytrack.cli._tune import tune

        return tune(
            args,
            context,
            plan,
            session=lambda plan, client, auth: _Session(
                args, context, plan, client, auth, _working_tree(context), _forwarded(context)
            ),
        )
    git = _working_tree(context)
    if args.image and not args.local:
        raise LaunchError("--image runs a local process in an image: use it with --local")
    if args.local:
        if args.dry_run:
            raise LaunchError("--dry-run prints Kubernetes manifests: leave out --local")
        from polytrack.cli._local import launch_local

        return launch_local(args, context, plan, git)
    forward = _forwarded(context)
    if args.dry_run:
        return _dry_run(args, context, plan, git, forward)
    from polytrack.launch.client import KubeClient
    from polytrack.launch.kubeconfig import load_cluster

    auth = load_cluster(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace or plan.operation.namespace,
        environ=context.environ,
    )
    with KubeClient.connect(auth, environ=context.environ) as client:
        return _Session(args, context, plan, client, auth, git, forward).run()


def _working_tree(context: Context) -> GitSource | None:
    """The working tree this command runs in: its commit and uncommitted diff."""
    from polytrack.capture.git import capture_git
    from polytrack.launch.manifests import MAX_DIFF_BYTES, GitSource

    captured = capture_git(
        Path.cwd(),
        timeout=30.0,
        max_diff_bytes=2 * MAX_DIFF_BYTES,  # more than fits: the compiler says so
        max_untracked=1000,
        environ=context.environ,
    )
    state = captured.state
    if not state.available or state.commit is None:
        return None
    return GitSource(
        commit=state.commit,
        remote=state.remote,
        diff=captured.diff,
        untracked=len(state.untracked),
    )


def _forwarded(context: Context) -> dict[str, str]:
    """`POLYTRACK_BACKEND` and co, for the containers; a URL loses its credentials (they
    go through a Secret: `--secret`)."""
    out = {}
    for name in _FORWARDED:
        value = context.environ.get(name)
        if not value:
            continue
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            # The host and port as written: `hostname` would lose an IPv6 address's brackets.
            netloc = parts.netloc.rpartition("@")[2]
            value = urlunsplit(parts._replace(netloc=netloc))
            context.note(
                f"{name}: its credentials are not put in the manifests; give them to the "
                "containers with --secret"
            )
        out[name] = value
    return out


def _target(
    args: argparse.Namespace,
    plan: Plan,
    unit: Unit,
    *,
    run_id: str,
    run_name: str,
    project: str,
    namespace: str,
    group: str | None,
    git: GitSource | None,
    forward: Mapping[str, str],
) -> Target:
    from polytrack.launch.manifests import LABEL_GROUP, Target
    from polytrack.launch.names import MAX_WORKLOAD, dns_label, workload_name

    name = None
    if args.name:
        if plan.kind == "single":
            name = dns_label(args.name, max_length=MAX_WORKLOAD)
        else:
            name = workload_name(args.name, unit.key)
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if group is not None:
        labels[LABEL_GROUP] = group
        annotations["polytrack.dev/group-kind"] = plan.kind
        annotations[f"polytrack.dev/{'operation' if plan.kind == 'dag' else 'index'}"] = unit.key
    return Target(
        run_id=run_id,
        run_name=run_name,
        project=project,
        namespace=namespace,
        name=name,
        labels=labels,
        annotations=annotations,
        env=dict(forward),
        secrets=tuple(args.secrets),
        git=git,
    )


def _dry_run(
    args: argparse.Namespace,
    context: Context,
    plan: Plan,
    git: GitSource | None,
    forward: Mapping[str, str],
) -> int:
    from polytrack.launch import schemas
    from polytrack.launch.manifests import compile_operation
    from polytrack.settings import Settings

    project = args.project or Settings.from_env(context.environ).project
    namespace = args.namespace or plan.operation.namespace or "default"
    group = os.urandom(4).hex() if plan.kind != "single" else None
    manifests: list[dict[str, Any]] = []
    for unit in plan.units:
        run_id = os.urandom(4).hex()
        target = _target(
            args, plan, unit, run_id=run_id, run_name=plan.run_name(unit), project=project,
            namespace=namespace, group=group, git=git, forward=forward,
        )  # fmt: skip
        workload = compile_operation(plan.resolve(unit, target), target)
        if schemas.available():  # what a real submission checks (create_workload)
            schemas.check_manifests(workload.manifests)
        for note in workload.notes:
            context.note(f"{workload.name}: {note}")
        manifests.extend(workload.manifests)
    if args.output == "json":
        from polytrack.cli._format import to_json

        context.out(to_json({"apiVersion": "v1", "kind": "List", "items": manifests}))
    else:
        context.out(dump_yaml(manifests).rstrip("\n"))
    context.note(f"dry run: {len(manifests)} objects for {len(plan.units)} workloads")
    return 0


def dump_yaml(documents: list[dict[str, Any]]) -> str:
    """Manifests as multi-document YAML, scripts and file contents as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """Literal blocks for multi-line text; no aliases (every dict printed in full)."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value and not value.endswith((" ", "\t")) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Session:
    """One `polytrack run` against a cluster: its runs, records, log followers."""

    def __init__(
        self,
        args: argparse.Namespace,
        context: Context,
        plan: Plan,
        client: KubeClient,
        auth: ClusterAuth,
        git: GitSource | None,
        forward: Mapping[str, str],
    ) -> None:
        from polytrack.cli._launch import run_settings
        from polytrack.launch.ops import OpsRegistry

        self.args = args
        self.context = context
        self.plan = plan
        self.client = client
        self.auth = auth
        self.git = git
        self.forward = forward
        self.settings = run_settings(context)
        self.registry = OpsRegistry.at(context.home)
        self.group = os.urandom(4).hex() if plan.kind != "single" else None
        # One workload followed to its end: this process keeps its run meanwhile.
        self.owns = bool(args.watch and plan.kind == "single")
        self.owned: dict[str, Run | DisabledRun] = {}
        self.records: dict[str, OpRecord] = {}
        self.logs: dict[str, tuple[PodLogs, LogPrinter]] = {}
        self.statuses: dict[str, str] = {}

    def run(self) -> int:
        from polytrack.launch.submit import Scheduler

        scheduler = Scheduler(
            self.client,
            self.plan.units,
            submit=self.submit,
            on_state=self.on_state,
            on_skip=self.on_skip,
            concurrency=self.args.concurrency or self.plan.concurrency,
        )
        try:
            left = scheduler.run(wait=self.args.watch)
        except KeyboardInterrupt:
            self.interrupted(scheduler.live)
            raise
        finally:
            for key in list(self.logs):
                self.stop_logs(key, drain=False)
            for key, run in self.owned.items():  # an error ended the session: hand them over
                record = self.records[key]
                run.hand_over(f"kubernetes:{record.namespace}/{record.name}")
        if not self.args.watch:
            if left:
                self.context.note(
                    f"{len(left)} workloads run on; `polytrack ops ls` records how they end"
                )
            return 0
        # A skipped operation (its trigger or conditions) has no workload: not a failure.
        failed = sorted(
            k for k, status in self.statuses.items() if status not in ("succeeded", "skipped")
        )
        if failed:
            summary = ", ".join(f"{self.records[k].name} {self.statuses[k]}" for k in failed)
            self.context.note(f"{len(failed)} of {len(self.statuses)} did not succeed: {summary}")
            return 1
        return 0

    def submit(self, unit: Unit) -> Submitted | None:
        import polytrack
        from polytrack.cli._launch import LogPrinter
        from polytrack.errors import LaunchError, SpecError
        from polytrack.launch.manifests import compile_operation
        from polytrack.launch.ops import OpRecord
        from polytrack.launch.plan import recordable_params
        from polytrack.launch.submit import Submitted, create_workload
        from polytrack.launch.watch import PodLogs

        plan = self.plan
        inflow = self.inflow(unit) if plan.kind == "dag" else None
        if inflow is not None and inflow.skip is not None:
            self.on_skip(unit, inflow.skip, inflow.operation)
            return None
        run = polytrack.init(
            project=self.args.project,
            name=plan.run_name(unit),
            tags=plan.operation.tags,
            capture={"logs": False, "system": False},
            settings=self.settings,
        )
        try:
            target = _target(
                self.args, plan, unit, run_id=run.id, run_name=run.name, project=run.project,
                namespace=self.auth.namespace, group=self.group, git=self.git,
                forward=self.forward,
            )  # fmt: skip
            if inflow is not None:
                operation = plan.resolve(unit, target, ops=inflow.ops, joined=inflow.joined)
            else:
                operation = plan.resolve(unit, target)
            run.log_params(recordable_params(operation))
            if plan.kind == "dag" and operation.tags:
                run.log_tags(operation.tags)
            workload = compile_operation(operation, target)
            for note in workload.notes:
                self.context.note(f"{workload.name}: {note}")
            objects = create_workload(self.client, workload)
        except (LaunchError, SpecError) as exc:
            run.finish("failed", message=f"not submitted: {exc}")
            raise
        except BaseException:
            run.finish("failed", message="not submitted")
            raise
        record = OpRecord(
            id=run.id,
            run_name=run.name,
            project=run.project,
            kind=workload.kind,
            namespace=workload.namespace,
            name=workload.name,
            objects=objects,
            main_container=workload.main_container,
            pod_selector=workload.pod_selector,
            server=self.auth.server,
            context=self.auth.context,
            kubeconfig=self.auth.source if self.auth.source != "in-cluster" else None,
            submitted_at=time.time(),
            group=self.group,
            group_kind=plan.kind if self.group else None,
            key=unit.key if self.group else None,
        )
        self.registry.save(record)
        self.records[unit.key] = record
        where = f"{workload.namespace}/{workload.name}"
        if self.owns:
            from polytrack.capture.logs import LogWriter

            self.owned[unit.key] = run
            assert run.dir is not None
            log = LogWriter.open(
                run.dir / f"output-{run.attempt:03d}.log", max_bytes=self.settings.logs_max_bytes
            )
            printer = LogPrinter(self.context, pods=workload.kind != "job", log=log)
        else:
            run.hand_over(f"kubernetes:{where}")
            printer = LogPrinter(
                self.context,
                prefix=workload.name if plan.kind != "single" else None,
                pods=workload.kind != "job",
            )
        if self.args.watch:
            follower = PodLogs(
                self.client,
                workload.namespace,
                workload.pod_selector,
                name=workload.name,
                container=workload.main_container,
                sink=printer,
            ).start()
            self.logs[unit.key] = (follower, printer)
            self.context.note(f"submitted {workload.kind} {where} as run {run.id}")
        else:
            printer.close()
            self.context.out(f"{run.id}  {workload.kind}  {where}")
        return Submitted(unit=unit, run_id=run.id, workload=workload)

    def inflow(self, unit: Unit) -> Inflow:
        """What DAG operation `unit` reads from the runs it waited for (their outputs, as
        synced or attached to this store), and whether its conditions let it run."""
        from polytrack.launch.dataflow import dag_inflow
        from polytrack.launch.manifests import Target

        upstream = {
            key: (self.records[key].id if key in self.records else None, self.statuses[key])
            for key in unit.upstream
        }
        # Conditions are decided before a run is made for it: any run id will do here.
        probe = Target(run_id="0", run_name=self.plan.run_name(unit), project="default")
        home = self.settings.home
        inflow = dag_inflow(self.plan, unit, probe, home=home, upstream=upstream, strict=False)
        for note in inflow.notes:  # the pod's run is not synced here: left to the pod
            self.context.note(f"{unit.key}: {note}")
        return inflow

    def on_state(self, submitted: Submitted, state: JobState) -> None:
        from polytrack.cli._launch import record_end

        key = submitted.unit.key
        record = self.records[key].evolve(status=state.status, message=state.message)
        self.records[key] = record
        if self.args.watch or state.final:
            why = f" ({state.message})" if state.message else ""
            self.context.note(f"{record.name}: {state.status}{why}")
        if not state.final:
            self.registry.save(record)
            return
        self.statuses[key] = state.status
        self.stop_logs(key, drain=True)
        run = self.owned.pop(key, None)
        if run is not None:
            run.finish(state.status, message=state.message)
            record = record.evolve(finished_at=time.time(), recorded=True)
            self.registry.save(record)
        else:
            record = record_end(self.context, self.client, self.registry, record, state)
        self.records[key] = record

    def on_skip(self, unit: Unit, reason: str, operation: Operation | None = None) -> None:
        """A DAG operation not run (its trigger, or its conditions decided on `operation`):
        its run is made and finished `skipped` at once, `reason` its message, with the
        tags and params the others get (as far as rendered). A run that cannot be
        recorded is noted; the operation is skipped all the same."""
        import polytrack
        from polytrack.errors import PolytrackError
        from polytrack.launch.dataflow import skipped_record

        self.statuses[unit.key] = "skipped"
        self.context.note(f"{unit.key}: skipped ({reason})")
        params, tags = skipped_record(self.plan, unit, operation)
        try:
            run = polytrack.init(
                project=self.args.project,
                name=self.plan.run_name(unit),
                tags=self.plan.operation.tags,
                params=params,
                capture={"logs": False, "system": False},
                settings=self.settings,
            )
            if tags:
                run.log_tags(tags)
            run.finish("skipped", message=reason)
        except PolytrackError as exc:
            self.context.note(f"{unit.key}: the skipped run was not recorded: {exc}")

    def stop_logs(self, key: str, *, drain: bool) -> None:
        entry = self.logs.pop(key, None)
        if entry is None:
            return
        follower, printer = entry
        if drain:
            follower.drain(timeout=10.0)
        else:
            follower.stop()
        printer.close()
        for exc in follower.errors:
            self.context.note(f"{self.records[key].name}: logs: {exc}")

    def interrupted(self, live: list[Submitted]) -> None:
        """Ctrl-C: with `--watch`, cancel what runs and record it stopped."""
        from polytrack.cli._launch import pod_logs, record_end
        from polytrack.errors import KubernetesError
        from polytrack.launch.submit import cancel
        from polytrack.launch.watch import JobState

        if not self.args.watch:
            self.context.note(f"stopped submitting; {len(live)} workloads run on")
            return
        for submitted in live:
            key = submitted.unit.key
            record = self.records[key]
            self.stop_logs(key, drain=False)
            owned = key in self.owned
            lines = [] if owned else pod_logs(self.context, self.client, record)
            try:
                cancel(self.client, record.namespace, record.objects)
            except KubernetesError as exc:
                self.context.note(f"{record.name}: could not cancel: {exc}")
                continue
            state = JobState("stopped", "cancelled: interrupted (Ctrl-C)")
            self.context.note(f"{record.name}: cancelled")
            run = self.owned.pop(key, None)
            if run is not None:
                run.finish("stopped", message=state.message)
                self.registry.save(
                    record.evolve(
                        status="stopped", message=state.message, finished_at=time.time(),
                        recorded=True,
                    )
                )  # fmt: skip
            else:
                record_end(self.context, None, self.registry, record, state, lines=lines)
