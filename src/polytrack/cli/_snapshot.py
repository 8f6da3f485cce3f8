"""The readable form of a run's snapshot, system metrics and log tail for `runs show`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Final

from polytrack.cli._format import MISSING, format_number, printable
from polytrack.cli._table import Cell, Column, render
from polytrack.models import CodeState, GitState, MetricSummary, Snapshot

__all__ = [
    "LOG_TAIL",
    "SYSTEM_PREFIX",
    "describe_logs",
    "describe_snapshot",
    "describe_system",
    "format_bytes",
]

SYSTEM_PREFIX: Final = "system/"
LOG_TAIL: Final = 20  # lines of output `runs show` prints
_UNTRACKED_SHOWN: Final = 5


def format_bytes(size: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if size is None:
        return MISSING
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _section(title: str, rows: Sequence[tuple[str, str | None]]) -> list[str]:
    lines = ["", title]
    if not rows:
        return [*lines, "  none"]
    width = max(len(label) for label, _ in rows)
    lines += [
        f"  {label.ljust(width)}  {printable(value or MISSING)}".rstrip() for label, value in rows
    ]
    return lines


def untracked_entrypoint(git: GitState, code: CodeState | None) -> str | None:
    """How the run's script (or notebook) stands outside the recorded commit: its path
    in the repository when git did not track it, or the path and "(outside the
    repository)"; None when it is tracked, or when the record cannot tell (`-m module`,
    a REPL, a truncated list of untracked files)."""
    if code is None or git.root is None:
        return None
    script = code.notebook or code.entrypoint
    if not script or script.startswith("-m ") or not os.path.isabs(script):
        return None
    # git reports its root with symbolic links resolved; the script's path may hold some.
    candidates = {os.path.relpath(script, git.root)}
    candidates.add(os.path.relpath(os.path.realpath(script), git.root))
    if all(rel == ".." or rel.startswith(".." + os.sep) for rel in candidates):
        return f"{script} (outside the repository)"
    for rel in candidates:
        rel = rel.replace(os.sep, "/")
        for entry in git.untracked:  # a wholly untracked directory is one "dir/" entry
            if rel == entry or (entry.endswith("/") and rel.startswith(entry)):
                return rel
    return None


def describe_snapshot(snapshot: Snapshot) -> list[str]:
    """Sections git, code, environment, hardware, seeds and data, as text lines."""
    lines: list[str] = []
    git = snapshot.git
    rows: list[tuple[str, str | None]] = []
    if git is not None:
        if not git.available:
            rows.append(("state", f"unavailable ({git.reason})"))
        else:
            state = "detached HEAD" if git.branch is None else f"branch {git.branch}"
            dirty = {True: "uncommitted changes", False: "clean", None: "status unknown"}[git.dirty]
            loose = untracked_entrypoint(git, snapshot.code)
            if loose is not None:  # "clean" alone would promise the commit holds the code
                dirty += f"; the entrypoint {loose} is not in the commit"
            rows += [
                ("commit", git.commit or "no commits yet"),
                ("state", f"{state}, {dirty}" + (" (partial)" if git.partial else "")),
                ("root", git.root),
                ("remote", git.remote),
            ]
            if git.diff_file:
                cut = ", truncated" if git.diff_truncated else ""
                rows.append(("diff", f"{git.diff_file} ({format_bytes(git.diff_bytes)}{cut})"))
            if git.untracked:
                shown = ", ".join(git.untracked[:_UNTRACKED_SHOWN])
                more = len(git.untracked) - _UNTRACKED_SHOWN
                extra = f" and {more} more" if more > 0 else ""
                extra += " (list truncated)" if git.untracked_truncated else ""
                rows.append(("untracked", shown + extra))
            if git.reason:
                rows.append(("note", git.reason))
    lines += _section("git", rows)

    code = snapshot.code
    rows = []
    if code is not None:
        rows += [
            ("notebook" if code.notebook else "entrypoint", code.notebook or code.entrypoint),
            ("argv", " ".join(code.argv)),
            ("cwd", code.cwd),
            ("python", code.executable),
        ]
    lines += _section("code", rows)

    env = snapshot.environment
    rows = []
    if env is not None:
        rows += [
            ("python", f"{env.python} ({env.implementation})"),
            ("platform", env.platform),
            ("host", env.hostname),
            ("packages", f"{len(env.packages)} distributions (--json lists them)"),
        ]
        if env.conda_env:
            rows.append(("conda env", env.conda_env))
        if env.frameworks:
            rows.append(("frameworks", ", ".join(f"{k} {v}" for k, v in env.frameworks.items())))
        rows += [(name, value) for name, value in env.variables.items()]
    lines += _section("environment", rows)

    hw = snapshot.hardware
    rows = []
    if hw is not None:
        counts = f"{hw.cpu_logical or MISSING} logical, {hw.cpu_physical or MISSING} physical"
        rows += [("cpu", f"{hw.cpu_model or 'unknown'} ({counts})")]
        rows.append(("memory", format_bytes(hw.memory_total)))
        for gpu in hw.gpus:
            rows.append((f"gpu {gpu.index}", f"{gpu.name} ({format_bytes(gpu.memory_total)})"))
        if not hw.gpus:
            rows.append(("gpus", "none found"))
    lines += _section("hardware", rows)

    if snapshot.seeds is not None:
        seeds = snapshot.seeds
        flags = ", deterministic" if seeds.deterministic else ""
        lines += _section(
            "seeds", [("seed", f"{seeds.seed} ({', '.join(seeds.libraries)}{flags})")]
        )

    lines += ["", "data"]
    if snapshot.data_refs:
        refs = snapshot.data_refs
        columns = [
            Column("name", [Cell(printable(r.name)) for r in refs]),
            Column("role", [Cell(r.role) for r in refs]),
            Column("kind", [Cell(r.kind) for r in refs]),
            Column("digest", [Cell(r.digest.removeprefix("sha256:")[:12]) for r in refs]),
            Column("size", [Cell(format_bytes(r.size), numeric=True) for r in refs]),
            Column("files", [Cell(str(r.files), numeric=True) for r in refs]),
            Column("path", [Cell(printable(r.path or MISSING)) for r in refs]),
        ]
        lines += ["  " + line for line in render(columns).splitlines()]
    else:
        lines.append("  none")
    return lines


def describe_system(metrics: Mapping[str, MetricSummary]) -> list[str]:
    """The `system/` metrics as a table of last, min and max."""
    keys = sorted(key for key in metrics if key.startswith(SYSTEM_PREFIX))
    lines = ["", "system"]
    if not keys:
        return [*lines, "  none"]
    summaries = [metrics[key] for key in keys]
    columns = [
        Column("metric", [Cell(printable(key.removeprefix(SYSTEM_PREFIX))) for key in keys]),
        Column("last", [Cell(format_number(s.last, digits=4), numeric=True) for s in summaries]),
        Column("min", [Cell(format_number(s.min, digits=4), numeric=True) for s in summaries]),
        Column("max", [Cell(format_number(s.max, digits=4), numeric=True) for s in summaries]),
        Column("samples", [Cell(str(s.count), numeric=True) for s in summaries]),
    ]
    return lines + ["  " + line for line in render(columns).splitlines()]


def describe_logs(lines_of_output: Sequence[tuple[float, str, str]]) -> list[str]:
    """The tail of the output: `HH:MM:SS err| text`."""
    lines = ["", f"logs (last {LOG_TAIL} lines)"]
    if not lines_of_output:
        return [*lines, "  none"]
    for t, stream, text in lines_of_output:
        mark = "err" if stream == "stderr" else "out"
        lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(t))} {mark}| {printable(text)}")
    return lines
