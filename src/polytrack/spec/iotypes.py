"""Input and output types, and the conversion of param values to them.

A param value arrives either as YAML (`params: {lr: {value: 0.1}}`, a default `value:`)
or as text from the command line (`-P lr=0.1`). Both go through `convert`: text is read
the way the type needs it (`true`/`false` for a bool, YAML/JSON for a dict or a list), and
the result is checked. The types are Polyaxon's: the scalars, `dict` and `list`, storage
paths (`s3`, `gcs`, `wasb`, `path`, `uri`), `image`, the init handler types (`git`,
`artifacts`, `dockerfile`, `file`, `tensorboard`), plus `List[T]` and `Dict[str, T]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import yaml

from polytrack._convert import (
    FieldError,
    Rendered,
    describe,
    plain,
    spec_converter,
    structure_errors,
)
from polytrack.spec.init import ArtifactsInit, DockerfileInit, FileInit, GitInit, TensorboardInit

__all__ = ["TYPES", "check_type", "convert", "display"]

_BOOL_WORDS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}
_GENERIC = re.compile(r"(?P<outer>List|Dict)\[(?P<inner>.+)\]")
_S3 = re.compile(r"s3a?://[^/\s]+(/\S*)?")
_GCS = re.compile(r"gs://[^/\s]+(/\S*)?")
_WASB = re.compile(r"wasbs?://[^@/\s]+@[^/\s]+(/\S*)?")


def convert(type_: str | None, value: Any, *, is_list: bool = False) -> Any:
    """`value` (YAML data or command-line text) as a value of `type_`; None stays None.

    Args:
        type_: the input's declared type; None accepts anything as is.
        value: what the Polyaxonfile or `-P` gave.
        is_list: the input takes a list of `type_` (`isList: true`).

    Raises:
        FieldError: the value does not fit; the message says what was expected.

    Example:
        >>> convert("bool", "True"), convert("float", "1e-3"), convert("int", 3, is_list=True)
        (True, 0.001, [3])
    """
    if value is None or type_ is None:
        return plain(value)
    if is_list:
        return _convert_list(type_, value)
    match = _GENERIC.fullmatch(type_.replace(" ", ""))
    if match is not None and match["outer"] == "List":
        return _convert_list(match["inner"], value)
    if match is not None:
        return _convert_dict(match["inner"], value)
    try:
        convert_one = _CONVERTERS[type_]
    except KeyError:
        raise FieldError(f'unknown type "{type_}"') from None
    if isinstance(value, Rendered):
        value = value.native
    return convert_one(value)


def check_type(value: Any) -> str:
    """An IO `type:`: one of `TYPES`, or `List[T]` / `Dict[str, T]` of them."""
    if not isinstance(value, str):
        raise FieldError(f"expected a type name, got {describe(value)}")
    name = value.replace(" ", "")
    match = _GENERIC.fullmatch(name)
    if match is not None:
        inner = match["inner"]
        if match["outer"] == "Dict":
            if not inner.startswith("str,"):
                raise FieldError(f'expected Dict[str, T], got "{value}"')
            inner = inner[len("str,") :]
        check_type(inner)
        return name
    if name not in _CONVERTERS:
        raise FieldError(f"unknown type {describe(value)} (expected one of {', '.join(TYPES)})")
    return name


def display(value: Any) -> str:
    """A value as templates print it: `true`, `0.1`, `[1, 2]`; nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(plain(value), ensure_ascii=False, default=str)
    return str(value)


