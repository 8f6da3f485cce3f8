#!/usr/bin/env python
"""Where the time of one `run.log_metrics` call goes: a cumulative breakdown.

    python benchmarks/hot_path_breakdown.py [--calls N] [--reps R]

Builds replicas of the hot-path closure of `polytrack.journal.JournalWriter.make_log_metrics`
(as of this writing) one statement group at a time, each writing into a real fallocated,
mapped file like a segment, and times each stage with the loop shape of
`bench_core.py` (best of R, stages shuffled within each repetition, baseline measured
in the same repetitions). The last lines time the real `Run.log_metrics` and
`polytrack.log_metrics`: if the full replica and the real call differ a lot, the
replica is out of date with journal.py.
"""

from __future__ import annotations

import argparse
import itertools
import mmap
import os
import random
import struct
import tempfile
import time
from collections.abc import Callable
from typing import Any

import polytrack

perf_counter = time.perf_counter
HS = 64

# Statement groups of the single-key path, in the order the closure runs them.
SINGLE = [
    ("closure call + step default + last[0] = step", ""),
    ("+ now = time.monotonic()", "now = mono()"),
    (
        "+ len(metrics) == 1; for key, value in items()",
        "if len(metrics) == 1:\n    for key, value in metrics.items():\n        pass",
    ),
    (
        "+ key id, cell unpack, next(counter), checks",
        "kid = key_ids.get(key)\ncounter, mm, cap, base = points[0]\nslot = next(counter)\n"
        "if kid is None or slot >= cap:\n    raise SystemExit",
    ),
    (
        "+ struct.pack_into(mapped segment, 24 B)",
        "pack_point(mm, HS + slot * 24, step, value, now - base, kid, 0x5450)",
    ),
]
# ... and of the 10-key (row) path.
ROW = [
    ("closure call + step default + last[0] = step", ""),
    ("+ now = time.monotonic()", "now = mono()"),
    (
        "+ tuple(metrics); rows.get(names)",
        "if len(metrics) == 1:\n    raise SystemExit\nnames = tuple(metrics)\n"
        "row = rows.get(names)",
    ),
    (
        "+ row/cell unpack, next(counter), checks",
        "cell, pack, number, size = row\ncounter, mm, cap, base = cell[0]\n"
        "slot = next(counter)\nif slot >= cap:\n    raise SystemExit",
    ),
    (
        "+ pack(mm, ..., *metrics.values(), ...) 96 B",
        "pack(mm, HS + slot * size, step, *metrics.values(), now - base, number, 0x5752)",
    ),
]
KEYS = ("loss", "acc", "lr", "grad_norm", "val_loss", "val_acc", "epoch_time", "tokens", "ppl",
        "weight_decay")


def mapped_file(size: int) -> mmap.mmap:
    fd, path = tempfile.mkstemp(prefix="polytrack-breakdown-")
    os.unlink(path)
    os.posix_fallocate(fd, 0, size)
    mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    os.close(fd)
    return mm


def build(stages: list[tuple[str, str]], k: int, capacity: int, record: int) -> Callable[..., None]:
    body = "\n".join(code for _, code in stages[1 : k + 1] if code)
    lines = ["def log_metrics(metrics, step=None, epoch=None):",
             "    if step is None:", "        step = last[0] + 1"]
    lines += ["    " + line for line in body.splitlines()]
    lines += ["    if epoch is not None:", "        pass", "    last[0] = step"]
    factory = "def factory(mono, key_ids, points, rows, last, pack_point, HS):\n"
    factory += "\n".join("    " + line for line in lines) + "\n    return log_metrics\n"
    namespace: dict[str, Any] = {}
    exec(factory, namespace)
    mm = mapped_file(HS + record * capacity)
    cell = [(itertools.count(), mm, capacity, time.monotonic())]
    row_pack = struct.Struct(f"<q{len(KEYS)}dfHH").pack_into
    rows = {KEYS: (cell, row_pack, 1, record)}
    point = struct.Struct("<qdfHH").pack_into
    return namespace["factory"](time.monotonic, {"loss": 1}, cell, rows, [-1], point, HS)  # type: ignore[no-any-return]


