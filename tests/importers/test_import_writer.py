"""The importers' one writer, fed `SourceRun`s built here (no source library): original
times, idempotence, resuming, growing runs, problems named, nothing of this process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest

import polytrack
from polytrack.errors import ImportSourceError
from polytrack.importers._progress import Progress
from polytrack.importers._writer import import_run_id, write_runs
from polytrack.importers.source import (
    SourceFile,
    SourceMedia,
    SourceProblem,
    SourceRun,
    SourceSeries,
)
from polytrack.models import GitState

T0 = 1_600_000_000.0  # 2020-09-13: long before this test runs


def _series(key: str, count: int, *, start: float = T0, every: float = 0.001) -> SourceSeries:
    steps = np.arange(count, dtype=np.int64)
    # Millisecond timestamps, as MLflow keeps them.
    stamps = np.round((start + steps * every) * 1000) / 1000
    return SourceSeries(key=key, steps=steps, values=steps * 0.5, timestamps=stamps)


def _run(original_id: str = "r1", *, points: int = 1000, **changes: object) -> SourceRun:
    base = SourceRun(
        kind="test",
        uri="/data/source",
        original_id=original_id,
        project="imported",
        name=f"run-{original_id}",
        started_at=T0,
        ended_at=T0 + 3600.25,
        status="succeeded",
        params={"lr": 0.1, "layers": 3, "optimizer": "adam"},
        tags=("baseline",),
        notes="first try",
        user="ada",
        git=GitState(available=True, commit="a" * 40, branch="main"),
        environment={"python": "3.10.4", "entrypoint": "train.py", "mlflow.source.type": "LOCAL"},
        series=lambda: [_series("loss", points)],
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


def _write(home: Path, *runs: SourceRun | SourceProblem, **options: object):  # type: ignore[no-untyped-def]
    return write_runs(list(runs), kind="test", source="/data/source", home=home, **options)  # type: ignore[arg-type]


def test_points_keep_their_steps_values_and_millisecond_times(home: Path) -> None:
    """Every point is stored with its step, value and timestamp to the millisecond, also
    over days (several segments) and out of logging order."""
    days = SourceSeries(
        key="acc",
        steps=np.array([3, 1, 2, 10**12]),
        values=np.array([0.3, 0.1, 0.2, 1.0]),
        timestamps=np.array([T0 + 86_400 * 3 + 0.123, T0 + 0.001, T0 + 7_777.777, T0 + 9e5]),
    )
    run = _run(series=lambda: [_series("loss", 5000, every=0.037), days])
    summary = _write(home, run)
    assert (summary.runs_new, summary.points, summary.problems) == (1, 5004, ())
    view = polytrack.get_run(summary.run_ids[0], home=home)
    steps, values, times = view.history("loss", with_time=True)
    expected = _series("loss", 5000, every=0.037)
    assert steps.tolist() == expected.steps.tolist()
    assert values.tolist() == expected.values.tolist()
    assert (np.round(times * 1000)).astype(np.int64).tolist() == (
        np.round(expected.timestamps * 1000).astype(np.int64).tolist()
    )
    steps, values, times = view.history("acc", with_time=True)
    assert steps.tolist() == [1, 2, 3, 10**12]
    assert values.tolist() == [0.1, 0.2, 0.3, 1.0]
    assert np.round(times * 1000).astype(np.int64).tolist() == [
        round((T0 + 0.001) * 1000),
        round((T0 + 7_777.777) * 1000),
        round((T0 + 86_400 * 3 + 0.123) * 1000),
        round((T0 + 9e5) * 1000),
    ]


def test_run_record_keeps_the_sources_fields_and_times(home: Path) -> None:
    """Name, project, params, tags, notes, user, status and the original start and end
    times are the source's; the origin is a link; no snapshot of this process."""
    summary = _write(home, _run())
    run_id = summary.run_ids[0]
    assert run_id == import_run_id("test", "/data/source", "r1")
    view = polytrack.get_run(run_id, home=home)
    assert (view.name, view.project, view.status, view.user) == (
        "run-r1",
        "imported",
        "succeeded",
        "ada",
    )
    assert view.params == {"lr": 0.1, "layers": 3, "optimizer": "adam"}
    assert view.tags == ("baseline",)
    assert view.notes == "first try"
    assert view.created_at == T0
    assert view.finished_at == T0 + 3600.25
    assert view.metrics["loss"].count == 1000
    snapshot = view.snapshot()
    assert snapshot.git is not None and snapshot.git.commit == "a" * 40
    assert snapshot.environment is not None
    assert snapshot.environment.python == "3.10.4"
    assert snapshot.environment.hostname == ""  # not this machine's
    assert snapshot.environment.variables == {"mlflow.source.type": "LOCAL"}
    assert snapshot.environment.packages == {}
    assert snapshot.code is not None and snapshot.code.entrypoint == "train.py"
    assert snapshot.hardware is None and snapshot.seeds is None
    from polytrack.store.local import LocalStore

    with LocalStore.open(home) as store:
        links = store.read_run(run_id).links
    assert [(link.relation, link.run_id) for link in links] == [
        ("imported-from", "test:/data/source#r1")
    ]


