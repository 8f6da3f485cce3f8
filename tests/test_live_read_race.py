"""A reader of a live run reads its events, then its segments. A key the run defines in
between (the writer defines it durably before its first point) must read as that key, not
as damage: a dashboard or a tuner polling a live run saw false `DamagedRecordsWarning`s.

The interleaving is made deterministic by wrapping the events read: the run logs its new
key right after the reader has read the events, before it reads the points."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import polytrack
from polytrack.store import reader


def _live(home: Path) -> polytrack.Run:
    settings = polytrack.Settings.from_env().evolve(
        home=home, capture_system=False, index_on_finish=False
    )
    return polytrack.init(settings=settings, project="p", capture=False)


def _between(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Run `act` once, just after the next read of a run's events."""
    real = reader._read_all_events
    done: list[bool] = []

    def read_then_act(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not done:
            done.append(True)
            act()
        return result

    monkeypatch.setattr(reader, "_read_all_events", read_then_act)


@pytest.mark.parametrize("row", [False, True], ids=["point", "row"])
def test_a_key_defined_while_reading_is_read_not_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: bool
) -> None:
    """Points of a key defined between the events read and the segments read are returned,
    and nothing is reported damaged (single points and rows of several keys alike)."""
    run = _live(tmp_path)
    run.log_metrics({"loss": 1.0}, step=0)
    new = {"acc": 0.5, "f1": 0.25} if row else {"acc": 0.5}
    _between(monkeypatch, lambda: run.log_metrics(new, step=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        files = reader.read_run_files(tmp_path / "runs" / run.id)
    assert files.corrupt == []
    assert files.series["acc"].values.tolist() == [0.5]
    assert files.series["loss"].values.tolist() == [1.0]
    run.finish()


def test_the_index_summary_of_a_live_run_names_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary the index keeps of a live run counts a key defined while it was read."""
    run = _live(tmp_path)
    run.log_metrics({"loss": 1.0}, step=0)
    _between(monkeypatch, lambda: run.log_metrics({"acc": 0.5}, step=1))
    summary = reader.summarize_run_files(tmp_path / "runs" / run.id)
    assert summary.corrupt == []
    assert summary.metrics["acc"].summary.count == 1
    run.finish()
