"""`MlflowBackend` against a real MLflow server: what a run looks like there, read back."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from polytrack.errors import BackendRejectedError
from polytrack.models import (
    CodeState,
    DataRef,
    EnvironmentState,
    GitState,
    GpuInfo,
    HardwareState,
    ParamsSet,
    RunStarted,
    SeedState,
    StatusChanged,
    TagsAdded,
)
from polytrack.sync.backends.base import Artifact, Backend, Batch, Series
from polytrack.sync.backends.config import BackendConfig
from polytrack.sync.backends.mlflow import MlflowBackend

from .mlflow_server import MlflowServer
from .process import request

pytestmark = pytest.mark.slow

T0 = 1_760_000_000.0  # a fixed start, so expected timestamps are exact


class Mlflow:
    """Reads a run back through the REST API, as a user's script would (again after a
    busy server's 5xx: see `process.request`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        url = f"{self.url}/api/2.0/mlflow/{endpoint}"
        answer = request(self.http, "GET", url, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get("runs/get", run_id=run_id)["run"]
        return found

    def params(self, run_id: str) -> dict[str, str]:
        return {p["key"]: p["value"] for p in self.run(run_id)["data"].get("params", [])}

    def tags(self, run_id: str) -> dict[str, str]:
        return {t["key"]: t["value"] for t in self.run(run_id)["data"].get("tags", [])}

    def history(self, run_id: str, key: str) -> list[tuple[int, float, int]]:
        """(step, value, timestamp ms) sorted by step; NaN comes back as the string "NaN"."""
        metrics = self.get("metrics/get-history", run_id=run_id, metric_key=key)["metrics"]
        return sorted((m.get("step", 0), float(m["value"]), m["timestamp"]) for m in metrics)

    def artifact(self, path: str) -> bytes:
        url = f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{path}"
        answer = request(self.http, "GET", url, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.content

    def artifacts(self, run_id: str, path: str = "") -> dict[str, int]:
        files = self.get("artifacts/list", run_id=run_id, path=path).get("files", [])
        return {f["path"]: f.get("file_size", 0) for f in files}

    def runs_tagged(self, experiment_id: str, polytrack_id: str) -> list[str]:
        answer = request(  # a search: a read, safe to send again
            self.http,
            "POST",
            f"{self.url}/api/2.0/mlflow/runs/search",
            json={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`polytrack.run_id` = '{polytrack_id}'",
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return [r["info"]["run_id"] for r in answer.json().get("runs", [])]


@pytest.fixture
def mlflow(mlflow_server: MlflowServer) -> Iterator[Mlflow]:
    reader = Mlflow(mlflow_server.url)
    yield reader
    reader.http.close()


@pytest.fixture
def backend(mlflow_server: MlflowServer) -> Iterator[MlflowBackend]:
    made = MlflowBackend.from_uri(f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig())
    yield made
    made.close()


def started(**changes: Any) -> RunStarted:
    """A run of its own project (one MLflow experiment per test)."""
    fields: dict[str, Any] = {
        "id": uuid.uuid4().hex[:8],
        "project": f"test-{uuid.uuid4().hex[:10]}",
        "name": "bold-fox-1",
        "created_at": T0,
        "host": "box",
        "pid": 1,
        "process_started": T0 - 1,
        "user": "ana",
    }
    fields.update(changes)
    return RunStarted(**fields)


def series(key: str, values: list[float] | np.ndarray, *, first_step: int = 0) -> Series:
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(first_step, first_step + values.size, dtype=np.int64)
    return Series(key, steps, values, T0 + steps * 0.5 + 0.0004)


def mapped(workdir: Path) -> dict[str, str]:
    """The MLflow ids `open_run` wrote down."""
    found: dict[str, str] = json.loads((workdir / "mlflow-run.json").read_text())
    return found


def opened(backend: MlflowBackend, tmp_path: Path, **changes: Any) -> tuple[RunStarted, str]:
    run = started(**changes)
    backend.open_run(run, workdir=tmp_path / "work")
    return run, mapped(tmp_path / "work")["run_id"]


def recording_session() -> tuple[requests.Session, list[tuple[str, int]]]:
    """A real session that notes (path, body bytes) of every request it sends."""
    session = requests.Session()
    sent: list[tuple[str, int]] = []

    def note(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        size = len(body) if isinstance(body, bytes | str) else -1
        sent.append((response.request.path_url.split("?")[0], size))

    session.hooks["response"].append(note)
    return session, sent


def test_is_a_backend(backend: MlflowBackend, mlflow_server: MlflowServer) -> None:
    """It satisfies the Backend protocol and is keyed by its URI."""
    assert isinstance(backend, Backend)
    assert backend.key == f"mlflow+{mlflow_server.url}"


def test_params_tags_and_metrics_read_back(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """Params (as str()), tags and every metric point land in the run, timestamps in ms."""
    run, run_id = opened(backend, tmp_path, notes="first try", tags=("cnn",))
    batch = Batch(
        seq=0,
        events=(
            ParamsSet({"lr": 0.01, "net.depth": 4, "amp": True, "ckpt": None, "sizes": [1, 2]}),
            TagsAdded(("baseline", "a/b c")),
            ParamsSet({"lr": 0.02}),
        ),
        metrics=(series("loss", [0.5, 0.25, 0.125]), series("acc", [0.1, 0.9], first_step=7)),
    )
    backend.write(run.id, batch)

    assert mlflow.params(run_id) == {
        "lr": "0.02",
        "net.depth": "4",
        "amp": "True",
        "ckpt": "None",
        "sizes": "[1, 2]",
    }
    tags = mlflow.tags(run_id)
    assert tags["polytrack.run_id"] == run.id
    assert tags["mlflow.runName"] == "bold-fox-1"
    assert tags["mlflow.note.content"] == "first try"
    assert tags["mlflow.user"] == "ana"  # who ran it, where MLflow's own client puts it
    assert {k: v for k, v in tags.items() if k.startswith("polytrack.tag.")} == {
        "polytrack.tag.cnn": "cnn",
        "polytrack.tag.baseline": "baseline",
        "polytrack.tag.a/b c": "a/b c",
    }
    info = mlflow.run(run_id)["info"]
    assert info["start_time"] == round(T0 * 1000)
    assert info["status"] == "RUNNING"
    assert info["user_id"] == "ana"
    assert mlflow.history(run_id, "loss") == [
        (0, 0.5, round((T0 + 0.0004) * 1000)),
        (1, 0.25, round((T0 + 0.5004) * 1000)),
        (2, 0.125, round((T0 + 1.0004) * 1000)),
    ]
    assert [(step, value) for step, value, _ in mlflow.history(run_id, "acc")] == [
        (7, 0.1),
        (8, 0.9),
    ]


def test_large_batch_is_split_within_mlflows_limits(
    mlflow_server: MlflowServer, mlflow: Mlflow, tmp_path: Path
) -> None:
    """2,500 points and 250 params in one batch arrive whole, in requests within the limits."""
    session, sent = recording_session()
    backend = MlflowBackend.from_uri(
        f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig(), session=session
    )
    try:
        run, run_id = opened(backend, tmp_path)
        params = {f"p{i:03d}": i for i in range(250)}
        values = np.linspace(1.0, 0.0, 2500)
        sent.clear()
        backend.write(
            run.id, Batch(seq=0, events=(ParamsSet(params),), metrics=(series("loss", values),))
        )
    finally:
        backend.close()
    assert mlflow.params(run_id) == {key: str(value) for key, value in params.items()}
    assert [value for _, value, _ in mlflow.history(run_id, "loss")] == values.tolist()
    batches = [size for path, size in sent if path.endswith("/runs/log-batch")]
    assert len(batches) == 3 + 3  # ceil(2500 / 1000) metric requests, ceil(250 / 100) param ones


def test_a_repeated_batch_duplicates_nothing(
    backend: MlflowBackend, mlflow_server: MlflowServer, mlflow: Mlflow, tmp_path: Path
) -> None:
    """The same batch sent again, by this backend or a new one, adds no point, param or tag."""
    run, run_id = opened(backend, tmp_path)
    batch = Batch(
        seq=3,
        events=(ParamsSet({"lr": 0.1}), TagsAdded(("x",))),
        metrics=(series("loss", [3.0, 2.0, 2.0, 1.0]), series("nan", [math.nan, math.nan])),
    )
    backend.write(run.id, batch)
    before = (mlflow.history(run_id, "loss"), mlflow.params(run_id), mlflow.tags(run_id))
    backend.write(run.id, batch)
    again = MlflowBackend.from_uri(
        f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig()
    )
    try:
        again.open_run(run, workdir=tmp_path / "work")
        again.write(run.id, batch)
    finally:
        again.close()
    assert (mlflow.history(run_id, "loss"), mlflow.params(run_id), mlflow.tags(run_id)) == before
    assert len(before[0]) == 4
    assert len(mlflow.history(run_id, "nan")) == 2


def test_nan_and_infinities_survive(backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path) -> None:
    """NaN reads back as NaN; +-inf as +-float max, the most MLflow's SQL store can hold."""
    run, run_id = opened(backend, tmp_path)
    values = [1.5, math.nan, math.inf, -math.inf, 2.5]
    backend.write(run.id, Batch(seq=0, metrics=(series("odd", values),)))
    back = [value for _, value, _ in mlflow.history(run_id, "odd")]
    assert back[0] == 1.5 and back[4] == 2.5
    assert math.isnan(back[1])
    assert back[2:4] == [1.7976931348623157e308, -1.7976931348623157e308]


def test_statuses_and_end_time(backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path) -> None:
    """running, crashed (FAILED plus a tag), then succeeded with its end time and message."""
    run, run_id = opened(backend, tmp_path)
    backend.set_status(run.id, "running", at=T0 + 1)
    info = mlflow.run(run_id)["info"]
    assert info["status"] == "RUNNING" and "end_time" not in info

    backend.set_status(run.id, "crashed", at=T0 + 5, message="process 12 died")
    info, tags = mlflow.run(run_id)["info"], mlflow.tags(run_id)
    assert (info["status"], info["end_time"]) == ("FAILED", round((T0 + 5) * 1000))
    assert tags["polytrack.status"] == "crashed"
    assert tags["polytrack.status_message"] == "process 12 died"

    backend.set_status(run.id, "stopped", at=T0 + 6.5)
    backend.set_status(run.id, "stopped", at=T0 + 6.5)
    assert mlflow.run(run_id)["info"]["status"] == "KILLED"
    backend.set_status(run.id, "succeeded", at=T0 + 7.25, message="done")
    info, tags = mlflow.run(run_id)["info"], mlflow.tags(run_id)
    assert (info["status"], info["end_time"]) == ("FINISHED", round((T0 + 7.25) * 1000))
    assert (tags["polytrack.status"], tags["polytrack.status_message"]) == ("succeeded", "done")


def test_skipped_is_killed_with_the_tag(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """MLflow has no skipped: KILLED, with its end time, and polytrack.status=skipped."""
    run, run_id = opened(backend, tmp_path)
    backend.set_status(run.id, "skipped", at=T0 + 3, message="conditions are false")
    info, tags = mlflow.run(run_id)["info"], mlflow.tags(run_id)
    assert (info["status"], info["end_time"]) == ("KILLED", round((T0 + 3) * 1000))
    assert tags["polytrack.status"] == "skipped"
    assert tags["polytrack.status_message"] == "conditions are false"


def test_status_changes_in_a_batch_are_left_to_set_status(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """A StatusChanged event in a batch changes nothing: the engine calls set_status."""
    run, run_id = opened(backend, tmp_path)
    backend.write(run.id, Batch(seq=0, events=(StatusChanged("failed", at=T0 + 1),)))
    assert mlflow.run(run_id)["info"]["status"] == "RUNNING"


def test_artifacts_round_trip(backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path) -> None:
    """A file uploaded (twice) reads back byte for byte, under its name, once."""
    run, run_id = opened(backend, tmp_path)
    data = np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    artifact = Artifact(
        path=path,
        name="model/weights v1.bin",
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    backend.upload_artifact(run.id, artifact)
    backend.upload_artifact(run.id, artifact)
    root = mlflow.run(run_id)["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
    assert mlflow.artifact(f"{root}/model/weights%20v1.bin") == data
    assert mlflow.artifacts(run_id, "model") == {"model/weights v1.bin": len(data)}


def test_artifact_names_must_stay_under_the_run(backend: MlflowBackend, tmp_path: Path) -> None:
    """A name that climbs out of the run's artifact root is refused before any upload."""
    run, _ = opened(backend, tmp_path)
    path = tmp_path / "f.txt"
    path.write_text("x")
    artifact = Artifact(path=path, name="../other/f.txt", digest="sha256:" + "0" * 64, size=1)
    with pytest.raises(BackendRejectedError, match="not a clean relative path"):
        backend.upload_artifact(run.id, artifact)


def test_snapshot_is_visible_as_tags_and_files(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """git and code become mlflow.source.* tags; the rest polytrack/*.json plus summary tags."""
    run, run_id = opened(backend, tmp_path)
    environment = EnvironmentState(
        python="3.11.7",
        implementation="CPython",
        platform="Linux-6.1-x86_64",
        hostname="box",
        packages={"numpy": "2.1.0"},
        frameworks={"torch": "2.4.0"},
    )
    events = (
        GitState(
            available=True,
            commit="0123456789abcdef0123456789abcdef01234567",
            branch="main",
            remote="https://example.com/org/project.git",
            dirty=True,
        ),
        CodeState(
            argv=("train.py", "--lr", "0.1"),
            cwd="/src",
            executable="/usr/bin/python3",
            entrypoint="train.py",
        ),
        environment,
        HardwareState(
            cpu_model="Xeon",
            cpu_logical=8,
            cpu_physical=4,
            memory_total=2**34,
            gpus=(GpuInfo(index=0, name="NVIDIA H100"),),
        ),
        SeedState(seed=1234, libraries=("random", "numpy")),
    )
    backend.write(run.id, Batch(seq=0, events=events))
    tags = mlflow.tags(run_id)
    assert {k: tags[k] for k in tags if k.startswith("mlflow.source.")} == {
        "mlflow.source.git.commit": "0123456789abcdef0123456789abcdef01234567",
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "https://example.com/org/project.git",
        "mlflow.source.name": "train.py",
        "mlflow.source.type": "LOCAL",
    }
    assert tags["polytrack.python"] == "CPython 3.11.7"
    assert tags["polytrack.frameworks"] == "torch 2.4.0"
    assert tags["polytrack.gpus"] == "NVIDIA H100"
    assert tags["polytrack.seed"] == "1234"
    assert tags["polytrack.git.dirty"] == "true"
    assert set(mlflow.artifacts(run_id, "polytrack")) == {
        "polytrack/code.json",
        "polytrack/environment.json",
        "polytrack/git.json",
        "polytrack/hardware.json",
        "polytrack/seeds.json",
    }
    root = mlflow.run(run_id)["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
    saved = json.loads(mlflow.artifact(f"{root}/polytrack/environment.json"))
    assert saved["packages"] == {"numpy": "2.1.0"} and saved["python"] == "3.11.7"


def test_data_refs_become_dataset_inputs(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """Inputs are MLflow datasets (once, however often sent); every ref is a digest tag."""
    run, run_id = opened(backend, tmp_path)
    train = DataRef(
        name="train",
        role="input",
        kind="file",
        digest="sha256:" + "ab" * 32,
        size=10,
        path="data/train.csv",
    )
    array = DataRef(name="val", role="input", kind="array", digest="sha256:" + "cd" * 32, size=8)
    output = DataRef(
        name="preds",
        role="output",
        kind="file",
        digest="sha256:" + "ef" * 32,
        size=3,
        path="out/preds.csv",
    )
    batch = Batch(seq=0, events=(train, array, output))
    backend.write(run.id, batch)
    backend.write(run.id, batch)
    inputs = mlflow.run(run_id)["inputs"]["dataset_inputs"]
    datasets = sorted((d["dataset"] for d in inputs), key=lambda d: d["name"])
    assert [(d["name"], d["digest"], d["source_type"]) for d in datasets] == [
        ("train", "ab" * 18, "local"),
        ("val", "cd" * 18, "code"),
    ]
    assert json.loads(datasets[0]["source"]) == {"uri": "data/train.csv"}
    assert json.loads(datasets[0]["profile"])["digest"] == train.digest
    tags = mlflow.tags(run_id)
    assert tags["polytrack.data.train"] == train.digest
    assert tags["polytrack.data.preds"] == output.digest


def test_reopening_finds_the_same_run(
    backend: MlflowBackend, mlflow_server: MlflowServer, mlflow: Mlflow, tmp_path: Path
) -> None:
    """Another process, with or without the workdir's note, finds the run instead of a twin."""
    run, run_id = opened(backend, tmp_path)
    backend.open_run(run, workdir=tmp_path / "work")
    for workdir in (tmp_path / "work", tmp_path / "fresh"):
        other = MlflowBackend.from_uri(
            f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig()
        )
        try:
            other.open_run(run, workdir=workdir)
        finally:
            other.close()
        assert mapped(workdir)["run_id"] == run_id
    experiment_id = mapped(tmp_path / "work")["experiment_id"]
    assert mlflow.runs_tagged(experiment_id, run.id) == [run_id]


def test_a_second_run_of_a_project_shares_its_experiment(
    backend: MlflowBackend, tmp_path: Path
) -> None:
    """Runs of one project go to one experiment, found by name."""
    first = started()
    second = started(project=first.project)
    backend.open_run(first, workdir=tmp_path / "a")
    backend.open_run(second, workdir=tmp_path / "b")
    assert mapped(tmp_path / "a")["experiment_id"] == mapped(tmp_path / "b")["experiment_id"]
    assert mapped(tmp_path / "a")["run_id"] != mapped(tmp_path / "b")["run_id"]


def test_bodies_stay_under_one_megabyte(
    mlflow_server: MlflowServer, mlflow: Mlflow, tmp_path: Path
) -> None:
    """1,000 points with 250-character non-ASCII keys (1.5 MB as JSON) go in two requests."""
    session, sent = recording_session()
    backend = MlflowBackend.from_uri(
        f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig(), session=session
    )
    keys = [f"{i:03d}" + "数" * 247 for i in range(10)]
    try:
        run, run_id = opened(backend, tmp_path)
        sent.clear()
        batch = Batch(seq=0, metrics=tuple(series(key, np.arange(100.0)) for key in keys))
        backend.write(run.id, batch)
    finally:
        backend.close()
    sizes = [size for path, size in sent if path.endswith("/runs/log-batch")]
    assert len(sizes) == 2 and all(0 < size <= 1_000_000 for size in sizes)
    assert sum(sizes) > 1_000_000
    assert [len(mlflow.history(run_id, key)) for key in keys] == [100] * 10


def test_names_mlflow_refuses_are_kept_under_stable_stand_ins(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """A metric or param key MLflow refuses arrives under a cleaned, hashed name."""
    run, run_id = opened(backend, tmp_path)
    batch = Batch(seq=0, events=(ParamsSet({"opt@lr": 1}),), metrics=(series("loss@val", [1.0]),))
    backend.write(run.id, batch)
    backend.write(run.id, batch)
    names = [m["key"] for m in mlflow.run(run_id)["data"]["metrics"]]
    assert len(names) == 1 and names[0].startswith("loss_val-")
    assert len(mlflow.history(run_id, names[0])) == 1
    (param,) = mlflow.params(run_id)
    assert param.startswith("opt_lr-")


def test_a_changed_param_is_named_after_the_rest_is_sent(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """MLflow refuses a param's new value; metrics, tags and other params still arrive."""
    run, run_id = opened(backend, tmp_path)
    backend.write(run.id, Batch(seq=0, events=(ParamsSet({"lr": 0.1}),)))
    batch = Batch(
        seq=1,
        events=(ParamsSet({"lr": 0.2, "epochs": 3}), TagsAdded(("late",))),
        metrics=(series("loss", [1.0, 0.5]),),
    )
    with pytest.raises(BackendRejectedError, match=r"lr='0\.2' \(MLflow holds '0\.1'\)") as caught:
        backend.write(run.id, batch)
    assert caught.value.status == 400
    assert mlflow.params(run_id) == {"lr": "0.1", "epochs": "3"}
    assert mlflow.tags(run_id)["polytrack.tag.late"] == "late"
    assert len(mlflow.history(run_id, "loss")) == 2


def test_unopened_runs_are_refused(backend: MlflowBackend) -> None:
    """write, set_status and upload_artifact need open_run first."""
    with pytest.raises(BackendRejectedError, match="not opened"):
        backend.write("nope", Batch(seq=0))
    with pytest.raises(BackendRejectedError, match="not opened"):
        backend.set_status("nope", "running", at=time.time())


def test_a_run_deleted_in_mlflow_is_created_again(
    backend: MlflowBackend, mlflow_server: MlflowServer, mlflow: Mlflow, tmp_path: Path
) -> None:
    """The workdir names a run someone deleted: a new one is made rather than writing to it."""
    run, run_id = opened(backend, tmp_path)
    deleted = mlflow.http.post(
        f"{mlflow.url}/api/2.0/mlflow/runs/delete", json={"run_id": run_id}, timeout=30
    )
    assert deleted.status_code == 200, deleted.text
    other = MlflowBackend.from_uri(
        f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig()
    )
    try:
        other.open_run(run, workdir=tmp_path / "work")
    finally:
        other.close()
    renewed = mapped(tmp_path / "work")["run_id"]
    assert renewed != run_id
    assert mlflow.tags(renewed)["polytrack.run_id"] == run.id
    assert mlflow.run(renewed)["info"]["lifecycle_stage"] == "active"


def test_a_deleted_experiment_is_refused_with_advice(
    backend: MlflowBackend, mlflow: Mlflow, tmp_path: Path
) -> None:
    """A project whose experiment was deleted is refused, naming how to restore it."""
    first, _ = opened(backend, tmp_path)
    experiment_id = mapped(tmp_path / "work")["experiment_id"]
    deleted = mlflow.http.post(
        f"{mlflow.url}/api/2.0/mlflow/experiments/delete",
        json={"experiment_id": experiment_id},
        timeout=30,
    )
    assert deleted.status_code == 200, deleted.text
    fresh = MlflowBackend.from_uri(f"mlflow+{mlflow.url}", environ={}, config=BackendConfig())
    try:
        with pytest.raises(BackendRejectedError, match=r"is deleted.*experiments restore"):
            fresh.open_run(started(project=first.project), workdir=tmp_path / "second")
    finally:
        fresh.close()


def test_processes_opening_one_run_at_once_share_one_mlflow_run(
    mlflow_server: MlflowServer, mlflow: Mlflow, tmp_path: Path
) -> None:
    """Four backends opening the same run at the same moment all end up on one MLflow run."""
    run = started()
    backends = [
        MlflowBackend.from_uri(f"mlflow+{mlflow_server.url}", environ={}, config=BackendConfig())
        for _ in range(4)
    ]
    gate = threading.Barrier(len(backends))

    def open_one(backend: MlflowBackend) -> str:
        gate.wait()
        backend.open_run(run, workdir=tmp_path / "work")
        backend.write(run.id, Batch(seq=0, metrics=(series("loss", [1.0]),)))
        return mapped(tmp_path / "work")["run_id"]

    try:
        with ThreadPoolExecutor(len(backends)) as pool:
            chosen = set(pool.map(open_one, backends))
    finally:
        for backend in backends:
            backend.close()
    experiment_id = mapped(tmp_path / "work")["experiment_id"]
    assert mlflow.runs_tagged(experiment_id, run.id) == list(chosen)
    assert len(mlflow.history(chosen.pop(), "loss")) == 1
