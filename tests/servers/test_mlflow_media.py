"""Media synced to a real MLflow server, read back through MLflow's own client (run in the
server's venv): images as `mlflow.log_image(key=, step=)` lays them out, tables as
`mlflow.log_table` writes them, the other kinds as artifacts."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

import polytrack
from polytrack.sync.backends.config import BackendConfig
from polytrack.sync.backends.mlflow import MlflowBackend
from polytrack.sync.engine import RunSync, state_path

from .mlflow_server import MLFLOW_REQUIREMENTS, MlflowServer
from .venvs import ensure_venv

pytestmark = pytest.mark.slow

QUIET: dict[str, Any] = {"capture": False, "mode": "offline"}

# Read back as a user of MLflow would: its client lists the artifacts, the image names
# are parsed as its UI parses them (`imagesByRunUuid`: split on "+" or "%", "~" for "/"),
# and `mlflow.load_table` finds the table through the run's tag and reads it with pandas.
READER = """
import json, sys
import mlflow
from mlflow import MlflowClient

run_id, experiment_id, out, tables = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
client = MlflowClient()
images = []
for entry in client.list_artifacts(run_id, "images"):
    stem, extension = entry.path.removeprefix("images/").rsplit(".", 1)
    separator = next(s for s in ("+", "%") if s in stem)
    key, step_word, step, time_word, stamp, unique, *rest = stem.split(separator)
    assert (step_word, time_word) == ("step", "timestamp"), entry.path
    images.append({
        "path": entry.path, "key": key.replace("~", "/"), "step": int(step),
        "timestamp": int(stamp), "uuid": unique, "compressed": rest == ["compressed"],
        "extension": extension,
    })
mlflow.set_experiment(experiment_id=experiment_id)
loaded = {}
for table in tables:
    frame = mlflow.load_table(table, run_ids=[run_id])
    loaded[table] = json.loads(frame.to_json(orient="split", index=False))
client.download_artifacts(run_id, "", out)
tags = client.get_run(run_id).data.tags
# What MLflow's own log_image writes for the same image, key and step, in another run.
from PIL import Image
first = next(image for image in images if not image["compressed"])
with mlflow.start_run() as reference, Image.open(f"{out}/{first['path']}") as png:
    mlflow.log_image(png, key=first["key"], step=first["step"])