def test_importing_twice_adds_nothing(home: Path) -> None:
    """A second import of the same source writes no file and reports every run unchanged."""
    runs = [_run("a"), _run("b", points=10)]
    first = _write(home, *runs)
    files = sorted(p.name for p in (home / "runs").rglob("*"))
    second = _write(home, *runs)
    assert (first.runs_new, first.points) == (2, 1010)
    assert (second.runs_new, second.runs_updated, second.runs_unchanged) == (0, 0, 2)
    assert second.points == 0
    assert sorted(p.name for p in (home / "runs").rglob("*")) == files
    assert [r.metrics["loss"].count for r in polytrack.runs(home=home, order_by="name")] == [
        1000,
        10,
    ]


def test_a_run_that_grew_gets_only_its_new_points(home: Path) -> None:
    """A run still running at the source shows as running (not crashed); imported again
    once it grew and finished, it gains the new points, its status and end time."""
    live = _run(points=100, status="running", ended_at=None)
    _write(home, live)
    view = polytrack.runs(home=home)[0]
    assert (view.status, view.finished_at, view.metrics["loss"].count) == ("running", None, 100)
    done = _run(points=250)
    summary = _write(home, done)
    assert (summary.runs_updated, summary.points) == (1, 150)
    view = polytrack.get_run(view.id, home=home)
    assert (view.status, view.finished_at) == ("succeeded", T0 + 3600.25)
    steps, values = view.history("loss")
    assert steps.tolist() == list(range(250))
    assert values.tolist() == [s * 0.5 for s in range(250)]


def test_an_interrupted_import_goes_on_where_it_stopped(home: Path) -> None:
    """Stopped after one run (limit), then inside a run (after its points, before its
    artifacts): the next import finishes both, duplicating nothing."""
    payload = home.parent / "model.bin"
    payload.write_bytes(b"weights" * 100)

    def broken() -> Iterator[tuple[str, str, list[SourceFile]]]:
        raise KeyboardInterrupt  # the user pressed Ctrl-C while its artifacts were read
        yield  # pragma: no cover

    def whole() -> Iterator[tuple[str, str, list[SourceFile]]]:
        yield "model.bin", "model", [SourceFile(path="model.bin", local=payload)]

    runs = [_run("a", artifacts=whole), _run("b", artifacts=whole)]
    assert _write(home, *runs, limit=1).runs_new == 1
    with pytest.raises(KeyboardInterrupt):
        _write(home, runs[0], attrs.evolve(runs[1], artifacts=broken))
    cut = polytrack.get_run(import_run_id("test", "/data/source", "b"), home=home)
    assert cut.status == "crashed"  # its import died: not shown finished
    assert cut.metrics["loss"].count == 1000
    summary = _write(home, *runs)
    assert (summary.runs_unchanged, summary.runs_updated, summary.points) == (1, 1, 0)
    for view in polytrack.runs(home=home):
        assert (view.status, view.metrics["loss"].count) == ("succeeded", 1000)
        assert view.artifact("model.bin").kind == "model"
        target = view.artifact("model.bin").download(home.parent / view.id)
        assert target.read_bytes() == b"weights" * 100


def test_a_problem_is_named_and_the_rest_imports(home: Path) -> None:
    """A part the reader could not read is reported by name; the runs around it import."""

    def unreadable() -> list[SourceSeries]:
        raise ImportSourceError("/data/source/r2/metrics/loss: not a number on line 3")

    out = io.StringIO()
    summary = _write(
        home,
        _run("r1"),
        SourceProblem(where="/data/source/bad.tfevents", message="truncated record"),
        _run("r2", series=unreadable),
        progress=Progress(out, bar=False),
    )
    assert summary.runs_new == 2
    assert summary.problems == (
        "/data/source/bad.tfevents: truncated record",
        "run run-r2 (r2): /data/source/r2/metrics/loss: not a number on line 3",
    )
    assert "bad.tfevents: truncated record" in out.getvalue()
    assert "run-r1: new, added 1,000 points" in out.getvalue()
    assert {v.name: v.status for v in polytrack.runs(home=home)} == {
        "run-r1": "succeeded",
        "run-r2": "succeeded",
    }


