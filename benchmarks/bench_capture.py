#!/usr/bin/env python
"""Benchmarks of the background captures: the system sampler's overhead, print() captured.

    python benchmarks/bench_capture.py [--quick] [--json OUT] [--strict] [--only system,logs]

Prints one line per figure in the format of all the scripts (`_harness.py`: id, name,
figure, baseline, ratio, target, PASS/FAIL or `info` for figures without a target), then a
summary line. Exit status 0 unless `--strict` is given and a target failed. See
benchmarks/README.md ("bench_capture.py") for what each figure means.

- C1 one sample's CPU cost, the sampler's `sample()` plus the real journal write, called
  in this thread (thread CPU time, median of repetitions);
- C2 C1 as a share of one core at the default interval (10 s): target < 1%;
- C3 the real thread run for a few seconds at a short interval, its own CPU time (from
  /proc through psutil, by native thread id) per sample, extrapolated to the default
  interval: target < 1%;
- C4 `print(line)` with sys.stdout wrapped (wrap mode) vs the same stream unwrapped;
- C5 `print(line)` to fd 1 with fds redirected (redirect mode) vs not: the printing
  thread's time, and the whole process's CPU including the reader thread.

The "terminal" of L1 and L2 is /dev/null written through a line-buffered text stream,
like a terminal: one write system call per line, so the baseline is what printing costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import psutil

from _harness import (
    Report,
    Result,
    add_common_arguments,
    chosen,
    finish,
    header,
    machine_meta,
    run_each,
    temp_dir,
)
from polytrack.capture.logs import LogCapture, read_log
from polytrack.capture.system import SystemSampler
from polytrack.settings import Settings
from polytrack.store.writer import JournalWriter

DEFAULT_INTERVAL = Settings(home=Path(".")).system_interval
LINE = "epoch 3 step 1200: loss 0.4182 acc 0.8731 lr 3.0e-04 (12.1 it/s)"


@dataclass(frozen=True)
class Sizes:
    samples: int  # S1 samples per repetition
    reps: int
    thread_seconds: float  # S3
    prints: int  # L1, L2 prints per repetition


FULL = Sizes(samples=200, reps=5, thread_seconds=4.0, prints=20_000)
QUICK = Sizes(samples=50, reps=3, thread_seconds=1.5, prints=5_000)


# -- the system sampler ---------------------------------------------------------------------


def _writer(root: Path) -> JournalWriter:
    return JournalWriter.create(root, run_id="bench", attempt=0)


def bench_system(report: Report, root: Path, sizes: Sizes) -> None:
    writer = _writer(root / "journal")
    try:
        sampler = SystemSampler(writer.write_sample, interval=DEFAULT_INTERVAL, run_id="bench")
        step = 0
        values = sampler.sample()
        writer.write_sample(values, step)  # defines the keys: a one-off
        per_sample = []
        for _ in range(sizes.reps):
            started = time.thread_time()
            wall = time.perf_counter()
            for _ in range(sizes.samples):
                step += 1
                writer.write_sample(sampler.sample(), step)
            per_sample.append(
                (
                    (time.thread_time() - started) / sizes.samples,
                    (time.perf_counter() - wall) / sizes.samples,
                )
            )
        sampler.stop()
        cpu = statistics.median(p[0] for p in per_sample)
        wall = statistics.median(p[1] for p in per_sample)
        report.add(
            Result(
                "C1",
                "one sample (sample() + write_sample), CPU",
                cpu * 1e3,
                "ms",
                notes=f"wall {wall * 1e3:.2f} ms; median of {sizes.reps} x {sizes.samples}",
            )
        )
        share = 100 * cpu / DEFAULT_INTERVAL
        report.add(
            Result(
                "C2",
                f"C1 at the default interval ({DEFAULT_INTERVAL:g} s), of a core",
                share,
                "%",
                goal="< 1%",
                ok=share < 1,
            )
        )
        bench_system_thread(report, writer, sizes)
    finally:
        writer.close()


def bench_system_thread(report: Report, writer: JournalWriter, sizes: Sizes) -> None:
    interval = 0.05
    sampler = SystemSampler(writer.write_sample, interval=interval, run_id="bench")
    sampler.start()
    thread = next(t for t in threading.enumerate() if t.name == "polytrack-system-bench")
    time.sleep(0.2)  # past the first sample (NVML init, new keys)
    first_cpu, first_samples = _thread_cpu(thread), sampler.samples
    time.sleep(sizes.thread_seconds)
    cpu, samples = _thread_cpu(thread) - first_cpu, sampler.samples - first_samples
    sampler.stop()
    per_sample = cpu / max(samples, 1)
    share = 100 * per_sample / DEFAULT_INTERVAL
    report.add(
        Result(
            "C3",
            "the thread's own CPU, at the default interval",
            share,
            "%",
            goal="< 1%",
            ok=share < 1,
            notes=f"{samples} samples at {interval} s in {sizes.thread_seconds:g} s, "
            f"{cpu * 1e3:.0f} ms CPU: {per_sample * 1e3:.2f} ms per sample "
            f"({100 * cpu / sizes.thread_seconds:.1f}% of a core at this interval)",
        )
    )


def _thread_cpu(thread: threading.Thread) -> float:
    for info in psutil.Process().threads():
        if info.id == thread.native_id:
            return float(info.user_time + info.system_time)
    raise RuntimeError("the sampler thread is gone")


# -- print() captured -----------------------------------------------------------------------


def _best_per_call(reps: int, count: int, variants: dict[str, Callable[[int], None]]) -> dict:
    """Best time per call of each variant, the variants interleaved in every repetition."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(reps):
        for name, run in variants.items():
            started = time.perf_counter()
            run(count)
            best[name] = min(best[name], (time.perf_counter() - started) / count)
    return best


