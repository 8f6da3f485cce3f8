"""`HomeBackend`: a run synced into another polytrack home reads there like a local one,
every batch exactly once, also after a crash in the middle of one."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

import polytrack
from _git import git
from polytrack.cli import main
from polytrack.errors import BackendConfigError
from polytrack.models import (
    KeyDefined,
    OutputsSet,
    ParamsSet,
    RunStarted,
    StatusChanged,
    TagsAdded,
)
from polytrack.store.journal import FRAME, Events
from polytrack.store.reader import read_run_files
from polytrack.sync.backends.base import Batch, Series
from polytrack.sync.backends.config import uri_key
from polytrack.sync.backends.home import HomeBackend
from polytrack.sync.backends.registry import open_backend


@pytest.fixture(autouse=True)
def _finish_waits_for_the_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the target right after `finish()`: let it wait for the whole sync
    however busy the machine, instead of handing the rest to the background uploader
    after the default few seconds."""
    monkeypatch.setenv("POLYTRACK_SYNC_TIMEOUT", "120")


def _uri(target: Path) -> str:
    return "polytrack+file://" + str(target)


def _started(run_id: str = "r1") -> RunStarted:
    now = time.time()
    return RunStarted(
        id=run_id,
        project="p",
        name="n",
        created_at=now,
        host="elsewhere",
        pid=1,
        process_started=now,
    )


def _batch(seq: int, start: int, n: int, *, params: dict[str, int] | None = None) -> Batch:
    steps = np.arange(start, start + n, dtype=np.int64)
    times = 1.7e9 + steps.astype(np.float64) * 0.01
    events = (ParamsSet(params=params),) if params else ()
    return Batch(
        seq=seq,
        events=events,
        metrics=(
            Series("loss", steps, steps.astype(np.float64) / 10, times),
            Series(f"k{seq}", steps, np.full(n, math.nan), times),
        ),
    )


def _open(target: Path, tmp_path: Path, run_id: str = "r1") -> HomeBackend:
    backend = HomeBackend.from_uri(_uri(target), environ={})
    workdir = tmp_path / "source" / "runs" / run_id / "sync" / "w"
    workdir.mkdir(parents=True, exist_ok=True)
    backend.open_run(_started(run_id), workdir=workdir)
    return backend


