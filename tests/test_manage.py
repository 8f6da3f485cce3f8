"""Managing recorded runs through the Python API: rename, tags, notes, the trash.

Every change is an event in the run's changes log, so an index rebuilt from the files
shows it too, and a live run refuses the trash.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polytrack
from polytrack.errors import InvalidInputError, RunNotFoundError, RunStateError
from polytrack.models import NoteSet, RunRenamed, RunTrashed, TagsChanged
from polytrack.store.journal import CHANGES_FILE
from polytrack.store.local import LocalStore
from polytrack.store.reader import read_run_files


def _finished(home: Path, name: str = "first", **kwargs: object) -> str:
    run = polytrack.init(project="p", name=name, dir=home, capture=False, **kwargs)  # type: ignore[arg-type]
    run.log_metrics({"loss": 0.5}, step=0)
    run.finish()
    return run.id


def _names(home: Path, **kwargs: object) -> list[str]:
    return [view.name for view in polytrack.runs(home=home, **kwargs)]  # type: ignore[arg-type]


def test_rename_tag_untag_note_show_in_runs(home: Path) -> None:
    run_id = _finished(home, tags=["a", "b"])
    view = polytrack.rename_run(run_id, "baseline", home=home)
    assert view.name == "baseline"
    polytrack.tag_run("baseline", "best", "paper", home=home)
    polytrack.untag_run(run_id, "a", home=home)
    view = polytrack.set_note(run_id, "the one to beat", home=home)
    assert view.tags == ("b", "best", "paper")
    assert view.notes == "the one to beat"
    (listed,) = polytrack.runs(home=home)
    assert (listed.name, listed.tags, listed.notes) == (
        "baseline",
        ("b", "best", "paper"),
        "the one to beat",
    )
    assert polytrack.get_run("baseline", home=home).id == run_id


def test_changes_are_events_with_who_and_when(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYTRACK_USER", "ada")
    run_id = _finished(home)
    polytrack.rename_run(run_id, "renamed", home=home)
    polytrack.tag_run(run_id, "x", home=home)
    polytrack.set_note(run_id, None, home=home)
    files = read_run_files(home / "runs" / run_id)
    changes = [event for attempt, event in files.events if attempt == 999]
    assert [type(e) for e in changes] == [RunRenamed, TagsChanged, NoteSet]
    assert all(e.by == "ada" and e.at > 0 for e in changes)  # type: ignore[union-attr]
    assert (home / "runs" / run_id / CHANGES_FILE).is_file()


def test_index_rebuild_reproduces_changes_and_trash(home: Path) -> None:
    kept = _finished(home, name="kept")
    gone = _finished(home, name="gone")
    polytrack.rename_run(kept, "renamed", home=home)
    polytrack.tag_run(kept, "t1", home=home)
    polytrack.set_note(kept, "note", home=home)
    polytrack.delete_run(gone, home=home)
    with LocalStore.open(home) as store:
        assert store.rebuild() == 1
    (view,) = polytrack.runs(home=home)
    assert (view.id, view.name, view.tags, view.notes) == (kept, "renamed", ("t1",), "note")
    assert view.attempts == 1  # the changes log is no attempt


def test_trash_is_skipped_restored_and_purged(home: Path) -> None:
    first = _finished(home, name="one")
    _finished(home, name="two")
    assert polytrack.delete_run("one", home=home) == first
    assert _names(home) == ["two"]
    assert [v.id for v in polytrack.trashed_runs(home=home)] == [first]
    with pytest.raises(RunNotFoundError):
        polytrack.get_run(first, home=home)
    view = polytrack.restore_run(first[:8], home=home)
    assert view.id == first and sorted(_names(home)) == ["one", "two"]
    assert polytrack.trashed_runs(home=home) == []
    polytrack.delete_run(first, home=home)
    polytrack.delete_run(first, purge=True, home=home)
    assert not (home / "trash" / first).exists() and not (home / "runs" / first).exists()
    assert polytrack.trashed_runs(home=home) == []


def test_purge_of_a_run_in_the_store_deletes_it(home: Path) -> None:
    run_id = _finished(home)
    polytrack.delete_run(run_id, purge=True, home=home)
    assert _names(home) == [] and polytrack.trashed_runs(home=home) == []


def test_trashing_is_an_event_kept_in_the_trash(home: Path) -> None:
    run_id = _finished(home)
    polytrack.delete_run(run_id, home=home)
    files = read_run_files(home / "trash" / run_id)
    assert any(isinstance(event, RunTrashed) for _, event in files.events)


def test_a_live_run_refuses_rm(home: Path) -> None:
    run = polytrack.init(project="p", name="live", dir=home, capture=False)
    try:
        with pytest.raises(RunStateError, match="being recorded"):
            polytrack.delete_run(run.id, home=home)
        assert (home / "runs" / run.id).is_dir()
        polytrack.tag_run(run.id, "while-live", home=home)  # changes other than rm are fine
    finally:
        run.finish()
    assert polytrack.get_run(run.id, home=home).tags == ("while-live",)


def test_a_resumed_run_keeps_its_changes_and_numbers_attempts_past_the_log(home: Path) -> None:
    run_id = _finished(home)
    polytrack.rename_run(run_id, "renamed", home=home)
    run = polytrack.init(resume=run_id, dir=home, capture=False)
    run.log_metrics({"loss": 0.25})
    run.finish()
    assert (home / "runs" / run_id / "events-001.log").is_file()
    view = polytrack.get_run(run_id, home=home)
    assert (view.name, view.attempts) == ("renamed", 2)


def test_bad_input_names_the_argument(home: Path) -> None:
    run_id = _finished(home)
    with pytest.raises(InvalidInputError, match="name"):
        polytrack.rename_run(run_id, " ", home=home)
    with pytest.raises(InvalidInputError, match="tag"):
        polytrack.tag_run(run_id, home=home)
    with pytest.raises(RunNotFoundError):
        polytrack.restore_run(run_id, home=home)
    assert not (home / "runs" / run_id / CHANGES_FILE).exists()  # nothing recorded


def test_a_torn_change_is_cut_by_the_next_writer(home: Path) -> None:
    """A change cut short by kill -9 (bytes after the last frame) reads as the log's end;
    the next change is appended after the last whole one."""
    run_id = _finished(home)
    polytrack.tag_run(run_id, "one", home=home)
    path = home / "runs" / run_id / CHANGES_FILE
    torn = json.dumps({"type": "retagged", "added": ["torn"]}).encode()
    with path.open("ab") as file:
        file.write(b"\0" * 8 + torn)  # a payload whose header was never written
    polytrack.tag_run(run_id, "two", home=home)
    assert polytrack.get_run(run_id, home=home).tags == ("one", "two")


def test_a_change_not_yet_indexed_is_seen_by_the_next_reader(home: Path) -> None:
    """A process that appended a change and died before indexing it: the run directory's
    new time tells the next refresh to read the run again (a finished run is otherwise
    read only when its directory changes)."""
    from polytrack.store.changes import append_changes

    run_id = _finished(home)
    polytrack.tag_run(run_id, "one", home=home)  # the changes log exists from here on
    assert polytrack.runs(home=home)[0].tags == ("one",)
    append_changes(home / "runs" / run_id, [TagsChanged(added=("two",), at=1.0)])
    assert polytrack.runs(home=home)[0].tags == ("one", "two")
