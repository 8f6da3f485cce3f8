"""Readers say what they dropped (issue 12): `RunInfo.damaged` lists each loss, the API warns
once per run, the command line notes it and `runs show` lists it, the sync engine says what
it could not send; and a run whose first record was lost is listed from what survives."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import attrs

import polytrack
from polytrack.cli import main
from polytrack.errors import DamagedRecordsWarning
from polytrack.store.journal import BLOCK, HEADER_SIZE, Events, frames
from polytrack.store.local import LocalStore
from polytrack.store.reader import summarize_run_files
from polytrack.sync.backends.memory import InMemoryBackend
from polytrack.sync.engine import RunSync

POINTS = 2_000  # 48 KB of single points: a dozen 4 KiB blocks in one segment


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


def cli(home: Path, *argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--home", str(home), *argv], stdout=out, stderr=err, environ={})
    return Result(code, out.getvalue(), err.getvalue())


def record(home: Path, *, resume: str | None = None) -> polytrack.Run:
    """A finished run of POINTS points of "loss" (its segments sealed by finish()), not
    indexed yet: the damage a test does to it is there when a reader first reads it."""
    settings = polytrack.Settings.from_env().evolve(
        home=home, capture_system=False, index_on_finish=False
    )
    run = polytrack.init(
        settings=settings, project="p", params={"lr": 0.1}, resume=resume, capture=False
    )
    start = 0 if resume is None else POINTS
    for step in range(start, start + POINTS):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run.finish()
    return run


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def damage_a_block(run: polytrack.Run) -> Path:
    """Flip a byte in the second 4 KiB block of the run's first segment."""
    segment = sorted(run.dir.glob("points-000-000-*.seg"))[0]
    flip(segment, BLOCK + 100)
    return segment


def damage_first_record(directory: Path, attempt: int = 0) -> None:
    """Flip a byte of the payload of the attempt's first frame: its `RunStarted`."""
    log = directory / f"events-{attempt:03d}.log"
    (first, _, _), *_ = frames(log.read_bytes())
    assert first == HEADER_SIZE
    flip(log, HEADER_SIZE + 8 + 10)


