"""What DAG operations that ended recorded, for the params and templates that read it.

A DAG operation reads another's results as `{{ ops.train.outputs.loss }}` or as a param
`{ref: ops.train, value: outputs.loss}` (also `inputs.NAME`, `status`). Those are known
only once `train` ended: the launcher reads them from the store and passes them to
`load(..., ops={"train": {"outputs": {...}, "inputs": {...}, "status": ...}})`, which
renders with `ops_namespace` and reads params with `read_ref`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from polytrack._convert import FieldError, Rendered
from polytrack.spec.io import IO, Param
from polytrack.spec.templates import Context, Namespace, render

__all__ = ["joined_params", "ops_namespace", "read_ref"]

_MISSING = object()


def ops_namespace(ops: Mapping[str, Mapping[str, Any]]) -> Namespace:
    """`{{ ops.* }}`: the operations in `ops`; any other waits for its own run.

    Example:
        >>> ops_namespace({"train": {"outputs": {"loss": 0.1}}}).train.outputs.loss
        0.1
    """
    return Namespace(
        "ops", {name: _operation(name, values) for name, values in ops.items()}, defer_missing=True
    )


def _operation(name: str, values: Mapping[str, Any]) -> Namespace:
    parts = {
        key: Namespace(f"ops.{name}.{key}", value) if isinstance(value, Mapping) else value
        for key, value in values.items()
    }
    return Namespace(f"ops.{name}", parts)


def read_ref(param: Param, ops: Mapping[str, Mapping[str, Any]] | None) -> Param:
    """`param` with its value read from `ops` where it reads from an operation there;
    else `param` as given (its value waits, or is not one of an operation).

    Example:
        >>> read_ref(Param(ref="ops.train", value="outputs.loss"),
        ...          {"train": {"outputs": {"loss": 0.1}}}).value
        0.1
    """
    if ops is None or not param.is_ref:
        return param
    upstream = param.upstream
    if upstream is None or upstream not in ops:
        return param
    if param.ref is not None:
        found: Any = ops[upstream]
        for part in str(param.value).split("."):
            if not isinstance(found, Mapping) or part not in found:
                return param  # not recorded: the launcher says which output is missing
            found = found[part]
        return attrs.evolve(param, value=found, ref=None)
    try:
        rendered = render(param.value, Context({"ops": ops_namespace(ops)}))
    except FieldError:
        return param
    if isinstance(rendered, str) and "{{" in rendered:
        return param
    value = rendered.native if isinstance(rendered, Rendered) else rendered
    return attrs.evolve(param, value=value)


def joined_params(joined: Mapping[str, Any], declared: Sequence[IO]) -> dict[str, Param]:
    """The values `joins` gathered as given params; those no input or output takes feed
    templates only (`contextOnly`), as in Polyaxon."""
    names = {io.name for io in declared}
    return {
        name: Param(value=value, context_only=None if name in names else True)
        for name, value in joined.items()
    }