class Holder:
    def __init__(self, fn: Callable[..., None]) -> None:
        self.log_metrics = fn


def append_one(n: int) -> float:
    out: list[Any] = []
    x = 0.5
    t0 = perf_counter()
    for i in range(n):
        out.append((i, x))
    return perf_counter() - t0


def log_one(run: Any, n: int, offset: int) -> float:
    x = 0.5
    t0 = perf_counter()
    for i in range(offset, offset + n):
        run.log_metrics({"loss": x}, step=i)
    return perf_counter() - t0


def module_one(n: int, offset: int) -> float:
    x = 0.5
    t0 = perf_counter()
    for i in range(offset, offset + n):
        polytrack.log_metrics({"loss": x}, step=i)
    return perf_counter() - t0


def append_ten(n: int) -> float:
    out: list[Any] = []
    x = 0.5
    t0 = perf_counter()
    for _ in range(n):
        out.append({"loss": x, "acc": x, "lr": x, "grad_norm": x, "val_loss": x, "val_acc": x,
                    "epoch_time": x, "tokens": x, "ppl": x, "weight_decay": x})
    return perf_counter() - t0


def log_ten(run: Any, n: int, offset: int) -> float:
    x = 0.5
    t0 = perf_counter()
    for i in range(offset, offset + n):
        run.log_metrics({"loss": x, "acc": x, "lr": x, "grad_norm": x, "val_loss": x,
                         "val_acc": x, "epoch_time": x, "tokens": x, "ppl": x,
                         "weight_decay": x}, step=i)
    return perf_counter() - t0


def breakdown(title: str, stages: list[tuple[str, str]], record: int, n: int, reps: int,
              base: Callable[[int], float], log: Callable[[Any, int, int], float],
              real: Any, extra: dict[str, Callable[[int, int], float]]) -> None:
    variants = {name: Holder(build(stages, k, n * (reps + 1), record))
                for k, (name, _) in enumerate(stages)}
    variants["real Run.log_metrics"] = real
    times: dict[str, list[float]] = {name: [] for name in [*variants, *extra]}
    baseline: list[float] = []
    offset = 10**9 * (record // 8)  # keep the real run's steps increasing and apart
    for _ in range(reps):
        baseline.append(base(n))
        order = list(variants.items())
        random.shuffle(order)
        for name, target in order:
            times[name].append(log(target, n, offset))
            offset += n
        for name, fn in extra.items():
            times[name].append(fn(n, offset))
            offset += n
    b = min(baseline) / n * 1e9
    print(f"\n{title}: baseline {b:.0f} ns per call (best of {reps} x {n:,})")
    previous = 0.0
    for name in times:
        value = min(times[name]) / n * 1e9
        step = f"(+{value - previous:4.0f})" if name in variants and name in dict(stages) else ""
        print(f"  {name:48s} {value:6.0f} ns {step:>8s}  {value / b:5.2f}x")
        previous = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    os.environ["POLYTRACK_INDEX_ON_FINISH"] = "0"
    with tempfile.TemporaryDirectory(prefix="polytrack-breakdown-") as home:
        run = polytrack.init(project="breakdown", dir=home)
        log_one(run, 1000, -10_000)
        log_ten(run, 1000, -5_000)
        try:
            breakdown("single key", SINGLE, 24, args.calls, args.reps, append_one, log_one, run,
                      {"polytrack.log_metrics (module level)": module_one})
            breakdown("10-key dict", ROW, 96, args.calls // 2, args.reps, append_ten, log_ten, run,
                      {})
        finally:
            run.finish()


if __name__ == "__main__":
    main()
