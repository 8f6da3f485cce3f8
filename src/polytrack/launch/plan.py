"""From a Polyaxonfile to the units `polytrack run` submits, and each unit's operation.

    plan = make_plan(["train.yaml"], {"lr": "0.1"})
    plan.kind, [unit.key for unit in plan.units]       # "matrix", ["0", "1", ...]
    operation = plan.resolve(unit, target)              # rendered with the run's globals

A plain operation is one unit; a matrix (grid, random, mapping) one unit per run of
`expand_matrix`; a DAG one unit per operation, waiting for its upstream operations; a
tuner matrix (hyperband, bayes, hyperopt) a `study`: no units ahead, its `StudyPlan`
(`launch.tuner`) says how the controller picks them.
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
from polytrack.launch.tuner import TUNER_KINDS, StudyPlan, locator, plan_study

__all__ = ["Plan", "make_plan", "recordable_params"]


@frozen
class Plan:
    """What one `polytrack run` submits: `units`, in order, within `concurrency`."""

    kind: Literal["single", "matrix", "dag", "study"]
    name: str
    paths: tuple[str, ...]
    params: Mapping[str, Any]
    operation: spec.Operation  # as loaded without globals
    units: tuple[Unit, ...]
    concurrency: int | None = None
    notes: tuple[str, ...] = ()
    names: Mapping[str, str] = Factory(dict)  # unit key -> run name
    study: StudyPlan | None = None  # a tuner matrix's study (kind "study")

    def resolve(
        self,
        unit: Unit,
        target: Target,
        *,
        globals: Mapping[str, Any] | None = None,
        ops: Mapping[str, Mapping[str, Any]] | None = None,
        joined: Mapping[str, Any] | None = None,
    ) -> spec.Operation:
        """`unit`'s operation, loaded again with `target`'s globals (its run id, ...).

        `globals` replaces `launch_globals(target)` (a local run's own paths); `ops` is
        what the DAG operations `unit` waits for recorded, `joined` what its joins
        gathered (see `spec.load` and `polytrack.launch.dataflow`).

        Raises:
            SpecError: the file changed since the plan was made and no longer loads.
        """
        if self.kind == "dag":
            dag = self.operation.component.run if self.operation.component else None
            assert isinstance(dag, spec.Dag)
            ports = _ports(dag.operation(unit.key))
            loaded = spec.load(
                self.paths,
                self.params,
                globals=globals or launch_globals(target, ports=ports),
                dag_operation=unit.key,
                ops=ops,
                joined=joined,
            )
            assert loaded.component is not None and isinstance(loaded.component.run, spec.Dag)
            return loaded.component.run.operation(unit.key)
        return spec.load(
            self.paths,
            self.params,
            matrix_run=unit.params if self.kind in ("matrix", "study") else None,
            globals=globals or launch_globals(target, ports=_ports(self.operation)),
            joined=joined,
        )

    def run_name(self, unit: Unit) -> str:
        if self.kind == "study":
            return f"{self.name}-{unit.key}"
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
        SpecError: the file is invalid. UnsupportedMatrixError: a tuner matrix that
            cannot run (`plan_study` says why). LaunchError: a schedule-less DAG inside a DAG,
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
                where = f"the hubRef {op.hub_ref}" if op.hub_ref else f"at the urlRef {op.url_ref}"
                notes.append(
                    f"{op.name}: left out, its component is {where}, which polytrack does not fetch"
                )
                continue
            if isinstance(op.component.run, spec.Dag):
                raise LaunchError(f"{op.name}: a dag inside a dag is not supported")
            if op.matrix is not None:
                raise LaunchError(f"{op.name}: a matrix on a dag operation is not supported")
            steps.append(Unit(key=op.name, upstream=op.upstream & known, trigger=op.trigger))
            names[op.name] = f"{base}-{op.name}"
        if not steps:
            # Polyaxon would fetch the components and run them; polytrack, which does not,
            # has nothing to submit: saying so beats a silent success that ran nothing.
            raise LaunchError(
                "nothing to run: every operation of the dag is left out (" + "; ".join(notes) + ")"
            )
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
    if operation.matrix is not None and operation.matrix.kind in TUNER_KINDS:
        study = plan_study(operation.matrix, seed=seed, locate=locator(files))
        return Plan(
            kind="study",
            name=base,
            paths=files,
            params=values,
            operation=operation,
            units=(),
            concurrency=study.concurrency,
            study=study,
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
