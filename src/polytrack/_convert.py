"""The cattrs converters: journal events back from their JSON dicts; Polyaxonfile YAML.

Writing uses `attrs.asdict` (see `journal.event_to_dict`) so that `init()` does not pay
for importing cattrs; reading, where validation and clear errors matter, comes here.
The Polyaxonfile converter (`spec_converter`, second section) is generic: it knows field
types and attrs metadata, not the `polytrack.spec` models that use it.
"""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import json
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Final, Literal, Union

import attrs
import cattrs
from attrs import frozen
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from polytrack.errors import CorruptRecordError
from polytrack.models import EVENT_TYPES, Event, ParamsSet

__all__ = [
    "FieldError",
    "Parse",
    "Rendered",
    "converter",
    "describe",
    "event_from_dict",
    "got",
    "plain",
    "snake_case",
    "spec_converter",
    "structure_errors",
    "templates_now",
    "waits",
    "yaml_key",
]

converter: Final = cattrs.Converter(forbid_extra_keys=True)

# Params were validated when logged; structuring them again could only coerce them.
converter.register_structure_hook(ParamsSet, lambda d, _: ParamsSet(params=dict(d["params"])))


def event_from_dict(data: dict[str, Any]) -> Event:
    """Structure a tagged event dict; unknown types or shapes are corrupt records."""
    data = dict(data)
    cls = EVENT_TYPES.get(data.pop("type", None))
    if cls is None:
        raise CorruptRecordError(f"unknown journal event {data!r}")
    try:
        event: Event = converter.structure(data, cls)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            message = "; ".join(cattrs.transform_error(exc))
        else:
            message = str(exc)
        raise CorruptRecordError(f"malformed {cls.__name__} record: {message}") from exc
    return event


# -- The Polyaxonfile converter -------------------------------------------------------------
#
# A second Converter, apart from the journal one above: Polyaxonfiles want strict scalars
# (`replicas: "3"` is an error, not 3), camelCase keys and errors that name the YAML field,
# where the journal wants the cattrs defaults. Everything here is generic, keyed on types and
# attrs metadata, so that this module needs none of the `polytrack.spec` models (which sit
# above it) and every rule lives in this one place.


