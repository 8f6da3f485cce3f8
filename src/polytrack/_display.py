"""How runs show themselves: HTML for notebooks (`_repr_html_`), text for terminals
(`_repr_pretty_`), and matplotlib plots of their series.

Here, below the run and the readers, so that the `Run` being recorded and the `RunView`
read back display alike. Every string a user chose (names, params, tags, messages) is
escaped with `html.escape` before it reaches HTML: a run named `<script>` shows as text.

The sparklines are inline SVG polylines written here: a dozen lines, no dependency,
nothing to load before the first cell shows a run (matplotlib takes ~0.5 s to import).
Nothing heavy is imported with this module: `run.py` imports it, and `init()` stays quick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from polytrack.errors import InvalidInputError, PolytrackError
from polytrack.models import RunInfo

if TYPE_CHECKING:  # numpy only where a chart is drawn: `import polytrack.run` stays light
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "MAX_METRICS",
    "MAX_PARAMS",
    "STATUS_COLORS",
    "STYLE_BLOCK",
    "TABLE",
    "TABLE_STYLE",
    "draw",
    "e",
    "number",
    "read_sparks",
    "require_matplotlib",
    "run_html",
    "run_text",
    "runs_html",
    "runs_text",
    "sparkline",
    "status_html",
    "when",
]

MAX_PARAMS: Final = 24  # rows of params shown on a card; the rest are counted
MAX_METRICS: Final = 12  # rows of metrics with a sparkline; system metrics are counted
_SPARK_POINTS: Final = 120
STATUS_COLORS: Final = {
    "running": "#1f77b4",
    "succeeded": "#2ca02c",
    "failed": "#d62728",
    "crashed": "#d62728",
    "stopped": "#ff7f0e",
    "skipped": "#9467bd",
    "created": "#7f7f7f",
}
# A <style> in an output applies to the whole page: the class keeps it to our tables.
STYLE_BLOCK: Final = (
    "<style>table.polytrack td, table.polytrack th"
    " {padding: 1px 8px; text-align: left; vertical-align: middle}</style>"
)
TABLE_STYLE: Final = (
    "font-family:var(--jp-ui-font-family, sans-serif);font-size:12px;border-collapse:collapse"
)
TABLE: Final = f'<table class="polytrack" style="{TABLE_STYLE}">'


def e(value: object) -> str:
    """`value` as text, escaped for HTML (quotes included)."""
    import html  # here: `import polytrack.run` (and so `init()`) does not pay for it

    return html.escape(str(value), quote=True)


def when(timestamp: float | None) -> str:
    """A unix time as `YYYY-MM-DD HH:MM:SS` UTC; "" for None."""
    import datetime

    if timestamp is None:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def sparkline(values: npt.NDArray[np.float64], width: int = 120, height: int = 22) -> str:
    """An inline SVG line of `values` (non-finite points left out); "" for fewer than 2."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return ""
    if finite.size > _SPARK_POINTS:
        finite = finite[np.linspace(0, finite.size - 1, _SPARK_POINTS).astype(np.int64)]
    low, high = float(finite.min()), float(finite.max())
    span = high - low or 1.0
    step = (width - 2) / (finite.size - 1)
    points = " ".join(
        f"{1 + i * step:.1f},{height - 1 - (v - low) / span * (height - 2):.1f}"
        for i, v in enumerate(finite.tolist())
    )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" role="img">'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="{points}"/></svg>'
    )


def status_html(status: str) -> str:
    color = STATUS_COLORS.get(status, "#7f7f7f")
    return f'<span style="color:{color};font-weight:bold">{e(status)}</span>'


def _user_metrics(info: RunInfo) -> list[str]:
    return sorted(k for k in info.metrics if not k.startswith("system/"))


def read_sparks(directory: Path, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float64]]:
    """The values of `keys` in the run's files, for sparklines; {} where unreadable."""
    from polytrack.store.reader import read_run_files

    try:
        files = read_run_files(directory, keys=frozenset(keys))
    except (PolytrackError, OSError):
        return {}
    return {key: series.values for key, series in files.series.items()}


