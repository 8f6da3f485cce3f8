"""`polytrack.importers.mlflow` from a real MLflow tracking server over HTTP: runs paged
through its REST API, artifacts downloaded through its proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import polytrack
import polytrack.importers

pytest.importorskip("mlflow")

from servers.mlflow_server import MlflowServer

from ._mlflow_sources import HAS_LOGGED_MODELS, T0_MS, client, log_points

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` (its venv is built once, then cached: see tests/servers)."""
    started = MlflowServer.start(tmp_path_factory.mktemp("mlflow-server"))
    yield started
    started.stop()


def test_a_server_imports_runs_points_and_proxied_artifacts(
    server: MlflowServer, tmp_path: Path, home: Path
) -> None:
    """Over HTTP: a run's params, every point with its ms timestamp, its status and times,
    its artifacts (downloaded through the proxy) byte for byte; importing twice adds nothing."""
    mlflow = client(server.url)
    name = f"import-{uuid.uuid4().hex[:8]}"
    experiment = mlflow.create_experiment(name)
    run_id = mlflow.create_run(experiment, run_name="remote", start_time=T0_MS).info.run_id
    mlflow.log_param(run_id, "lr", "0.25")
    log_points(mlflow, run_id, "loss", range(2500))
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)) * 64)
    mlflow.log_artifact(run_id, str(tmp_path / "weights.bin"), artifact_path="ckpt")
    if HAS_LOGGED_MODELS:
        model = mlflow.create_logged_model(experiment, name="net", source_run_id=run_id)
        (tmp_path / "net").mkdir()
        (tmp_path / "net" / "MLmodel").write_bytes(b"flavors: {}\n")
        mlflow.log_model_artifacts(model.model_id, str(tmp_path / "net"))
    mlflow.set_terminated(run_id, "FINISHED", end_time=T0_MS + 100_000)
    summary = polytrack.importers.mlflow(server.url, experiment=name, home=home, progress=False)
    assert summary.problems == ()
    assert (summary.runs_new, summary.points) == (1, 2500)
    assert summary.artifacts == (2 if HAS_LOGGED_MODELS else 1)
    [view] = polytrack.runs(home=home)
    assert (view.name, view.project, view.status) == ("remote", name, "succeeded")
    assert view.params == {"lr": 0.25}
    assert (view.created_at, view.finished_at) == (T0_MS / 1000, T0_MS / 1000 + 100)
    steps, values, times = view.history("loss", with_time=True)
    assert steps.tolist() == list(range(2500))
    assert values.tolist() == [s / 2 for s in range(2500)]
    assert np.round(times * 1000).astype(np.int64).tolist() == [T0_MS + s * 37 for s in range(2500)]
    ckpt = view.artifact("ckpt").download(tmp_path / "out")
    assert (ckpt / "weights.bin").read_bytes() == bytes(range(256)) * 64
    if HAS_LOGGED_MODELS:
        net = view.artifact("models/net").download(tmp_path / "out")
        assert (net / "MLmodel").read_bytes() == b"flavors: {}\n"
    again = polytrack.importers.mlflow(server.url, experiment=name, home=home, progress=False)
    assert (again.runs_unchanged, again.points, again.artifacts) == (1, 0, 0)
