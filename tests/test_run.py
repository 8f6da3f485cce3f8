"""The run API: init, logging, params, tags, lifecycle, modes and resume."""

from __future__ import annotations

import argparse
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

import polytrack
from polytrack import _state
from polytrack.errors import (
    InvalidInputError,
    InvalidMetricError,
    RunStateError,
    TrackingWarning,
)

pytestmark = pytest.mark.usefixtures("hot_path")


def test_quick_start_flow(home: Path) -> None:
    """Metrics and params logged through init/log_metrics/finish come back from runs()."""
    run = polytrack.init(
        project="mnist",
        name="baseline",
        params={"lr": 0.01, "net": {"depth": 4}},
        tags=["cnn"],
        dir=home,
    )
    for step in range(100):
        polytrack.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 100}, step=step)
    run.finish()
    found = polytrack.runs(
        project="mnist",
        where="metrics.loss < 0.2 and params.lr == 0.01",
        order_by="-metrics.acc",
        home=home,
    )
    assert [r.id for r in found] == [run.id]
    view = found[0]
    assert view.status == "succeeded"
    assert view.params == {"lr": 0.01, "net.depth": 4}
    assert view.tags == ("cnn",)
    steps, values = view.history("loss")
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == list(range(100))
    assert values[-1] == pytest.approx(0.01)
    assert view.metrics["acc"].max == pytest.approx(0.99)


def test_step_auto_increments(home: Path) -> None:
    """An omitted step is one more than the last step logged, explicit or not."""
    with polytrack.init(dir=home) as run:
        run.log_metrics({"a": 1.0})
        run.log_metrics({"a": 2.0})
        run.log_metrics({"a": 3.0}, step=10)
        run.log_metric("a", 4.0)
    steps, values = polytrack.get_run(run.id, home=home).history("a")
    assert steps.tolist() == [0, 1, 10, 11]
    assert values.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_epoch_is_recorded_at_the_step(home: Path) -> None:
    """`epoch=` records the metric `epoch` at the same step."""
    with polytrack.init(dir=home) as run:
        run.log_metrics({"loss": 0.5}, step=7, epoch=2)
    steps, values = polytrack.get_run(run.id, home=home).history("epoch")
    assert steps.tolist() == [7] and values.tolist() == [2.0]


def test_varying_key_sets_and_many_keys(home: Path) -> None:
    """Dicts with different key sets, orders and sizes all land under the right keys."""
    with polytrack.init(dir=home) as run:
        for step in range(50):
            run.log_metrics({"a": step, "b": -step}, step=step)
            run.log_metrics({"b": -step, "a": step}, step=step)  # same keys, other order
            if step % 10 == 0:
                run.log_metrics({f"k{i}": i * step for i in range(20)}, step=step)
    view = polytrack.get_run(run.id, home=home)
    _, a = view.history("a")
    assert a.size == 100 and np.all(a[::2] == a[1::2])
    assert view.history("k19")[1].tolist() == [19.0 * s for s in range(0, 50, 10)]


def test_numpy_and_torch_like_scalars_accepted(home: Path) -> None:
    """numpy scalars and 0-d arrays are accepted as values, steps and params."""
    with polytrack.init(dir=home, params={"lr": np.float32(0.5), "n": np.int64(3)}) as run:
        run.log_metrics({"x": np.float64(1.5), "y": np.array(2.5)}, step=np.int64(4))
        run.log_metrics({"z": True}, step=5)
    view = polytrack.get_run(run.id, home=home)
    assert view.params == {"lr": 0.5, "n": 3}
    assert view.history("y")[1].tolist() == [2.5]
    assert view.history("z")[1].tolist() == [1.0]


def test_nan_and_inf_are_stored_as_such(home: Path) -> None:
    """NaN and ±inf come back unchanged from history()."""
    with polytrack.init(dir=home) as run:
        run.log_metrics({"v": float("nan")}, step=0)
        run.log_metrics({"v": float("inf")}, step=1)
        run.log_metrics({"v": -math.inf}, step=2)
        run.log_metrics({"v": 1.0}, step=3)
    view = polytrack.get_run(run.id, home=home)
    values = view.history("v")[1]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf
    assert view.metrics["v"].min == -math.inf and view.metrics["v"].max == math.inf


