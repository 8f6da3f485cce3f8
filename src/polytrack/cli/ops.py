"""`polytrack ops ls|logs|stop`: the workloads `polytrack run` submitted.

They are read from the registry under `<home>/ops/` and asked about on their cluster,
with the kubeconfig file and context they were submitted with (`--kubeconfig` and
`--context` override them). `ls` refreshes their states and records each final one into
its run (with the pods' logs); `logs` prints the pods' logs, `-f` following them until
the workload ends (it does not record them: the run gets them when its end is recorded);
`stop` cancels a workload and records its run `stopped`.
"""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.launch.client import KubeClient
    from polytrack.launch.ops import OpRecord, OpsRegistry
    from polytrack.launch.watch import JobState

__all__ = ["list_ops", "register", "show_logs", "stop_op"]


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `ops ls`, `ops logs` and `ops stop` to the `polytrack` parser."""
    ops = add_command(
        commands,
        parent,
        "ops",
        help="the workloads `polytrack run` submitted",
        description="List, follow and stop the workloads submitted by `polytrack run`.",
    )
    actions = ops.add_subparsers(dest="action", metavar="ACTION", required=True)

    def cluster_options(parser: Parser) -> None:
        parser.add_argument("--context", help="instead of the context it was submitted with")
        parser.add_argument("--kubeconfig", metavar="FILE", help="instead of the one it used")

    ls = add_command(
        actions,
        ops,
        "ls",
        help="list them, refreshing their states from the cluster",
        description=(
            "List submitted workloads, newest first, with their states refreshed from the\n"
            "cluster; a final state is recorded into the run."
        ),
    )
    ls.add_argument("--json", action="store_true", help="the records as a JSON array")
    ls.add_argument("--offline", action="store_true", help="the last known states; no cluster")
    cluster_options(ls)
    ls.set_defaults(handler=list_ops)
    logs = add_command(
        actions, ops, "logs", help="print a workload's pod logs", description="Print pod logs."
    )
    logs.add_argument("op", metavar="OP", help="a run id, a unique prefix of one, or a name")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until it ends")
    cluster_options(logs)
    logs.set_defaults(handler=show_logs)
    stop = add_command(
        actions,
        ops,
        "stop",
        help="cancel a workload and record its run stopped",
        description="Delete a workload (its pods first) and record its run as stopped.",
    )
    stop.add_argument("op", metavar="OP", help="a run id, a unique prefix of one, or a name")
    cluster_options(stop)
    stop.set_defaults(handler=stop_op)


def list_ops(args: argparse.Namespace, context: Context) -> int:
    """Refresh the states of the registry's workloads, record final ones, print them."""
    from polytrack.cli._format import format_time, to_json
    from polytrack.cli._table import Cell, Column, render
    from polytrack.launch.ops import OpsRegistry

    registry = OpsRegistry.at(context.home)
    records = registry.all()
    for problem in registry.problems:
        context.note(problem)
    if not args.offline:
        records = _refresh(args, context, registry, records)
    if args.json:
        import attrs

        context.out(to_json([attrs.asdict(record) for record in records]))
        return 0
    if not records:
        context.note("no operations")
        return 0
    columns = {
        "id": [r.id for r in records],
        "name": [r.name for r in records],
        "kind": [r.kind for r in records],
        "namespace": [r.namespace for r in records],
        "status": [r.status for r in records],
        "submitted": [format_time(r.submitted_at) for r in records],
        "group": [f"{r.group_kind} {r.group} {r.key}" if r.group else "-" for r in records],
        "message": [r.message or "-" for r in records],
    }
    table = [
        Column(
            header, [Cell(text) for text in cells], max_width=40 if header == "message" else None
        )
        for header, cells in columns.items()
    ]
    context.out(render(table))
    return 0


