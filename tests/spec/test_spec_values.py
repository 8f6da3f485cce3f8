"""Values: Kubernetes quantities, and param values converted to their input types."""

from __future__ import annotations

from typing import Any

import pytest

from polytrack._convert import FieldError, Rendered
from polytrack.spec import convert, is_quantity, parse_quantity
from polytrack.spec.iotypes import check_type, display


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "500m",
        "1.5",
        "2Gi",
        "1e3",
        "1E3",
        "+1",
        ".5",
        "5.",
        "100Ki",
        "1Ei",
        "1E",
        "3n",
        "7u",
        "1.5e-3",
        "0",
    ],
)
def test_quantities_in_the_kubernetes_grammar(text: str) -> None:
    """Decimal and binary suffixes and exponents are quantities."""
    assert is_quantity(text)


@pytest.mark.parametrize(
    "text", ["lots", "1 Gi", "1gi", "1e", "1e3m", "Gi", "1.2.3", "", "1KiB", "--1", "1e1.5"]
)
def test_not_quantities(text: str) -> None:
    """Words, spaces, wrong case, suffix after an exponent and bare suffixes are not."""
    assert not is_quantity(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "1"), (0.5, "0.5"), (1024, "1024"), ("2Gi", "2Gi"), (Rendered("2", 2), "2")],
)
def test_parse_quantity_gives_api_text(value: Any, text: str) -> None:
    """YAML numbers and strings both become the text the API takes."""
    assert parse_quantity(value) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", 'expected a quantity, got "lots"'),
        (-1, "expected a non-negative quantity, got -1"),
        ("-500m", 'expected a non-negative quantity, got "-500m"'),
        (True, "expected a quantity, got true"),
        ({"a": 1}, "expected a quantity, got a mapping"),
    ],
)
def test_parse_quantity_errors(value: Any, message: str) -> None:
    """A non-quantity or a negative one is refused with what was given."""
    with pytest.raises(FieldError) as caught:
        parse_quantity(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("type_", "value", "converted"),
    [
        ("int", "3", 3),
        ("int", 3, 3),
        ("float", "1e-3", 0.001),
        ("float", 2, 2.0),
        ("bool", "True", True),
        ("bool", "no", False),
        ("bool", False, False),
        ("str", "adam", "adam"),
        ("str", 5, "5"),
        ("dict", '{"a": 1}', {"a": 1}),
        ("dict", "{a: 1}", {"a": 1}),
        ("list", "[1, 2]", [1, 2]),
        ("path", "/data/x", "/data/x"),
        ("uri", "https://user:pw@host", "https://user:pw@host"),
        ("image", "acme/train:v1", "acme/train:v1"),
        ("s3", "s3://bucket/key", "s3://bucket/key"),
        ("gcs", "gs://bucket", "gs://bucket"),
        (
            "wasb",
            "wasbs://c@acct.blob.core.windows.net/p",
            "wasbs://c@acct.blob.core.windows.net/p",
        ),
        ("git", "https://github.com/a/b", {"url": "https://github.com/a/b"}),
        ("git", {"url": "u", "revision": "main"}, {"url": "u", "revision": "main"}),
        ("artifacts", '{"dirs": ["a"]}', {"dirs": ["a"]}),
        ("date", "2024-05-01", "2024-05-01"),
        ("datetime", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        ("metric", "0.5", 0.5),
        ("List[float]", "[1, 2.5]", [1.0, 2.5]),
        ("Dict[str, int]", '{"a": "1"}', {"a": 1}),
        ("any", {"x": [1]}, {"x": [1]}),
        (None, "anything", "anything"),
    ],
)
def test_convert_params_to_their_types(type_: str | None, value: Any, converted: Any) -> None:
    """Command-line text and YAML values both convert to the declared type."""
    assert convert(type_, value) == converted
    assert type(convert(type_, value)) is type(converted)


def test_is_list_converts_each_item() -> None:
    """`isList: true` takes a list and converts every item."""
    assert convert("float", "[1, 2]", is_list=True) == [1.0, 2.0]
    with pytest.raises(FieldError) as caught:
        convert("int", [1, "x"], is_list=True)
    assert (str(caught.value), caught.value.subpath) == ('cannot convert "x" to int', (1,))


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        ("bool", "notbool", 'cannot convert "notbool" to bool (expected true or false)'),
        ("int", "1.5", 'cannot convert "1.5" to int'),
        ("int", True, "cannot convert true to int"),
        ("float", "fast", 'cannot convert "fast" to float'),
        ("str", [1], "cannot convert a list to str"),
        ("dict", "[1]", 'cannot convert "[1]" to dict'),
        ("s3", "bucket/key", 'cannot convert "bucket/key" to s3 (expected "s3://bucket/key")'),
        ("image", "my image", 'cannot convert "my image" to image'),
        ("git", {"url": 3}, "not a valid git value: expected a string, got 3"),
        (
            "dockerfile",
            {"run": ["x"]},
            'not a valid dockerfile value: missing required field "image"',
        ),
        ("date", "May 1st", 'cannot convert "May 1st" to date (expected YYYY-MM-DD)'),
    ],
)
def test_conversion_errors_say_what_was_expected(type_: str, value: Any, message: str) -> None:
    """A value that does not convert names itself and the type."""
    with pytest.raises(FieldError) as caught:
        convert(type_, value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("float", True),
        ("List[int]", True),
        ("Dict[str, float]", True),
        ("flaot", False),
        ("Dict[int, str]", False),
        ("List[nope]", False),
    ],
)
def test_type_names(name: str, ok: bool) -> None:
    """Declared types are Polyaxon's names, List[T] or Dict[str, T]."""
    if ok:
        assert check_type(name) == name.replace(" ", "")
    else:
        with pytest.raises(FieldError):
            check_type(name)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (0.1, "0.1"), (3, "3"), ([1, "a"], '[1, "a"]'), ("x", "x")],
)
def test_display(value: Any, text: str) -> None:
    """Values print in templates as YAML/JSON spells them."""
    assert display(value) == text
