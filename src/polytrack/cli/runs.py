"""`polytrack runs ls` and `polytrack runs show`: recorded runs as tables or as JSON.
(`runs compare` and `runs diff` live in `polytrack.cli.compare`.)

Reads through the public API (`polytrack.runs`, `polytrack.get_run`, imported from
`polytrack.history.runs`), as a user would.
Nothing here imports numpy or cattrs at import time: `main()` imports this module to
build its parser, and `polytrack --help` should not pay for a store it never opens.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
from attrs import frozen

from polytrack.cli._context import Context
from polytrack.cli._format import (
    MISSING,
    format_count,
    format_duration,
    format_number,
    format_time,
    format_value,
    printable,
    to_json,
)
from polytrack.cli._parser import Parser, add_command
from polytrack.cli._snapshot import (
    LOG_TAIL,
    SYSTEM_PREFIX,
    describe_logs,
    describe_snapshot,
    describe_system,
)
from polytrack.cli._table import Cell, Column, render, table_width
from polytrack.cli.compare import register as register_compare
from polytrack.cli.completion import set_run_completer
from polytrack.cli.history import register as register_history
from polytrack.cli.manage import register as register_manage
from polytrack.cli.media import media_columns
from polytrack.errors import RunNotFoundError

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.history.runs import RunView
    from polytrack.models import RunInfo

__all__ = ["Field", "list_runs", "register", "show_run"]

DEFAULT_LIMIT: Final = 50
# `runs ls` adds varying params/metrics only while the table fits this many characters,
# and never more than MAX_VARYING of them: past that a table stops being readable.
TABLE_WIDTH: Final = 120
MAX_VARYING: Final = 6
VALUE_WIDTH: Final = 20  # widest param/metric cell before it is cut

_Getter = Callable[["RunInfo"], Cell]


def _text(read: Callable[[RunInfo], str | None]) -> _Getter:
    return lambda info: Cell(printable(read(info) or MISSING))


def _duration(info: RunInfo) -> float | None:
    return None if info.finished_at is None else info.finished_at - info.created_at


# ANSI SGR colours of statuses on a terminal: green done, red failed, magenta crashed (no
# final record), cyan live, yellow stopped, blue skipped (a DAG operation not run).
STATUS_COLORS: Final = {
    "succeeded": "32",
    "failed": "31",
    "crashed": "35",
    "running": "36",
    "stopped": "33",
    "skipped": "34",
    "created": "2",
}

# name -> (how to read the cell, widest cell before it is cut)
_ATTRIBUTES: Final[dict[str, tuple[_Getter, int | None]]] = {
    "id": (_text(lambda i: i.id), None),
    "name": (_text(lambda i: i.name), 30),
    "project": (_text(lambda i: i.project), 20),
    "status": (lambda i: Cell(i.status, color=STATUS_COLORS.get(i.status)), None),
    "created": (_text(lambda i: format_time(i.created_at)), None),
    "finished": (_text(lambda i: format_time(i.finished_at)), None),
    "updated": (_text(lambda i: format_time(i.updated_at)), None),
    "duration": (lambda i: Cell(format_duration(_duration(i)), numeric=True), None),
    "host": (_text(lambda i: i.host), 20),
    "user": (_text(lambda i: i.user), 16),
    "pid": (lambda i: Cell(str(i.pid), numeric=True), None),
    "attempts": (lambda i: Cell(str(i.attempts), numeric=True), None),
    "tags": (_text(lambda i: ", ".join(i.tags)), 30),
    "notes": (_text(lambda i: i.notes), 40),
    "message": (_text(lambda i: i.message), 40),
    "path": (_text(lambda i: i.path), None),
}
DEFAULT_COLUMNS: Final = ("id", "name", "project", "user", "status", "created", "duration")


_AGGREGATES: Final = ("min", "max", "last", "count")
_AGGREGATE_RE: Final = re.compile(r"(min|max|last|count)\(\s*metrics\.(.+?)\s*\)")


@frozen
class Field:
    """A column of `runs ls`: a run attribute, `params.<key>`, `outputs.<key>`,
    `metrics.<key>` (its last value) or `min|max|last|count(metrics.<key>)`.

    Spelled as in `--where`, so a header can be pasted into a query.
    """

    kind: str  # "attr", "param", "output" or "metric"
    key: str
    aggregate: str = "last"  # of a metric: which summary

    @classmethod
    def parse(cls, text: str) -> Field:
        """`name`, `params.lr`, `metrics.val/loss`, `min(metrics.loss)`; ValueError names
        the choices."""
        text = text.strip()
        match = _AGGREGATE_RE.fullmatch(text)
        if match:
            return cls("metric", match.group(2), match.group(1))
        for kind in ("param", "metric", "output"):
            prefix = f"{kind}s."
            if text.startswith(prefix) and len(text) > len(prefix):
                return cls(kind, text[len(prefix) :])
        if text in _ATTRIBUTES:
            return cls("attr", text)
        choices = ", ".join(
            [*_ATTRIBUTES, "params.<key>", "outputs.<key>", "metrics.<key>", "min(metrics.<key>)"]
        )
        raise ValueError(f"unknown column {text!r} (columns: {choices})")

    @property
    def header(self) -> str:
        if self.kind == "attr":
            return self.key
        if self.kind == "metric" and self.aggregate != "last":
            return f"{self.aggregate}(metrics.{self.key})"
        return f"{self.kind}s.{self.key}"

    def cell(self, info: RunInfo) -> Cell:
        """This field of one run, formatted for the table."""
        if self.kind == "attr":
            return _ATTRIBUTES[self.key][0](info)
        if self.kind in ("param", "output"):
            values = info.params if self.kind == "param" else _outputs(info)
            if self.key not in values:
                return Cell(MISSING, numeric=True)
            value = values[self.key]
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            return Cell(format_value(value), numeric=numeric)
        summary = info.metrics.get(self.key)
        if summary is None:
            return Cell(MISSING, numeric=True)
        if self.aggregate == "count":
            return Cell(format_count(summary.count), numeric=True)
        return Cell(format_number(getattr(summary, self.aggregate)), numeric=True)

    def column(self, infos: Sequence[RunInfo]) -> Column:
        """This field of every run, as a table column."""
        width = _ATTRIBUTES[self.key][1] if self.kind == "attr" else VALUE_WIDTH
        return Column(printable(self.header), [self.cell(i) for i in infos], max_width=width)


def _outputs(info: RunInfo) -> dict[str, Any]:
    """The run's outputs (`log_outputs`): read from its files, as `RunView.outputs` does."""
    outputs = getattr(info, "outputs", None)
    return outputs if isinstance(outputs, dict) else {}


