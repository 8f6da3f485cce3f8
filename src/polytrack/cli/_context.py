"""What a command handler gets besides its parsed arguments: where to write, which store."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from attrs import field, frozen

from polytrack.errors import DamagedRecordsWarning, TrackingWarning

__all__ = ["Context"]


@frozen
class Context:
    """Streams and store home for one `main()` call.

    Handlers write only to these streams, never to `sys.stdout`, so that `main(argv,
    stdout=io.StringIO())` captures everything a command prints.
    """

    stdout: TextIO
    stderr: TextIO
    home: Path
    # What `main(environ=...)` was given: read by commands that look at more than the
    # home (`polytrack run`: KUBECONFIG, POLYTRACK_BACKEND).
    environ: Mapping[str, str] = field(factory=lambda: os.environ)

    def out(self, text: str) -> None:
        """Write `text` plus a newline to stdout."""
        self.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        """Write `text` plus a newline to stderr: for people, never for pipes."""
        self.stderr.write(text + "\n")

    @contextmanager
    def warnings_as_notes(self, *, except_damage: bool = False) -> Iterator[None]:
        """Show each `TrackingWarning` raised meanwhile as a note (`polytrack: warning:
        ...`), as it comes: what a reader says about the store (a busy or damaged index)
        belongs on this command's stderr, without Python's `file:line:` prefix.

        With `except_damage`, a `DamagedRecordsWarning` is left out: the command says
        what runs lost itself, from their records (`RunInfo.damaged`), which the API's
        once-per-process warning may not repeat.
        """

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            self.note(f"polytrack: warning: {message}")

        with warnings.catch_warnings():
            warnings.simplefilter("always", TrackingWarning)
            if except_damage:
                warnings.simplefilter("ignore", DamagedRecordsWarning)
            warnings.showwarning = show
            yield
