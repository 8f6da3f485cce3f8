"""`polytrack runs compare A B [C ...]` and `polytrack runs diff A B`: runs side by side,
or only what differs between two, as text for a code review.

Reads through the public API (`polytrack.compare`), imported only when a command runs:
`runs.py` registers these actions when `main()` builds its parser, and `polytrack --help`
should not pay for numpy or the store.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from polytrack.cli._context import Context
from polytrack.cli._format import MISSING, format_number, format_value, printable, to_json
from polytrack.cli._parser import Parser, add_command
from polytrack.cli._snapshot import format_bytes
from polytrack.cli._table import Cell, Column, render
from polytrack.errors import RunNotFoundError

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.history.compare import Comparison, MetricRow, Row
    from polytrack.models import MetricSummary

__all__ = ["compare_runs", "diff_runs", "register", "render_comparison", "render_diff"]

VALUE_WIDTH: Final = 40  # widest cell of a compared value before it is cut
_BYTES_KEYS: Final = frozenset({"memory", "gpu memory"})
_SHORT: Final = 12  # hex digits of a digest or commit shown in a table
_DIFF_SECTIONS: Final = ("params", "metrics", "data", "packages", "code", "environment", "hardware")


def register(actions: Subcommands, runs: Parser) -> None:
    """Add `compare` and `diff` to the actions of `polytrack runs`."""
    compare = add_command(
        actions,
        runs,
        "compare",
        help="show runs side by side",
        description=(
            "Show two or more runs side by side: params (those that differ first, marked\n"
            "*), metric summaries, and what changed between their snapshots: commit and\n"
            "uncommitted diff, data and artifact hashes, packages, Python, hardware.\n"
            "The first run is the baseline that 'added' and 'removed' refer to.\n\n"
            "example:\n"
            "  polytrack runs compare baseline tuned --project mnist"
        ),
    )
    compare.add_argument("runs", metavar="RUN", nargs="+", help="id, unique id prefix, or name")
    compare.add_argument("--project", metavar="P", help="look names up in project P only")
    compare.add_argument(
        "--system", action="store_true", help="also compare the system/ metrics (CPU, ...)"
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(handler=compare_runs)

    diff = add_command(
        actions,
        runs,
        "diff",
        help="show only what differs between two runs",
        description=(
            "Show only what differs between run A and run B, as a diff: '- ' lines are\n"
            "A's, '+ ' lines B's. Params, last metric values, data and artifact hashes,\n"
            "packages, commit, environment and hardware; and, when both started from the\n"
            "same commit with different uncommitted changes, the diff between their\n"
            "stored patches. Prints nothing when the runs do not differ.\n\n"
            "example:\n"
            "  polytrack runs diff baseline tuned > review.diff"
        ),
    )
    diff.add_argument("a", metavar="A", help="the baseline run")
    diff.add_argument("b", metavar="B", help="the run compared with it")
    diff.add_argument("--project", metavar="P", help="look names up in project P only")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(handler=diff_runs)


def _check_store(ctx: Context, refs: Sequence[str]) -> None:
    if not ctx.home.is_dir():
        raise RunNotFoundError(f"no run {refs[0]!r}: there is no store at {ctx.home}")


def compare_runs(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack runs compare A B [C ...]`: a side-by-side comparison."""
    if len(args.runs) < 2:
        ctx.note("polytrack: error: runs compare needs two runs or more")
        return 2
    _check_store(ctx, args.runs)
    from polytrack.history.compare import compare  # numpy and SQLite: only when reading

    comparison = compare(
        *args.runs, project=args.project, include_system=args.system, home=ctx.home
    )
    ctx.out(to_json(comparison.to_dict()) if args.json else render_comparison(comparison))
    return 0


