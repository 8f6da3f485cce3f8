"""Submitting: all-or-nothing creates, ownership, cancelling, and the scheduler's order
and concurrency, measured on the emulator's job controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from launch_helpers import NAMESPACE, TOKEN
from test_manifests import LAUNCH, SPECS

from polytrack import spec
from polytrack.errors import KubernetesForbiddenError, LaunchError
from polytrack.launch.client import KubeClient
from polytrack.launch.kubeconfig import load_kubeconfig
from polytrack.launch.manifests import (
    GitSource,
    Target,
    Workload,
    compile_operation,
    launch_globals,
)
from polytrack.launch.ops import ObjectRef
from polytrack.launch.plan import make_plan
from polytrack.launch.submit import (
    Scheduler,
    Submitted,
    Unit,
    cancel,
    create_workload,
    trigger_allows,
)
from polytrack.launch.watch import JobState

pytest.importorskip("kmock")


def client_for(cluster: Any, tmp_path: Path) -> KubeClient:
    from kube import kubeconfig

    path = kubeconfig(tmp_path / "kc", cluster, user={"token": TOKEN}, namespace=NAMESPACE)
    return KubeClient.connect(load_kubeconfig([path]))


def tree_workload(run_id: str = "a1b2c3d4") -> Workload:
    git = GitSource(commit="c" * 40, remote="https://github.com/acme/train", diff=b"+x\n")
    goal = Target(run_id=run_id, run_name="tree", project="p", namespace=NAMESPACE, git=git)
    path = LAUNCH / "polyaxonfiles" / "tree.yaml"
    return compile_operation(spec.load([path], globals=launch_globals(goal)), goal)


def names(cluster: Any, plural: str) -> list[str]:
    group = "api/v1" if plural in ("configmaps", "pods") else "apis/batch/v1"
    return [
        o["metadata"]["name"] for o in cluster.items(f"/{group}/namespaces/{NAMESPACE}/{plural}")
    ]


def test_objects_are_created_in_order_and_owned(cluster: Any, tmp_path: Path) -> None:
    """The diff's ConfigMap first, then the Job, which then owns the ConfigMap."""
    workload = tree_workload()
    with client_for(cluster, tmp_path) as client:
        refs = create_workload(client, workload)
    assert refs == (
        ObjectRef("v1", "ConfigMap", "tree-a1b2c3d4-git-diff"),
        ObjectRef("batch/v1", "Job", "tree-a1b2c3d4"),
    )
    config = cluster.call(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/tree-a1b2c3d4-git-diff"
    )
    job = cluster.call("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/tree-a1b2c3d4")
    assert config["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "tree-a1b2c3d4",
            "uid": job["metadata"]["uid"],
        }
    ]


def test_a_failed_create_takes_back_what_it_made(cluster: Any, tmp_path: Path) -> None:
    """403 on the Job: the ConfigMap made before it is deleted again; the 403 is raised."""
    cluster.emulator.forbidden.add(("create", "jobs", NAMESPACE))
    with client_for(cluster, tmp_path) as client, pytest.raises(KubernetesForbiddenError):
        create_workload(client, tree_workload())
    assert names(cluster, "configmaps") == []


def test_a_refused_ownership_patch_takes_back_everything(cluster: Any, tmp_path: Path) -> None:
    """403 on patching the ConfigMap's owner: the Job and ConfigMap are deleted again, so
    a submission reported failed leaves nothing running."""
    cluster.emulator.forbidden.add(("patch", "configmaps", NAMESPACE))
    with client_for(cluster, tmp_path) as client, pytest.raises(KubernetesForbiddenError):
        create_workload(client, tree_workload())
    assert names(cluster, "jobs") == names(cluster, "configmaps") == []


def test_cancel_deletes_the_workload_and_its_objects(cluster: Any, tmp_path: Path) -> None:
    """cancel() deletes everything; a second cancel finds nothing."""
    with client_for(cluster, tmp_path) as client:
        refs = create_workload(client, tree_workload())
        assert cancel(client, NAMESPACE, refs) is True
        assert cancel(client, NAMESPACE, refs) is False
    assert names(cluster, "jobs") == names(cluster, "configmaps") == []


def test_triggers() -> None:
    """A DAG operation runs after its upstream ones as its trigger says."""
    assert trigger_allows(None, []) is True
    assert trigger_allows(None, ["succeeded", "succeeded"]) is True
    assert trigger_allows("all_succeeded", ["succeeded", "failed"]) is False
    assert trigger_allows("all_failed", ["failed", "failed"]) is True
    assert trigger_allows("all_done", ["failed", "skipped"]) is True
    assert trigger_allows("one_succeeded", ["failed", "succeeded"]) is True
    assert trigger_allows("one_failed", ["succeeded", "skipped"]) is False


