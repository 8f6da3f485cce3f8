#!/usr/bin/env python
"""Benchmarks of the importers (`polytrack.importers`): points per second, side by side
with the source's own reader alone.

    python benchmarks/bench_import.py [--quick] [--json OUT] [--strict]
                                      [--only mlflow,tensorboard]

Prints one line per figure (I1..) in the format of all the scripts (`_harness.py`), then a
summary line, and exits 1 on a failed target only with `--strict`.

I1, MLflow: a SQLite store written by MLflow's client (one run, 10 keys of 10,000 points;
2 keys with --quick) is read by MLflow's `get_metric_history` alone, key by key (the
baseline), and imported whole by `polytrack.importers.mlflow` into a fresh home (the
figure: points per second of the whole import, listing and writing included). Target:
the import at least as fast as the reader alone (>= 1.00x).

I2, TensorBoard: a logdir written by tensorboardX (one run, 10 tags of 10,000 scalars;
2 tags with --quick) is read by tensorboard's `EventFileLoader` alone (what TensorBoard's
backend reads event files with: records, protos and its compat layers; the baseline),
by polytrack's reader alone (listing and series), and imported whole by
`polytrack.importers.tensorboard`. Target: the import at least as fast as the
`EventFileLoader` alone (>= 1.00x).

Timings are the best of several repetitions, interleaved; the store is generated once per
run in a temporary directory (MLflow's schema migrations take seconds), not timed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from functools import partial
from pathlib import Path

from _harness import (
    Report,
    Result,
    add_common_arguments,
    best_of,
    chosen,
    finish,
    header,
    log,
    machine_meta,
    run_each,
    temp_dir,
)

BENCHES = ("mlflow", "tensorboard")
T0_MS = 1_600_000_000_000


def _mlflow_store(root: Path, keys: int, points: int) -> tuple[str, str, list[str]]:
    """A SQLite store with one run of `keys` metrics of `points` points each."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=str(root / "artifacts"))
    run_id = client.create_run(experiment, run_name="bench", start_time=T0_MS).info.run_id
    names = [f"metric_{k}" for k in range(keys)]
    for name in names:
        batch = [Metric(name, s * 0.5, T0_MS + s * 10, s) for s in range(points)]
        for lo in range(0, points, 1000):
            client.log_batch(run_id, metrics=batch[lo : lo + 1000])
    client.set_terminated(run_id, "FINISHED", end_time=T0_MS + points * 10)
    return uri, run_id, names


def bench_mlflow(report: Report, quick: bool, tmp: Path) -> None:
    try:
        from mlflow import MlflowClient
    except ImportError:
        report.add(
            Result("I1", "MLflow import vs get_metric_history", None, "pt/s", skipped=True,
                   notes="mlflow-skinny is not installed (pip install 'polytrack[import-mlflow]')")
        )  # fmt: skip
        return
    import polytrack.importers

    keys, points = (2, 10_000) if quick else (10, 10_000)
    log(f"writing an MLflow SQLite store: {keys} x {points:,} points")
    uri, run_id, names = _mlflow_store(tmp / "source", keys, points)
    client = MlflowClient(tracking_uri=uri)
    total = keys * points
    homes = iter(range(1_000))

    def reader_alone() -> None:
        for name in names:
            history = client.get_metric_history(run_id, name)
            assert len(history) == points

    def whole_import() -> None:
        home = tmp / f"home-{next(homes)}"
        summary = polytrack.importers.mlflow(uri, home=home, progress=False)
        assert summary.points == total, summary

    reps = 3 if quick else 5
    reader_times: list[float] = []
    import_times: list[float] = []
    for _ in range(reps):  # interleaved: a noisy machine slows both alike
        reader_times.append(best_of(reader_alone, 1)[0])
        import_times.append(best_of(whole_import, 1)[0])
    reader_rate = total / min(reader_times)
    import_rate = total / min(import_times)
    ratio = import_rate / reader_rate
    report.add(
        Result(
            "I1",
            f"MLflow import, {keys}x{points:,} points (SQLite)",
            round(import_rate),
            "pt/s",
            f"get_metric_history {reader_rate:,.0f} pt/s",
            ratio,
            ">= 1.00x",
            ratio >= 1.0,
            notes=(
                f"whole import {min(import_times) * 1000:.0f} ms (listing, params, bulk "
                f"write, index) vs the reader alone {min(reader_times) * 1000:.0f} ms"
            ),
        )
    )


