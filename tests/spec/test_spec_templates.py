"""`{{ }}` templates: rendered in a sandbox, strict about names, patient with run-time values."""

from __future__ import annotations

from typing import Any

import pytest

from polytrack._convert import FieldError, Rendered
from polytrack.spec.templates import Context, Namespace, ParamView, render


def context(**values: Any) -> Context:
    views = {
        name: ParamView(
            value=value, as_arg=f"--{name}={value}", type=None, connection=None, shown=str(value)
        )
        for name, value in values.items()
    }
    return Context({**values, "params": Namespace("params", views)})


def test_text_without_templates_is_returned_as_is() -> None:
    """Plain text, even with braces, is untouched."""
    assert render("echo {a} }}", context()) == "echo {a} }}"


def test_expressions_render_inside_text() -> None:
    """Each `{{ }}` in a string renders; numbers and bools print as in YAML."""
    rendered = render(
        "--lr={{ lr }} --debug={{ debug }} --n={{ n * 2 }}", context(lr=0.1, debug=True, n=3)
    )
    assert rendered == "--lr=0.1 --debug=true --n=6"


def test_param_views_give_value_and_as_arg() -> None:
    """`params.x.value` and `params.x.as_arg` reach the param's renderings."""
    assert render("{{ params.lr.as_arg }} {{ params.lr.value }}", context(lr=0.5)) == "--lr=0.5 0.5"


def test_a_lone_expression_keeps_its_value_type() -> None:
    """A string that is one expression gives its value: a Rendered number, a list, text."""
    number = render("{{ n }}", context(n=3))
    assert isinstance(number, Rendered) and number == "3" and number.native == 3
    assert render("{{ items }}", context(items=[1, 2])) == [1, 2]
    assert render("{{ name }}", context(name="adam")) == "adam"


def test_an_unset_input_waits_for_run_time() -> None:
    """An input without a value (a hub component's connection) leaves its template alone."""
    assert render("{{ missing }}", context(missing=None)) == "{{ missing }}"


def test_run_time_values_are_left_as_written() -> None:
    """globals, connections, ops and the like wait for the run; the rest still renders."""
    text = "{{ lr }} {{ globals.run_uuid }} {{ connections['s3'].url }} {{ ops.a.outputs.x }}"
    assert render(text, context(lr=1)) == (
        "1 {{ globals.run_uuid }} {{ connections['s3'].url }} {{ ops.a.outputs.x }}"
    )


def test_given_globals_render_and_missing_ones_wait() -> None:
    """With some globals given, those render and the others stay as written."""
    ctx = Context({"globals": Namespace("globals", {"uuid": "abc"}, defer_missing=True)})
    assert render("{{ globals.uuid }}/{{ globals.run_outputs_path }}", ctx) == (
        "abc/{{ globals.run_outputs_path }}"
    )


@pytest.mark.parametrize(
    "text",
    [
        "{{ globals.path ~ '/model' }}",
        "{{ globals.path + '/model' }}",
        "{{ globals.path | upper }}",
        "{{ [globals.path, 1] }}",
        "{{ {'out': globals.path} }}",
        "{% if globals.path %}x{% endif %}",
    ],
)
def test_a_run_time_value_waits_whatever_uses_it(text: str) -> None:
    """An operator, filter, statement or list using a run-time value waits, not fails."""
    ctx = Context({"globals": Namespace("globals", {"uuid": "abc"}, defer_missing=True)})
    assert render(text, ctx) == text


def test_deferred_params_wait_too() -> None:
    """A param known only later (a ref, a matrix value) waits, under its name or params."""
    ctx = Context(
        {"params": Namespace("params", {}, defer=frozenset({"lr"}))}, deferred=frozenset({"lr"})
    )
    assert render("{{ lr }} {{ params.lr.as_arg }}", ctx) == "{{ lr }} {{ params.lr.as_arg }}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{{ lrr }}",
            'unknown name "lrr" in {{ lrr }} (known: artifacts, connections, dag, '
            "globals, init, inputs, lr, ops, outputs, params, runs)",
        ),
        ("{{ params.lrr }}", 'cannot render {{ params.lrr }}: params has no "lrr" (it has lr)'),
        (
            "{{ lr.__class__ }}",
            "cannot render {{ lr.__class__ }}: access to attribute "
            "'__class__' of 'float' object is unsafe.",
        ),
        (
            "{{ lr | nosuchfilter }}",
            "invalid template {{ lr | nosuchfilter }}: No filter named 'nosuchfilter'.",
        ),
        ("{{ lr ) }}", "invalid template {{ lr ) }}: unexpected ')'"),
    ],
)
def test_bad_templates_are_errors(text: str, message: str) -> None:
    """Unknown names, unsafe attributes and syntax errors raise with the expression named."""
    with pytest.raises(FieldError) as caught:
        render(text, context(lr=0.1))
    assert str(caught.value) == message


def test_sandbox_refuses_to_mutate() -> None:
    """The immutable sandbox cannot change values through their methods."""
    with pytest.raises(FieldError, match="cannot render"):
        render("{{ items.append(3) }}", context(items=[1, 2]))


def test_statements_render_the_whole_text() -> None:
    """`{% %}` blocks render the whole string; filters and conditions work."""
    text = "{% if debug %}--verbose {% endif %}--lr={{ lr | round(2) }}"
    assert render(text, context(debug=True, lr=0.123)) == "--verbose --lr=0.12"


def test_statements_wait_whole_when_a_value_waits() -> None:
    """A `{% %}` text that needs a run-time value is left whole."""
    text = "{% if globals.debug %}-v{% endif %} {{ lr }}"
    assert render(text, context(lr=1)) == text
