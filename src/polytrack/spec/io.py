"""Inputs and outputs of a component, and the params and joins that give them values.

An `IO` declares a name, a type and a default; a `Param` gives a value (a literal, or a
`ref` to another run's or operation's outputs, resolved later); a `Join` gathers values
from many runs. The loader converts literal params to the declared types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import attrs
from attrs import frozen

from polytrack._convert import FieldError, Parse, describe
from polytrack.spec._fields import NonNegativeInt, PositiveInt
from polytrack.spec.iotypes import check_type, convert

__all__ = ["IO", "Join", "JoinParam", "Param", "Validation"]

IOType = Annotated[str, Parse(check_type)]

# Names the template context already uses (Polyaxon's IO_NAME_BLACK_LIST).
_RESERVED = ("globals", "params", "connections")
_IO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_REF_TEMPLATE = re.compile(
    r"\s*\{\{\s*(?P<entity>ops|dag|runs)\b(?:\.(?P<name>[\w\-]+))?[^}]*\}\}\s*"
)
_REF = re.compile(r"(?P<entity>ops|dag|runs)(?:\.(?P<name>[\w\-]+))?")


@frozen
class Validation:
    """Constraints on an input's value, checked after conversion (`V1Validation`)."""

    delay: bool | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    multiple_of: float | None = None
    min_digits: int | None = None
    max_digits: int | None = None
    decimal_places: int | None = None
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    contains: Any = None
    excludes: Any = None
    options: tuple[Any, ...] | None = None
    min_items: int | None = None
    max_items: int | None = None
    keys: tuple[str, ...] | None = None
    contains_keys: tuple[str, ...] | None = None
    excludes_keys: tuple[str, ...] | None = None

    def check(self, value: Any) -> None:
        """Raise `FieldError` naming the first constraint `value` breaks."""
        if value is None:
            return
        items = list(value.values()) if isinstance(value, Mapping) else value
        for item in items if isinstance(items, list | tuple) else [value]:
            self._check_item(item)
        if isinstance(value, list | tuple | Mapping):
            if self.min_items is not None and len(value) < self.min_items:
                raise FieldError(f"expected at least {self.min_items} items, got {len(value)}")
            if self.max_items is not None and len(value) > self.max_items:
                raise FieldError(f"expected at most {self.max_items} items, got {len(value)}")
        if isinstance(value, Mapping):
            if self.keys is not None and set(value) != set(self.keys):
                raise FieldError(f"expected exactly the keys {', '.join(self.keys)}")
            missing = [key for key in self.contains_keys or () if key not in value]
            if missing:
                raise FieldError(f"missing the keys {', '.join(missing)}")
            present = [key for key in self.excludes_keys or () if key in value]
            if present:
                raise FieldError(f"must not have the keys {', '.join(present)}")

    def _check_item(self, item: Any) -> None:
        shown = describe(item)
        if isinstance(item, int | float) and not isinstance(item, bool):
            if self.gt is not None and not item > self.gt:
                raise FieldError(f"expected a value greater than {self.gt:g}, got {shown}")
            if self.ge is not None and not item >= self.ge:
                raise FieldError(f"expected a value of at least {self.ge:g}, got {shown}")
            if self.lt is not None and not item < self.lt:
                raise FieldError(f"expected a value less than {self.lt:g}, got {shown}")
            if self.le is not None and not item <= self.le:
                raise FieldError(f"expected a value of at most {self.le:g}, got {shown}")
            if self.multiple_of is not None and item % self.multiple_of != 0:
                raise FieldError(f"expected a multiple of {self.multiple_of:g}, got {shown}")
            digits = str(item).lstrip("-").replace(".", "")
            if self.min_digits is not None and len(digits) < self.min_digits:
                raise FieldError(f"expected at least {self.min_digits} digits, got {shown}")
            if self.max_digits is not None and len(digits) > self.max_digits:
                raise FieldError(f"expected at most {self.max_digits} digits, got {shown}")
            decimals = str(item).partition(".")[2]
            if self.decimal_places is not None and len(decimals) > self.decimal_places:
                raise FieldError(
                    f"expected at most {self.decimal_places} decimal places, got {shown}"
                )
        if isinstance(item, str):
            if self.regex is not None and re.match(self.regex, item) is None:
                raise FieldError(f'expected a value matching "{self.regex}", got {shown}')
            if self.min_length is not None and len(item) < self.min_length:
                raise FieldError(f"expected at least {self.min_length} characters, got {shown}")
            if self.max_length is not None and len(item) > self.max_length:
                raise FieldError(f"expected at most {self.max_length} characters, got {shown}")
        if self.options is not None and item not in self.options:
            allowed = ", ".join(describe(option) for option in self.options)
            raise FieldError(f"expected one of {allowed}, got {shown}")
        if self.contains is not None and not _contains(item, self.contains):
            raise FieldError(f"expected a value containing {describe(self.contains)}, got {shown}")
        if self.excludes is not None and _contains(item, self.excludes):
            raise FieldError(f"expected a value without {describe(self.excludes)}, got {shown}")


