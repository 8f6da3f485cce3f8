"""Bad input at the API: recorded faithfully, or refused at the call with a clear error.

Three outcomes only, whatever comes in: the value is recorded as given (lone surrogates in
free text escaped), or the call raises an `InvalidInputError` naming the argument and
records nothing; and in both cases the home stays readable by every reader. The C hot path
and the pure-Python one accept and refuse exactly the same inputs: one table runs on both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack import run as run_module
from polytrack.errors import InvalidInputError, InvalidMetricError, QueryError
from polytrack.store import writer as writer_module

pytestmark = pytest.mark.usefixtures("hot_path")


def _cyclic_dict() -> dict[str, Any]:
    looped: dict[str, Any] = {"lr": 0.1}
    looped["self"] = looped
    return looped


def _cyclic_list() -> dict[str, Any]:
    looped: list[Any] = [1]
    looped.append(looped)
    return {"layers": looped}


def _deep(levels: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    node = top
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return top


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


# (id, metrics, step) -> the error class, or None where the call is accepted. Every row is
# tried on a key the run knows already (the hot path's table of key ids) and on a new one.
METRIC_CALLS: list[tuple[str, Any, Any, type[Exception] | None]] = [
    ("float", 0.5, None, None),
    ("int", 3, None, None),
    ("bool as number", True, None, None),
    ("numpy float32", np.float32(0.25), None, None),
    ("numpy int64", np.int64(7), None, None),
    ("0-d array", np.array(1.5), None, None),
    ("decimal", Decimal("0.5"), None, None),
    ("fraction", Fraction(1, 4), None, None),
    ("nan", math.nan, None, None),
    ("inf", math.inf, None, None),
    ("int past a float", 10**400, None, InvalidMetricError),
    ("int of 5,000 digits", 10**5000, None, InvalidMetricError),
    ("text", "0.5", None, InvalidMetricError),
    ("bytes", b"1", None, InvalidMetricError),
    ("None", None, None, InvalidMetricError),
    ("complex", 1j, None, InvalidMetricError),
    ("list", [1.0], None, InvalidMetricError),
    ("bad repr", _BadRepr(), None, InvalidMetricError),
    ("step numpy int", 1.0, np.int64(5), None),
    ("step at the 64-bit floor", 1.0, -(2**63), None),
    ("step True", 1.0, True, InvalidInputError),
    ("step False", 1.0, False, InvalidInputError),
    ("step float", 1.0, 2.0, InvalidInputError),
    ("step text", 1.0, "3", InvalidInputError),
    ("step past 64 bits", 1.0, 2**63, InvalidInputError),
    ("step of 5,000 digits", 1.0, 10**5000, InvalidInputError),
]


@pytest.mark.parametrize("known_key", [True, False], ids=["known key", "new key"])
@pytest.mark.parametrize(
    ("value", "step", "error"),
    [row[1:] for row in METRIC_CALLS],
    ids=[row[0] for row in METRIC_CALLS],
)
def test_metric_values_and_steps(
    home: Path, known_key: bool, value: Any, step: Any, error: type[Exception] | None
) -> None:
    """Both hot paths take the same values and steps, and refuse the same, recording none
    of a refused call: not its value, not its key, not its step."""
    run = polytrack.init(dir=home, capture=False)
    key = "m" if known_key else "fresh"
    run.log_metrics({"m": 1.0, "other": 2.0}, step=0)
    run.log_metrics({"m": 1.0}, step=1)  # a single known key: the one-point fast path
    calls: list[Callable[[], None]] = [
        lambda: run.log_metrics({key: value}, step=step),
        lambda: run.log_metrics({key: value, "other": 1.0}, step=step),  # a row
    ]
    for call in calls:
        if error is None:
            call()
        else:
            with pytest.raises(error) as raised:
                call()
            assert repr(key) in str(raised.value) or "step" in str(raised.value)
    run.finish()
    (view,) = polytrack.runs(home=home)
    steps, values = view.history(key)
    if error is None:
        assert len(values) == (4 if known_key else 2)
        expected = float(value.item() if isinstance(value, np.ndarray) else value)
        last = values[steps == (2 if step is None else int(step))][-1]  # sorted by step
        assert last == expected or (math.isnan(expected) and math.isnan(last))
    else:
        assert len(values) == (2 if known_key else 0)  # nothing of the refused calls
        assert view.history("other")[1].tolist() == [2.0]
        assert ("fresh" in view.metrics) is False


@pytest.mark.parametrize(
    "metrics",
    [None, 12, "loss", ["loss", 1.0], [("loss", 1.0)], {1: 1.0}, {"": 1.0}, {"x" * 251: 1.0}],
    ids=["None", "int", "str", "list", "pairs", "int key", "empty key", "long key"],
)
def test_metrics_that_are_not_a_mapping_of_names(home: Path, metrics: Any) -> None:
    """Refused with InvalidMetricError on both paths, never a bare TypeError."""
    with polytrack.init(dir=home, capture=False) as run:
        run.log_metrics({"loss": 1.0})
        with pytest.raises(InvalidMetricError):
            run.log_metrics(metrics)
    (view,) = polytrack.runs(home=home)
    assert list(view.metrics) == ["loss"]


@pytest.mark.parametrize("key", ["\ud800", "x\udc80y", "loss/\udfff"])
def test_a_lone_surrogate_in_a_metric_key_is_refused(home: Path, key: str) -> None:
    with polytrack.init(dir=home, capture=False) as run:
        with pytest.raises(InvalidMetricError, match="lone surrogate"):
            run.log_metrics({"ok": 1.0, key: 2.0})
        run.log_metrics({"ok": 3.0})
    (view,) = polytrack.runs(home=home)
    assert view.history("ok")[1].tolist() == [3.0]


def test_a_call_over_the_key_cap_records_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three new keys where two fit: the call raises, and neither the two that fit nor any
    value of the call is recorded; keys that fit still work afterwards."""
    monkeypatch.setattr(writer_module, "MAX_KEYS", 5)
    with polytrack.init(dir=home, capture=False) as run:
        run.log_metrics({"a": 1.0, "b": 1.0, "c": 1.0}, step=0)
        with pytest.raises(InvalidMetricError, match="at most 5 metric keys"):
            run.log_metrics({"a": 2.0, "d": 2.0, "e": 2.0, "f": 2.0}, step=1)
        run.log_metrics({"d": 3.0, "e": 3.0}, step=2)
        with pytest.raises(InvalidMetricError, match="at most 5"):
            run.log_metric("g", 4.0, step=3)
    (view,) = polytrack.runs(home=home)
    assert sorted(view.metrics) == ["a", "b", "c", "d", "e"]
    assert view.history("a")[1].tolist() == [1.0]  # the refused call's a=2.0 is not there
    assert view.history("d")[0].tolist() == [2]


