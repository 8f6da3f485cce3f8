"""An argparse parser that writes to injected streams and never calls `sys.exit`.

Stock argparse prints to `sys.stdout`/`sys.stderr` and exits the interpreter on `--help`
or a usage error; `main(argv, stdout=..., stderr=...)` must instead capture that output and
turn the exit into a return code, so this subclass routes both. It also lets chosen
options take values that start with "-" (`--order-by -metrics.acc`), which stock argparse
reads as an unknown option (https://github.com/python/cpython/issues/53580).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    Subcommands = argparse._SubParsersAction["Parser"]

__all__ = ["Parser", "ParserExit", "add_command", "add_home_option", "whole_number"]


class ParserExit(Exception):
    """argparse wanted to exit (after `--help`, `--version` or a usage error)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """`ArgumentParser` whose output goes to `stdout`/`stderr` and whose exit raises."""

    def __init__(
        self, *args: Any, stdout: TextIO | None = None, stderr: TextIO | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self._dash_value_options: set[str] = set()

    def add_dash_value_option(self, *names: str, **kwargs: Any) -> argparse.Action:
        """`add_argument` for an option whose value may start with "-", like "-metrics.acc"."""
        action = self.add_argument(*names, **kwargs)
        self._dash_value_options.update(action.option_strings)
        return action

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None and self._dash_value_options:
            args = self._attach_dash_values(args)
        return super().parse_known_args(args, namespace)

    def _attach_dash_values(self, args: Sequence[str]) -> list[str]:
        """Rewrite `--order-by -x` as `--order-by=-x`, which argparse reads as meant.

        A following word that is itself an option of this parser (`--order-by --json`) is
        left alone, so argparse still reports the missing value.
        """
        out: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                out += args[index:]
                break
            following = args[index + 1] if index + 1 < len(args) else None
            if (
                arg in self._dash_value_options
                and following is not None
                and following.startswith("-")
                and following not in self._option_string_actions
            ):
                out.append(f"{arg}={following}")
                index += 2
                continue
            out.append(arg)
            index += 1
        return out

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse names sys.stdout for help and version, sys.stderr (or None) for errors;
        # every printing path (help, usage, version, error) funnels through here.
        if message:
            (self.stdout if file is sys.stdout else self.stderr).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise ParserExit(status)


def add_command(commands: Subcommands, parent: Parser, name: str, **kwargs: Any) -> Parser:
    """Add subcommand `name`, writing where `parent` writes and accepting `--home` too.

    `--home` is repeated on every subcommand because people type it last
    (`polytrack runs ls --home DIR`); SUPPRESS keeps an absent one from overwriting a
    value given before the subcommand.
    """
    parser = commands.add_parser(name, stdout=parent.stdout, stderr=parent.stderr, **kwargs)
    add_home_option(parser, default=argparse.SUPPRESS)
    return parser


def add_home_option(parser: Parser, *, default: Any) -> None:
    """The global `--home DIR` option."""
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=default,
        help=(
            "the store to read (default: $POLYTRACK_HOME, else $XDG_DATA_HOME/polytrack "
            "or ~/.local/share/polytrack)"
        ),
    )


def whole_number(text: str) -> int:
    """An argument type: an int of 0 or more (`--depth 2`, `--step 9`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
