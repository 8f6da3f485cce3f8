"""`polytrack media ls` and `polytrack media get`: a run's images, histograms, tables, ...

Reads through the public API (`polytrack.get_run`, `RunView.media_keys`, `RunView.media`),
as a user would; nothing heavy is imported until a command runs. `get` writes a record's
file as the store keeps it (PNG, WAV, GIF/MP4, JSON, UTF-8 text), checked against its
digest first.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, cast

from polytrack.cli._context import Context
from polytrack.cli._format import MISSING, printable, to_json
from polytrack.cli._parser import Parser, add_command, whole_number
from polytrack.cli._snapshot import format_bytes
from polytrack.cli._table import Cell, Column, render
from polytrack.cli.completion import set_run_completer
from polytrack.errors import MediaNotFoundError, PolytrackError, RunNotFoundError, StoreError
from polytrack.models import MEDIA_EXTENSIONS

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.history.runs import RunView
    from polytrack.media.read import MediaItem

__all__ = ["default_file_name", "get_media", "list_media", "register"]

_TEXT_TYPES: Final = frozenset({"application/json", "text/plain", "text/html"})
_STEPS_NAMED: Final = 10  # steps listed in "no such step" before "…"


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `media ls` and `media get` to the `polytrack` parser."""
    media = add_command(
        commands,
        parent,
        "media",
        help="list and fetch a run's images, histograms, tables, ...",
        description="List the media a run logged (log_image, log_histogram, ...) and fetch them.",
    )
    actions = media.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = add_command(
        actions,
        media,
        "ls",
        help="list a run's media, or the steps of one",
        description=(
            "Without NAME, list the media RUN logged: name, kind and number of steps.\n"
            "With NAME, list its steps: step, shape, size and caption.\n\n"
            "RUN is a run id, a unique prefix of one, or a run name (within --project).\n\n"
            "examples:\n"
            "  polytrack media ls a1b2c3d4\n"
            "  polytrack media ls a1b2c3d4 samples/val"
        ),
    )
    set_run_completer(ls.add_argument("run", metavar="RUN", help="id, unique id prefix, or name"))
    ls.add_argument("name", metavar="NAME", nargs="?", help="list the steps of this media")
    ls.add_argument("--project", metavar="P", help="look names up in project P only")
    ls.add_argument("--json", action="store_true", help="print a JSON array of records")
    ls.set_defaults(handler=list_media)

    get = add_command(
        actions,
        media,
        "get",
        help="write one step of a media to a file",
        description=(
            "Write the file of media NAME of RUN at one step (default: the last) as the\n"
            "store keeps it: an image as PNG, a histogram, table, curve, confusion matrix\n"
            "or figure spec as JSON, text as .txt, HTML as .html, a sound as WAV, a video\n"
            "as GIF, MP4 or WebM. Without -o it goes to <name>-<step>.<ext> in the current\n"
            'directory ("/" in the name written "_"); the path written is printed.\n\n'
            "examples:\n"
            "  polytrack media get a1b2c3d4 samples/val --step 9 -o val.png\n"
            "  polytrack media get a1b2c3d4 samples/val --index 3      # the 4th of a batch\n"
            "  polytrack media get a1b2c3d4 report -o - | less"
        ),
    )
    set_run_completer(get.add_argument("run", metavar="RUN", help="id, unique id prefix, or name"))
    get.add_argument("name", metavar="NAME", help="the media's name")
    get.add_argument(
        "--step", metavar="N", type=whole_number, help="the step to fetch (default: the last)"
    )
    get.add_argument(
        "--index",
        metavar="I",
        type=whole_number,
        default=0,
        help="which file of the step: an image of a batch, a figure's PNG (1); default 0",
    )
    get.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the file to write, a directory to write it in, or - for stdout",
    )
    get.add_argument("--project", metavar="P", help="look names up in project P only")
    get.set_defaults(handler=get_media)



def _run(args: argparse.Namespace, ctx: Context) -> RunView:
    if not ctx.home.is_dir():
        raise RunNotFoundError(f"no run {args.run!r}: there is no store at {ctx.home}")
    from polytrack.history.runs import get_run  # numpy and SQLite: only when reading

    with ctx.warnings_as_notes():
        return get_run(args.run, project=args.project, home=ctx.home)


def _items(run: RunView, name: str) -> list[MediaItem]:
    """The steps of media `name`; an error naming the run's media when it has none."""
    items = run.media(name)
    if not items:
        keys = sorted(run.media_keys())
        known = f"its media: {', '.join(keys)}" if keys else "it logged none"
        raise MediaNotFoundError(f"run {run.id} has no media {name!r} ({known})")
    return items


# -- media ls ------------------------------------------------------------------------------


