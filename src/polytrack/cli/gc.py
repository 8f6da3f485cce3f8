"""`polytrack gc`: delete the blobs no run refers to, and runs long in the trash."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Final

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command
from polytrack.cli._snapshot import format_bytes

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["parse_age", "register"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_AGE: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def register(commands: Subcommands, parent: Parser) -> None:
    gc = add_command(
        commands,
        parent,
        "gc",
        help="free the space of unused artifacts and old trash",
        description=(
            "Delete the blobs (artifact and model files) that no run refers to, in the\n"
            "store or in the trash: a trashed run keeps its files until it is purged.\n"
            "With --older-than, also purge the runs trashed longer ago than that.\n"
            "Blobs written in the last hour are kept (a live run may be logging them).\n\n"
            "examples:\n"
            "  polytrack gc --dry-run\n"
            "  polytrack gc --older-than 30d"
        ),
    )
    gc.add_argument(
        "--older-than",
        metavar="AGE",
        type=parse_age,
        help="purge runs trashed more than AGE ago: 30d, 12h, 2w, 90m, 45s",
    )
    gc.add_argument(
        "--dry-run", action="store_true", help="say what would be freed; delete nothing"
    )
    gc.set_defaults(handler=collect)


def parse_age(text: str) -> float:
    """`30d` -> seconds; argparse reports a bad one."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected an age like 30d, 12h or 90m; got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def collect(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.history.manage import gc

    report = gc(older_than=args.older_than, dry_run=args.dry_run, home=ctx.home)
    verb = "would free" if report.dry_run else "freed"
    if report.dry_run:
        for digest in report.blobs:
            ctx.out(f"blob {digest}")
        for run_id in report.purged:
            ctx.out(f"run {run_id}")
    ctx.out(
        f"{verb} {format_bytes(report.freed)}: {len(report.blobs)} unused blobs "
        f"({format_bytes(report.blob_bytes)}), {len(report.purged)} trashed runs "
        f"({format_bytes(report.run_bytes)}); {report.kept_blobs} blobs kept"
    )
    return 0
