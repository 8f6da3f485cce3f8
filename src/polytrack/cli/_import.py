"""`polytrack import KIND SOURCE`: bring MLflow, TensorBoard, W&B or Polyaxon runs into the
store (`polytrack.importers`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command
from polytrack.errors import InvalidInputError

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["register"]

_KINDS = ("mlflow", "tensorboard", "wandb", "polyaxon")


def register(commands: Subcommands, parent: Parser) -> None:
    command = add_command(
        commands,
        parent,
        "import",
        help="import runs from MLflow, TensorBoard, W&B or Polyaxon",
        description=(
            "Import the runs of another tracker into the store, with their original\n"
            "times, params, metrics, statuses and artifacts. Importing again adds only\n"
            "what is new (a run that grew, an import that was cut short).\n\n"
            "examples:\n"
            "  polytrack import mlflow ./mlruns\n"
            "  polytrack import mlflow sqlite:///mlflow.db --experiment mnist --dry-run\n"
            "  polytrack import mlflow http://localhost:5000 --project from-mlflow\n"
            "  polytrack import tensorboard ./runs"
        ),
    )
    command.add_argument("kind", choices=_KINDS, help="what recorded the runs")
    command.add_argument("source", help="a directory, a file or a tracking URI")
    command.add_argument(
        "--experiment",
        action="append",
        metavar="NAME",
        help="MLflow: import only this experiment (repeatable)",
    )
    command.add_argument("--project", help="put every run in this project")
    command.add_argument(
        "--dry-run", action="store_true", help="say what would be imported; write nothing"
    )
    command.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="draw a progress bar even when stderr is not a terminal",
    )
    command.add_argument("--limit", type=int, metavar="N", help="import at most N runs")
    command.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace, ctx: Context) -> int:
    from polytrack.importers import import_source
    from polytrack.importers._progress import Progress

    options: dict[str, object] = {}
    if args.experiment:
        if args.kind != "mlflow":
            raise InvalidInputError("--experiment is for mlflow sources")
        options["experiment"] = args.experiment
    with ctx.warnings_as_notes():
        summary = import_source(
            args.kind,
            args.source,
            options,
            project=args.project,
            home=ctx.home,
            dry_run=args.dry_run,
            progress=Progress.choose(args.progress, ctx.stderr),
            limit=args.limit,
        )
    for problem in summary.problems:
        ctx.note(f"polytrack: could not import {problem}")
    ctx.out(summary.describe())
    return 1 if summary.problems and not summary.runs_seen else 0