def run_html(info: RunInfo, sparks: Mapping[str, npt.NDArray[np.float64]] | None = None) -> str:
    """A run's card: who and when, its params, and its metrics (last, min, max, steps)
    with a sparkline each."""
    sparks = sparks or {}
    head = f"<b>{e(info.project)}/{e(info.name)}</b> <code>{e(info.id)}</code> "
    head += status_html(info.status)
    facts = [f"started {e(when(info.created_at))} UTC", f"host {e(info.host)}"]
    if info.user:
        facts.append(f"user {e(info.user)}")
    if info.finished_at is not None:
        facts.append(f"took {info.finished_at - info.created_at:.1f} s")
    parts = [
        f'{STYLE_BLOCK}<div class="polytrack-run">{head}<br><small>{" · ".join(facts)}</small>'
    ]
    if info.tags:
        parts.append(
            "<div>tags: " + ", ".join(f"<code>{e(t)}</code>" for t in info.tags) + "</div>"
        )
    if info.message:
        parts.append(f"<div><i>{e(info.message)}</i></div>")
    if info.params:
        rows = "".join(
            f"<tr><td><code>{e(k)}</code></td><td>{e(number(v))}</td></tr>"
            for k, v in sorted(info.params.items())[:MAX_PARAMS]
        )
        more = len(info.params) - MAX_PARAMS
        if more > 0:
            rows += f"<tr><td colspan=2><i>{more} more</i></td></tr>"
        parts.append(f"{TABLE}<tr><th>param</th><th>value</th></tr>{rows}</table>")
    keys = _user_metrics(info)
    if keys:
        rows = ""
        for key in keys[:MAX_METRICS]:
            m = info.metrics[key]
            spark = sparkline(sparks[key]) if key in sparks else ""
            rows += (
                f"<tr><td><code>{e(key)}</code></td><td>{number(m.last)}</td>"
                f"<td>{number(m.min)}</td><td>{number(m.max)}</td><td>{m.last_step}</td>"
                f"<td>{spark}</td></tr>"
            )
        hidden = len(info.metrics) - min(len(keys), MAX_METRICS)
        if hidden > 0:
            rows += f"<tr><td colspan=6><i>{hidden} more (system metrics included)</i></td></tr>"
        parts.append(
            f"{TABLE}<tr><th>metric</th><th>last</th><th>min</th>"
            f"<th>max</th><th>step</th><th></th></tr>{rows}</table>"
        )
    parts.append("</div>")
    return "".join(parts)


def run_text(info: RunInfo) -> str:
    """A run in a few lines of text: who, params, last metrics."""
    lines = [
        f"run {info.id}  {info.project}/{info.name}  {info.status}  {when(info.created_at)} UTC"
    ]
    if info.params:
        shown = ", ".join(f"{k}={number(v)}" for k, v in sorted(info.params.items())[:MAX_PARAMS])
        lines.append(f"  params:  {shown}")
    keys = _user_metrics(info)
    if keys:
        shown = ", ".join(f"{k}={number(info.metrics[k].last)}" for k in keys[:MAX_METRICS])
        lines.append(f"  metrics: {shown}")
    if info.message:
        lines.append(f"  message: {info.message}")
    return "\n".join(lines)


def _columns(infos: Sequence[RunInfo], limit: int = 6) -> tuple[list[str], list[str]]:
    params = sorted({k for info in infos for k in info.params})[:limit]
    metrics = sorted({k for info in infos for k in _user_metrics(info)})[:limit]
    return params, metrics


def runs_html(infos: Sequence[RunInfo]) -> str:
    """Runs as a table: one row each, with their first params and last metrics."""
    params, metrics = _columns(infos)
    head = "".join(
        f"<th>{e(c)}</th>"
        for c in ["id", "project", "name", "status", "started (UTC)"]
        + [f"params.{p}" for p in params]
        + [f"metrics.{m}" for m in metrics]
    )
    rows = []
    for info in infos:
        cells = [
            f"<code>{e(info.id)}</code>",
            e(info.project),
            e(info.name),
            status_html(info.status),
            e(when(info.created_at)),
            *(e(number(info.params[p])) if p in info.params else "" for p in params),
            *(number(info.metrics[m].last) if m in info.metrics else "" for m in metrics),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    count = f"<small>{len(infos)} run{'s' if len(infos) != 1 else ''}</small>"
    return f"{STYLE_BLOCK}<div>{count}{TABLE}<tr>{head}</tr>{''.join(rows)}</table></div>"


def runs_text(infos: Sequence[RunInfo]) -> str:
    """Runs as aligned text columns: id, project/name, status, last metrics."""
    if not infos:
        return "no runs"
    _, metrics = _columns(infos, limit=3)
    rows = [["id", "name", "status", "started (UTC)", *metrics]]
    for info in infos:
        rows.append(
            [
                info.id,
                f"{info.project}/{info.name}",
                info.status,
                when(info.created_at),
                *(number(info.metrics[m].last) if m in info.metrics else "" for m in metrics),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def require_matplotlib() -> Any:
    """`matplotlib.pyplot`, or an error naming the extra that installs it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'polytrack[plot]'") from exc
    return plt


def draw(
    lines: Iterable[tuple[str, npt.NDArray[np.int64], npt.NDArray[np.float64]]],
    key: str,
    ax: Any | None = None,
) -> Any:
    """Draw each `(label, steps, values)` on `ax` (default a new figure's) against the
    step; returns the Axes."""
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"key must be a non-empty string; got {key!r}")
    plt = require_matplotlib()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    drawn = 0
    for label, steps, values in lines:
        if steps.size:
            ax.plot(steps, values, label=label)
            drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if drawn > 1:
        ax.legend()
    return ax
