"""A crashed run ended with the last record it wrote, not with its last heartbeat (issue 13):
`runs show`, the index and what `polytrack sync` sends a server all say so."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import polytrack
from polytrack.cli import main
from polytrack.models import DataRef, Event, RunStarted, StatusChanged
from polytrack.store.journal import Events
from polytrack.store.local import LocalStore
from polytrack.sync.backends.memory import InMemoryBackend

# The child logs for this long after init() before it is killed: well under the heartbeat
# interval (5 s), so the heartbeat alone would put its end at its start.
ALIVE_FOR = 1.5


@attrs.frozen
class Killed:
    home: Path
    run_id: str


@pytest.fixture
def killed(home: Path, tmp_path: Path) -> Iterator[Killed]:
    """A run whose process was SIGKILLed while logging, ALIVE_FOR s after init()."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            import polytrack

            run = polytrack.init(project="crash", capture=False)
            print(run.id, flush=True)
            began, step, told = time.monotonic(), 0, False
            while True:  # until killed
                run.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
                step += 1
                if not told and time.monotonic() - began >= {ALIVE_FOR}:
                    print("go", flush=True)  # logging on, until the kill lands
                    told = True
                time.sleep(0.001)
            """
        )
    )
    env = {
        **os.environ,
        "POLYTRACK_HOME": str(home),
        "POLYTRACK_HEARTBEAT_INTERVAL": "5",
        "POLYTRACK_CAPTURE_SYSTEM": "0",
    }
    child = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert child.stdout.readline().strip() == "go"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    yield Killed(home, run_id)


def _last_point_at(home: Path, run_id: str) -> float:
    _, _, times = polytrack.get_run(run_id, home=home).history("loss", with_time=True)
    return float(times.max())


def test_runs_show_ends_a_killed_run_at_its_last_point(killed: Killed) -> None:
    """`runs show` of a run killed 1.5 s in: crashed, a duration over a second, and an
    end time within half a second of its last point; a kill is not damage."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["--home", str(killed.home), "runs", "show", killed.run_id, "--json"]
    assert main(argv, stdout=out, stderr=err, environ={}) == 0, err.getvalue()
    record = json.loads(out.getvalue())
    assert record["status"] == "crashed"
    assert record["finished_at"] - record["created_at"] >= 1.0
    assert abs(record["finished_at"] - _last_point_at(killed.home, killed.run_id)) <= 0.5
    assert record["damaged"] == []
    assert err.getvalue() == ""
    text = io.StringIO()
    argv = ["--home", str(killed.home), "runs", "show", killed.run_id]
    assert main(argv, stdout=text, stderr=io.StringIO(), environ={}) == 0
    (duration,) = [line for line in text.getvalue().splitlines() if line.startswith("duration")]
    assert duration.split()[-1] != "0s", duration


def test_the_index_keeps_the_end_of_a_killed_run(killed: Killed) -> None:
    """A listing (from the index) ends the run at its last point, as a fresh read does."""
    (listed,) = polytrack.runs(home=killed.home)
    fresh = polytrack.get_run(killed.run_id, home=killed.home)
    assert listed.status == fresh.status == "crashed"
    assert listed.finished_at == fresh.finished_at
    assert listed.finished_at is not None
    assert abs(listed.finished_at - _last_point_at(killed.home, killed.run_id)) <= 0.5
    assert fresh.updated_at >= fresh.finished_at


def test_sync_sends_the_end_of_a_killed_run(killed: Killed) -> None:
    """`polytrack sync` of a killed run sends `crashed` at its last record's time: what a
    server (MLflow's end_time, Polyaxon's condition) shows as its end."""
    uri = "memory://crashed-end"
    argv = ["--home", str(killed.home), "sync", killed.run_id, "--backend", uri]
    assert main(argv, stdout=io.StringIO(), stderr=io.StringIO(), environ={}) == 0
    remote = InMemoryBackend.from_uri(uri).runs[killed.run_id]
    status, at, _ = remote.statuses[-1]
    assert status == "crashed"
    assert at == polytrack.get_run(killed.run_id, home=killed.home).finished_at
    assert abs(at - _last_point_at(killed.home, killed.run_id)) <= 0.5
    assert at - remote.started.created_at >= 1.0


def _journal(directory: Path, *events: Event) -> None:
    directory.mkdir(parents=True)
    log = Events.create(directory / "events-000.log")
    for event in events:
        log.append(event)
    log.close()


def test_a_late_event_or_a_late_heartbeat_ends_a_crashed_run(home: Path) -> None:
    """The end of a crashed run is its latest record, an event's time too; a heartbeat
    later than every record (an idle process, alive then) is a later end still."""
    t0 = time.time() - 3600
    directory = home / "runs" / "abc"
    started = RunStarted(
        id="abc", project="p", name="n", created_at=t0, host="another-host", pid=1,
        process_started=t0 - 1,
    )  # fmt: skip
    late = DataRef(
        name="d", role="input", kind="bytes", digest="sha256:" + "0" * 64, size=1,
        logged_at=t0 + 30,
    )  # fmt: skip
    _journal(directory, started, StatusChanged("running", t0), late)
    (directory / "heartbeat").touch()
    os.utime(directory / "heartbeat", (t0 + 5, t0 + 5))
    with LocalStore.open(home) as store:
        info = store.read_run("abc").info
    assert info.status == "crashed" and info.finished_at == t0 + 30
    os.utime(directory / "heartbeat", (t0 + 60, t0 + 60))
    with LocalStore.open(home) as store:
        info = store.read_run("abc").info
    assert info.status == "crashed" and info.finished_at == t0 + 60
