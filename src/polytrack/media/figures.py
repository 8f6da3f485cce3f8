"""Figures: charts of matplotlib, plotly, bokeh and altair, kept as the library's own JSON
spec (`{"library", "spec"}`) plus a PNG where the library can render one.

The library is told by the figure's type's module: none is imported that the caller has
not imported already, save the optional renderers named below. The spec is made on the
caller's thread (a figure is a mutable object the caller may change as soon as the call
returns, and matplotlib and bokeh are not thread safe); what is slow and needs no figure
object (a PNG from a plotly or vega-lite spec) is made on the encoder thread.

| library | spec | other files |
| --- | --- | --- |
| matplotlib | `{"width", "height"}` of the PNG | `image/png` (savefig, on the caller's thread) |
| plotly | `plotly.io.to_json(figure)` | `image/png` when kaleido is installed and works |
| bokeh | `bokeh.embed.json_item(figure)` | `text/html`: standalone, INLINE resources |
| vega-lite (altair) | `chart.to_dict()` | `image/png` when vl-convert-python is installed |

plotly (6 and later) writes numpy arrays in its spec as typed base64 (`{"dtype", "bdata"}`),
which plotly.js reads from 2.28 on. Nothing fetches from the network: bokeh's HTML carries
its JavaScript inline, and vl-convert is allowed no base URL.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from polytrack._text import safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media.encoder import Encoded, MediaJob
from polytrack.media.images import figure_png
from polytrack.models import MediaBlob

__all__ = ["LIBRARIES", "decode", "figure_job", "library_of", "mpl_to_plotly_job"]

LIBRARIES: Final = ("matplotlib", "plotly", "bokeh", "vega-lite")
_JSON: Final = "application/json"

_Encode = Callable[[], tuple[Sequence[Encoded], "tuple[int, ...] | None", dict[str, Any]]]


def library_of(figure: Any) -> str | None:
    """The library that made `figure` ("matplotlib", "plotly", "bokeh", "vega-lite"),
    told by its type's module without importing anything; None for anything else."""
    module = type(figure).__module__
    if module.startswith("matplotlib.") and hasattr(figure, "savefig"):
        return "matplotlib"
    if module.startswith("matplotlib.") and hasattr(figure, "get_figure"):
        return "matplotlib"  # an Axes: its figure is drawn
    if module.startswith("plotly.") and hasattr(figure, "to_plotly_json"):
        return "plotly"
    if module.startswith("bokeh.") and hasattr(figure, "references"):
        return "bokeh"
    if module.startswith("altair.") and hasattr(figure, "to_dict"):
        return "vega-lite"
    return None


def figure_job(
    name: str, figure: Any, step: int, *, caption: str | None = None, close: bool = False
) -> MediaJob:
    """The job of one `log_figure` call: the spec made now, a PNG later where it can be.

    Args:
        figure: a matplotlib Figure (or Axes), a plotly Figure, a bokeh model (a figure,
            a layout) or an altair Chart.
        close: close a matplotlib figure once drawn (Polyaxon's `log_mpl_image`).

    Raises:
        InvalidInputError: `figure` is none of those, or its library cannot serialize it.

    Example:
        >>> job = figure_job("loss", plotly_figure, 3)
    """
    library = library_of(figure)
    if library == "matplotlib":
        return _matplotlib_job(name, figure, step, caption, close, {})
    if library == "plotly":
        spec = _plotly_spec(figure)
        return _job(name, step, caption, "plotly", len(spec), lambda: _encode_plotly(spec), {})
    if library == "bokeh":
        files = _bokeh_files(figure)
        size = sum(len(file.data) for file in files)
        return _job(name, step, caption, "bokeh", size, lambda: (files, None, {}), {})
    if library == "vega-lite":
        chart = _altair_spec(figure)
        return _job(name, step, caption, "vega-lite", 0, lambda: _encode_vega_lite(chart), {})
    raise InvalidInputError(
        "figure must be a matplotlib, plotly, bokeh or altair figure; got "
        f"{type(figure).__module__}.{type(figure).__qualname__} {safe_repr(figure)}"
    )


def mpl_to_plotly_job(
    name: str, figure: Any, step: int, *, caption: str | None = None, close: bool = False
) -> MediaJob:
    """A matplotlib figure converted to a plotly one (Polyaxon's `log_mpl_plotly_chart`),
    or, where plotly's converter fails (it knows few of matplotlib's artists, and no
    recent matplotlib well), the figure as a PNG with `meta["converted"] = False`.

    Raises:
        InvalidInputError: `figure` is no matplotlib figure.

    Example:
        >>> job = mpl_to_plotly_job("curve", plt.gcf(), 0)
    """
    if library_of(figure) != "matplotlib":
        raise InvalidInputError(
            f"figure must be a matplotlib figure; got {type(figure).__module__}."
            f"{type(figure).__qualname__} {safe_repr(figure)}"
        )
    figure = _mpl_figure(figure)
    converted = None
    if importlib.util.find_spec("plotly") is not None:
        try:
            with warnings.catch_warnings():  # its deprecation noise is not the caller's
                warnings.simplefilter("ignore")
                tools = importlib.import_module("plotly.tools")  # untyped: no stubs
                converted = _plotly_spec(tools.mpl_to_plotly(figure))
        except Exception:
            converted = None
    if converted is None:
        return _matplotlib_job(name, figure, step, caption, close, {"converted": False})
    spec = converted
    if close:
        _close(figure)
    return _job(
        name, step, caption, "plotly", len(spec), lambda: _encode_plotly(spec), {"converted": True}
    )


