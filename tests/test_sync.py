"""The sync engine against real backends in this process: the in-memory one, and small
real subclasses of it that fail the way servers do."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from _file_backend import FileBackend
from polytrack.cli import main
from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendRejectedError,
    BackendUnavailableError,
)
from polytrack.models import RunStarted
from polytrack.store.tail import JournalTail, Position
from polytrack.sync.backends.base import Artifact, Backend, Batch
from polytrack.sync.backends.memory import InMemoryBackend
from polytrack.sync.engine import Backoff, RunSync, SyncBusyError, SyncState, state_path

QUIET = {"capture": False}


def _logged(run: Any, n: int) -> dict[str, list[tuple[int, float]]]:
    """Log `n` steps of two metrics (as a row) and one alone; return what was logged."""
    expected: dict[str, list[tuple[int, float]]] = {"loss": [], "acc": [], "lr": []}
    for step in range(n):
        loss, acc = 1.0 / (step + 1), step * 0.5
        run.log_metrics({"loss": loss, "acc": acc}, step=step)
        expected["loss"].append((step, loss))
        expected["acc"].append((step, acc))
        if step % 10 == 0:
            run.log_metric("lr", 0.1 * step, step=step)
            expected["lr"].append((step, 0.1 * step))
    return expected


def _sorted(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted(points, key=lambda p: p[0])


class FlakyBackend(InMemoryBackend):
    """Fails the next `failures` writes: before applying them, or after (the response lost)."""

    def __init__(self, failures: int = 0, *, after_apply: bool = False, retry_after=None):
        super().__init__("flaky")
        self.failures = failures
        self.after_apply = after_apply
        self.retry_after = retry_after
        self.batches: list[Batch] = []

    def write(self, run_id: str, batch: Batch) -> None:
        self.batches.append(batch)
        if self.failures and not self.after_apply:
            self.failures -= 1
            raise BackendUnavailableError(
                "503 from the test", status=503, retry_after=self.retry_after
            )
        super().write(run_id, batch)
        if self.failures and self.after_apply:
            self.failures -= 1
            raise BackendUnavailableError("connection reset after the server applied it")


def test_a_run_arrives_whole_and_once(home: Path, hot_path: str) -> None:
    """Every point, param, tag and the final status reach the backend exactly once."""
    backend = InMemoryBackend()
    run = polytrack.init(
        dir=home, params={"lr": 0.1, "net": {"depth": 4}}, tags=["a"], backend=backend, **QUIET
    )
    expected = _logged(run, 30_000)
    run.log_tags(["b"])
    run.finish()
    remote = backend.runs[run.id]
    for key, points in expected.items():
        assert _sorted(backend.points(run.id, key)) == points, key
    assert remote.params == {"lr": 0.1, "net.depth": 4}
    assert remote.tags == ["a", "b"]
    assert remote.status == "succeeded"
    assert remote.writes == len(remote.seqs)  # no batch needed a second try
    state = SyncState.load(state_path(run.dir, backend.key), backend.key)
    assert state.pending is None and state.points == sum(map(len, expected.values()))


def test_points_keep_their_recorded_times(home: Path) -> None:
    """A point's time at the backend is the time the journal recorded, bit for bit."""
    from polytrack.store.reader import read_series

    backend = InMemoryBackend()
    before = time.time()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    run.log_metric("x", 1.0, step=0)
    after = time.time()
    run.finish()
    ((_, _, at),) = backend.runs[run.id].metrics["x"]
    recorded = read_series(run.dir, "x", with_times=True).times
    assert recorded is not None and at == float(recorded[0])
    assert before - 0.01 <= at <= after + 0.01


def test_nan_and_inf_are_sent_as_such(home: Path) -> None:
    """NaN and infinities are values like any other."""
    backend = InMemoryBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    for step, value in enumerate([math.nan, math.inf, -math.inf, 1.0]):
        run.log_metric("v", value, step=step)
    run.finish()
    values = [v for _, v in backend.points(run.id, "v")]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.0]


def test_sync_ships_while_the_run_records(home: Path) -> None:
    """The worker sends points during the run, not only at finish()."""
    backend = InMemoryBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    for step in range(100):
        run.log_metric("x", float(step), step=step)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        remote = backend.runs.get(run.id)
        if remote is not None and len(remote.metrics.get("x", [])) == 100:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"nothing arrived while running: {backend.summary()}")
    assert backend.runs[run.id].status == "running"
    run.finish()
    assert backend.runs[run.id].status == "succeeded"


