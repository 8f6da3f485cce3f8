"""`{{ }}` templates in a Polyaxonfile, rendered safely.

Templates are Jinja2 (as in Polyaxon) run in Jinja2's immutable sandbox, so a template can
read the values it is given but cannot reach Python internals (`''.__class__`), call
arbitrary code or change anything. What a template may name:

- each input and output by name (`{{ lr }}`; a flag prints `--name` or nothing), and
  under `params` with `.value`, `.as_arg` (`--lr=0.1`, a flag's `--name`, or nothing for
  None), `.as_str`, `.type`, `.connection`;
- `globals.*` values the caller passes (`load(..., globals={...})`).

Some values are only known when the run starts: `globals` not passed, `connections`,
`inputs`, `outputs`, `artifacts`, `init`, DAG `ops`/`dag` references, matrix params and
params read from other runs. A `{{ }}` that needs one of them is left as written, to be
rendered at run time; the rest of the string is still rendered. A name that is none of
these is an error, so a typo does not silently render as nothing. Text with `{% %}` or
`{# #}` is rendered whole, or left whole if any part of it must wait.

A string that is exactly one `{{ expression }}` keeps the type of its value: a list for a
list, and for a number or a bool a `Rendered` string that typed fields read back.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from polytrack._convert import FieldError, Rendered, plain
from polytrack.spec.iotypes import display

__all__ = ["RUNTIME_NAMES", "Context", "Deferred", "Namespace", "ParamView", "render"]

# Context names whose values exist only when the run starts (Polyaxon's contexts).
RUNTIME_NAMES = frozenset(
    {"globals", "connections", "inputs", "outputs", "artifacts", "init", "ops", "dag", "runs"}
)

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = ("{%", "{#", "{{-", "-}}")


class _Wait(Exception):
    """A template needs a value that is only known at run time."""


class Deferred(jinja2.StrictUndefined):
    """A value known only at run time: any use of it postpones the whole `{{ }}`."""

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _Wait(self._undefined_name)


# Jinja2 binds Undefined's operators and StrictUndefined's `__str__`, `__iter__`, ... to
# `Undefined._fail_with_undefined_error` itself, not by name, so the override above alone
# would leave `{{ globals.path ~ "/model" }}` an error instead of waiting.
for _name, _attribute in [*vars(jinja2.Undefined).items(), *vars(jinja2.StrictUndefined).items()]:
    if _attribute is jinja2.Undefined._fail_with_undefined_error:
        setattr(Deferred, _name, Deferred._fail_with_undefined_error)


class _Strict(jinja2.StrictUndefined):
    """An unknown attribute or key: an error that says what the namespace does have."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, Namespace):
            known = ", ".join(sorted(owner)) or "nothing"
            return f'{owner._label} has no "{self._undefined_name}" (it has {known})'
        return super()._undefined_message


class Namespace:
    """A read-only mapping templates reach with dots: `params.lr`, `globals.run_uuid`.

    Not a `Mapping` subclass, so a param named `items` or `keys` is not shadowed by a
    method. `defer` lists keys that exist but are known only at run time; with
    `defer_missing`, every key it does not hold is such a key.
    """

    def __init__(
        self,
        label: str,
        values: Mapping[str, Any],
        *,
        defer: frozenset[str] = frozenset(),
        defer_missing: bool = False,
    ) -> None:
        self._label = label
        self._values = dict(values)
        self._defer = defer
        self._defer_missing = defer_missing

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        if key in self._defer or self._defer_missing:
            return Deferred(name=f"{self._label}.{key}")
        raise KeyError(key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self._values or key in self._defer

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._values, *self._defer}))

    def __len__(self) -> int:
        return len({*self._values, *self._defer})


class ParamView:
    """What `{{ params.NAME }}` gives: the value and its renderings."""

    def __init__(
        self,
        *,
        value: Any,
        as_arg: str,
        type: str | None,
        connection: str | None,
        shown: str,
    ) -> None:
        self.value = value
        self.as_arg = as_arg
        self.as_str = shown
        self.type = type
        self.connection = connection

    def __str__(self) -> str:
        return self.as_str


class Context:
    """The names a template may use: known `values`, and names that wait for run time."""

    def __init__(
        self, values: Mapping[str, Any], *, deferred: frozenset[str] = frozenset()
    ) -> None:
        self.values = dict(values)
        self.deferred = deferred | RUNTIME_NAMES

    def names(self) -> list[str]:
        return sorted({*self.values, *self.deferred})


def render(text: str, context: Context) -> Any:
    """`text` with the `{{ }}` it can resolve rendered, the others left as written.

    Raises:
        FieldError: an unknown name, a template that does not parse, or one that fails.

    Example:
        >>> render("--lr={{ lr }} --out={{ globals.run_outputs_path }}", Context({"lr": 0.1}))
        '--lr=0.1 --out={{ globals.run_outputs_path }}'
    """
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text
    if any(marker in text for marker in _WHOLE):
        return _render_whole(text, context)
    single = _EXPRESSION.fullmatch(text) if text.count("{{") == 1 else None
    if single is not None:
        return _single(single.group(1), text, context)
    return _EXPRESSION.sub(lambda match: _fragment(match.group(1), match.group(0), context), text)


