"""`polytrack.runs(offset=)`, `summarize_runs()` and `runs_page()`: pages of runs, their count
and keys."""

from __future__ import annotations

from pathlib import Path

import pytest

import polytrack
from polytrack.errors import InvalidInputError, QueryError
from polytrack.history.runs import RunsSummary, runs_page, summarize_runs


@pytest.fixture
def ids(home: Path) -> list[str]:
    made = []
    for index in range(7):
        run = polytrack.init(
            "even" if index % 2 == 0 else "odd",
            f"run-{index}",
            params={"i": index} | ({"extra": True} if index == 3 else {}),
            dir=home,
            mode="offline",
            capture=False,
        )
        polytrack.log_metric("loss", 1.0 / (index + 1), step=0)
        if index == 5:
            polytrack.log_metric("acc", 0.5, step=0)
        run.finish()
        made.append(run.id)
    return made


def test_offset_pages_through_without_gaps_or_repeats(home: Path, ids: list[str]) -> None:
    order = [run.id for run in polytrack.runs(order_by="params.i", home=home)]
    assert order == ids
    pages = [
        [run.id for run in polytrack.runs(order_by="params.i", limit=3, offset=o, home=home)]
        for o in (0, 3, 6, 9)
    ]
    assert pages == [ids[0:3], ids[3:6], ids[6:7], []]
    # an offset without a limit: everything after it
    assert [r.id for r in polytrack.runs(order_by="params.i", offset=5, home=home)] == ids[5:]


def test_offset_with_where_and_project(home: Path, ids: list[str]) -> None:
    found = polytrack.runs(
        "even", where="params.i >= 2", order_by="-params.i", limit=2, offset=1, home=home
    )
    assert [run.id for run in found] == [ids[4], ids[2]]


@pytest.mark.parametrize("offset", [-1, 1.5, "2", True])
def test_bad_offset_is_refused(home: Path, offset: object) -> None:
    with pytest.raises(InvalidInputError, match="offset"):
        polytrack.runs(offset=offset, home=home)  # type: ignore[arg-type]


def test_summarize_runs(home: Path, ids: list[str]) -> None:
    assert summarize_runs(home=home) == RunsSummary(
        count=7, param_keys=("extra", "i"), metric_keys=("acc", "loss"), projects=("even", "odd")
    )
    odd = summarize_runs("odd", home=home)
    assert odd.count == 3 and odd.projects == ("odd",)
    low = summarize_runs(where="params.i < 3", home=home)
    assert low.count == 3 and low.param_keys == ("i",) and low.metric_keys == ("loss",)
    none = summarize_runs(where="params.i > 100", home=home)
    assert none == RunsSummary(0, (), (), ())


def test_summarize_runs_of_an_empty_home(tmp_path: Path) -> None:
    assert summarize_runs(home=tmp_path / "nothing").count == 0


def test_summarize_runs_bad_where(home: Path, ids: list[str]) -> None:
    with pytest.raises(QueryError) as caught:
        summarize_runs(where="params.i < < 3", home=home)
    assert caught.value.position == 11


def test_runs_page_is_runs_and_summary_at_once(home: Path, ids: list[str]) -> None:
    page = runs_page("even", "params.i >= 2", "-params.i", limit=2, offset=1, home=home)
    assert [run.id for run in page.runs] == [ids[4], ids[2]]
    assert page.summary == summarize_runs("even", "params.i >= 2", home=home)
    assert page.summary.count == 3
    with pytest.raises(QueryError):
        runs_page(where="params.i <", home=home)
    with pytest.raises(InvalidInputError, match="offset"):
        runs_page(offset=-5, home=home)