def _text(value: Any, what: str) -> Any:
    """Command-line text read as YAML (so JSON too), for the structured types."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise FieldError(f"cannot convert {describe(value)} to {what}") from None


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise FieldError(f"cannot convert {describe(value)} to int") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise FieldError(f"cannot convert {describe(value)} to int")


def _to_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise FieldError(f"cannot convert {describe(value)} to float") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise FieldError(f"cannot convert {describe(value)} to float")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise FieldError(f"cannot convert {describe(value)} to bool (expected true or false)")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FieldError(f"cannot convert {describe(value)} to str")


def _to_dict(value: Any) -> dict[str, Any]:
    data = _text(value, "dict")
    if not isinstance(data, Mapping):
        raise FieldError(f"cannot convert {describe(value)} to dict")
    return plain(data)  # type: ignore[no-any-return]


def _to_list(value: Any) -> list[Any]:
    data = _text(value, "list")
    if not isinstance(data, list | tuple):
        raise FieldError(f"cannot convert {describe(value)} to list")
    return plain(data)  # type: ignore[no-any-return]


def _pattern(kind: str, pattern: re.Pattern[str], example: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and pattern.fullmatch(value):
            return str(value)
        raise FieldError(f'cannot convert {describe(value)} to {kind} (expected "{example}")')

    return check


def _no_spaces(kind: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value and not any(c.isspace() for c in value):
            return str(value)
        raise FieldError(f"cannot convert {describe(value)} to {kind}")

    return check


def _to_uri(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) <= {"user", "password", "host"} and "host" in value:
            return plain(value)
        raise FieldError("cannot convert a mapping to uri (expected user, password and host)")
    return _no_spaces("uri")(value)


def _structured(kind: str, model: type[Any], *, shorthand: str | None = None) -> Callable[..., Any]:
    """Check a dict-valued type by structuring it into its init handler model."""

    def check(value: Any) -> Any:
        data = _text(value, kind)
        if isinstance(data, str) and shorthand is not None:
            return {shorthand: data}
        if not isinstance(data, Mapping):
            raise FieldError(f"cannot convert {describe(value)} to {kind} (expected a mapping)")
        try:
            spec_converter.structure(data, model)
        except Exception as exc:
            path, reason = structure_errors(exc)[0]
            raise FieldError(f"not a valid {kind} value: {reason}", subpath=path) from None
        return plain(data)

    return check


def _to_date(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise FieldError(
            f"cannot convert {describe(value)} to date (expected YYYY-MM-DD)"
        ) from None


def _to_datetime(value: Any) -> str:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(f"cannot convert {describe(value)} to datetime (ISO 8601)") from None
    return str(value)


def _any(value: Any) -> Any:
    return plain(value)


def _convert_list(item_type: str, value: Any) -> list[Any]:
    items = _text(value, f"a list of {item_type}")
    if not isinstance(items, list | tuple):
        raise FieldError(f"cannot convert {describe(value)} to a list of {item_type}")
    converted = []
    for index, item in enumerate(items):
        try:
            converted.append(convert(item_type, item))
        except FieldError as exc:
            raise FieldError(str(exc), subpath=(index, *exc.subpath)) from None
    return converted


def _convert_dict(value_type: str, value: Any) -> dict[str, Any]:
    data = _text(value, "dict")
    if not isinstance(data, Mapping):
        raise FieldError(f"cannot convert {describe(value)} to dict")
    converted = {}
    for key, item in data.items():
        try:
            converted[str(key)] = convert(value_type[len("str,") :], item)
        except FieldError as exc:
            raise FieldError(str(exc), subpath=(key, *exc.subpath)) from None
    return converted


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "any": _any,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "str": _to_str,
    "dict": _to_dict,
    "list": _to_list,
    "path": _no_spaces("path"),
    "uri": _to_uri,
    "auth": _no_spaces("auth"),
    "image": _no_spaces("image"),
    "event": _any,
    "metric": _to_float,
    "metadata": _to_dict,
    "date": _to_date,
    "datetime": _to_datetime,
    "s3": _pattern("s3", _S3, "s3://bucket/key"),
    "gcs": _pattern("gcs", _GCS, "gs://bucket/blob"),
    "wasb": _pattern("wasb", _WASB, "wasbs://container@account.blob.core.windows.net/path"),
    "git": _structured("git", GitInit, shorthand="url"),
    "artifacts": _structured("artifacts", ArtifactsInit),
    "dockerfile": _structured("dockerfile", DockerfileInit),
    "file": _structured("file", FileInit),
    "tensorboard": _structured("tensorboard", TensorboardInit),
}

TYPES: tuple[str, ...] = tuple(_CONVERTERS)
