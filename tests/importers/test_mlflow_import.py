"""`polytrack.importers.mlflow`: stores written by MLflow's own client (a SQLite store, a
file store) imported whole, once, and again as they grow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import polytrack
import polytrack.importers
from polytrack.errors import ImportSourceError
from polytrack.importers._mlflow import normalize_uri
from polytrack.importers._writer import import_run_id

pytest.importorskip("mlflow")

from ._mlflow_sources import (
    HAS_LOGGED_MODELS,
    T0_MS,
    client,
    log_points,
    make_store,
)

pytestmark = [
    # MLflow's SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
    ),
]

T0 = T0_MS / 1000
ARTIFACTS = 3 if HAS_LOGGED_MODELS else 2  # notes.txt, model/, and the logged model


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One SQLite store for the module (MLflow's schema migrations take seconds)."""
    root = tmp_path_factory.mktemp("mlflow-template")
    ids = make_store(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", root / "files")
    return root / "mlflow.db", ids


@pytest.fixture
def db(template: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A copy of the template store of this test's own (its artifacts stay shared)."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(template[0], path)
    return f"sqlite:///{path}", template[1]


def test_sqlite_store_imports_every_field(db: tuple[str, dict[str, str]], home: Path) -> None:
    """Names, projects, params, notes, user, git, tags, statuses, start and end times,
    every point (steps, values, ms timestamps), system metrics and artifacts byte for byte."""
    uri, ids = db
    summary = polytrack.importers.mlflow(uri, home=home, progress=False)
    assert summary.problems == ()
    assert (summary.runs_seen, summary.runs_new, summary.points) == (3, 3, 1500 + 3 + 20 + 10)
    assert (summary.artifacts, summary.media) == (ARTIFACTS, 2)
    run_id = import_run_id("mlflow", normalize_uri(uri), ids["first"])
    view = polytrack.get_run(run_id, home=home)
    assert (view.name, view.project, view.status, view.user, view.notes) == (
        "first",
        "mnist",
        "succeeded",
        "ada",
        "a baseline",
    )
    assert view.params == {"lr": 0.001, "batch_size": 64, "optimizer": "adam"}
    assert set(view.tags) == {"team=vision", "best"}
    assert view.created_at == T0
    assert view.finished_at == T0 + 3600.25
    steps, values, times = view.history("loss", with_time=True)
    assert steps.tolist() == list(range(1500))
    assert values.tolist() == [s / 2 for s in range(1500)]
    assert np.round(times * 1000).astype(np.int64).tolist() == [T0_MS + s * 37 for s in range(1500)]
    steps, values = view.history("system/cpu_utilization_percentage")
    assert (steps.tolist(), values.tolist()) == ([0, 1, 2], [12.5, 13.5, 14.5])
    git = view.snapshot().git
    assert git is not None
    assert (git.commit, git.branch, git.remote) == ("c" * 40, "main", "https://example.com/ml.git")
    code = view.snapshot().code
    assert code is not None and code.entrypoint == "train.py"
    kinds = {a.name: a.kind for a in view.artifacts()}
    assert kinds == {"notes.txt": "file", "model": "directory"} | (
        {"models/classifier": "model"} if HAS_LOGGED_MODELS else {}
    )
    out = view.artifact("notes.txt").download(home.parent / "out")
    assert out.read_bytes() == b"hello\x00world"
    model = view.artifact("model").download(home.parent / "out")
    assert (model / "weights.bin").read_bytes() == bytes(range(256)) * 40
    assert (model / "sub" / "config.json").read_bytes() == b'{"layers": 3}'
    images = view.media("samples/digit")
    assert [(item.step, item.kind, item.shape) for item in images] == [
        (3, "image", (1, 4, 5, 3)),
        (4, "image", (1, 4, 5, 3)),
    ]
    pixels = images[1].value.reshape(4, 5, 3)
    assert (pixels[1, 2].tolist(), int(pixels[0, 0, 1])) == ([255, 0, 0], 4)
    assert T0 < images[0].logged_at <= images[1].logged_at  # when log_image ran
    statuses = {v.name: (v.project, v.status) for v in polytrack.runs(home=home)}
    assert statuses == {
        "first": ("mnist", "succeeded"),
        "broken": ("mnist", "failed"),
        "live": ("other", "running"),
    }
    broken = polytrack.runs(home=home, where="name = 'broken'")[0]
    assert (broken.created_at, broken.finished_at) == (T0 + 5, T0 + 9)


def test_importing_twice_adds_nothing(db: tuple[str, dict[str, str]], home: Path) -> None:
    """A second import of an unchanged store writes nothing and says so."""
    uri, _ = db
    polytrack.importers.mlflow(uri, home=home, progress=False)
    files = sorted(str(p) for p in (home / "runs").rglob("*"))
    again = polytrack.importers.mlflow(uri, home=home, progress=False)
    assert (again.runs_unchanged, again.runs_new, again.runs_updated) == (3, 0, 0)
    assert (again.points, again.artifacts) == (0, 0)
    assert sorted(str(p) for p in (home / "runs").rglob("*")) == files


def test_a_run_that_grew_at_the_source_gets_its_new_points(
    db: tuple[str, dict[str, str]], home: Path
) -> None:
    """The running run, imported, then logged to and finished in MLflow: imported again,
    it gains exactly the new points, its status and its end time."""
    uri, ids = db
    polytrack.importers.mlflow(uri, home=home, experiment="other", progress=False)
    mlflow = client(uri)
    log_points(mlflow, ids["live"], "loss", range(10, 25))
    mlflow.set_terminated(ids["live"], "KILLED", end_time=T0_MS + 120_000)
    summary = polytrack.importers.mlflow(uri, home=home, experiment="other", progress=False)
    assert (summary.runs_updated, summary.points) == (1, 15)
    [view] = polytrack.runs(home=home)
    assert (view.status, view.finished_at) == ("stopped", T0 + 120)
    steps, values = view.history("loss")
    assert steps.tolist() == list(range(25))
    assert values.tolist() == [s / 2 for s in range(25)]


def test_an_import_cut_short_is_finished_by_the_next(
    db: tuple[str, dict[str, str]], home: Path
) -> None:
    """An import stopped after one run is carried on by the next, which adds the rest."""
    uri, _ = db
    assert polytrack.importers.mlflow(uri, home=home, limit=1, progress=False).runs_new == 1
    summary = polytrack.importers.mlflow(uri, home=home, progress=False)
    assert (summary.runs_unchanged, summary.runs_new) == (1, 2)
    assert sorted(v.metrics["loss"].count for v in polytrack.runs(home=home)) == [10, 20, 1500]


def test_experiment_and_project_options(db: tuple[str, dict[str, str]], home: Path) -> None:
    """`experiment=` picks experiments by name, `project=` renames their project; a name
    the store lacks is an error that names it."""
    uri, _ = db
    summary = polytrack.importers.mlflow(
        uri, home=home, experiment="mnist", project="vision", progress=False
    )
    assert summary.runs_seen == 2
    assert {v.project for v in polytrack.runs(home=home)} == {"vision"}
    with pytest.raises(ImportSourceError, match="no experiment named nope"):
        polytrack.importers.mlflow(uri, home=home, experiment="nope", progress=False)


def test_dry_run_writes_nothing(db: tuple[str, dict[str, str]], home: Path) -> None:
    """A dry run counts runs, points and artifacts and leaves no home behind."""
    uri, _ = db
    summary = polytrack.importers.mlflow(uri, home=home, dry_run=True, progress=False)
    assert (summary.runs_new, summary.points, summary.artifacts) == (3, 1533, ARTIFACTS)
    assert not home.exists()


def test_file_store_imports_and_a_corrupt_metric_file_is_named(tmp_path: Path, home: Path) -> None:
    """A `./mlruns` file store imports; a run whose metric file is damaged (MLflow's
    reader cannot read it) is named in the problems and the other runs import whole."""
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    store = tmp_path / "mlruns"
    ids = make_store(str(store), tmp_path / "artifacts", tmp_path / "files")
    [metric] = list(store.glob(f"*/{ids['broken']}/metrics/loss"))
    metric.write_text("1600000000000 not-a-number 0\n")
    summary = polytrack.importers.mlflow(str(store), home=home, progress=False)
    assert (summary.runs_seen, summary.points, summary.artifacts) == (2, 1513, ARTIFACTS)
    [problem] = summary.problems
    assert str(metric.parent.parent) in problem and "not-a-number" in problem
    counts = {v.name: v.metrics["loss"].count for v in polytrack.runs(home=home)}
    assert counts == {"first": 1500, "live": 10}
    assert os.environ.get("MLFLOW_ALLOW_FILE_STORE") == before  # put back as it was


def test_a_source_that_is_not_a_store_is_named(tmp_path: Path, home: Path) -> None:
    """A file that is no SQLite database, or a missing directory, raises an error that
    names it, and nothing is written."""
    bogus = tmp_path / "mlflow.db"
    bogus.write_bytes(b"this is not a database")
    with pytest.raises(ImportSourceError, match=r"mlflow\.db is not an SQLite database"):
        polytrack.importers.mlflow(f"sqlite:///{bogus}", home=home, progress=False)
    with pytest.raises(ImportSourceError, match="no such MLflow store directory"):
        polytrack.importers.mlflow(str(tmp_path / "missing"), home=home, progress=False)
    assert not home.exists()


def test_uris_are_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same store spelled differently is the same source (the runs' identity)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.db").write_bytes(b"")
    assert normalize_uri("sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert normalize_uri("x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert normalize_uri("./mlruns/") == str(tmp_path / "mlruns")
    assert normalize_uri("HTTP://user:secret@Host:5000/") == "http://host:5000"


def _history_of(mlflow_client: object, run_id: str, key: str) -> list[tuple[int, float, int]]:
    history = mlflow_client.get_metric_history(run_id, key)  # type: ignore[attr-defined]
    return [(m.step, m.value, m.timestamp) for m in history]


@pytest.mark.parametrize("kind", ["sqlite", "files"])
def test_bulk_points_equal_mlflows_own_history(
    kind: str, tmp_path: Path, template: tuple[Path, dict[str, str]]
) -> None:
    """The bulk readers (MLflow's SqlMetric model; the file store's metric files) give
    every point exactly as `get_metric_history` does: steps, values, ms timestamps."""
    from polytrack.importers._mlflow import _PointReader

    if kind == "sqlite":
        path = tmp_path / "mlflow.db"
        shutil.copyfile(template[0], path)
        uri, ids = f"sqlite:///{path}", template[1]
    else:
        uri = str(tmp_path / "mlruns")
        ids = make_store(uri, tmp_path / "artifacts", tmp_path / "files")
    mlflow_client = client(uri)
    reader = _PointReader.of(uri, mlflow_client)
    for name in ("first", "live"):
        run = mlflow_client.get_run(ids[name])
        keys = sorted(run.data.metrics)
        got = {s.key: s for s in reader.read(run.info, keys)}
        assert sorted(got) == keys
        for key in keys:
            expected = _history_of(mlflow_client, ids[name], key)
            series = got[key]
            pairs = list(
                zip(
                    np.asarray(series.steps).tolist(),
                    np.asarray(series.values).tolist(),
                    np.round(np.asarray(series.timestamps) * 1000).astype(int).tolist(),
                    strict=True,
                )
            )
            assert sorted(pairs) == sorted(expected), key


def test_a_metric_file_in_another_form_is_read_by_mlflow(tmp_path: Path, home: Path) -> None:
    """A file store metric line of a form the bulk reader does not parse (MLflow's older
    two-field `timestamp value`) is read through MLflow's client instead, not misread."""
    store = tmp_path / "mlruns"
    ids = make_store(str(store), tmp_path / "artifacts", tmp_path / "files")
    [metric] = list(store.glob(f"*/{ids['live']}/metrics/loss"))
    metric.write_text("1600000000000 0.5\n1600000000500 0.25\n")
    summary = polytrack.importers.mlflow(str(store), home=home, progress=False)
    assert not summary.problems
    view = {v.name: v for v in polytrack.runs(home=home)}["live"]
    steps, values = view.history("loss")
    assert steps.tolist() == [0, 0] and values.tolist() == [0.5, 0.25]


def test_a_server_behind_basic_auth_is_reached_and_its_password_kept_out(home: Path) -> None:
    """The credentials of `http://user:pass@host` reach the server (a real HTTP server that
    answers 401 without them) and appear in no summary or record."""
    import base64
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    expected = "Basic " + base64.b64encode(b"alice:hunter2").decode()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append(self.headers.get("Authorization") or "")
            ok = self.headers.get("Authorization") == expected
            body = json.dumps({"experiments": []} if ok else {"error_code": "UNAUTHENTICATED"})
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = f"http://alice:hunter2@127.0.0.1:{server.server_address[1]}/"
        summary = polytrack.importers.mlflow(source, home=home, progress=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
    assert seen and set(seen) == {expected}
    assert (summary.runs_seen, summary.problems) == (0, ())
    assert "hunter2" not in summary.describe()
