"""What an import did (`ImportSummary`), and how it says so while it runs (`Progress`).

A bar on stderr when it is a terminal (or when asked with `progress=True`): runs done
and points written, redrawn in place at most every `_REDRAW` seconds. Else one plain line
per run, which a log file or CI keeps readable. `progress=False` says nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Final, TextIO

from attrs import define, field, frozen

__all__ = ["ImportSummary", "Progress"]

_REDRAW: Final = 0.1


@frozen
class ImportSummary:
    """What one import found and wrote (or, with `dry_run`, would write).

    `runs_new` runs were made, `runs_updated` gained something (points, a status,
    params, artifacts), `runs_unchanged` had nothing new. `problems` names each part of
    the source that could not be read; the rest was imported. `run_ids` are the
    polytrack ids of the runs seen, in the source's order.
    """

    kind: str
    source: str
    dry_run: bool
    runs_seen: int
    runs_new: int
    runs_updated: int
    runs_unchanged: int
    points: int
    artifacts: int
    media: int
    problems: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    seconds: float = 0.0

    def describe(self) -> str:
        """One line for people: what was imported, and what could not be."""
        verb = "would import" if self.dry_run else "imported"
        text = (
            f"{self.kind}: {verb} {self.runs_seen} runs from {self.source} "
            f"({self.runs_new} new, {self.runs_updated} updated, {self.runs_unchanged} "
            f"unchanged): {self.points:,} points, {self.artifacts} artifacts, "
            f"{self.media} media in {self.seconds:.1f} s"
        )
        if self.problems:
            text += f"; {len(self.problems)} could not be read"
        return text


@define
class Progress:
    """Says how an import goes on `stream` (see the module doc for the modes)."""

    stream: TextIO
    bar: bool
    quiet: bool = False
    runs: int = 0
    points: int = 0
    _drawn: float = field(default=0.0, alias="_drawn")
    _width: int = field(default=0, alias="_width")

    @classmethod
    def choose(cls, progress: bool | None, stream: TextIO | None = None) -> Progress:
        """A bar if `progress`, lines if None and `stream` is no terminal (a bar if it
        is), nothing if False."""
        out = sys.stderr if stream is None else stream
        if progress is False:
            return cls(out, bar=False, quiet=True)
        tty = bool(getattr(out, "isatty", lambda: False)())
        return cls(out, bar=bool(progress) or tty)

    def run_done(self, name: str, what: str) -> None:
        """One run was imported (`what` says what it gained)."""
        self.runs += 1
        if self.quiet:
            return
        if self.bar:
            self._draw(force=True)
        else:
            self.stream.write(f"polytrack: {name}: {what}\n")
            self.stream.flush()

    def add_points(self, count: int) -> None:
        self.points += count
        if self.bar and not self.quiet:
            self._draw(force=False)

    def problem(self, message: str) -> None:
        if self.quiet:
            return
        self._clear()
        self.stream.write(f"polytrack: warning: {message}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.bar and not self.quiet and self._width:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _clear(self) -> None:
        if self.bar and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW:
            return
        self._drawn = now
        text = f"importing: {self.runs} runs, {self.points:,} points"
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)
