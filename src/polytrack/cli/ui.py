"""`polytrack ui`: serve the dashboard for a store until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Final

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands

__all__ = ["DEFAULT_PORT", "register", "serve"]

DEFAULT_PORT: Final = 5005


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `ui` to the `polytrack` parser."""
    parser = add_command(
        commands,
        parent,
        "ui",
        help="browse the runs in a web dashboard",
        description=(
            "Serve the dashboard of the store: runs, curves, comparisons, lineage. On a "
            "loopback address (the default) no token is needed; on any other, open the "
            "URL with the token that is printed once. Ctrl-C stops it."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the port to listen on (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1; any other needs the token)",
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser (one opens only when stdout is a terminal)",
    )
    parser.set_defaults(handler=serve)


class _Terminated(Exception):
    """SIGTERM arrived: stop serving, as a service manager (or `kill`) asks."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def serve(args: argparse.Namespace, context: Context) -> int:
    """Start the dashboard, say where, open a browser if wanted, and serve until Ctrl-C
    or SIGTERM.

    Ctrl-C is KeyboardInterrupt, which `main()` turns into exit code 130 after the
    `finally` here stopped the server. SIGTERM stops it the same way, with exit code 0
    (as uvicorn does): a background job, whose SIGINT the shell ignores, stops so too.
    """
    from polytrack.dashboard.server import Dashboard
    from polytrack.store.local import check_home

    if not 0 <= args.port <= 65535:
        context.note(f"--port must be between 0 and 65535; got {args.port}")
        return 2
    check_home(context.home)  # NotAStoreError (exit 2) before anything listens
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        dashboard = Dashboard.start(context.home, port=args.port, host=args.host)
        try:
            context.out(f"polytrack dashboard of {context.home} at {dashboard.url}")
            if dashboard.token is not None:
                context.out(f"open (token, shown once): {dashboard.token_url}")
            context.out("press Ctrl-C to stop")
            context.stdout.flush()
            if not args.no_browser and context.stdout.isatty():
                import webbrowser

                webbrowser.open(dashboard.token_url)
            dashboard.wait()
        finally:
            dashboard.stop()
    except _Terminated:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return 0
