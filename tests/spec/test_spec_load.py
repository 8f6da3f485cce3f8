"""Loading valid Polyaxonfiles: presets merged, params converted, templates rendered,
every section in typed models. Fixtures are under tests/fixtures/polyaxonfiles/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from polytrack import spec
from polytrack.spec import (
    Container,
    CronSchedule,
    Dag,
    DockerfileInit,
    FileInit,
    GitInit,
    IntervalSchedule,
    Job,
    MPIJob,
    Operation,
    Param,
    PyTorchJob,
    Service,
    TFJob,
    Toleration,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "polyaxonfiles"
DATA = {"data": "s3://acme/mnist"}


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def job(operation: Operation) -> Job:
    assert operation.component is not None
    assert isinstance(operation.component.run, Job)
    return operation.component.run


def test_component_file_becomes_an_operation_of_that_component() -> None:
    """A `kind: component` file loads as an operation whose component is the file."""
    operation = spec.load(["job.yaml"], DATA)
    assert operation.kind == "operation"
    assert operation.version == 1.1
    assert operation.component is not None
    assert operation.component.name == "train"
    assert operation.component.description == "trains a model"
    assert [io.name for io in operation.component.inputs or ()][:3] == ["lr", "epochs", "debug"]


def test_params_hold_every_input_and_output_converted() -> None:
    """Params from -P are converted to their input types; defaults fill the rest."""
    operation = spec.load(["job.yaml"], {**DATA, "lr": "0.1", "debug": "yes", "layers": "[8]"})
    values = {name: param.value for name, param in operation.params.items()}
    assert values == {
        "lr": 0.1,
        "epochs": 10,
        "debug": True,
        "optimizer": "adam",
        "layers": [8],
        "config": {"dropout": 0.5},
        "data": "s3://acme/mnist",
        "repo": {"url": "https://github.com/acme/models"},
        "batch": 32,
        "tracker": "https://user:pw@tracking.acme.org",
        "loss": None,
        "model": "/outputs/model",
    }
    assert operation.params["lr"].to_env == "LEARNING_RATE"
    assert operation.params["repo"].to_init is True
    assert operation.value("debug") is True


def test_templates_render_params_as_values_and_args() -> None:
    """`{{ x }}`, `params.x.as_arg`, flags and argFormat render; run-time globals wait."""
    container = job(spec.load(["job.yaml"], {**DATA, "lr": "0.1", "debug": "true"})).container
    assert container is not None
    assert container.image == "acme/train:adam"
    assert container.args == (
        "--lr=0.1",
        "--epochs=10",
        "--debug",
        "-b 32",
        "--data=s3://acme/mnist",
        "--layers=[64, 32]",
        "--out={{ globals.run_outputs_path }}",
    )
    assert container.env is not None
    assert container.env[0].value == "0.5"


def test_a_false_flag_renders_as_nothing() -> None:
    """An isFlag input that is false gives an empty as_arg."""
    container = job(spec.load(["job.yaml"], DATA)).container
    assert container is not None and container.args is not None
    assert container.args[2] == ""


def test_globals_render_when_given() -> None:
    """`globals=` fills `{{ globals.* }}`, in args and in init file contents alike."""
    run = job(
        spec.load(
            ["job.yaml"], DATA, globals={"run_outputs_path": "/plx/out", "run_uuid": "abc123"}
        )
    )
    assert run.container is not None and run.container.args is not None
    assert run.container.args[-1] == "--out=/plx/out"
    assert run.init is not None
    assert run.init[2].file == FileInit(
        content='{"lr": 0.01, "run": "abc123"}', filename="config.json", chmod="+x"
    )


def test_every_job_section_is_typed() -> None:
    """Init handlers, environment, volumes, sidecars and resources become their models."""
    run = job(spec.load(["job.yaml"], DATA))
    assert run.init is not None
    assert run.init[0].git == GitInit(url="https://github.com/acme/train", revision="main")
    assert run.init[0].handler == "git"
    assert run.init[1].artifacts is not None and run.init[1].connection == "s3-datasets"
    assert run.init[3].dockerfile == DockerfileInit(image="python:3.11", run=("pip install torch",))
    assert run.connections == ("s3-datasets",)
    environment = run.environment
    assert environment is not None
    assert environment.node_selector == {"pool": "gpu"}
    assert environment.service_account_name == "trainer"
    assert environment.image_pull_secrets == ("registry-creds",)
    assert environment.restart_policy == "Never"
    assert environment.security_context is not None
    assert environment.security_context.run_as_user == 1000
    assert environment.tolerations == (
        Toleration(key="gpu", operator="Exists", effect="NoSchedule"),
    )
    assert (
        environment.affinity is not None
        and "requiredDuringSchedulingIgnoredDuringExecution" in (environment.affinity.node_affinity)
    )
    assert run.volumes is not None and run.volumes[0].empty_dir == {}
    assert run.sidecars == (
        Container(name="logger", image="busybox", command=("sh", "-c", "tail -f /dev/null")),
    )
    assert run.container is not None and run.container.resources is not None
    assert run.container.resources.requests == {"cpu": "500m", "memory": "2Gi"}
    assert run.container.resources.limits == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}


def test_operation_carries_the_component_policies() -> None:
    """Termination, plugins, hooks, cache, queue and tags reach the operation."""
    operation = spec.load(["job.yaml"], DATA)
    assert operation.termination is not None
    assert (operation.termination.max_retries, operation.termination.ttl) == (2, 600)
    assert operation.termination.timeout == 7200
    assert operation.plugins is not None
    assert (operation.plugins.collect_artifacts, operation.plugins.log_level) == (False, "INFO")
    assert operation.hooks is not None and operation.hooks[0].hub_ref == "slack-notifier"
    assert operation.cache is not None and operation.cache.ttl == 3600
    assert (operation.queue, operation.tags, operation.presets) == (
        "agent-1/gpus",
        ("cnn", "gpu"),
        ("gpu-pool",),
    )


def test_presets_merge_over_the_operation_in_order() -> None:
    """-f job -f gpu: the preset's sections merge deeply, its runPatch patches the run."""
    operation = spec.load(["job.yaml", "preset-gpu.yaml"])
    assert operation.params["data"].value == "s3://acme/mnist"
    assert operation.queue == "agent-2/a100"
    assert operation.termination is not None
    assert (operation.termination.max_retries, operation.termination.ttl) == (5, 600)
    assert operation.plugins is not None and operation.plugins.collect_artifacts is True
    environment = job(operation).environment
    assert environment is not None
    assert environment.node_selector == {"pool": "gpu", "gpu": "a100"}
    assert environment.tolerations is not None
    assert [toleration.key for toleration in environment.tolerations] == ["gpu", "nvidia.com/gpu"]
    container = job(operation).container
    assert container is not None and container.resources is not None
    assert container.resources.limits == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "4"}


