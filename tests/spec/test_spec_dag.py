"""DAGs: dependencies declared and implied, cycles named, an order the launcher can follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from polytrack import spec
from polytrack.errors import SpecError
from polytrack.spec import Dag, Job, Operation, Param, find_cycle

FIXTURES = Path(__file__).parents[1] / "fixtures" / "polyaxonfiles"


def load_dag() -> Dag:
    operation = spec.load([FIXTURES / "dag.yaml"])
    assert operation.component is not None and isinstance(operation.component.run, Dag)
    return operation.component.run


def test_upstream_joins_declared_and_implied_dependencies() -> None:
    """`dependencies`, `ref: ops.X` params and `{{ ops.X... }}` values all make upstreams."""
    dag = load_dag()
    assert dag.upstream("prepare") == frozenset()
    assert dag.upstream("train") == {"prepare"}  # ref: ops.prepare
    assert dag.upstream("evaluate") == {"train"}  # dependencies and {{ ops.train... }}
    assert dag.upstream("notify") == {"evaluate"}
    assert dag.upstream("report") == {"evaluate"}


def test_topological_order_puts_each_operation_after_its_upstreams() -> None:
    """The order follows dependencies, and the file's order among independent operations."""
    dag = load_dag()
    assert dag.topological_order() == ["prepare", "train", "evaluate", "notify", "report"]
    assert dag.levels() == [["prepare"], ["train"], ["evaluate"], ["notify", "report"]]


def test_levels_group_what_can_run_at_once() -> None:
    """Independent operations share a level; joins wait for all their upstreams."""
    job = Job(container=spec.Container(image="x"))
    component = spec.Component(run=job)

    def op(name: str, *after: str) -> Operation:
        return Operation(name=name, component=component, dependencies=after or None)

    dag = Dag(operations=(op("d", "b", "c"), op("b", "a"), op("a"), op("c")))
    assert dag.levels() == [["a", "c"], ["b"], ["d"]]
    assert dag.topological_order() == ["a", "c", "b", "d"]


def test_levels_refuse_a_cycle() -> None:
    """A DAG built by hand with a cycle cannot be ordered; the error names the cycle."""
    component = spec.Component(run=Job(container=spec.Container(image="x")))
    dag = Dag(
        operations=(
            Operation(name="a", component=component, dependencies=("b",)),
            Operation(
                name="b",
                component=component,
                params={"x": Param(value="outputs.y", ref="ops.a")},
            ),
        )
    )
    with pytest.raises(ValueError, match=r"the operations form a cycle: a -> b -> a"):
        dag.topological_order()


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"a"}}, ["a", "a"]),
        ({"a": {"b"}, "b": {"a"}, "c": {"b"}}, ["a", "b", "a"]),
        ({"x": set(), "a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"missing"}}, None),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    """find_cycle gives a cycle, first node repeated, or None; unknown nodes are ignored."""
    assert find_cycle(graph) == cycle


def test_unused_components_are_validated_too(tmp_path: Path) -> None:
    """A component no operation uses is still checked, its required inputs aside."""
    path = tmp_path / "dag.yaml"
    path.write_text(
        "version: 1.1\nkind: component\nrun:\n  kind: dag\n"
        "  operations: [{name: a, dagRef: ok}]\n"
        "  components:\n"
        "    - {name: ok, run: {kind: job, container: {image: x}}}\n"
        "    - name: spare\n"
        "      inputs: [{name: lr, type: float}]\n"
        "      run: {kind: job, container: {image: x, imagePullPolicy: Often}}\n"
    )
    with pytest.raises(SpecError) as caught:
        spec.load([path])
    assert str(caught.value) == (
        f"{path}:10 run.components[1].run.container.imagePullPolicy: expected one of Always, "
        'IfNotPresent, Never, got "Often"'
    )