# --- params, tags, names, notes ------------------------------------------------------

REFUSED_INIT: list[tuple[str, dict[str, Any], str]] = [
    ("cyclic dict", {"params": _cyclic_dict()}, "cycle"),
    ("cyclic list", {"params": _cyclic_list()}, "cycle"),
    ("nesting 5,000 deep", {"params": _deep(5000)}, "deeper than"),
    ("int past a float", {"params": {"n": 10**400}}, "too large"),
    ("negative int past a float", {"params": {"n": -(10**400)}}, "too large"),
    ("int of 5,000 digits", {"params": {"n": 10**5000}}, "5001 digits"),
    ("int in a list past a float", {"params": {"n": [1, 10**400]}}, r"n\[1\]"),
    ("surrogate param key", {"params": {"\ud800": 1}}, "lone surrogate"),
    ("surrogate nested key", {"params": {"net": {"x\udc80": 1}}}, "lone surrogate"),
    ("tags an int", {"tags": 5}, "tags must be"),
    ("tags a mapping", {"tags": {"a": 1}}, "tags must be"),
    ("a tag None", {"tags": ["ok", None]}, "tags must be"),
    ("surrogate tag", {"tags": ["\ud800"]}, "lone surrogate"),
    ("surrogate name", {"name": "run-\udc80"}, "lone surrogate"),
    ("surrogate project", {"project": "\ud800"}, "lone surrogate"),
    ("notes an int", {"notes": 5}, "notes must be"),
]