@pytest.mark.parametrize(
    ("metrics", "step", "error", "fragment"),
    [
        ({"loss": "high"}, 0, InvalidMetricError, "metric 'loss': value must be a real number"),
        ({"loss": "0.5"}, 0, InvalidMetricError, "got str '0.5'"),  # text, however numeric
        ({"a": 1.0, "b": b"2"}, 0, InvalidMetricError, "metric 'b'"),
        ({"loss": None}, 0, InvalidMetricError, "metric 'loss'"),
        ({"loss": [1.0]}, 0, InvalidMetricError, "metric 'loss'"),
        ({3: 1.0}, 0, InvalidMetricError, "metric keys must be strings; got int 3"),
        ({"": 1.0}, 0, InvalidMetricError, "1 to 250 characters"),
        ({"a": 1.0, "b": "x"}, 0, InvalidMetricError, "metric 'b'"),
        ({"loss": 1.0}, 1.5, InvalidInputError, "step must be an integer, got float 1.5"),
        ({"loss": 1.0}, "3", InvalidInputError, "step must be an integer"),
    ],
)
def test_bad_metrics_raise_naming_the_key(
    home: Path, metrics: dict[object, object], step: object, error: type[Exception], fragment: str
) -> None:
    """Bad keys, values and steps raise at once with a message naming them."""
    with polytrack.init(dir=home) as run:
        run.log_metrics({"ok": 1.0}, step=0)
        with pytest.raises(error, match=fragment.replace("[", r"\[")):
            run.log_metrics(metrics, step=step)  # type: ignore[arg-type]
        run.log_metrics({"ok": 2.0}, step=1)
    assert polytrack.get_run(run.id, home=home).history("ok")[1].tolist() == [1.0, 2.0]


def test_bad_params_raise_naming_the_key(home: Path) -> None:
    """An unserializable param names its full dotted key; nothing of the call is kept."""
    with polytrack.init(dir=home, params={"ok": 1}) as run:
        with pytest.raises(InvalidInputError, match=r"param 'model\.fn': cannot record"):
            run.log_params({"good": 2, "model": {"fn": object()}})
        with pytest.raises(InvalidInputError, match="param keys must be non-empty strings"):
            run.log_params({1: 2})  # type: ignore[dict-item]
    assert polytrack.get_run(run.id, home=home).params == {"ok": 1}


def test_params_flattened_redacted_and_namespace(home: Path) -> None:
    """Nested params flatten with dots, secrets are redacted, argparse works."""
    args = argparse.Namespace(lr=0.1, data=Path("/data/x"), layers=[1, 2])
    with polytrack.init(dir=home, params=args) as run:
        run.log_params(
            {
                "db": {"password": "hunter2", "url": "postgres://bob:s3cret@db:5432/x"},
                "api_key": "abc",
                "flag": None,
            }
        )
    params = polytrack.get_run(run.id, home=home).params
    assert params["lr"] == 0.1 and params["data"] == "/data/x" and params["layers"] == [1, 2]
    assert params["db.password"] == "[REDACTED]" and params["api_key"] == "[REDACTED]"
    assert params["db.url"] == "postgres://bob:[REDACTED]@db:5432/x"
    assert params["flag"] is None
    assert "hunter2" not in "".join(p.read_text("latin-1") for p in run.dir.iterdir())


def test_tags_and_notes(home: Path) -> None:
    """Tags from init and log_tags accumulate without duplicates; notes are kept."""
    with polytrack.init(dir=home, tags=["a"], notes="first try") as run:
        polytrack.log_tags(["b", "a"])
        polytrack.log_tags("c")
        with pytest.raises(InvalidInputError):
            run.log_tags([""])
    view = polytrack.get_run(run.id, home=home)
    assert view.tags == ("a", "b", "c") and view.notes == "first try"


def test_context_manager_marks_failed_and_stopped(home: Path) -> None:
    """An escaping exception marks the run failed; KeyboardInterrupt marks it stopped."""
    with pytest.raises(ZeroDivisionError), polytrack.init(dir=home, name="boom") as failed:
        1 / 0  # noqa: B018
    with pytest.raises(KeyboardInterrupt), polytrack.init(dir=home, name="ctrl-c") as stopped:
        raise KeyboardInterrupt
    f = polytrack.get_run(failed.id, home=home)
    assert f.status == "failed" and "ZeroDivisionError" in (f.message or "")
    assert polytrack.get_run(stopped.id, home=home).status == "stopped"


def test_finish_is_idempotent_and_logging_after_warns_once(home: Path) -> None:
    """finish() twice is harmless; logging afterwards warns once and records nothing."""
    run = polytrack.init(dir=home)
    run.log_metrics({"a": 1.0}, step=0)
    run.finish()
    run.finish("failed")
    with pytest.warns(TrackingWarning, match="after it finished"):
        run.log_metrics({"a": 2.0}, step=1)
        run.log_metrics({"a": 3.0}, step=2)
    assert polytrack.get_run(run.id, home=home).status == "succeeded"
    assert polytrack.get_run(run.id, home=home).history("a")[1].tolist() == [1.0]


