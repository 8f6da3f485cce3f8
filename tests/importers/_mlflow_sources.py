"""MLflow stores written by MLflow's own client, for the importer's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

T0_MS = 1_600_000_000_000  # 2020-09-13, in MLflow's milliseconds


def _has_logged_models() -> bool:
    from mlflow import MlflowClient

    return hasattr(MlflowClient, "create_logged_model")


HAS_LOGGED_MODELS = _has_logged_models()


@contextmanager
def file_store_allowed() -> Iterator[None]:
    """MLflow 3 writes a file store (`./mlruns`) only with MLFLOW_ALLOW_FILE_STORE set."""
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_ALLOW_FILE_STORE"]
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    with file_store_allowed():
        made = MlflowClient(tracking_uri=uri)
        made.search_experiments(max_results=1)  # builds the store now
    return made


def log_points(client: Any, run_id: str, key: str, steps: range, *, every_ms: int = 37) -> None:
    """Points `value = step / 2` at `T0_MS + step * every_ms`, in batches of 1000."""
    from mlflow.entities import Metric

    metrics = [Metric(key, step / 2, T0_MS + step * every_ms, step) for step in steps]
    for lo in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[lo : lo + 1000])


def make_store(uri: str, artifacts: Path, files: Path) -> dict[str, str]:
    """Two experiments: `mnist` with a finished run (params, tags, a note, git, 1500 loss
    points, a system metric, a file and a directory of artifacts, two images logged with
    `log_image` at steps 3 and 4, a logged model on MLflow 3) and a failed one;
    `other` with one running run of 10 points. Returns the runs' ids by name."""
    mlflow = client(uri)
    mnist = mlflow.create_experiment("mnist", artifact_location=str(artifacts / "mnist"))
    other = mlflow.create_experiment("other", artifact_location=str(artifacts / "other"))
    first = mlflow.create_run(
        mnist,
        run_name="first",
        start_time=T0_MS,
        tags={
            "mlflow.note.content": "a baseline",
            "mlflow.user": "ada",
            "mlflow.source.git.commit": "c" * 40,
            "mlflow.source.git.branch": "main",
            "mlflow.source.git.repoURL": "https://example.com/ml.git",
            "mlflow.source.name": "train.py",
            "team": "vision",
            "polytrack.tag.best": "best",
        },
    ).info.run_id
    mlflow.log_param(first, "lr", "0.001")
    mlflow.log_param(first, "batch_size", "64")
    mlflow.log_param(first, "optimizer", "adam")
    log_points(mlflow, first, "loss", range(1500))
    from mlflow.entities import Metric

    mlflow.log_batch(
        first,
        metrics=[
            Metric("system/cpu_utilization_percentage", 12.5 + i, T0_MS + 10_000 * i, i)
            for i in range(3)
        ],
    )
    files.mkdir(parents=True, exist_ok=True)
    (files / "notes.txt").write_bytes(b"hello\x00world")
    mlflow.log_artifact(first, str(files / "notes.txt"))
    model = files / "model"
    (model / "sub").mkdir(parents=True, exist_ok=True)
    (model / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (model / "sub" / "config.json").write_bytes(b'{"layers": 3}')
    mlflow.log_artifacts(first, str(model), artifact_path="model")
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[1, 2] = (255, 0, 0)
    for step in (3, 4):
        image[0, 0, 1] = step
        mlflow.log_image(first, image, key="samples/digit", step=step)
    if HAS_LOGGED_MODELS:  # MLflow 3: a model is an entity of its own, linked to its run
        logged = mlflow.create_logged_model(mnist, name="classifier", source_run_id=first)
        (files / "classifier").mkdir(exist_ok=True)
        (files / "classifier" / "MLmodel").write_bytes(b"flavors: {}\n")
        mlflow.log_model_artifacts(logged.model_id, str(files / "classifier"))
        mlflow.finalize_logged_model(logged.model_id, "READY")
    mlflow.set_terminated(first, "FINISHED", end_time=T0_MS + 3_600_250)
    failed = mlflow.create_run(mnist, run_name="broken", start_time=T0_MS + 5000).info.run_id
    mlflow.log_param(failed, "lr", "0.5")
    log_points(mlflow, failed, "loss", range(20))
    mlflow.set_terminated(failed, "FAILED", end_time=T0_MS + 9000)
    running = mlflow.create_run(other, run_name="live", start_time=T0_MS + 60_000).info.run_id
    log_points(mlflow, running, "loss", range(10))
    return {"first": first, "broken": failed, "live": running}
