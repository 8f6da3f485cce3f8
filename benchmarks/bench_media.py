#!/usr/bin/env python
"""Benchmarks of the media calls (issue 15): what `log_image` costs the training loop,
and how soon a run that logged images finishes.

    python benchmarks/bench_media.py [--quick] [--json OUT] [--strict]

Prints one line per figure (V1..V4) in the format of all the scripts (`_harness.py`).
The image is 224x224x3 uint8 with photo-like content (gradients and sensor noise: PNG
deflates it by about a quarter; pure noise would not deflate at all). A "training step"
is three 200x200 matrix products (~1.5 ms here), so the encoder thread competes with the
loop for the interpreter as it would in a real one.

- V1: one `log_image` call against one `array.copy()` of the same image, both timed in
  the same loop, in turns first (median per call), ratio; target <= 2x.
- V2: 1,000 training steps, one image each (each a different image): `finish()` after
  the last call; <= 1 s.
- V3: the same 1,000 images logged back to back with no step between (a burst): the
  encoder is behind by nearly all of them when `finish()` starts; <= 1 s.
- V4: bytes kept per image (info).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import polytrack
from _harness import (
    Report,
    Result,
    add_common_arguments,
    finish,
    fs_type,
    header,
    log,
    machine_meta,
    temp_dir,
)


def photo_like(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.indices((224, 224)).sum(0)[..., None] * np.array([0.5, 1.0, 1.5])
    return np.clip(ramp % 256 + rng.normal(0, 8, (224, 224, 3)), 0, 255).astype(np.uint8)


def training_step(matrix: np.ndarray) -> None:
    for _ in range(3):
        matrix @ matrix


def bench_call(report: Report, root: Path, steps: int) -> None:
    image = photo_like()
    matrix = np.random.default_rng(1).random((200, 200))
    run = polytrack.init(dir=root / "v1", capture=False)
    run.log_image("warm", image, step=0)  # the encoder started, the name known
    calls: list[float] = []
    copies: list[float] = []
    clock = time.perf_counter
    for step in range(steps):
        training_step(matrix)
        # Whichever goes first reads the image from colder caches (the step's products
        # evicted it): the order alternates, so that neither side always pays for that.
        if step % 2:
            t0 = clock()
            run.log_image("sample", image, step=step)
            t1 = clock()
            kept = image.copy()
            t2 = clock()
            calls.append(t1 - t0)
            copies.append(t2 - t1)
        else:
            t0 = clock()
            kept = image.copy()
            t1 = clock()
            run.log_image("sample", image, step=step)
            t2 = clock()
            copies.append(t1 - t0)
            calls.append(t2 - t1)
        del kept
    run.finish()
    call, copy = statistics.median(calls) * 1e9, statistics.median(copies) * 1e9
    ratio = call / copy
    p90_call, p90_copy = np.percentile(calls, 90) * 1e9, np.percentile(copies, 90) * 1e9
    report.add(
        Result(
            "V1", "log_image(224x224x3 uint8) per call", call, "ns",
            baseline=f"array.copy() {copy:,.0f} ns", ratio=ratio, goal="<= 2x",
            ok=ratio <= 2.0,
            notes=f"median of {steps} calls in a training loop; p90 "
            f"{p90_call:,.0f} ns vs {p90_copy:,.0f} ns",
        )
    )  # fmt: skip


def bench_finish(report: Report, root: Path, steps: int, *, burst: bool) -> None:
    image = photo_like()
    matrix = np.random.default_rng(1).random((200, 200))
    home = root / ("v3" if burst else "v2")
    run = polytrack.init(dir=home, capture=False)
    t_start = time.perf_counter()
    for step in range(steps):
        if not burst:
            training_step(matrix)
        # A different image at each step (one pixel tells them apart), as in a real run:
        # the same bytes twice would be stored once, and cost the encoder nothing.
        image[0, 0, :2] = (step % 256, step // 256)
        run.log_image("sample", image, step=step)
    t_last = time.perf_counter()
    run.finish()
    took = time.perf_counter() - t_last
    items = polytrack.get_run(run.id, home=home).media("sample")
    assert len(items) == steps, (len(items), steps)
    assert np.array_equal(items[-1].value, image)
    assert len({item.blobs[0].digest for item in items}) == steps
    report.add(
        Result(
            "V3" if burst else "V2",
            f"finish() after {steps} images" + (" logged back to back" if burst else ""),
            took * 1e3, "ms", goal="<= 1000 ms", ok=took <= 1.0,
            notes=f"the loop took {(t_last - t_start) * 1e3:,.0f} ms; every image read back",
        )
    )  # fmt: skip
    if not burst:
        size = sum(item.blobs[0].size for item in items) / steps
        report.add(
            Result(
                "V4", "bytes kept per image (PNG)", size / 1e3, "kB",
                baseline=f"raw {image.nbytes / 1e3:.0f} kB", notes="photo-like content",
            )
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="300 steps instead of 1,000")
    parser.add_argument("--tmp", metavar="DIR", help="where the temporary homes go")
    args = parser.parse_args(argv)
    steps = 300 if args.quick else 1000
    with temp_dir("polytrack-bench-", args.tmp) as root:
        meta = machine_meta("quick" if args.quick else "full", steps=steps, tmp_fs=fs_type(root))
        header(meta, f"temp homes on {meta['tmp_fs']} ({root})")
        report = Report()
        for name, step in (
            ("call", lambda: bench_call(report, root, steps)),
            ("finish", lambda: bench_finish(report, root, steps, burst=False)),
            ("burst", lambda: bench_finish(report, root, steps, burst=True)),
        ):
            t0 = time.perf_counter()
            step()
            log(f"{name}: {time.perf_counter() - t0:.1f} s")
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