def _job(
    name: str,
    step: int,
    caption: str | None,
    library: str,
    size: int,
    encode: _Encode,
    meta: dict[str, Any],
) -> MediaJob:
    return MediaJob(
        name=name,
        kind="figure",
        step=step,
        encode=encode,
        shape=(),
        caption=caption,
        meta={"library": library, **meta},
        size=size,
        logged_at=time.time(),
    )


def _payload(library: str, spec: Any) -> bytes:
    return json.dumps({"library": library, "spec": spec}, separators=(",", ":")).encode()


def _mpl_figure(figure: Any) -> Any:
    return figure if hasattr(figure, "savefig") else figure.get_figure()


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _matplotlib_job(
    name: str, figure: Any, step: int, caption: str | None, close: bool, meta: dict[str, Any]
) -> MediaJob:
    # Drawn here: matplotlib is not thread safe, and the figure is the caller's to change.
    png = figure_png(_mpl_figure(figure), close=close)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    payload = _payload("matplotlib", {"width": width, "height": height})
    files = [Encoded(payload, _JSON), Encoded(png, "image/png")]
    return _job(name, step, caption, "matplotlib", len(png), lambda: (files, None, {}), meta)


def _plotly_spec(figure: Any) -> str:
    """The figure's JSON by plotly's own encoder (numpy arrays, dates, NaN as null)."""
    plotly_io = importlib.import_module("plotly.io")  # untyped: no stubs
    try:
        return str(plotly_io.to_json(figure, validate=False))
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"figure: plotly could not serialize it: {exc}") from None


def _encode_plotly(spec: str) -> tuple[list[Encoded], None, dict[str, Any]]:
    payload = ('{"library":"plotly","spec":' + spec + "}").encode()
    files = [Encoded(payload, _JSON)]
    png = _plotly_png(spec)
    if png is not None:
        files.append(Encoded(png, "image/png"))
    return files, None, {}


def _plotly_png(spec: str) -> bytes | None:
    """A PNG of a plotly spec with kaleido, when it is installed and works; else None."""
    if importlib.util.find_spec("kaleido") is None:
        return None
    try:
        plotly_io = importlib.import_module("plotly.io")
        image = plotly_io.to_image(plotly_io.from_json(spec), format="png")
    except Exception:
        return None
    return bytes(image) if isinstance(image, (bytes, bytearray)) else None


def _bokeh_files(figure: Any) -> list[Encoded]:
    """The `json_item` spec and a standalone HTML page with bokeh's JavaScript inline."""
    from bokeh.embed import file_html, json_item
    from bokeh.resources import INLINE

    try:
        item = json.dumps(json_item(figure), separators=(",", ":"))
        html = file_html(figure, resources=INLINE, title="")
    except Exception as exc:  # bokeh raises ValueError, RuntimeError, its own errors
        raise InvalidInputError(f"figure: bokeh could not serialize it: {exc}") from None
    return [
        Encoded(f'{{"library":"bokeh","spec":{item}}}'.encode(), _JSON),
        Encoded(html.encode("utf-8"), "text/html"),
    ]


def _altair_spec(chart: Any) -> dict[str, Any]:
    try:
        spec = chart.to_dict()
    except Exception as exc:  # a schema error, too many rows (MaxRowsError), ...
        raise InvalidInputError(f"figure: altair could not make its spec: {exc}") from None
    try:
        json.dumps(spec)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"figure: the altair spec is not JSON: {exc}") from None
    return dict(spec)


def _encode_vega_lite(spec: dict[str, Any]) -> tuple[list[Encoded], None, dict[str, Any]]:
    files = [Encoded(_payload("vega-lite", spec), _JSON)]
    if importlib.util.find_spec("vl_convert") is not None:
        import vl_convert

        try:
            # No base URL allowed: a chart whose data is a URL is not fetched.
            png = vl_convert.vegalite_to_png(spec, allowed_base_urls=[])
        except Exception:
            pass
        else:
            files.append(Encoded(bytes(png), "image/png"))
    return files, None, {}


class _Item(Protocol):
    """What `decode` reads of a `polytrack.media.read.MediaItem` (which imports this
    module: a Protocol keeps the import one way)."""

    @property
    def blobs(self) -> tuple[MediaBlob, ...]: ...

    @property
    def meta(self) -> dict[str, Any]: ...

    def data(self, index: int = 0) -> bytes: ...


def decode(item: _Item) -> dict[str, Any]:
    """A figure's spec read back: `{"library": ..., "spec": ...}` (the PNG and HTML are
    `item.data(i)` for the blobs of those media types)."""
    for index, blob in enumerate(item.blobs):
        if blob.media_type == _JSON:
            value = json.loads(item.data(index))
            return dict(value)
    return {"library": item.meta.get("library"), "spec": None}