def _contains(container: Any, part: Any) -> bool:
    try:
        return bool(part in container)
    except TypeError:
        return False


@frozen
class IO:
    """One input or output: its name, type, default value and how it reaches the run."""

    name: str
    type: IOType | None = None
    description: str | None = None
    value: Any = None
    is_optional: bool = False
    is_list: bool = False
    is_flag: bool = False
    arg_format: str | None = None
    connection: str | None = None
    to_init: bool | None = None
    to_env: str | None = None
    validation: Validation | None = None
    delay_validation: bool | None = None
    options: tuple[Any, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if self.name in _RESERVED:
            raise FieldError(
                f"{describe(self.name)} is taken by the template context "
                f"({', '.join(_RESERVED)}); choose another name",
                subpath=("name",),
            )
        if _IO_NAME.fullmatch(self.name) is None:
            raise FieldError(
                f"expected a name of letters, digits, '_' and '-', got {describe(self.name)}",
                subpath=("name",),
            )
        if self.is_flag and self.type != "bool":
            raise FieldError(
                f"isFlag needs type bool, got {describe(self.type)}", subpath=("isFlag",)
            )
        if self.value is None or (isinstance(self.value, str) and "{{" in self.value):
            return
        if not self.is_optional:
            raise FieldError(
                "a default value makes sense only for an optional input: "
                "add isOptional: true or remove the value",
                subpath=("value",),
            )
        try:
            self.validate(convert(self.type, self.value, is_list=self.is_list))
        except FieldError as exc:
            raise FieldError(str(exc), subpath=("value", *exc.subpath)) from None

    @property
    def checks(self) -> Validation | None:
        """The constraints on the value: `validation`, with the deprecated `options` folded in."""
        if self.options is None:
            return self.validation
        return attrs.evolve(self.validation or Validation(), options=self.options)

    def delayed(self, *, default: bool) -> bool:
        """Whether the value may stay unknown until run time; outputs do by default."""
        if self.validation is not None and self.validation.delay is not None:
            return self.validation.delay
        return default if self.delay_validation is None else self.delay_validation

    def validate(self, value: Any) -> Any:
        """`value`, after checking it against the constraints; raises `FieldError`."""
        checks = self.checks
        if checks is not None:
            checks.check(value)
        return value


@frozen
class Param:
    """A value for an input or output: a literal `value`, or a `ref` to read it from.

    `ref: ops.train` with `value: outputs.loss` reads another operation's output; so does
    a value written as a template, `{{ ops.train.outputs.loss }}`. `contextOnly` params
    feed templates without matching an input.
    """

    value: Any = None
    ref: str | None = None
    context_only: bool | None = None
    connection: str | None = None
    to_init: bool | None = None
    to_env: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.ref is not None and not isinstance(self.value, str):
            raise FieldError(
                f"with a ref, the value names what to read (like outputs.loss), "
                f"got {describe(self.value)}",
                subpath=("value",),
            )
        if self.ref is not None and _REF.fullmatch(self.ref) is None:
            raise FieldError(
                f"expected a ref like ops.NAME, runs.UUID or dag, got {describe(self.ref)}",
                subpath=("ref",),
            )

    @property
    def is_ref(self) -> bool:
        """Whether the value is only known once another run or operation has produced it."""
        return self.ref is not None or (
            isinstance(self.value, str) and _REF_TEMPLATE.fullmatch(self.value) is not None
        )

    @property
    def upstream(self) -> str | None:
        """The DAG operation this param reads from (`ops.NAME` refs), else None."""
        match = _REF.fullmatch(self.ref) if self.ref is not None else None
        if match is None and isinstance(self.value, str):
            match = _REF_TEMPLATE.fullmatch(self.value)
        if match is None or match["entity"] != "ops":
            return None
        return match["name"]


@frozen
class JoinParam:
    """A value gathered by a join: `value` names what to read from each matching run."""

    value: Any
    context_only: bool | None = None
    connection: str | None = None
    to_init: bool | None = None
    to_env: str | None = None


@frozen
class Join:
    """Runs selected by a `query` whose values feed list inputs (`params`)."""

    query: str
    sort: str | None = None
    limit: PositiveInt | None = None
    offset: NonNegativeInt | None = None
    params: Mapping[str, JoinParam] | None = None
