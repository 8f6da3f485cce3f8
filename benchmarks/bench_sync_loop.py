#!/usr/bin/env python
"""What syncing costs the training loop, and how fast the whole sync path ships a run.

    python benchmarks/bench_sync_loop.py [--quick] [--json OUT] [--strict]

Starts a real `mlflow server` (the tests' cached virtualenv, `tests/servers/`) and measures:

- L1: the per-call cost of `run.log_metrics` (10 metrics a call) while the run's sync
  thread ships to that server every 0.5 s, against the same loop in an offline run, the two
  alternated `reps` times. The loop logs in blocks of 500 calls with a 2 ms pause between
  blocks (standing in for the compute of a training step, which releases the GIL as a GPU
  kernel wait or a BLAS call does), so the sync thread works while the loop runs. Each
  figure is the mean time per call over the run's blocks, best repetition; target: within
  10% of offline ("within noise").
- L2: the end-to-end sync path, `polytrack sync` of a recorded run of N points (journal
  read, batches, log-batch requests, the sync position persisted after each batch), in
  points per second, against MLflow's own client (`MlflowClient().log_batch`, 1000 metrics
  a call, in the MLflow venv, timed inside its process) writing the same number of points
  to the same server; target: at least 0.90x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    Report,
    Result,
    add_common_arguments,
    finish,
    header,
    log,
    machine_meta,
    temp_dir,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/servers: the MLflow server the tests use

from tests.servers.mlflow_server import MlflowServer  # noqa: E402

import polytrack  # noqa: E402
from polytrack.sync.backends.registry import open_backend  # noqa: E402
from polytrack.sync.engine import RunSync  # noqa: E402

perf_counter = time.perf_counter
BLOCK = 500
PAUSE = 0.002
KEYS = [f"m{i}" for i in range(10)]


@dataclass(frozen=True)
class Sizes:
    calls: int
    reps: int
    points: int


FULL = Sizes(calls=40_000, reps=5, points=200_000)
QUICK = Sizes(calls=10_000, reps=3, points=50_000)


def _loop(run: polytrack.Run, calls: int) -> float:
    """Mean seconds per log call over blocks of BLOCK calls, pausing between blocks."""
    log_metrics = run.log_metrics
    values = dict.fromkeys(KEYS, 0.5)
    per_block = []
    step = 0
    for _ in range(calls // BLOCK):
        started = perf_counter()
        for _ in range(BLOCK):
            log_metrics(values, step=step)
            step += 1
        per_block.append((perf_counter() - started) / BLOCK)
        time.sleep(PAUSE)
    return statistics.fmean(per_block)


def bench_loop(report: Report, sizes: Sizes, root: Path, server: MlflowServer) -> None:
    uri = f"mlflow+{server.url}"
    offline: list[float] = []
    syncing: list[float] = []
    sent = 0
    for rep in range(sizes.reps):
        for mode in ("offline", "online"):
            home = root / f"loop-{rep}-{mode}"
            run = polytrack.init(
                project=f"loop-{uuid.uuid4().hex[:8]}",
                dir=home,
                mode=mode,
                backend=uri if mode == "online" else None,
                capture=False,
            )
            cost = _loop(run, sizes.calls)
            run.finish()
            (syncing if mode == "online" else offline).append(cost)
            if mode == "online":
                sent += sizes.calls * len(KEYS)
    best_off, best_on = min(offline), min(syncing)
    ratio = best_on / best_off
    report.add(
        Result(
            "L1",
            "log_metrics(10 keys) while syncing to MLflow",
            best_on * 1e9,
            "ns",
            baseline=f"offline {best_off * 1e9:.0f} ns",
            ratio=ratio,
            goal="<= 1.10x",
            ok=ratio <= 1.10,
            notes=f"{sizes.calls:,} calls x {sizes.reps}, alternated; offline "
            f"{', '.join(f'{v * 1e9:.0f}' for v in offline)} ns; syncing "
            f"{', '.join(f'{v * 1e9:.0f}' for v in syncing)} ns; sync thread every 0.5 s",
        )
    )


def _record(home: Path, points: int) -> str:
    run = polytrack.init(project="e2e", dir=home, mode="offline", capture=False)
    log_metrics = run.log_metrics
    for step in range(points // len(KEYS)):
        log_metrics(dict.fromkeys(KEYS, step * 0.001), step=step)
    run.finish()
    return run.id


def _client_seconds(server: MlflowServer, points: int) -> float:
    code = f"""
import time, mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
client = MlflowClient({server.url!r})
experiment = client.create_experiment("client-{uuid.uuid4().hex[:8]}")
run = client.create_run(experiment)
now = int(time.time() * 1000)
metrics = [Metric(f"m{{i % 10}}", i * 0.001, now + i, i // 10) for i in range({points})]
started = time.perf_counter()
for start in range(0, {points}, 1000):
    client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
print(time.perf_counter() - started)
"""
    from tests.servers.mlflow_server import MLFLOW_REQUIREMENTS
    from tests.servers.venvs import ensure_venv

    python = ensure_venv("mlflow", MLFLOW_REQUIREMENTS) / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    done = subprocess.run(
        [str(python), "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def _sync_seconds(server: MlflowServer, home: Path, run_id: str) -> float:
    backend = open_backend(f"mlflow+{server.url}", environ={})
    try:
        started = perf_counter()
        sync = RunSync.open(home / "runs" / run_id, backend, max_points=20_000)
        try:
            while not sync.step(live=False).caught_up:
                pass
        finally:
            sync.close()
        return perf_counter() - started
    finally:
        backend.close()


def bench_end_to_end(report: Report, sizes: Sizes, root: Path, server: MlflowServer) -> None:
    client: list[float] = []
    ours: list[float] = []
    for rep in range(sizes.reps):
        home = root / f"e2e-{rep}"
        run_id = _record(home, sizes.points)
        client.append(_client_seconds(server, sizes.points))
        ours.append(_sync_seconds(server, home, run_id))
        log(f"rep {rep}: client {client[-1]:.2f} s, polytrack sync {ours[-1]:.2f} s")
    rate_client = sizes.points / min(client)
    rate_ours = sizes.points / min(ours)
    ratio = rate_ours / rate_client
    report.add(
        Result(
            "L2",
            "polytrack sync of a recorded run, points/s",
            round(rate_ours),
            "pt/s",
            baseline=f"MlflowClient {rate_client:,.0f} pt/s",
            ratio=ratio,
            goal=">= 0.90x",
            ok=ratio >= 0.90,
            notes=f"{sizes.points:,} points x {sizes.reps}, best of each; client "
            f"{', '.join(f'{s:.2f}' for s in client)} s; polytrack "
            f"{', '.join(f'{s:.2f}' for s in ours)} s",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick=f"{QUICK.calls:,} calls, {QUICK.reps} repetitions")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    meta = machine_meta("quick" if args.quick else "full", calls=sizes.calls)
    os.environ["POLYTRACK_SYNC_INTERVAL"] = "0.5"
    os.environ["POLYTRACK_INDEX_ON_FINISH"] = "0"
    with temp_dir("polytrack-bench-sync-loop-") as root:
        header(meta, "MLflow server with a SQLite store")
        report = Report()
        server = MlflowServer.start(root / "server")
        try:
            bench_loop(report, sizes, root, server)
            bench_end_to_end(report, sizes, root, server)
        finally:
            server.stop()
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
