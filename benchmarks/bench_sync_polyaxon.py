#!/usr/bin/env python
"""Benchmark of the Polyaxon backend: shipping a run's metrics vs a plain upload.

    python benchmarks/bench_sync_polyaxon.py [--quick] [--json OUT] [--strict]
                                             [--points N] [--batch-points N] [--reps N]

Starts a Polyaxon sandbox (the tests' helper, `tests/servers/polyaxon_sandbox.py`: its
cached virtualenv is built on first use) and measures, interleaved, best of `--reps`:

- P1: a plain upload of a file of N bytes (N = the size of the event files of P2) to
  the streams API's artifact endpoint, as `requests` does it (`files=`), from disk;
- P2: `PolyaxonBackend` shipping a run of `--points` points over four metrics in batches
  of `--batch-points` points (as the sync engine sends them), then `close()`: the event
  files' bytes per second of the time from the first `write` to `close` returning, which
  includes formatting and staging the lines durably (one fdatasync per batch) and the
  upload; target: at least half P1's throughput;
- P3: where P2's time goes: staging per point, the upload at close.

Exit status 0 unless `--strict` is given and a target failed. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import requests

from _harness import (
    Report,
    Result,
    add_common_arguments,
    finish,
    fs_type,
    header,
    log,
    machine_meta,
)
from polytrack.models import RunStarted
from polytrack.sync.backends.base import Batch, Series
from polytrack.sync.backends.polyaxon import PolyaxonBackend, run_uuid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers.polyaxon_sandbox import OWNER, PolyaxonSandbox

perf_counter = time.perf_counter
KEYS = ("loss", "accuracy", "lr", "system/cpu")


def make_batches(points: int, batch_points: int, seed: int = 0) -> list[Batch]:
    """`points` points over KEYS, one step per key per row, cut into batches the way the
    engine cuts the journal: `batch_points` points each, every metric in each batch."""
    rng = np.random.default_rng(seed)
    rows = points // len(KEYS)
    steps = np.arange(rows, dtype=np.int64)
    times = 1.7e9 + steps * 0.0123 + rng.random(rows) * 1e-3
    values = {
        "loss": np.exp(-steps / rows) + rng.random(rows) * 0.01,
        "accuracy": 1 - np.exp(-steps / rows) * rng.random(rows),
        "lr": 0.1 * 0.5 * (1 + np.cos(np.pi * steps / rows)),
        "system/cpu": np.round(rng.random(rows) * 100, 1),
    }
    per_batch = max(1, batch_points // len(KEYS))
    batches = []
    for seq, start in enumerate(range(0, rows, per_batch)):
        part = slice(start, start + per_batch)
        metrics = tuple(Series(key, steps[part], values[key][part], times[part]) for key in KEYS)
        batches.append(Batch(seq, metrics=metrics))
    return batches


def ship(
    sandbox: PolyaxonSandbox, project: str, batches: list[Batch], workdir: Path
) -> dict[str, float]:
    """One run through the backend: open, write every batch, close; the timings."""
    run_id = uuid.uuid4().hex[:8]
    backend = PolyaxonBackend.from_uri(f"polyaxon+{sandbox.url}/{OWNER}/{project}", environ={})
    t0 = perf_counter()
    backend.open_run(
        RunStarted(
            id=run_id,
            project=project,
            name="bench",
            created_at=time.time(),
            host="h",
            pid=1,
            process_started=0.0,
        ),
        workdir=workdir / run_id,
    )
    t1 = perf_counter()
    for batch in batches:
        backend.write(run_id, batch)
    t2 = perf_counter()
    backend.close()
    t3 = perf_counter()
    files = sandbox.directory / "root" / run_uuid(OWNER, project, run_id) / "events" / "metric"
    size = sum(path.stat().st_size for path in files.glob("*.plx"))
    return {"open": t1 - t0, "write": t2 - t1, "close": t3 - t2, "total": t3 - t1, "bytes": size}


def plain_upload(session: requests.Session, url: str, path: Path) -> float:
    """Seconds to upload `path` as the Polyaxon client would: one multipart POST."""
    t0 = perf_counter()
    with open(path, "rb") as file:
        response = session.post(
            url,
            files={"upload_file": (path.name, file)},
            data={"json": json.dumps({"path": "plain", "untar": False})},
            timeout=120,
        )
    response.raise_for_status()
    return perf_counter() - t0


def bench(report: Report, sandbox: PolyaxonSandbox, root: Path, args: argparse.Namespace) -> None:
    batches = make_batches(args.points, args.batch_points)
    points = sum(batch.points for batch in batches)
    project = "bench"
    sandbox.create_project(project)
    target = sandbox.create_run(project, "plain")["uuid"]
    url = f"{sandbox.url}/streams/v1/polyaxon/{OWNER}/{project}/runs/{target}/artifact"
    log(f"warm-up: {points:,} points in {len(batches)} batches")
    warm = ship(sandbox, project, batches, root)
    size = int(warm["bytes"])
    payload = root / "payload.bin"
    payload.write_bytes(np.random.default_rng(1).bytes(size))
    session = requests.Session()
    plain_upload(session, url, payload)
    shipped, uploads = [], []
    for rep in range(args.reps):
        uploads.append(plain_upload(session, url, payload))
        shipped.append(ship(sandbox, project, batches, root))
        log(
            f"rep {rep + 1}: plain {uploads[-1] * 1e3:.0f} ms, "
            f"backend {shipped[-1]['total'] * 1e3:.0f} ms"
        )
    session.close()
    best_plain = min(uploads)
    best = min(shipped, key=lambda timing: timing["total"])
    plain_rate = size / best_plain / 1e6
    rate = best["bytes"] / best["total"] / 1e6
    ratio = rate / plain_rate
    all_plain = ", ".join(f"{t * 1e3:.0f}" for t in uploads)
    all_shipped = ", ".join(f"{timing['total'] * 1e3:.0f}" for timing in shipped)
    report.add(
        Result(
            "P1",
            f"plain upload of {size / 1e6:.1f} MB (streams API)",
            plain_rate,
            "MB/s",
            notes=f"best of {args.reps}: {best_plain * 1e3:.0f} ms; all {all_plain} ms",
        )
    )
    report.add(
        Result(
            "P2",
            f"backend ships {points:,} points, write..close",
            rate,
            "MB/s",
            baseline=f"P1 {plain_rate:.1f} MB/s",
            ratio=ratio,
            goal=">= 0.50x",
            ok=ratio >= 0.50,
            notes=f"best of {args.reps}: {best['total'] * 1e3:.0f} ms "
            f"for {best['bytes'] / 1e6:.1f} MB "
            f"({best['bytes'] / points:.1f} B/pt, {len(batches)} batches of {args.batch_points}); "
            f"all {all_shipped} ms",
        )
    )
    report.add(
        Result(
            "P3",
            "staging per point (format, append, fdatasync)",
            best["write"] / points * 1e9,
            "ns",
            notes=f"write() total {best['write'] * 1e3:.0f} ms; close() (the upload) "
            f"{best['close'] * 1e3:.0f} ms; open_run {best['open'] * 1e3:.0f} ms (not counted)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="50,000 points, 3 repetitions")
    parser.add_argument("--points", type=int, default=None, help="points per run (200,000)")
    # The engine's batch size (RunSync's max_points) for a run with a backlog: a live
    # run's smaller batches come seconds apart, where throughput is not the question.
    parser.add_argument(
        "--batch-points", type=int, default=20_000, help="points per batch (default: the engine's)"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions (5)")
    args = parser.parse_args(argv)
    args.points = args.points or (50_000 if args.quick else 200_000)
    args.reps = args.reps or (3 if args.quick else 5)
    meta = machine_meta(
        "quick" if args.quick else "full", points=args.points, batch_points=args.batch_points
    )
    with tempfile.TemporaryDirectory(prefix="polytrack-bench-") as tmp:
        root = Path(tmp)
        header(meta, f"temp dir on {fs_type(root)}")
        report = Report()
        log("starting the Polyaxon sandbox")
        with PolyaxonSandbox.start(root / "sandbox") as sandbox:
            bench(report, sandbox, root / "work", args)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
