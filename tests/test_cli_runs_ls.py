"""`polytrack runs ls` on a terminal (width, colours, NO_COLOR), its columns spelled as
in `--where`, and human numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import polytrack
from _cli import cli
from _terminal import run_on_terminals
from polytrack.cli._table import Cell, Column, render


def _record(home: Path, name: str, index: int, status: str = "succeeded") -> None:
    params = {f"param_number_{key}": index * key for key in range(10)}
    run = polytrack.init(project="p", name=name, dir=home, capture=False, params=params)
    for step, loss in enumerate((3.0 - index, 1.0 + index, 2.0)):
        run.log_metrics({"loss": loss}, step=step)
    run.log_outputs(acc=0.5 + index / 10)
    run.finish(status)


def _ls_on_terminal(home: Path, *more: str, columns: int = 80) -> tuple[str, str]:
    code, out, err = run_on_terminals(
        [sys.executable, "-m", "polytrack", "runs", "ls", "--home", str(home), *more],
        size=(24, columns),
    )
    assert code == 0, err
    return out.decode(), err.decode()


def test_on_a_terminal_the_table_fits_and_statuses_are_coloured(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    _record(home, "a" * 40, 0)
    _record(home, "b", 1, status="failed")
    out, err = _ls_on_terminal(home)
    lines = out.replace("\x1b[32m", "").replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert max(len(line) for line in lines.splitlines()) <= 80
    assert "\x1b[32msucceeded\x1b[0m" in out and "\x1b[31mfailed\x1b[0m" in out
    assert "more columns vary" in err
    monkeypatch.setenv("NO_COLOR", "1")
    plain, _ = _ls_on_terminal(home)
    assert "\x1b[" not in plain
    wide, _ = _ls_on_terminal(home, "--wide", "--color", "never")
    assert max(len(line) for line in wide.splitlines()) > 80


def test_color_always_colours_a_pipe(home: Path) -> None:
    _record(home, "a", 0)
    assert (
        "\x1b[32msucceeded\x1b[0m"
        in cli("runs", "ls", "--color", "always", "--home", str(home)).out
    )
    assert "\x1b[" not in cli("runs", "ls", "--home", str(home)).out


def test_columns_take_aggregates_outputs_and_params(home: Path) -> None:
    _record(home, "a", 0)
    _record(home, "b", 1)
    result = cli(
        "runs",
        "ls",
        "--columns",
        "name,min(metrics.loss),max(metrics.loss),metrics.loss,count(metrics.loss),outputs.acc,"
        "params.param_number_1",
        "--order-by",
        "name",
        "--home",
        str(home),
    )
    assert result.code == 0, result.err
    header, first, second = (line.split() for line in result.out.splitlines())
    assert header == [
        "name",
        "min(metrics.loss)",
        "max(metrics.loss)",
        "metrics.loss",
        "count(metrics.loss)",
        "outputs.acc",
        "params.param_number_1",
    ]
    assert first == ["a", "1", "3", "2", "3", "0.5", "0"]
    assert second == ["b", "2", "2", "2", "3", "0.6", "1"]
    bad = cli("runs", "ls", "--columns", "median(metrics.loss)", "--home", str(home))
    assert bad.code == 2 and "min(metrics.<key>)" in bad.err


def test_render_cuts_long_lines_with_an_ellipsis_and_colours_whole_cells() -> None:
    columns = [
        Column("status", [Cell("succeeded", color="32")]),
        Column("name", [Cell("x" * 30)]),
    ]
    plain = render(columns, width=20).splitlines()
    assert plain == ["status     name", "succeeded  xxxxxxxx…"]  # the header fits
    assert render(columns, color=True).splitlines()[1] == "\x1b[32msucceeded\x1b[0m  " + "x" * 30
