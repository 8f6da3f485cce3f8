"""Aligned plain-text tables: columns padded to their widest cell, numbers right-aligned.

A table wider than the terminal is cut (`render(width=)`), each line ending in `…`, rather
than left to wrap into a mess; colours (ANSI SGR codes) are put around whole cells after
the table is laid out and cut, so they never count towards a width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attrs import field, frozen

__all__ = ["Cell", "Column", "render", "table_width"]

GUTTER = "  "


def _cells(cells: Iterable[Cell]) -> tuple[Cell, ...]:
    return tuple(cells)  # a named converter, so mypy sees what Column() accepts


@frozen
class Cell:
    """One cell's text; a column of `numeric` cells right-aligns so digits line up.

    A missing value is `numeric` too: it must not stop its column from aligning.
    """

    text: str
    numeric: bool = False
    # An ANSI SGR code ("32" green) to show the cell in, where colour is on.
    color: str | None = None


@frozen
class Column:
    """A header and its cells; cells longer than `max_width` are cut with an ellipsis."""

    header: str
    cells: tuple[Cell, ...] = field(converter=_cells)
    max_width: int | None = None

    @property
    def width(self) -> int:
        """Characters this column takes, not counting the gutter."""
        widths = [len(self.header), *(len(self._clip(cell.text)) for cell in self.cells)]
        return max(widths)

    @property
    def numeric(self) -> bool:
        """Right-align when every cell is a number (or missing)."""
        return all(cell.numeric for cell in self.cells)

    def _clip(self, text: str) -> str:
        if self.max_width is None or len(text) <= self.max_width:
            return text
        return text[: self.max_width - 1] + "…"

    def painted(self) -> list[tuple[str, str | None]]:
        """The header (uncoloured) and every cell, padded to `width`, with its colour."""
        width, numeric = self.width, self.numeric
        texts = [(self.header, None), *((self._clip(c.text), c.color) for c in self.cells)]
        return [(t.rjust(width) if numeric else t.ljust(width), color) for t, color in texts]

    def lines(self) -> list[str]:
        """The header and every cell, padded to `width`."""
        width, numeric = self.width, self.numeric
        texts = [self.header, *(self._clip(cell.text) for cell in self.cells)]
        return [text.rjust(width) if numeric else text.ljust(width) for text in texts]


def table_width(columns: Sequence[Column]) -> int:
    """Characters a rendered row takes."""
    return sum(column.width for column in columns) + len(GUTTER) * max(0, len(columns) - 1)


def render(columns: Sequence[Column], *, width: int | None = None, color: bool = False) -> str:
    """The table as text: a header line, then one line per row, no trailing spaces.

    With `width`, a longer line is cut to `width` characters, its last one `…`. With
    `color`, cells that have a colour are shown in it.
    """
    if not columns:
        return ""
    padded = [column.painted() for column in columns]
    return "\n".join(_line(row, width, color) for row in zip(*padded, strict=True))


def _line(row: Sequence[tuple[str, str | None]], width: int | None, color: bool) -> str:
    plain = GUTTER.join(text for text, _ in row).rstrip()
    cut = width is not None and len(plain) > width
    if not color and not cut:
        return plain
    limit = len(plain) if width is None or not cut else max(1, width) - 1
    out: list[str] = []
    pos = 0
    for index, (text, code) in enumerate(row):
        piece = (GUTTER if index else "") + text
        room = limit - pos
        if room <= 0:
            break
        shown = piece[:room]
        head, body = (shown[: len(GUTTER)], shown[len(GUTTER) :]) if index else ("", shown)
        out.append(head + (_paint(body, code) if color and code else body))
        pos += len(piece)
    line = "".join(out)
    if cut:
        return line + "…"
    return line.rstrip()


def _paint(text: str, code: str) -> str:
    """`text` with its non-blank part (not the padding) in colour `code`."""
    core = text.strip(" ")
    if not core:
        return text
    start = text.index(core)
    return f"{text[:start]}\x1b[{code}m{core}\x1b[0m{text[start + len(core) :]}"
