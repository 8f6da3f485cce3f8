"""Outputs (`log_outputs`) are queryable: `outputs.<key>` in `--where`, `--order-by`,
`--columns` and `polytrack.runs(where=...)`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import polytrack
from _cli import cli
from polytrack.errors import QueryError
from polytrack.store.index import SCHEMA_VERSION


def _record(home: Path, name: str, **outputs: object) -> str:
    run = polytrack.init(project="p", name=name, dir=home, capture=False)
    run.log_outputs(**outputs)
    run.finish()
    return run.id


def test_where_order_by_and_columns_take_outputs(home: Path) -> None:
    _record(home, "low", acc=0.7, label="small")
    _record(home, "high", acc=0.95, label="big")
    _record(home, "none")
    assert [v.name for v in polytrack.runs(where="outputs.acc > 0.9", home=home)] == ["high"]
    assert [v.name for v in polytrack.runs(where='outputs.label ~ "b*"', home=home)] == ["high"]
    names = [v.name for v in polytrack.runs(order_by="-outputs.acc", home=home)]
    assert names == ["high", "low", "none"]  # a run without it sorts last
    found = polytrack.runs(where="exists(outputs.acc)", order_by="name", home=home)
    assert [v.name for v in found] == ["high", "low"]
    result = cli(
        "runs", "ls", "--where", "outputs.acc >= 0.7", "--order-by", "outputs.acc",
        "--columns", "name,outputs.acc", "--home", str(home),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert [line.split() for line in result.out.splitlines()] == [
        ["name", "outputs.acc"],
        ["low", "0.7"],
        ["high", "0.95"],
    ]


def test_a_misspelt_output_is_named(home: Path) -> None:
    _record(home, "one", acc=0.5)
    with pytest.raises(QueryError, match="no run has the output 'acx' \\(did you mean 'acc'\\?\\)"):
        polytrack.runs(where="outputs.acx > 0.9", home=home)


def test_an_index_of_the_previous_schema_is_rebuilt_with_outputs(home: Path) -> None:
    _record(home, "one", acc=0.99)
    assert len(polytrack.runs(home=home)) == 1  # the index exists now
    with sqlite3.connect(home / "index.sqlite3") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION - 1),))
        db.execute("DROP TABLE outputs")
    db.close()
    assert [v.name for v in polytrack.runs(where="outputs.acc > 0.9", home=home)] == ["one"]
