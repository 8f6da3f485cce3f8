"""`polytrack runs rm|restore|rename|tag|untag|note`: changing recorded runs.

Each command is a thin layer over `polytrack.history.manage` (imported when it runs), which
records every change as an event in the run's journal; see `docs/store.md`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command
from polytrack.cli.completion import set_run_completer
from polytrack.errors import InvalidInputError

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["register"]

_RUN_HELP = "id, unique id prefix, or name"


def register(actions: Subcommands, runs: Parser) -> None:
    """Add the commands that change runs under `polytrack runs`."""
    rm = add_command(
        actions,
        runs,
        "rm",
        help="move runs to the trash (or delete them with --purge)",
        description=(
            "Move runs to the trash, which `runs ls` and the API skip; `runs restore`\n"
            "brings one back, `runs ls --trash` lists them. With --purge, delete them for\n"
            "good (asks first unless --yes). A run being recorded cannot be removed.\n\n"
            "examples:\n"
            "  polytrack runs rm brave-otter-3\n"
            "  polytrack runs rm --purge --yes a1b2c3d4"
        ),
    )
    set_run_completer(rm.add_argument("runs", metavar="RUN", nargs="+", help=_RUN_HELP))
    rm.add_argument("--project", metavar="P", help="look names up in project P only")
    rm.add_argument("--purge", action="store_true", help="delete for good, trash included")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask before --purge")
    rm.set_defaults(handler=remove_runs)

    restore = add_command(actions, runs, "restore", help="bring a run back from the trash")
    set_run_completer(
        restore.add_argument("run", metavar="RUN", help=_RUN_HELP + " (of a run in the trash)")
    )
    restore.add_argument("--project", metavar="P", help="look names up in project P only")
    restore.set_defaults(handler=restore_run)

    rename = add_command(actions, runs, "rename", help="give a run a new name")
    set_run_completer(rename.add_argument("run", metavar="RUN", help=_RUN_HELP))
    rename.add_argument("name", metavar="NEW", help="the new name")
    rename.add_argument("--project", metavar="P", help="look names up in project P only")
    rename.set_defaults(handler=rename_run)

    for action, verb in (("tag", "add tags to a run"), ("untag", "remove tags from a run")):
        parser = add_command(actions, runs, action, help=verb)
        set_run_completer(parser.add_argument("run", metavar="RUN", help=_RUN_HELP))
        parser.add_argument("tags", metavar="TAG", nargs="+")
        parser.add_argument("--project", metavar="P", help="look names up in project P only")
        parser.set_defaults(handler=retag_run, untag=action == "untag")

    note = add_command(actions, runs, "note", help="set (or with '' clear) a run's notes")
    set_run_completer(note.add_argument("run", metavar="RUN", help=_RUN_HELP))
    note.add_argument("text", metavar="TEXT", help="the notes; '' clears them")
    note.add_argument("--project", metavar="P", help="look names up in project P only")
    note.set_defaults(handler=note_run)


def remove_runs(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack runs rm RUN...`: to the trash, or gone with --purge."""
    from polytrack.history.manage import delete_run

    if args.purge and not args.yes:
        _confirm(ctx, f"delete {len(args.runs)} run(s) for good, files and all?")
    for ref in args.runs:
        run_id = delete_run(ref, purge=args.purge, project=args.project, home=ctx.home)
        ctx.out(f"{'purged' if args.purge else 'trashed'} {run_id}")
    if not args.purge:
        ctx.note("`polytrack runs restore RUN` brings a run back; `polytrack gc` empties the trash")
    return 0


def restore_run(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.history.manage import restore_run as restore

    view = restore(args.run, project=args.project, home=ctx.home)
    ctx.out(f"restored {view.id} ({view.name})")
    return 0


def rename_run(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.history.manage import rename_run as rename

    view = rename(args.run, args.name, project=args.project, home=ctx.home)
    ctx.out(f"renamed {view.id} to {view.name}")
    return 0


def retag_run(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.history.manage import tag_run, untag_run

    change = untag_run if args.untag else tag_run
    view = change(args.run, *args.tags, project=args.project, home=ctx.home)
    ctx.out(f"{view.id} tags: {', '.join(view.tags) or '-'}")
    return 0


def note_run(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.history.manage import set_note

    view = set_note(args.run, args.text, project=args.project, home=ctx.home)
    ctx.out(f"{view.id} notes {'set' if view.notes else 'cleared'}")
    return 0


def _confirm(ctx: Context, question: str) -> None:
    """Ask on the terminal; without one (a script, a pipe), refuse: say --yes instead.

    Raises:
        InvalidInputError: no terminal to ask, or the answer was not yes.
    """
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise InvalidInputError(f"{question} Not asked without a terminal: pass --yes")
    ctx.stderr.write(f"{question} [y/N] ")
    ctx.stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise InvalidInputError("nothing was deleted")
