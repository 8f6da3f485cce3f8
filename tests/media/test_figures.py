"""Figures: each library's chart logged through a real run and read back as its own spec
(plus the PNG or HTML it can make); what is no figure refused, nothing recorded."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polytrack.errors import InvalidInputError
from polytrack.media.figures import figure_job, library_of, mpl_to_plotly_job

from ._logged import logged


def media_types(item: Any) -> list[str]:
    return [blob.media_type for blob in item.blobs]


@pytest.fixture
def pyplot() -> Any:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_a_matplotlib_figure_is_kept_as_png(home: Path, pyplot: Any) -> None:
    """A matplotlib figure is drawn on the caller's thread: the spec names the library,
    the PNG is the figure's own savefig, pixel for pixel."""
    from PIL import Image

    figure, axes = pyplot.subplots(figsize=(2, 1), dpi=50)
    axes.plot([0, 1, 2], [2, 0, 1])
    out = io.BytesIO()
    figure.savefig(out, format="png")
    expected = np.asarray(Image.open(out))
    view = logged(home, lambda run: run.log_figure("mpl", figure, step=1, caption="loss"))
    [item] = view.media("mpl")
    assert (item.kind, item.step, item.shape, item.caption) == ("figure", 1, (), "loss")
    assert item.meta == {"library": "matplotlib"}
    assert item.value == {"library": "matplotlib", "spec": {"width": 100, "height": 50}}
    assert media_types(item) == ["application/json", "image/png"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(item.data(1)))), expected)


def test_a_plotly_figure_is_kept_as_plotlys_json(home: Path) -> None:
    """A plotly figure is its `plotly.io.to_json` spec, which plotly reads back equal."""
    go = pytest.importorskip("plotly.graph_objects")
    import plotly.io

    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[4.5, float("nan"), 6.0], name="acc"))
    figure.update_layout(title="accuracy")
    view = logged(home, lambda run: run.log_figure("plotly", figure))
    [item] = view.media("plotly")
    assert item.value["library"] == "plotly" and item.meta["library"] == "plotly"
    assert item.value["spec"] == json.loads(plotly.io.to_json(figure, validate=False))
    back = plotly.io.from_json(json.dumps(item.value["spec"]))
    assert back.layout.title.text == "accuracy" and list(back.data[0].x) == [1, 2, 3]


def test_a_bokeh_figure_is_kept_as_its_json_item_and_standalone_html(home: Path) -> None:
    """A bokeh figure is its `json_item` spec plus an HTML page with bokeh's JavaScript
    inline: no <script src>, so it shows with no network."""
    pytest.importorskip("bokeh")
    from bokeh.plotting import figure as bokeh_figure

    plot = bokeh_figure(title="loss")
    plot.line([1, 2, 3], [3, 2, 1])
    view = logged(home, lambda run: run.log_figure("bokeh", plot))
    [item] = view.media("bokeh")
    assert media_types(item) == ["application/json", "text/html"]
    spec = item.value["spec"]
    assert item.value["library"] == "bokeh" and spec["root_id"] == plot.id
    html = item.data(1).decode()
    assert "<script src" not in html and "Bokeh" in html and plot.id in html


def test_an_altair_chart_is_kept_as_vega_lite_with_a_png(home: Path) -> None:
    """An altair chart is its vega-lite spec (`to_dict()`), and a PNG made by vl-convert."""
    alt = pytest.importorskip("altair")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("vl_convert")
    from PIL import Image

    chart = (
        alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [3, 1, 2]})).mark_line().encode(x="x", y="y")
    )
    view = logged(home, lambda run: run.log_figure("altair", chart))
    [item] = view.media("altair")
    assert item.value == {"library": "vega-lite", "spec": chart.to_dict()}
    assert media_types(item) == ["application/json", "image/png"]
    assert Image.open(io.BytesIO(item.data(1))).size[0] > 0


def test_mpl_to_plotly_converts_or_falls_back_to_the_png(pyplot: Any) -> None:
    """Polyaxon's log_mpl_plotly_chart: a plotly spec where plotly's converter works, the
    matplotlib PNG with converted=False where it does not."""
    figure, axes = pyplot.subplots()
    axes.plot([0, 1], [1, 0])
    job = mpl_to_plotly_job("chart", figure, 0)
    files, _, _ = job.encode()
    if job.meta["converted"]:
        assert job.meta["library"] == "plotly"
        assert json.loads(files[0].data)["library"] == "plotly"
    else:
        assert job.meta["library"] == "matplotlib"
        assert [f.media_type for f in files] == ["application/json", "image/png"]

    class Unconvertible:  # what plotly's converter cannot read falls back
        __module__ = "matplotlib.figure"

        def savefig(self, out: Any, format: str) -> None:
            figure.savefig(out, format=format)

    job = mpl_to_plotly_job("chart", Unconvertible(), 0)
    assert job.meta == {"library": "matplotlib", "converted": False}
    assert [f.media_type for f in job.encode()[0]] == ["application/json", "image/png"]


def test_the_library_is_told_without_importing_one() -> None:
    """Plain objects are no figure of any library; nothing is imported to find out."""
    assert library_of(object()) is None and library_of({"data": []}) is None


@pytest.mark.parametrize("figure", [{"data": []}, np.zeros((2, 2)), "plot.png", None])
def test_what_is_no_figure_is_refused_and_nothing_recorded(home: Path, figure: Any) -> None:
    """A dict, an array, a path: InvalidInputError naming `figure` and its type."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError, match=r"figure must be .*; got (builtins|numpy)"):
            run.log_figure("bad", figure)

    assert logged(home, log).media("bad") == []


def test_an_altair_chart_its_library_refuses_is_refused() -> None:
    """An altair chart whose spec altair will not make (past its 5,000 inline rows) is
    refused naming `figure`."""
    alt = pytest.importorskip("altair")
    pd = pytest.importorskip("pandas")
    chart = alt.Chart(pd.DataFrame({"x": range(5001)})).mark_point().encode(x="x:Q")
    with pytest.raises(InvalidInputError, match="figure: altair could not make its spec"):
        figure_job("bad", chart, 0)
