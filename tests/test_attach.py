"""Attaching to a run by id (`POLYTRACK_RUN_ID`) and handing a run over (`Run.hand_over`):
how a Kubernetes job joins the run that `polytrack run` made for it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

import polytrack
from polytrack.capture.logs import LogWriter, read_log
from polytrack.errors import InvalidInputError, RunStateError, TrackingWarning
from polytrack.settings import Settings
from polytrack.store.local import LocalStore


def _environ(home: Path, **extra: str) -> dict[str, str]:
    return {
        "POLYTRACK_HOME": str(home),
        "POLYTRACK_CACHE_DIR": os.environ["POLYTRACK_CACHE_DIR"],
        **extra,
    }


def test_settings_read_the_run_id_and_name() -> None:
    """POLYTRACK_RUN_ID and POLYTRACK_RUN_NAME land in Settings; a bad id is refused."""
    settings = Settings.from_env({"POLYTRACK_RUN_ID": "a1b2c3d4", "POLYTRACK_RUN_NAME": "train"})
    assert (settings.run_id, settings.run_name) == ("a1b2c3d4", "train")
    assert Settings.from_env({}).run_id is None
    with pytest.raises(InvalidInputError, match="POLYTRACK_RUN_ID must be"):
        Settings.from_env({"POLYTRACK_RUN_ID": "../etc"})


def test_run_id_creates_the_run_under_that_id(home: Path) -> None:
    """In a fresh store (a pod's), init() records into a new run of exactly that id."""
    environ = _environ(home, POLYTRACK_RUN_ID="k8srun01", POLYTRACK_RUN_NAME="train")
    with polytrack.init(project="mnist", capture=False, environ=environ) as run:
        assert (run.id, run.name, run.attempt) == ("k8srun01", "train", 0)
        run.log_metrics({"loss": 0.5}, step=0)
    info = polytrack.get_run("k8srun01", home=home)
    assert (info.status, info.name, info.project, info.attempts) == (
        "succeeded",
        "train",
        "mnist",
        1,
    )


def test_explicit_name_wins_over_the_run_name() -> None:
    """POLYTRACK_RUN_NAME is only the default."""
    environ = _environ(Path.cwd() / "h", POLYTRACK_RUN_NAME="from-env")
    with polytrack.init(name="mine", capture=False, environ=environ) as run:
        assert run.name == "mine"


def test_run_id_continues_an_existing_run_as_a_new_attempt(home: Path) -> None:
    """An existing run gets a new attempt: its project and name stay, steps go on."""
    with polytrack.init(project="p", name="first", dir=home, capture=False) as run:
        run.log_metrics({"loss": 1.0}, step=4)
    environ = _environ(home, POLYTRACK_RUN_ID=run.id)
    with polytrack.init(capture=False, environ=environ) as again:
        assert (again.id, again.attempt, again.project, again.name) == (run.id, 1, "p", "first")
        again.log_metrics({"loss": 0.5})
    view = polytrack.get_run(run.id, home=home)
    assert view.attempts == 2
    assert view.history("loss")[0].tolist() == [4, 5]


def test_run_id_of_a_live_run_is_refused(home: Path) -> None:
    """A run still owned by a live process cannot be attached to."""
    live = polytrack.init(dir=home, capture=False)
    polytrack._state.forget(live)  # not current: the next init() leaves it running
    try:
        with pytest.raises(RunStateError, match="still running"):
            polytrack.init(capture=False, environ=_environ(home, POLYTRACK_RUN_ID=live.id))
    finally:
        live.finish()


def test_hand_over_leaves_the_run_running_without_a_final_status(home: Path) -> None:
    """A handed-over run reads as running, not crashed, once its process is gone."""
    run = polytrack.init(dir=home, capture=False, settings=Settings.from_env(_environ(home)))
    run.hand_over("kubernetes:ml/train-x")
    assert run.handed_over_to == "kubernetes:ml/train-x"
    assert polytrack.current_run() is None
    with LocalStore.open(home, stale_after=0.0) as store:  # any heartbeat is stale
        info = store.read_run(run.id).info
        assert (info.status, info.finished_at) == ("running", None)
        assert store.handed_over(run.id).owner == "kubernetes:ml/train-x"


def test_calls_after_hand_over_warn_and_record_nothing(home: Path) -> None:
    """log_*, finish() and a second hand_over() after hand_over() change nothing."""
    run = polytrack.init(dir=home, capture=False)
    run.hand_over("kubernetes:ml/a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log_params({"lr": 0.1})
        run.log_metrics({"loss": 1.0}, step=0)
    assert any(issubclass(w.category, TrackingWarning) for w in caught)
    assert "after it was handed over" in str(caught[0].message)
    run.finish("failed")
    run.hand_over("kubernetes:ml/b")
    with LocalStore.open(home) as store:
        info = store.read_run(run.id).info
        assert (info.status, info.params, info.metrics) == ("running", {}, {})
        assert store.handed_over(run.id).owner == "kubernetes:ml/a"


def test_handed_over_run_can_be_attached_and_finished(home: Path) -> None:
    """The new owner attaches although the run shows running, and its status counts."""
    run = polytrack.init(project="p", name="t", dir=home, capture=False)
    run.hand_over("kubernetes:ml/t")
    environ = _environ(home, POLYTRACK_RUN_ID=run.id)
    attached = polytrack.init(capture=False, environ=environ)
    assert attached.attempt == 1
    with LocalStore.open(home) as store:
        assert store.handed_over(run.id) is None  # a process owns it again
    attached.finish("failed", message="BackoffLimitExceeded")
    view = polytrack.get_run(run.id, home=home)
    assert (view.status, view.message, view.attempts) == ("failed", "BackoffLimitExceeded", 2)


def test_resume_also_takes_a_handed_over_run(home: Path) -> None:
    """`resume=` continues a handed-over run as it does a finished one."""
    run = polytrack.init(dir=home, capture=False)
    run.hand_over("kubernetes:ml/x")
    with polytrack.init(dir=home, resume=run.id, capture=False) as again:
        assert again.id == run.id


def test_log_writer_appends_lines_readers_see(tmp_path: Path) -> None:
    """LogWriter writes the LogCapture format: read_log gets the lines back, stamped."""
    path = tmp_path / "output-001.log"
    with LogWriter.open(path, max_bytes=1 << 20) as log:
        log.write(["epoch 1", "tab\there"], t=1700000000.5)
        log.write(["oops"], t=1700000001.0, stream="stderr")
    lines = read_log(path)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "epoch 1"),
        ("stdout", "tab\there"),
        ("stderr", "oops"),
    ]
    assert lines[0].t == pytest.approx(1700000000.5)
    with LogWriter.open(path, max_bytes=1 << 20) as log, pytest.raises(InvalidInputError):
        log.write(["x"], stream="polytrack")
