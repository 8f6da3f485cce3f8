"""The harness the benchmark scripts share: figures, their lines, the summary and --json.

Each script builds a `Report`, adds one `Result` per figure (`Report.add` prints its
line), and ends with `finish(report, meta, args)`, which prints the summary line, writes
`--json OUT` and gives the exit status: 0, or 1 with `--strict` when a target failed. A
line reads: id, what is measured, the figure, its baseline, the ratio (where the target is
a ratio), the target, and PASS/FAIL (`info`: a figure without a target; `SKIP`: could not
run), with an indented line of details under it.

Not a benchmark itself: `python benchmarks/bench_*.py` finds it next to the script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polytrack

perf_counter = time.perf_counter

# -- figures ------------------------------------------------------------------------------


@dataclass
class Result:
    id: str  # "1a", "G2", "D4", ...
    name: str
    value: float | None  # in `unit`
    unit: str
    baseline: str = "-"
    ratio: float | None = None
    goal: str = "-"
    ok: bool | None = None  # None: a figure without a target (info), or skipped
    skipped: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "SKIP"
        if self.ok is None:
            return "info"
        return "PASS" if self.ok else "FAIL"


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, as the lines print it."""
    if value is None:
        return "-"
    if unit in ("ns", "B/pt"):
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    if unit == "ms":
        if value < 1:
            return f"{value:.2f} ms"
        return f"{value:.1f} ms" if value < 1000 else f"{value:,.0f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.4f} %"
    return f"{value:g} {unit}".strip()


class Report:
    """The figures of one run of a script, printed as they come; timed from its creation."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.started = perf_counter()

    def add(self, result: Result) -> Result:
        self.results.append(result)
        ratio = "-" if result.ratio is None else f"{result.ratio:.2f}x"
        print(
            f"{result.id:<3} {result.name:<46} {fmt(result.value, result.unit):>12}  "
            f"base {result.baseline:<22} ratio {ratio:>7}  target {result.goal:<9} "
            f"{result.verdict}",
            flush=True,
        )
        if result.notes:
            print(f"      {result.notes}", flush=True)
        return result


def log(message: str) -> None:
    """Progress, to stderr: not part of the report."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


# -- command line, header, summary --------------------------------------------------------


def add_common_arguments(
    parser: argparse.ArgumentParser,
    quick: str = "smaller sizes",
    only: Sequence[str] = (),
) -> None:
    """--quick (its help: `quick`), --json OUT, --strict and, given `only`, --only NAMES."""
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    if only:
        parser.add_argument(
            "--only",
            metavar="NAMES",
            default=",".join(only),
            help=f"comma-separated subset of {', '.join(only)}",
        )


def add_cache_argument(
    parser: argparse.ArgumentParser, flag: str, what: str, default: Path | None = None
) -> None:
    """`flag DIR`: where `what` is generated once and kept (default: `default_cache()`)."""
    parser.add_argument(
        flag,
        metavar="DIR",
        type=Path,
        default=default or default_cache(),
        help=f"where {what} is cached (default %(default)s)",
    )


def chosen(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: Sequence[str]
) -> list[str]:
    """The benchmarks --only names, in the order given; an unknown name is a usage error."""
    picked = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in picked if name not in names]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    return picked


def run_each(steps: Mapping[str, Callable[[], object]], names: Sequence[str]) -> None:
    """Run the steps `names` picks, in that order, each one's time in a progress line."""
    for name in names:
        t0 = perf_counter()
        steps[name]()
        log(f"{name}: {perf_counter() - t0:.1f} s")


def machine_meta(mode: str, **extra: Any) -> dict[str, Any]:
    """What the JSON's "meta" says about the machine and the run; `extra` goes before date."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "polytrack": polytrack.__version__,
        "mode": mode,
        **extra,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def header(meta: dict[str, Any], where: str) -> None:
    """The first line of the output: the machine, the mode, and `where` (the script's own)."""
    print(
        f"polytrack {meta['polytrack']} | Python {meta['python']} | {meta['cpus']} CPUs | "
        f"{meta['platform']} | {meta['mode']} | {where}",
        flush=True,
    )


def finish(report: Report, meta: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the summary line, write `--json`, and return the exit status (see the top)."""
    meta["seconds"] = round(perf_counter() - report.started, 1)
    results = report.results
    failed = [r for r in results if r.ok is False]
    print(
        f"{len(results)} figures, {sum(r.ok is True for r in results)} PASS, "
        f"{len(failed)} FAIL, {sum(r.skipped for r in results)} SKIP "
        f"in {meta['seconds']} s",
        flush=True,
    )
    if getattr(args, "json", None):
        payload = {
            "meta": meta,
            "results": [asdict(r) | {"verdict": r.verdict} for r in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 1 if getattr(args, "strict", False) and failed else 0


# -- measuring ----------------------------------------------------------------------------


def best_of(fn: Callable[[], object], reps: int) -> tuple[float, list[float]]:
    """The shortest of `reps` timed calls of `fn`, and all of them, in seconds."""
    times = []
    for _ in range(reps):
        t0 = perf_counter()
        fn()
        times.append(perf_counter() - t0)
    return min(times), times


def child_env(**changes: str) -> dict[str, str]:
    """The environment of a measured subprocess: ours without POLYTRACK_*, plus `changes`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYTRACK_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up figures assume cached bytecode
    env.update(changes)
    return env


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """`python -c code args...` with this interpreter; its stdout, or RuntimeError."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env if env is not None else child_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


@contextlib.contextmanager
def temp_dir(prefix: str, parent: str | None = None) -> Iterator[Path]:
    """A new temporary directory (in `parent`, default the system's), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fs_type(path: Path) -> str:
    """The filesystem type of `path`, from /proc/self/mounts (longest matching mount)."""
    try:
        longest, kind = "", "?"
        real = str(path.resolve())
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                mount = parts[1]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > len(longest):
                    longest, kind = mount, parts[2]
        return kind
    except OSError:
        return "?"


# -- generated inputs, cached -------------------------------------------------------------


def default_cache() -> Path:
    """Where generated inputs are kept: ${XDG_CACHE_HOME:-~/.cache}/polytrack-bench."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "polytrack-bench"


def read_stamp(marker: Path) -> Any:
    """The JSON a generated input was stamped with, or None when missing or unreadable."""
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def start_building(cache: Path, name: str) -> Path:
    """An empty `cache/name.building-PID` to generate `cache/name` in (renamed when done)."""
    shutil.rmtree(cache / name, ignore_errors=True)
    building = cache / f"{name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    return building


def generate_runs(
    code: str, building: Path, runs: int, *, extra: Sequence[Sequence[str]] = ()
) -> None:
    """Run `python -c code building first count` in up to 4 processes, each writing its
    share of `runs` runs into `building`, plus one process per `extra` argument list
    (`python -c ...`); RuntimeError if any fails. Indexing is left to the first read."""
    workers = max(1, min(os.cpu_count() or 1, 4))
    env = child_env(POLYTRACK_INDEX_ON_FINISH="0")
    share = -(-runs // workers)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                str(building),
                str(w * share),
                str(max(0, min(share, runs - w * share))),
            ],
            env=env,
        )
        for w in range(workers)
    ]
    procs += [subprocess.Popen([sys.executable, "-c", *args], env=env) for args in extra]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"generating runs in {building} failed")
