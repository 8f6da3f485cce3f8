"""Field types shared by the spec models: names, argument lists, positive numbers, ...

Each is `Annotated[T, Parse(fn)]`: the Polyaxonfile converter calls `fn` on the raw YAML
value, so the check and its message live next to the type, and the error lands on the
field's own line.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, TypeAlias

from polytrack._convert import FieldError, Parse, Rendered, got
from polytrack.spec.quantity import parse_quantity

__all__ = [
    "Args",
    "Cron",
    "DateTime",
    "Name",
    "Names",
    "NonNegativeInt",
    "Number",
    "PositiveInt",
    "Quantity",
]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)?(?::[A-Za-z0-9_.\-]+)?")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_FIELD = re.compile(
    r"(?:\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/\d+)?"
    r"(?:,(?:\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/\d+)?)*"
)


def _native(value: Any) -> Any:
    return value.native if isinstance(value, Rendered) else value


def parse_name(value: Any) -> str:
    """A component or operation name: `train`, `org/train:v1`; no spaces."""
    if not isinstance(value, str):
        raise FieldError(f"expected a name, got {got(value)}")
    if _NAME.fullmatch(value) is None:
        raise FieldError(
            f"expected a name of letters, digits, '-', '_' and '.' "
            f"(optionally org/name:tag), got {got(value)}"
        )
    return str(value)


def parse_args(value: Any) -> tuple[str, ...]:
    """A command or its arguments: a string is one argument, a list gives one per item.

    Kubernetes takes only strings: `[--lr, 0.1]` is an error (quote `"0.1"`), but a value
    rendered from a template (`"{{ lr }}"`) is text already.
    """
    if isinstance(value, str):
        return (str(value),)
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                # Quoting helps where YAML made a number or a bool of the text; a null,
                # a list or a mapping is no typo of a string.
                scalar = isinstance(item, bool | int | float)
                hint = " (quote it)" if scalar else ""
                raise FieldError(f"expected a string, got {got(item)}{hint}", subpath=(index,))
            items.append(str(item))
        return tuple(items)
    raise FieldError(f"expected a string or a list of strings, got {got(value)}")


def parse_names(value: Any) -> tuple[str, ...]:
    """Tags or presets: a list of strings, or one string of comma-separated names."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return parse_args(value)
    raise FieldError(f"expected a list of names, got {got(value)}")


def parse_positive_int(value: Any) -> int:
    """An integer of at least 1."""
    native = _native(value)
    if not isinstance(native, int) or isinstance(native, bool) or native < 1:
        raise FieldError(f"expected an integer of at least 1, got {got(value)}")
    return native


def parse_non_negative_int(value: Any) -> int:
    """An integer of at least 0."""
    native = _native(value)
    if not isinstance(native, int) or isinstance(native, bool) or native < 0:
        raise FieldError(f"expected an integer of at least 0, got {got(value)}")
    return native


def parse_number(value: Any) -> int | float:
    """A finite int or float, kept as written: ranges of ints stay ints."""
    native = _native(value)
    if isinstance(native, int | float) and not isinstance(native, bool):
        try:
            finite = math.isfinite(native)  # .inf and .nan would make a space endless or empty
        except OverflowError:  # an int beyond the largest float: no space can use it
            finite = False
        if finite:
            return native
        raise FieldError(f"expected a finite number, got {got(value)}")
    raise FieldError(f"expected a number, got {got(value)}")


def parse_cron(value: Any) -> str:
    """A cron expression: five fields (`0 0 * * *`), six with seconds, or `@daily` and co."""
    if not isinstance(value, str):
        raise FieldError(f"expected a cron expression, got {got(value)}")
    text = value.strip()
    if text in _CRON_MACROS:
        return text
    fields = text.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.fullmatch(part) for part in fields):
        raise FieldError(
            f'expected a cron expression like "0 0 * * *" (minute hour day month weekday), '
            f"got {got(value)}"
        )
    return text


def parse_datetime(value: Any) -> str:
    """An ISO 8601 date or date-time (`2024-05-01`, `2024-05-01T08:00:00+00:00`)."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return str(value)
    raise FieldError(f"expected an ISO 8601 date-time, got {got(value)}")


Name: TypeAlias = Annotated[str, Parse(parse_name)]
Args: TypeAlias = Annotated[tuple[str, ...], Parse(parse_args)]
Names: TypeAlias = Annotated[tuple[str, ...], Parse(parse_names)]
PositiveInt: TypeAlias = Annotated[int, Parse(parse_positive_int)]
NonNegativeInt: TypeAlias = Annotated[int, Parse(parse_non_negative_int)]
Number: TypeAlias = Annotated[int | float, Parse(parse_number)]
Cron: TypeAlias = Annotated[str, Parse(parse_cron)]
DateTime: TypeAlias = Annotated[str, Parse(parse_datetime)]
Quantity: TypeAlias = Annotated[str, Parse(parse_quantity)]
