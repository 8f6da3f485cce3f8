"""From a Polyaxonfile to the units `polytrack run` submits, and each unit's operation.

    plan = make_plan(["train.yaml"], {"lr": "0.1"})
    plan.kind, [unit.key for unit in plan.units]       # "matrix", ["0", "1", ...]
    operation = plan.resolve(unit, target)              # rendered with the run's globals

A plain operation is one unit; a matrix (grid, random, mapping) one unit per run of
`expand_matrix`; a DAG one unit per operation, waiting for its upstream operations.
DAG operations whose component is a `hubRef` (never fetched) are left out, with a note;
the operations after them wait for the rest. Each unit is loaded again, with the
`{{ globals.* }}` of its own run, when it is submitted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from attrs import Factory, frozen

from polytrack import spec
from polytrack.errors import LaunchError
from polytrack.launch.manifests import Target, launch_globals
from polytrack.launch.submit import Unit

__all__ = ["Plan", "make_plan", "recordable_params"]


@frozen
class Plan:
    """What one `polytrack run` submits: `units`, in order, within `concurrency`."""

    kind: Literal["single", "matrix", "dag"]
    name: str
    paths: tuple[str, ...]
    params: Mapping[str, Any]
    operation: spec.Operation  # as loaded without globals
    units: tuple[Unit, ...]
    concurrency: int | None = None
    notes: tuple[str, ...] = ()
    names: Mapping[str, str] = Factory(dict)  # unit key -> run name

    def resolve(self, unit: Unit, target: Target) -> spec.Operation:
        """`unit`'s operation, loaded again with `target`'s globals (its run id, ...).

        Raises:
            SpecError: the file changed since the plan was made and no longer loads.
        """
        if self.kind == "dag":
            dag = self.operation.component.run if self.operation.component else None
            assert isinstance(dag, spec.Dag)
            ports = _ports(dag.operation(unit.key))
            loaded = spec.load(self.paths, self.params, globals=launch_globals(target, ports=ports))
            assert loaded.component is not None and isinstance(loaded.component.run, spec.Dag)
            return loaded.component.run.operation(unit.key)
        return spec.load(
            self.paths,
            self.params,
            matrix_run=unit.params if self.kind == "matrix" else None,
            globals=launch_globals(target, ports=_ports(self.operation)),
        )

    def run_name(self, unit: Unit) -> str:
        return self.names.get(unit.key, self.name)


def make_plan(
    paths: Sequence[str | os.PathLike[str]],
    params: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    seed: int | None = None,
) -> Plan:
    """Load and check `paths` with `params`, and lay out the units to submit.

    Args:
        name: the run name (default: the operation's or component's name, else "run");
            a matrix's runs add `-<index>`, a DAG's `-<operation>`.
        seed: makes a random matrix reproducible.

    Raises:
        SpecError: the file is invalid. UnsupportedMatrixError: a matrix that needs a
            tuner (hyperband, bayes, ...). LaunchError: a schedule-less DAG inside a DAG,
            or a matrix on a DAG operation.
    """
    files = tuple(os.fspath(path) for path in paths)
    values = dict(params or {})
    operation = spec.load(files, values)
    component = operation.component
    assert component is not None  # load() inlines it or raises
    base = name or operation.name or component.name or "run"
    run = component.run
    if isinstance(run, spec.Dag):
        if operation.matrix is not None:
            raise LaunchError("a matrix over a whole dag is not supported: put it on operations")
        steps: list[Unit] = []
        notes: list[str] = []
        names: dict[str, str] = {}
        known = {op.name for op in run.operations if op.component is not None}
        for op in run.operations:
            assert op.name is not None  # the loader requires DAG operations to be named
            if op.component is None:
                notes.append(
                    f"{op.name}: left out, its component is the hubRef {op.hub_ref}, which "
                    "polytrack does not fetch"
                )
                continue
            if isinstance(op.component.run, spec.Dag):
                raise LaunchError(f"{op.name}: a dag inside a dag is not supported")
            if op.matrix is not None:
                raise LaunchError(f"{op.name}: a matrix on a dag operation is not supported")
            steps.append(Unit(key=op.name, upstream=op.upstream & known, trigger=op.trigger))
            names[op.name] = f"{base}-{op.name}"
        return Plan(
            kind="dag",
            name=base,
            paths=files,
            params=values,
            operation=operation,
            units=tuple(steps),
            concurrency=run.concurrency,
            notes=tuple(notes),
            names=names,
        )
    if operation.matrix is not None:
        runs = spec.expand_matrix(operation.matrix, seed=seed)
        width = len(str(max(len(runs) - 1, 0)))
        units = tuple(Unit(key=f"{i:0{width}d}", params=dict(p)) for i, p in enumerate(runs))
        return Plan(
            kind="matrix",
            name=base,
            paths=files,
            params=values,
            operation=operation,
            units=units,
            concurrency=getattr(operation.matrix, "concurrency", None),
            names={unit.key: f"{base}-{unit.key}" for unit in units},
        )
    return Plan(
        kind="single",
        name=base,
        paths=files,
        params=values,
        operation=operation,
        units=(Unit(key="0"),),
    )


def recordable_params(operation: spec.Operation) -> dict[str, Any]:
    """The operation's input values, as a run records them (dates and such as text)."""
    component = operation.component
    inputs = {io.name for io in (component.inputs or ())} if component else set()
    return {
        name: _recordable(param.value)
        for name, param in operation.params.items()
        if name in inputs and param.value is not None
    }


def _recordable(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _recordable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [
            json.dumps(item, default=str)
            if isinstance(item, Mapping | list | tuple)
            else _recordable(item)
            for item in value
        ]
    return str(value)


def _ports(operation: spec.Operation) -> tuple[int, ...]:
    run = operation.component.run if operation.component else None
    return tuple(run.ports or ()) if isinstance(run, spec.Service) else ()