def diff_runs(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack runs diff A B`: only the differences, as review-friendly text."""
    _check_store(ctx, [args.a])
    from polytrack.history.compare import compare  # numpy and SQLite: only when reading

    comparison = compare(args.a, args.b, project=args.project, home=ctx.home)
    if args.json:
        ctx.out(to_json(comparison.differences().to_dict()))
        return 0
    text = render_diff(comparison)
    if text:
        ctx.out(text)
    else:
        ctx.note(f"runs {comparison.runs[0].id} and {comparison.runs[1].id} do not differ")
    return 0


# -- values ----------------------------------------------------------------------------


def _show(section: str, key: str, value: Any, *, short: bool = True) -> str:
    """A compared value as text: digests and commits shortened (in tables), sizes in
    bytes as KiB/MiB, a value a run lacks as "-"."""
    from polytrack.history.compare import ABSENT

    if value is ABSENT:
        return MISSING
    if section == "params":
        return format_value(value, digits=None)
    if value is None:
        return MISSING
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[: len("sha256:") + _SHORT]
    if short and key == "commit" and isinstance(value, str):
        return value[:_SHORT]
    if key in _BYTES_KEYS and isinstance(value, int):
        return format_bytes(value)
    return format_value(value, digits=None)


def _metric(summary: MetricSummary) -> str:
    return (
        f"last {format_number(summary.last, digits=6)}, min {format_number(summary.min, digits=6)}"
        f", max {format_number(summary.max, digits=6)}, {summary.count} points"
    )


# -- runs compare ----------------------------------------------------------------------


def render_comparison(comparison: Comparison) -> str:
    """Every section as a table, differing rows marked `*`; packages that differ only."""
    ids = [run.id for run in comparison.runs]
    lines = ["runs"]
    runs = comparison.runs
    lines += _indent(
        render(
            [
                Column("run", [Cell(run.id) for run in runs]),
                Column("name", [Cell(printable(run.name)) for run in runs], max_width=30),
                Column("project", [Cell(printable(run.project)) for run in runs], max_width=20),
                Column("status", [Cell(run.status) for run in runs]),
            ]
        )
    )
    lines += _section("params", comparison.params, ids)
    lines += _metrics(comparison.metrics, ids)
    lines += _section("code", comparison.code, ids)
    for index in range(1, len(ids)):
        if comparison.on_first_commit(index) and comparison.patch_diff(index) is not None:
            lines.append(
                f"  uncommitted changes of {ids[0]} and {ids[index]} differ: "
                f"polytrack runs diff {ids[0]} {ids[index]} shows how"
            )
    lines += _section("data", comparison.data, ids)
    differing = tuple(row for row in comparison.packages if row.differs)
    same = len(comparison.packages) - len(differing)
    lines += _section("packages", differing, ids, note=f"{same} the same")
    lines += _section("environment", comparison.environment, ids)
    lines += _section("hardware", comparison.hardware, ids)
    return "\n".join(lines)


def _section(
    title: str, rows: Sequence[Row], ids: Sequence[str], *, note: str | None = None
) -> list[str]:
    changed = sum(row.differs for row in rows)
    counts = f"{changed} of {len(rows)} differ" if title != "packages" else f"{changed} differ"
    header = f"{title} ({counts}{', ' + note if note else ''})" if rows or note else title
    lines = ["", header]
    if not rows:
        return [*lines, "  none"]
    columns = [
        Column("", [Cell("*" if row.differs else "") for row in rows]),
        Column("key", [Cell(printable(row.key)) for row in rows], max_width=VALUE_WIDTH),
    ]
    for index, run_id in enumerate(ids):
        cells = [Cell(printable(_show(title, row.key, row.values[index]))) for row in rows]
        columns.append(Column(run_id, cells, max_width=VALUE_WIDTH))
    return lines + _indent(render(columns))


def _metrics(rows: Sequence[MetricRow], ids: Sequence[str]) -> list[str]:
    changed = sum(row.differs for row in rows)
    lines = ["", f"metrics ({changed} of {len(rows)} differ)" if rows else "metrics"]
    if not rows:
        return [*lines, "  none"]
    marks: list[Cell] = []
    keys: list[Cell] = []
    runs: list[Cell] = []
    numbers: dict[str, list[Cell]] = {"last": [], "min": [], "max": [], "count": []}
    for row in rows:
        for index, (run_id, summary) in enumerate(zip(ids, row.summaries, strict=True)):
            marks.append(Cell("*" if row.differs and index == 0 else ""))
            keys.append(Cell(printable(row.key) if index == 0 else ""))
            runs.append(Cell(run_id))
            for name, cells in numbers.items():
                if summary is None:
                    cells.append(Cell(MISSING, numeric=True))
                elif name == "count":
                    cells.append(Cell(str(summary.count), numeric=True))
                else:
                    value = getattr(summary, name)
                    cells.append(Cell(format_number(value, digits=6), numeric=True))
    columns = [
        Column("", marks),
        Column("key", keys, max_width=VALUE_WIDTH),
        Column("run", runs),
        *(Column(name, cells) for name, cells in numbers.items()),
    ]
    return lines + _indent(render(columns))


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


# -- runs diff -------------------------------------------------------------------------


def render_diff(comparison: Comparison) -> str:
    """What differs between the first two runs, as a diff: `- ` the first's values, `+ `
    the second's, a `@@ section @@` line before each section; "" when nothing differs."""
    differences = comparison.differences()
    a, b = comparison.runs[0], comparison.runs[1]
    body: list[str] = []
    for section in _DIFF_SECTIONS:
        lines: list[str] = []
        if section == "metrics":
            for metric in differences.metrics:
                first_metric, second_metric = metric.summaries[0], metric.summaries[1]
                lines += _pair(
                    metric.key,
                    None if first_metric is None else _metric(first_metric),
                    None if second_metric is None else _metric(second_metric),
                )
        else:
            for row in getattr(differences, section):
                first, second = row.values[0], row.values[1]
                lines += _pair(
                    row.key,
                    None if _absent(first) else _show(section, row.key, first, short=False),
                    None if _absent(second) else _show(section, row.key, second, short=False),
                )
        if section == "code" and not comparison.on_first_commit(1):
            commits = next((row.values for row in comparison.code if row.key == "commit"), None)
            if commits is not None and not any(_absent(c) or c is None for c in commits[:2]):
                lines.append(f"  (git diff {commits[0]} {commits[1]} shows the committed changes)")
        if lines:
            body += [f"@@ {section} @@", *lines]
    patch = comparison.patch_diff(1) if comparison.on_first_commit(1) else None
    if patch:
        body += ["@@ uncommitted changes @@", patch.rstrip("\n")]
    if not body:
        return ""
    header = [
        f"--- run {a.id}  {printable(a.name)}",
        f"+++ run {b.id}  {printable(b.name)}",
    ]
    return "\n".join(header + body)


def _absent(value: Any) -> bool:
    from polytrack.history.compare import ABSENT

    return value is ABSENT


def _pair(key: str, first: str | None, second: str | None) -> list[str]:
    """`- key: first` and `+ key: second`, leaving out the side a run lacks (None)."""
    lines = []
    if first is not None:
        lines.append(f"- {printable(key)}: {printable(first)}")
    if second is not None:
        lines.append(f"+ {printable(key)}: {printable(second)}")
    return lines
