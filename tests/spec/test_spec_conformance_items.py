"""Shapes of real Polyaxonfiles that Polyaxon 2.18 accepts and polytrack refused (issue 18).

Each fixture in `fixtures/conformance/` reduces one of them to what matters. Where
polytrack still refuses a shape (a `build:` section), the test pins the message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polytrack import spec
from polytrack.errors import SpecError
from polytrack.spec import DaskCluster, Job, RayCluster, Service

HERE = Path(__file__).parent / "fixtures" / "conformance"


def load(name: str, params: dict[str, str] | None = None, **kwargs: object) -> spec.Operation:
    return spec.load([HERE / name], params, **kwargs)  # type: ignore[arg-type]


def run_of(operation: spec.Operation) -> object:
    assert operation.component is not None
    return operation.component.run


def test_a_templated_join_limit_waits_for_run_time() -> None:
    """`limit: "{{ top }}"` is rendered and checked when the join runs, as in Polyaxon."""
    dag = run_of(load("join-limit-template.yaml"))
    assert isinstance(dag, spec.Dag)
    (join,) = dag.operation("report").joins or ()
    assert join.limit == "{{ top }}"


def test_a_templated_int_param_waits_for_run_time() -> None:
    """`value: "{{ future_context_value }}"` for an int input is not converted at check time."""
    operation = load("param-future-context.yaml")
    assert operation.params["epochs"].value == "{{ future_context_value }}"
    run = run_of(operation)
    assert isinstance(run, Job) and run.container is not None
    assert run.container.command == ("python", "train.py", "--epochs={{ epochs }}")


def test_a_templated_int_field_waits_and_renders_with_its_value() -> None:
    """`replicas: "{{ globals.replicas }}"` checks; with the global given it is the number."""
    run = run_of(load("templated-int-global.yaml"))
    assert isinstance(run, Service) and run.replicas == "{{ globals.replicas }}"
    run = run_of(load("templated-int-global.yaml", globals={"replicas": 3}))
    assert isinstance(run, Service) and run.replicas == 3


def test_a_template_over_an_unset_input_renders_at_run_time() -> None:
    """A hub component's `connections: ["{{ connection }}"]` and `globals.uuid` wait."""
    run = run_of(load("hub-connection-unset.yaml"))
    assert isinstance(run, Service) and run.container is not None
    assert run.connections == ("{{ connection }}",)
    assert run.container.args[-1] == "--name={{ globals.uuid }}"
    given = run_of(
        load(
            "hub-connection-unset.yaml",
            {"connection": "s3-logs"},
            globals={"uuid": "a1b2", "ports": [6006], "artifacts_path": "/a", "base_url": "/b"},
        )
    )
    assert isinstance(given, Service) and given.container is not None
    assert given.connections == ("s3-logs",)
    assert given.container.args == ("--logdir=/a", "--port=6006", "--path_prefix=/b", "--name=a1b2")


def test_the_quote_it_hint_only_where_yaml_made_the_value() -> None:
    """`[--epochs, 3]` gets "(quote it)"; a mapping rendered from a template does not."""
    with pytest.raises(SpecError) as caught:
        load("quote-hint.yaml")
    path = HERE / "quote-hint.yaml"
    assert str(caught.value).splitlines() == [
        f"{path}:9 run.container.command[2]: expected a string, got a mapping",
        f"{path}:10 run.container.args[1]: expected a string, got 3 (quote it)",
    ]


def test_short_form_params_and_params_as_args() -> None:
    """`params: {loss: MeanSquaredError}` is `{value: ...}`; `params.as_args` joins them."""
    operation = load("short-form-params.yaml")
    assert operation.params["loss"].value == "MeanSquaredError"
    assert operation.params["epochs"].value == 3
    run = run_of(operation)
    assert isinstance(run, Job) and run.container is not None
    assert run.container.command == ("python", "train.py", "--loss=MeanSquaredError --epochs=3")


def test_early_stopping_percent_may_be_a_float() -> None:
    matrix = load("early-stopping-percent-float.yaml").matrix
    assert matrix is not None and matrix.early_stopping is not None
    assert matrix.early_stopping[0].percent == 0.5  # type: ignore[union-attr]


