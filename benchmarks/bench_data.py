#!/usr/bin/env python
"""Benchmarks of data hashing (`polytrack.capture.data`): throughput, directories, the cache.

    python benchmarks/bench_data.py [--quick] [--json OUT] [--strict] [--data-cache DIR]
                                    [--only throughput,directory,unchanged,memory]

Prints one line per figure (D1..D5) in the format of all the scripts (`_harness.py`: id,
name, figure, baseline, ratio, target, PASS/FAIL/info/SKIP), then a summary line, and exits
1 on a failed target only with `--strict`.

The inputs are generated once and cached under `${XDG_CACHE_HOME:-~/.cache}/polytrack-bench/
data/` (`--data-cache` moves it): a 1 GiB file of random bytes (256 MiB with `--quick`), a
tree of 10,000 files of 4 KiB in 100 directories, and a sparse 10 GiB file (a hole: no
disk used) with the hash cache that knows it, so that its one full read (~8 s) happens once.
All timings are the best of several repetitions, with the page cache warm; baselines are
measured in the same run, interleaved with what they are compared to.

See benchmarks/README.md for what each figure means and the figures measured so far.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from _harness import (
    Report,
    Result,
    add_cache_argument,
    add_common_arguments,
    best_of,
    child_env,
    chosen,
    default_cache,
    finish,
    fs_type,
    header,
    log,
    machine_meta,
    read_stamp,
    run_each,
    run_python,
    temp_dir,
)
from polytrack.capture.data import RACY_SECONDS, HashCache, hash_source

perf_counter = time.perf_counter
MiB = 1 << 20
DATA_FORMAT = 1  # bump when the generated inputs change
OLD_NS = 1_600_000_000 * 10**9  # the mtime given to generated files: settled, not racy


def spread(times: list[float], scale: float = 1e3) -> str:
    return f"{min(times) * scale:.1f}-{max(times) * scale:.1f}"


# -- generated inputs ---------------------------------------------------------------------


def _settle() -> None:
    """Wait until files just written are older than the cache's racy window.

    Their ctime is the time of the last write (utime cannot set it), and a hash cache does
    not trust files changed less than `RACY_SECONDS` before they are hashed.
    """
    time.sleep(RACY_SECONDS + 0.1)


def ensure_big_file(data: Path, size: int) -> Path:
    path = data / f"random-{size // MiB}m.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    log(f"generating {path} ({size // MiB} MiB of random bytes, cached after)")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for _ in range(size // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
    os.utime(tmp, ns=(OLD_NS, OLD_NS))
    tmp.rename(path)
    _settle()
    return path


def ensure_tree(data: Path, dirs: int = 100, per_dir: int = 100, size: int = 4096) -> Path:
    root = data / f"tree-{dirs * per_dir // 1000}k"
    stamp = data / f"{root.name}.complete"
    if stamp.exists() and root.is_dir():
        return root
    log(f"generating {root} ({dirs * per_dir:,} files of {size} B, cached after)")
    shutil.rmtree(root, ignore_errors=True)
    for d in range(dirs):
        sub = root / f"part-{d:03d}"
        sub.mkdir(parents=True)
        for i in range(per_dir):
            path = sub / f"{i:03d}.bin"
            path.write_bytes(os.urandom(size))
            os.utime(path, ns=(OLD_NS, OLD_NS))
    _settle()
    stamp.write_text("")
    return root


def ensure_sparse(data: Path, size: int) -> tuple[Path, Path, str]:
    """The sparse file and the persistent hash cache that has seen it."""
    path = data / f"sparse-{size >> 30}g.bin"
    cache_file = data / "hashes.sqlite3"
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as f:
            f.truncate(size)
        os.utime(path, ns=(OLD_NS, OLD_NS))
        _settle()
    cache = HashCache.open(cache_file)
    t0 = perf_counter()
    found = hash_source(path, cache=cache)  # a full read the first time, a lookup after
    first = perf_counter() - t0
    cache.close()
    if first > 1:
        log(f"hashed {path} in {first:.1f} s ({size / first / 1e9:.2f} GB/s), cached after")
        note = f"its one full hash took {first:.1f} s ({size / first / 1e9:.2f} GB/s)"
    else:
        note = "hashed in an earlier run"
    assert found.size == size
    return path, cache_file, note


# -- the figures --------------------------------------------------------------------------


def bench_throughput(report: Report, data: Path, quick: bool) -> None:
    size = (256 if quick else 1024) * MiB
    reps = 3 if quick else 5
    path = ensure_big_file(data, size)
    openssl = shutil.which("openssl")
    if openssl is None:
        report.add(
            Result(
                "D1",
                "hash_source(file) vs openssl dgst -sha256",
                None,
                "x",
                skipped=True,
                notes="openssl not found",
            )
        )
        return

    def run_openssl() -> str:
        out = subprocess.run(
            [openssl, "dgst", "-sha256", "-r", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()[0]

    ours = "sha256:" + run_openssl()  # also warms the page cache
    assert hash_source(path).digest == ours, "digest differs from openssl's"
    t_ssl: list[float] = []
    t_ours: list[float] = []
    t_fd: list[float] = []
    for _ in range(reps):  # interleaved: the machine's mood changes by the second
        t_ssl.append(best_of(run_openssl, 1)[0])
        t_ours.append(best_of(lambda: hash_source(path), 1)[0])
        if hasattr(hashlib, "file_digest"):  # Python 3.11+
            with open(path, "rb") as f:
                t0 = perf_counter()
                hashlib.file_digest(f, "sha256")
                t_fd.append(perf_counter() - t0)
    ratio = min(t_ssl) / min(t_ours)
    gbs = round(size / min(t_ours) / 1e9, 2)
    report.add(
        Result(
            "D1",
            f"hash_source(file), {size // MiB} MiB, throughput",
            gbs,
            "GB/s",
            f"openssl {size / min(t_ssl) / 1e9:.2f} GB/s",
            ratio,
            ">= 0.90x",
            ratio >= 0.90,
            notes=f"ours {spread(t_ours)} ms, `openssl dgst -sha256` {spread(t_ssl)} ms "
            f"(process start included), hashlib.file_digest {spread(t_fd or [0.0])} ms; "
            f"{reps} interleaved repetitions, page cache warm",
            extra={"ours_s": t_ours, "openssl_s": t_ssl, "file_digest_s": t_fd},
        )
    )


def _walk_floor(root: Path) -> None:
    """What any stat-based check costs at least: scandir every directory, stat every file."""
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat()


def bench_directory(report: Report, data: Path, quick: bool, tmp: Path) -> None:
    reps = 5 if quick else 9
    root = ensure_tree(data)
    expected = hash_source(root)  # warms the page cache and the dentry cache
    n = expected.files
    cold: list[float] = []
    warm: list[float] = []
    reopen: list[float] = []
    floor: list[float] = []
    for rep in range(reps):
        cache = HashCache.open(tmp / f"cold-{rep}.sqlite3")  # empty: cold
        t0 = perf_counter()
        found = hash_source(root, cache=cache)
        cold.append(perf_counter() - t0)
        cache.close()
        assert found == expected
    # The warm checks after all cold runs, as a new run checks data hashed long before:
    # not in the wake of a cold run's reads and of its cache's checkpoint being written.
    time.sleep(1)
    for rep in range(2 * reps):
        t0 = perf_counter()
        cache = HashCache.open(tmp / f"cold-{rep % reps}.sqlite3")  # a new process's view
        reopen.append(perf_counter() - t0)
        t0 = perf_counter()
        found = hash_source(root, cache=cache)
        warm.append(perf_counter() - t0)
        cache.close()
        assert found == expected
        floor.append(best_of(lambda: _walk_floor(root), 1)[0])
    report.add(
        Result(
            "D2",
            f"hash_source(dir), {n:,} x 4 KiB, cold cache",
            min(cold) * 1e3,
            "ms",
            goal="<= 200 ms",
            ok=min(cold) <= 0.2,
            notes=f"empty hash cache, page cache warm, manifest written; range {spread(cold)} "
            f"ms over {reps}",
            extra={"times_s": cold},
        )
    )
    report.add(
        Result(
            "D3",
            f"hash_source(dir), {n:,} files, unchanged",
            min(warm) * 1e3,
            "ms",
            f"scandir+stat {min(floor) * 1e3:.1f} ms",
            min(warm) / min(floor),
            "<= 50 ms",
            min(warm) <= 0.05,
            notes=f"a freshly opened cache (open: {min(reopen) * 1e3:.1f} ms, not counted); "
            f"range {spread(warm)} ms over {2 * reps}; the baseline is a bare os.scandir walk "
            f"with one DirEntry.stat() per file, range {spread(floor)} ms",
            extra={"times_s": warm, "floor_s": floor, "open_s": reopen},
        )
    )


def bench_unchanged(report: Report, data: Path, quick: bool) -> None:
    size = (1 if quick else 10) << 30
    path, cache_file, note = ensure_sparse(data, size)
    times: list[float] = []
    with_open: list[float] = []
    for _ in range(9):
        t0 = perf_counter()
        cache = HashCache.open(cache_file)
        t1 = perf_counter()
        found = hash_source(path, cache=cache)
        t2 = perf_counter()
        cache.close()
        times.append(t2 - t1)
        with_open.append(t2 - t0)
        assert found.size == size
    report.add(
        Result(
            "D4",
            f"hash_source(file), {size >> 30} GiB, unchanged",
            min(times) * 1e3,
            "ms",
            goal="<= 5 ms",
            ok=min(times) <= 0.005,
            notes=f"sparse file; one stat + one lookup, range {spread(times, 1e3)} ms; "
            f"with HashCache.open: {min(with_open) * 1e3:.2f} ms; {note}",
            extra={"times_s": times, "with_open_s": with_open},
        )
    )


_MEMORY_CODE = """
import sys
from polytrack.capture.data import hash_source
if sys.argv[1] != "-":
    hash_source(sys.argv[1])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


