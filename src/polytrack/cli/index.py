"""`polytrack index rebuild`: the index is a cache of the run files; rebuild it at will."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["rebuild_index", "register"]


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `index rebuild` to the `polytrack` parser."""
    index = add_command(
        commands,
        parent,
        "index",
        help="maintain the store's index",
        description="The index (index.sqlite3) is a cache of the run directories.",
    )
    actions = index.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = add_command(
        actions,
        index,
        "rebuild",
        help="index every run directory again",
        description="Forget everything indexed and read every run directory again.",
    )
    rebuild.set_defaults(handler=rebuild_index)


def rebuild_index(args: argparse.Namespace, context: Context) -> int:
    """Rebuild the index of `context.home` and say how many runs it holds."""
    from polytrack.store.local import LocalStore

    if not (context.home / "runs").is_dir():
        context.note(f"there is no store at {context.home}")
        return 0
    started = time.perf_counter()
    with LocalStore.open(context.home) as store:
        count = store.rebuild()
    context.note(f"indexed {count} runs in {time.perf_counter() - started:.2f} s")
    return 0