def test_plugins_tmux_sandbox_and_ssh_are_read() -> None:
    plugins = load("plugins-tmux-sandbox-ssh.yaml").plugins
    assert plugins is not None
    assert (plugins.tmux, plugins.ssh, plugins.sandbox) == (True, True, {"enabled": True})


def test_an_operation_with_a_component_and_its_hub_ref_runs_the_component() -> None:
    """A compiled operation keeps the hubRef it came from beside the fetched component."""
    operation = load("component-and-hubref.yaml")
    assert operation.hub_ref == "tensorboard"
    assert isinstance(run_of(operation), Job)


def test_an_image_param_given_with_its_connection() -> None:
    """`value: {name: my-image, connection: docker-registry}` for an `image` input."""
    operation = load("image-param-connection.yaml")
    param = operation.params["destination"]
    assert (param.value, param.connection) == ("my-image", "docker-registry")
    run = run_of(operation)
    assert isinstance(run, Job) and run.container is not None
    assert run.container.command == ("echo", "my-image")


def test_a_build_section_is_refused_by_name() -> None:
    """Not "missing image": the message names build: and says what to do instead."""
    with pytest.raises(SpecError) as caught:
        load("build-section.yaml")
    assert str(caught.value) == (
        f"{HERE / 'build-section.yaml'}:3 build: polytrack does not run build: sections "
        "(Polyaxon's image build before the run, such as kaniko): build and push the image "
        "first, set it as the containers' image, and remove the section"
    )


def test_dask_and_ray_clusters_load() -> None:
    dask = run_of(load("daskcluster.yaml"))
    assert isinstance(dask, DaskCluster) and dask.worker is not None
    assert (dask.worker.replicas, dask.min_replicas, dask.max_replicas) == (2, 1, 5)
    ray = run_of(load("raycluster.yaml"))
    assert isinstance(ray, RayCluster) and ray.head is not None and ray.workers is not None
    assert ray.entrypoint == "python main.py"
    assert ray.head.ray_start_params == {"dashboard-host": "0.0.0.0"}
    assert ray.workers["small-group"].max_replicas == 4


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (
            "{kind: daskcluster, worker: {container: {image: d}}}",
            'run: missing required field "scheduler" (a daskcluster runs both)',
        ),
        (
            "{kind: daskcluster, minReplicas: 5, maxReplicas: 2, worker: {container: {image: d}},"
            " scheduler: {container: {image: d}}}",
            "run.minReplicas: minReplicas 5 is above maxReplicas 2",
        ),
        (
            "{kind: raycluster, workers: {w: {container: {image: r}}}}",
            'run: missing required field "head" (a raycluster needs its head node)',
        ),
    ],
)
def test_dask_and_ray_clusters_are_checked(tmp_path: Path, run: str, message: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(f"version: 1.1\nkind: component\nrun: {run}\n")
    with pytest.raises(SpecError) as caught:
        spec.load([path])
    assert str(caught.value) == f"{path}:3 {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: operation\nmatrix:\n  kind: grid\n  numRuns: '{{ globals.n }}'\n"
            "  params: {lr: {kind: choice, value: [1, 2]}}\n"
            "component: {inputs: [{name: lr, type: int}], run: {kind: job, container: "
            "{image: x}}}\n",
            '5 matrix.numRuns: expected an integer of at least 1, got "{{ globals.n }}" '
            "(a template that can only be rendered at run time)",
        ),
        (
            "kind: component\nrun:\n  kind: dag\n  concurrency: '{{ globals.c }}'\n"
            "  operations: [{name: a, component: {run: {kind: job, container: {image: x}}}}]\n",
            '5 run.concurrency: expected an integer of at least 1, got "{{ globals.c }}": '
            "a dag's concurrency is used when its runs are planned, before any starts",
        ),
    ],
)
def test_a_template_where_runs_are_planned_is_still_an_error(
    tmp_path: Path, text: str, message: str
) -> None:
    """A matrix and a dag's concurrency are used before any run starts: no template waits."""
    path = tmp_path / "planned.yaml"
    path.write_text("version: 1.1\n" + text)
    with pytest.raises(SpecError) as caught:
        spec.load([path])
    assert str(caught.value) == f"{path}:{message}"
