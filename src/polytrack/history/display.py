"""How a comparison and a lineage graph show themselves: HTML for notebooks, text for
terminals. (A run's card and a list of runs are drawn by `polytrack._display`, below the
run, which this module shares its escaping and number format with.)

Duck-typed over `Comparison` and `LineageGraph`: those modules import this one to display
themselves, so this one cannot import them back.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from polytrack._display import STYLE_BLOCK, TABLE, e, number, status_html

__all__ = ["comparison_html", "comparison_text", "lineage_html"]

_DIFFERS: Final = "background:rgba(255,193,7,0.25)"  # readable on light and dark themes
_SECTIONS: Final = ("params", "code", "data", "environment", "hardware", "packages")
_MAX_ROWS: Final = 40  # per section; the rest are counted


def _value(value: object) -> str:
    if isinstance(value, enum.Enum):  # ABSENT: the run has no such key
        return "—"
    return e(number(value))


def comparison_html(comparison: Any) -> str:
    """Runs side by side: metrics (last values), then params, code, data, environment,
    hardware and packages, a row per key, rows that differ highlighted and first."""
    runs = comparison.runs
    head = "<tr><th></th>" + "".join(
        f"<th><code>{e(r.id)}</code><br>{e(r.name)}<br>{status_html(r.status)}</th>" for r in runs
    )
    body = [head + "</tr>"]

    def section(title: str, rows: list[tuple[str, list[str], bool]]) -> None:
        if not rows:
            return
        span = len(runs) + 1
        body.append(f'<tr><th colspan="{span}" style="text-align:left">{e(title)}</th></tr>')
        for key, cells, differs in rows[:_MAX_ROWS]:
            style = f' style="{_DIFFERS}"' if differs else ""
            tds = "".join(f"<td>{c}</td>" for c in cells)
            body.append(f"<tr{style}><td><code>{e(key)}</code></td>{tds}</tr>")
        if len(rows) > _MAX_ROWS:
            body.append(f'<tr><td colspan="{span}"><i>{len(rows) - _MAX_ROWS} more</i></td></tr>')

    section(
        "metrics (last)",
        [
            (
                row.key,
                ["—" if s is None else number(s.last) for s in row.summaries],
                row.differs,
            )
            for row in comparison.metrics
        ],
    )
    for name in _SECTIONS:
        rows = getattr(comparison, name)
        if name == "packages":  # hundreds, mostly the same: those are counted
            same = sum(not row.differs for row in rows)
            rows = [row for row in rows if row.differs]
            if same:
                name = f"packages ({same} the same in every run)"
        section(name, [(row.key, [_value(v) for v in row.values], row.differs) for row in rows])
    return f"{STYLE_BLOCK}{TABLE}{''.join(body)}</table>"


def comparison_text(comparison: Any) -> str:
    """The rows that differ, as text: `key: a | b | ...`."""
    lines = ["compare " + "  ".join(f"{r.id} ({r.name})" for r in comparison.runs)]
    for row in comparison.metrics:
        if row.differs:
            values = ["-" if s is None else number(s.last) for s in row.summaries]
            lines.append(f"  metrics.{row.key}: {' | '.join(values)}")
    for name in _SECTIONS:
        for row in getattr(comparison, name):
            if row.differs:
                values = ["-" if isinstance(v, enum.Enum) else number(v) for v in row.values]
                lines.append(f"  {name}.{row.key}: {' | '.join(values)}")
    if len(lines) == 1:
        lines.append("  no differences")
    return "\n".join(lines)


def lineage_html(graph: Any) -> str:
    """The graph's tree (`render_tree`), escaped, in a preformatted block."""
    return f'<pre style="font-size:12px">{e(graph.render_tree())}</pre>'
