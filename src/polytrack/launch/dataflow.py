"""DAG data flow: what an operation reads from the runs before it, read from the store.

    values = upstream_values(home, {"train": ("a1b2c3d4", "succeeded")})
    operation = plan.resolve(unit, target, ops=values, joined=join_values(raw, home))
    conditions_hold(operation, values)        # False: the operation is skipped

An upstream operation's `outputs` are what its run recorded with `log_outputs`, its
`inputs` its params, its `status` how it ended. `joins` select runs of the store with
polytrack's where-language (`query`, `sort`, `limit`, `offset`) and gather one value of
each (`outputs.NAME`, `inputs.NAME`, `metrics.NAME`: its last value, `status`, `uuid`,
`name`) into a list param. `conditions` is a template (or bare expression) over the
operation's params and `ops`, decided when the operation is due.

Locally and on Kubernetes alike: the command line reads the upstream runs here, so a
cluster's runs count once synced or attached to this store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

from polytrack import spec
from polytrack._convert import Rendered
from polytrack.errors import LaunchError, PolytrackError, QueryError
from polytrack.models import RunInfo
from polytrack.spec.refs import ops_namespace
from polytrack.spec.templates import Context, Namespace, render
from polytrack.store import query
from polytrack.store.local import LocalStore, read_outputs

if TYPE_CHECKING:
    from polytrack.launch.manifests import Target
    from polytrack.launch.plan import Plan
    from polytrack.launch.submit import Unit

__all__ = [
    "Inflow",
    "check_refs",
    "conditions_hold",
    "dag_inflow",
    "join_values",
    "skipped_record",
    "upstream_values",
]


@frozen(eq=False)
class Inflow:
    """What a DAG operation due to run reads, and whether it runs: `operation` resolved
    with it, `ops` and `joined` to resolve it again (for another target), and `skip`,
    why it does not run (its `conditions` are false), else None."""

    operation: spec.Operation
    ops: dict[str, dict[str, Any]]
    joined: dict[str, list[Any]] | None
    skip: str | None = None
    notes: tuple[str, ...] = ()  # params left unread (not strict)


def dag_inflow(
    plan: Plan,
    unit: Unit,
    target: Target,
    *,
    home: Path,
    upstream: Mapping[str, tuple[str | None, str]],
    globals: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> Inflow:
    """Read what DAG operation `unit` waits for (`upstream`: key -> (run id, status)) and
    its joins from the store at `home`, resolve it for `target`, decide its conditions.

    Args:
        strict: a param that reads what an upstream run did not record is an error;
            else a note, the param left as written (a cluster's run whose records are
            not synced here).

    Raises:
        LaunchError: (strict) a param reads what an upstream run did not record; a join
            or the conditions cannot be evaluated. SpecError: the file no longer loads.
    """
    dag = plan.operation.component.run if plan.operation.component else None
    assert isinstance(dag, spec.Dag)
    ops = upstream_values(home, upstream)
    joined = join_values(dag.operation(unit.key), home)
    operation = plan.resolve(unit, target, globals=globals, ops=ops, joined=joined)
    problems = check_refs(operation, ops)
    if problems and strict:
        raise LaunchError(problems[0])
    skip = None
    if not conditions_hold(operation, ops):
        skip = f"conditions {operation.conditions!r} are false"
    return Inflow(operation, ops, joined, skip, tuple(problems))


def upstream_values(
    home: Path, runs: Mapping[str, tuple[str | None, str]]
) -> dict[str, dict[str, Any]]:
    """What `ops.<key>` holds for each upstream operation: `{key: (run id, status)}` in,
    `{key: {"outputs", "inputs", "status", "uuid", "name"}}` out. A skipped operation
    (no run) has its status and nothing else; a run gone from the store likewise.
    """
    values: dict[str, dict[str, Any]] = {}
    store = None
    try:
        for key, (run_id, status) in runs.items():
            entry: dict[str, Any] = {"status": status, "outputs": {}, "inputs": {}}
            if run_id is not None:
                entry["uuid"] = run_id
                if store is None:
                    store = LocalStore.open(home, create=False)
                try:
                    info = store.get(run_id)
                except PolytrackError:
                    values[key] = entry
                    continue
                entry.update(_run_values(info))
                entry["status"] = status  # as the launcher saw it end
            values[key] = entry
    finally:
        if store is not None:
            store.close()
    return values


def _run_values(info: RunInfo) -> dict[str, Any]:
    return {
        "uuid": info.id,
        "name": info.name,
        "status": info.status,
        "inputs": dict(info.params),
        "outputs": read_outputs(Path(info.path)),
    }


def join_values(operation: spec.Operation, home: Path) -> dict[str, list[Any]] | None:
    """The lists `operation`'s joins gather from the store, by param; None without joins.

    Raises:
        LaunchError: a join's query is not valid, or a value names what runs do not have.
    """
    if not operation.joins:
        return None
    gathered: dict[str, list[Any]] = {}
    with LocalStore.open(home, create=True) as store:
        for index, join in enumerate(operation.joins):
            where = _where(join.query, index)
            order_by = _where_key(join.sort.lstrip("-+")) if join.sort else None
            if order_by is not None and join.sort and join.sort.startswith("-"):
                order_by = "-" + order_by
            try:
                found = store.query(
                    where=where, order_by=order_by, limit=join.limit, offset=join.offset or 0
                )
            except QueryError:
                found = []  # a key no run has yet: nothing matches it
            except PolytrackError as exc:
                raise LaunchError(f"joins[{index}]: {exc}") from exc
            for name, param in (join.params or {}).items():
                what = str(param.value)
                gathered[name] = [_join_value(info, what, index, name) for info in found]
    return gathered


def _where(text: str | None, index: int) -> str | None:
    """A join's query in the where-language; one in Polyaxon's query syntax
    (`metrics.loss:<0.3, status:succeeded`) is translated."""
    if text is None or not text.strip():
        return None
    try:
        query.compile_where(text)
        return text
    except QueryError as exc:
        error = exc
    try:
        translated = " and ".join(_clause(part) for part in text.split(",") if part.strip())
        query.compile_where(translated)
    except (QueryError, ValueError):
        raise LaunchError(
            f"joins[{index}].query {text!r} is neither polytrack's where-language ({error}) "
            "nor Polyaxon's query syntax (field:condition, comma-separated)"
        ) from None
    return translated


def _clause(text: str) -> str:
    """One `field:condition` of Polyaxon's query syntax as a where-language condition."""
    field, colon, condition = (part.strip() for part in text.partition(":"))
    if not colon or not field:
        raise ValueError(text)
    key = _where_key(field)
    negate = condition.startswith("~")
    condition = condition.removeprefix("~").strip()
    if key == "tags":
        found = " or ".join(f"{_literal(tag)} in tags" for tag in condition.split("|"))
    elif "|" in condition:
        found = f"{key} in ({', '.join(_literal(v) for v in condition.split('|'))})"
    elif ".." in condition:
        low, _, high = condition.partition("..")
        found = f"{key} >= {_literal(low)} and {key} <= {_literal(high)}"
    else:
        operator = next((op for op in ("<=", ">=", "<", ">") if condition.startswith(op)), "==")
        found = f"{key} {operator} {_literal(condition.removeprefix(operator).strip())}"
    return f"not ({found})" if negate else f"({found})"


