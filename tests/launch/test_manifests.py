"""Compiling operations into manifests: golden files, and what each section becomes.

The golden files `tests/fixtures/launch/<case>.yaml` are the manifests of the spec
fixtures in `tests/fixtures/polyaxonfiles/`, compiled with fixed run ids, group, git
state and forwarded variables. After a deliberate change, regenerate them with

    POLYTRACK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/launch/test_manifests.py

and read the diff before committing it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from polytrack import spec
from polytrack.cli.run import dump_yaml
from polytrack.errors import LaunchError
from polytrack.launch.manifests import (
    LABEL_GROUP,
    LABEL_RUN,
    MAX_DIFF_BYTES,
    GitSource,
    Target,
    Workload,
    compile_operation,
    launch_globals,
)
from polytrack.launch.names import (
    MAX_WORKLOAD,
    dns_label,
    is_dns_label,
    is_label_value,
    label_value,
    workload_name,
)
from polytrack.launch.plan import make_plan

FIXTURES = Path(__file__).parents[1] / "fixtures"
SPECS = FIXTURES / "polyaxonfiles"
LAUNCH = FIXTURES / "launch"
GIT = GitSource(
    commit="0123456789abcdef0123456789abcdef01234567",
    remote="git@github.com:acme/models.git",
    diff=b"diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n",
)
CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "job": (["job.yaml"], {"data": "s3://acme/mnist"}),
    "service": (["service.yaml"], {}),
    "tfjob": (["tfjob.yaml"], {}),
    "pytorchjob": (["pytorchjob.yaml"], {}),
    "mpijob": (["mpijob.yaml"], {}),
    "dag": (["dag.yaml"], {}),
    "matrix": (["matrix-mapping.yaml"], {}),
    "daskcluster": (["../../spec/fixtures/conformance/daskcluster.yaml"], {}),
    "raycluster": (["../../spec/fixtures/conformance/raycluster.yaml"], {}),
}


def compile_case(case: str) -> list[dict[str, Any]]:
    """The manifests of one case, as `polytrack run` makes them, with fixed ids."""
    files, params = CASES[case]
    plan = make_plan([SPECS / name for name in files], params)
    manifests: list[dict[str, Any]] = []
    for index, unit in enumerate(plan.units):
        target = Target(
            run_id=f"run{index:05d}",
            run_name=plan.run_name(unit),
            project="mnist",
            namespace="ml",
            labels={LABEL_GROUP: "g1234567"} if plan.kind != "single" else {},
            env={"POLYTRACK_BACKEND": "https://tracking.acme.org"},
            secrets=("polytrack-backend",),
            git=GIT,
        )
        manifests.extend(compile_operation(plan.resolve(unit, target), target).manifests)
    return manifests


def load_case(name: str, **params: str) -> spec.Operation:
    return spec.load([SPECS / name], params)


def target(**changes: Any) -> Target:
    values: dict[str, Any] = {"run_id": "a1b2c3d4", "run_name": "train", "project": "p"}
    values.update(changes)
    return Target(**values)


def compile_file(path: Path, **changes: Any) -> Workload:
    goal = target(**changes)
    return compile_operation(spec.load([path], globals=launch_globals(goal)), goal)


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_match_the_golden_files(case: str) -> None:
    """Each spec fixture compiles to its golden manifests (see the module docstring)."""
    manifests = compile_case(case)
    golden = LAUNCH / f"{case}.yaml"
    if os.environ.get("POLYTRACK_UPDATE_GOLDEN"):
        golden.write_text(dump_yaml(manifests))
    assert list(yaml.safe_load_all(golden.read_text())) == manifests


def test_every_name_is_a_dns_label_and_every_label_value_valid() -> None:
    """Object names are DNS-1123 labels (starting with a letter); label values are valid."""
    for case in CASES:
        for manifest in compile_case(case):
            metadata = manifest["metadata"]
            assert is_dns_label(metadata["name"]), metadata["name"]
            for value in metadata["labels"].values():
                assert is_label_value(value), value


def test_every_resource_quantity_is_valid() -> None:
    """Requests and limits of every container are Kubernetes quantities."""
    seen = 0
    for case in CASES:
        for manifest in compile_case(case):
            for resources in _find(manifest, "resources"):
                for quantities in resources.values():
                    for value in quantities.values():
                        assert spec.is_quantity(value), value
                        seen += 1
    assert seen >= 10


def _find(data: Any, key: str) -> list[Any]:
    if isinstance(data, dict):
        found = [data[key]] if isinstance(data.get(key), dict) else []
        return found + [item for value in data.values() for item in _find(value, key)]
    if isinstance(data, list):
        return [item for value in data for item in _find(value, key)]
    return []


def test_the_job_carries_the_run_and_the_termination() -> None:
    """A Job: polytrack's variables first, termination on its spec, pods selected by run."""
    manifests = compile_case("job")
    config, job = manifests
    assert config["kind"] == "ConfigMap" and job["kind"] == "Job"
    spec_ = job["spec"]
    assert (spec_["backoffLimit"], spec_["activeDeadlineSeconds"]) == (2, 7200)
    assert spec_["ttlSecondsAfterFinished"] == 600
    pod = spec_["template"]["spec"]
    assert spec_["template"]["metadata"]["labels"][LABEL_RUN] == "run00000"
    main = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in main["env"]}
    assert env["POLYTRACK_RUN_ID"] == "run00000"
    assert env["POLYTRACK_PROJECT"] == "mnist"
    assert env["POLYTRACK_RUN_NAME"] == "train"
    assert env["POLYTRACK_BACKEND"] == "https://tracking.acme.org"
    assert env["LEARNING_RATE"] == "0.01"  # the input's toEnv
    assert main["envFrom"] == [
        {"secretRef": {"name": "s3-datasets"}},
        {"secretRef": {"name": "polytrack-backend"}},
    ]
    assert "" not in main["args"]  # the false flag's as_arg rendered to nothing
    assert "--out=/polytrack/artifacts/outputs" in main["args"]
    assert main["workingDir"] == "/polytrack/code/train"
    assert pod["securityContext"] == {"runAsGroup": 3000, "runAsUser": 1000}
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]