def test_a_lost_response_is_sent_again_and_counted_once(home: Path) -> None:
    """A batch the server applied but never confirmed goes again, with the same seq and
    records; the server keeps one copy."""
    backend = FlakyBackend(failures=2, after_apply=True)
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    expected = _logged(run, 2_000)
    run.finish()
    for key, points in expected.items():
        assert _sorted(backend.points(run.id, key)) == points
    first, again = backend.batches[0], backend.batches[1]
    assert first.seq == again.seq
    assert list(first.iter_points()) == list(again.iter_points())
    assert [type(e) for e in first.events] == [type(e) for e in again.events]


def test_unavailable_backend_is_retried_with_backoff(home: Path) -> None:
    """503s are retried until the server takes the batch; nothing is lost."""
    backend = FlakyBackend(failures=3, retry_after=0.01)
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    expected = _logged(run, 100)
    run.finish()
    assert _sorted(backend.points(run.id, "loss")) == expected["loss"]


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    """Delays double up to the cap, jittered; a Retry-After is waited out."""
    import random

    backoff = Backoff(initial=1.0, maximum=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.next_delay(retry_after=30.0) == 30.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


class RejectingBackend(InMemoryBackend):
    """Refuses every batch that holds params, as a server refuses a changed param."""

    def write(self, run_id: str, batch: Batch) -> None:
        if batch.params():
            raise BackendRejectedError("INVALID_PARAMETER_VALUE: changing param values")
        super().write(run_id, batch)


def test_a_refused_batch_is_set_aside_and_named(
    home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A 4xx sets the batch aside with the server's reason; the rest still goes."""
    backend = RejectingBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    run.finish()
    run2 = polytrack.init(dir=home, backend=backend, params={"lr": 1}, **QUIET)
    run2.log_metric("x", 1.0, step=0)
    run2.finish()
    state = SyncState.load(state_path(run2.dir, backend.key), backend.key)
    assert [entry["seq"] for entry in state.set_aside] == [0]
    assert "changing param values" in state.set_aside[0]["error"]
    assert backend.runs[run2.id].status == "succeeded"
    assert "set aside" in capfd.readouterr().err


class LockedOutBackend(InMemoryBackend):
    def write(self, run_id: str, batch: Batch) -> None:
        raise BackendAuthError("401 Unauthorized: the token was not accepted", status=401)


def test_an_auth_failure_is_reported_once_and_finish_does_not_wait(
    home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """401: one loud line naming the fix; the run records on locally; finish is quick."""
    run = polytrack.init(dir=home, backend=LockedOutBackend(), **QUIET)
    run.log_metric("x", 1.0, step=0)
    time.sleep(0.2)
    started = time.monotonic()
    run.finish()
    assert time.monotonic() - started < 5
    err = capfd.readouterr().err
    assert err.count("not accepted") == 1
    assert f"polytrack sync {run.id}" in err
    assert polytrack.get_run(run.id, home=home).status == "succeeded"


class StuckBackend(InMemoryBackend):
    """A server that takes a long time over every write."""

    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = threading.Event()

    def write(self, run_id: str, batch: Batch) -> None:
        self.release.wait(0.5)
        super().write(run_id, batch)


def test_finish_waits_a_bounded_time_then_says_so(
    home: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """finish() gives up after sync_timeout, in one line, with the data safe on disk."""
    monkeypatch.setenv("POLYTRACK_SYNC_TIMEOUT", "0.3")
    backend = StuckBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    _logged(run, 100_000)
    started = time.monotonic()
    run.finish()
    elapsed = time.monotonic() - started
    backend.release.set()
    assert elapsed < 0.3 + 5 + 1.0
    lines = [line for line in capfd.readouterr().err.splitlines() if "not all at" in line]
    assert len(lines) == 1 and f"polytrack sync {run.id}" in lines[0]
    # What is left goes with `polytrack sync`: here, to the same (now quick) backend.
    assert main(["--home", str(home), "sync", run.id, "--backend", "memory://stuck-cli"]) == 0


def test_kill_9_in_mid_sync_then_sync_again_delivers_exactly_once(
    home: Path, tmp_path: Path
) -> None:
    """A training process killed right after the server applied a batch it never heard
    back about: syncing again sends that batch again (same seq) and the rest, and the
    server holds each point once; the run shows crashed."""
    server = tmp_path / "server.jsonl"
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import polytrack
            from _file_backend import FileBackend

            run = polytrack.init(
                backend=FileBackend(__import__("pathlib").Path({str(server)!r}), die_on_seq=2),
                capture=False,
            )
            print(run.id, flush=True)
            deadline = time.monotonic() + 60
            step = 0
            while time.monotonic() < deadline:  # until the backend kills the process
                run.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
                step += 1
                if step % 500 == 0:
                    time.sleep(0.02)
            sys.exit(3)
            """
        )
    )
    env = {**os.environ, "POLYTRACK_HOME": str(home), "POLYTRACK_SYNC_INTERVAL": "0.05"}
    process = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert process.returncode == -9, process.stderr
    run_id = process.stdout.split()[0]
    directory = home / "runs" / run_id
    backend = FileBackend(server)
    state = SyncState.load(state_path(directory, backend.key), backend.key)
    assert state.pending is not None and state.pending[0] == 2  # died holding batch 2
    sync = RunSync.open(directory, backend)
    while not sync.step(live=False, crashed_at=time.time()).caught_up:
        pass
    sync.close()
    steps = [step for step, _ in backend.points(run_id, "loss")]
    logged = polytrack.get_run(run_id, home=home).metrics["loss"].count
    assert len(steps) == len(set(steps)) == logged, (len(steps), len(set(steps)), logged)
    assert sorted(steps) == list(range(logged))
    assert backend.statuses(run_id)[-1] == "crashed"


def test_pending_batch_survives_a_crash_and_is_resent_identically(home: Path) -> None:
    """The range recorded as pending before a write is rebuilt exactly on the next start."""
    run = polytrack.init(dir=home, mode="offline", **QUIET)
    _logged(run, 5_000)
    run.finish()

    class Crash(Exception):
        pass

    class CrashingBackend(InMemoryBackend):
        def write(self, run_id: str, batch: Batch) -> None:
            super().write(run_id, batch)
            raise Crash  # as if the process died right after the server applied it

    backend = CrashingBackend("crashy")
    sync = RunSync.open(run.dir, backend, max_points=3_000)
    with pytest.raises(Crash):
        sync.step(live=False)
    sync.close()
    first = list(backend.runs[run.id].metrics.items())
    state = SyncState.load(state_path(run.dir, backend.key), backend.key)
    assert state.pending is not None and state.pending[0] == 0

    recorder = InMemoryBackend("crashy")  # the same key: the same sync state
    sync = RunSync.open(run.dir, recorder, max_points=3_000)
    while not sync.step(live=False).caught_up:
        pass
    sync.close()
    resent = recorder.runs[run.id]
    assert sorted(resent.seqs) == list(range(len(resent.seqs)))
    for key, points in first:
        assert resent.metrics[key][: len(points)] == points  # batch 0 again, bit for bit


def test_one_process_at_a_time_ships_a_run_to_a_backend(home: Path) -> None:
    """A second RunSync for the same run and backend is refused while the first holds it."""
    run = polytrack.init(dir=home, mode="offline", **QUIET)
    run.finish()
    backend = InMemoryBackend("locks")
    first = RunSync.open(run.dir, backend)
    with pytest.raises(SyncBusyError):
        RunSync.open(run.dir, backend)
    first.close()
    RunSync.open(run.dir, backend).close()
    RunSync.open(run.dir, InMemoryBackend("other")).close()  # another backend: its own


def test_resumed_run_ships_every_attempt(home: Path) -> None:
    """A run continued as a new attempt sends both attempts' points, each once."""
    backend = InMemoryBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    run.log_metric("x", 0.0, step=0)
    run.finish()
    again = polytrack.init(dir=home, resume=run.id, backend=backend, **QUIET)
    again.log_metric("x", 1.0)
    again.finish()
    assert backend.points(run.id, "x") == [(0, 0.0), (1, 1.0)]
    assert backend.runs[run.id].opened == 2


def test_offline_mode_syncs_nothing_until_polytrack_sync(home: Path) -> None:
    """Offline: no thread, no state; `polytrack sync` sends it all later."""
    run = polytrack.init(dir=home, mode="offline", backend="memory://offline", **QUIET)
    assert not [t for t in threading.enumerate() if t.name.startswith("polytrack-sync")]
    expected = _logged(run, 500)
    run.finish()
    assert not (run.dir / "sync").exists()
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--home", str(home), "sync", "--all", "--backend", "memory://offline"],
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    backend = InMemoryBackend.from_uri("memory://offline")
    assert _sorted(backend.points(run.id, "loss")) == expected["loss"]
    assert f"{run.id}: 1,050 points" in err.getvalue()
    # Again: nothing left to send, nothing sent twice.
    assert main(["--home", str(home), "sync", "--all", "--backend", "memory://offline"]) == 0
    assert len(backend.points(run.id, "loss")) == 500


def test_sync_needs_a_backend_and_runs(home: Path) -> None:
    """`polytrack sync` without runs, or without a backend, says what is missing."""
    err = io.StringIO()
    assert main(["--home", str(home), "sync"], stderr=err) == 1
    assert "--all" in err.getvalue()
    err = io.StringIO()
    assert main(["--home", str(home), "sync", "--all"], stderr=err) == 1
    assert "POLYTRACK_BACKEND" in err.getvalue()


def test_backend_uri_from_environment_and_errors_at_init(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POLYTRACK_BACKEND picks the backend; a URI without a known scheme fails init()."""
    monkeypatch.setenv("POLYTRACK_BACKEND", "memory://from-env")
    run = polytrack.init(dir=home, **QUIET)
    run.finish()
    assert run.id in InMemoryBackend.from_uri("memory://from-env").runs
    with pytest.raises(BackendConfigError, match="no backend for ftp://"):
        polytrack.init(dir=home, backend="ftp://host/x", **QUIET)
    with pytest.raises(BackendConfigError, match="has no scheme"):
        polytrack.init(dir=home, backend="localhost:5000", **QUIET)


def test_config_file_with_credentials_must_be_private(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config file holding credentials that others may read is refused, naming it."""
    config = tmp_path / "config.toml"
    config.write_text(
        'backend = "memory://from-config"\n'
        '[credentials."memory://from-config"]\ntoken = "s3cr3t-token"\n'
    )
    config.chmod(0o644)
    monkeypatch.setenv("POLYTRACK_CONFIG", str(config))
    with pytest.raises(BackendConfigError, match="chmod 600") as caught:
        polytrack.init(dir=home, **QUIET)
    assert "s3cr3t" not in str(caught.value)
    config.chmod(0o600)
    run = polytrack.init(dir=home, **QUIET)
    run.finish()
    assert run.id in InMemoryBackend.from_uri("memory://from-config").runs


def test_credentials_never_reach_the_run_or_its_sync_state(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password in the backend URI is in no file of the run."""
    monkeypatch.setenv("POLYTRACK_BACKEND", "memory://user:hunter2@creds")
    run = polytrack.init(dir=home, capture={"environment": True}, **{})
    run.finish()
    for path in run.dir.rglob("*"):
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path


def test_snapshot_files_and_output_are_uploaded(home: Path, tmp_path: Path) -> None:
    """The diff, data manifests and the output log go up as `polytrack/...` artifacts."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    backend = InMemoryBackend()
    run = polytrack.init(dir=home, backend=backend, capture={"logs": True})
    run.log_data_ref("train", data)
    print("hello from the run")
    run.finish()
    artifacts = backend.runs[run.id].artifacts
    logs = [name for name in artifacts if name.startswith("polytrack/output-")]
    assert logs and b"hello from the run" in artifacts[logs[0]][1]
    manifests = [name for name in artifacts if name.startswith("polytrack/manifest-")]
    assert len(manifests) == 1
    assert "a.csv" in json.loads(artifacts[manifests[0]][1])


def test_tail_stops_at_an_unfilled_slot_of_a_live_segment(home: Path) -> None:
    """Past the checksummed range, a live tail waits for a slot being written; a dead one
    skips it for good."""
    run = polytrack.init(dir=home, mode="offline", **QUIET)
    for step in range(10):
        run.log_metric("x", float(step), step=step)
    segment = run.dir / "points-000-000-00000.seg"  # the next ones are mapped ahead of need
    with segment.open("r+b") as file:
        file.seek(64 + 4 * 24 + 22)  # slot 4's kind field: as if its store had not landed
        kind = file.read(2)
        file.seek(-2, os.SEEK_CUR)
        file.write(b"\0\0")
    tail = JournalTail(run.dir)
    live = tail.read(Position(), live=True)
    assert [c.steps.tolist() for c in live.chunks] == [[0, 1, 2, 3]]
    dead = JournalTail(run.dir).read(Position(), live=False)
    assert [c.steps.tolist() for c in dead.chunks] == [[0, 1, 2, 3, 5, 6, 7, 8, 9]]
    with segment.open("r+b") as file:
        file.seek(64 + 4 * 24 + 22)
        file.write(kind)
    later = tail.read(live.end, live=True)
    assert [c.steps.tolist() for c in later.chunks] == [[4, 5, 6, 7, 8, 9]]
    run.finish()


def test_memory_stays_bounded_by_the_batch_size(home: Path) -> None:
    """However large the backlog, a batch holds at most max_points points."""
    run = polytrack.init(dir=home, mode="offline", **QUIET)
    steps = np.arange(50_000)
    for step in steps.tolist():
        run.log_metric("x", 1.0, step=step)
    run.finish()
    sizes: list[int] = []

    class Sizes(InMemoryBackend):
        def write(self, run_id: str, batch: Batch) -> None:
            sizes.append(batch.points)
            super().write(run_id, batch)

    sync = RunSync.open(run.dir, Sizes("sizes"), max_points=4_000)
    while not sync.step(live=False).caught_up:
        pass
    sync.close()
    assert max(sizes) <= 4_000 and sum(sizes) == 50_000


def test_third_party_backend_instance_is_not_closed(home: Path) -> None:
    """An instance passed to init() belongs to the caller: used, never closed."""
    backend = InMemoryBackend("mine")
    assert isinstance(backend, Backend)
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    run.finish()
    assert backend.closed == 0 and backend.runs[run.id].status == "succeeded"


def test_artifact_whose_file_vanished_is_set_aside(home: Path, tmp_path: Path) -> None:
    """A file gone before upload is named as set aside; the run still completes."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1\n")
    run = polytrack.init(dir=home, mode="offline", **QUIET)
    ref = run.log_data_ref("train", data)
    run.finish()
    (run.dir / ref.manifest_file).unlink()
    backend = InMemoryBackend("vanished")
    sync = RunSync.open(run.dir, backend, warn=lambda message: None)
    while not sync.step(live=False).caught_up:
        pass
    sync.close()
    state = SyncState.load(state_path(run.dir, backend.key), backend.key)
    expected = [f"artifact polytrack/{ref.manifest_file}"]
    assert [entry["what"] for entry in state.set_aside] == expected
    assert backend.runs[run.id].status == "succeeded"


def test_artifact_protocol_carries_digest_and_size(tmp_path: Path) -> None:
    """An Artifact refuses a negative size; its digest is what the engine computed."""
    with pytest.raises(ValueError):
        Artifact(path=tmp_path, name="x", digest="sha256:" + "0" * 64, size=-1)
    started = RunStarted(
        id="r1", project="p", name="n", created_at=0.0, host="h", pid=1, process_started=0.0
    )
    backend = InMemoryBackend("proto")
    backend.open_run(started, workdir=tmp_path)
    (tmp_path / "f").write_bytes(b"abc")
    backend.upload_artifact("r1", Artifact(tmp_path / "f", "f", "sha256:" + "1" * 64, 3))
    assert backend.runs["r1"].artifacts["f"][1] == b"abc"


def test_a_third_party_backend_registers_through_an_entry_point(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package that declares a `polytrack.backends` entry point for its scheme is used
    for URIs of that scheme."""
    site = tmp_path / "site"
    info = site / "acme_backend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[polytrack.backends]\nacme+https = acme_backend:from_uri\n"
    )
    (site / "acme_backend.py").write_text(
        textwrap.dedent(
            """
            from polytrack.sync.backends.memory import InMemoryBackend

            def from_uri(uri, *, environ, config):
                return InMemoryBackend.from_uri("memory://acme")
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    try:
        run = polytrack.init(dir=home, backend="acme+https://tracking.acme.example", **QUIET)
        run.log_metric("x", 1.0, step=0)
        run.finish()
    finally:
        sys.modules.pop("acme_backend", None)
    assert InMemoryBackend.from_uri("memory://acme").points(run.id, "x") == [(0, 1.0)]
