"""Launching the conformance shapes of issue 18: DAG plans and the Dask and Ray kinds
(`polytrack check --schemas` is tested with the schemas, in test_schemas.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _cli import cli
from polytrack import spec
from polytrack.errors import LaunchError
from polytrack.launch.manifests import Target, compile_operation, launch_globals
from polytrack.launch.plan import make_plan
from polytrack.launch.watch import JobState, workload_state

HERE = Path(__file__).parents[1] / "spec" / "fixtures" / "conformance"


def target(name: str, run_id: str = "a1b2c3d4") -> Target:
    return Target(run_id=run_id, run_name=name, project="p")


def test_each_dag_operation_renders_with_its_own_globals() -> None:
    """Resolving `train` (no ports) no longer renders `serve`'s `{{ globals.ports[0] }}`."""
    plan = make_plan([HERE / "dag-ref-ports.yaml"])
    resolved = {unit.key: plan.resolve(unit, target(unit.key)) for unit in plan.units}
    serve = resolved["serve"].component
    assert serve is not None and isinstance(serve.run, spec.Service)
    assert serve.run.container is not None
    assert serve.run.container.command[3] == "8000"
    assert resolved["serve"].params["model"].ref == "ops.train"


def test_a_url_ref_operation_left_out_is_named_by_its_url() -> None:
    plan = make_plan([HERE / "dag-urlref-left-out.yaml"])
    assert plan.notes == (
        "fetch: left out, its component is at the urlRef "
        "https://example.com/components/fetch.yaml, which polytrack does not fetch",
    )
    assert [unit.key for unit in plan.units] == ["train"]


def test_a_dag_with_nothing_runnable_is_an_error() -> None:
    """Every operation left out: an error saying why, not a dry run of 0 objects."""
    with pytest.raises(LaunchError) as caught:
        make_plan([HERE / "dag-all-left-out.yaml"])
    assert str(caught.value) == (
        "nothing to run: every operation of the dag is left out (fetch: left out, its "
        "component is the hubRef fetch-data, which polytrack does not fetch; notify: left "
        "out, its component is at the urlRef https://example.com/components/notify.yaml, "
        "which polytrack does not fetch)"
    )
    result = cli("run", "-f", str(HERE / "dag-all-left-out.yaml"), "--dry-run")
    assert result.code == 1 and "dry run" not in result.err


def compile_file(name: str) -> Any:
    goal = target("c")
    return compile_operation(spec.load([HERE / name], globals=launch_globals(goal)), goal)


def test_a_dask_cluster_is_a_dask_cluster_and_its_autoscaler() -> None:
    workload = compile_file("daskcluster.yaml")
    cluster, autoscaler = workload.manifests
    assert (cluster["apiVersion"], cluster["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    assert cluster["spec"]["worker"]["replicas"] == 2
    assert cluster["spec"]["scheduler"]["service"]["selector"] == {
        "dask.org/cluster-name": "c-a1b2c3d4",
        "dask.org/component": "scheduler",
    }
    # The operator's pods carry the run's labels, so logs and the selector find them.
    assert cluster["spec"]["worker"]["metadata"]["labels"]["polytrack.dev/run-id"] == "a1b2c3d4"
    assert autoscaler["kind"] == "DaskAutoscaler"
    assert autoscaler["spec"] == {"cluster": "c-a1b2c3d4", "minimum": 1, "maximum": 5}
    assert workload.main is cluster
    assert workload.notes == (
        "termination: a daskcluster runs until stopped; timeout does not apply",
    )


def test_a_ray_cluster_with_an_entrypoint_is_a_ray_job() -> None:
    (job,) = compile_file("raycluster.yaml").manifests
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["entrypoint"] == "python main.py"
    assert job["spec"]["runtimeEnvYAML"] == '{"pip": ["requests==2.26.0"]}'
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert {k: group[k] for k in ("groupName", "replicas", "minReplicas", "maxReplicas")} == {
        "groupName": "small-group",
        "replicas": 2,
        "minReplicas": 1,
        "maxReplicas": 4,
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"kind": "DaskCluster", "status": {"phase": "Created"}}, JobState("created")),
        ({"kind": "DaskCluster", "status": {"phase": "Running"}}, JobState("running")),
        ({"kind": "RayCluster", "status": {"state": "ready"}}, JobState("running")),
        ({"kind": "RayJob", "status": {"jobStatus": "SUCCEEDED"}}, JobState("succeeded")),
        (
            {"kind": "RayJob", "status": {"jobStatus": "FAILED", "message": "exit 1"}},
            JobState("failed", "exit 1"),
        ),
        (
            {"kind": "RayJob", "status": {"jobDeploymentStatus": "Failed", "reason": "no head"}},
            JobState("failed", "no head"),
        ),
        ({"kind": "RayJob", "status": {"jobStatus": "PENDING"}}, JobState("created")),
    ],
)
def test_dask_and_ray_states(obj: dict[str, Any], expected: JobState) -> None:
    assert workload_state(obj) == expected
