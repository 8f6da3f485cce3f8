"""`polytrack reproduce RUN`: check out a run's code, check its data and environment, and
with `--run` run it again and compare the metrics.

Sections go to stdout as each step ends (checkout, params, data, environment, then
polyaxonfile and rerun when asked); the rerun's own output goes to stderr, each line
behind `  | `. The exit status is 1 when the checkout, the Polyaxonfile or the rerun
fails (the rerun exits non-zero, or cannot be started: a run recorded outside git,
redacted arguments without values); data or environment drift alone is reported and
exits 0: it is what the report is for.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from polytrack.cli._context import Context
from polytrack.cli._format import format_value, printable
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.history.compare import MetricDelta, MetricsCheck
    from polytrack.history.reproduce import Checkout, DataCheck, EnvironmentDrift
    from polytrack.history.runs import RunView

__all__ = ["register", "reproduce"]

_SHOWN_FILES = 20  # per changed directory
_SHOWN_PACKAGES = 30  # per kind of drift


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `reproduce` to the `polytrack` parser."""
    parser = add_command(
        commands,
        parent,
        "reproduce",
        help="check out a run's code and compare its data and environment; --run reruns it",
        description=(
            "Check out the run's commit into a new working tree and apply the diff it\n"
            "stored; write its params to polytrack-params.json there; check each data ref\n"
            "against what its path holds now; list the packages and Python that differ\n"
            "from the run's. With --run, run the entrypoint again there with the same\n"
            "argv, as a new run linked to the original, and compare the metrics.\n\n"
            "Exit status 1 when the checkout, the Polyaxonfile or the rerun fails; data\n"
            "and environment drift are reported with status 0."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="a run id, unique id prefix, or name")
    parser.add_argument("--project", help="look RUN up in this project only")
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="the new working tree (default ./reproduce-<run id>); must be new or empty",
    )
    parser.add_argument(
        "--run",
        dest="rerun",
        action="store_true",
        help="run the entrypoint again and compare the two runs' metrics",
    )
    parser.add_argument(
        "--secret-env",
        dest="secret_env",
        metavar="VARIABLE",
        action="append",
        default=[],
        help="the value of a redacted argument, read from this environment variable; "
        "repeat for each, in order",
    )
    parser.add_argument(
        "--polyaxonfile",
        metavar="OUT",
        help="also write a Polyaxonfile that runs the same thing on Kubernetes",
    )
    parser.add_argument(
        "--image",
        help="the Polyaxonfile's container image (default python:<the run's major.minor>)",
    )
    parser.add_argument(
        "--export",
        choices=("script", "notebook"),
        help="only write the code a notebook run ran, cell by cell, as a script or a "
        "notebook (to -o FILE, default stdout); no checkout",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="where --export writes")
    parser.set_defaults(handler=reproduce)


def reproduce(args: argparse.Namespace, context: Context) -> int:
    """Reproduce `args.run`; print each section; 1 when a step failed."""
    from polytrack.history import reproduce as rp
    from polytrack.history.reproduce_spec import polyaxonfile
    from polytrack.history.runs import get_run
    from polytrack.settings import Settings

    run = get_run(args.run, project=args.project, home=context.home)
    if args.export:
        return _export(context, run, args.export, args.output)
    cache_dir = Settings.from_env(context.environ).cache_dir
    dest = Path(args.dir) if args.dir else Path(f"reproduce-{run.id}")
    failures: list[str] = []
    context.out(f"reproducing run {run.id} ({printable(run.project)}/{printable(run.name)})")

    done: Checkout | None = None
    try:
        done = rp.checkout(run, dest, environ=context.environ)
    except rp.ReproduceError as exc:
        failures.append(str(exc))
        _section(context, "checkout", [("failed", str(exc))])
    else:
        _section(context, "checkout", _checkout_rows(done))

    if done is not None:
        try:
            written = rp.write_params(run, done.dest)
        except rp.ReproduceError as exc:
            failures.append(str(exc))
            _section(context, "params", [("failed", str(exc))])
        else:
            _section(context, "params", [("file", f"{written} ({len(run.params)} params)")])

    _data(context, rp.check_data(run, cache_dir=cache_dir))
    _environment(context, rp.environment_drift(run, cache_dir=cache_dir))

    if args.polyaxonfile:
        try:
            text = polyaxonfile(run, image=args.image)
        except rp.ReproduceError as exc:
            failures.append(str(exc))
            _section(context, "polyaxonfile", [("failed", str(exc))])
        else:
            Path(args.polyaxonfile).write_text(text, encoding="utf-8")
            _section(context, "polyaxonfile", [("file", args.polyaxonfile)])

    if args.rerun:
        failure = _rerun(context, run, done, args.secret_env)
        if failure:
            failures.append(failure)
    for failure in failures:
        context.note(f"polytrack: error: {failure}")
    return 1 if failures else 0


def _export(context: Context, run: RunView, fmt: str, output: str | None) -> int:
    """Write the notebook code of `run` to `output` (stdout if None); 1 if it has none."""
    from polytrack.history import reproduce as rp

    try:
        text = rp.export_code(run, fmt)
    except rp.ReproduceError as exc:
        context.note(f"polytrack: error: {exc}")
        return 1
    if output is None:
        context.out(text.rstrip("\n"))
    else:
        Path(output).write_text(text, encoding="utf-8")
        context.note(f"wrote the {fmt} of run {run.id} to {output}")
    return 0


