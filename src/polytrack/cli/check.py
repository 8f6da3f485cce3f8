"""`polytrack check`: validate a Polyaxonfile (and presets) and print it resolved."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["check", "register"]


class _ParamAction(argparse.Action):
    """Collect `-P NAME=VALUE` into a dict; a malformed or repeated one is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        text = str(values)
        name, equals, value = text.partition("=")
        if not equals or not name.strip():
            parser.error(f"argument -P/--param: expected NAME=VALUE, got {text!r}")
        params: dict[str, str] = dict(getattr(namespace, self.dest) or {})
        if name in params:
            parser.error(f"argument -P/--param: {name} is given twice")
        params[name] = value
        setattr(namespace, self.dest, params)


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `check` to the `polytrack` parser."""
    parser = add_command(
        commands,
        parent,
        "check",
        help="validate a Polyaxonfile and print it resolved",
        description=(
            "Validate a Polyaxonfile (version 1.1, kind component or operation) and print it\n"
            "resolved: presets merged, params converted, templates rendered where their\n"
            "values are known. Notes (the run kind, the matrix size) go to stderr.\n"
            "With --schemas, also compile it as `polytrack run` would and check every\n"
            "manifest against the Kubernetes schemas (needs the kube extra)."
        ),
    )
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="the Polyaxonfile; repeat to patch it with presets, in order",
    )
    parser.add_argument(
        "-P",
        "--param",
        dest="params",
        action=_ParamAction,
        default={},
        metavar="NAME=VALUE",
        help="a value for an input, converted to its type; repeatable",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json"),
        default="yaml",
        help="how to print the resolved spec (default: yaml)",
    )
    parser.add_argument(
        "--schemas",
        action="store_true",
        help="also check the compiled manifests against the Kubernetes schemas (kube extra)",
    )
    parser.add_argument(
        "--kube-version",
        metavar="VERSION",
        help="the Kubernetes version whose schemas --schemas uses (default: the newest shipped)",
    )
    parser.set_defaults(handler=check)


def check(args: argparse.Namespace, context: Context) -> int:
    """Check `args.files` with `args.params`; print the resolved spec, notes on stderr."""
    from polytrack.spec import check as check_spec

    report = check_spec(args.files, args.params)
    if args.output == "json":
        from polytrack.cli._format import to_json

        context.out(to_json(report.document))
    else:
        context.out(_yaml(report.document).rstrip("\n"))
    for note in report.notes:
        context.note(note)
    if args.schemas or args.kube_version:
        _check_schemas(args, context)
    return 0


# A matrix's runs differ only by their params: checking this many of them is enough to
# find what the file does wrong, and keeps `check` quick on a grid of thousands.
_MAX_UNITS = 100


def _check_schemas(args: argparse.Namespace, context: Context) -> None:
    """Compile every unit `polytrack run` would submit and check its manifests.

    Raises:
        LaunchError: a manifest fails the schemas (naming the object and the field), an
            operation cannot be compiled, or the kube extra is missing.
    """
    from polytrack.errors import UnsupportedMatrixError
    from polytrack.launch import schemas
    from polytrack.launch.manifests import Target, compile_operation
    from polytrack.launch.plan import make_plan

    version = args.kube_version or (schemas.default_version() if schemas.available() else None)
    schemas.check_manifests([], version=version)  # the extra and the version, before work
    try:
        plan = make_plan(args.files, args.params)
    except UnsupportedMatrixError as exc:
        context.note(f"schemas: not checked: {exc}")
        return
    count = 0
    for unit in plan.units[:_MAX_UNITS]:
        target = Target(run_id="00000000", run_name=plan.run_name(unit), project="check")
        workload = compile_operation(plan.resolve(unit, target), target)
        schemas.check_manifests(workload.manifests, version=version)
        count += len(workload.manifests)
    checked = min(len(plan.units), _MAX_UNITS)
    of = f" (the first {checked} of {len(plan.units)} runs)" if checked < len(plan.units) else ""
    context.note(f"schemas: {count} objects pass the Kubernetes {version} schemas{of}")


def _yaml(data: Any) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Writes multi-line strings (file contents, scripts) as literal blocks."""

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
