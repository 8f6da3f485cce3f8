#!/usr/bin/env python
"""Benchmarks of syncing to a tracking server: polytrack's MLflow backend vs MLflow's client.

    python benchmarks/bench_sync.py [--quick] [--json OUT] [--strict] [--points N]

Starts a real `mlflow server` (the tests' cached virtualenv, `tests/servers/`; the first
run on a machine builds it, about two minutes) and measures, against that one server:

- M1: MLflow's own client, `MlflowClient().log_batch(run_id, metrics=[...1000...])`, run
  by the MLflow venv's Python in a subprocess and timed inside it around the calls;
- M2: `MlflowBackend.write(run_id, batch)` with batches of the same 1000 points each,
  timed in this process around the calls; target: at least 0.90x M1's points per second;
- M3: the first `REPEATED` batches written a second time, as after a restart (the backend
  skips only the acknowledged requests of the batch it is retrying): what MLflow's check
  for points it holds already costs, for information.

Both sides get their inputs built before the clock starts (Metric objects; `Batch`es of
numpy arrays), write into a fresh run per repetition, and alternate, M1 then M2, `reps`
times; each figure is the best repetition. Exit status 0 unless `--strict` is given and a
target failed. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from _harness import (
    Report,
    Result,
    add_common_arguments,
    child_env,
    finish,
    fs_type,
    header,
    log,
    machine_meta,
    temp_dir,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/servers: the MLflow server the tests use

from tests.servers.mlflow_server import MlflowServer  # noqa: E402

from polytrack.models import RunStarted  # noqa: E402
from polytrack.sync.backends.base import Batch, Series  # noqa: E402
from polytrack.sync.backends.config import BackendConfig  # noqa: E402
from polytrack.sync.backends.mlflow import MlflowBackend  # noqa: E402

perf_counter = time.perf_counter

KEYS = 10  # metric keys per batch; each batch holds BATCH // KEYS steps of every key
BATCH = 1000  # points per request: runs/log-batch's limit
REPEATED = 10  # batches written twice for M3


@dataclass(frozen=True)
class Sizes:
    points: int
    reps: int


FULL = Sizes(points=100_000, reps=3)
QUICK = Sizes(points=20_000, reps=2)

# Timed inside the MLflow venv's interpreter: only the log_batch calls are on the clock.
_CLIENT = """
import json, sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

