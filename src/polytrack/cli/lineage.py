"""`polytrack lineage TARGET`: where a run, dataset, artifact or model came from and what
came of it, as a tree, JSON or Graphviz DOT.

Reads through the public API (`polytrack.lineage`), as a user would; imports it only when
the command runs, so `polytrack --help` does not pay for the store.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Final

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command, whole_number
from polytrack.errors import RunNotFoundError

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["register", "show_lineage"]

FORMATS: Final = ("tree", "json", "dot")


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `lineage` to the `polytrack` parser."""
    parser = add_command(
        commands,
        parent,
        "lineage",
        help="what a run, dataset or model came from, and what came of it",
        description=(
            "Show the lineage of TARGET: the data, artifacts and models runs consumed and\n"
            "produced, and the runs that produced and consumed them, upstream and\n"
            "downstream, to any depth.\n\n"
            "TARGET is a run (id, unique id prefix or name), a digest (sha256:<hex> or a\n"
            "unique prefix), a data/artifact/model name as runs logged it, or a path on\n"
            "disk (hashed, then looked up by content). Without a prefix a run is tried\n"
            "first, then an existing path, a name, a digest; write run:, path:, name: or\n"
            "sha256: before TARGET to say which it is.\n\n"
            "examples:\n"
            "  polytrack lineage train-2\n"
            "  polytrack lineage data/train.csv --direction down\n"
            "  polytrack lineage name:model --depth 2 --format dot | dot -Tsvg > lineage.svg"
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="run, digest, name, or path")
    parser.add_argument(
        "--depth",
        metavar="N",
        type=whole_number,
        default=None,
        help="follow at most N edges from TARGET (a run and its data are one apart)",
    )
    parser.add_argument(
        "--direction",
        choices=("both", "up", "down"),
        default="both",
        help="upstream, downstream, or both (default)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="tree", help="tree (default), json or dot"
    )
    parser.add_argument("--project", metavar="P", help="look run names up in project P only")
    parser.set_defaults(handler=show_lineage)



def show_lineage(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack lineage TARGET`: the graph around TARGET in the chosen format."""
    if not ctx.home.is_dir():
        raise RunNotFoundError(f"nothing is recorded: there is no store at {ctx.home}")
    from polytrack.history.lineage import lineage  # SQLite and the store: only when run

    graph = lineage(
        args.target,
        depth=args.depth,
        direction=args.direction,
        project=args.project,
        home=ctx.home,
    )
    if args.format == "json":
        ctx.out(graph.to_json())
    elif args.format == "dot":
        ctx.out(graph.to_dot())
    else:
        ctx.out(graph.render_tree())
    return 0