def _single(expression: str, text: str, context: Context) -> Any:
    try:
        value = _evaluate(expression, context)
    except _Wait:
        return text
    if isinstance(value, ParamView):
        value = value.value
    if value is None:
        # An input still unset (a hub component's `connection`, checked on its own):
        # rendered at run time, when the operation using it may have given it a value.
        return text
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float):
        return Rendered(display(value), value)
    if isinstance(value, Mapping | list | tuple):
        return plain(value)
    return display(value)


def _fragment(expression: str, original: str, context: Context) -> str:
    try:
        return _text(_evaluate(expression, context))
    except _Wait:
        return original


def _text(value: Any) -> str:
    if isinstance(value, ParamView | jinja2.Undefined):
        return str(value)  # a Deferred raises _Wait, other undefined values their error
    return display(value)


def _evaluate(expression: str, context: Context) -> Any:
    names = _names(expression)
    unknown = sorted(name for name in names if name not in context.values)
    unknown = [name for name in unknown if name not in context.deferred]
    if unknown:
        raise FieldError(
            f'unknown name "{unknown[0]}" in {{{{{expression}}}}} '
            f"(known: {', '.join(context.names())})"
        )
    if any(name in context.deferred and name not in context.values for name in names):
        raise _Wait(expression)
    try:
        value = _compiled(expression)(**context.values)
    except _Wait:
        raise
    except jinja2.UndefinedError as exc:
        raise FieldError(f"cannot render {{{{{expression}}}}}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise FieldError(f"invalid template {{{{{expression}}}}}: {exc.message}") from None
    except Exception as exc:
        raise FieldError(f"cannot render {{{{{expression}}}}}: {exc}") from None
    if _holds_deferred(value):
        raise _Wait(expression)
    if isinstance(value, jinja2.Undefined):
        try:
            str(value)  # raises what the undefined stands for: unknown or unsafe
        except jinja2.TemplateError as exc:
            raise FieldError(f"cannot render {{{{{expression}}}}}: {exc.message}") from None
    return value


def _holds_deferred(value: Any) -> bool:
    """Whether `value` is, or a list or mapping in it holds, a value known only at run time."""
    if isinstance(value, Mapping):
        return any(_holds_deferred(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_deferred(item) for item in value)
    return isinstance(value, Deferred)


def _render_whole(text: str, context: Context) -> str:
    try:
        template = _ENVIRONMENT.from_string(text)
        names = jinja2.meta.find_undeclared_variables(_ENVIRONMENT.parse(text))
    except jinja2.TemplateSyntaxError as exc:
        raise FieldError(f"invalid template: {exc.message}") from None
    except RecursionError:
        raise FieldError(f"invalid template: {_TOO_DEEP}") from None
    unknown = sorted(set(names) - set(context.values) - context.deferred)
    if unknown:
        raise FieldError(f'unknown name "{unknown[0]}" (known: {", ".join(context.names())})')
    if any(name in context.deferred and name not in context.values for name in names):
        return text
    try:
        return template.render(**context.values)
    except _Wait:
        return text
    except jinja2.UndefinedError as exc:
        raise FieldError(f"cannot render the template: {exc.message}") from None
    except Exception as exc:
        raise FieldError(f"cannot render the template: {exc}") from None


@functools.lru_cache(maxsize=1024)
def _names(expression: str) -> frozenset[str]:
    try:
        tree = _ENVIRONMENT.parse("{{" + expression + "}}")
        return frozenset(jinja2.meta.find_undeclared_variables(tree))
    except jinja2.TemplateSyntaxError as exc:  # TemplateAssertionError too: unknown filters
        raise FieldError(f"invalid template {{{{{expression}}}}}: {exc.message}") from None
    except RecursionError:
        raise FieldError(f"invalid template {{{{{expression}}}}}: {_TOO_DEEP}") from None


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    return _ENVIRONMENT.compile_expression(expression, undefined_to_none=False)


def _finalize(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        return value  # printing it raises what it stands for
    return _text(value)


# Jinja2 parses and compiles recursively, several frames per bracket or operator.
_TOO_DEEP = "nested too deeply (brackets, operators or attributes)"
# The longest text or list `*` may make, and the largest integer `**` may: enough for any
# argument, far below what would exhaust memory or time (`{{ 9 ** 999999999 }}`).
_MAX_REPEATED = 1_000_000
_MAX_POWER_BITS = 4_096


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with `*` and `**` bounded (its documented hook for it).

    The sandbox keeps templates from Python internals, not from one operator that asks
    for gigabytes; intercepted operators are also exempt from constant folding, which
    would otherwise compute them while compiling.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
                if repeated and len(sequence) * count > _MAX_REPEATED:
                    raise FieldError(
                        f"* would make {len(sequence) * count:,} characters or items; "
                        f"templates make at most {_MAX_REPEATED:,}"
                    )
        powers = operator == "**" and _int(left) and _int(right) and abs(left) > 1 and right > 0
        if powers and right * (abs(left).bit_length() - 1) > _MAX_POWER_BITS:
            raise FieldError(
                f"{left} ** {right} is too large; templates compute integers of at most "
                f"{_MAX_POWER_BITS:,} bits"
            )
        return super().call_binop(context, operator, left, right)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ENVIRONMENT = _Sandbox(
    undefined=_Strict, finalize=_finalize, autoescape=False, keep_trailing_newline=True
)