def test_pre_merge_preset_keeps_what_is_already_set() -> None:
    """A `patchStrategy: pre_merge` preset only adds what earlier files did not set."""
    operation = spec.load(["job.yaml", "preset-gpu.yaml", "preset-cpu.yaml"])
    assert operation.queue == "agent-2/a100"
    container = job(operation).container
    assert container is not None and container.resources is not None
    assert container.resources.limits == {
        "cpu": "2",
        "memory": "8Gi",
        "nvidia.com/gpu": "4",
        "ephemeral-storage": "10Gi",
    }


def test_replace_preset_swaps_a_whole_section() -> None:
    """`patchStrategy: replace` replaces the matrix section instead of merging into it."""
    operation = spec.load(["matrix-tuners.yaml", "preset-hyperopt.yaml"])
    assert operation.matrix is not None
    assert operation.matrix.kind == "hyperopt"


def test_service_run() -> None:
    """A service keeps its ports, replicas and flags; an image input renders into it."""
    run = spec.load(["service.yaml"]).component.run  # type: ignore[union-attr]
    assert isinstance(run, Service)
    assert (run.ports, run.replicas, run.rewrite_path, run.is_external) == ((8888,), 2, True, False)
    assert run.container is not None
    assert run.container.image == "jupyter/base-notebook:latest"
    assert run.container.args == (
        "--port={{ globals.ports[0] }}",
        "--NotebookApp.base_url={{ globals.base_url }}",
    )


def test_tfjob_replicas() -> None:
    """A tfjob has chief, ps and worker replica specs, each with its own environment."""
    operation = spec.load(["tfjob.yaml"])
    run = operation.component.run  # type: ignore[union-attr]
    assert isinstance(run, TFJob)
    assert sorted(run.replica_specs) == ["Chief", "PS", "Worker"]
    assert run.worker is not None and run.worker.replicas == 4
    assert run.worker.environment is not None
    assert run.worker.environment.restart_policy == "OnFailure"
    assert run.clean_pod_policy == "Running"
    assert run.scheduling_policy is not None and run.scheduling_policy.min_available == 3
    assert operation.termination is not None and operation.termination.ttl == 12