def _refresh(
    args: argparse.Namespace,
    context: Context,
    registry: OpsRegistry,
    records: list[OpRecord],
) -> list[OpRecord]:
    """Ask each cluster about the workloads not known to have ended; record the ends."""
    from polytrack.cli._launch import client_for, record_end
    from polytrack.errors import KubernetesError, KubernetesNotFoundError, LaunchError
    from polytrack.launch.resources import resource_type
    from polytrack.launch.watch import JobState, workload_state

    clients: dict[tuple[str | None, str | None, str], KubeClient | LaunchError] = {}
    out = []
    try:
        for record in records:
            if record.recorded:
                out.append(record)
                continue
            where = (record.kubeconfig, record.context, record.server)
            if where not in clients:
                try:
                    clients[where] = client_for(
                        record, context, kubeconfig=args.kubeconfig, cluster_context=args.context
                    )
                except LaunchError as exc:
                    clients[where] = exc
                    context.note(f"cannot reach {record.server}: {exc}; last known states")
            client = clients[where]
            if isinstance(client, LaunchError):
                out.append(record)
                continue
            main = record.main
            try:
                obj = client.get(resource_type(main.kind), record.namespace, main.name)
                state = workload_state(obj)
            except KubernetesNotFoundError:
                state = JobState(
                    "stopped",
                    f"{main.kind} {main.name} is gone from the cluster; its end was not seen",
                )
            except KubernetesError as exc:
                context.note(f"{record.name}: {exc}")
                out.append(record)
                continue
            if state.final:
                record = record_end(context, client, registry, record, state)
            elif (state.status, state.message) != (record.status, record.message):
                record = record.evolve(status=state.status, message=state.message)
                registry.save(record)
            out.append(record)
    finally:
        for client in clients.values():
            if not isinstance(client, LaunchError):
                client.close()
    return out


def show_logs(args: argparse.Namespace, context: Context) -> int:
    """Print a workload's pod logs; `--follow` until it ends (or Ctrl-C)."""
    from polytrack.cli._launch import LogPrinter, client_for
    from polytrack.launch.ops import OpsRegistry
    from polytrack.launch.watch import PodLogs, fetch_logs

    record = OpsRegistry.at(context.home).get(args.op)
    printer = LogPrinter(context, pods=record.kind != "job")
    with client_for(
        record, context, kubeconfig=args.kubeconfig, cluster_context=args.context
    ) as client:
        if not args.follow:
            for line in fetch_logs(
                client, record.namespace, record.pod_selector, container=record.main_container
            ):
                printer(line)
            return 0
        follower = PodLogs(
            client,
            record.namespace,
            record.pod_selector,
            name=record.name,
            container=record.main_container,
            sink=printer,
        ).start()
        try:
            state = _wait_for_end(client, record)
        finally:
            follower.drain(timeout=10.0)
            for exc in follower.errors:
                context.note(f"{record.name}: logs: {exc}")
        context.note(f"{record.name}: {state.status}")
    return 0


def _wait_for_end(client: KubeClient, record: OpRecord) -> JobState:
    from polytrack.errors import KubernetesError
    from polytrack.launch.resources import resource_type
    from polytrack.launch.watch import WorkloadWatch

    done = threading.Event()
    seen: list[JobState | KubernetesError] = []

    def finish(event: JobState | KubernetesError) -> None:
        if isinstance(event, KubernetesError) or event.final:
            seen.append(event)
            done.set()

    main = record.main
    watch = WorkloadWatch(
        client,
        resource_type(main.kind),
        record.namespace,
        main.name,
        on_state=finish,
        on_error=finish,
    ).start()
    try:
        while not done.wait(0.5):
            pass  # a timed wait: Ctrl-C is handled between two
    finally:
        watch.stop()
    event = seen[0]
    if isinstance(event, KubernetesError):
        raise event
    return event


def stop_op(args: argparse.Namespace, context: Context) -> int:
    """Cancel a workload and record its run stopped."""
    from polytrack.cli._launch import client_for, pod_logs, record_end
    from polytrack.launch.ops import OpsRegistry
    from polytrack.launch.submit import cancel
    from polytrack.launch.watch import JobState

    registry = OpsRegistry.at(context.home)
    record = registry.get(args.op)
    with client_for(
        record, context, kubeconfig=args.kubeconfig, cluster_context=args.context
    ) as client:
        lines = pod_logs(context, client, record)  # before the pods go
        found = cancel(client, record.namespace, record.objects)
    if not found:
        context.note(f"{record.name}: not on the cluster any more")
    if record.recorded:
        context.note(f"{record.name}: already ended {record.status}")
        return 0
    state = JobState("stopped", "stopped by polytrack ops stop")
    record_end(context, None, registry, record, state, lines=lines)
    context.note(f"{record.name}: stopped")
    return 0