url, experiment_id, points, keys, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
client = MlflowClient(tracking_uri=url)
run_id = client.create_run(experiment_id).info.run_id
start = int(time.time() * 1000)
steps = batch // keys
batches = []
for first in range(0, points // keys, steps):
    batches.append([
        Metric(f"m{k}", 1.0 / (1 + step + k), start + step, step)
        for k in range(keys) for step in range(first, first + steps)
    ])
began = time.perf_counter()
for metrics in batches:
    client.log_batch(run_id, metrics=metrics)
print(json.dumps({"seconds": time.perf_counter() - began, "run_id": run_id}))
"""


def _batches(points: int, start: float) -> list[Batch]:
    """The same points as the client's: key m<k>, value 1/(1+step+k), time start + step ms."""
    steps = BATCH // KEYS
    batches = []
    for seq, first in enumerate(range(0, points // KEYS, steps)):
        step = np.arange(first, first + steps, dtype=np.int64)
        times = start + step / 1000.0
        series = tuple(
            Series(f"m{k}", step, 1.0 / (1 + step + k).astype(np.float64), times)
            for k in range(KEYS)
        )
        batches.append(Batch(seq=seq, metrics=series))
    return batches


def _client_seconds(server: MlflowServer, python: Path, experiment_id: str, points: int) -> float:
    env = child_env(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    done = subprocess.run(
        [str(python), "-c", _CLIENT, server.url, experiment_id, str(points), str(KEYS), str(BATCH)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the MLflow client failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def _backend_seconds(
    backend: MlflowBackend, project: str, workdir: Path, points: int
) -> tuple[float, float, str]:
    """(first write, second write of the first REPEATED batches, polytrack run id)."""
    now = time.time()
    run = RunStarted(
        id=uuid.uuid4().hex[:8],
        project=project,
        name="bench",
        created_at=now,
        host="bench",
        pid=0,
        process_started=now,
    )
    backend.open_run(run, workdir=workdir / run.id)
    batches = _batches(points, now)
    began = perf_counter()
    for batch in batches:
        backend.write(run.id, batch)
    first = perf_counter() - began
    began = perf_counter()
    for batch in batches[:REPEATED]:
        backend.write(run.id, batch)
    return first, perf_counter() - began, run.id


def bench_mlflow(report: Report, sizes: Sizes, root: Path) -> None:
    log("starting mlflow server")
    server = MlflowServer.start(root / "server")
    try:
        from tests.servers.mlflow_server import MLFLOW_REQUIREMENTS
        from tests.servers.venvs import ensure_venv

        python = ensure_venv("mlflow", MLFLOW_REQUIREMENTS) / "bin" / "python"
        project = f"bench-{uuid.uuid4().hex[:8]}"
        backend = MlflowBackend.from_uri(f"mlflow+{server.url}", environ={}, config=BackendConfig())
        try:
            # The backend creates the experiment; the client writes into the same one.
            _backend_seconds(backend, project, root, BATCH * 2)
            experiment_id = _rest(
                server.url, "GET", "experiments/get-by-name", experiment_name=project
            )["experiment"]["experiment_id"]
            _client_seconds(server, python, experiment_id, BATCH * 2)  # warm both sides
            client, ours, again = [], [], []
            for rep in range(sizes.reps):
                client.append(_client_seconds(server, python, experiment_id, sizes.points))
                first, repeat, run_id = _backend_seconds(backend, project, root, sizes.points)
                ours.append(first)
                again.append(repeat)
                log(f"rep {rep + 1}: client {client[-1]:.2f} s, backend {first:.2f} s")
            remote = json.loads((root / run_id / "mlflow-run.json").read_text())["run_id"]
            held = len(
                _rest(server.url, "GET", "metrics/get-history", run_id=remote, metric_key="m0").get(
                    "metrics", []
                )
            )
        finally:
            backend.close()
    finally:
        server.stop()
    n = sizes.points
    rate_client, rate_ours = n / min(client), n / min(ours)
    rate_again = min(n, REPEATED * BATCH) / min(again)
    ratio = rate_ours / rate_client
    report.add(
        Result(
            "M1",
            "MlflowClient.log_batch, 1000 metrics a call",
            round(rate_client),
            "pts/s",
            notes=f"{n:,} points, {n // BATCH} calls, best of {sizes.reps}: "
            f"{', '.join(f'{s:.2f}' for s in client)} s; mlflow venv subprocess",
        )
    )
    report.add(
        Result(
            "M2",
            "MlflowBackend.write, 1000 points a batch",
            round(rate_ours),
            "pts/s",
            f"client {rate_client:,.0f} pts/s",
            ratio,
            ">= 0.90x",
            ratio >= 0.90,
            notes=f"best of {sizes.reps}: {', '.join(f'{s:.2f}' for s in ours)} s; "
            f"m0 holds {held:,} of {n // KEYS:,} points after the repeat (M3)",
            extra={"client_seconds": client, "backend_seconds": ours},
        )
    )
    report.add(
        Result(
            "M3",
            "MlflowBackend.write, the same batches again",
            round(rate_again),
            "pts/s",
            f"first write {rate_ours:,.0f} pts/s",
            rate_again / rate_ours,
            notes=f"{min(n, REPEATED * BATCH):,} points resent as after a restart: MLflow"
            " looks up and drops every point it holds already",
        )
    )


def _rest(url: str, method: str, endpoint: str, **params: str) -> dict[str, Any]:
    """One MLflow REST call, for what the figures check (not timed)."""
    answer = requests.request(method, f"{url}/api/2.0/mlflow/{endpoint}", params=params, timeout=60)
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick=f"{QUICK.points:,} points, {QUICK.reps} repetitions")
    parser.add_argument("--points", type=int, help="points per measurement (a multiple of 1000)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.points:
        sizes = Sizes(points=max(BATCH, args.points // BATCH * BATCH), reps=sizes.reps)
    meta = machine_meta("quick" if args.quick else "full", points=sizes.points)
    with temp_dir("polytrack-bench-sync-") as root:
        header(meta, f"server store on {fs_type(root)}")
        report = Report()
        bench_mlflow(report, sizes, root)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
