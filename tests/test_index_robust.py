"""The index is a cache that never breaks or blocks a reader; readers tolerate runs that
change under them, and never write into a folder that is not a polytrack home.

Issue 12 (a damaged index, files that vanish, a locked index) and issue 13 (readers write
nothing into other tools' folders).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from attrs import frozen

import polytrack
import polytrack.cli.index
from _cli import cli
from polytrack.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from polytrack.errors import NotAStoreError, TrackingWarning
from polytrack.store.index import SCHEMA_VERSION
from polytrack.store.local import INDEX_FILE, LocalStore

# Well above what a reader takes here (under a second), below the 10 s a locked index used
# to cost each write and the 40 s of a listing (issue 12): a bound that a busy CI machine
# keeps, and the old code broke.
PROMPT = 9.0




def record(home: Path, count: int, *, project: str = "p") -> list[str]:
    """Record `count` finished runs with one metric each; returns their ids."""
    ids = []
    for number in range(count):
        with polytrack.init(dir=home, project=project, params={"n": number}, capture=False) as run:
            for step in range(5):
                run.log_metrics({"loss": number + step / 10}, step=step)
        ids.append(run.id)
    return ids


def listing(home: Path) -> set[str]:
    """Every file and directory under `home`, relative to it."""
    return {str(path.relative_to(home)) for path in home.rglob("*")}


# -- a damaged index -----------------------------------------------------------------------


def _truncate(path: Path) -> None:
    os.truncate(path, 1024)  # part of page 1: every table's pages are gone


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _zero_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(bytes(100))  # the SQLite header, magic string and all


def _wrong_schema(path: Path) -> None:
    """A valid SQLite file of our schema version whose tables are not ours."""
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.execute("CREATE TABLE runs (id TEXT)")
    db.close()


def _someone_elses(path: Path) -> None:
    """A valid SQLite file of another program: tables, no schema version."""
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id TEXT, owner TEXT)")
        db.execute("INSERT INTO runs VALUES ('x', 'not polytrack')")
    db.close()


def _bad_row(path: Path) -> None:
    """A damaged byte inside a row: SQLite keeps no page checksum, so only its value shows."""
    with sqlite3.connect(path) as db:
        db.execute("UPDATE params SET value_json = '{not json'")
    db.close()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "garbage": _garbage,
    "zeroed header": _zero_header,
    "wrong schema": _wrong_schema,
    "another program's": _someone_elses,
    "undecodable row": _bad_row,
}


@frozen
class Damaged:
    """A home of three indexed runs whose index was then damaged."""

    kind: str
    ids: list[str]


@pytest.fixture(params=list(DAMAGE))
def damaged(request: pytest.FixtureRequest, home: Path) -> Damaged:
    ids = record(home, 3)
    assert len(polytrack.runs(home=home)) == 3  # indexed
    assert not (home / f"{INDEX_FILE}-wal").exists()  # every page is in the file
    DAMAGE[request.param](home / INDEX_FILE)
    return Damaged(request.param, ids)


def test_readers_set_a_damaged_index_aside_and_rebuild_it(home: Path, damaged: Damaged) -> None:
    """runs() finds a damaged index out, sets it aside, rebuilds it and answers right."""
    with pytest.warns(TrackingWarning, match="set aside as index.sqlite3.corrupt-"):
        runs = polytrack.runs(home=home, order_by="params.n")
    assert [run.id for run in runs] == damaged.ids
    assert [run.params["n"] for run in runs] == [0, 1, 2]
    assert [run.metrics["loss"].last for run in runs] == [0.4, 1.4, 2.4]
    assert len(list(home.glob(f"{INDEX_FILE}.corrupt-*"))) == 1  # kept, for a post-mortem
    # The new index is whole: the next reader uses it as it is, and says nothing.
    assert [run.id for run in polytrack.runs(home=home, where="params.n >= 1")] == [
        damaged.ids[2],
        damaged.ids[1],
    ]
    with sqlite3.connect(home / INDEX_FILE) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (3,)
    db.close()


def test_index_rebuild_sets_a_damaged_index_aside(home: Path, damaged: Damaged) -> None:
    """`polytrack index rebuild` works on a damaged index: it sets a damaged file aside,
    with a note (a bad row in a sound file it simply rewrites), and indexes every run."""
    result = cli("--home", str(home), "index", "rebuild")
    assert result.code == EXIT_OK, result.err
    set_aside = "set aside as index.sqlite3.corrupt-" in result.err
    assert set_aside == (damaged.kind != "undecodable row")
    assert "indexed 3 runs" in result.err
    listed = cli("--home", str(home), "runs", "ls", "--json")
    assert listed.code == EXIT_OK and listed.err == ""
    assert {record["id"] for record in json.loads(listed.out)} == set(damaged.ids)
    assert {record["params"]["n"] for record in json.loads(listed.out)} == {0, 1, 2}


def test_get_run_survives_a_damaged_index(home: Path) -> None:
    """Every reader of the index recovers, not only runs(): get_run resolves through it."""
    (run_id,) = record(home, 1)
    polytrack.runs(home=home)
    _garbage(home / INDEX_FILE)
    with pytest.warns(TrackingWarning, match="damaged"):
        assert polytrack.get_run(run_id[:4], home=home).id == run_id


# -- another process holds the index ---------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=" + sys.argv[2])
    db.execute("BEGIN EXCLUSIVE")
    db.execute("SELECT count(*) FROM runs").fetchall()
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    db.execute("ROLLBACK")
    """
)