@pytest.mark.parametrize(
    ("kwargs", "match"), [row[1:] for row in REFUSED_INIT], ids=[row[0] for row in REFUSED_INIT]
)
def test_init_refuses_what_cannot_be_recorded(
    home: Path, kwargs: dict[str, Any], match: str
) -> None:
    """A clear InvalidInputError at the call (no RecursionError, TypeError, ValueError),
    and no run is started."""
    with pytest.raises(InvalidInputError, match=match):
        polytrack.init(dir=home, capture=False, **kwargs)
    assert polytrack.current_run() is None
    assert polytrack.runs(home=home) == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda run: run.log_params(_cyclic_dict()), "cycle"),
        (lambda run: run.log_params(_deep(5000)), "deeper than"),
        (lambda run: run.log_params({"ok": 1, "n": 10**5000}), "too large"),
        (lambda run: run.log_params({"ok": 1, "\udc80": 1}), "lone surrogate"),
        (lambda run: run.log_tags(None), "tags must be"),
        (lambda run: run.log_tags(12), "tags must be"),
        (lambda run: run.log_tags(["ok", "\ud800"]), "lone surrogate"),
        (lambda run: run.log_outputs(o=_cyclic_dict()), "cycle"),
        (lambda run: run.log_outputs(ok=1, o=10**400), "too large"),
    ],
    ids=[
        "params cyclic",
        "params deep",
        "params huge int",
        "params surrogate key",
        "tags None",
        "tags int",
        "tags surrogate",
        "outputs cyclic",
        "outputs huge int",
    ],
)
def test_log_calls_refuse_whole(home: Path, call: Callable[[Any], None], match: str) -> None:
    """A refused call records nothing of itself; the run goes on and reads back."""
    run = polytrack.init(dir=home, capture=False, params={"lr": 0.1}, tags=["a"])
    with run, pytest.raises(InvalidInputError, match=match):
        call(run)
    (view,) = polytrack.runs(home=home)
    assert view.params == {"lr": 0.1}
    assert view.tags == ("a",)
    assert view.status == "succeeded"


def test_free_text_keeps_surrogates_escaped(home: Path) -> None:
    """Param values, notes, outputs and a failure message keep their text, each lone
    surrogate written as its escape: finish() and every reader go on working."""
    run = polytrack.init(
        dir=home,
        capture=False,
        params={"path": "data/\udcff.csv", "paths": ["a\ud800", Path("b\udc80")]},
        notes="note \udc80",
    )
    run.log_outputs(result="x\udcffy")
    run.finish("failed", message="boom \udc80")
    (view,) = polytrack.runs(home=home)
    assert view.params == {"path": "data/\\udcff.csv", "paths": ["a\\ud800", "b\\udc80"]}
    assert view.notes == "note \\udc80"
    assert view.message is not None and "boom \\udc80" in view.message
    assert polytrack.runs(home=home, where="params.path ~ '*udcff*'")[0].id == run.id


def test_large_ints_within_a_float_are_kept_exactly(home: Path) -> None:
    """A 128-bit seed is a param people log: kept as the exact int, and queryable."""
    seed = 2**127 + 12345
    with polytrack.init(dir=home, capture=False, params={"seed": seed, "big": 10**300}):
        pass
    (view,) = polytrack.runs(home=home, where="params.seed > 1e38")
    assert view.params["seed"] == seed
    assert view.params["big"] == 10**300


def test_params_nested_to_the_cap_are_recorded(home: Path) -> None:
    """Deep configs short of the cap record as usual: the guard refuses only the absurd."""
    depth = run_module.MAX_PARAM_DEPTH - 1
    with polytrack.init(dir=home, capture=False, params=_deep(depth) | {"lr": 1}):
        pass
    (view,) = polytrack.runs(home=home)
    assert view.params["lr"] == 1
    shared: dict[str, int] = {"units": 4}  # the same object twice is no cycle
    with polytrack.init(dir=home, capture=False, params={"enc": shared, "dec": shared}):
        pass
    assert polytrack.runs(home=home, where="params.dec.units == 4")


