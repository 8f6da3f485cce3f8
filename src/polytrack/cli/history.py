"""`polytrack runs history RUN KEY [KEY ...]`: metric series as a table, CSV or JSON.

The keys' points are aligned by step: one row per step that any key has, `-` where a key
has no point at that step (a later point at the same step wins, as `runs ls` shows the
last value). Above the table, a sparkline per key draws the whole series.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polytrack.cli._context import Context
from polytrack.cli._format import (
    MISSING,
    format_count,
    format_number,
    json_safe,
    printable,
    sparkline,
    to_json,
)
from polytrack.cli._parser import Parser, add_command
from polytrack.cli._table import Cell, Column, render
from polytrack.cli.completion import set_run_completer

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["register", "show_history"]

SPARK_WIDTH = 40


def register(actions: Subcommands, runs: Parser) -> None:
    parser = add_command(
        actions,
        runs,
        "history",
        help="print metric series aligned by step",
        description=(
            "Print the points of one or more metrics of a run, one row per step, with a\n"
            "sparkline of each series (∅ marks NaN, ↑ and ↓ infinities).\n\n"
            "examples:\n"
            "  polytrack runs history brave-otter-3 loss val/loss --tail 20\n"
            "  polytrack runs history a1b2 loss --csv > loss.csv"
        ),
    )
    set_run_completer(
        parser.add_argument("run", metavar="RUN", help="id, unique id prefix, or name")
    )
    parser.add_argument("keys", metavar="KEY", nargs="+", help="metric keys")
    parser.add_argument("--project", metavar="P", help="look names up in project P only")
    rows = parser.add_mutually_exclusive_group()
    rows.add_argument("--tail", metavar="N", type=_positive, help="only the last N rows")
    rows.add_argument("--head", metavar="N", type=_positive, help="only the first N rows")
    parser.add_argument("--every", metavar="N", type=_positive, help="only every Nth row")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--csv", action="store_true", help="print CSV: step, then one column per key"
    )
    output.add_argument("--json", action="store_true", help="print a JSON object of the series")
    parser.set_defaults(handler=show_history)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def show_history(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.history.runs import get_run  # numpy and SQLite: only when reading

    with ctx.warnings_as_notes():
        view = get_run(args.run, project=args.project, home=ctx.home)
        series = {key: view.history(key)[:2] for key in dict.fromkeys(args.keys)}
    missing = [key for key, (found, _) in series.items() if not found.size]
    for key in missing:
        close = sorted(view.metrics)[:8]
        ctx.note(f"run {view.id} has no metric {key!r} (it has: {', '.join(close) or 'none'})")
    keys = list(series)
    table: dict[int, dict[str, float]] = {}
    for key, (found, values) in series.items():
        for step, value in zip(found.tolist(), values.tolist(), strict=True):
            table.setdefault(step, {})[key] = value
    steps = sorted(table)
    if args.every:
        steps = steps[:: args.every]
    if args.tail:
        steps = steps[-args.tail :]
    elif args.head:
        steps = steps[: args.head]

    if args.json:
        ctx.out(
            to_json(
                {
                    "run": view.id,
                    "steps": steps,
                    "series": {key: [table[s].get(key) for s in steps] for key in keys},
                }
            )
        )
    elif args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", *keys])
        for step in steps:
            writer.writerow([step, *(_csv(table[step].get(key)) for key in keys)])
        ctx.stdout.write(buffer.getvalue())
    else:
        width = max((len(printable(key)) for key in keys), default=0)
        for key, (_, values) in series.items():
            line = values.tolist()
            if not line:
                continue
            finite = [v for v in line if math.isfinite(v)]
            summary = (
                f"min {format_number(min(finite))}  max {format_number(max(finite))}  "
                if finite
                else ""
            )
            ctx.out(
                f"{printable(key).ljust(width)}  {sparkline(line, SPARK_WIDTH)}  "
                f"{summary}last {format_number(line[-1])}  ({format_count(len(line))} points)"
            )
        if steps:
            ctx.out("")
            ctx.out(render(_columns(steps, keys, table)))
    return 0 if len(missing) < len(keys) else 1


def _columns(
    steps: Sequence[int], keys: Sequence[str], table: dict[int, dict[str, float]]
) -> list[Column]:
    columns = [Column("step", [Cell(str(step), numeric=True) for step in steps])]
    for key in keys:
        cells = []
        for step in steps:
            value = table[step].get(key)
            cells.append(
                Cell(MISSING if value is None else format_number(value, digits=6), numeric=True)
            )
        columns.append(Column(printable(key), cells))
    return columns


def _csv(value: float | None) -> Any:
    if value is None:
        return ""
    return json_safe(value) if not math.isfinite(value) else repr(value)