# -- the parser ----------------------------------------------------------------------------


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `runs ls` and `runs show` to the `polytrack` parser."""
    runs = add_command(
        commands,
        parent,
        "runs",
        help="list and inspect recorded runs",
        description="List and inspect the runs recorded in a store.",
    )
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = add_command(
        actions,
        runs,
        "ls",
        help="list runs as a table",
        description=(
            "List runs, newest first: id, name, project, status, created, duration, then\n"
            "the params and last metric values that differ between the listed runs.\n\n"
            "examples:\n"
            "  polytrack runs ls --project mnist --where 'metrics.loss < 0.2'\n"
            "  polytrack runs ls --order-by '-metrics.acc' --limit 5\n"
            "  polytrack runs ls --columns id,name,params.lr,metrics.loss\n\n"
            'With --json, NaN and infinite numbers are written as the strings "NaN",\n'
            '"Infinity" and "-Infinity" (JSON has no such numbers; float() reads them).'
        ),
    )
    ls.add_argument("--project", metavar="P", help="only runs of project P")
    ls.add_dash_value_option(
        "--where",
        metavar="EXPR",
        help="filter, e.g. \"metrics.loss < 0.2 and params.optimizer == 'adam'\"",
    )
    ls.add_dash_value_option(
        "--order-by",
        metavar="EXPR",
        help='sort keys, comma-separated; "-" sorts descending, e.g. "-metrics.acc, created"',
    )
    ls.add_argument(
        "--limit",
        metavar="N",
        type=_non_negative_int,
        default=DEFAULT_LIMIT,
        help=f"show at most N runs (default {DEFAULT_LIMIT}; 0 shows all)",
    )
    ls.add_argument(
        "--trash", action="store_true", help="list the runs in the trash (`runs rm`) instead"
    )
    ls.add_argument(
        "--wide",
        action="store_true",
        help="every varying column, lines not cut to the terminal (the default in a pipe)",
    )
    ls.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour statuses: auto (on a terminal, unless NO_COLOR is set), always, never",
    )
    output = ls.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON array of whole records")
    output.add_argument(
        "--columns",
        metavar="COLS",
        type=_fields,
        action="append",
        help=(
            "comma-separated columns instead of the default ones: "
            f"{', '.join(_ATTRIBUTES)}, params.<key>, metrics.<key>"
        ),
    )
    ls.set_defaults(handler=list_runs)

    show = add_command(
        actions,
        runs,
        "show",
        help="show one run's whole record",
        description=(
            "Show one run: its record, params and metric summaries.\n\n"
            "RUN is a run id, a unique prefix of one, or a run name (within --project)."
        ),
    )
    set_run_completer(show.add_argument("run", metavar="RUN", help="id, unique id prefix, or name"))
    show.add_argument("--project", metavar="P", help="look names up in project P only")
    show.add_argument("--json", action="store_true", help="print the record as a JSON object")
    show.set_defaults(handler=show_run)

    register_compare(actions, runs)  # `runs compare`, `runs diff`
    register_history(actions, runs)  # `runs history`
    register_manage(actions, runs)  # `runs rm|restore|rename|tag|untag|note`


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, got {value}")
    return value


def _fields(text: str) -> list[Field]:
    try:
        return [Field.parse(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- runs ls -------------------------------------------------------------------------------


def list_runs(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack runs ls`: a table (or a JSON array) of the runs a query selects."""
    from polytrack.history.runs import runs  # numpy and SQLite: only when reading

    limit: int | None = args.limit or None
    # A busy or damaged index: answered all the same. Damaged runs: said below, once.
    with ctx.warnings_as_notes(except_damage=True):
        if args.trash:
            from polytrack.history.manage import trashed_runs

            infos: Sequence[RunInfo] = trashed_runs(
                args.project, args.where, args.order_by, home=ctx.home
            )
            infos = infos if limit is None else infos[: limit + 1]
        else:
            infos = runs(
                project=args.project,
                where=args.where,
                order_by=args.order_by,
                # One more than shown, to tell whether --limit cut the list.
                limit=None if limit is None else limit + 1,
                home=ctx.home,
            )
    truncated = limit is not None and len(infos) > limit
    infos = infos[:limit]

    if args.json:
        ctx.out(to_json([_record(info) for info in infos]))
    elif infos:
        tty = _isatty(ctx.stdout)
        width = None if args.wide or not tty else shutil.get_terminal_size((120, 24)).columns
        if args.columns:
            fields: list[Field] = [f for group in args.columns for f in group]
            hidden: list[Field] = []
        else:
            fields, hidden = _default_fields(infos, width)
        color = args.color == "always" or (
            args.color == "auto" and tty and not ctx.environ.get("NO_COLOR")
        )
        ctx.out(render([field.column(infos) for field in fields], width=width, color=color))
        if hidden:
            names = ", ".join(field.header for field in hidden[:4])
            more = ", …" if len(hidden) > 4 else ""
            ctx.note(f"{len(hidden)} more columns vary ({names}{more}); choose with --columns")
    if not infos:
        match = " match" if args.where or args.project else ""
        where = "in the trash of" if args.trash else "in"
        ctx.note(f"no runs{match} {where} the store {ctx.home}")
    if truncated:
        ctx.note(f"showing the first {limit} runs; --limit 0 shows all")
    _note_damaged(ctx, infos)
    return 0


