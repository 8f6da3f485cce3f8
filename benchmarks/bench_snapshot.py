#!/usr/bin/env python
"""Benchmarks of the reproducibility snapshot: environment capture and what init() pays.

    python benchmarks/bench_snapshot.py [--strict]

Prints one line per figure with its target and PASS/FAIL (or `info`). Exit status 0
unless `--strict` is given and a target failed. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def _best(repeat: int, call: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def line(name: str, value_ms: float, goal_ms: float | None, notes: str = "") -> bool:
    ok = None if goal_ms is None else value_ms <= goal_ms
    verdict = "info" if ok is None else ("PASS" if ok else "FAIL")
    goal = "-" if goal_ms is None else f"<= {goal_ms:g} ms"
    print(f"{name:<58} {value_ms:8.1f} ms  target {goal:<10} {verdict}", flush=True)
    if notes:
        print(f"      {notes}", flush=True)
    return ok is not False


def bench_environment(root: Path) -> bool:
    site = _site(root, DISTRIBUTIONS)
    path = [*sys.path, str(site)]
    cache = root / "cache"
    count = len(installed_packages(path))
    started = time.perf_counter()
    capture_environment(allowlist=DEFAULT_ENV_ALLOWLIST, cache_dir=cache, path=path)
    cold = time.perf_counter() - started
    warm = _best(
        20,
        lambda: capture_environment(allowlist=DEFAULT_ENV_ALLOWLIST, cache_dir=cache, path=path),
    )
    line(f"environment capture, {count} distributions, cold", cold * 1e3, None)
    return line(
        f"environment capture, {count} distributions, warm (cached)",
        warm * 1e3,
        30,
        "best of 20; the cache is keyed by the mtimes of the sys.path entries",
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


def bench_init(root: Path) -> bool:
    """init() and finish() of an empty run in a fresh interpreter, captures on and off."""
    repo = root / "repo"
    repo.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYTRACK_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up figures assume cached bytecode
    env.update(
        POLYTRACK_HOME=str(root / "home"),
        GIT_AUTHOR_NAME="b",
        GIT_AUTHOR_EMAIL="b@b",
        GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@b",
    )
    for command in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)

    def measure(capture: object) -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(capture)],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        returned, done = json.loads(out.strip().splitlines()[-1])
        return returned, done

    measure(True)  # warm the package cache and the OS page cache
    on = [measure(True) for _ in range(7)]
    off = [measure(False) for _ in range(7)]
    best_on = min(on, key=lambda t: t[1])
    best_off = min(off, key=lambda t: t[1])
    line(
        "init() returns, every capture on (fresh interpreter)",
        min(t[0] for t in on) * 1e3,
        None,
        f"captures off: {min(t[0] for t in off) * 1e3:.1f} ms",
    )
    return line(
        "init() + finish(), every capture on (fresh interpreter)",
        best_on[1] * 1e3,
        150,
        f"captures off: {best_off[1] * 1e3:.1f} ms; best of 7, small repository",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polytrack-bench-") as tmp:
        root = Path(tmp)
        (root / "env").mkdir()
        (root / "init").mkdir()
        ok = bench_environment(root / "env")
        ok = bench_init(root / "init") and ok
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