def list_media(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack media ls RUN [NAME]`: the run's media keys, or the steps of one."""
    run = _run(args, ctx)
    if args.name is None:
        keys = run.media_keys()
        if args.json:
            ctx.out(to_json([{"name": n, "kind": k, "steps": s} for n, (k, s) in keys.items()]))
        elif keys:
            ctx.out(render(media_columns(keys)))
        else:
            ctx.note(f"run {run.id} has no media")
        return 0
    items = _items(run, args.name)
    if args.json:
        ctx.out(to_json([_record(item) for item in items]))
        return 0
    ctx.out(
        render(
            [
                Column("step", [Cell(str(i.step), numeric=True) for i in items]),
                Column("kind", [Cell(printable(i.kind)) for i in items]),
                Column("shape", [Cell(_shape(i.shape)) for i in items]),
                Column("files", [Cell(str(len(i.blobs)), numeric=True) for i in items]),
                Column(
                    "size",
                    [Cell(format_bytes(sum(b.size for b in i.blobs)), numeric=True) for i in items],
                ),
                Column(
                    "caption",
                    [Cell(printable(i.caption) if i.caption else MISSING) for i in items],
                    max_width=60,
                ),
            ]
        )
    )
    return 0


def media_columns(keys: dict[str, tuple[str, int]]) -> list[Column]:
    """The table of `RunView.media_keys()`: name, kind, steps (also `runs show`'s)."""
    names = list(keys)
    return [
        Column("name", [Cell(printable(n)) for n in names], max_width=50),
        Column("kind", [Cell(keys[n][0]) for n in names]),
        Column("steps", [Cell(str(keys[n][1]), numeric=True) for n in names]),
    ]


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) if shape else MISSING


def _record(item: MediaItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "kind": item.kind,
        "step": item.step,
        "shape": list(item.shape),
        "caption": item.caption,
        "meta": item.meta,
        "files": [
            {"digest": b.digest, "size": b.size, "media_type": b.media_type} for b in item.blobs
        ],
        "logged_at": item.logged_at,
    }


# -- media get -----------------------------------------------------------------------------


def get_media(args: argparse.Namespace, ctx: Context) -> int:
    """`polytrack media get RUN NAME`: write one step's file, print where (or to stdout)."""
    run = _run(args, ctx)
    items = _items(run, args.name)
    item = _at_step(items, args.step)
    if args.index >= len(item.blobs):
        raise MediaNotFoundError(
            f"media {item.name!r} has {len(item.blobs)} file(s) at step {item.step}: "
            f"--index {args.index} is past them (0 to {len(item.blobs) - 1})"
        )
    blob = item.blobs[args.index]
    data = item.data(args.index)
    if "sha256:" + hashlib.sha256(data).hexdigest() != blob.digest:
        raise StoreError(
            f"the file of media {item.name!r} at step {item.step} does not match its digest "
            f"{blob.digest}: the blob store is damaged"
        )
    if args.output == "-":
        _to_stdout(ctx, data, blob.media_type)
        return 0
    target = Path(default_file_name(item.name, item.step, blob.media_type, args.index))
    if args.output is not None:
        chosen = Path(args.output).expanduser()
        target = chosen / target if chosen.is_dir() else chosen
    target.write_bytes(data)
    ctx.out(str(target))
    return 0


def _at_step(items: list[MediaItem], step: int | None) -> MediaItem:
    if step is None:
        return items[-1]
    for item in items:
        if item.step == step:
            return item
    steps = [str(i.step) for i in items]
    shown = ", ".join(steps[:_STEPS_NAMED]) + (", …" if len(steps) > _STEPS_NAMED else "")
    raise MediaNotFoundError(
        f"media {items[0].name!r} has no step {step} (its {len(steps)} step(s): {shown})"
    )


def default_file_name(name: str, step: int, media_type: str, index: int = 0) -> str:
    """`<name>-<step>.<ext>` ("samples/val" at step 3: `samples_val-3.png`); a file other
    than the first of its step gets `-<index>` too.

    Example:
        >>> default_file_name("samples/val", 3, "image/png", 1)
        'samples_val-3-1.png'
    """
    stem = name.replace("/", "_").replace("\\", "_")
    if stem.startswith("."):  # no hidden file, no "..": a name is text, not a path
        stem = "_" + stem[1:]
    suffix = f"-{index}" if index else ""
    return f"{stem}-{step}{suffix}.{MEDIA_EXTENSIONS.get(media_type, 'bin')}"


def _to_stdout(ctx: Context, data: bytes, media_type: str) -> None:
    """The bytes as they are; a text stream without bytes (a test's StringIO) gets text
    files decoded. Binary is not written to a terminal, as curl does not."""
    stream = ctx.stdout
    binary = media_type not in _TEXT_TYPES
    if binary and _isatty(stream):
        raise PolytrackError(
            f"not writing {media_type} to a terminal: give -o FILE, or pipe the output"
        )
    buffer = cast("BinaryIO | None", getattr(stream, "buffer", None))
    if buffer is not None:
        stream.flush()
        buffer.write(data)
        buffer.flush()
    elif not binary:
        stream.write(data.decode("utf-8"))
    else:
        raise PolytrackError(f"this output takes text only, not {media_type}: give -o FILE")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