def test_dry_run_counts_and_writes_nothing(home: Path) -> None:
    """--dry-run reads the source and counts what would be imported; the home stays empty."""
    summary = _write(home, _run("a"), _run("b", points=7), dry_run=True)
    assert (summary.dry_run, summary.runs_new, summary.points) == (True, 2, 1007)
    assert not home.exists()


def test_project_option_overrides_the_sources(home: Path) -> None:
    """`project=` puts every run in that project, keeping the run's identity."""
    summary = _write(home, _run(), project="elsewhere")
    assert polytrack.get_run(summary.run_ids[0], home=home).project == "elsewhere"


def test_media_payloads_and_values_are_stored_once(home: Path) -> None:
    """Encoded media keep their bytes; values go through polytrack's encoders; a second
    import adds none."""
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[1, 2] = (255, 0, 0)
    media = [
        SourceMedia(
            name="sample",
            kind="text",
            step=3,
            timestamp=T0 + 5,
            payload=b"hi",
            media_type="text/plain",
        ),
        SourceMedia(name="picture", kind="image", step=1, timestamp=T0 + 6, value=image),
        SourceMedia(
            name="weights",
            kind="histogram",
            step=2,
            timestamp=T0 + 7,
            value=(np.array([0.0, 1.0, 2.0]), np.array([3.0, 4.0])),
        ),
    ]
    run = _run(media=lambda: media)
    assert _write(home, run).media == 3
    assert _write(home, run).media == 0
    view = polytrack.get_run(import_run_id("test", "/data/source", "r1"), home=home)
    [text] = view.media("sample")
    assert (text.step, text.logged_at, text.value) == (3, T0 + 5, "hi")
    [picture] = view.media("picture")
    assert picture.value.shape[-3:] == (4, 5, 3)
    assert picture.value.reshape(4, 5, 3)[1, 2].tolist() == [255, 0, 0]
    [histogram] = view.media("weights")
    assert histogram.kind == "histogram" and histogram.logged_at == T0 + 7


def test_imported_run_refuses_bad_points_before_writing_any(home: Path) -> None:
    """The store's backdated writer checks a key's arrays whole: unequal lengths, a time
    that is not a finite unix time, or a bad key raise `InvalidInputError`, writing none."""
    from polytrack.errors import InvalidInputError
    from polytrack.store.imported import ImportedRun

    with ImportedRun.create(home, run_id="abcd1234") as run:
        with pytest.raises(InvalidInputError, match="3 steps, 2 values and 3 times"):
            run.write_points("loss", [1, 2, 3], [0.1, 0.2], [T0, T0, T0])
        with pytest.raises(InvalidInputError, match="finite unix times"):
            run.write_points("loss", [1], [0.1], [float("nan")])
        with pytest.raises(InvalidInputError, match="1 to 250 characters"):
            run.write_points("", [1], [0.1], [T0])
        assert run.points == 0
        assert run.write_points("loss", [7], [0.5], [T0]) == 1
    assert not list((home / "runs" / "abcd1234").glob("*.tmp"))
    assert sorted(p.name for p in (home / "runs" / "abcd1234").glob("points-*")) == [
        "points-000-000-00000.seg"
    ]


