# PYTHON_ARGCOMPLETE_OK  (argcomplete's marker: this entry point completes itself)
"""The `polytrack` command line. `main(argv)` returns an exit code and is testable directly.

Every error becomes an exit code here, in `main()`, and nowhere else:

| code | when                                                                        |
| ---- | --------------------------------------------------------------------------- |
| 0    | success (also `--help`, `--version`, and a query that matches no run)       |
| 1    | a `PolytrackError` at runtime (the store cannot be read, ...), or an OSError |
| 2    | a usage error: bad options or arguments, or a `--where`/`--order-by` that    |
|      | does not parse (`QueryError`; its message points at the token), or a home   |
|      | that holds another tool's files (`NotAStoreError`)                          |
| 3    | no run matches RUN, or several do (`RunNotFoundError`, `AmbiguousRunError`) |
|      | or it has no such artifact or media (`ArtifactNotFoundError`, ...)          |
| 130  | interrupted (Ctrl-C)                                                        |
| 141  | stdout was closed early (`polytrack runs ls | head`), as if killed by SIGPIPE |

Messages go to stderr as `polytrack: error: ...`, never as a traceback; a traceback means
a bug. Importing this package is cheap: the command modules, and through them numpy and
the store, load only when `main()` runs one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final, NoReturn, TextIO

from polytrack.errors import (
    ArtifactNotFoundError,
    MediaNotFoundError,
    NotAStoreError,
    PolytrackError,
    QueryError,
    RunNotFoundError,
)

if TYPE_CHECKING:
    from polytrack.cli._parser import Parser

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "entrypoint",
    "main",
]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_INTERRUPTED: Final = 130
EXIT_BROKEN_PIPE: Final = 141

# One module per subcommand; each has `register(subcommands, parent)`.
_COMMANDS: Final = (
    "polytrack.cli.runs",
    "polytrack.cli.artifacts",
    "polytrack.cli.media",
    "polytrack.cli.lineage",
    "polytrack.cli.index",
    "polytrack.cli.check",
    "polytrack.cli.run",
    "polytrack.cli.ops",
    "polytrack.cli.reproduce",
    "polytrack.cli.sync",
    "polytrack.cli.gc",
    "polytrack.cli.completion",
    "polytrack.cli.ui",
    "polytrack.cli._import",
)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the `polytrack` command line and return its exit code (see the module docstring).

    Args:
        argv: the arguments after the program name; default `sys.argv[1:]`.
        stdout: where results go; default `sys.stdout`.
        stderr: where messages go; default `sys.stderr`.
        environ: read for `POLYTRACK_HOME` when `--home` is not given, and by `run` and
            `ops` (`KUBECONFIG`, `POLYTRACK_BACKEND`, ...); default `os.environ`.

    Example:
        >>> main(["runs", "ls", "--where", "metrics.loss < 0.2"], stdout=io.StringIO())
        0
    """
    # Imported here so that `import polytrack.cli` stays cheap.
    from polytrack.cli._parser import ParserExit

    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(arguments, out, err, environ)
    except ParserExit as exc:
        return exc.status
    except (QueryError, NotAStoreError) as exc:
        return _fail(err, exc, EXIT_USAGE)
    # AmbiguousRunError included
    except (RunNotFoundError, ArtifactNotFoundError, MediaNotFoundError) as exc:
        return _fail(err, exc, EXIT_NOT_FOUND)
    except PolytrackError as exc:
        return _fail(err, exc, EXIT_ERROR)
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        return _fail(err, exc, EXIT_ERROR)
    except KeyboardInterrupt:
        err.write("\n")
        return EXIT_INTERRUPTED


def entrypoint() -> NoReturn:
    """The `polytrack` console script: `main()` with the process' own arguments."""
    code = main()
    if code == EXIT_BROKEN_PIPE:
        # Python flushes stdout again at exit and would report the broken pipe a second
        # time; pointing stdout at /dev/null silences that, as the docs advise:
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    sys.exit(code)


def _run(
    arguments: Sequence[str], out: TextIO, err: TextIO, environ: Mapping[str, str] | None
) -> int:
    from pathlib import Path

    from polytrack.cli._context import Context
    from polytrack.settings import Settings

    if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions (`polytrack completion`)
        from polytrack.cli.completion import complete

        with open(os.devnull, "w") as quiet:  # usage errors of a half-typed line: unsaid
            complete(_build_parser(quiet, quiet))  # prints the completions and exits
    args = _build_parser(out, err).parse_args(arguments)
    if args.home is not None:
        home = Path(args.home).expanduser()
    else:
        home = Settings.from_env(environ).home
    context = Context(
        stdout=out, stderr=err, home=home, environ=os.environ if environ is None else environ
    )
    code: int = args.handler(args, context)
    return code


def _build_parser(out: TextIO, err: TextIO) -> Parser:
    import importlib

    from polytrack._version import __version__
    from polytrack.cli._parser import Parser, add_home_option

    parser = Parser(
        prog="polytrack",
        description="polytrack: experiment tracking. Inspect recorded runs from the shell.",
        epilog="Run 'polytrack COMMAND --help' for a command's options.",
        stdout=out,
        stderr=err,
    )
    add_home_option(parser, default=None)
    parser.add_argument("--version", action="version", version=f"polytrack {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(commands, parser)
    return parser


def _fail(err: TextIO, exc: BaseException, code: int) -> int:
    err.write(f"polytrack: error: {exc}\n")
    return code
