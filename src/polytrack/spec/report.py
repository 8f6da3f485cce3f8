"""What `polytrack check` shows: the resolved spec as plain data, and notes about it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from polytrack._convert import spec_converter
from polytrack.errors import UnsupportedMatrixError
from polytrack.spec.loader import load
from polytrack.spec.matrix import RandomSearch, expand_matrix, matrix_param_names
from polytrack.spec.operation import Dag, Operation

__all__ = ["Report", "check", "to_dict"]


@frozen
class Report:
    """A valid Polyaxonfile: the resolved `operation`, as `document` data, and `notes`."""

    operation: Operation
    document: dict[str, Any]
    notes: tuple[str, ...]


def check(
    paths: Sequence[str | os.PathLike[str]],
    params: Mapping[str, Any] | None = None,
    *,
    globals: Mapping[str, Any] | None = None,
) -> Report:
    """Validate a Polyaxonfile and its presets; describe the result.

    Takes the arguments of `load()` and raises what it raises.

    Example:
        >>> report = check(["polyaxonfile.yaml"], {"lr": "0.1"})
        >>> report.notes
        ('valid: a job run', 'matrix grid: 6 runs over dropout, lr')
    """
    operation = load(paths, params, globals=globals)
    return Report(operation, to_dict(operation), _notes(operation))


def to_dict(operation: Operation) -> dict[str, Any]:
    """The resolved operation as YAML-ready data, keys spelled as in a Polyaxonfile.

    It is a Polyaxonfile itself: components are inlined (without their `pathRef` or
    `dagRef`), and loading it gives the same operation.

    Example:
        >>> to_dict(load(["polyaxonfile.yaml"]))["component"]["run"]["kind"]
        'job'
    """
    data = _lists(spec_converter.unstructure(operation))
    assert isinstance(data, dict)
    return data


_FIRST = ("version", "kind", "name")
_LAST = ("run", "component")


def _lists(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, all the way down, for YAML and JSON.

    Keys keep their order, except that `version`, `kind` and `name` lead and `run` and
    `component` close, as Polyaxonfiles are usually written.
    """
    if isinstance(value, Mapping):
        keys = sorted(value, key=lambda key: _rank(key, value))
        if "component" in value:
            # The component is inlined: the reference to it would make two.
            keys = [key for key in keys if key not in ("pathRef", "dagRef")]
        return {key: _lists(value[key]) for key in keys}
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    return value


def _rank(key: Any, mapping: Mapping[Any, Any]) -> tuple[int, int]:
    position = list(mapping).index(key)
    if key in _FIRST and "kind" in mapping:
        return (0, _FIRST.index(key))
    if key in _LAST and "kind" in mapping:
        return (2, position)
    return (1, position)


def _notes(operation: Operation) -> tuple[str, ...]:
    component = operation.component
    run = component.run.kind if component is not None else "unresolved"
    notes = [f"valid: a {run} run"]
    if component is not None and isinstance(component.run, Dag):
        order = " -> ".join(" + ".join(level) for level in component.run.levels())
        count = len(component.run.operations)
        notes.append(f"dag: {count} operation{'s' if count != 1 else ''}, in order {order}")
    matrix = operation.matrix
    if matrix is not None:
        names = ", ".join(sorted(matrix_param_names(matrix))) or "nothing"
        try:
            seed = matrix.seed if isinstance(matrix, RandomSearch) else None
            count = len(expand_matrix(matrix, seed=0 if seed is None else seed))
        except UnsupportedMatrixError:
            notes.append(f"matrix {matrix.kind} over {names}: a tuner picks the runs")
        else:
            notes.append(f"matrix {matrix.kind}: {count} runs over {names}")
    return tuple(notes)
