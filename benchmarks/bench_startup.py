#!/usr/bin/env python
"""Benchmarks of a run's start and end: what short scripts, notebooks and sweeps pay.

    python benchmarks/bench_startup.py [--quick] [--json OUT] [--strict] [--reps N]

Prints one line per figure (T1..T5) in the format of all the scripts (`_harness.py`: id,
name, figure, baseline, ratio, target, PASS/FAIL or `info`), then a summary line (issue
21). Every figure but T5 comes from fresh interpreters (`python -c`, no `POLYTRACK_*`
variable but the home, bytecode cached), the median of `--reps`; each baseline is taken
in the same subprocess or a twin started right before it. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
    run_python,
    temp_dir,
)

# The whole script a user runs: import, init, finish.
_SCRIPT = """\
import sys, polytrack
run = polytrack.init(dir=sys.argv[1]{capture})
run.finish()
"""

# init() and finish() timed inside a fresh interpreter (after `import polytrack`).
_TIMED = """\
import sys, time, polytrack
t0 = time.perf_counter()
run = polytrack.init(dir=sys.argv[1])
t1 = time.perf_counter()
run.finish()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""

# The first calls after init() against the last ones, and a list append in the same
# loop shape: 100k calls in chunks of 1,000, the chunks' time only.
_FIRST_SECOND = """\
import sys, time, polytrack
n, capture = int(sys.argv[2]), sys.argv[3] == "1"
run = polytrack.init(dir=sys.argv[1], capture=None if capture else False)
log = run.log_metrics
chunks = []
for start in range(0, n, 1000):
    t = time.perf_counter_ns()
    for i in range(start, start + 1000):
        log({"loss": 0.5}, step=i)
    chunks.append(time.perf_counter_ns() - t)
run.finish()
out = []
append = out.append
base = []
for start in range(0, n, 1000):
    t = time.perf_counter_ns()
    for i in range(start, start + 1000):
        append({"loss": 0.5})
    base.append(time.perf_counter_ns() - t)
    if start % 10000 == 0:
        out.clear()
tenth = len(chunks) // 10
print(sum(chunks[:tenth]) / (tenth * 1000), sum(chunks[-tenth:]) / (tenth * 1000),
      min(base) / 1000)
"""

# A sweep of empty trials in one process: init, one log, finish; per trial.
_SWEEP = """\
import sys, time, polytrack
home, trials = sys.argv[1], int(sys.argv[2])
polytrack.init(dir=home).finish()  # loading the modules is T1's, not the sweep's
t0 = time.perf_counter()
for k in range(trials):
    run = polytrack.init(dir=home, params={"trial": k})
    run.log_metrics({"loss": 1.0 / (k + 1)}, step=0)
    run.finish()
print((time.perf_counter() - t0) / trials)
"""


def _spawn(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *argv], env=env, check=True, stdout=subprocess.DEVNULL, stderr=None
    )
    return time.perf_counter() - t0


def bench_script(report: Report, root: Path, reps: int) -> None:
    """T1, T2: the whole script in a fresh interpreter, less `python -c pass` (T1) or
    `python -c "import polytrack"` (T2)."""
    env = child_env()
    figures: dict[str, list[float]] = {"pass": [], "import": [], "on": [], "off": []}
    codes = {
        "pass": "pass",
        "import": "import polytrack",
        "on": _SCRIPT.format(capture=""),
        "off": _SCRIPT.format(capture=", capture=False"),
    }
    for k in range(reps + 1):  # the first round warms the bytecode and package caches
        for name, code in codes.items():
            seconds = _spawn(["-c", code, str(root / f"script-{name}")], env)
            if k:
                figures[name].append(seconds)
    med = {name: statistics.median(times) * 1e3 for name, times in figures.items()}
    on, off = med["on"] - med["pass"], med["off"] - med["import"]
    report.add(
        Result(
            "T1",
            "import + init() + finish(), every capture",
            on,
            "ms",
            f"python -c pass {med['pass']:.1f} ms",
            None,
            "<= 100 ms",
            on <= 100,
            notes=f"median of {reps}, fresh interpreters: the script {med['on']:.1f} ms - "
            f"`python -c pass` {med['pass']:.1f} ms (`import polytrack` alone "
            f"{med['import'] - med['pass']:.1f} ms over it)",
        )
    )
    report.add(
        Result(
            "T2",
            "init() + finish() alone, capture=False",
            off,
            "ms",
            f"import polytrack {med['import']:.1f} ms",
            None,
            "<= 30 ms",
            off <= 30,
            notes=f"median of {reps}: the script {med['off']:.1f} ms - `python -c 'import "
            f"polytrack'` {med['import']:.1f} ms (loading the modules init() needs included); "
            f"over `python -c pass`: {med['off'] - med['pass']:.1f} ms",
        )
    )


