"""Sync to a real MLflow server through a proxy that breaks things on purpose: dropped
connections, 5xx, 429, slow answers, and a training process killed in mid-sync. Whatever
happens, the server ends up holding exactly the points the run logged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from polytrack.store.reader import read_series

from .faulty_proxy import Fault, FaultyProxy
from .mlflow_server import MlflowServer

LOG_BATCH = r"/runs/log-batch$"


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[FaultyProxy]:
    with FaultyProxy.start(mlflow_server.url) as started:
        yield started


def _mlflow_run(server: MlflowServer, project: str, run_id: str) -> dict[str, Any]:
    api = f"{server.url}/api/2.0/mlflow"
    experiment = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": project}, timeout=30
    ).json()["experiment"]
    found = requests.post(
        f"{api}/runs/search",
        json={
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.`polytrack.run_id` = '{run_id}'",
        },
        timeout=30,
    ).json()["runs"]
    assert len(found) == 1, found
    return found[0]  # type: ignore[no-any-return]


def _history(server: MlflowServer, mlflow_run_id: str, key: str) -> list[tuple[int, float]]:
    points: list[tuple[int, float]] = []
    token = None
    while True:
        params: dict[str, Any] = {"run_id": mlflow_run_id, "metric_key": key, "max_results": 25000}
        if token:
            params["page_token"] = token
        body = requests.get(
            f"{server.url}/api/2.0/mlflow/metrics/get-history", params=params, timeout=60
        ).json()
        points += [(int(m["step"]), float(m["value"])) for m in body.get("metrics", [])]
        token = body.get("next_page_token")
        if not token:
            return sorted(points)


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return path


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "POLYTRACK_"))}
    env.update(POLYTRACK_HOME=str(home), POLYTRACK_CAPTURE_SYSTEM="0", **extra)
    return env


def test_faults_in_flight_lose_and_duplicate_nothing(
    mlflow_server: MlflowServer, proxy: FaultyProxy, tmp_path: Path
) -> None:
    """503s, a 429, connections dropped before and after the server applied a batch: the
    run's history on the server equals what was logged, point for point."""
    home = tmp_path / "home"
    proxy.fail_next(2, Fault.status(503), path=LOG_BATCH)
    proxy.fail_next(1, Fault.drop_after_forward(), path=LOG_BATCH)
    proxy.fail_next(1, Fault.throttle(1), path=LOG_BATCH)
    proxy.fail_next(1, Fault.drop_before_forward(), path=LOG_BATCH)
    proxy.fail_next(1, Fault.status(500), path=r"/runs/update$")
    script = _script(
        tmp_path,
        """
        import polytrack
        run = polytrack.init(project="faults", params={"lr": 0.01})
        print(run.id, flush=True)
        # 24,000 points: two batches, 24 requests of 1,000 points, for six faults to hit.
        for step in range(12_000):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 12_000}, step=step)
        run.finish()
        """,
    )
    env = _env(home, POLYTRACK_BACKEND=f"mlflow+{proxy.url}", POLYTRACK_SYNC_TIMEOUT="120")
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[0]
    remote = _mlflow_run(mlflow_server, "faults", run_id)
    assert remote["info"]["status"] == "FINISHED"
    directory = home / "runs" / run_id
    for key in ("loss", "acc"):
        logged = read_series(directory, key)
        expected = list(zip(logged.steps.tolist(), logged.values.tolist(), strict=True))
        assert _history(mlflow_server, remote["info"]["run_id"], key) == expected, key
    assert len([r for r in proxy.records if r.fault.kind != "passthrough"]) >= 6
    assert "retrying in the background" in done.stderr  # said once, training went on


def test_kill_9_in_mid_sync_then_polytrack_sync(
    mlflow_server: MlflowServer, proxy: FaultyProxy, tmp_path: Path
) -> None:
    """The training process is killed while a batch is in flight (slow answers); then
    `polytrack sync` finishes the job: every point on the server once, status FAILED
    (crashed)."""
    home = tmp_path / "home"
    proxy.fail_next(None, Fault.delay(1.0), path=LOG_BATCH)
    script = _script(
        tmp_path,
        """
        import time
        import polytrack
        run = polytrack.init(project="killed")
        print(run.id, flush=True)
        # Enough for batches to be in flight when it is killed, and no more: every point
        # logged goes to MLflow afterwards, and a run logging until killed logs millions.
        for step in range(40_000):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(3600)  # until killed, its sync in mid-batch
        """,
    )
    uri = f"mlflow+{proxy.url}"
    env = _env(home, POLYTRACK_BACKEND=uri, POLYTRACK_SYNC_INTERVAL="0.2")
    process = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        run_id = process.stdout.readline().split()[0]
        deadline = time.monotonic() + 120
        while proxy.forwarded["/api/2.0/mlflow/runs/log-batch"] < 3:
            assert time.monotonic() < deadline, proxy.seen
            time.sleep(0.05)
        time.sleep(0.3)  # a batch is on its way, its answer held back by the proxy
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    proxy.clear()
    directory = home / "runs" / run_id
    cli = subprocess.run(
        [sys.executable, "-m", "polytrack", "--home", str(home), "sync", run_id],
        env=_env(home, POLYTRACK_BACKEND=uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    logged = read_series(directory, "loss")
    remote = _mlflow_run(mlflow_server, "killed", run_id)
    history = _history(mlflow_server, remote["info"]["run_id"], "loss")
    assert history == list(zip(logged.steps.tolist(), logged.values.tolist(), strict=True))
    assert remote["info"]["status"] == "FAILED"
    tags = {tag["key"]: tag["value"] for tag in remote["data"].get("tags", [])}
    assert tags.get("polytrack.status") == "crashed"


def test_polytrack_sync_sends_an_offline_run_with_its_files(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """A run recorded offline goes up with `polytrack sync`: params, metrics, status, and
    its output log as an artifact."""
    home = tmp_path / "home"
    script = _script(
        tmp_path,
        """
        import polytrack
        run = polytrack.init(project="offline", params={"depth": 3}, mode="offline")
        print(run.id, flush=True)
        print("epoch 1 done", flush=True)
        for step in range(10):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.finish()
        """,
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        env=_env(home, POLYTRACK_CONSOLE="wrap"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[0]
    cli = subprocess.run(
        [sys.executable, "-m", "polytrack", "--home", str(home), "sync", "--all"],
        env=_env(home, POLYTRACK_BACKEND=f"mlflow+{mlflow_server.url}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"{run_id}: 10 points" in cli.stderr
    remote = _mlflow_run(mlflow_server, "offline", run_id)
    assert remote["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in remote["data"]["params"]} == {"depth": "3"}
    listing = requests.get(
        f"{mlflow_server.url}/api/2.0/mlflow/artifacts/list",
        params={"run_id": remote["info"]["run_id"], "path": "polytrack"},
        timeout=30,
    ).json()
    names = {Path(f["path"]).name for f in listing.get("files", [])}
    assert "output-000.log" in names
