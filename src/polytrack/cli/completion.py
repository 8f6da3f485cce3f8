"""`polytrack completion bash|zsh|fish`: the shell's completion script, from argcomplete.

argcomplete (https://kislyuk.github.io/argcomplete/) completes from the parser itself, so
every command and option completes without a list kept by hand, in bash, zsh and fish.
The script it prints calls `polytrack` back with `_ARGCOMPLETE` set; `main()` then hands
the parser to `argcomplete.autocomplete` (`complete`), which prints the completions and
exits. argcomplete is imported only then: `polytrack --help` does not pay for it.

Run ids complete from the names of the run directories (one directory listing, no index,
no run read), so a Tab stays instant in a large store.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["SHELLS", "complete", "complete_run_ids", "register", "set_run_completer"]

SHELLS: Final = ("bash", "zsh", "fish")


def register(commands: Subcommands, parent: Parser) -> None:
    parser = add_command(
        commands,
        parent,
        "completion",
        help="print the shell completion script",
        description=(
            "Print the completion script for a shell; load it from your shell's startup file:\n\n"
            '  bash:  eval "$(polytrack completion bash)"          (in ~/.bashrc)\n'
            '  zsh:   eval "$(polytrack completion zsh)"           (in ~/.zshrc)\n'
            "  fish:  polytrack completion fish | source           (in config.fish)"
        ),
    )
    parser.add_argument("shell", metavar="SHELL", choices=SHELLS, help=", ".join(SHELLS))
    parser.set_defaults(handler=print_script)


def print_script(args: argparse.Namespace, ctx: Context) -> int:
    import argcomplete

    ctx.out(argcomplete.shellcode(["polytrack"], shell=args.shell).rstrip("\n"))
    return 0


def complete(parser: Parser) -> None:
    """Answer the shell's completion request, if this process is one, and exit."""
    import argcomplete

    argcomplete.autocomplete(parser)


def complete_run_ids(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The ids of the runs in the store (of the trash, for `runs restore`) that start
    with `prefix`."""
    from polytrack.settings import Settings

    home_arg = getattr(parsed_args, "home", None)
    home = Path(home_arg).expanduser() if home_arg else Settings.from_env().home
    folder = "trash" if getattr(parsed_args, "action", None) == "restore" else "runs"
    try:
        names = os.listdir(home / folder)
    except OSError:
        return []
    return sorted(name for name in names if name.startswith(prefix) and not name.startswith("."))


def set_run_completer(action: argparse.Action) -> None:
    """Complete `action`'s values (RUN arguments) with run ids."""
    action.completer = complete_run_ids  # type: ignore[attr-defined]  # argcomplete reads it