def test_pytorchjob_and_mpijob_replicas() -> None:
    """PyTorchJob (master, worker, elastic policy) and MPIJob (launcher, worker) load."""
    pytorch = spec.load(["pytorchjob.yaml"]).component.run  # type: ignore[union-attr]
    assert isinstance(pytorch, PyTorchJob)
    assert sorted(pytorch.replica_specs) == ["Master", "Worker"]
    assert pytorch.elastic_policy is not None and pytorch.elastic_policy.max_replicas == 4
    assert pytorch.n_proc_per_node == 8
    assert pytorch.worker is not None and pytorch.worker.container is not None
    assert pytorch.worker.container.resources is not None
    assert pytorch.worker.container.resources.requests == {"memory": "300Mi", "cpu": "1.5"}
    mpi = spec.load(["mpijob.yaml"]).component.run  # type: ignore[union-attr]
    assert isinstance(mpi, MPIJob)
    assert (mpi.slots_per_worker, sorted(mpi.replica_specs)) == (2, ["Launcher", "Worker"])
    assert mpi.worker is not None and mpi.worker.container is not None
    assert mpi.worker.container.resources is not None
    assert mpi.worker.container.resources.limits == {"cpu": "1e3", "memory": "1.5Gi"}


def test_schedule_and_path_ref() -> None:
    """A cron schedule loads; pathRef reads the component file next to the operation."""
    operation = spec.load(["schedule.yaml"])
    assert operation.schedule == CronSchedule(
        cron="0 2 * * *", start_at="2024-05-01T00:00:00+00:00", max_runs=30, depends_on_past=False
    )
    assert operation.path_ref == "components/report.yaml"
    assert operation.name == "nightly"
    assert job(operation).container == Container(image="acme/report", args=("--day=2024-05-01",))


def test_a_schedule_of_another_kind_replaces_the_old_one() -> None:
    """Presets merge sections, but a schedule of another kind replaces the previous one."""
    operation = spec.load(["schedule.yaml", "preset-interval.yaml"])
    assert operation.schedule == IntervalSchedule(
        frequency=3600, end_at="2024-12-31T00:00:00+00:00"
    )


def test_kubernetes_snake_case_keys_become_camel_case(tmp_path: Path) -> None:
    """Container and volume keys written as the Python client's (volume_mounts) are accepted."""
    path = tmp_path / "snake.yaml"
    path.write_text(
        "version: 1.1\nkind: component\nrun:\n  kind: job\n"
        "  volumes: [{name: v, config_map: {name: c}}]\n"
        "  container:\n    image: x\n    image_pull_policy: Always\n"
        "    volume_mounts: [{name: v, mountPath: /v}]\n"
    )
    run = job(spec.load([path]))
    assert run.volumes is not None and run.volumes[0].config_map == {"name": "c"}
    assert run.container is not None
    assert run.container.image_pull_policy == "Always"
    assert run.container.volume_mounts == [{"name": "v", "mountPath": "/v"}]
    assert spec.to_dict(spec.load([path]))["component"]["run"]["container"] == {
        "image": "x",
        "imagePullPolicy": "Always",
        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
    }


def test_nested_kubernetes_keys_become_camel_case_but_user_keys_stay(tmp_path: Path) -> None:
    """Keys inside plain Kubernetes data (`mount_path` in a volume mount, `host_pid`) are
    renamed as the API spells them; keys the user names (labels, resource names) are not."""
    path = tmp_path / "nested.yaml"
    path.write_text(
        "version: 1.1\nkind: component\nrun:\n  kind: job\n"
        "  volumes: [{name: v, config_map: {name: c, default_mode: 420}}]\n"
        "  container:\n    image: x\n"
        "    volume_mounts: [{name: v, mount_path: /v, read_only: true}]\n"
        "    liveness_probe: {http_get: {path: /, port: 80}, initial_delay_seconds: 5}\n"
        "    resources: {limits: {nvidia.com/gpu: 1, my_device: 2}}\n"
        "    security_context: {se_linux_options: {level: s0}}\n"
    )
    run = job(spec.load([path]))
    assert run.container is not None and run.volumes is not None
    assert run.container.volume_mounts == [{"name": "v", "mountPath": "/v", "readOnly": True}]
    assert run.container.liveness_probe == {
        "httpGet": {"path": "/", "port": 80},
        "initialDelaySeconds": 5,
    }
    assert run.volumes[0].config_map == {"name": "c", "defaultMode": 420}
    limits = spec.to_dict(spec.load([path]))["component"]["run"]["container"]["resources"]
    assert limits == {"limits": {"nvidia.com/gpu": "1", "my_device": "2"}}  # quantities