def test_module_functions_without_run_warn(home: Path) -> None:
    """Module-level log calls before init() warn and do nothing."""
    with pytest.warns(TrackingWarning, match="before polytrack.init"):
        polytrack.log_metrics({"a": 1.0})


def test_new_init_finishes_previous(home: Path) -> None:
    """A second init() finishes the current run and becomes current."""
    first = polytrack.init(dir=home)
    second = polytrack.init(dir=home)
    assert first.status == "succeeded" and polytrack.current_run() is second
    second.finish()
    assert polytrack.current_run() is None


def test_disabled_mode_records_nothing(home: Path) -> None:
    """mode='disabled' returns a run whose calls are no-ops and writes no files."""
    run = polytrack.init(dir=home, mode="disabled", params={"a": 1})
    polytrack.log_metrics({"a": 1.0})
    run.log_params({"b": 2})
    run.finish()
    assert not home.exists()


def test_invalid_mode_and_settings(home: Path) -> None:
    """A bad mode or env setting is a clear error naming it."""
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        polytrack.init(dir=home, mode="sometimes")
    with pytest.raises(InvalidInputError, match="POLYTRACK_FSYNC_INTERVAL"):
        polytrack.init(dir=home, environ={"POLYTRACK_FSYNC_INTERVAL": "soon"})