def bench_memory(report: Report, data: Path, quick: bool) -> None:
    if not os.path.exists("/proc/self/status"):
        report.add(Result("D5", "peak RSS hashing a file", None, "MB", skipped=True))
        return
    size = (256 if quick else 1024) * MiB
    path = ensure_big_file(data, size)
    env = child_env()
    base = min(int(run_python(_MEMORY_CODE, "-", env=env)) for _ in range(2))
    peak = min(int(run_python(_MEMORY_CODE, str(path), env=env)) for _ in range(2))
    grew = (peak - base) / 1e6
    report.add(
        Result(
            "D5",
            f"peak RSS hashing a {size // MiB} MiB file",
            grew,
            "MB",
            f"import only {base / 1e6:.1f} MB",
            notes="VmHWM of a process that hashes the file minus one that only imports; "
            "constant memory: one 1 MiB buffer",
        )
    )


BENCHES = ("throughput", "directory", "unchanged", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, quick="smaller inputs, fewer repetitions", only=BENCHES)
    add_cache_argument(parser, "--data-cache", "the generated inputs", default_cache() / "data")
    args = parser.parse_args(argv)
    names = chosen(parser, args, BENCHES)
    data: Path = args.data_cache
    data.mkdir(parents=True, exist_ok=True)
    stamp = data / "bench-data.json"
    if read_stamp(stamp) != {"format": DATA_FORMAT}:  # inputs of another format: start over
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        stamp.write_text(json.dumps({"format": DATA_FORMAT}))

    meta = machine_meta("quick" if args.quick else "full", data_fs=fs_type(data))
    header(meta, f"inputs on {meta['data_fs']} ({data})")
    report = Report()
    with temp_dir("polytrack-bench-data-") as tmp:
        steps = {
            "throughput": partial(bench_throughput, report, data, args.quick),
            "directory": partial(bench_directory, report, data, args.quick, tmp),
            "unchanged": partial(bench_unchanged, report, data, args.quick),
            "memory": partial(bench_memory, report, data, args.quick),
        }
        run_each(steps, names)
    return finish(report, meta, args)


if __name__ == "__main__":
    sys.exit(main())
