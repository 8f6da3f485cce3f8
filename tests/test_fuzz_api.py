"""The public API under Hypothesis: random keys, values, steps, params, tags and queries.

Each example either records its input faithfully (free text with lone surrogates escaped)
or is refused at the call with a `PolytrackError` and records nothing; and the home reads
back after every example. A small oracle, written from the documented rules rather than
from the code, says which outcome each input must get. Derandomized: CI tries the same
examples on every run, so a failure here is a defect to fix, never a flake.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import polytrack
from polytrack._text import escape_surrogates, has_surrogates
from polytrack.errors import InvalidInputError, QueryError
from polytrack.redact import redact_text, redact_value

pytestmark = pytest.mark.usefixtures("hot_path")

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text as callers make it: any code point, lone surrogates (from os.fsdecode) included.
any_text = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["\ud800", "x\udc80y", "loss", "a.b", "", " ", "x" * 251, "🚀", "train/loss"]
)
big_ints = (
    st.integers(min_value=-(10**330), max_value=10**330)
    | st.sampled_from([2**63, -(2**63), 2**127])
    # Built, not listed: a 5,000-digit int has no repr() for Hypothesis to print.
    | st.sampled_from([400, 5000]).map(lambda digits: -(10**digits))
)
metric_values = st.one_of(
    st.floats(),
    big_ints,
    st.booleans(),
    any_text,
    st.none(),
    st.binary(max_size=3),
    st.floats(width=32).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.lists(st.floats(), max_size=2),
)
steps = st.one_of(
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.floats(),
    st.text(max_size=3),
    st.integers(0, 10**6).map(np.int64),
)


@pytest.fixture
def homes() -> Iterator[Iterator[Path]]:
    """A fresh home per example, under one directory removed at the end."""
    with tempfile.TemporaryDirectory() as base:
        yield (Path(base) / str(n) for n in count())


# --- the oracle: the documented rules ------------------------------------------------


def _real(value: Any) -> float | None:
    """A metric value as the docs define it: a real number, not text."""
    if isinstance(value, str | bytes | bytearray):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _name_ok(key: Any, limit: int) -> bool:
    return isinstance(key, str) and 0 < len(key) <= limit and not has_surrogates(key)


def _step_ok(step: Any) -> bool:
    if step is None:
        return True
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        return False
    return -(2**63) <= int(step) < 2**63


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b) and type(a) is type(b)


# --- metrics -------------------------------------------------------------------------


@FUZZ
@given(
    calls=st.lists(
        st.tuples(
            st.dictionaries(any_text | st.integers(), metric_values, max_size=3)
            | st.none()
            | st.integers(),
            steps,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_log_metrics(homes: Iterator[Path], calls: list[tuple[Any, Any]]) -> None:
    home = next(homes)
    expected: dict[str, list[tuple[int, float]]] = {}
    last = -1
    run = polytrack.init(dir=home, capture=False)
    for metrics, step in calls:
        accepted = (
            isinstance(metrics, dict)
            and all(_name_ok(key, 250) for key in metrics)
            and all(_real(value) is not None for value in metrics.values())
            and _step_ok(step)
        )
        if not accepted:
            with pytest.raises(InvalidInputError):
                run.log_metrics(metrics, step=step)
            continue
        run.log_metrics(metrics, step=step)
        last = last + 1 if step is None else int(step)
        for key, value in metrics.items():
            expected.setdefault(key, []).append((last, _real(value)))  # type: ignore[arg-type]
    run.finish()
    (view,) = polytrack.runs(home=home)
    assert set(view.metrics) == set(expected)
    for key, points in expected.items():
        steps_read, values_read = view.history(key)
        got = sorted(zip(steps_read.tolist(), values_read.tolist(), strict=True), key=repr)
        assert len(got) == len(points)
        for (step, value), (want_step, want) in zip(got, sorted(points, key=repr), strict=True):
            assert step == want_step and _same(value, want)


# --- params and tags -------------------------------------------------------------------

param_leaves = st.one_of(st.none(), st.booleans(), big_ints, st.floats(), any_text)
param_values = st.recursive(
    param_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)


def _leaf(value: Any) -> Any:
    """The leaf as recorded, or raise ValueError where the rules refuse it."""
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, int) and not isinstance(value, bool):
        float(value)  # OverflowError past a float's range
        return value
    if isinstance(value, list):
        return [_leaf(item) for item in value]
    if isinstance(value, dict):
        raise ValueError("a mapping inside a list")
    return value


def _flatten(params: dict[Any, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if not _name_ok(key, 10**9):
            raise ValueError(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:  # secrets by name or shape are redacted (tests/test_redact.py has the rules)
            flat[f"{prefix}{key}"] = redact_value(f"{prefix}{key}", _leaf(value))
    return flat


@FUZZ
@given(
    calls=st.lists(
        st.dictionaries(any_text, param_values, max_size=4)
        | st.lists(any_text, max_size=3)
        | st.integers()
        | st.none(),
        min_size=1,
        max_size=4,
    )
)
def test_log_params_and_tags(homes: Iterator[Path], calls: list[Any]) -> None:
    home = next(homes)
    params: dict[str, Any] = {}
    tags: set[str] = set()
    run = polytrack.init(dir=home, capture=False)
    for call in calls:
        if isinstance(call, dict):
            try:
                flat = _flatten(call)
            except (ValueError, OverflowError):
                with pytest.raises(InvalidInputError):
                    run.log_params(call)
                continue
            run.log_params(call)
            params.update(flat)
        else:
            ok = isinstance(call, list) and all(
                _name_ok(tag, 256) and tag.strip() for tag in call
            )
            if not ok:
                with pytest.raises(InvalidInputError):
                    run.log_tags(call)
                continue
            run.log_tags(call)
            tags.update(redact_text(tag.strip()) for tag in call)
    run.finish()
    (view,) = polytrack.runs(home=home)
    assert set(view.tags) == tags
    assert set(view.params) == set(params)
    for key, value in params.items():
        assert _same(view.params[key], value), key


# --- queries ---------------------------------------------------------------------------

fields = st.sampled_from(
    ["params.lr", "params.name", "metrics.loss", "metrics.loss.max", "status", "name",
     "tags", "created", "`params.a b`", "params.\ud800", "metrics.", "project", "x"]
)  # fmt: skip
operators = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "~", "in", "has", "=<", ""])
literals = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats().map(repr),
    any_text.map(lambda text: repr(text)),
    st.sampled_from(["1e999", "-inf", "null", "true", "('a', 1)", "7d ago", "1" + "0" * 5000]),
)
clauses = st.builds(lambda f, o, v: f"{f} {o} {v}", fields, operators, literals)
queries = st.one_of(
    st.lists(clauses, min_size=1, max_size=3).map(" and ".join),
    st.builds(lambda c: f"not ({c}) or {c}", clauses),
    any_text,
    st.text(alphabet="()\"'`~=<>!-.,0123456789e abcdlmnoprstu", max_size=30),
)


@settings(FUZZ, max_examples=300)
@given(where=queries, order_by=st.none() | fields | any_text)
def test_queries_answer_or_raise_query_error(
    tmp_path: Path, where: str, order_by: str | None
) -> None:
    home = tmp_path / "queried"
    if not home.exists():
        with polytrack.init(
            dir=home, capture=False, params={"lr": 0.1, "name": "a", "n": 10**25}, tags=["t"]
        ) as run:
            run.log_metrics({"loss": 0.5})
    try:
        found = polytrack.runs(home=home, where=where, order_by=order_by)
    except QueryError:
        return
    assert len(found) <= 1
