"""How a media record shows itself in a notebook: `MediaItem._repr_html_` is `item_html`.

One self-contained HTML fragment per record, no JavaScript and nothing fetched: images,
sound and video as `data:` URIs, histograms and curves as small inline SVG drawings,
tables and confusion matrices as HTML tables, text in `<pre>`, an HTML document inside a
sandboxed `<iframe srcdoc=...>` (no script of it runs, nothing of it reaches the page).
Every string a user chose (names, captions, labels, cells, the text itself) is escaped
with `html.escape`: a caption `<script>` shows as text.

The payloads are read as the contract stores them (`polytrack.media.read` and
`docs/media.md`: JSON for histograms, tables, curves, confusion matrices and figure
specs), not through the kinds' decoders, so a notebook shows a record without pandas or
the figure's library. What would make a notebook heavy is left out and said: files of
more than `MAX_INLINE_BYTES` together, tables past `MAX_ROWS` rows, texts past
`MAX_TEXT_CHARS` characters. A record whose bytes cannot be read shows why, never a
traceback.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from typing import Any, Final, Protocol

from polytrack.errors import PolytrackError
from polytrack.models import MediaBlob

__all__ = ["MAX_INLINE_BYTES", "MAX_ROWS", "MAX_TEXT_CHARS", "item_html"]

MAX_INLINE_BYTES: Final = 5 * 1024 * 1024  # files embedded as data: URIs, per record
MAX_ROWS: Final = 50  # table rows shown
MAX_TEXT_CHARS: Final = 100_000  # characters of a text shown
MAX_CELL_CHARS: Final = 200  # characters of one table cell shown
MAX_POINTS: Final = 1_000  # points of a curve drawn: a ROC of 10^6 scores needs no more
MIN_WIDTH: Final = 96  # images narrower than this are shown scaled up, by a whole factor
WIDTH: Final = 360  # of the SVG drawings, in pixels
HEIGHT: Final = 160
_FONT: Final = "font-family:var(--jp-ui-font-family, sans-serif);font-size:12px"
_TABLE: Final = f'<table class="polytrack-media" style="{_FONT};border-collapse:collapse">'
_CELL: Final = "padding:1px 8px;border:1px solid #ddd;text-align:left"
_COLOR: Final = "#1f77b4"


class MediaItem(Protocol):
    """What is shown of a record: `polytrack.media.read.MediaItem` (named here by its
    shape, since `read` imports this module to display its items)."""

    name: str
    kind: str
    step: int
    shape: tuple[int, ...]
    caption: str | None
    meta: dict[str, Any]
    blobs: tuple[MediaBlob, ...]

    def data(self, index: int = 0) -> bytes: ...


def item_html(item: MediaItem) -> str:
    """The record as an HTML fragment: a title line (name, kind, step), the value, the
    caption under it.

    Args:
        item: a record read back (`RunView.media(name)[i]`).

    Example:
        >>> from IPython.display import HTML
        >>> HTML(item_html(polytrack.get_run("a1b2").media("samples")[-1]))
    """
    title = (
        f'<div style="{_FONT};color:#555"><b>{_e(item.name)}</b> &middot; {_e(item.kind)}'
        f" &middot; step {item.step}</div>"
    )
    try:
        body = _BODIES.get(item.kind, _unknown)(item)
    except (PolytrackError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        # A missing blob or a payload this version cannot read: said, not raised, since
        # a notebook would show a traceback for the whole cell.
        body = _note(f"cannot show this {item.kind}: {exc}")
    caption = (
        f'<div style="{_FONT}">{_e(item.caption)}</div>' if item.caption is not None else ""
    )
    return f'<div class="polytrack-media">{title}{body}{caption}</div>'


# -- the kinds -----------------------------------------------------------------------------


def _image(item: MediaItem) -> str:
    """Every image of the batch, side by side, as long as they fit `MAX_INLINE_BYTES`."""
    files = [i for i, blob in enumerate(item.blobs) if blob.media_type.startswith("image/")]
    # Small images (MNIST's 28x28) drawn larger, pixels kept sharp: a whole multiple.
    width = item.shape[2] if len(item.shape) == 4 and item.shape[2] > 0 else MIN_WIDTH
    size = (
        f"width:{width * max(1, MIN_WIDTH // width)}px;image-rendering:pixelated;"
        if width < MIN_WIDTH
        else ""
    )
    shown: list[str] = []
    budget = MAX_INLINE_BYTES
    for count, index in enumerate(files):
        blob = item.blobs[index]
        if blob.size > budget:
            left = sum(item.blobs[i].size for i in files[count:])
            shown.append(_note(f"{len(files) - count} more image(s) ({_mib(left)}) not shown: "
                               f"over {_mib(MAX_INLINE_BYTES)} inline"))
            break
        budget -= blob.size
        alt = f"{item.name} step {item.step}" + (f" #{count}" if len(files) > 1 else "")
        shown.append(
            f'<img src="{_data_uri(blob.media_type, item.data(index))}" alt="{_e(alt)}" '
            f'style="{size}margin:2px;max-width:100%">'
        )
    return f"<div>{''.join(shown)}</div>"


def _histogram(item: MediaItem) -> str:
    """Bars over the bins' own edges (unequal bins keep their widths), counts as heights."""
    payload = _json(item)
    edges = [float(x) for x in payload["edges"]]
    counts = [float(x) for x in payload["counts"]]
    if len(edges) != len(counts) + 1 or not counts:
        raise ValueError(f"{len(edges)} edges for {len(counts)} counts")
    low, high = edges[0], edges[-1]
    span = high - low
    top = max(max(counts), 0.0) or 1.0
    plot_h = HEIGHT - 18
    bars: list[str] = []
    for index, count in enumerate(counts):
        if span > 0:
            x0 = (edges[index] - low) / span * WIDTH
            x1 = (edges[index + 1] - low) / span * WIDTH
        else:  # every edge equal: bins side by side
            x0, x1 = index * WIDTH / len(counts), (index + 1) * WIDTH / len(counts)
        height = max(count, 0.0) / top * plot_h
        bars.append(
            f'<rect x="{x0:.2f}" y="{plot_h - height:.2f}" width="{max(x1 - x0, 0.5):.2f}" '
            f'height="{height:.2f}"><title>[{_num(edges[index])}, {_num(edges[index + 1])}): '
            f"{_num(count)}</title></rect>"
        )
    total = sum(counts)
    return _svg(
        f'<g fill="{_COLOR}">{"".join(bars)}</g>'
        f'<line x1="0" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#999"/>'
        f'<text x="0" y="{HEIGHT - 4}">{_num(low)}</text>'
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end">{_num(high)}</text>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" text-anchor="middle">'
        f"{len(counts)} bins, {_num(total)} values, highest {_num(top)}</text>",
        label=f"histogram of {item.name}",
    )