_KEYS = {"uuid": "id", "created_at": "created", "finished_at": "finished", "updated_at": "updated"}


def _where_key(field: str) -> str:
    if field.startswith("inputs."):
        return "params." + field.removeprefix("inputs.")
    return _KEYS.get(field, field)


def _literal(text: str) -> str:
    text = text.strip()
    try:
        float(text)
    except ValueError:
        return json.dumps(text)
    return text


def _join_value(info: RunInfo, what: str, index: int, name: str) -> Any:
    section, _, key = what.partition(".")
    if section in ("uuid", "globals") and key in ("", "uuid", "run_uuid"):
        return info.id
    if section == "name" or (section == "globals" and key in ("name", "run_name")):
        return info.name
    if section == "status":
        return info.status
    if section in ("inputs", "params") and key in info.params:
        return info.params[key]
    if section == "metrics" and key in info.metrics:
        return info.metrics[key].last
    if section == "outputs":
        outputs = read_outputs(Path(info.path))
        if key in outputs:
            return outputs[key]
    raise LaunchError(
        f"joins[{index}].params.{name}: run {info.id} has no {what} (a join reads "
        "outputs.NAME, inputs.NAME, metrics.NAME, status, uuid or name)"
    )


def check_refs(operation: spec.Operation, ops: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What `operation`'s params read that the upstream runs (ended) did not record: one
    message each; nothing when every such param was read."""
    problems = []
    for name, param in operation.params.items():
        upstream = param.upstream
        if not param.is_ref or upstream is None or upstream not in ops:
            continue
        recorded = ops[upstream]
        outputs = ", ".join(sorted(recorded.get("outputs", {}))) or "none"
        wanted = param.value if param.ref is not None else str(param.value).strip()
        problems.append(
            f"params.{name}: reads {wanted} of operation {upstream}, which its run "
            f"({recorded.get('uuid', 'none')}, {recorded.get('status')}) did not record "
            f"(its outputs: {outputs}); log it with polytrack.log_outputs"
        )
    return problems


def conditions_hold(operation: spec.Operation, ops: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether `operation.conditions` hold (no conditions: they do).

    Raises:
        LaunchError: the conditions cannot be decided (an unknown name, a value still
            unknown).
    """
    text = operation.conditions
    if text is None or (isinstance(text, str) and not text.strip()):
        return True
    text = str(text)
    if "{{" not in text and "{%" not in text:
        text = "{{ " + text + " }}"
    values: dict[str, Any] = {name: param.value for name, param in operation.params.items()}
    values["params"] = Namespace("params", values.copy())
    values["ops"] = ops_namespace(ops)
    try:
        rendered = render(text, Context(values))
    except PolytrackError as exc:
        raise LaunchError(f"conditions {operation.conditions!r}: {exc}") from exc
    except ValueError as exc:  # FieldError
        raise LaunchError(f"conditions {operation.conditions!r}: {exc}") from exc
    if isinstance(rendered, Rendered):
        return bool(rendered.native)
    if isinstance(rendered, str):
        if "{{" in rendered:
            raise LaunchError(
                f"conditions {operation.conditions!r} name values not known when the "
                "operation is due"
            )
        return rendered.strip().lower() in ("true", "1", "yes", "on")
    return bool(rendered)


def skipped_record(
    plan: Plan, unit: Unit, operation: spec.Operation | None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The params and tags recorded for DAG operation `unit` when it is skipped: those of
    `operation`, as rendered when its conditions were decided; for a trigger's skip
    (`operation` None: nothing rendered) no params, and the tags as written that are not
    templates (a template's value is unknown without the upstream runs)."""
    from polytrack.launch.plan import recordable_params

    if operation is not None:
        return recordable_params(operation), tuple(operation.tags or ())
    dag = plan.operation.component.run if plan.operation.component else None
    assert isinstance(dag, spec.Dag)
    written = dag.operation(unit.key).tags or ()
    return {}, tuple(tag for tag in written if "{{" not in tag and "{%" not in tag)
