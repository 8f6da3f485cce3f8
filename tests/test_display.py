"""Runs, lists of runs, comparisons and lineage display as escaped HTML in a notebook and
as text elsewhere; plotting without matplotlib names the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import polytrack
from polytrack import _display

QUIET = {"git": False, "system": False, "environment": False, "hardware": False}
EVIL = "<script>alert(1)</script>"


class _Printer:
    """IPython's pretty printer, as far as `_repr_pretty_` uses it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def text(self, text: str) -> None:
        self.texts.append(text)


def _pretty(value: object) -> str:
    printer = _Printer()
    value._repr_pretty_(printer, False)  # type: ignore[attr-defined]
    return "".join(printer.texts)


def _record(home: Path, name: str, lr: object, losses: list[float]) -> polytrack.Run:
    run = polytrack.init(
        project="p", name=name, params={"lr": lr, "note": EVIL}, dir=home, capture=QUIET
    )
    assert isinstance(run, polytrack.Run)
    for step, loss in enumerate(losses):
        run.log_metrics({"loss": loss}, step=step)
    return run


def test_run_and_run_view_show_escaped_html_with_a_sparkline(home: Path) -> None:
    """A live Run and its RunView show status, params and metrics; user strings are
    escaped, and a series of several points draws an SVG sparkline."""
    run = _record(home, EVIL, 0.1, [3.0, 2.0, 1.5])
    for shown in (run._repr_html_(), polytrack.get_run(run.id, home=home)._repr_html_()):
        assert "<script>" not in shown
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
        assert "<svg" in shown and "<polyline" in shown
        assert ">loss<" in shown and ">1.5<" in shown
    assert "running" in run._repr_html_()
    run.finish()
    assert "succeeded" in polytrack.get_run(run.id, home=home)._repr_html_()


def test_text_display_names_params_and_last_metrics(home: Path) -> None:
    """Outside HTML, a run prints its id, status, params and last metrics."""
    run = _record(home, "plain", 0.1, [3.0, 2.0])
    run.finish()
    text = _pretty(polytrack.get_run(run.id, home=home))
    assert run.id in text and "succeeded" in text
    assert "lr=0.1" in text and "loss=2" in text
    assert run.id in _pretty(run)


def test_runs_returns_a_list_that_displays_as_a_table(home: Path) -> None:
    """runs() is still a list (equality, slicing), and shows a row per run, escaped."""
    for name in ("a", EVIL):
        _record(home, name, 0.1, [1.0]).finish()
    found = polytrack.runs(home=home)
    assert isinstance(found, list) and isinstance(found, polytrack.RunList)
    assert found == list(found) and len(found[:1]) == 1
    html = found._repr_html_()
    assert html.count("<tr>") == 3 and "<script>" not in html and "2 runs" in html
    text = _pretty(found)
    assert len(text.splitlines()) == 3 and "loss" in text.splitlines()[0]


def test_comparison_highlights_the_rows_that_differ(home: Path) -> None:
    """A comparison's table marks differing rows, and only those; values are escaped."""
    a = _record(home, "a", 0.1, [1.0])
    a.finish()
    b = _record(home, "b", EVIL, [1.0])
    b.finish()
    comparison = polytrack.compare(a.id, b.id, home=home)
    html = comparison._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    rows = html.split("<tr")
    lr = next(r for r in rows if "<code>lr</code>" in r)
    note = next(r for r in rows if "<code>note</code>" in r)
    assert "background" in lr and "background" not in note
    assert "params.lr: 0.1 | <script>" in _pretty(comparison)


def test_lineage_shows_its_tree_escaped(home: Path, tmp_path: Path) -> None:
    """A lineage graph displays its tree, escaped, in HTML and as text."""
    data = tmp_path / "d.csv"
    data.write_text("x\n1\n")
    run = _record(home, EVIL, 0.1, [1.0])
    run.log_data_ref("train", str(data))
    run.finish()
    graph = polytrack.lineage(run.id, home=home)
    assert "<script>" not in graph._repr_html_()
    assert "&lt;script&gt;" in graph._repr_html_()
    assert _pretty(graph) == graph.render_tree()


def test_sparkline_skips_non_finite_points() -> None:
    """NaN and inf are left out of the line; under two finite points, no line."""
    import numpy as np

    assert _display.sparkline(np.array([1.0, np.nan])) == ""
    line = _display.sparkline(np.array([1.0, np.inf, 2.0, 3.0]))
    assert line.count(",") == 3


def test_plot_without_matplotlib_names_the_extra(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plotting where matplotlib is missing is an ImportError naming `polytrack[plot]`."""
    run = _record(home, "a", 0.1, [1.0, 0.5])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"polytrack\[plot\]"):
        run.plot("loss")
    run.finish()
    with pytest.raises(ImportError, match=r"polytrack\[plot\]"):
        polytrack.plot(polytrack.runs(home=home), "loss")