def _rerun(context: Context, run: RunView, done: Checkout | None, variables: Sequence[str]) -> str:
    """Run it again and print the comparison; why it failed, or "" if it did not."""
    from polytrack.history import reproduce as rp

    if done is None:
        message = "refused: there is no checkout to run it in (see checkout above)"
        _section(context, "rerun", [("failed", message)])
        return f"cannot run it again: {message}"
    missing = [name for name in variables if name not in context.environ]
    if missing:
        message = f"--secret-env names unset variables: {', '.join(missing)}"
        _section(context, "rerun", [("failed", message)])
        return message
    secrets = [context.environ[name] for name in variables]
    try:
        result = rp.rerun(
            run,
            done.dest,
            home=context.home,
            secrets=secrets,
            environ=context.environ,
            output=lambda line: context.note(f"  | {line}"),
        )
    except rp.ReproduceError as exc:
        _section(context, "rerun", [("failed", f"refused: {exc}")])
        return f"cannot run it again: {exc}"
    replay = result.replay
    rows = [
        ("run", f"{replay.run_id} (reproduces {run.id})"),
        ("command", " ".join(replay.argv)),
        ("cwd", str(replay.cwd)),
        ("exit status", str(result.returncode)),
    ]
    rows += [("set", f"{name}={value}") for name, value in sorted(replay.env.items())]
    rows += [("note", note) for note in replay.notes]
    _section(context, "rerun", rows)
    _comparison(context, result.comparison)
    if result.returncode != 0:
        return f"the rerun exited with status {result.returncode}"
    if result.comparison is None:
        return f"the rerun recorded no run (it never called polytrack.init with id {replay.run_id})"
    return ""


def _checkout_rows(done: Checkout) -> list[tuple[str, str]]:
    origin = (
        f"worktree of {done.origin}" if done.source == "worktree" else f"clone of {done.origin}"
    )
    branch = f" (branch {done.branch})" if done.branch else ""
    rows = [("commit", done.commit + branch), ("from", origin)]
    if done.diff_file is not None:
        cut = ", truncated" if done.diff_truncated else ""
        rows.append(("diff", f"{done.diff_file} applied ({done.diff_bytes} bytes{cut})"))
    else:
        rows.append(("diff", "none (a clean tree)"))
    if done.untracked:
        more = " and more" if done.untracked_truncated else ""
        rows.append(("untracked", "not reproducible: " + ", ".join(done.untracked) + more))
    rows += [("note", note) for note in done.notes]
    rows.append(("dest", str(done.dest)))
    return rows


def _data(context: Context, checks: Sequence[DataCheck]) -> None:
    context.out("")
    context.out("data")
    if not checks:
        context.out("  none")
        return
    for check in checks:
        ref = check.ref
        where = f"  {printable(ref.path)}" if ref.path else ""
        line = f"  {check.status:<9} {printable(ref.name)} ({ref.role} {ref.kind}){where}"
        if check.reason:
            line += f": {check.reason}"
        context.out(line)
        for change in check.files[:_SHOWN_FILES]:
            context.out(f"    {change.status:<7} {printable(change.path)}")
        if len(check.files) > _SHOWN_FILES:
            context.out(f"    and {len(check.files) - _SHOWN_FILES} more files")


def _environment(context: Context, drift: EnvironmentDrift) -> None:
    context.out("")
    context.out("environment")
    if not drift.recorded:
        context.out("  unknown: the run recorded no environment")
        return
    if not drift.drifted:
        context.out("  no drift: the same Python and packages")
        return
    if drift.python is not None:
        context.out(f"  python   {drift.python[0]} -> {drift.python[1]}")
    kinds: list[tuple[str, list[str]]] = [
        ("changed", [f"{n} {old} -> {new}" for n, (old, new) in drift.changed.items()]),
        ("removed", [f"{n} {version}" for n, version in drift.removed.items()]),
        ("added", [f"{n} {version}" for n, version in drift.added.items()]),
    ]
    for kind, items in kinds:
        for item in items[:_SHOWN_PACKAGES]:
            context.out(f"  {kind:<8} {printable(item)}")
        if len(items) > _SHOWN_PACKAGES:
            context.out(f"  {kind:<8} and {len(items) - _SHOWN_PACKAGES} more")


def _comparison(context: Context, check: MetricsCheck | None) -> None:
    context.out("")
    context.out("metrics")
    if check is None:
        context.out("  none: the rerun recorded no run")
        return
    if not check.deltas:
        context.out("  none: neither run logged a metric")
        return
    count = len(check.deltas)
    if check.identical:
        context.out(f"  identical: {count} metrics, bit for bit at every step")
    else:
        context.out(f"  {len(check.differing())} of {count} metrics differ")
    width = max(len(printable(delta.key)) for delta in check.deltas)
    for delta in check.deltas:
        context.out(f"  {printable(delta.key).ljust(width)}  {_delta(delta)}")


def _delta(delta: MetricDelta) -> str:
    """One metric of the original (`a`) against the reproduction (`b`), in words."""
    original, reproduction = delta.last
    if delta.identical:
        return f"identical (last {_number(original)})"
    if reproduction is None:
        return f"only in the original (last {_number(original)})"
    if original is None:
        return f"only in the reproduction (last {_number(reproduction)})"
    lasts = f"last {_number(original)} vs {_number(reproduction)}"
    note = f", {delta.note}" if delta.note else ""
    if delta.max_abs_diff is None:
        return f"different ({lasts}{note})"
    return f"max abs difference {_number(delta.max_abs_diff)} ({lasts}{note})"


def _number(value: float | None) -> str:
    return "-" if value is None else format_value(value, digits=None)


def _section(context: Context, title: str, rows: Sequence[tuple[str, str]]) -> None:
    context.out("")
    context.out(title)
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        context.out(f"  {label.ljust(width)}  {printable(value)}")
