#!/usr/bin/env python
"""Benchmarks of the dashboard (`polytrack ui`) on a home of 10,000 runs.

    python benchmarks/bench_dashboard.py [--quick] [--json OUT] [--strict] [--store-cache DIR]

Figures (issue 14's targets):

- U1 server start-up: `polytrack ui --port 0 --no-browser` in a fresh interpreter until its
  first `/api/info` answers (interpreter, imports, bind, and one refresh of the index).
- U2 `/api/runs` first page (100 of 10,000, newest first), and U2b sorted by a metric
  with a `where` filter: best of several requests to a running server.
- U3 `/api/runs/<id>/series` of a 10^6-point metric, downsampled to 2,000 points.

The home is generated once with real `init` / `log_metrics` / `finish` calls (no
captures, offline) and cached under `${XDG_CACHE_HOME:-~/.cache}/polytrack-bench/`;
`--quick` uses 1,000 runs and a 10^5-point series instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import polytrack
from _harness import (
    Report,
    Result,
    add_cache_argument,
    add_common_arguments,
    child_env,
    finish,
    generate_runs,
    header,
    log,
    machine_meta,
    read_stamp,
    start_building,
)

HOME_FORMAT = 1
TARGET_S = 1.0

_GEN_CODE = """\
import random, sys
import polytrack
home, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for k in range(first, first + count):
    rng = random.Random(k)
    params = {"lr": rng.choice([0.1, 0.03, 0.01]), "optimizer": rng.choice(["adam", "sgd"])}
    run = polytrack.init(
        project=f"proj-{k % 4}", name=f"run-{k}", params=params, tags=["bench"], dir=home,
        mode="offline", capture=False,
    )
    final = rng.uniform(0.05, 0.65)
    for step in range(10):
        run.log_metrics({"loss": 1.0 + (final - 1.0) * step / 9, "acc": step / 10}, step=step)
    run.finish()
"""

_LONG_CODE = """\
import math, sys
import polytrack
home, points = sys.argv[1], int(sys.argv[2])
run = polytrack.init(project="long", name="long-series", dir=home, mode="offline", capture=False)
for step in range(points):
    run.log_metric("loss", math.sin(step / 1000.0) / (1 + step / 1e5), step=step)
run.finish()
"""


def ensure_home(cache: Path, runs: int, points: int) -> tuple[Path, str]:
    """The cached home: `runs` short runs plus one run with a `points`-point series."""
    name = f"dashboard-{runs}-{points}"
    home = cache / name
    stamp = {"runs": runs, "points": points, "format": HOME_FORMAT}
    if read_stamp(home / "bench-dashboard.json") == stamp:
        return home, "cached"
    building = start_building(cache, name)
    log(f"generating {runs:,} runs and a {points:,}-point series in {building} (cached after)")
    started = time.perf_counter()
    generate_runs(_GEN_CODE, building, runs, extra=[[_LONG_CODE, str(building), str(points)]])
    (building / "bench-dashboard.json").write_text(json.dumps(stamp))
    building.rename(home)
    return home, f"generated in {time.perf_counter() - started:.0f} s"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)


def _best(url: str, reps: int) -> tuple[float, Any]:
    times, body = [], None
    for _ in range(reps):
        started = time.perf_counter()
        body = _get(url)
        times.append(time.perf_counter() - started)
    return min(times), body


def bench_startup(report: Report, home: Path, reps: int) -> None:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "polytrack",
                "ui",
                "--home",
                str(home),
                "--port",
                "0",
                "--no-browser",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env=child_env(),
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if " at http" not in line:
                raise RuntimeError(f"polytrack ui printed {line!r}, not its URL")
            url = line.rsplit(" at ", 1)[1].strip()
            info = _get(url + "api/info")
            times.append(time.perf_counter() - started)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise RuntimeError("polytrack ui did not stop on SIGTERM") from None
            finally:
                if process.stdout is not None:
                    process.stdout.close()
    best = min(times)
    report.add(
        Result(
            "U1",
            "server start-up to first /api/info",
            best * 1000,
            "ms",
            goal=f"<= {TARGET_S:g} s",
            ok=best <= TARGET_S,
            notes=f"{info['run_count']:,} runs; best of {reps} fresh interpreters",
        )
    )


def bench_requests(report: Report, home: Path, reps: int, points: int) -> None:
    from polytrack.dashboard.server import Dashboard

    with Dashboard.start(home) as dashboard:
        base = dashboard.url
        _get(base + "api/info")  # the index is built (a one-off after generation)
        first, page = _best(base + "api/runs?limit=100", reps)
        total = page["total"]
        report.add(
            Result(
                "U2",
                "/api/runs first page (100 runs)",
                first * 1000,
                "ms",
                goal=f"< {TARGET_S:g} s",
                ok=first < TARGET_S,
                notes=f"of {total:,} runs, newest first; best of {reps}",
            )
        )
        query = "api/runs?limit=100&order_by=-metrics.acc,params.lr&where=metrics.loss%20%3C%200.5"
        sorted_s, sorted_page = _best(base + query, reps)
        report.add(
            Result(
                "U2b",
                "/api/runs sorted by a metric, filtered",
                sorted_s * 1000,
                "ms",
                goal=f"< {TARGET_S:g} s",
                ok=sorted_s < TARGET_S,
                notes=f"{sorted_page['total']:,} match; best of {reps}",
            )
        )
        (long_run,) = polytrack.runs(where='name == "long-series"', home=home)
        series_s, series = _best(base + f"api/runs/{long_run.id}/series?key=loss", reps)
        assert series["total"] == points
        report.add(
            Result(
                "U3",
                f"/api/runs/<id>/series of {points:,} points",
                series_s * 1000,
                "ms",
                goal=f"< {TARGET_S:g} s",
                ok=series_s < TARGET_S,
                notes=f"{len(series['steps'])} points sent; best of {reps}",
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, quick="1,000 runs and a 10^5-point series")
    add_cache_argument(parser, "--store-cache", "the generated home")
    args = parser.parse_args()
    runs, points, reps = (1_000, 100_000, 3) if args.quick else (10_000, 1_000_000, 5)
    meta = machine_meta("quick" if args.quick else "full", runs=runs, points=points)
    header(meta, "bench_dashboard.py")
    report = Report()
    home, how = ensure_home(args.store_cache, runs, points)
    log(f"home {home} ({how})")
    bench_requests(report, home, reps, points)
    bench_startup(report, home, reps)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
