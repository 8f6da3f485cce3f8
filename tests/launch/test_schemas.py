"""Generated manifests against the Kubernetes schemas (`polytrack.launch.schemas`: the
official ones from kubernetes-validate, strict, unknown fields are errors; the operators'
CRD envelopes from `polytrack/launch/crds/`, with each embedded pod template checked as
a core `PodTemplateSpec`), on two Kubernetes versions; and the check's teeth.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from test_manifests import CASES, compile_case

from _cli import cli
from polytrack import spec
from polytrack.errors import LaunchError
from polytrack.launch import schemas
from polytrack.launch.manifests import Target, compile_operation, launch_globals

kubernetes_validate = pytest.importorskip("kubernetes_validate")

VERSIONS = ("1.29", "1.33")
EXTRA = Path(__file__).parents[1] / "fixtures" / "launch" / "polyaxonfiles" / "tree.yaml"
CONFORMANCE = Path(__file__).parents[1] / "spec" / "fixtures" / "conformance"


def validate(manifest: dict[str, Any], version: str) -> None:
    schemas.check_manifests([manifest], version=version)


def test_the_versions_are_shipped() -> None:
    """The Kubernetes versions validated against are in the installed package."""
    shipped = kubernetes_validate.utils.all_versions()
    for version in VERSIONS:
        assert any(v.startswith(version + ".") for v in shipped), shipped
    assert schemas.available()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_manifests_validate_strictly(case: str, version: str) -> None:
    """Every manifest of every case (Dask and Ray included) is valid for that version."""
    for manifest in compile_case(case):
        validate(manifest, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_security_split_and_restart_policy_validate(version: str) -> None:
    """The split security context and OnFailure pods are valid too."""
    goal = Target(run_id="a1b2c3d4", run_name="tree", project="p")
    workload = compile_operation(spec.load([EXTRA], globals=launch_globals(goal)), goal)
    for manifest in workload.manifests:
        validate(manifest, version)


def test_strict_validation_catches_an_unknown_field() -> None:
    """The check has teeth: a misspelt field fails, as does a bad Kubeflow envelope."""
    (job,) = [m for m in compile_case("matrix")][:1]
    job["spec"]["backofflimit"] = 3
    with pytest.raises(LaunchError, match="backofflimit"):
        validate(job, VERSIONS[0])
    (mpi,) = compile_case("mpijob")
    mpi["spec"]["mpiReplicaSpecs"]["Master"] = mpi["spec"]["mpiReplicaSpecs"].pop("Launcher")
    with pytest.raises(LaunchError, match="Master"):
        validate(mpi, VERSIONS[0])


@pytest.mark.parametrize(
    ("case", "spoil", "message"),
    [
        (
            "daskcluster",
            lambda m: m[0]["spec"]["scheduler"].pop("service"),
            "DaskCluster/dask-cluster-run00000 spec.scheduler: 'service' is a required property",
        ),
        (
            "daskcluster",
            lambda m: m[0]["spec"]["worker"]["spec"]["containers"][0].update(imagee="x"),
            "DaskCluster/dask-cluster-run00000 spec.worker.spec.containers[0]: "
            "Additional properties are not allowed ('imagee' was unexpected)",
        ),
        (
            "raycluster",
            lambda m: m[0]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("groupName"),
            "RayJob/ray-train-run00000 spec.rayClusterSpec.workerGroupSpecs[0]: "
            "'groupName' is a required property",
        ),
        (
            "raycluster",
            lambda m: m[0]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"].update(
                hostPID="yes"
            ),
            "RayJob/ray-train-run00000 spec.rayClusterSpec.headGroupSpec.template.spec."
            "hostPID: 'yes' is not of type 'boolean', 'null'",
        ),
    ],
)
def test_operator_kinds_are_checked_inside_and_out(case: str, spoil: Any, message: str) -> None:
    """Dask's and Ray's envelopes, and the pod specs inside them, are checked strictly."""
    manifests = copy.deepcopy(compile_case(case))
    spoil(manifests)
    with pytest.raises(LaunchError) as caught:
        schemas.check_manifests(manifests, version=VERSIONS[1])
    assert str(caught.value).splitlines()[1:] == [message]


def test_an_empty_node_affinity_term_is_refused_naming_the_field() -> None:
    """`requiredDuringSchedulingIgnoredDuringExecution: {}` passes the spec, not the API."""
    goal = Target(run_id="a1b2c3d4", run_name="t", project="p")
    path = CONFORMANCE / "empty-node-affinity-term.yaml"
    workload = compile_operation(spec.load([path], globals=launch_globals(goal)), goal)
    with pytest.raises(LaunchError) as caught:
        schemas.check_manifests(workload.manifests, version="1.33")
    assert str(caught.value) == (
        "the manifests do not pass the Kubernetes 1.33 schemas (the API server would refuse "
        "them):\nJob/t-a1b2c3d4 spec.template.spec.affinity.nodeAffinity."
        "requiredDuringSchedulingIgnoredDuringExecution: 'nodeSelectorTerms' is a required "
        "property"
    )


def test_an_unknown_version_says_which_are_known() -> None:
    with pytest.raises(LaunchError, match=r"no schemas for Kubernetes 0\.1 \(it has .*1\.33"):
        schemas.check_manifests(compile_case("job"), version="0.1")


def test_check_schemas_names_the_field_the_api_server_refuses() -> None:
    """`check` passes the empty node-affinity term; `check --schemas` does not."""
    path = str(CONFORMANCE / "empty-node-affinity-term.yaml")
    assert cli("check", "-f", path).code == 0
    result = cli("check", "-f", path, "--schemas", "--kube-version", "1.33")
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "Job/run-00000000 spec.template.spec.affinity.nodeAffinity."
        "requiredDuringSchedulingIgnoredDuringExecution: 'nodeSelectorTerms' is a required "
        "property"
    )
    # The dry run checks the same before printing anything.
    dry = cli("run", "-f", path, "--dry-run")
    assert dry.code == 1 and dry.out == "" and "nodeSelectorTerms" in dry.err


def test_check_schemas_passes_dask_and_ray() -> None:
    for name in ("daskcluster.yaml", "raycluster.yaml"):
        result = cli("check", "-f", str(CONFORMANCE / name), "--schemas", "--kube-version", "1.29")
        assert result.code == 0, result.err
        assert result.err.splitlines()[-1].startswith("schemas: ")