def test_a_git_init_of_the_working_tree_gets_its_commit_and_diff() -> None:
    """The git init whose URL is the tree's remote checks out its commit, applies its diff."""
    config, job = compile_case("job")
    assert config["data"] == {"diff.patch": GIT.diff.decode()}
    inits = {c["name"]: c for c in job["spec"]["template"]["spec"]["initContainers"]}
    tree = inits["init-4-git"]  # the `repo` input with toInit: github.com/acme/models
    env = {item["name"]: item["value"] for item in tree["env"]}
    assert env["GIT_REVISION"] == GIT.commit
    assert env["GIT_DIFF"] == "/polytrack-git-diff/diff.patch"
    other = {item["name"]: item["value"] for item in inits["init-0-git"]["env"]}
    assert other["GIT_REVISION"] == "main" and "GIT_DIFF" not in other  # as written
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "polytrack-git-diff", "configMap": {"name": config["metadata"]["name"]}} in (
        volumes
    )


def test_a_binary_diff_ships_as_binary_data() -> None:
    """A diff that is not UTF-8 goes into `binaryData`, base64."""
    diff = b"diff --git a/x b/x\n\xff\xfe\n"
    git = GitSource(commit="c" * 40, remote="https://github.com/acme/train", diff=diff)
    workload = compile_file(LAUNCH / "polyaxonfiles" / "tree.yaml", git=git)
    config = workload.manifests[0]
    assert base64.b64decode(config["binaryData"]["diff.patch"]) == diff


def test_a_diff_too_large_for_a_config_map_is_an_error() -> None:
    """More than a ConfigMap holds: the user is told to commit."""
    git = GitSource(
        commit="c" * 40, remote="https://github.com/acme/train", diff=b"+" * (MAX_DIFF_BYTES + 1)
    )
    with pytest.raises(LaunchError, match=r"more than a ConfigMap can ship .*: commit and push"):
        compile_file(LAUNCH / "polyaxonfiles" / "tree.yaml", git=git)


def test_untracked_files_are_noted() -> None:
    """Untracked files are not in the diff: a note says so."""
    git = GitSource(commit="c" * 40, remote="https://github.com/acme/train", untracked=3)
    workload = compile_file(LAUNCH / "polyaxonfiles" / "tree.yaml", git=git)
    assert any("3 untracked files are not shipped" in note for note in workload.notes)
    assert len(workload.manifests) == 1  # a clean tree: no ConfigMap


def test_the_pod_security_context_is_split_from_the_container_part() -> None:
    """Container-only security fields go to the main container, the rest to the pod."""
    workload = compile_file(LAUNCH / "polyaxonfiles" / "tree.yaml")
    pod = workload.main["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsUser": 1000}
    assert pod["containers"][0]["securityContext"] == {"readOnlyRootFilesystem": True}
    assert pod["restartPolicy"] == "OnFailure"
    assert workload.main["spec"]["backoffLimit"] == 0


def test_a_service_is_a_deployment_and_a_service() -> None:
    """A service: Deployment with its replicas and ports, a Service selecting its pods."""
    deployment, service = compile_case("service")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"] == {"matchLabels": {LABEL_RUN: "run00000"}}
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    assert main["ports"] == [{"containerPort": 8888, "protocol": "TCP"}]
    assert main["args"][0] == "--port=8888"  # globals.ports rendered
    assert service["spec"]["selector"] == {LABEL_RUN: "run00000"}
    assert service["spec"]["ports"][0]["targetPort"] == 8888


