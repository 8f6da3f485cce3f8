#!/usr/bin/env python
"""Benchmarks of polytrack's acceptance targets: hot path, start-up, memory, reads, disk.

    python benchmarks/bench_core.py [--quick] [--json OUT] [--strict] [--tmp DIR]
                                    [--only hot,startup,memory,query] [--store-cache DIR]

Prints one line per target: id, name, measured figure, baseline, ratio, target, PASS/FAIL
(or `info` for figures without a target, `SKIP` for what cannot run yet), then a summary
line (the harness of all the scripts, `_harness.py`). It reports; it does not gate: the
exit status is 0 even when a target fails, unless `--strict` is given.

Every timing is the best of several repetitions, and every baseline is measured in the
same process (or, for start-up and memory, with the same interpreter in a twin subprocess)
right next to the measured thing, interleaved with it, because the machines this runs on
are noisy. Each measurement writes to its own temporary POLYTRACK home (passed to `init`
as `dir=`), removed at the end. The 10,000-run store of target 5 is generated once with
real `init`/`log_metrics`/`finish` calls and cached under
`${XDG_CACHE_HOME:-~/.cache}/polytrack-bench/` (`--store-cache` moves it).

See benchmarks/README.md for what each figure means and the figures measured so far.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polytrack
from _harness import (
    Report,
    Result,
    add_cache_argument,
    add_common_arguments,
    child_env,
    chosen,
    finish,
    fs_type,
    generate_runs,
    header,
    log,
    machine_meta,
    read_stamp,
    run_each,
    run_python,
    start_building,
    temp_dir,
)
from polytrack.settings import CAPTURES

perf_counter = time.perf_counter

# -- sizes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    hot_calls: int  # log calls per repetition, targets 1 and 2
    hot_reps: int
    start_reps: int  # fresh interpreters per variant, target 3
    mem_points: int  # points logged in the memory/disk/history run, targets 4 and 6
    read_reps: int  # history() and query repetitions
    store_runs: int  # runs in the query store, target 5
    dict_rows: int  # 10-key rows logged for the disk figure of target 6


# fmt: off
FULL = Sizes(
    hot_calls=200_000, hot_reps=7, start_reps=20, mem_points=1_000_000, read_reps=5,
    store_runs=10_000, dict_rows=100_000,
)
QUICK = Sizes(
    hot_calls=40_000, hot_reps=5, start_reps=7, mem_points=200_000, read_reps=3,
    store_runs=1_000, dict_rows=20_000,
)
# fmt: on

TEN_KEYS = (
    "loss",
    "acc",
    "lr",
    "grad_norm",
    "val_loss",
    "val_acc",
    "epoch_time",
    "tokens",
    "ppl",
    "weight_decay",
)
# After the logging loop: long enough for the flusher to unmap full segments (it closes a
# retired segment 2 * fsync_interval + 1 s after it fills, checking once a second).
IDLE_SECONDS = 5
QUERY = "metrics.loss < 0.2 and params.lr == 0.01"
STORE_FORMAT = 1  # bump when the generated store's contents change


# -- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(**changes: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block."""
    saved = {key: os.environ.get(key) for key in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dir_bytes(path: Path) -> tuple[int, int]:
    """(allocated bytes = sum of st_blocks * 512, apparent bytes = sum of st_size)."""
    blocks = size = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            blocks += st.st_blocks * 512
            size += st.st_size
    return blocks, size


def index_bytes(home: Path) -> tuple[int, int]:
    blocks = size = 0
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        try:
            st = (home / name).stat()
        except FileNotFoundError:
            continue
        blocks += st.st_blocks * 512
        size += st.st_size
    return blocks, size


# -- 1 and 2: the hot path ----------------------------------------------------------------
# Every loop below has the same shape: `for i in range(start, stop): <one call>`, with the
# value in a local and the call's target looked up the way a user writes it. The timer
# wraps the loop only.


def _append_tuple(out: list[Any], start: int, stop: int, x: float) -> float:
    t0 = perf_counter()
    for i in range(start, stop):
        out.append((i, x))
    return perf_counter() - t0


def _run_log_one(run: Any, start: int, stop: int, x: float) -> float:
    t0 = perf_counter()
    for i in range(start, stop):
        run.log_metrics({"loss": x}, step=i)
    return perf_counter() - t0


def _module_log_one(start: int, stop: int, x: float) -> float:
    t0 = perf_counter()
    for i in range(start, stop):
        polytrack.log_metrics({"loss": x}, step=i)
    return perf_counter() - t0


def _append_dict10(out: list[Any], start: int, stop: int, x: float) -> float:
    t0 = perf_counter()
    # fmt: off
    for i in range(start, stop):  # noqa: B007 - the same loop as the logging one
        out.append(
            {
                "loss": x, "acc": x, "lr": x, "grad_norm": x, "val_loss": x, "val_acc": x,
                "epoch_time": x, "tokens": x, "ppl": x, "weight_decay": x,
            }
        )
    # fmt: on
    return perf_counter() - t0


def _run_log_dict10(run: Any, start: int, stop: int, x: float) -> float:
    t0 = perf_counter()
    # fmt: off
    for i in range(start, stop):
        run.log_metrics(
            {
                "loss": x, "acc": x, "lr": x, "grad_norm": x, "val_loss": x, "val_acc": x,
                "epoch_time": x, "tokens": x, "ppl": x, "weight_decay": x,
            },
            step=i,
        )
    # fmt: on
    return perf_counter() - t0


class _Noop:
    """A stand-in run whose log_metrics does nothing: the floor of the call shape."""

    def __init__(self) -> None:
        self.log_metrics = lambda metrics, step=None, epoch=None: None


def bench_hot_path(report: Report, sizes: Sizes, root: Path) -> None:
    n, reps = sizes.hot_calls, sizes.hot_reps
    home = root / "hot"
    with environment(POLYTRACK_INDEX_ON_FINISH="0"):
        run = polytrack.init(project="bench-hot", dir=home)
    x = 0.123456789
    step = 0
    noop = _Noop()
    times: dict[str, list[float]] = {
        k: [] for k in ("append", "run", "module", "noop", "append10", "run10")
    }
    try:
        # Warm-up: registers the keys and the 10-key row stream, grows the first segments.
        for fn in (_run_log_one, _run_log_dict10):
            fn(run, step, step + n // 4, x)
            step += n // 4
        _module_log_one(step, step + n // 4, x)
        step += n // 4
        for _ in range(reps):
            out: list[Any] = []
            times["append"].append(_append_tuple(out, 0, n, x))
            del out
            times["run"].append(_run_log_one(run, step, step + n, x))
            step += n
            times["module"].append(_module_log_one(step, step + n, x))
            step += n
            times["noop"].append(_run_log_one(noop, 0, n, x))
            out = []
            times["append10"].append(_append_dict10(out, 0, n // 2, x))
            del out
            times["run10"].append(_run_log_dict10(run, step, step + n // 2, x))
            step += n // 2
        # The same comparison with the cyclic GC off (timeit's convention): appending
        # tuples to a list makes the GC work; logging untracked dicts does not.
        gc_off: dict[str, float] = {}
        gc.disable()
        try:
            for _ in range(max(3, reps // 2)):
                out = []
                t = _append_tuple(out, 0, n, x)
                del out
                gc_off["append"] = min(gc_off.get("append", t), t)
                t = _run_log_one(run, step, step + n, x)
                step += n
                gc_off["run"] = min(gc_off.get("run", t), t)
                out = []
                t = _append_dict10(out, 0, n // 2, x)
                del out
                gc_off["append10"] = min(gc_off.get("append10", t), t)
                t = _run_log_dict10(run, step, step + n // 2, x)
                step += n // 2
                gc_off["run10"] = min(gc_off.get("run10", t), t)
        finally:
            gc.enable()
    finally:
        run.finish()
    per = {k: min(v) / (n // 2 if k.endswith("10") else n) * 1e9 for k, v in times.items()}
    off = {k: v / (n // 2 if k.endswith("10") else n) * 1e9 for k, v in gc_off.items()}
    spread = {
        k: f"{min(v) / (n // 2 if k.endswith('10') else n) * 1e9:.0f}-"
        f"{max(v) / (n // 2 if k.endswith('10') else n) * 1e9:.0f}"
        for k, v in times.items()
    }
    base = per["append"]
    base_txt = f"append {base:.0f} ns"
    r = per["run"] / base
    report.add(
        Result(
            "1a",
            "run.log_metrics({'loss': x}, step=i)",
            per["run"],
            "ns",
            base_txt,
            r,
            "<= 5x",
            r <= 5,
            notes=f"{n:,} calls x {reps}; range {spread['run']} ns; with gc off: "
            f"{off['run']:.0f} / {off['append']:.0f} ns = {off['run'] / off['append']:.2f}x",
            extra={"per_call_ns": per, "gc_off_ns": off},
        )
    )
    r = per["module"] / base
    report.add(
        Result(
            "1b",
            "polytrack.log_metrics({'loss': x}, step=i)",
            per["module"],
            "ns",
            base_txt,
            r,
            "<= 6x",
            r <= 6,
            notes=f"range {spread['module']} ns",
        )
    )
    report.add(
        Result(
            "1c",
            "floor: no-op log_metrics, same call shape",
            per["noop"],
            "ns",
            base_txt,
            per["noop"] / base,
            notes="the dict literal + call alone; what any log_metrics costs at least",
        )
    )
    base10 = per["append10"]
    r = per["run10"] / base10
    report.add(
        Result(
            "2",
            "run.log_metrics(<10-key dict>, step=i)",
            per["run10"],
            "ns",
            f"append dict {base10:.0f} ns",
            r,
            "<= 3x",
            r <= 3,
            notes=f"{n // 2:,} calls x {reps}; range {spread['run10']} ns; with gc off: "
            f"{off['run10']:.0f} / {off['append10']:.0f} ns = "
            f"{off['run10'] / off['append10']:.2f}x",
        )
    )


# -- 3: start-up --------------------------------------------------------------------------

_IMPORT_CODE = "import polytrack"
_IMPORT_INPROC_CODE = """\
import time
t0 = time.perf_counter()
import polytrack
print(time.perf_counter() - t0)
"""
_INIT_CODE = """\
import sys, time
{preload}
import polytrack
home = sys.argv[1]
t0 = time.perf_counter()
init = polytrack.init  # first use: loads polytrack._api and what it needs
t1 = time.perf_counter()
run = init(project="bench-init", dir=home)
t2 = time.perf_counter()
run.finish()
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def _spawn_seconds(code: str, env: dict[str, str]) -> float:
    t0 = perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return perf_counter() - t0


def bench_startup(report: Report, sizes: Sizes, root: Path) -> None:
    env = child_env()
    reps = sizes.start_reps
    for code in ("pass", _IMPORT_CODE):  # warm the .pyc caches
        _spawn_seconds(code, env)
    empty, imported, inproc = [], [], []
    for _ in range(reps):
        empty.append(_spawn_seconds("pass", env))
        imported.append(_spawn_seconds(_IMPORT_CODE, env))
        inproc.append(float(run_python(_IMPORT_INPROC_CODE, env=env)))
    net = (min(imported) - min(empty)) * 1e3
    report.add(
        Result(
            "3a",
            "import polytrack (fresh interpreter)",
            net,
            "ms",
            f"python -c pass {min(empty) * 1e3:.1f} ms",
            None,
            "<= 50 ms",
            net <= 50,
            notes=f"best of {reps}: `python -c 'import polytrack'` {min(imported) * 1e3:.1f} ms "
            f"- `python -c pass` {min(empty) * 1e3:.1f} ms; timed inside the process: "
            f"{min(inproc) * 1e3:.1f} ms",
        )
    )

    # The core's own cost: what init() records by itself (git, environment, system
    # metrics, output; issue 3) is measured with its own targets in bench_snapshot.py (S3,
    # S4) and bench_git.py (G4).
    captures_off = {f"POLYTRACK_CAPTURE_{what.upper()}": "0" for what in CAPTURES}

    def init_finish(preload: str, index: str | None) -> tuple[float, float, float, float]:
        code = _INIT_CODE.format(preload=preload)
        extra = dict(captures_off)
        if index is not None:
            extra["POLYTRACK_INDEX_ON_FINISH"] = index
        best: tuple[float, float, float, float] | None = None
        for k in range(reps // 2 + 1):
            home = root / f"init-{preload != ''}-{k}"
            output = run_python(code, str(home), env=child_env(**extra))
            load, start, finish = map(float, output.split())
            total = load + start + finish
            if k and (best is None or total < best[0]):  # the first one warms the caches
                best = (total, load, start, finish)
            shutil.rmtree(home, ignore_errors=True)
        assert best is not None
        return best

    total, load, start, finish = init_finish("", None)
    report.add(
        Result(
            "3b",
            "init() + finish() of an empty run, no captures",
            total * 1e3,
            "ms",
            "-",
            None,
            "<= 100 ms",
            total * 1e3 <= 100,
            notes=f"best of {reps // 2}, fresh interpreter, after `import polytrack`: loading "
            f"polytrack._api on first use {load * 1e3:.1f} ms + init() {start * 1e3:.1f} ms + "
            f"finish() {finish * 1e3:.1f} ms; POLYTRACK_CAPTURE_*=0 (with them: S4)",
        )
    )
    total, load, start, finish = init_finish("import numpy", "1")
    report.add(
        Result(
            "3c",
            "same, numpy loaded (index on finish)",
            total * 1e3,
            "ms",
            "-",
            None,
            notes=f"as a training script runs it: lazy load {load * 1e3:.1f} ms + init() "
            f"{start * 1e3:.1f} ms + finish() {finish * 1e3:.1f} ms (indexes the run)",
        )
    )


# -- 4 and 6: memory, history, disk -------------------------------------------------------

_MEMORY_CODE = """\
import json, resource, sys, time
import numpy as np
n, mode, home, idle = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])

def status():
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                found[key] = int(value.split()[0]) * 1024
    return found

if mode == "log":
    import polytrack
    run = polytrack.init(project="bench-memory", dir=home)
    log = run.log_metrics
else:
    def log(metrics, step=None, epoch=None):
        pass

marks = [status()]
quarter = n // 4
t0 = time.perf_counter()
for k in range(4):
    for i in range(k * quarter, (k + 1) * quarter):
        log({"loss": i * 1e-6}, step=i)
    marks.append(status())
loop = time.perf_counter() - t0
result = {
    "marks": marks, "loop_s": loop,
    "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}
if mode == "log":
    if idle:
        # The flusher unmaps full segments 2 * fsync_interval + 1 s after they fill.
        time.sleep(idle)
        result["after_idle"] = status()
    t0 = time.perf_counter()
    run.finish()
    result["finish_s"] = time.perf_counter() - t0
    result["after_finish"] = status()
    result["run_id"] = run.id
print(json.dumps(result))
"""


def bench_memory_disk_history(report: Report, sizes: Sizes, root: Path) -> None:
    n = sizes.mem_points - sizes.mem_points % 4
    env = child_env(POLYTRACK_INDEX_ON_FINISH="1")
    # Twin processes, back to back, best (lowest peak) of two pairs. VmHWM, not ru_maxrss:
    # a child spawned by fork+exec inherits the parent's ru_maxrss (Linux), this one's too.
    bases, logs = [], []
    for k in range(2):
        bases.append(json.loads(run_python(_MEMORY_CODE, str(n), "base", "-", "0", env=env)))
        h = root / f"memory-{k}"
        idle = str(IDLE_SECONDS) if k == 0 else "0"
        logs.append(json.loads(run_python(_MEMORY_CODE, str(n), "log", str(h), idle, env=env)))
        logs[-1]["home"] = str(h)
    base = min(bases, key=lambda r: r["marks"][-1]["VmHWM"])
    logged = min(logs, key=lambda r: r["marks"][-1]["VmHWM"])
    home = Path(logged["home"])
    for other in logs:
        if other is not logged:
            shutil.rmtree(other["home"], ignore_errors=True)
    mb = 1 / 1e6
    peak = (logged["marks"][-1]["VmHWM"] - base["marks"][-1]["VmHWM"]) * mb
    report.add(
        Result(
            "4a",
            f"peak RSS while logging {n:,} points",
            peak,
            "MB",
            f"VmHWM {base['marks'][-1]['VmHWM'] * mb:.1f} MB",
            None,
            "<= +50 MB",
            peak <= 50,
            notes=f"VmHWM {logged['marks'][-1]['VmHWM'] * mb:.1f} MB with polytrack vs "
            f"{base['marks'][-1]['VmHWM'] * mb:.1f} MB without; "
            f"loop {logged['loop_s']:.2f} s vs {base['loop_s']:.2f} s",
            extra={"base": base, "logged": logged},
        )
    )
    idle = logs[0]["after_idle"]
    marks = logged["marks"]
    rss = [m["VmRSS"] * mb for m in marks[1:]]
    anon = [m["RssAnon"] * mb for m in marks[1:]]
    files = [m["RssFile"] * mb for m in marks[1:]]
    growth = anon[-1] - anon[0]
    labels = [f"{(k + 1) * n // 4 // 1000}k" for k in range(4)]
    report.add(
        Result(
            "4b",
            "RSS growth 25% -> 100% of points (anon)",
            growth,
            "MB",
            "-",
            None,
            "<= 4 MB",
            growth <= 4,
            notes="VmRSS "
            + ", ".join(f"{label} {v:.1f}" for label, v in zip(labels, rss, strict=True))
            + " MB; anon "
            + ", ".join(f"{v:.1f}" for v in anon)
            + "; file-backed (mapped segments) "
            + ", ".join(f"{v:.1f}" for v in files)
            + f"; {IDLE_SECONDS} s later VmRSS {idle['VmRSS'] * mb:.1f} MB (file-backed "
            f"{idle['RssFile'] * mb:.1f}): full segments get unmapped",
        )
    )
    after = (logged["after_finish"]["VmHWM"] - base["marks"][-1]["VmHWM"]) * mb
    report.add(
        Result(
            "4c",
            "peak RSS incl. finish() (index on finish)",
            after,
            "MB",
            f"VmHWM {base['marks'][-1]['VmHWM'] * mb:.1f} MB",
            None,
            "<= +50 MB",
            after <= 50,
            notes=f"finish() took {logged['finish_s'] * 1e3:.0f} ms: it indexes the run, "
            "reading its points back one segment at a time (numpy is loaded)",
        )
    )

    # 6: bytes on disk, before any reader touches the home again.
    run_id = logged["run_id"]
    run_dir = home / "runs" / run_id
    rb, rs = dir_bytes(run_dir)
    ib, isz = index_bytes(home)
    per_alloc, per_size = (rb + ib) / n, (rs + isz) / n
    report.add(
        Result(
            "6a",
            f"disk per point, {n:,} single-key points",
            per_alloc,
            "B/pt",
            "-",
            None,
            "<= 32 B/pt",
            per_alloc <= 32,
            notes=f"allocated {rb:,} B run + {ib:,} B index; apparent size {per_size:.1f} B/pt "
            f"({rs:,} + {isz:,} B); on {fs_type(run_dir)}",
        )
    )

    # 4d: history() of those points, in this process.
    view = polytrack.get_run(run_id, home=home)
    times = []
    steps = None
    for _ in range(sizes.read_reps + 1):
        t0 = perf_counter()
        steps = view.history("loss")[0]
        times.append(perf_counter() - t0)
    assert steps is not None and steps.size == n, (steps, n)
    best = min(times[1:]) * 1e3
    report.add(
        Result(
            "4d",
            f"history('loss') of {n:,} points",
            best,
            "ms",
            "-",
            None,
            "<= 500 ms",
            best <= 500,
            notes=f"best of {sizes.read_reps} after a first call of {times[0] * 1e3:.0f} ms",
        )
    )
    shutil.rmtree(home, ignore_errors=True)

    # 6b: the 10-key dict case.
    rows = sizes.dict_rows
    home = root / "disk10"
    with environment(POLYTRACK_INDEX_ON_FINISH="1"):
        run = polytrack.init(project="bench-disk", dir=home)
        x = 0.5
        # fmt: off
        for i in range(rows):
            run.log_metrics(
                {
                    "loss": x, "acc": x, "lr": x, "grad_norm": x, "val_loss": x, "val_acc": x,
                    "epoch_time": x, "tokens": x, "ppl": x, "weight_decay": x,
                },
                step=i,
            )
        # fmt: on
        run.finish()
    rb, rs = dir_bytes(home / "runs" / run.id)
    ib, isz = index_bytes(home)
    points = rows * 10
    report.add(
        Result(
            "6b",
            f"disk per point, {rows:,} rows of 10 keys",
            (rb + ib) / points,
            "B/pt",
            "-",
            None,
            "<= 32 B/pt",
            (rb + ib) / points <= 32,
            notes=f"{points:,} points; allocated {rb:,} B run + {ib:,} B index; apparent "
            f"{(rs + isz) / points:.1f} B/pt",
        )
    )
    shutil.rmtree(home, ignore_errors=True)


# -- 5: querying a store of many runs -----------------------------------------------------

_GEN_CODE = """\
import random, sys
import polytrack
home, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for k in range(first, first + count):
    rng = random.Random(k)
    params = {
        "lr": rng.choice([0.1, 0.03, 0.01, 0.003]),
        "batch_size": rng.choice([32, 64, 128]),
        "optimizer": rng.choice(["adam", "sgd"]),
        "seed": k,
    }
    run = polytrack.init(
        project=f"proj-{k % 4}", name=f"run-{k}", params=params, tags=["bench"], dir=home
    )
    final = rng.uniform(0.05, 0.65)
    for step in range(10):
        frac = step / 9
        run.log_metrics({"loss": 1.0 + (final - 1.0) * frac, "acc": 0.5 + 0.45 * frac}, step=step)
    run.finish()
"""


def ensure_store(cache: Path, runs: int) -> tuple[Path, str]:
    """The cached store of `runs` runs, generated (in parallel) when missing."""
    name = f"store-{runs // 1000}k" if runs % 1000 == 0 else f"store-{runs}"
    store = cache / name
    stamp = {"runs": runs, "format": STORE_FORMAT, "polytrack": polytrack.__version__}
    if read_stamp(store / "bench-store.json") == stamp:
        return store, "cached"
    building = start_building(cache, name)
    log(f"generating {runs:,} runs in {building} (cached after)")
    t0 = perf_counter()
    generate_runs(_GEN_CODE, building, runs)
    generated = perf_counter() - t0
    marker_tmp = building / "bench-store.json"
    marker_tmp.write_text(json.dumps(stamp))
    building.rename(store)  # the index is built at the new path by the first query
    return store, f"generated in {generated:.0f} s"


def _cli_main() -> Callable[..., Any] | None:
    try:
        import polytrack.cli as cli
    except ImportError:
        return None
    return getattr(cli, "main", None)


def _call_cli(main: Callable[..., Any], argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        if "stdout" in inspect.signature(main).parameters:
            code = main(argv, stdout=out, stderr=err)
        else:  # a main(argv) that prints to sys.stdout
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
    except SystemExit as exc:
        code = exc.code
    if code not in (0, None):
        raise RuntimeError(f"polytrack {' '.join(argv)} exited {code}: {err.getvalue()[-2000:]}")
    return 0, out.getvalue()


def bench_query(report: Report, sizes: Sizes, cache: Path) -> None:
    from polytrack.store.local import LocalStore

    store, how = ensure_store(cache, sizes.store_runs)
    reps = sizes.read_reps + 2
    # Warm-up: the first query after generation indexes every run (a one-off).
    t0 = perf_counter()
    found = polytrack.runs(where=QUERY, home=store)
    first = perf_counter() - t0
    api, refresh, scan = [], [], []
    for _ in range(reps):
        t0 = perf_counter()
        with os.scandir(store / "runs") as entries:
            for entry in entries:
                entry.is_dir(follow_symlinks=False)
        scan.append(perf_counter() - t0)
        t0 = perf_counter()
        found = polytrack.runs(where=QUERY, home=store)
        api.append(perf_counter() - t0)
        t0 = perf_counter()
        with LocalStore.open(store) as opened:
            opened.refresh()
        refresh.append(perf_counter() - t0)
    best = min(api) * 1e3
    report.add(
        Result(
            "5a",
            f"polytrack.runs(where=...), {sizes.store_runs:,} runs",
            best,
            "ms",
            f"scandir {min(scan) * 1e3:.1f} ms",
            None,
            "<= 300 ms",
            best <= 300,
            notes=f"{len(found)} runs match {QUERY!r}; best of {reps}; of which refresh() "
            f"(stat every run dir) {min(refresh) * 1e3:.0f} ms; first query {first * 1e3:,.0f} ms; "
            f"store {how}, on {fs_type(store)}",
        )
    )
    main = _cli_main()
    name = f"polytrack runs ls --where ..., {sizes.store_runs:,} runs"
    if main is None:
        report.add(
            Result(
                "5b",
                name,
                None,
                "ms",
                goal="<= 300 ms",
                skipped=True,
                notes="polytrack.cli.main does not exist yet; rerun once it does",
            )
        )
        return
    argv = ["runs", "ls", "--home", str(store), "--where", QUERY]
    _call_cli(main, argv)  # warm-up: imports the command modules
    cli = []
    for _ in range(reps):
        t0 = perf_counter()
        _, text = _call_cli(main, argv)
        cli.append(perf_counter() - t0)
    best = min(cli) * 1e3
    report.add(
        Result(
            "5b",
            name,
            best,
            "ms",
            f"API {min(api) * 1e3:.0f} ms",
            None,
            "<= 300 ms",
            best <= 300,
            notes=f"main(argv) in-process after a warm-up call, best of {reps}; printed "
            f"{len(text.splitlines())} lines",
        )
    )


# -- main ---------------------------------------------------------------------------------

BENCHES = {
    "hot": bench_hot_path,  # 1, 2
    "startup": bench_startup,  # 3
    "memory": bench_memory_disk_history,  # 4, 6
    "query": bench_query,  # 5
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="smaller sizes (well under a minute)", only=list(BENCHES))
    parser.add_argument("--tmp", metavar="DIR", help="where the temporary homes go")
    add_cache_argument(parser, "--store-cache", "the generated query store")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    names = chosen(parser, args, list(BENCHES))

    with temp_dir("polytrack-bench-", args.tmp) as root:
        mode = "quick" if args.quick else "full"
        meta = machine_meta(mode, sizes=asdict(sizes), tmp_fs=fs_type(root))
        header(meta, f"temp homes on {meta['tmp_fs']} ({root})")
        report = Report()
        steps = {name: partial(run, report, sizes, root / name) for name, run in BENCHES.items()}
        steps["query"] = partial(bench_query, report, sizes, args.store_cache)
        run_each(steps, names)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