@contextlib.contextmanager
def said() -> Iterator[list[DamagedRecordsWarning]]:
    """The `DamagedRecordsWarning`s issued meanwhile (and no other warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found: list[DamagedRecordsWarning] = []
        yield found
    assert all(w.category is DamagedRecordsWarning for w in caught), [str(w) for w in caught]
    found += [w.message for w in caught if isinstance(w.message, DamagedRecordsWarning)]


# -- the API says it, once per run -----------------------------------------------------------


def test_readers_warn_once_per_run_and_list_what_was_skipped(home: Path) -> None:
    """`runs()` warns of a run's damaged block, naming the file and byte range, and lists
    it in `damaged`; listing again, `get_run()` and `history()` say nothing more."""
    run = record(home)
    segment = damage_a_block(run)
    with said() as first:
        (view,) = polytrack.runs(home=home)
    (message,) = view.damaged
    assert segment.name in message and f"bytes {BLOCK}-{2 * BLOCK}" in message
    assert [warning.messages for warning in first] == [(message,)]
    assert view.id in str(first[0]) and message in str(first[0])
    assert view.metrics["loss"].count == POINTS - (BLOCK // 24 + 1)
    with said() as again:
        polytrack.runs(home=home)
        got = polytrack.get_run(run.id, home=home)
        steps, _ = got.history("loss")
    assert again == [] and got.damaged == view.damaged and steps.size < POINTS


def test_a_run_read_whole_says_nothing(home: Path) -> None:
    """An undamaged run has no `damaged` entries and raises no warning."""
    run = record(home)
    with said() as found:
        (view,) = polytrack.runs(home=home)
        polytrack.get_run(run.id, home=home).history("loss")
    assert found == [] and view.damaged == ()


def test_history_warns_of_damage_found_since_the_listing(home: Path) -> None:
    """Damage that a listing did not see (the index kept the run) is said by `history()`,
    which reads the files."""
    run = record(home)
    polytrack.runs(home=home)  # indexed whole
    segment = damage_a_block(run)
    with said() as found:
        (view,) = polytrack.runs(home=home)  # from the index: a finished run is not re-read
        view.history("loss")
    assert [segment.name in m for warning in found for m in warning.messages] == [True]


def test_the_index_keeps_what_a_finished_run_lost(home: Path) -> None:
    """Listing a damaged finished run again reads none of its segments: its losses come
    from the index, as its summaries do, until a rebuild reads them again."""
    run = record(home)
    segment = damage_a_block(run)
    with said():
        (view,) = polytrack.runs(home=home)
    flip(segment, BLOCK + 100)  # mended behind the index's back: no file was added
    with LocalStore.open(home) as store:
        (info,) = store.query()
        assert info.damaged == view.damaged  # the index's
        assert store.get(run.id).damaged == view.damaged  # the sealed segment's, kept
        store.rebuild()
        assert store.get(run.id).damaged == ()  # read again


def test_a_sealed_segment_read_once_keeps_its_losses(home: Path) -> None:
    """A summary that reuses a sealed segment's kept totals reports that segment's
    losses as a full read does (a live run's index re-reads only its open segments)."""
    run = record(home)
    damage_a_block(run)
    whole = summarize_run_files(run.dir)
    again = summarize_run_files(run.dir, sealed=whole.sealed)
    assert whole.corrupt and again.corrupt == whole.corrupt
    assert again.metrics == whole.metrics
    assert (again.first_point_at, again.last_point_at) == (
        whole.first_point_at,
        whole.last_point_at,
    )


# -- the command line ---------------------------------------------------------------------


def test_runs_ls_notes_damaged_runs_once(home: Path) -> None:
    """`runs ls` lists the runs and adds one note that names the damaged ones."""
    run = record(home)
    record(home)
    damage_a_block(run)
    result = cli(home, "runs", "ls")
    assert result.code == 0 and len(result.out.splitlines()) == 3
    (note,) = result.err.splitlines()
    assert note.startswith("polytrack: warning: 1 run has damaged records") and run.id in note
    assert "runs show" in note


def test_runs_show_lists_what_was_damaged(home: Path) -> None:
    """`runs show` has a "damaged" section (a field in --json) and a note on stderr."""
    run = record(home)
    segment = damage_a_block(run)
    human = cli(home, "runs", "show", run.id)
    assert human.code == 0
    section = human.out.split("damaged (skipped when read)\n", 1)[1]
    assert segment.name in section.splitlines()[0]
    assert human.err.startswith(f"polytrack: warning: run {run.id} has damaged records")
    as_json = cli(home, "runs", "show", run.id, "--json")
    (message,) = json.loads(as_json.out)["damaged"]
    assert segment.name in message and '"damaged" field' in as_json.err


def test_sync_says_what_it_could_not_send(home: Path) -> None:
    """The sync engine says, once, which damaged records it skipped; the rest arrives."""
    run = record(home)
    segment = damage_a_block(run)
    backend = InMemoryBackend("damaged-sync")
    told: list[str] = []
    sync = RunSync.open(run.dir, backend, warn=told.append)
    try:
        while not sync.step(live=False).caught_up:
            pass
        sync.step(live=False)
    finally:
        sync.close()
    (message,) = told
    assert run.id in message and segment.name in message and "not sent" in message
    with said():
        count = polytrack.get_run(run.id, home=home).metrics["loss"].count
    assert len(backend.points(run.id, "loss")) == count < POINTS


def test_polytrack_sync_notes_what_it_could_not_send(home: Path) -> None:
    """`polytrack sync` notes the skipped records on stderr."""
    run = record(home)
    segment = damage_a_block(run)
    result = cli(home, "sync", run.id, "--backend", "memory://damaged-cli")
    assert result.code == 0
    assert any(segment.name in line and "not sent" in line for line in result.err.splitlines())


# -- a damaged first record ---------------------------------------------------------------


def test_a_run_whose_first_record_is_damaged_is_listed(home: Path) -> None:
    """A run that lost its `RunStarted` is listed from what survives: its id, status,
    params and points, start time from its first status, project "unknown", its id as
    name, and a `damaged` entry that says so."""
    run = record(home)
    with LocalStore.open(home) as store:
        before = store.read_run(run.id).info  # read, not indexed
    damage_first_record(run.dir)
    with said() as found:
        (view,) = polytrack.runs(home=home)
    assert (view.id, view.status, view.params) == (run.id, "succeeded", {"lr": 0.1})
    assert view.metrics["loss"].count == POINTS
    assert (view.project, view.name) == ("unknown", run.id)
    assert view.created_at == before.created_at and view.finished_at == before.finished_at
    assert any("starts the run" in m for m in view.damaged)
    assert [w.messages for w in found] == [view.damaged]
    assert polytrack.runs(home=home, project="unknown")[0].id == run.id
    shown = cli(home, "runs", "show", run.id)
    assert shown.code == 0 and "starts the run" in shown.out


def test_a_lost_first_start_takes_the_next_attempts(home: Path) -> None:
    """A resumed run whose first start record is lost takes its project and name from
    the next attempt's, and keeps its first attempt's start time and points."""
    run = record(home)
    with LocalStore.open(home) as store:
        before = store.read_run(run.id).info  # read, not indexed
    record(home, resume=run.id)
    damage_first_record(run.dir, attempt=0)
    with said():
        (view,) = polytrack.runs(home=home)
    assert (view.project, view.attempts, view.status) == ("p", 2, "succeeded")
    assert view.created_at == before.created_at
    assert view.metrics["loss"].count == 2 * POINTS
    assert any("attempt 1's" in m and "starts the run" in m for m in view.damaged)


def test_a_directory_with_no_record_is_still_not_a_run(home: Path) -> None:
    """A run directory whose log holds no record yet (a run being created) is not listed
    and reported as nothing: not damage."""
    record(home)
    directory = home / "runs" / "creating"
    directory.mkdir()
    Events.create(directory / "events-000.log").close()
    with said() as found:
        assert len(polytrack.runs(home=home)) == 1
    assert found == []
    assert cli(home, "runs", "show", "creating").code == 3