def _note_damaged(ctx: Context, infos: Sequence[RunInfo]) -> None:
    """One note for every listed run whose files hold damaged records: which runs, and
    where to read what they lost (a note per run would bury the table)."""
    damaged = [info.id for info in infos if info.damaged]
    if not damaged:
        return
    which = ", ".join(damaged[:5]) + (", …" if len(damaged) > 5 else "")
    runs = "1 run has" if len(damaged) == 1 else f"{len(damaged)} runs have"
    ctx.note(
        f"polytrack: warning: {runs} damaged records, which were skipped ({which}); "
        "`polytrack runs show RUN` lists what each lost"
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _default_fields(
    infos: Sequence[RunInfo], room: int | None = TABLE_WIDTH
) -> tuple[list[Field], list[Field]]:
    """The fixed columns plus the varying ones that fit in `room` characters (None: all
    of them); also the varying ones left out.

    Keys whose values differ go before keys that only some runs have; within each group
    params and metrics take turns for the room left, so neither crowds the other out.
    Shown, params come first, then metrics, each sorted by key.
    """
    # Who ran them is worth a column where more than one person did; a home of one user's
    # runs would repeat the name on every row (`--columns user` shows it anyway).
    several = len({info.user for info in infos}) > 1
    fields = [Field("attr", name) for name in DEFAULT_COLUMNS if name != "user" or several]
    width = table_width([field.column(infos) for field in fields])
    params, sparse_params = _varying(infos, "param")
    metrics, sparse_metrics = _varying(infos, "metric")
    candidates = [*_alternate(params, metrics), *_alternate(sparse_params, sparse_metrics)]
    chosen: set[Field] = set()
    hidden: list[Field] = []
    for field in candidates:
        needed = len("  ") + field.column(infos).width
        if room is None or (len(chosen) < MAX_VARYING and width + needed <= room):
            chosen.add(field)
            width += needed
        else:
            hidden.append(field)
    fields += sorted(chosen, key=lambda field: (field.kind != "param", field.key))
    return fields, hidden


def _varying(infos: Sequence[RunInfo], kind: str) -> tuple[list[Field], list[Field]]:
    """Keys of `kind` whose values differ between runs, and keys only some runs have.

    With a single run nothing can differ; its own keys count as differing instead, since
    a table without them says little. System metrics (`system/...`) always differ and are
    rarely what runs are compared by: they are shown only when asked for with --fields.
    """
    values: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    for info in infos:
        record: dict[str, Any] = (
            info.params
            if kind == "param"
            else {k: s.last for k, s in info.metrics.items() if not k.startswith(SYSTEM_PREFIX)}
        )
        for key, value in record.items():
            # json.dumps spells NaN one way, so two NaN last values count as equal.
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
            present[key] = present.get(key, 0) + 1
    differ = [key for key in sorted(values) if len(infos) < 2 or len(values[key]) > 1]
    sparse = [key for key in sorted(values) if key not in differ and present[key] < len(infos)]
    return [Field(kind, key) for key in differ], [Field(kind, key) for key in sparse]


def _alternate(first: Sequence[Field], second: Sequence[Field]) -> Iterator[Field]:
    for index in range(max(len(first), len(second))):
        yield from first[index : index + 1]
        yield from second[index : index + 1]


# -- runs show -----------------------------------------------------------------------------


def show_run(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack runs show RUN`: one run's whole record, readably or as JSON."""
    if not ctx.home.exists():  # a file is not a store: get_run says so (exit 2)
        raise RunNotFoundError(f"no run {args.run!r}: there is no store at {ctx.home}")
    from polytrack.history.runs import get_run  # numpy and SQLite: only when reading

    with ctx.warnings_as_notes(except_damage=True):  # damage: in the record, said below
        info = get_run(args.run, project=args.project, home=ctx.home)
    ctx.out(to_json(_full_record(info)) if args.json else describe_run(info))
    if info.damaged:
        where = 'its "damaged" field' if args.json else 'under "damaged"'
        ctx.note(
            f"polytrack: warning: run {info.id} has damaged records, which were skipped "
            f"({len(info.damaged)} listed {where})"
        )
    return 0


def describe_run(view: RunView) -> str:
    """The record, then the snapshot, the system metrics and the tail of the logs."""
    lines = [describe(view)]
    lines += _describe_outputs(view.outputs)
    lines += _describe_artifacts(view)
    lines += _describe_media(view)
    lines += describe_snapshot(view.snapshot())
    lines += describe_system(view.metrics)
    tail = view.logs(tail=LOG_TAIL)
    lines += describe_logs([(line.t, line.stream, line.text) for line in tail])
    return "\n".join(lines)


def _full_record(view: RunView) -> dict[str, Any]:
    record = _record(view)
    record["outputs"] = view.outputs
    artifacts = [attrs.asdict(a, filter=lambda at, _: at.name != "home") for a in view.artifacts()]
    record["artifacts"] = [a for a in artifacts if a["kind"] != "model"]
    record["models"] = [a for a in artifacts if a["kind"] == "model"]
    record["media"] = [
        {"name": name, "kind": kind, "steps": steps}
        for name, (kind, steps) in view.media_keys().items()
    ]
    record["snapshot"] = attrs.asdict(view.snapshot())
    record["logs"] = [attrs.asdict(line) for line in view.logs(tail=LOG_TAIL)]
    return record


def describe(info: RunInfo) -> str:
    """The readable form of a whole record: header lines, then params and metrics tables."""
    header: list[tuple[str, str | None]] = [
        ("id", info.id),
        ("name", info.name),
        ("project", info.project),
        ("status", info.status),
    ]
    if info.message:
        header.append(("message", info.message))
    header += [
        ("created", format_time(info.created_at, seconds=True)),
        ("finished", format_time(info.finished_at, seconds=True)),
        ("duration", format_duration(_duration(info))),
        ("updated", format_time(info.updated_at, seconds=True)),
        ("user", info.user),
        # No host: the run's start record was lost (see "damaged").
        ("host", f"{info.host} (pid {info.pid})" if info.host else None),
        ("path", info.path),
        ("tags", ", ".join(info.tags)),
        ("notes", info.notes),
        ("attempts", str(info.attempts)),
    ]
    width = max(len(label) for label, _ in header)
    lines: list[str] = []
    for label, value in header:
        # Notes and messages may span lines; continuation lines align under the first.
        parts = (value or MISSING).splitlines() or [MISSING]
        lines.append(f"{label.ljust(width)}  {printable(parts[0])}".rstrip())
        lines += [f"{'':{width}}  {printable(part)}".rstrip() for part in parts[1:]]

    lines += ["", "params"]
    if info.params:
        keys = sorted(info.params)
        params = [
            Column("key", [Cell(printable(key)) for key in keys]),
            # Exact values: `show` is where a param is read to reproduce a run.
            Column("value", [Cell(format_value(info.params[key], digits=None)) for key in keys]),
        ]
        lines += _indent(render(params))
    else:
        lines.append("  none")

    lines += ["", "metrics"]
    keys = sorted(key for key in info.metrics if not key.startswith(SYSTEM_PREFIX))
    if keys:
        summaries = [info.metrics[key] for key in keys]

        def numbers(header: str, read: Callable[[Any], float]) -> Column:
            return Column(
                header, [Cell(format_number(read(s), digits=6), numeric=True) for s in summaries]
            )

        metrics = [
            Column("key", [Cell(printable(key)) for key in keys]),
            numbers("last", lambda s: s.last),
            numbers("min", lambda s: s.min),
            numbers("max", lambda s: s.max),
            Column("count", [Cell(format_count(s.count), numeric=True) for s in summaries]),
            numbers("last step", lambda s: s.last_step),
        ]
        lines += _indent(render(metrics))
    else:
        lines.append("  none")

    if info.damaged:  # what readers skipped: file and byte range, one line per loss
        lines += ["", "damaged (skipped when read)"]
        lines += [f"  {printable(message)}" for message in info.damaged]
    return "\n".join(lines)


def _describe_outputs(outputs: dict[str, Any]) -> list[str]:
    """The run's outputs (`log_outputs`), exactly, as params are shown."""
    lines = ["", "outputs"]
    if not outputs:
        return [*lines, "  none"]
    keys = sorted(outputs)
    table = [
        Column("key", [Cell(printable(key)) for key in keys]),
        Column("value", [Cell(format_value(outputs[key], digits=None)) for key in keys]),
    ]
    return lines + _indent(render(table))


def _describe_artifacts(view: RunView) -> list[str]:
    """Artifacts and models: name, kind, role, size, files (`artifacts ls` has more)."""
    from polytrack.cli._snapshot import format_bytes

    found = view.artifacts()
    lines: list[str] = []
    for title, chosen in (
        ("artifacts", [a for a in found if a.kind != "model"]),
        ("models", [a for a in found if a.kind == "model"]),
    ):
        lines += ["", title]
        if not chosen:
            lines.append("  none")
            continue
        table = [
            Column("name", [Cell(printable(a.name)) for a in chosen], max_width=40),
            Column("kind", [Cell(printable(a.kind)) for a in chosen], max_width=20),
            Column("role", [Cell(a.role) for a in chosen]),
            Column("size", [Cell(format_bytes(a.size), numeric=True) for a in chosen]),
            Column("files", [Cell(str(len(a.files)), numeric=True) for a in chosen]),
            Column("framework", [Cell(printable(a.framework or MISSING)) for a in chosen]),
        ]
        lines += _indent(render(table))
    return lines


def _describe_media(view: RunView) -> list[str]:
    """Media (`log_image`, `log_histogram`, ...): name, kind, number of steps
    (`media ls` lists a key's steps, `media get` fetches one)."""
    keys = view.media_keys()
    if not keys:
        return ["", "media", "  none"]
    return ["", "media", *_indent(render(media_columns(keys)))]


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


def _record(info: RunInfo) -> dict[str, Any]:
    """The whole record as plain data, shaped as `RunInfo` is."""
    return attrs.asdict(info)