@pytest.fixture(params=["wal", "delete"])
def held(request: pytest.FixtureRequest, home: Path) -> Iterator[list[str]]:
    """Two indexed runs, then another process holding the index in an exclusive
    transaction (in WAL mode, as polytrack leaves it, and in rollback mode, where even
    reads wait); yields the ids of those runs."""
    ids = record(home, 2)
    polytrack.runs(home=home)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home / INDEX_FILE), str(request.param)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        yield ids
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()


def test_finish_does_not_wait_on_a_held_index(home: Path, held: list[str]) -> None:
    """finish() leaves indexing to the readers while the index is held: it never waits."""
    run = polytrack.init(dir=home, project="p", capture=False)
    run.log_metrics({"loss": 0.5}, step=0)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < PROMPT


def test_readers_answer_from_the_run_files_while_the_index_is_held(
    home: Path, held: list[str]
) -> None:
    """runs() lists every run, also one the held index lacks, promptly, and says why."""
    (late,) = record(home, 1)  # not indexed: finish() could not, so runs() must write
    started = time.monotonic()
    with pytest.warns(TrackingWarning, match="is busy"):
        runs = polytrack.runs(home=home)
    assert time.monotonic() - started < PROMPT
    assert {run.id for run in runs} == {*held, late}
    steps, _ = runs[0].history("loss")
    assert steps.tolist() == [0, 1, 2, 3, 4]


def test_runs_ls_notes_that_the_index_was_busy(home: Path, held: list[str]) -> None:
    """`runs ls --json` answers from the run files within the usual time, with a note."""
    (late,) = record(home, 1)
    started = time.monotonic()
    result = cli("--home", str(home), "runs", "ls", "--json")
    assert time.monotonic() - started < PROMPT
    assert result.code == EXIT_OK
    assert {record["id"] for record in json.loads(result.out)} == {*held, late}
    assert "polytrack: warning: the index" in result.err and "is busy" in result.err