def bench_wrap(report: Report, root: Path, sizes: Sizes) -> None:
    terminal = open(os.devnull, "w", buffering=1)  # noqa: SIM115 - closed below
    saved = sys.stdout

    def plain(count: int) -> None:
        sys.stdout = terminal
        try:
            for _ in range(count):
                print(LINE)
        finally:
            sys.stdout = saved

    def wrapped(count: int) -> None:
        log = root / "wrap.log"
        log.unlink(missing_ok=True)
        sys.stdout = terminal
        capture = LogCapture(log, max_bytes=1 << 30, mode="wrap", run_id="bench")
        capture.start()
        try:
            for _ in range(count):
                print(LINE)
        finally:
            capture.stop()
            sys.stdout = saved

    try:
        best = _best_per_call(sizes.reps, sizes.prints, {"plain": plain, "wrap": wrapped})
    finally:
        terminal.close()
    recorded = len(read_log(root / "wrap.log"))
    assert recorded == sizes.prints, recorded
    report.add(
        Result(
            "C4",
            "print(line), sys.stdout wrapped (wrap mode)",
            best["wrap"] * 1e9,
            "ns",
            f"unwrapped {best['plain'] * 1e9:,.0f} ns",
            best["wrap"] / best["plain"],
            notes=f"best of {sizes.reps} x {sizes.prints:,}, interleaved; "
            f"{len(LINE)}-character lines",
        )
    )


def bench_redirect(report: Report, root: Path, sizes: Sizes) -> None:
    """Prints to fd 1 (pointed at /dev/null for the measurement), redirected or not."""
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved_fd = os.dup(1)
    os.dup2(devnull, 1)
    terminal = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - closed below
    cpu: dict[str, float] = {}

    def run(count: int, name: str, capture: LogCapture | None) -> None:
        if capture is not None:
            capture.start()
        started = time.process_time()
        try:
            for _ in range(count):
                print(LINE, file=terminal)
        finally:
            if capture is not None:
                capture.stop()  # waits for the reader to drain the pipe
            spent = (time.process_time() - started) / count
            cpu[name] = min(cpu.get(name, float("inf")), spent)

    def plain(count: int) -> None:
        run(count, "plain", None)

    def redirected(count: int) -> None:
        log = root / "redirect.log"
        log.unlink(missing_ok=True)
        run(count, "redirect", LogCapture(log, max_bytes=1 << 30, mode="redirect", run_id="b"))

    try:
        best = _best_per_call(sizes.reps, sizes.prints, {"plain": plain, "redirect": redirected})
    finally:
        terminal.close()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        os.close(devnull)
    recorded = len(read_log(root / "redirect.log"))
    assert recorded == sizes.prints, recorded
    report.add(
        Result(
            "C5",
            "print(line) to fd 1, redirect mode, wall",
            best["redirect"] * 1e9,
            "ns",
            f"no redirect {best['plain'] * 1e9:,.0f} ns",
            best["redirect"] / best["plain"],
            notes=f"process CPU per print {cpu['redirect'] * 1e9:,.0f} ns vs "
            f"{cpu['plain'] * 1e9:,.0f} ns (the reader thread included); the wall time "
            f"includes stop()'s drain; best of {sizes.reps} x {sizes.prints:,}, interleaved",
        )
    )


def bench_logs(report: Report, root: Path, sizes: Sizes) -> None:
    bench_wrap(report, root, sizes)
    bench_redirect(report, root, sizes)


BENCHES = ("system", "logs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, only=BENCHES)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    names = chosen(parser, args, BENCHES)
    meta = machine_meta("quick" if args.quick else "full", sizes=asdict(sizes))
    header(meta, f"default sampler interval {DEFAULT_INTERVAL:g} s")
    report = Report()
    with temp_dir("polytrack-bench-capture-") as root:
        steps = {
            "system": partial(bench_system, report, root, sizes),
            "logs": partial(bench_logs, report, root, sizes),
        }
        run_each(steps, names)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