def bench_tensorboard(report: Report, quick: bool, tmp: Path) -> None:
    # BEGIN tensorboard bench (filled by the TensorBoard importer)
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboardX import SummaryWriter
    except ImportError:
        report.add(
            Result("I2", "TensorBoard import vs its event reader", None, "pt/s", skipped=True,
                   notes="tensorboard or tensorboardX is not installed "
                         "(pip install 'polytrack[import-tensorboard]' tensorboardX)")
        )  # fmt: skip
        return
    import polytrack.importers
    from polytrack.importers._tensorboard import read

    keys, points = (2, 10_000) if quick else (10, 10_000)
    log(f"writing a TensorBoard logdir with tensorboardX: {keys} x {points:,} scalars")
    logdir = tmp / "tb-source"
    writer = SummaryWriter(str(logdir / "run"), max_queue=10_000, flush_secs=3600)
    for step in range(points):
        for k in range(keys):
            writer.add_scalar(f"metric_{k}", step * 0.5, step, walltime=T0_MS / 1000 + step)
    writer.close()
    (event_file,) = (logdir / "run").glob("events.out.tfevents.*")
    total = keys * points
    homes = iter(range(1_000))

    def reader_alone() -> None:  # what TensorBoard's backend reads events with
        found = sum(len(e.summary.value) for e in EventFileLoader(str(event_file)).Load())
        assert found == total, found

    def our_reader() -> None:  # listing and series, nothing written
        found = sum(len(s.steps) for r in read(str(logdir)) for s in r.series())
        assert found == total, found

    def whole_import() -> None:
        home = tmp / f"tb-home-{next(homes)}"
        summary = polytrack.importers.tensorboard(logdir, home=home, progress=False)
        assert summary.points == total, summary

    reps = 3 if quick else 5
    times: dict[str, list[float]] = {"loader": [], "reader": [], "import": []}
    for _ in range(reps):  # interleaved: a noisy machine slows all alike
        times["loader"].append(best_of(reader_alone, 1)[0])
        times["reader"].append(best_of(our_reader, 1)[0])
        times["import"].append(best_of(whole_import, 1)[0])
    loader_rate, reader_rate, import_rate = (total / min(times[k]) for k in times)
    ratio = import_rate / loader_rate
    report.add(
        Result(
            "I2",
            f"TensorBoard import, {keys}x{points:,} scalars (tensorboardX)",
            round(import_rate),
            "pt/s",
            f"EventFileLoader {loader_rate:,.0f} pt/s",
            ratio,
            ">= 1.00x",
            ratio >= 1.0,
            notes=(
                f"whole import {min(times['import']) * 1000:.0f} ms; our reader alone "
                f"(records, protos, points) {reader_rate:,.0f} pt/s; tensorboard's "
                f"EventFileLoader alone {min(times['loader']) * 1000:.0f} ms"
            ),
        )
    )
    # END tensorboard bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="smaller sources, fewer repetitions", only=BENCHES)
    args = parser.parse_args(argv)
    names = chosen(parser, args, BENCHES)
    meta = machine_meta("quick" if args.quick else "full")
    header(meta, "sources in a temporary directory")
    report = Report()
    with warnings.catch_warnings(), temp_dir("polytrack-bench-import-") as tmp:
        warnings.simplefilter("ignore")  # the sources' libraries' deprecations: not figures
        steps = {
            "mlflow": partial(bench_mlflow, report, args.quick, tmp),
            "tensorboard": partial(bench_tensorboard, report, args.quick, tmp),
        }
        run_each(steps, names)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