def test_secrets_from_the_source_are_redacted_as_a_live_runs(home: Path) -> None:
    """Params, outputs, tags, notes, env variables, argv, the git remote, the source URI
    and the summary lose their secrets as `init(params=...)` would; re-import adds nothing."""
    token = "ghp_" + "a1B2" * 9
    run = _run(
        uri="http://alice:hunter2@mlflow.example/x",
        params={"lr": 0.1, "wandb.api_key": "k3y-abc", "db": "postgres://bob:pw123@db/x"},
        outputs={"acc": 0.9, "hf_token": "tok-xyz"},
        tags=("baseline", f"pushed with {token}"),
        notes=f"used {token}",
        git=GitState(available=True, commit="a" * 40, remote="https://bob:pw456@github.com/o/r"),
        environment={"WANDB_API_KEY": "envsecret", "argv": ["train.py", "--password", "pw789"]},
    )
    summary = write_runs([run], kind="test", source=run.uri, home=home)
    again = write_runs([run], kind="test", source=run.uri, home=home)
    assert (again.runs_unchanged, again.points) == (1, 0)
    view = polytrack.get_run(summary.run_ids[0], home=home)
    assert view.params == {
        "lr": 0.1,
        "wandb.api_key": "[REDACTED]",
        "db": "postgres://bob:[REDACTED]@db/x",
    }
    assert view.tags == ("baseline", "pushed with [REDACTED]")
    assert view.notes == "used [REDACTED]"
    snapshot = view.snapshot()
    assert snapshot.environment is not None
    assert snapshot.environment.variables == {"WANDB_API_KEY": "[REDACTED]"}
    assert snapshot.code is not None
    assert snapshot.code.argv == ("train.py", "--password", "[REDACTED]")
    assert (
        snapshot.git is not None and snapshot.git.remote == "https://bob:[REDACTED]@github.com/o/r"
    )
    from polytrack.store.local import LocalStore

    with LocalStore.open(home) as store:
        read = store.read_run(summary.run_ids[0])
    assert [link.run_id for link in read.links] == [
        "test:http://alice:[REDACTED]@mlflow.example/x#r1"
    ]
    assert read.outputs == {"acc": 0.9, "hf_token": "[REDACTED]"}
    assert "hunter2" not in summary.describe()
    for secret in ("hunter2", "k3y-abc", "pw123", "tok-xyz", token, "pw456", "envsecret", "pw789"):
        for path in home.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), (secret, path)


def test_a_metric_key_polytrack_refuses_is_named_and_the_rest_imports(home: Path) -> None:
    """A key over 250 characters (TensorBoard and W&B allow them) is a problem of its run:
    that run's other metrics and the next runs import; a second import adds nothing."""
    long_key = "x" * 300
    bad = _run("r1", series=lambda: [_series("loss", 10), _series(long_key, 5)])
    first = _write(home, bad, _run("r2", points=7))
    second = _write(home, bad, _run("r2", points=7))
    assert (first.runs_new, first.points) == (2, 17)
    assert len(first.problems) == 1 and "must have 1 to 250 characters" in first.problems[0]
    assert first.problems[0].startswith("run run-r1: metric ")
    assert (second.runs_unchanged, second.points) == (2, 0)
    counts = {v.name: {k: s.count for k, s in v.metrics.items()} for v in polytrack.runs(home=home)}
    assert counts == {"run-r1": {"loss": 10}, "run-r2": {"loss": 7}}


def test_an_artifact_file_that_is_gone_is_named_and_the_rest_imports(home: Path) -> None:
    """A file of an artifact that vanished (a dangling symlink in a local artifact store)
    is a problem of its run: its other artifacts, and the next runs, import."""
    good = home.parent / "good.bin"
    good.write_bytes(b"good" * 10)

    def artifacts() -> Iterator[tuple[str, str, list[SourceFile]]]:
        yield "gone", "artifact", [SourceFile(path="gone", local=home.parent / "missing")]
        yield "good.bin", "artifact", [SourceFile(path="good.bin", local=good)]

    summary = _write(home, _run("a", artifacts=artifacts), _run("b"))
    assert (summary.runs_new, summary.artifacts) == (2, 1)
    assert len(summary.problems) == 1 and "missing" in summary.problems[0]
    assert summary.problems[0].startswith("run run-a: artifact 'gone': ")
    view = polytrack.get_run(import_run_id("test", "/data/source", "a"), home=home)
    assert view.status == "succeeded"
    assert view.artifact("good.bin").download(home.parent / "out").read_bytes() == b"good" * 10


def test_nested_params_are_flattened_and_redacted_as_inits(home: Path) -> None:
    """A nested config (W&B's, Polyaxon's inputs) is recorded as `init(params=...)` records
    it: dotted keys, lists kept, secrets redacted by name; a second import adds nothing."""
    from polytrack.run import flatten_params

    params = {
        "optimizer": {"name": "adam", "lr": 0.1},
        "db": {"password": "hunter2", "host": "h"},
        "layers": [1, 2],
        "ratio": float("nan"),
    }
    run = _run(params=params)
    assert _write(home, run).runs_new == 1
    assert (_write(home, run).runs_unchanged, _write(home, run).points) == (1, 0)
    view = polytrack.get_run(import_run_id("test", "/data/source", "r1"), home=home)
    assert view.params == {
        "optimizer.name": "adam",
        "optimizer.lr": 0.1,
        "db.password": "[REDACTED]",
        "db.host": "h",
        "layers": [1, 2],
        "ratio": "nan",
    }
    assert {k: v for k, v in view.params.items() if k != "ratio"} == {
        k: v for k, v in flatten_params(params).items() if k != "ratio"
    }