def bench_finish(report: Report, root: Path, reps: int) -> None:
    """T3: finish() alone, every capture on, nothing to sync (a fresh interpreter)."""
    env = child_env()
    starts, ends = [], []
    for k in range(reps + 1):
        start, end = map(float, run_python(_TIMED, str(root / f"finish-{k}"), env=env).split())
        if k:
            starts.append(start * 1e3)
            ends.append(end * 1e3)
    end = statistics.median(ends)
    report.add(
        Result(
            "T3",
            "finish() of an empty run, every capture",
            end,
            "ms",
            "-",
            None,
            "<= 20 ms",
            end <= 20,
            notes=f"median of {reps}, fresh interpreters, index on finish as by default; "
            f"init() before it {statistics.median(starts):.1f} ms",
        )
    )


def bench_first_second(report: Report, root: Path, reps: int, calls: int) -> None:
    """T4: a scalar log_metrics in the first 10% of a loop started right after init()."""
    env = child_env()
    rows: dict[str, list[tuple[float, float, float]]] = {"1": [], "0": []}
    for k in range(reps):
        for capture in rows:
            output = run_python(
                _FIRST_SECOND, str(root / f"first-{capture}-{k}"), str(calls), capture, env=env
            )
            first, last, base = map(float, output.split())
            rows[capture].append((first, last, base))
    first, last, base = (statistics.median(col) for col in zip(*rows["1"], strict=True))
    first_off = statistics.median(row[0] for row in rows["0"])
    ratio = first / base
    report.add(
        Result(
            "T4",
            "log_metrics, first 10% of calls after init()",
            first,
            "ns",
            f"append {base:.0f} ns",
            ratio,
            "<= 3x",
            ratio <= 3,
            notes=f"median of {reps}, {calls:,} calls right after init(), every capture on; "
            f"last 10% {last:.0f} ns ({last / base:.2f}x); first 10% with capture=False "
            f"{first_off:.0f} ns ({first_off / base:.2f}x)",
        )
    )


def bench_sweep(report: Report, root: Path, trials: int) -> None:
    """T5: a sweep of empty trials in one process, every capture on."""
    per_trial = float(run_python(_SWEEP, str(root / "sweep"), str(trials), env=child_env()))
    report.add(
        Result(
            "T5",
            f"sweep of {trials:,} empty trials, one process",
            per_trial * 1e3,
            "ms",
            "-",
            None,
            "<= 50 ms",
            per_trial * 1e3 <= 50,
            notes="per trial: init(params) + one log_metrics + finish(), every capture on",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="fewer repetitions and a 200-trial sweep")
    parser.add_argument("--reps", type=int, help="fresh interpreters per figure")
    parser.add_argument("--tmp", metavar="DIR", help="where the temporary homes go")
    args = parser.parse_args(argv)
    reps = args.reps or (5 if args.quick else 11)
    trials = 200 if args.quick else 1000
    with temp_dir("polytrack-bench-", args.tmp) as root:
        meta = machine_meta(
            "quick" if args.quick else "full", reps=reps, trials=trials, tmp_fs=fs_type(root)
        )
        header(meta, f"temp homes on {meta['tmp_fs']} ({root})")
        report = Report()
        for name, step in (
            ("script", lambda: bench_script(report, root, reps)),
            ("finish", lambda: bench_finish(report, root, reps)),
            ("first second", lambda: bench_first_second(report, root, reps, 100_000)),
            ("sweep", lambda: bench_sweep(report, root, trials)),
        ):
            t0 = time.perf_counter()
            step()
            log(f"{name}: {time.perf_counter() - t0:.1f} s")
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
