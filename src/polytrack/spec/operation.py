"""Components, operations, and the `dag` run that ties operations together.

A `Component` declares what runs (`run`) and what it takes (`inputs`, `outputs`); an
`Operation` runs a component with `params`, maybe many times (`matrix`) or on a
`schedule`. A `Dag` is a run made of operations. They refer to one another, hence one
module.

`load()` returns an `Operation` resolved for launching: its component is inlined (from
`component`, `pathRef` or a DAG's `dagRef`), `runPatch` and presets are applied, `params`
holds a converted value for every input and output (defaults included), templates are
rendered where their values are known, and name/description/tags/presets/queue/namespace/
cache/termination/plugins/build/hooks/isApproved/cost are the effective ones: the
operation's own merged over its component's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from attrs import Factory, field, frozen

from polytrack.spec._fields import Name, Names, PositiveInt
from polytrack.spec.io import IO, Join, Param
from polytrack.spec.k8s import Environment, Volume
from polytrack.spec.matrix import Matrix
from polytrack.spec.policies import Cache, EarlyStopping, Hook, Plugins, Schedule, Termination
from polytrack.spec.runs import DaskCluster, Job, MPIJob, PyTorchJob, RayCluster, Service, TFJob

__all__ = ["Component", "Dag", "Operation", "Run", "Trigger", "find_cycle"]

Trigger: TypeAlias = Literal[
    "all_succeeded", "all_failed", "all_done", "one_succeeded", "one_failed", "one_done"
]


@frozen
class Dag:
    """A run made of operations, each started once the operations it depends on are done."""

    kind: Literal["dag"] = "dag"
    operations: tuple[Operation, ...] = ()
    concurrency: PositiveInt | None = None
    early_stopping: tuple[EarlyStopping, ...] | None = None
    environment: Environment | None = None
    connections: tuple[str, ...] | None = None
    volumes: tuple[Volume, ...] | None = None

    def operation(self, name: str) -> Operation:
        """The operation called `name`; raises KeyError if there is none."""
        for operation in self.operations:
            if operation.name == name:
                return operation
        raise KeyError(name)

    def upstream(self, name: str) -> frozenset[str]:
        """The operations `name` waits for: its `dependencies` and the ones its params read.

        Example:
            >>> dag.upstream("train")
            frozenset({'prepare'})
        """
        return self.operation(name).upstream

    def topological_order(self) -> list[str]:
        """Operation names, each after everything it depends on; ties in file order.

        Raises:
            ValueError: the dependencies form a cycle (`load()` never returns such a DAG).

        Example:
            >>> dag.topological_order()
            ['prepare', 'train', 'evaluate']
        """
        return [name for level in self.levels() for name in level]

    def levels(self) -> list[list[str]]:
        """Operations in waves: the first has no dependencies, each next one waits only on
        earlier waves. Everything in a wave may run at once (within `concurrency`)."""
        order = {op.name: index for index, op in enumerate(self.operations) if op.name}
        remaining = {name: set(self.upstream(name)) & set(order) for name in order}
        levels: list[list[str]] = []
        done: set[str] = set()
        while remaining:
            wave = sorted((n for n, up in remaining.items() if up <= done), key=order.__getitem__)
            if not wave:
                cycle = find_cycle({name: self.upstream(name) for name in remaining}) or []
                raise ValueError(f"the operations form a cycle: {' -> '.join(cycle)}")
            levels.append(wave)
            done.update(wave)
            for name in wave:
                del remaining[name]
        return levels


Run: TypeAlias = Job | Service | TFJob | PyTorchJob | MPIJob | DaskCluster | RayCluster | Dag


@frozen
class Component:
    """What runs (`run`), what it takes (`inputs`) and gives (`outputs`), and how."""

    version: float | None = None
    kind: Literal["component"] = "component"
    name: Name | None = None
    description: str | None = None
    tags: Names | None = None
    presets: Names | None = None
    queue: str | None = None
    namespace: str | None = None
    cache: Cache | None = None
    termination: Termination | None = None
    plugins: Plugins | None = None
    build: Any = None
    hooks: tuple[Hook, ...] | None = None
    is_approved: bool | None = None
    cost: float | None = None
    inputs: tuple[IO, ...] | None = None
    outputs: tuple[IO, ...] | None = None
    template: Any = None
    run: Run = field(kw_only=True)

    def io(self, name: str) -> IO | None:
        """The input or output called `name`, if declared."""
        for io in (*(self.inputs or ()), *(self.outputs or ())):
            if io.name == name:
                return io
        return None


@frozen
class Operation:
    """A component to run, with its params: what `polytrack.spec.load()` returns."""

    version: float | None = None
    kind: Literal["operation"] = "operation"
    name: Name | None = None
    description: str | None = None
    tags: Names | None = None
    presets: Names | None = None
    queue: str | None = None
    namespace: str | None = None
    cache: Cache | None = None
    termination: Termination | None = None
    plugins: Plugins | None = None
    build: Any = None
    hooks: tuple[Hook, ...] | None = None
    is_approved: bool | None = None
    cost: float | None = None
    template: Any = None
    params: Mapping[str, Param] = Factory(dict)
    matrix: Matrix | None = None
    schedule: Schedule | None = None
    events: tuple[Any, ...] | None = None
    joins: tuple[Join, ...] | None = None
    dependencies: tuple[str, ...] | None = None
    trigger: Trigger | None = None
    conditions: str | None = None
    skip_on_upstream_skip: bool | None = None
    hub_ref: str | None = None
    dag_ref: str | None = None
    path_ref: str | None = None
    url_ref: str | None = None
    component: Component | None = None

    @property
    def upstream(self) -> frozenset[str]:
        """The DAG operations this one waits for: `dependencies` and `ops.X` params."""
        names = set(self.dependencies or ())
        names.update(param.upstream for param in self.params.values() if param.upstream)
        return frozenset(names)

    def value(self, name: str) -> Any:
        """The value of param `name` (converted to its input's type); KeyError if unknown."""
        return self.params[name].value


def find_cycle(graph: Mapping[str, frozenset[str] | set[str]]) -> list[str] | None:
    """A cycle in `graph` (node -> the nodes it depends on), first node repeated last.

    Nodes are visited in the mapping's order, so the cycle reported is stable.

    Example:
        >>> find_cycle({"a": {"b"}, "b": {"a"}, "c": {"b"}})
        ['a', 'b', 'a']
    """
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for upstream in sorted(graph.get(node, ()), key=_position(graph)):
            if upstream not in graph:
                continue
            if state.get(upstream) == 1:
                return [*path[path.index(upstream) :], upstream]
            if upstream not in state:
                cycle = visit(upstream)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


def _position(graph: Mapping[str, Any]) -> Any:
    order = {node: index for index, node in enumerate(graph)}
    return lambda node: order.get(node, len(order))