def test_single_expression_keeps_the_type_of_its_value(tmp_path: Path) -> None:
    """`replicas: "{{ n }}"` with an int input gives the int; a list param gives a list."""
    path = tmp_path / "typed.yaml"
    path.write_text(
        "version: 1.1\nkind: component\n"
        "inputs: [{name: n, type: int}, {name: cmd, type: list}]\n"
        "run:\n  kind: service\n  replicas: '{{ n }}'\n"
        "  container: {image: x, command: '{{ cmd }}'}\n"
    )
    run = spec.load([path], {"n": "3", "cmd": '["python", "serve.py"]'}).component.run  # type: ignore[union-attr]
    assert isinstance(run, Service)
    assert run.replicas == 3
    assert run.container is not None and run.container.command == ("python", "serve.py")


def test_operation_params_and_context_only(tmp_path: Path) -> None:
    """`params:` in an operation feed inputs; contextOnly ones reach templates only."""
    path = tmp_path / "op.yaml"
    path.write_text(
        "version: 1.1\nkind: operation\n"
        "params:\n  lr: {value: 0.5}\n  tag: {value: nightly, contextOnly: true}\n"
        "component:\n  inputs: [{name: lr, type: float}]\n"
        "  run: {kind: job, container: {image: x, args: ['{{ lr }}', '{{ tag }}']}}\n"
    )
    operation = spec.load([path], {"lr": "0.25"})
    assert operation.params["lr"] == Param(value=0.25)
    assert operation.params["tag"] == Param(value="nightly", context_only=True)
    assert job(operation).container == Container(image="x", args=("0.25", "nightly"))


@pytest.mark.parametrize(
    "name",
    [
        "job.yaml",
        "service.yaml",
        "tfjob.yaml",
        "pytorchjob.yaml",
        "mpijob.yaml",
        "matrix-grid.yaml",
        "matrix-random.yaml",
        "matrix-mapping.yaml",
        "matrix-tuners.yaml",
        "schedule.yaml",
        "dag.yaml",
    ],
)
def test_resolved_document_loads_back_to_the_same_operation(name: str, tmp_path: Path) -> None:
    """`to_dict` writes a Polyaxonfile: loading what it wrote gives the same operation."""
    operation = spec.load([name], DATA if name == "job.yaml" else {})
    written = tmp_path / "resolved.yaml"
    written.write_text(yaml.safe_dump(spec.to_dict(operation), sort_keys=False))
    again = spec.load([written])
    assert spec.to_dict(again) == spec.to_dict(operation)
    if name not in ("schedule.yaml", "dag.yaml"):  # those lose their pathRef/dagRef
        assert again == operation


def test_dag_operations_are_resolved() -> None:
    """Each DAG operation gets its component (dagRef or inline) with its own params."""
    dag = spec.load(["dag.yaml"]).component.run  # type: ignore[union-attr]
    assert isinstance(dag, Dag)
    assert [operation.name for operation in dag.operations] == [
        "prepare",
        "train",
        "evaluate",
        "notify",
        "report",
    ]
    prepare = dag.operation("prepare")
    assert prepare.dag_ref == "preprocess"
    assert job(prepare).container == Container(
        image="acme/prep", args=("--source=s3://acme/raw/mnist",)
    )
    train = dag.operation("train")
    assert train.params["data"] == Param(value="outputs.dataset", ref="ops.prepare")
    assert job(train).container == Container(
        image="acme/train", args=("--data={{ data }}", "--lr=0.05")
    )
    evaluate = dag.operation("evaluate")
    assert job(evaluate).container == Container(image="acme/eval", args=("--model={{ model }}",))
    notify = dag.operation("notify")
    assert (notify.hub_ref, notify.component, notify.trigger) == (
        "slack-notifier",
        None,
        "all_done",
    )
    report = dag.operation("report")
    assert report.joins is not None and report.joins[0].limit == 5
    assert dag.concurrency == 2
    assert dag.early_stopping is not None and dag.early_stopping[0].kind == "failure_early_stopping"