def _text(item: MediaItem) -> str:
    text = item.data().decode("utf-8", errors="replace")
    more = ""
    if len(text) > MAX_TEXT_CHARS:
        more = _note(f"… {len(text) - MAX_TEXT_CHARS} more characters not shown")
        text = text[:MAX_TEXT_CHARS]
    return (
        '<pre style="white-space:pre-wrap;max-height:24em;overflow:auto;margin:2px 0">'
        f"{_e(text)}</pre>{more}"
    )


def _html(item: MediaItem) -> str:
    """In a sandboxed iframe: the document's scripts, forms and styles stay inside."""
    size = item.blobs[0].size
    if size > MAX_INLINE_BYTES:
        return _too_large("HTML document", size)
    document = item.data().decode("utf-8", errors="replace")
    return (
        f'<iframe sandbox="" srcdoc="{_e(document)}" title="{_e(item.name)}" '
        'style="width:100%;height:320px;border:1px solid #ddd"></iframe>'
    )


def _table(item: MediaItem) -> str:
    """MLflow's split form `{"columns", "data"}`: the first `MAX_ROWS` rows."""
    payload = _json(item)
    columns = [str(c) for c in payload["columns"]]
    rows: Sequence[Sequence[Any]] = payload["data"]
    head = "".join(f'<th style="{_CELL}">{_e(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{_e(_cell(v))}</td>' for v in row) + "</tr>"
        for row in rows[:MAX_ROWS]
    )
    more = _note(f"… {len(rows) - MAX_ROWS} more rows not shown") if len(rows) > MAX_ROWS else ""
    return f"{_TABLE}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _figure(item: MediaItem) -> str:
    """The PNG the library rendered, where it could; else which library's spec it is."""
    for index, blob in enumerate(item.blobs):
        if blob.media_type == "image/png":
            if blob.size > MAX_INLINE_BYTES:
                return _too_large("figure's PNG", blob.size)
            return (
                f'<img src="{_data_uri("image/png", item.data(index))}" '
                f'alt="{_e(item.name)}" style="max-width:100%">'
            )
    library = item.meta.get("library")
    if library is None:
        library = _json(item).get("library", "unknown")
    return _note(
        f"a {library} figure, kept as its spec (no PNG rendering): polytrack ui draws it, "
        ".value holds the spec"
    )


def _audio(item: MediaItem) -> str:
    blob = item.blobs[0]
    if blob.size > MAX_INLINE_BYTES:
        return _too_large("sound", blob.size)
    return f'<audio controls src="{_data_uri(blob.media_type, item.data())}"></audio>'


def _video(item: MediaItem) -> str:
    """A GIF as an image (it plays by itself), MP4/WebM in a `<video>`."""
    blob = item.blobs[0]
    if blob.size > MAX_INLINE_BYTES:
        return _too_large("video", blob.size)
    uri = _data_uri(blob.media_type, item.data())
    if blob.media_type.startswith("image/"):
        return f'<img src="{uri}" alt="{_e(item.name)}" style="max-width:100%">'
    return f'<video controls src="{uri}" style="max-width:100%"></video>'


