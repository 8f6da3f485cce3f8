"""Aligned plain-text tables: columns padded to their widest cell, numbers right-aligned."""

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

    def lines(self) -> list[str]:
        """The header and every cell, padded to `width`."""
        width, numeric = self.width, self.numeric
        texts = [self.header, *(self._clip(cell.text) for cell in self.cells)]
        return [text.rjust(width) if numeric else text.ljust(width) for text in texts]


def table_width(columns: Sequence[Column]) -> int:
    """Characters a rendered row takes."""
    return sum(column.width for column in columns) + len(GUTTER) * max(0, len(columns) - 1)


def render(columns: Sequence[Column]) -> str:
    """The table as text: a header line, then one line per row, no trailing spaces."""
    if not columns:
        return ""
    padded = [column.lines() for column in columns]
    return "\n".join(GUTTER.join(row).rstrip() for row in zip(*padded, strict=True))