def test_kubeflow_jobs_map_replicas_and_the_run_policy() -> None:
    """Replica specs by Kubeflow's names, the framework's container name, runPolicy."""
    (tfjob,) = compile_case("tfjob")
    assert set(tfjob["spec"]["tfReplicaSpecs"]) == {"Chief", "PS", "Worker"}
    worker = tfjob["spec"]["tfReplicaSpecs"]["Worker"]
    assert (worker["replicas"], worker["restartPolicy"]) == (4, "OnFailure")
    assert worker["template"]["spec"]["containers"][0]["name"] == "tensorflow"
    assert tfjob["spec"]["runPolicy"] == {
        "cleanPodPolicy": "Running",
        "ttlSecondsAfterFinished": 12,
        "schedulingPolicy": {"minAvailable": 3, "queue": "default"},
    }
    (pytorch,) = compile_case("pytorchjob")
    assert pytorch["spec"]["nprocPerNode"] == "8"
    assert pytorch["spec"]["elasticPolicy"]["rdzvBackend"] == "c10d"
    (mpi,) = compile_case("mpijob")
    assert mpi["spec"]["slotsPerWorker"] == 2
    launcher = mpi["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    assert launcher["containers"][0]["name"] == "mpi"


def test_a_dag_compiles_every_operation_but_the_hub_one() -> None:
    """Each DAG operation with a component is a workload of its own, in the group."""
    plan = make_plan([SPECS / "dag.yaml"])
    assert [unit.key for unit in plan.units] == ["prepare", "train", "evaluate", "report"]
    assert plan.notes == (
        "notify: left out, its component is the hubRef slack-notifier, which polytrack "
        "does not fetch",
    )
    assert {u.key: sorted(u.upstream) for u in plan.units}["train"] == ["prepare"]
    names = [m["metadata"]["name"] for m in compile_case("dag")]
    assert names == [
        "pipeline-prepare-run00000",
        "pipeline-train-run00001",
        "pipeline-evaluate-run00002",
        "pipeline-report-run00003",
    ]


def test_a_matrix_is_one_workload_per_run_with_its_params() -> None:
    """A mapping matrix: one Job per run, each rendered with that run's values."""
    first, second = compile_case("matrix")
    assert first["spec"]["template"]["spec"]["containers"][0]["args"] == ["--lr=0.1", "--opt=sgd"]
    assert second["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "--lr=0.001",
        "--opt=adam",
    ]
    assert first["metadata"]["labels"][LABEL_GROUP] == second["metadata"]["labels"][LABEL_GROUP]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "restart-always.yaml",
            "run.environment.restartPolicy: a job's pods restart Never or OnFailure, "
            "not Always (that is a service)",
        ),
        (
            "service-never.yaml",
            "run.environment.restartPolicy: a service's pods restart Always, not Never",
        ),
        (
            "tensorboard-init.yaml",
            "run.init[0].tensorboard: polytrack run cannot fetch tensorboard inits (they need "
            "Polyaxon's stores); fetch them in the container",
        ),
        (
            "reserved-env.yaml",
            "run.container.env: POLYTRACK_RUN_ID is set by polytrack run (it names the run "
            "the container records into)",
        ),
        ("artifacts-no-connection.yaml", "run.init[0]: artifacts need a connection to copy from"),
        (
            "git-connection-only.yaml",
            "run.init[0].git: no url; polytrack has no connection catalog to take it from",
        ),
    ],
)
def test_operations_polytrack_cannot_launch_say_why(name: str, message: str) -> None:
    """Each invalid launch fixture fails with its own message."""
    with pytest.raises(LaunchError) as caught:
        compile_file(LAUNCH / "polyaxonfiles" / "invalid" / name)
    assert str(caught.value) == message


def test_a_dag_inside_a_dag_is_refused() -> None:
    """Nested DAGs are not launched."""
    with pytest.raises(LaunchError, match=r"^inner: a dag inside a dag is not supported$"):
        make_plan([LAUNCH / "polyaxonfiles" / "invalid" / "dag-in-dag.yaml"])


def test_sections_polytrack_does_not_do_are_noted() -> None:
    """hooks and cache are noted as ignored, not silently dropped."""
    workload = compile_operation(load_case("job.yaml", data="s3://a/b"), target(namespace="ml"))
    assert workload.notes == (
        "hooks: not done by polytrack run (ignored)",
        "cache: not done by polytrack run (ignored)",
    )


def test_names_are_dns_labels() -> None:
    """Run names become DNS labels; the id suffix survives any cut."""
    assert dns_label("ResNet_50 (lr=0.1)") == "resnet-50-lr-0-1"
    assert dns_label("42") == "r-42"
    assert dns_label("---") == "run"
    long = workload_name("x" * 100, "a1b2c3d4")
    assert len(long) == MAX_WORKLOAD and long.endswith("-a1b2c3d4") and is_dns_label(long)
    assert workload_name("Train", "0042") == "train-0042"
    assert label_value("team/vision@acme") == "team-vision-acme"
    assert label_value("-x-" * 40).startswith("x") and len(label_value("-x-" * 40)) <= 63
