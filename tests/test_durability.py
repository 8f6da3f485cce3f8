"""Crash safety: kill -9, many processes, forks, torn and corrupt files, index rebuild."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import attrs
import pytest

import polytrack
from polytrack.store.local import INDEX_FILE, LocalStore
from polytrack.store.reader import read_run_files

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("hot_path")]

_CHILD = textwrap.dedent(
    """
    import os, sys, polytrack
    home, mode = sys.argv[1], sys.argv[2]
    run = polytrack.init(project="crash", dir=home, params={"mode": mode})
    print(run.id, flush=True)
    step = 0
    while True:
        if mode == "rows":
            run.log_metrics({"loss": step * 0.5, "acc": -step}, step=step)
        else:
            run.log_metrics({"loss": step * 0.5}, step=step)
        # Report the step only after log_metrics returned: it must survive the kill.
        os.write(1, b"%d\\n" % step)
        step += 1
    """
)


@pytest.mark.parametrize("mode", ["points", "rows"])
def test_kill_9_loses_nothing_that_was_returned(home: Path, mode: str) -> None:
    """SIGKILL right after log calls returned: every reported point reads back, store opens."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), mode],
        stdout=subprocess.PIPE,
        # The kill, not fsync, matters. Output capture is off: the parent counts returned
        # calls by the lines it reads, which must not wait in a capture pipe.
        env={**os.environ, "POLYTRACK_FSYNC_INTERVAL": "30", "POLYTRACK_CAPTURE_LOGS": "0"},
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().decode().strip()
    # Let it log across several segment rotations, then kill it mid-stream.
    reported = -1
    deadline = time.monotonic() + 60
    while reported < 150_000 and time.monotonic() < deadline:
        reported = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read().split()
    child.stdout.close()
    child.wait()
    last_returned = int(rest[-1]) if rest else reported
    assert last_returned >= 150_000

    with LocalStore.open(home) as store:
        info = store.get(run_id)
        steps = store.history(run_id, "loss").steps
    assert info.status == "crashed"
    # Every returned call is there; at most the one in flight at the kill is extra.
    assert steps[: last_returned + 1].tolist() == list(range(last_returned + 1))
    assert steps.size in (last_returned + 1, last_returned + 2)
    assert info.metrics["loss"].count == steps.size
    assert not read_run_files(home / "runs" / run_id).corrupt