def test_a_synced_run_reads_like_a_local_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Status, params, tags, metrics (NaN too), snapshot, logs and artifacts arrive whole."""
    source, target = tmp_path / "source", tmp_path / "target"
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(bytes(range(256)) * 40)
    run = polytrack.init(
        dir=source,
        backend=_uri(target),
        capture={"logs": True},
        params={"lr": 0.1, "net": {"depth": 4}},
        tags=["a", "b"],
    )
    for step in range(3000):
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step * 0.5}, step=step)
        if step % 100 == 0:
            run.log_metric("odd", math.nan if step % 200 == 0 else step, step=step)
    run.log_data_ref("train", data)
    run.log_artifact(weights, "model")
    print("hello from the run")
    run.finish()

    here, there = polytrack.get_run(run.id, home=source), polytrack.get_run(run.id, home=target)
    assert there.status == "succeeded" == here.status
    assert there.params == here.params and there.tags == here.tags
    for key in ("loss", "acc", "odd"):
        steps, values, times = here.history(key, with_time=True)
        steps2, values2, times2 = there.history(key, with_time=True)
        assert steps2.tolist() == steps.tolist()
        np.testing.assert_array_equal(values2, values)  # NaN equals NaN here
        assert float(np.max(np.abs(times2 - times))) < 1e-3
    assert there.snapshot() == here.snapshot()
    manifest = there.snapshot().data_refs[0].manifest_file
    assert manifest and (target / "runs" / run.id / manifest).is_file()
    assert [line.text for line in there.logs()] == [line.text for line in here.logs()]
    (artifact,) = there.artifacts()
    assert artifact.download(tmp_path / "out").read_bytes() == weights.read_bytes()
    assert main(["--home", str(target), "runs", "ls"]) == 0
    assert run.id[:8] in capsys.readouterr().out


def test_the_same_batch_twice_lands_once(tmp_path: Path) -> None:
    """A repeated seq is dropped, by the same backend and by a new one over the same home."""
    target = tmp_path / "target"
    backend = _open(target, tmp_path)
    backend.write("r1", _batch(0, 0, 100, params={"lr": 1}))
    backend.write("r1", _batch(0, 0, 100, params={"lr": 1}))
    backend.close()
    again = _open(target, tmp_path)
    again.write("r1", _batch(0, 0, 100, params={"lr": 1}))
    again.write("r1", _batch(1, 100, 50))
    again.close()
    files = read_run_files(target / "runs" / "r1")
    assert files.corrupt == []
    assert files.series["loss"].steps.tolist() == list(range(150))
    assert files.series["k0"].steps.size == 100 and np.isnan(files.series["k0"].values).all()
    assert sum(isinstance(e, ParamsSet) for _, e in files.events) == 1


def test_status_is_recorded_once_and_crashed_not_at_all(tmp_path: Path) -> None:
    """A status equal to the last one recorded adds nothing; `crashed` is left to readers."""
    target = tmp_path / "target"
    backend = _open(target, tmp_path)
    backend.set_status("r1", "running", at=1.0)
    backend.set_status("r1", "running", at=2.0)
    backend.set_status("r1", "crashed", at=3.0)
    backend.set_status("r1", "failed", at=4.0, message="boom")
    backend.close()
    events = [e for _, e in read_run_files(target / "runs" / "r1").events]
    assert [(e.status, e.at) for e in events if isinstance(e, StatusChanged)] == [
        ("running", 1.0),
        ("failed", 4.0),
    ]


def test_a_half_written_batch_is_cut_and_written_again_once(tmp_path: Path) -> None:
    """Events after the last marker and a torn frame are cut on open; the batch lands once."""
    target = tmp_path / "target"
    backend = _open(target, tmp_path)
    backend.write("r1", _batch(0, 0, 10))
    backend.close()
    directory = target / "runs" / "r1"
    # Batch 1 died half-written: its segment (other bytes), a leftover temporary, some
    # of its events without the marker, and a frame torn by the crash.
    (directory / "points-000-000-00001.seg").write_bytes(b"\x01" * 200)
    (directory / ".points-000-000-00001.seg.99.tmp").write_bytes(b"junk")
    log = directory / "events-000.log"
    events, _ = Events.open_existing(log)
    events.append(KeyDefined(id=3, name="k1"))
    events.append(TagsAdded(tags=("half",)))
    events.close()
    with log.open("ab") as file:
        file.write(FRAME.pack(40, 12345) + b"x" * 40)
    assert any(isinstance(e, TagsAdded) for _, e in read_run_files(directory).events)

    again = _open(target, tmp_path)
    batch = Batch(seq=1, events=(TagsAdded(tags=("half",)),), metrics=_batch(1, 10, 20).metrics)
    again.write("r1", batch)
    again.write("r1", batch)
    again.close()
    files = read_run_files(directory)
    assert files.corrupt == []
    assert files.series["loss"].steps.tolist() == list(range(30))
    assert files.series["k1"].steps.tolist() == list(range(10, 30))
    tagged = [e for _, e in files.events if isinstance(e, TagsAdded)]
    assert tagged == [TagsAdded(tags=("half",))]
    keys = [e.name for _, e in files.events if isinstance(e, KeyDefined)]
    assert keys == ["loss", "k0", "k1"]


def test_a_resumed_run_syncs_into_the_same_target_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both attempts' points end up in one target run, which ends as the source does;
    the uncommitted diff the run started from comes along."""
    source, target = tmp_path / "source", tmp_path / "target"
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('one')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "first")
    (repo / "train.py").write_text("print('two')\n")
    monkeypatch.chdir(repo)
    capture = {"environment": False, "hardware": False, "logs": False, "system": False}
    run = polytrack.init(dir=source, backend=_uri(target), capture=capture)
    run.log_metric("x", 0.0, step=0)
    run.finish()
    again = polytrack.init(dir=source, resume=run.id, backend=_uri(target), capture=False)
    again.log_metric("x", 1.0, step=1)
    again.finish(status="failed")
    there = polytrack.get_run(run.id, home=target)
    steps, values = there.history("x")
    assert steps.tolist() == [0, 1] and values.tolist() == [0.0, 1.0]
    assert there.status == "failed"
    diff = there.diff()
    assert diff is not None and b"print('two')" in diff
    assert diff == polytrack.get_run(run.id, home=source).diff()


def test_uri_names_an_absolute_local_path(tmp_path: Path) -> None:
    """The registry builds it from its URI; a host or a relative path is refused."""
    uri = _uri(tmp_path / "t") + "/"
    backend = open_backend(uri, environ={})
    assert isinstance(backend, HomeBackend) and backend.key == uri_key(uri)
    assert backend.home == tmp_path / "t"
    for bad in ("polytrack+file://nfs-host/x", "polytrack+file://relative/x", "polytrack+file:"):
        with pytest.raises(BackendConfigError):
            HomeBackend.from_uri(bad, environ={})


def test_a_run_is_never_synced_into_its_own_home(tmp_path: Path) -> None:
    """Its own home as the target would append to the run's own journal: refused."""
    backend = HomeBackend.from_uri(_uri(tmp_path / "source"), environ={})
    workdir = tmp_path / "source" / "runs" / "r1" / "sync" / "w"
    workdir.mkdir(parents=True)
    with pytest.raises(BackendConfigError):
        backend.open_run(_started(), workdir=workdir)


def test_a_write_that_fails_midway_is_rolled_back_for_its_retry(tmp_path: Path) -> None:
    """Events appended before a write failed are cut, so the retry on the same backend
    (what the engine does) appends the batch once."""
    target = tmp_path / "target"
    backend = _open(target, tmp_path)
    tags = TagsAdded(tags=("t",))
    broken = Batch(seq=0, events=(tags, OutputsSet(outputs={"x": object()})), metrics=())
    with pytest.raises(TypeError):
        backend.write("r1", broken)
    backend.write("r1", Batch(seq=0, events=(tags,), metrics=_batch(0, 0, 5).metrics))
    backend.close()
    files = read_run_files(target / "runs" / "r1")
    assert files.corrupt == []
    assert [e for _, e in files.events if isinstance(e, TagsAdded)] == [tags]
    assert files.series["loss"].steps.tolist() == list(range(5))
