"""`polytrack index rebuild`: the index is a cache of the run files; rebuild it at will."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Final

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["REBUILD_BUSY_TIMEOUT", "rebuild_index", "register"]

# Seconds `index rebuild` waits for another process's write lock: longer than a reader,
# which has the run files to fall back on, while this command has nothing else to do.
REBUILD_BUSY_TIMEOUT: Final = 2.0


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
    """Rebuild the index of `context.home` and say how many runs it holds.

    A damaged index is set aside first (a note says where). One that another process
    holds, or that cannot be written, is an error: an index rebuilt in memory would be
    thrown away at once.
    """
    from polytrack.errors import StoreError
    from polytrack.store.index import IndexBusyError
    from polytrack.store.local import LocalStore, check_home

    check_home(context.home)  # NotAStoreError: never write an index into mlruns/
    if not (context.home / "runs").is_dir():
        context.note(f"there is no store at {context.home}")
        return 0
    started = time.perf_counter()
    try:
        with (
            context.warnings_as_notes(),
            LocalStore.open(
                context.home, busy_timeout=REBUILD_BUSY_TIMEOUT, memory_fallback=False
            ) as store,
        ):
            count = store.rebuild()
    except IndexBusyError as exc:
        raise StoreError(
            f"{exc}; run this again once it lets go (readers answer from the run files meanwhile)"
        ) from exc
    context.note(f"indexed {count} runs in {time.perf_counter() - started:.2f} s")
    return 0
