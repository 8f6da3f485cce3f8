#!/usr/bin/env python
"""Benchmarks of the reproducibility snapshot: environment capture and what init() pays.

    python benchmarks/bench_snapshot.py [--quick] [--json OUT] [--strict]

Prints one line per figure (S1..S4) in the format of all the scripts (`_harness.py`: id,
name, figure, baseline, ratio, target, PASS/FAIL or `info`), then a summary line. Exit
status 0 unless `--strict` is given and a target failed. `--quick` is accepted and changes
nothing: the sizes are small already. See benchmarks/README.md ("bench_snapshot.py").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    Report,
    Result,
    add_common_arguments,
    best_of,
    child_env,
    finish,
    fs_type,
    header,
    machine_meta,
    run_python,
)
from polytrack.capture.environment import capture_environment, installed_packages
from polytrack.settings import DEFAULT_ENV_ALLOWLIST

DISTRIBUTIONS = 300


def _site(root: Path, count: int) -> Path:
    """A site-packages-like directory holding `count` installed distributions."""
    site = root / "site-packages"
    site.mkdir()
    for i in range(count):
        info = site / f"package_{i:03d}-1.{i}.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: package-{i:03d}\n")
    return site


def bench_environment(report: Report, root: Path) -> None:
    site = _site(root, DISTRIBUTIONS)
    path = [*sys.path, str(site)]
    cache = root / "cache"
    count = len(installed_packages(path))
    started = time.perf_counter()
    capture_environment(allowlist=DEFAULT_ENV_ALLOWLIST, cache_dir=cache, path=path)
    cold = time.perf_counter() - started
    warm = best_of(
        lambda: capture_environment(allowlist=DEFAULT_ENV_ALLOWLIST, cache_dir=cache, path=path),
        20,
    )[0]
    report.add(Result("S1", f"environment capture, {count} distributions, cold", cold * 1e3, "ms"))
    report.add(
        Result(
            "S2",
            f"environment capture, {count} distributions, warm",
            warm * 1e3,
            "ms",
            goal="<= 30 ms",
            ok=warm * 1e3 <= 30,
            notes="best of 20; the cache is keyed by the mtimes of the sys.path entries",
        )
    )


_CHILD = """
import json, sys, time
started = time.perf_counter()
import polytrack
run = polytrack.init(capture=json.loads(sys.argv[1]))
returned = time.perf_counter()
run.finish()
done = time.perf_counter()
print(json.dumps([returned - started, done - started]))
"""


def bench_init(report: Report, root: Path) -> None:
    """init() and finish() of an empty run in a fresh interpreter, captures on and off."""
    repo = root / "repo"
    repo.mkdir()
    env = child_env(
        POLYTRACK_HOME=str(root / "home"),
        GIT_AUTHOR_NAME="b",
        GIT_AUTHOR_EMAIL="b@b",
        GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@b",
    )
    for command in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)

    def measure(capture: object) -> tuple[float, float]:
        out = run_python(_CHILD, json.dumps(capture), env=env, cwd=repo)
        returned, done = json.loads(out.strip().splitlines()[-1])
        return returned, done

    measure(True)  # warm the package cache and the OS page cache
    on = [measure(True) for _ in range(7)]
    off = [measure(False) for _ in range(7)]
    best_on = min(on, key=lambda t: t[1])
    best_off = min(off, key=lambda t: t[1])
    returned = min(t[0] for t in on) * 1e3
    report.add(
        Result(
            "S3",
            "init() returns, every capture on",
            returned,
            "ms",
            f"captures off {min(t[0] for t in off) * 1e3:.1f} ms",
            notes="fresh interpreter, from before `import polytrack`; best of 7, small repository",
        )
    )
    report.add(
        Result(
            "S4",
            "init() + finish(), every capture on",
            best_on[1] * 1e3,
            "ms",
            f"captures off {best_off[1] * 1e3:.1f} ms",
            goal="<= 150 ms",
            ok=best_on[1] * 1e3 <= 150,
            notes="fresh interpreter, from before `import polytrack`; best of 7, small repository",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="accepted; changes nothing (the sizes are small)")
    args = parser.parse_args(argv)
    meta = machine_meta("full", distributions=DISTRIBUTIONS)
    with tempfile.TemporaryDirectory(prefix="polytrack-bench-") as tmp:
        root = Path(tmp)
        header(meta, f"temp dir on {fs_type(root)}")
        report = Report()
        (root / "env").mkdir()
        (root / "init").mkdir()
        bench_environment(report, root / "env")
        bench_init(report, root / "init")
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
