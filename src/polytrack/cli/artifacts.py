"""`polytrack artifacts ls` and `polytrack artifacts get`: a run's artifacts and models.

Reads through the public API (`polytrack.get_run`, `RunView.artifacts`), as a user would;
nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from polytrack.cli._context import Context
from polytrack.cli._format import MISSING, printable, to_json
from polytrack.cli._parser import Parser, add_command
from polytrack.cli._snapshot import format_bytes
from polytrack.cli._table import Cell, Column, render
from polytrack.errors import RunNotFoundError

if TYPE_CHECKING:
    from polytrack.artifacts import ArtifactView
    from polytrack.cli._parser import Subcommands
    from polytrack.history.runs import RunView

__all__ = ["get_artifact", "list_artifacts", "register"]

DIGEST_SHOWN = 12  # hex digits of a digest in the table, as git shortens commits


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `artifacts ls` and `artifacts get` to the `polytrack` parser."""
    artifacts = add_command(
        commands,
        parent,
        "artifacts",
        help="list and fetch a run's artifacts and models",
        description="List the artifacts and models a run logged, and fetch them back.",
    )
    actions = artifacts.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = add_command(
        actions,
        artifacts,
        "ls",
        help="list a run's artifacts as a table",
        description=(
            "List the artifacts and models RUN logged, in the order logged: name, kind,\n"
            "role, size, number of files and the start of the digest.\n\n"
            "RUN is a run id, a unique prefix of one, or a run name (within --project)."
        ),
    )
    ls.add_argument("run", metavar="RUN", help="id, unique id prefix, or name")
    ls.add_argument("--project", metavar="P", help="look names up in project P only")
    ls.add_argument("--json", action="store_true", help="print a JSON array of whole records")
    ls.set_defaults(handler=list_artifacts)

    get = add_command(
        actions,
        artifacts,
        "get",
        help="write an artifact's files back out",
        description=(
            "Rebuild artifact NAME of RUN from the store under DIR (default: the current\n"
            "directory) and print the path written: a file as DIR/<file name>, a\n"
            "directory as DIR/NAME/. Every file is checked against its digest first.\n\n"
            "example:\n"
            "  polytrack artifacts get a1b2c3d4 model --dir restored/"
        ),
    )
    get.add_argument("run", metavar="RUN", help="id, unique id prefix, or name")
    get.add_argument("name", metavar="NAME", help="the artifact's name")
    get.add_argument("--project", metavar="P", help="look names up in project P only")
    get.add_argument("--dir", metavar="DIR", default=".", help="where to write (default: .)")
    get.set_defaults(handler=get_artifact)


def _run(args: argparse.Namespace, ctx: Context) -> RunView:
    if not ctx.home.is_dir():
        raise RunNotFoundError(f"no run {args.run!r}: there is no store at {ctx.home}")
    from polytrack.history.runs import get_run  # numpy and SQLite: only when reading

    return get_run(args.run, project=args.project, home=ctx.home)


def list_artifacts(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack artifacts ls RUN`: a table (or a JSON array) of the run's artifacts."""
    run = _run(args, ctx)
    views = run.artifacts()
    if args.json:
        ctx.out(to_json([_record(view) for view in views]))
    elif views:
        ctx.out(
            render(
                [
                    Column("name", [Cell(printable(v.name)) for v in views], max_width=40),
                    Column("kind", [Cell(printable(v.kind)) for v in views], max_width=20),
                    Column("role", [Cell(v.role) for v in views]),
                    Column("size", [Cell(format_bytes(v.size), numeric=True) for v in views]),
                    Column("files", [Cell(str(len(v.files)), numeric=True) for v in views]),
                    Column("digest", [Cell(_short(v.digest)) for v in views]),
                ]
            )
        )
    else:
        ctx.note(f"run {run.id} has no artifacts")
    return 0


def get_artifact(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack artifacts get RUN NAME`: write the artifact under --dir, print where."""
    written = _run(args, ctx).artifact(args.name).download(args.dir)
    ctx.out(str(written))
    return 0


def _short(digest: str) -> str:
    hexdigest = digest.removeprefix("sha256:")
    return hexdigest[:DIGEST_SHOWN] if hexdigest else MISSING


def _record(view: ArtifactView) -> dict[str, Any]:
    return {
        "name": view.name,
        "kind": view.kind,
        "role": view.role,
        "digest": view.digest,
        "size": view.size,
        "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in view.files],
        "source": view.source,
        "framework": view.framework,
        "metadata": view.metadata,
        "logged_at": view.logged_at,
    }