def test_index_rebuild_of_a_held_index_fails_clearly(
    home: Path, held: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`index rebuild` cannot rebuild a held index: it says so, without a traceback."""
    monkeypatch.setattr(polytrack.cli.index, "REBUILD_BUSY_TIMEOUT", 0.1)  # not 2 s a test
    result = cli("--home", str(home), "index", "rebuild")
    assert result.code == EXIT_ERROR
    assert "is busy" in result.err and "run this again" in result.err


# -- runs that change while they are read ------------------------------------------------------


def _after_listing(
    monkeypatch: pytest.MonkeyPatch, directory: Path, change: Callable[[], None]
) -> list[int]:
    """Make `change` happen once, right after `directory` is next listed: between a
    reader's listing and its reading, where a live run removes its spare segment.
    Returns a list that counts the listings of `directory`."""
    real = os.listdir
    listings: list[int] = []

    def listdir(path: str | os.PathLike[str] = ".") -> list[str]:
        names = real(path)
        if Path(path) == directory:
            listings.append(1)
            if len(listings) == 1:
                change()
        return names

    monkeypatch.setattr(os, "listdir", listdir)
    return listings


def _spare(run_dir: Path) -> Path:
    """A spare segment, as a live run maps ahead of need and removes when it closes."""
    (segment,) = run_dir.glob("points-000-000-00000.seg")
    spare = run_dir / "points-000-000-00001.seg"
    spare.write_bytes(segment.read_bytes()[:64] + bytes(4096))
    return spare


def test_runs_tolerate_a_segment_that_vanishes_between_listing_and_reading(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runs() reads a run again when a file it listed is gone: no FileNotFoundError."""
    (run_id,) = record(home, 1)
    run_dir = home / "runs" / run_id
    spare = _spare(run_dir)  # the directory changed: the next reader re-reads the run
    listings = _after_listing(monkeypatch, run_dir, spare.unlink)
    (run,) = polytrack.runs(home=home)
    assert run.metrics["loss"].count == 5
    assert listings  # the spare went while the run was read


def test_history_tolerates_a_segment_that_vanishes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """history() reads a run again when a segment it listed is gone."""
    (run_id,) = record(home, 1)
    (run,) = polytrack.runs(home=home)
    spare = _spare(home / "runs" / run_id)
    _after_listing(monkeypatch, home / "runs" / run_id, spare.unlink)
    steps, _ = run.history("loss")
    assert steps.tolist() == [0, 1, 2, 3, 4]


def test_runs_leave_out_a_run_deleted_while_it_is_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose directory is deleted while a reader reads it is left out, no error."""
    kept, deleted = record(home, 2)
    doomed = home / "runs" / deleted
    _spare(doomed)
    _after_listing(monkeypatch, doomed, lambda: shutil.rmtree(doomed))
    assert [run.id for run in polytrack.runs(home=home)] == [kept]


WRITER = textwrap.dedent(
    """
    import sys
    import polytrack
    from pathlib import Path
    home, runs = Path(sys.argv[1]), int(sys.argv[2])
    settings = polytrack.Settings.from_env().evolve(
        home=home, first_segment_bytes=1024, max_segment_bytes=1024, fsync_interval=0.001,
        index_on_finish=False,
    )
    for number in range(runs):
        with polytrack.init(project="race", settings=settings, capture=False) as run:
            for step in range(400):  # ~40 segments, each mapped ahead as a spare
                run.log_metrics({"loss": step}, step=step)
    """
)


def test_readers_race_runs_that_rotate_segments(home: Path) -> None:
    """Listing and reading while another process logs with fast segment rotation and
    closes run after run (each close removes a spare segment) raises nothing."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(home), "12"])
    reads = 0
    try:
        while writer.poll() is None or reads < 3:
            for run in polytrack.runs(home=home):
                steps, _ = run.history("loss")
                assert steps.tolist() == sorted(steps.tolist())
            result = cli("--home", str(home), "runs", "ls", "--json", "--limit", "0")
            assert result.code == EXIT_OK, result.err
            reads += 1
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    runs = polytrack.runs(home=home)
    assert len(runs) == 12 and {run.metrics["loss"].count for run in runs} == {400}


# -- folders that are not a polytrack home ------------------------------------------------------


def _mlruns(root: Path) -> Path:
    """An MLflow tracking folder, as `mlflow.log_metric` leaves it."""
    mlruns = root / "mlruns"
    run = mlruns / "0" / "4f1c2a"
    (run / "metrics").mkdir(parents=True)
    (run / "params").mkdir()
    (mlruns / ".trash").mkdir()
    (mlruns / "0" / "meta.yaml").write_text("artifact_location: mlruns/0\nname: Default\n")
    (run / "meta.yaml").write_text("run_id: 4f1c2a\nstatus: 3\n")
    (run / "metrics" / "loss").write_text("1700000000000 0.5 0\n")
    return mlruns


def _tensorboard(root: Path) -> Path:
    """A TensorBoard logdir as torch's SummaryWriter makes it: runs/<date>_<host>/."""
    logdir = root / "tb"
    events = logdir / "runs" / "Mar01_12-00-00_host"
    events.mkdir(parents=True)
    (events / "events.out.tfevents.1700000000.host.1.0").write_bytes(b"\x18\x00" * 8)
    return logdir


def _project(root: Path) -> Path:
    """A project folder: anything that polytrack did not write."""
    project = root / "project"
    project.mkdir()
    (project / "train.py").write_text("print('hi')\n")
    return project


FOREIGN: dict[str, tuple[Callable[[Path], Path], str]] = {
    "mlruns": (_mlruns, "MLflow"),
    "tensorboard logdir": (_tensorboard, "TensorBoard"),
    "tensorboard runs/": (lambda root: _tensorboard(root) / "runs", "TensorBoard"),
    "project": (_project, "did not write"),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_readers_refuse_a_foreign_folder_and_write_nothing(tmp_path: Path, kind: str) -> None:
    """runs(), get_run(), `runs ls` and `index rebuild` refuse another tool's folder with
    NotAStoreError (exit 2) saying what it looks like, and write nothing into it."""
    make, looks_like = FOREIGN[kind]
    folder = make(tmp_path)
    before = listing(folder)
    with pytest.raises(NotAStoreError, match=f"not a polytrack store.*{looks_like}"):
        polytrack.runs(home=folder)
    with pytest.raises(NotAStoreError):
        polytrack.get_run("4f1c2a", home=folder)
    for argv in (
        ["runs", "ls"],
        ["runs", "ls", "--json"],
        ["runs", "show", "x"],
        ["index", "rebuild"],
    ):
        result = cli("--home", str(folder), *argv)
        assert result.code == EXIT_USAGE, (argv, result.err)
        assert "is not a polytrack store" in result.err and result.out == ""
    assert listing(folder) == before


def test_an_empty_or_missing_home_reads_as_no_runs_and_stays_empty(tmp_path: Path) -> None:
    """A folder nothing was recorded into reads as "no runs", and gains no index."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert polytrack.runs(home=empty) == []
    assert cli("--home", str(empty), "runs", "ls").err == f"no runs in the store {empty}\n"
    assert listing(empty) == set()
    assert polytrack.runs(home=tmp_path / "missing") == []
    assert not (tmp_path / "missing").exists()


def test_a_home_inside_another_folder_is_still_read(tmp_path: Path) -> None:
    """A home that holds runs of ours is read (and indexed) also beside other files."""
    home = _project(tmp_path)
    (run_id,) = record(home, 1)
    assert [run.id for run in polytrack.runs(home=home)] == [run_id]
    assert (home / INDEX_FILE).exists()


def test_a_run_with_damaged_events_still_marks_the_home_as_ours(home: Path) -> None:
    """A home whose only run lost its events log is still a home: names decide, not bytes.
    The run is listed still, from its points, and says what it lost."""
    (run_id,) = record(home, 1)
    for events in (home / "runs" / run_id).glob("events-*.log"):
        events.unlink()
    with LocalStore.open(home, create=False) as store:
        assert store.rebuild() == 1  # no NotAStoreError, and the run is not hidden
        (info,) = store.query()
    assert info.id == run_id and info.project == "unknown" and info.damaged