def test_parallel_processes_share_a_home(home: Path) -> None:
    """Several processes logging into one home at once lose nothing."""
    script = textwrap.dedent(
        """
        import sys, threading, polytrack
        run = polytrack.init(project="par", dir=sys.argv[1], params={"worker": int(sys.argv[2])})
        def work(t):
            for step in range(3000):
                run.log_metrics({f"t{t}": step}, step=step)
        threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
        [t.start() for t in threads]; [t.join() for t in threads]
        run.finish()
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home), str(i)]) for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    found = polytrack.runs(project="par", home=home)
    assert sorted(r.params["worker"] for r in found) == [0, 1, 2, 3]
    for view in found:
        assert view.status == "succeeded"
        for t in range(3):
            assert view.history(f"t{t}")[0].tolist() == list(range(3000))


def test_forked_child_does_not_inherit_the_run(home: Path) -> None:
    """A forked child has no current run and cannot write into the parent's journal."""
    run = polytrack.init(dir=home)
    run.log_metrics({"a": 1.0}, step=0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            import warnings

            warnings.simplefilter("ignore")
            run.log_metrics({"a": 99.0}, step=1)
            polytrack.log_metrics({"a": 98.0}, step=2)
            os.write(write, b"none" if polytrack.current_run() is None else b"live")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"none"
    run.log_metrics({"a": 2.0}, step=3)
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    assert view.history("a")[1].tolist() == [1.0, 2.0]
    assert view.status == "succeeded"


def test_uncaught_exception_marks_run_failed(home: Path) -> None:
    """A script that dies of an exception leaves its run failed, not running."""
    script = "import polytrack, sys; polytrack.init(dir=sys.argv[1]); raise ValueError('bad data')"
    result = subprocess.run([sys.executable, "-c", script, str(home)], capture_output=True)
    assert result.returncode == 1 and b"ValueError: bad data" in result.stderr
    (view,) = polytrack.runs(home=home)
    assert view.status == "failed" and "bad data" in (view.message or "")


def test_forgotten_finish_is_done_at_exit(home: Path) -> None:
    """A script that never calls finish() ends as succeeded."""
    script = (
        "import polytrack, sys; polytrack.init(dir=sys.argv[1]); polytrack.log_metrics({'a': 1})"
    )
    subprocess.run([sys.executable, "-c", script, str(home)], check=True)
    (view,) = polytrack.runs(home=home)
    assert view.status == "succeeded" and view.metrics["a"].count == 1


def test_torn_event_tail_is_skipped(home: Path) -> None:
    """Garbage after the last complete event frame is ignored; earlier records survive."""
    with polytrack.init(dir=home, params={"a": 1}) as run:
        run.log_metrics({"x": 1.0}, step=0)
    events = run.dir / "events-000.log"
    with events.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\xde\xad\xbe\xefhalf a recor")
    files = read_run_files(run.dir)
    assert files.corrupt and "torn" in files.corrupt[0]
    with pytest.warns(polytrack.errors.DamagedRecordsWarning, match="torn"):  # said, once
        assert polytrack.get_run(run.id, home=home).params == {"a": 1}


def test_corrupt_segment_range_is_dropped_not_returned(home: Path) -> None:
    """A flipped byte in a checksummed segment drops that range instead of returning it."""
    with polytrack.init(dir=home) as run:
        for step in range(100):
            run.log_metrics({"x": float(step)}, step=step)
    (segment,) = run.dir.glob("points-*.seg")
    data = bytearray(segment.read_bytes())
    data[64 + 24 * 10 + 9] ^= 0xFF  # inside the value of step 10
    segment.write_bytes(bytes(data))
    files = read_run_files(run.dir)
    assert any("checksum" in c for c in files.corrupt)
    assert "x" not in files.series or 10.0 not in files.series["x"].values.tolist()


def test_index_is_a_rebuildable_cache(home: Path) -> None:
    """Deleting the index loses nothing: the next reader rebuilds it from the run files."""
    with polytrack.init(dir=home, project="p", params={"lr": 0.1}) as run:
        run.log_metrics({"loss": 0.1}, step=0)
    for suffix in ("", "-wal", "-shm"):
        (home / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    (view,) = polytrack.runs(project="p", where="metrics.loss < 0.2", home=home)
    assert view.id == run.id and view.params == {"lr": 0.1}


def test_unindexed_points_of_a_live_run_are_visible(home: Path) -> None:
    """Readers see points a live run wrote after its last indexing."""
    run = polytrack.init(dir=home, project="live")
    run.log_metrics({"loss": 0.9}, step=0)
    assert polytrack.runs(project="live", home=home)[0].metrics["loss"].count == 1
    run.log_metrics({"loss": 0.1}, step=1)
    (view,) = polytrack.runs(project="live", where="metrics.loss < 0.2", home=home)
    assert view.status == "running" and view.history("loss")[1].tolist() == [0.9, 0.1]
    run.finish()


def test_segments_are_trimmed_on_finish(home: Path) -> None:
    """A finished run's files hold about 24 bytes per point, not preallocated space."""
    with polytrack.init(dir=home) as run:
        for step in range(10_000):
            run.log_metrics({"x": 1.0}, step=step)
    total = sum(p.stat().st_size for p in run.dir.glob("points-*.seg"))
    assert total < 10_000 * 24 + 64 * 10
    assert polytrack.get_run(run.id, home=home).metrics["x"].count == 10_000


def test_full_disk_warns_once_and_training_goes_on(home: Path) -> None:
    """When segments cannot be allocated, log calls warn once and never raise."""
    script = textwrap.dedent(
        """
        import resource, signal, sys, warnings, polytrack
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, like ENOSPC
        run = polytrack.init(dir=sys.argv[1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(200_000):
                run.log_metrics({"loss": 1.0}, step=step)
        print(len(caught), caught[0].category.__name__ if caught else "-")
        print(str(caught[0].message) if caught else "")
        run.finish()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(home)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    counts, message = result.stdout.splitlines()[:2]
    assert counts == "1 TrackingWarning"
    assert "could not record metric 'loss'" in message
    (view,) = polytrack.runs(home=home)
    steps = view.history("loss")[0]
    assert steps.size > 10_000 and steps.tolist() == list(range(steps.size))


def test_owner_on_another_host_is_judged_by_heartbeat() -> None:
    """A run owned elsewhere is alive while its heartbeat is fresh, crashed once stale."""
    from polytrack.models import RunStarted
    from polytrack.store.liveness import owner_alive

    started = RunStarted(
        id="abc",
        project="p",
        name="n",
        created_at=0.0,
        host="elsewhere.invalid",
        pid=1,
        process_started=0.0,
    )
    assert owner_alive(started, 1000.0, stale_after=60, now=1030.0)
    assert not owner_alive(started, 1000.0, stale_after=60, now=1100.0)
    assert not owner_alive(started, None, stale_after=60, now=1100.0)


def test_reused_pid_is_not_mistaken_for_the_owner() -> None:
    """Same host and PID but another process start time means the owner is gone."""
    import socket

    from polytrack.models import RunStarted
    from polytrack.store.liveness import owner_alive, process_started

    me = process_started(os.getpid())
    mine = RunStarted(
        id="abc",
        project="p",
        name="n",
        created_at=0.0,
        host=socket.gethostname(),
        pid=os.getpid(),
        process_started=me,
    )
    assert owner_alive(mine, None, stale_after=60, now=time.time())
    reused = attrs.evolve(mine, process_started=me - 3600)
    assert not owner_alive(reused, None, stale_after=60, now=time.time())