def _curve(item: MediaItem) -> str:
    """A polyline over the points' own ranges (ROC and PR: the unit square), axes labelled
    with their ends; the kind, annotation and AUC / average precision under it."""
    payload = _json(item)
    points = [
        (float(x), float(y))
        for x, y in zip(payload["x"], payload["y"], strict=True)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    if len(points) > MAX_POINTS:
        stride = len(points) / MAX_POINTS
        points = [points[int(i * stride)] for i in range(MAX_POINTS)] + [points[-1]]
    kind = str(item.meta.get("kind", "custom"))
    if kind in ("roc", "pr"):
        x_low, x_high, y_low, y_high = 0.0, 1.0, 0.0, 1.0
    elif points:
        x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
        y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    else:
        x_low = x_high = y_low = y_high = 0.0
    plot_w, plot_h = WIDTH - 8, HEIGHT - 22
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0
    line = " ".join(
        f"{4 + (x - x_low) / x_span * plot_w:.2f},{4 + plot_h - (y - y_low) / y_span * plot_h:.2f}"
        for x, y in points
    )
    drawing = _svg(
        f'<rect x="4" y="4" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ddd"/>'
        f'<polyline fill="none" stroke="{_COLOR}" stroke-width="1.5" points="{line}"/>'
        f'<text x="4" y="{HEIGHT - 4}">x {_num(x_low)} to {_num(x_high)}</text>'
        f'<text x="{WIDTH - 4}" y="{HEIGHT - 4}" text-anchor="end">'
        f"y {_num(y_low)} to {_num(y_high)}</text>",
        label=f"{kind} curve of {item.name}",
    )
    facts = [kind]
    if item.meta.get("annotation"):  # log_roc_curve's says the AUC already ("AUC=0.75")
        facts.append(str(item.meta["annotation"]))
    else:
        for key, label in (("auc", "AUC"), ("average_precision", "average precision")):
            if isinstance(item.meta.get(key), int | float):
                facts.append(f"{label} {_num(item.meta[key])}")
    return f'{drawing}<div style="{_FONT}">{_e(" · ".join(facts))}</div>'


def _confusion(item: MediaItem) -> str:
    """Rows the true labels (`y`), columns the predicted ones (`x`), cells shaded by count."""
    payload = _json(item)
    x_labels, y_labels, z = payload["x"], payload["y"], payload["z"]
    top = max((float(v) for row in z for v in row), default=0.0) or 1.0
    head = f'<th style="{_CELL}">true \\ predicted</th>' + "".join(
        f'<th style="{_CELL}">{_e(label)}</th>' for label in x_labels
    )
    rows = []
    for label, row in zip(y_labels, z, strict=True):
        cells = "".join(
            f'<td style="{_CELL};text-align:right;'
            f'background:rgba(31,119,180,{float(v) / top * 0.8:.2f})">{_e(_num(v))}</td>'
            for v in row
        )
        rows.append(f'<tr><th style="{_CELL}">{_e(label)}</th>{cells}</tr>')
    return f"{_TABLE}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _unknown(item: MediaItem) -> str:
    return _note(f"a {item.kind} this polytrack cannot show")


_BODIES: Final = {
    "image": _image,
    "histogram": _histogram,
    "text": _text,
    "html": _html,
    "table": _table,
    "figure": _figure,
    "audio": _audio,
    "video": _video,
    "curve": _curve,
    "confusion": _confusion,
}


# -- pieces --------------------------------------------------------------------------------


def _e(value: object) -> str:
    """`value` as text, escaped for HTML text and attributes (quotes included)."""
    return html.escape(str(value), quote=True)


def _num(value: object) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


def _cell(value: Any) -> str:
    """A table cell as text: strings as they are, other JSON values as JSON; cut long."""
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _json(item: MediaItem) -> dict[str, Any]:
    """The record's JSON file (the first one: a figure's spec comes first)."""
    for index, blob in enumerate(item.blobs):
        if blob.media_type == "application/json":
            payload = json.loads(item.data(index))
            if not isinstance(payload, dict):
                raise ValueError("its JSON file holds no object")
            return payload
    raise ValueError("it has no JSON file")


def _data_uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _svg(content: str, *, label: str) -> str:
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)}" '
        f'style="{_FONT};overflow:visible">{content}</svg>'
    )


def _note(text: str) -> str:
    return f'<div style="{_FONT};color:#777;font-style:italic">{_e(text)}</div>'


def _too_large(what: str, size: int) -> str:
    return _note(
        f"this {what} is {_mib(size)}, over the {_mib(MAX_INLINE_BYTES)} shown inline: "
        "fetch it with `polytrack media get`"
    )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