written = [e.path for e in client.list_artifacts(reference.info.run_id, "images")]
client.download_artifacts(reference.info.run_id, "images", f"{out}/reference")
print(json.dumps({"images": images, "tables": loaded, "tags": tags, "reference": written}))
"""


@pytest.fixture
def backend(mlflow_server: MlflowServer) -> Iterator[MlflowBackend]:
    made = MlflowBackend.from_uri(f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig())
    yield made
    made.close()


def sync(directory: Path, backend: MlflowBackend) -> str:
    """Ship the run in `directory` to the end; the MLflow run id it went to."""
    runner = RunSync.open(directory, backend)
    try:
        while not runner.step(live=False).caught_up:
            pass
        assert runner.state.set_aside == []
        mapped: dict[str, str] = json.loads((runner.workdir / "mlflow-run.json").read_text())
    finally:
        runner.close()
    return mapped["run_id"]


def read_back(
    server: MlflowServer, mlflow_run_id: str, out: Path, tables: list[str]
) -> dict[str, Any]:
    """What MLflow's client says of the run (see READER); its artifacts land in `out`."""
    answer = requests.get(
        f"{server.url}/api/2.0/mlflow/runs/get", params={"run_id": mlflow_run_id}, timeout=30
    ).json()
    experiment_id = answer["run"]["info"]["experiment_id"]
    venv = ensure_venv("mlflow", MLFLOW_REQUIREMENTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = server.url
    python = str(venv / "bin" / "python")
    done = subprocess.run(
        [python, "-c", textwrap.dedent(READER), mlflow_run_id, experiment_id, str(out), *tables],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def name_shape(path: str) -> str:
    """An image file's name with its timestamp and uuid taken out."""
    return re.sub(r"\+timestamp\+\d+\+[0-9a-f-]{36}", "+timestamp+T+U", path)


def picture(seed: int, shape: tuple[int, ...] = (6, 8, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_media_read_back_through_mlflows_client(
    mlflow_server: MlflowServer, backend: MlflowBackend, tmp_path: Path
) -> None:
    """Images at 3 steps show as MLflow's image steps, the table loads cell for cell, the
    histogram and figure are artifacts with the logged values."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    project = f"media-{uuid.uuid4().hex[:10]}"
    run = polytrack.init(project=project, dir=tmp_path / "home", **QUIET)
    logged = {step: picture(step) for step in range(3)}
    for step, image in logged.items():
        run.log_image("samples/val", image, step=step, caption=f"step {step}")
    columns = ["id", "label", "score", "ok"]
    rows = [[1, "cat", 0.25, True], [2, "dog", 0.5, False], [3, "émeu", 0.125, True]]
    run.log_table("predictions", rows, step=2, columns=columns)
    values = np.random.default_rng(7).normal(size=1000)
    run.log_histogram("weights", values, step=1, bins=10)
    figure, axes = plt.subplots(figsize=(2, 2), dpi=50)
    axes.plot([0, 1, 2], [2, 1, 3])
    run.log_figure("curve", figure, step=0)
    plt.close(figure)
    run.finish()
    assert run.dir is not None

    mlflow_run_id = sync(run.dir, backend)
    table = "tables/predictions/step-2.json"
    found = read_back(mlflow_server, mlflow_run_id, tmp_path / "out", [table])

    images = found["images"]
    assert {(i["key"], i["step"]) for i in images} == {("samples/val", s) for s in range(3)}
    assert sorted((i["step"], i["extension"], i["compressed"]) for i in images) == [
        (step, extension, compressed)
        for step in range(3)
        for extension, compressed in (("png", False), ("webp", True))
    ]
    for image in images:
        kept = pixels(tmp_path / "out" / image["path"])
        if image["compressed"]:
            assert max(kept.shape[:2]) == 256  # MLflow's thumbnail side
        else:
            np.testing.assert_array_equal(kept, logged[image["step"]])
    assert found["tags"]["mlflow.loggedImages"] == "True"
    first = images[0]  # the same layout as MLflow's own log_image, but for time and uuid
    ours = [i["path"] for i in images if i["uuid"] == first["uuid"]]
    assert sorted(name_shape(path) for path in ours) == sorted(
        name_shape(path) for path in found["reference"]
    )
    for path in found["reference"]:
        kept = pixels(tmp_path / "out/reference" / path)
        match = next(p for p in ours if p.endswith(path.rsplit(".", 1)[1]))
        assert kept.shape == pixels(tmp_path / "out" / match).shape

    assert found["tables"][table] == {"columns": columns, "data": rows}
    assert {"path": table, "type": "table"} in json.loads(found["tags"]["mlflow.loggedArtifacts"])

    histogram = json.loads((tmp_path / "out/media/histogram/weights/step-1.json").read_bytes())
    counts, edges = np.histogram(values, bins=10)
    assert histogram["counts"] == counts.tolist()
    np.testing.assert_allclose(histogram["edges"], edges)

    spec = json.loads((tmp_path / "out/media/figure/curve/step-0.json").read_bytes())
    assert spec["library"] == "matplotlib"
    with Image.open(tmp_path / "out/media/figure/curve/step-0.png") as png:
        assert png.format == "PNG" and png.size[0] > 0


def test_a_batch_sent_twice_leaves_one_file_per_image(
    mlflow_server: MlflowServer, backend: MlflowBackend, tmp_path: Path
) -> None:
    """Re-sent by this backend (nothing uploaded again) and by a fresh one after the sync
    state is lost (the same names, overwritten): one PNG and one thumbnail per image."""
    run = polytrack.init(project=f"media-{uuid.uuid4().hex[:10]}", dir=tmp_path / "home", **QUIET)
    run.log_image("batch", np.stack([picture(1), picture(2), picture(3)]), step=4)
    run.log_image("single", picture(4, (5, 5)), step=5)
    run.finish()
    directory = run.dir
    assert directory is not None
    mlflow_run_id = sync(directory, backend)

    puts: list[str] = []
    session = requests.Session()

    def note(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "PUT" and "/images/" in response.url:
            puts.append(response.url)

    session.hooks["response"].append(note)
    again = MlflowBackend.from_uri(
        f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig(), session=session
    )
    state_path(directory, backend.key).unlink()  # as if the position was never saved
    try:
        assert sync(directory, again) == mlflow_run_id
        assert len(puts) == 8  # every file again, under the same names
        state_path(directory, backend.key).unlink()
        runner = RunSync.open(directory, again)
        try:
            puts.clear()
            runner.step(live=False)  # the same batch 0, to the same backend object
        finally:
            runner.close()
        assert puts == []  # acknowledged in the earlier try: not uploaded again
    finally:
        again.close()
        session.close()

    listed = requests.get(
        f"{mlflow_server.url}/api/2.0/mlflow/artifacts/list",
        params={"run_id": mlflow_run_id, "path": "images"},
        timeout=30,
    ).json()["files"]
    names = sorted(entry["path"].removeprefix("images/") for entry in listed)
    assert len(names) == 8, names
    per_key: dict[tuple[str, str], int] = {}
    for name in names:
        key, _, step, *_ = name.split("+")
        per_key[(key, step)] = per_key.get((key, step), 0) + 1
    assert per_key == {("batch", "4"): 6, ("single", "5"): 2}
    for name in names:
        if name.endswith(".png"):
            answer = requests.get(
                f"{mlflow_server.url}/get-artifact",
                params={"run_id": mlflow_run_id, "path": f"images/{name}"},
                timeout=30,
            )
            assert answer.status_code == 200
            assert Image.open(io.BytesIO(answer.content)).format == "PNG"