# --- query literals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("params.lr == 1e999", "out of range"),
        ("params.lr == 1" + "0" * 5000, "out of range"),
        ("params.name == '\ud800'", "lone surrogate"),
        ("`metrics.\udc80` > 1", "lone surrogate"),
    ],
    ids=["1e999", "5,000 digits", "surrogate string", "surrogate key"],
)
def test_query_literals_out_of_range_are_query_errors(
    home: Path, where: str, match: str
) -> None:
    with polytrack.init(dir=home, capture=False, params={"lr": 0.1}):
        pass
    with pytest.raises(QueryError, match=match):
        polytrack.runs(home=home, where=where)


def test_query_ints_past_64_bits_compare_as_numbers(home: Path) -> None:
    """`params.lr == 99999999999999999999999999` used to raise OverflowError from SQLite."""
    with polytrack.init(dir=home, capture=False, params={"n": 10**25, "lr": 0.1}):
        pass
    assert polytrack.runs(home=home, where="params.lr == 99999999999999999999999999") == []
    assert len(polytrack.runs(home=home, where="params.n == 10000000000000000000000000")) == 1


def test_cli_reports_a_bad_literal_without_a_traceback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from polytrack.cli import main

    with polytrack.init(dir=home, capture=False):
        pass
    code = main(["--home", str(home), "runs", "ls", "--where", "params.lr == 1e999"])
    captured = capsys.readouterr()
    assert code == 2
    assert "out of range" in captured.err and "Traceback" not in captured.err


# --- metrics as keywords (Polyaxon's habit) ------------------------------------------


def test_metrics_as_keywords(home: Path) -> None:
    """`log_metrics(loss=0.5, step=3)` as Polyaxon's client takes it, beside the mapping;
    a name given both ways is refused, recording nothing of the call."""
    with polytrack.init(dir=home, capture=False) as run:
        run.log_metrics(loss=0.5, acc=0.9, step=3)
        run.log_metrics({"loss": 0.4}, acc=0.8, step=4)
        polytrack.log_metrics(loss=0.3)
        run.log_metric("loss", 0.2)
        with pytest.raises(InvalidMetricError, match="given twice"):
            run.log_metrics({"loss": 1.0}, loss=2.0, step=9)
        with pytest.raises(InvalidMetricError, match="mapping"):
            run.log_metrics()
        with pytest.raises(InvalidMetricError, match="real number"):
            run.log_metrics(loss=0.1, acc="high")
    (view,) = polytrack.runs(home=home)
    assert view.history("loss")[0].tolist() == [3, 4, 5, 6]
    assert view.history("loss")[1].tolist() == [0.5, 0.4, 0.3, 0.2]
    assert view.history("acc")[1].tolist() == [0.9, 0.8]


def test_a_home_written_with_lone_surrogates_reads(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier versions wrote lone surrogates into the events log (as JSON escapes): the
    readers escape them on the way in, so such a home lists, shows and indexes."""
    from polytrack.cli import main
    from polytrack.store import journal

    with monkeypatch.context() as patched:
        patched.setattr(journal, "_escape_strings", lambda data: data)  # the old writer
        run = polytrack.init(dir=home, capture=False)
        run.finish("failed", message="bad \udc80 text")
    assert b"\\udc80" in next(run.dir.glob("events-*.log")).read_bytes()
    (view,) = polytrack.runs(home=home)
    assert view.message is not None and "bad \\udc80 text" in view.message
    assert main(["--home", str(home), "runs", "show", run.id]) == 0


def test_names_beyond_the_basic_plane_are_kept(home: Path) -> None:
    """A key outside the BMP is written by JSON as a surrogate *pair*: valid text, kept as
    it is, in every record that holds it (the key table written at finish included)."""
    with polytrack.init(dir=home, capture=False, params={"🚀": "𐀀"}, tags=["𓀀"]) as run:
        run.log_metrics({"𐀀": 0.0, "loss/🚀": 1.0})
    (view,) = polytrack.runs(home=home)
    assert sorted(view.metrics) == sorted(["𐀀", "loss/🚀"])
    assert view.params == {"🚀": "𐀀"} and view.tags == ("𓀀",)