class FieldError(ValueError):
    """A value that does not fit its field. `subpath` leads from that field to the culprit."""

    def __init__(self, message: str, *, subpath: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.subpath = subpath


class Rendered(str):
    """Text that a `{{ expression }}` template rendered to, remembering the value it printed.

    A field typed `int` accepts `Rendered("3", 3)` but not the plain string "3": the value
    came from a typed param, not from a quoted number in the YAML.
    """

    native: Any

    def __new__(cls, text: str, native: Any) -> Rendered:
        self = super().__new__(cls, text)
        self.native = native
        return self


@frozen
class Parse:
    """`Annotated[T, Parse(fn)]`: `fn(raw)` structures the field or raises `FieldError`."""

    fn: Callable[[Any], Any]


def yaml_key(attribute: attrs.Attribute[Any]) -> str:
    """The YAML key of a spec field: `metadata["key"]`, else its name in camelCase."""
    key = attribute.metadata.get("key")
    if key is not None:
        return str(key)
    head, *rest = attribute.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake_case(key: str) -> str:
    """`volumeMounts` -> `volume_mounts`, `hostPID` -> `host_pid`: the Kubernetes client's names."""
    return _SNAKE_BOUNDARY.sub("_", key).lower()


# snake_case names whose camelCase has an acronym (the Kubernetes client's `host_pid`).
_CAMEL_EXCEPTIONS: Final = {
    "host_pid": "hostPID",
    "host_ipc": "hostIPC",
    "pod_ip": "podIP",
    "pod_ips": "podIPs",
    "host_ip": "hostIP",
    "host_ips": "hostIPs",
    "downward_api": "downwardAPI",
}
_SNAKE_KEY: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
# Maps whose keys are the user's (label names, resource names, file names), never renamed.
_USER_KEYED: Final = frozenset(
    {
        "labels",
        "annotations",
        "nodeSelector",
        "matchLabels",
        "data",
        "stringData",
        "binaryData",
        "limits",
        "requests",
        "capacity",
        "parameters",
        "volumeAttributes",
        "options",
    }
)


def camel_case_tree(value: Any) -> Any:
    """Nested Kubernetes data with the client's snake_case keys in the API's camelCase
    (`mount_path` -> `mountPath`), except inside maps keyed by the user (labels, ...)."""
    if isinstance(value, Mapping):
        renamed: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and _SNAKE_KEY.fullmatch(key):
                head, *rest = key.split("_")
                key = _CAMEL_EXCEPTIONS.get(key) or head + "".join(p.capitalize() for p in rest)
            renamed[key] = item if key in _USER_KEYED else camel_case_tree(item)
        return renamed
    if isinstance(value, list):
        return [camel_case_tree(item) for item in value]
    return value


def describe(value: Any) -> str:
    """A value as error messages quote it: `"lots"`, `3`, `true`, `null`, `a mapping`."""
    if isinstance(value, str):
        return json.dumps(str(value), ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def got(value: Any) -> str:
    """`describe(value)`, saying so when it is a template left for run time."""
    return describe(value) + _unresolved(value)


def plain(value: Any) -> Any:
    """`value` with every `Rendered` string turned back into a plain `str`, recursively."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def structure_errors(exc: BaseException) -> list[tuple[tuple[str | int, ...], str]]:
    """Every failure inside a spec structuring error, as (YAML path, reason) pairs.

    The path uses YAML keys (`isOptional`, not `is_optional`) and list indices; a missing
    field is reported on its parent mapping, an unknown one on itself.
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    _collect_errors(exc, (), found)
    return found


spec_converter: Final = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_TEMPLATE = "{{"
_TEMPLATES_WAIT: Final = contextvars.ContextVar("polytrack_templates_wait", default=True)


def _unresolved(value: Any) -> str:
    if isinstance(value, str) and _TEMPLATE in value:
        return " (a template that can only be rendered at run time)"
    return ""


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return str(value)
    raise FieldError(f"expected a string, got {describe(value)}")


def waits(value: Any) -> bool:
    """Whether `value` is a `{{ }}` template left for run time, in a field of another type.

    Polyaxon takes such a template for a number, a bool or an enumerated value
    (`limit: "{{ top }}"`) and checks what it renders to when the run starts; so does
    polytrack: the field keeps the text, and the run's own load, with every value known,
    renders and checks it. Not inside `templates_now()`.
    """
    return (
        isinstance(value, str)
        and not isinstance(value, Rendered)
        and _TEMPLATE in value
        and _TEMPLATES_WAIT.get()
    )


@contextlib.contextmanager
def templates_now() -> Iterator[None]:
    """Structure values that are used before any run starts (a matrix, expanded when the
    runs are planned): there, a template in a typed field is an error, not text to keep."""
    token = _TEMPLATES_WAIT.set(False)
    try:
        yield
    finally:
        _TEMPLATES_WAIT.reset(token)


def _structure_int(value: Any, _: Any) -> int:
    if waits(value):
        return typing.cast(int, str(value))
    native = value.native if isinstance(value, Rendered) else value
    if isinstance(native, int) and not isinstance(native, bool):
        return native
    raise FieldError(f"expected an integer, got {got(value)}")


def _structure_float(value: Any, _: Any) -> float:
    if waits(value):
        return typing.cast(float, str(value))
    native = value.native if isinstance(value, Rendered) else value
    if isinstance(native, int | float) and not isinstance(native, bool):
        return float(native)
    raise FieldError(f"expected a number, got {got(value)}")


def _structure_bool(value: Any, _: Any) -> bool:
    if waits(value):
        return typing.cast(bool, str(value))
    native = value.native if isinstance(value, Rendered) else value
    if isinstance(native, bool):
        return native
    raise FieldError(f"expected true or false, got {got(value)}")


def _is_literal(type_: Any) -> bool:
    return typing.get_origin(type_) is Literal


def _literal_hook(type_: Any) -> Callable[[Any, Any], Any]:
    allowed = typing.get_args(type_)

    def structure(value: Any, _: Any) -> Any:
        if waits(value):
            return str(value)
        for option in allowed:
            if type(option) is type(plain(value)) and option == value:
                return option
        names = ", ".join(str(option) for option in allowed)
        raise FieldError(f"expected one of {names}, got {got(value)}")

    return structure


def _is_parse(type_: Any) -> bool:
    return typing.get_origin(type_) is Annotated and any(
        isinstance(meta, Parse) for meta in type_.__metadata__
    )


def _parse_hook(type_: Any) -> Callable[[Any, Any], Any]:
    parse = next(meta for meta in type_.__metadata__ if isinstance(meta, Parse))
    if typing.get_origin(typing.get_args(type_)[0]) is tuple:
        return lambda value, _: parse.fn(value)  # lists parse a template item by item
    return lambda value, _: str(value) if waits(value) else parse.fn(value)


def _is_sequence(type_: Any) -> bool:
    args = typing.get_args(type_)
    return typing.get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _sequence_hook(type_: Any) -> Callable[[Any, Any], Any]:
    item_type = typing.get_args(type_)[0]

    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise FieldError(f"expected a list, got {got(value)}")
        items, errors = [], []
        for index, item in enumerate(value):
            try:
                items.append(spec_converter.structure(item, item_type))
            except Exception as exc:
                exc.__notes__ = [
                    *getattr(exc, "__notes__", []),
                    IterableValidationNote(f"Structuring item @ index {index}", index, item_type),
                ]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {type_!r}", errors, type_)
        return tuple(items)

    return structure


def _is_mapping(type_: Any) -> bool:
    return typing.get_origin(type_) in (dict, Mapping, collections.abc.Mapping)


def _mapping_hook(type_: Any) -> Callable[[Any, Any], Any]:
    value_type = typing.get_args(type_)[1]

    def structure(value: Any, _: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise FieldError(f"expected a mapping, got {got(value)}")
        items, errors = {}, []
        for key, item in value.items():
            try:
                if not isinstance(key, str):
                    raise FieldError(f"expected a string key, got {describe(key)}")
                items[str(key)] = spec_converter.structure(item, value_type)
            except Exception as exc:
                exc.__notes__ = [
                    *getattr(exc, "__notes__", []),
                    IterableValidationNote(f"Structuring value @ key {key!r}", key, value_type),
                ]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {type_!r}", errors, type_)
        return items

    return structure


def _kinds_of(type_: Any) -> dict[str, type[Any]] | None:
    """The `kind` tag of each attrs class in a union, or None if it is no such union."""
    if typing.get_origin(type_) not in (Union, types.UnionType):
        return None
    kinds: dict[str, type[Any]] = {}
    for member in typing.get_args(type_):
        if member is type(None):
            continue
        if not attrs.has(member):
            return None
        kind = attrs.fields_dict(member).get("kind")
        if kind is None or not isinstance(kind.default, str):
            return None
        kinds[kind.default] = member
    return kinds or None


def _kind_hook(type_: Any) -> Callable[[Any, Any], Any]:
    kinds = _kinds_of(type_)
    assert kinds is not None
    names = ", ".join(kinds)

    def structure(value: Any, _: Any) -> Any:
        if value is None and type(None) in typing.get_args(type_):
            return None
        if not isinstance(value, Mapping):
            raise FieldError(f"expected a mapping, got {got(value)}")
        if "kind" not in value:
            raise FieldError(f'missing required field "kind" (one of {names})')
        member = kinds.get(value["kind"]) if isinstance(value["kind"], str) else None
        if member is None:
            raise FieldError(
                f"expected one of {names}, got {describe(value['kind'])}", subpath=("kind",)
            )
        return spec_converter.structure(value, member)

    return structure


def _attrs_hook(cls: type[Any]) -> Callable[[Any, Any], Any]:
    fields = [field for field in attrs.fields(cls) if field.init]
    keys = {field.name: yaml_key(field) for field in fields}
    renames: dict[str, Any] = {name: override(rename=key) for name, key in keys.items()}
    generated = make_dict_structure_fn(
        cls,
        spec_converter,
        _cattrs_forbid_extra_keys=True,
        _cattrs_detailed_validation=True,
        **renames,
    )
    # Kubernetes objects also take the client's snake_case names (`volume_mounts`), as
    # Polyaxon does; they are renamed to the API's camelCase before structuring.
    aliases = (
        {snake_case(key): key for key in keys.values() if snake_case(key) != key}
        if getattr(cls, "__snake_case_keys__", False)
        else {}
    )

    # Fields kept as plain data (`Any`) go to the API as they are: their nested keys are
    # renamed too, or `volumeMounts: [{mount_path: ...}]` would reach the cluster as is.
    free_form = (
        {keys[field.name] for field in fields if field.type in (Any, "Any")} if aliases else set()
    )

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, Mapping):
            raise FieldError(f"expected a mapping, got {got(value)}")
        if aliases:
            renamed: dict[Any, Any] = {}
            for key, item in value.items():
                canonical = aliases.get(key, key)
                if canonical in renamed:
                    raise FieldError(
                        f'both "{canonical}" and "{key}" are given; keep one', subpath=(key,)
                    )
                renamed[canonical] = camel_case_tree(item) if canonical in free_form else item
            value = renamed
        return generated(value, cls)

    return structure


def _attrs_unstructure_hook(cls: type[Any]) -> Callable[[Any], Any]:
    # Defaults are left out to keep output short, except a tagged union's `kind`.
    renames: dict[str, Any] = {
        field.name: override(rename=yaml_key(field), omit_if_default=not _is_tag(field))
        for field in attrs.fields(cls)
        if field.init
    }
    return make_dict_unstructure_fn(cls, spec_converter, _cattrs_omit_if_default=True, **renames)


def _is_tag(field: attrs.Attribute[Any]) -> bool:
    return field.name == "kind" and isinstance(field.default, str)


def _key_of(cls: type[Any] | None, name: str) -> str:
    if cls is not None and attrs.has(cls):
        field = attrs.fields_dict(cls).get(name)
        if field is not None:
            return yaml_key(field)
    return name


def _collect_errors(
    exc: BaseException,
    path: tuple[str | int, ...],
    found: list[tuple[tuple[str | int, ...], str]],
) -> None:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        cls = exc.cl if isinstance(exc, ClassValidationError) else None
        with_notes, without_notes = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                key = _key_of(cls, note.name)
                if type(sub) is KeyError:
                    found.append((path, f'missing required field "{key}"'))
                else:
                    _collect_errors(sub, (*path, key), found)
            else:
                _collect_errors(sub, (*path, note.index), found)
        for sub in without_notes:
            _collect_errors(sub, path, found)
    elif isinstance(exc, ForbiddenExtraKeysError):
        expected = ", ".join(sorted(yaml_key(f) for f in attrs.fields(exc.cl) if f.init))
        for key in sorted(exc.extra_fields, key=str):
            found.append(((*path, key), f"unknown field (expected one of: {expected})"))
    elif isinstance(exc, FieldError):
        found.append(((*path, *exc.subpath), str(exc)))
    else:
        found.append((path, str(exc)))


spec_converter.register_structure_hook(str, _structure_str)
spec_converter.register_structure_hook(int, _structure_int)
spec_converter.register_structure_hook(float, _structure_float)
spec_converter.register_structure_hook(bool, _structure_bool)
spec_converter.register_structure_hook_func(lambda type_: type_ is Any, lambda v, _: plain(v))
spec_converter.register_structure_hook_factory(_is_literal, _literal_hook)
spec_converter.register_structure_hook_factory(_is_parse, _parse_hook)
spec_converter.register_structure_hook_factory(_is_sequence, _sequence_hook)
spec_converter.register_structure_hook_factory(_is_mapping, _mapping_hook)
spec_converter.register_structure_hook_factory(lambda t: _kinds_of(t) is not None, _kind_hook)
spec_converter.register_structure_hook_factory(attrs.has, _attrs_hook)
spec_converter.register_unstructure_hook_factory(attrs.has, _attrs_unstructure_hook)