class Recorder:
    """The scheduler's caller: compiles units as `polytrack run` would, without runs."""

    def __init__(self, client: KubeClient, plan: Any) -> None:
        self.client = client
        self.plan = plan
        self.submitted: list[str] = []
        self.ends: dict[str, str] = {}
        self.skipped: dict[str, str] = {}

    def submit(self, unit: Unit) -> Submitted:
        run_id = f"r{len(self.submitted):07d}"
        goal = Target(
            run_id=run_id, run_name=self.plan.run_name(unit), project="p", namespace=NAMESPACE
        )
        workload = compile_operation(self.plan.resolve(unit, goal), goal)
        create_workload(self.client, workload)
        self.submitted.append(unit.key)
        return Submitted(unit=unit, run_id=run_id, workload=workload)

    def on_state(self, submitted: Submitted, state: JobState) -> None:
        if state.final:
            self.ends[submitted.unit.key] = state.status

    def on_skip(self, unit: Unit, reason: str) -> None:
        self.skipped[unit.key] = reason


def test_a_matrix_never_runs_more_than_its_concurrency(
    cluster: Any, controller: Any, tmp_path: Path
) -> None:
    """Six runs, two at a time: the controller never sees more than two jobs active."""
    from kube import Outcome

    controller.script = lambda name: Outcome(duration=0.15)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "version: 1.1\nkind: operation\n"
        "matrix:\n  kind: grid\n  concurrency: 2\n"
        "  params: {lr: {kind: choice, value: [1, 2, 3, 4, 5, 6]}}\n"
        "component:\n  inputs: [{name: lr, type: int}]\n"
        "  run: {kind: job, container: {image: x, args: ['--lr={{ lr }}']}}\n"
    )
    plan = make_plan([matrix])
    with client_for(cluster, tmp_path) as client:
        recorder = Recorder(client, plan)
        scheduler = Scheduler(
            client,
            plan.units,
            submit=recorder.submit,
            on_state=recorder.on_state,
            concurrency=plan.concurrency,
        )
        assert scheduler.run(wait=True) == []
    assert plan.concurrency == 2
    assert recorder.ends == {key: "succeeded" for key in "012345"}
    assert controller.max_active == 2 and scheduler.max_live == 2
    assert len(controller.finished) == 6


def test_without_waiting_the_last_ones_run_on(
    cluster: Any, controller: Any, tmp_path: Path
) -> None:
    """wait=False returns once everything is submitted; what runs is returned."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="running")
    plan = make_plan([SPECS / "matrix-mapping.yaml"])
    with client_for(cluster, tmp_path) as client:
        recorder = Recorder(client, plan)
        scheduler = Scheduler(
            client, plan.units, submit=recorder.submit, on_state=recorder.on_state
        )
        live = scheduler.run(wait=False)
    assert [s.unit.key for s in live] == ["0", "1"] and recorder.ends == {}


def test_a_dag_runs_in_dependency_order_and_skips_by_trigger(
    cluster: Any, controller: Any, tmp_path: Path
) -> None:
    """prepare -> train -> evaluate -> report; a failed train skips what needs it."""
    from kube import Outcome

    plan = make_plan([SPECS / "dag.yaml"])
    controller.script = lambda name: Outcome(
        status="failed" if "-train-" in name else "succeeded", duration=0.05
    )
    with client_for(cluster, tmp_path) as client:
        recorder = Recorder(client, plan)
        scheduler = Scheduler(
            client,
            plan.units,
            submit=recorder.submit,
            on_state=recorder.on_state,
            on_skip=recorder.on_skip,
            concurrency=plan.concurrency,
        )
        scheduler.run(wait=True)
    assert recorder.submitted == ["prepare", "train"]
    assert recorder.ends == {"prepare": "succeeded", "train": "failed"}
    assert recorder.skipped == {
        "evaluate": "trigger all_succeeded: train failed",
        "report": "trigger all_succeeded: evaluate skipped",
    }
    assert scheduler.statuses == {
        "prepare": "succeeded",
        "train": "failed",
        "evaluate": "skipped",
        "report": "skipped",
    }
    assert controller.started == [
        "pipeline-prepare-r0000000",
        "pipeline-train-r0000001",
    ]


def test_a_submission_error_stops_the_scheduler(cluster: Any, tmp_path: Path) -> None:
    """A unit that cannot be created ends the scheduling with its error."""
    cluster.emulator.forbidden.add(("create", "jobs", NAMESPACE))
    plan = make_plan([SPECS / "matrix-mapping.yaml"])
    with client_for(cluster, tmp_path) as client:
        recorder = Recorder(client, plan)
        scheduler = Scheduler(
            client, plan.units, submit=recorder.submit, on_state=recorder.on_state
        )
        with pytest.raises(KubernetesForbiddenError):
            scheduler.run(wait=True)
    assert recorder.submitted == []


def test_bad_concurrency() -> None:
    """A concurrency below 1 is refused."""
    with pytest.raises(LaunchError, match="at least 1, got 0"):
        Scheduler(None, [], submit=lambda u: None, on_state=lambda s, e: None, concurrency=0)  # type: ignore[arg-type,return-value]