def test_resume_continues_steps(home: Path) -> None:
    """resume=<id> appends to the same run and auto steps continue after the last one."""
    with polytrack.init(dir=home, name="long") as run:
        for _ in range(5):
            run.log_metrics({"loss": 1.0})
    with polytrack.init(dir=home, resume=run.id[:5]) as again:
        assert again.id == run.id and again.name == "long"
        again.log_metrics({"loss": 0.5})
    view = polytrack.get_run(run.id, home=home)
    assert view.history("loss")[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert view.attempts == 2 and view.status == "succeeded"


def test_resume_of_a_live_run_is_refused(home: Path) -> None:
    """Resuming a run that is still running raises RunStateError."""
    run = polytrack.init(dir=home)
    _state.forget(run)  # keep it running while another init() resumes it
    try:
        with pytest.raises(RunStateError, match="still running"):
            polytrack.init(dir=home, resume=run.id)
    finally:
        run.finish()


def test_read_only_home_falls_back_with_a_warning(tmp_path: Path) -> None:
    """An unwritable home warns once and records elsewhere instead of failing training."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the home should be")
    with pytest.warns(TrackingWarning, match="cannot write to"):
        run = polytrack.init(dir=blocked / "home")
    run.log_metrics({"a": 1.0})
    run.finish()
    assert run.dir.is_dir() and not str(run.dir).startswith(str(blocked))


def test_many_threads_log_at_once(home: Path) -> None:
    """Points logged concurrently from many threads are all recorded."""
    import threading

    run = polytrack.init(dir=home)

    def work(worker: int) -> None:
        for step in range(2000):
            run.log_metrics({f"w{worker}": float(step)}, step=step)
            run.log_metrics({"shared": 1.0, f"x{worker}": 2.0}, step=step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    view = polytrack.get_run(run.id, home=home)
    for worker in range(8):
        steps, values = view.history(f"w{worker}")
        assert steps.tolist() == list(range(2000))
        assert values.tolist() == [float(s) for s in range(2000)]
    assert view.metrics["shared"].count == 16000


def test_no_warnings_in_a_normal_run(home: Path) -> None:
    """A normal run emits no warnings at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with polytrack.init(dir=home, params={"a": 1}) as run:
            for i in range(10000):
                run.log_metrics({"x": i}, step=i)


def test_resume_after_a_resume_that_died_early(home: Path) -> None:
    """An attempt that left only an empty events file does not block the next resume."""
    with polytrack.init(dir=home) as run:
        run.log_metrics({"a": 1.0})
    (run.dir / "events-001.log").write_bytes(b"")  # a resume killed before its first record
    with polytrack.init(dir=home, resume=run.id) as again:
        again.log_metrics({"a": 2.0})
    assert (run.dir / "events-002.log").exists()
    assert polytrack.get_run(run.id, home=home).history("a")[0].tolist() == [0, 1]


def test_bad_value_in_a_new_key_set_records_nothing_of_the_call(home: Path) -> None:
    """A bad value anywhere in a dict records none of that call's values."""
    with polytrack.init(dir=home) as run:
        with pytest.raises(InvalidMetricError, match="metric 'c'"):
            run.log_metrics({"a": 1.0, "b": 2.0, "c": "x"}, step=0)
        run.log_metrics({"a": 3.0, "b": 4.0, "c": 5.0}, step=1)
        with pytest.raises(InvalidMetricError, match="metric 'b'"):
            run.log_metrics({"a": 6.0, "b": "y", "c": 7.0}, step=2)
    view = polytrack.get_run(run.id, home=home)
    assert view.history("a")[1].tolist() == [3.0]
    assert view.history("c")[1].tolist() == [5.0]


def test_notes_and_failure_messages_are_redacted_and_kept_on_resume(home: Path) -> None:
    """Credentials in notes and failure messages are dropped; resume keeps the notes."""
    notes = "db at mysql://u:pw@h/d"
    with pytest.raises(ConnectionError), polytrack.init(dir=home, notes=notes) as run:
        raise ConnectionError("cannot reach postgres://admin:hunter2@db:5432/x")
    with polytrack.init(dir=home, resume=run.id):
        pass
    info = polytrack.get_run(run.id, home=home)
    assert info.notes == "db at mysql://u:[REDACTED]@h/d"
    assert "hunter2" not in "".join(p.read_text("latin-1") for p in run.dir.iterdir())


def test_run_references(home: Path) -> None:
    """Runs are found by id, prefix or name within a project; '..' and others fail cleanly."""
    with polytrack.init(dir=home, project="p", name="alpha") as run:
        pass
    assert polytrack.get_run(run.id, home=home).id == run.id
    assert polytrack.get_run(run.id[:4], home=home).id == run.id
    assert polytrack.get_run("alpha", project="p", home=home).id == run.id
    for ref in ("..", ".", "nope"):
        with pytest.raises(polytrack.RunNotFoundError):
            polytrack.get_run(ref, home=home)
    with pytest.raises(polytrack.RunNotFoundError):
        polytrack.get_run(run.id, project="other", home=home)


def test_reading_a_missing_home_creates_nothing(tmp_path: Path) -> None:
    """Listing runs of a home that does not exist returns [] and creates nothing."""
    missing = tmp_path / "typo"
    assert polytrack.runs(home=missing) == []
    assert not missing.exists()


def test_the_configured_hot_path_is_used(home: Path, hot_path: str) -> None:
    """POLYTRACK_SPEEDUPS picks the C appender or the pure-Python closure."""
    with polytrack.init(dir=home) as run:
        assert run._writer.speedups == (hot_path == "c")
        assert callable(run.log_metrics)


def test_values_of_every_type_mix_in_one_call(home: Path) -> None:
    """Floats, ints, bools and numpy scalars mixed in one dict all land (C: slow path too)."""
    with polytrack.init(dir=home) as run:
        for step in range(3):
            run.log_metrics(
                {"f": 0.5, "i": 2, "b": False, "n32": np.float32(1.5), "n64": np.float64(3)},
                step=step,
            )
    view = polytrack.get_run(run.id, home=home)
    assert {key: view.history(key)[1].tolist() for key in ("f", "i", "b", "n32", "n64")} == {
        "f": [0.5] * 3,
        "i": [2.0] * 3,
        "b": [0.0] * 3,
        "n32": [1.5] * 3,
        "n64": [3.0] * 3,
    }


def test_wrong_call_shapes_are_clear_errors(home: Path) -> None:
    """A non-mapping raises a clear error, not a crash; other keywords are metrics, as in
    Polyaxon's client (`log_metrics(loss=0.5)`), so a typo of `step` is a metric too."""
    with polytrack.init(dir=home) as run:
        with pytest.raises(InvalidMetricError):
            run.log_metrics([("a", 1.0)])  # type: ignore[arg-type]
        run.log_metrics({"a": 1.0}, stepp=3)
        run.log_metrics({"a": 1.0}, 4, None)
    view = polytrack.get_run(run.id, home=home)
    assert view.history("a")[0].tolist() == [0, 4]
    assert view.history("stepp")[1].tolist() == [3.0]


def test_no_writable_place_at_all_records_nothing_but_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When neither the home nor the fallback can be written, init() warns and disables."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where directories should be")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))  # what gettempdir() returns
    with pytest.warns(TrackingWarning, match="recording nothing"):
        run = polytrack.init(dir=blocked / "home")
    assert isinstance(run, polytrack.DisabledRun)
    run.log_metrics({"a": 1.0})
    run.finish()


def test_bad_epoch_records_nothing_of_the_call(home: Path) -> None:
    """A bad epoch raises before any of the call's metrics is recorded."""
    with polytrack.init(dir=home) as run:
        with pytest.raises(InvalidMetricError, match="metric 'epoch'"):
            run.log_metrics({"a": 1.0}, step=0, epoch="first")  # type: ignore[arg-type]
        run.log_metrics({"a": 2.0}, step=1, epoch=1)
    view = polytrack.get_run(run.id, home=home)
    assert view.history("a")[1].tolist() == [2.0]
    assert view.history("epoch")[1].tolist() == [1.0]
