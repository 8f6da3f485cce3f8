"""Generated manifests against the official Kubernetes schemas (kubernetes-validate, strict:
unknown fields are errors), on two Kubernetes versions.

The Kubeflow kinds have no official schema: their envelope is checked against
`tests/fixtures/launch/kubeflow-v1.schema.json` (written from the training operator's
v1 CRDs) and each replica's pod template against the core `PodTemplateSpec`, wrapped in
a `v1 PodTemplate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_manifests import CASES, compile_case

from polytrack import spec
from polytrack.launch.manifests import Target, compile_operation, launch_globals

kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

VERSIONS = ("1.29", "1.33")
KUBEFLOW_SCHEMA = Path(__file__).parents[1] / "fixtures" / "launch" / "kubeflow-v1.schema.json"
EXTRA = Path(__file__).parents[1] / "fixtures" / "launch" / "polyaxonfiles" / "tree.yaml"


def validate(manifest: dict[str, Any], version: str) -> None:
    """Validate one manifest strictly; Kubeflow kinds as described in the module."""
    if manifest["apiVersion"] != "kubeflow.org/v1":
        kubernetes_validate.validate(manifest, version, strict=True)
        return
    schema = json.loads(KUBEFLOW_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(manifest)
    for key, replicas in manifest["spec"].items():
        if not key.endswith("ReplicaSpecs"):
            continue
        for replica in replicas.values():
            wrapper = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": manifest["metadata"]["name"]},
                "template": replica["template"],
            }
            kubernetes_validate.validate(wrapper, version, strict=True)


def test_the_versions_are_shipped() -> None:
    """The Kubernetes versions validated against are in the installed package."""
    shipped = kubernetes_validate.utils.all_versions()
    for version in VERSIONS:
        assert any(v.startswith(version + ".") for v in shipped), shipped


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_manifests_validate_strictly(case: str, version: str) -> None:
    """Every manifest of every case is valid for that Kubernetes version."""
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
    with pytest.raises(kubernetes_validate.ValidationError, match="backofflimit"):
        validate(job, VERSIONS[0])
    (mpi,) = compile_case("mpijob")
    mpi["spec"]["mpiReplicaSpecs"]["Master"] = mpi["spec"]["mpiReplicaSpecs"].pop("Launcher")
    with pytest.raises(jsonschema.ValidationError, match="Master"):
        validate(mpi, VERSIONS[0])
