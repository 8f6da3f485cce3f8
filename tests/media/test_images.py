"""Images and histograms: every accepted form logged through a real run and read back
(PNG pixels exactly, counts exactly); bad input refused naming the argument and its
shape, with nothing recorded and the run going on."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack.errors import InvalidInputError, TrackingWarning
from polytrack.media import images

from ._logged import logged

RNG = np.random.default_rng(7)



def pixels(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def test_uint8_images_come_back_pixel_for_pixel(home: Path) -> None:
    """HWC RGB and RGBA, HW grayscale and HWx1 come back exactly as logged."""
    rgb, rgba, gray, single = pixels(20, 30, 3), pixels(8, 9, 4), pixels(5, 7), pixels(6, 4, 1)

    def log(run: Any) -> None:
        run.log_image("rgb", rgb, step=0)  # before the name is known: the general path
        run.log_image("rgb", rgb[::-1], step=1)  # the hot path, a non-contiguous view
        run.log_image("rgba", rgba, step=0)
        run.log_image("gray", gray, step=0)
        run.log_image("single", single, step=0)

    view = logged(home, log)
    steps = view.media("rgb")
    assert [item.step for item in steps] == [0, 1]
    assert np.array_equal(steps[0].value, rgb)
    assert np.array_equal(steps[1].value, rgb[::-1])
    assert steps[0].shape == (1, 20, 30, 3)
    assert np.array_equal(view.media("rgba")[0].value, rgba)
    assert np.array_equal(view.media("gray")[0].value, gray)
    assert np.array_equal(view.media("single")[0].value, single[:, :, 0])
    assert view.media_keys() == {
        "gray": ("image", 1), "rgb": ("image", 2), "rgba": ("image", 1), "single": ("image", 1)
    }  # fmt: skip


def test_layouts_batches_and_number_types(home: Path) -> None:
    """CHW, a batch NHWC/NCHW as one step, floats in [0, 1] (clipped) and bools."""
    hwc = pixels(6, 5, 3)
    batch = pixels(4, 6, 5, 3)
    floats = np.array([[[0.0], [0.5], [1.0], [2.0], [-1.0], [np.nan]]])  # (1, 6, 1)

    def log(run: Any) -> None:
        run.log_image("chw", hwc.transpose(2, 0, 1), step=0)
        run.log_image("nhwc", batch, step=0, caption="four")
        run.log_image("nchw", batch.transpose(0, 3, 1, 2), step=0)
        run.log_image("floats", floats, step=0)
        run.log_image("bools", np.array([[True, False]]), step=0)
        run.log_image("named", hwc.transpose(2, 0, 1), step=0, dataformats="CHW")

    view = logged(home, log)
    assert np.array_equal(view.media("chw")[0].value, hwc)
    item = view.media("nhwc")[0]
    assert item.caption == "four" and item.shape == (4, 6, 5, 3) and len(item.blobs) == 4
    assert np.array_equal(item.value, batch)
    assert np.array_equal(view.media("nchw")[0].value, batch)
    assert view.media("floats")[0].value[0].tolist() == [0, 128, 255, 255, 0, 0]
    assert view.media("bools")[0].value.tolist() == [[255, 0]]
    assert np.array_equal(view.media("named")[0].value, hwc)


def test_pil_images_and_matplotlib_figures(home: Path) -> None:
    """A PIL image comes back as its pixels; a matplotlib figure as the PNG it renders."""
    from PIL import Image

    rgb = pixels(10, 12, 3)
    palette = Image.fromarray(rgb).convert("P")

    def log(run: Any) -> None:
        run.log_image("pil", Image.fromarray(rgb), step=0)
        run.log_image("palette", palette, step=0)

    view = logged(home, log)
    assert np.array_equal(view.media("pil")[0].value, rgb)
    assert np.array_equal(view.media("palette")[0].value, np.asarray(palette.convert("RGB")))

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 1), dpi=50)
    axes.plot([0, 1], [1, 0])
    view = logged(home, lambda run: run.log_image("figure", figure, step=3))
    plt.close(figure)
    item = view.media("figure")[0]
    assert item.step == 3 and item.value.shape == (50, 100, 4)
    assert item.data().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (np.zeros((2, 5, 5, 5), np.uint8), ["data", "(2, 5, 5, 5)", "batch"]),
        (np.zeros((4, 4), object), ["data", "object", "(4, 4)"]),
        (np.zeros((5, 5, 2), np.uint8), ["data", "(5, 5, 2)"]),
        (np.zeros((0, 3, 3), np.uint8), ["data", "(0, 3, 3)"]),
        (np.zeros(5, np.uint8), ["data", "(5,)"]),
        ("not an image", ["data", "str"]),
    ],
)
def test_bad_images_are_refused_and_nothing_is_recorded(
    home: Path, data: Any, words: list[str]
) -> None:
    """Refused with InvalidInputError naming `data` and its shape; the run goes on."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError) as caught:
            run.log_image("bad", data, step=0)
        for word in words:
            assert word in str(caught.value)
        run.log_image("good", pixels(2, 2, 3), step=0)

    view = logged(home, log)
    assert view.media_keys() == {"good": ("image", 1)}


def test_bad_names_steps_captions_and_formats_are_refused(home: Path) -> None:
    """Each names what is wrong with it."""

    def log(run: Any) -> None:
        image = pixels(2, 2, 3)
        for kwargs, word in (
            ({"name": ""}, "name"),
            ({"name": 3}, "name"),
            ({"step": -1}, "step"),
            ({"step": 1.5}, "step"),
            ({"caption": 7}, "caption"),
            ({"dataformats": "XYZ"}, "dataformats"),
        ):
            call = {"name": "x", "data": image, "step": 0, **kwargs}
            with pytest.raises(InvalidInputError, match=word):
                run.log_image(**call)

    assert logged(home, log).media_keys() == {}


def test_large_images_are_scaled_down_by_the_setting(home: Path) -> None:
    """Past `media_max_side` an image is scaled down, aspect kept, and says from what."""
    big = pixels(40, 100, 3)
    settings = polytrack.Settings.from_env({"POLYTRACK_MEDIA_MAX_SIDE": "50"})
    view = logged(home, lambda run: run.log_image("big", big, step=0), settings=settings)
    item = view.media("big")[0]
    assert item.value.shape == (20, 50, 3)
    assert item.shape == (1, 20, 50, 3) and item.meta["scaled_from"] == [40, 100]


def test_the_fast_encoding_keeps_the_pixels() -> None:
    """The stored PNG the encoder uses when it is behind decodes to the same pixels."""
    for shape in ((9, 7, 3), (9, 7, 4), (9, 7, 1)):
        array = pixels(*shape)
        for fast in (False, True):
            files, nhwc, _ = images.encode_batch(array, "HWC", 0, None, fast=fast)
            decoded = images.decode_png([files[0].data])
            assert np.array_equal(decoded.reshape(shape), array), (shape, fast)
            assert nhwc == (1, *shape)


def test_a_burst_of_images_is_all_recorded_and_exact(home: Path) -> None:
    """200 images logged as fast as the loop goes: every one recorded, pixels exact
    (the encoder takes its fast encoding for part of them)."""
    frames = [pixels(16, 16, 3) for _ in range(5)]

    def log(run: Any) -> None:
        for step in range(200):
            run.log_image("burst", frames[step % 5], step=step)

    items = logged(home, log).media("burst")
    assert [item.step for item in items] == list(range(200))
    for item in items[::17]:
        assert np.array_equal(item.value, frames[item.step % 5])


def test_boxes_are_drawn_and_kept(home: Path) -> None:
    """log_image_with_boxes draws the boxes and keeps them, with labels, as numbers."""
    image = np.zeros((20, 20, 3), np.uint8)
    view = logged(
        home,
        lambda run: run.log_image_with_boxes("det", image, [[2, 2, 10, 12]], labels=["cat"]),
    )
    item = view.media("det")[0]
    assert item.meta["boxes"] == [{"box": [2.0, 2.0, 10.0, 12.0], "label": "cat"}]
    assert item.value[2, 5].tolist() == [255, 0, 0]  # on the box's top edge
    with pytest.raises(InvalidInputError, match="boxes"):
        images.check_boxes([[1, 2, 3]])
    with pytest.raises(InvalidInputError, match="labels"):
        images.check_boxes([[1, 2, 3, 4]], ["a", "b"])


def test_histograms_keep_numpys_counts_exactly(home: Path) -> None:
    """log_histogram bins with numpy at log time; log_np_histogram keeps given bins."""
    values = RNG.normal(size=(50, 40))
    counts, edges = np.histogram(values, bins=30)

    def log(run: Any) -> None:
        run.log_histogram("weights", values, step=1, bins=30)
        run.log_histogram("ints", np.arange(10), step=1)
        run.log_np_histogram("given", edges, counts, step=2)

    view = logged(home, log)
    hist = view.media("weights")[0].value
    assert np.array_equal(hist.counts, counts) and np.array_equal(hist.edges, edges)
    assert view.media("weights")[0].shape == (30,)
    assert view.media("ints")[0].value.counts.sum() == 10
    assert view.media("given")[0].value == hist


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda run: run.log_histogram("h", [1.0, np.nan]), "NaN"),
        (lambda run: run.log_histogram("h", np.array([np.inf, 1.0])), "infinite"),
        (lambda run: run.log_histogram("h", []), "empty"),
        (lambda run: run.log_histogram("h", np.array(["a"], object)), "dtype object"),
        (lambda run: run.log_histogram("h", [1.0], bins=0), "bins"),
        (lambda run: run.log_np_histogram("h", [0, 1, 2, 3, 4, 5], [1, 2]), "shape"),
        (lambda run: run.log_np_histogram("h", [2, 1, 0], [1, 2]), "sorted"),
    ],
)
def test_bad_histograms_are_refused(home: Path, call: Callable[[Any], None], word: str) -> None:
    """NaN, empty, object dtypes, bad bins, mismatched lengths: refused, nothing kept."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError, match=word):
            call(run)

    assert logged(home, log).media_keys() == {}


def test_text_and_html_come_back_as_logged(home: Path) -> None:
    """Text and HTML keep every character; the step defaults to the current one."""

    def log(run: Any) -> None:
        run.log_metrics({"loss": 1.0}, step=4)
        run.log_text("sample", "naïve 🚀\nline two")
        run.log_html("report", "<h1>Epoch</h1>", step=9)
        with pytest.raises(InvalidInputError, match="text"):
            run.log_text("sample", b"bytes")
        with pytest.raises(InvalidInputError, match="surrogate"):
            run.log_text("sample", "x\udc80")

    view = logged(home, log)
    text = view.media("sample")[0]
    assert (text.step, text.kind, text.value) == (4, "text", "naïve 🚀\nline two")
    assert view.media("report")[0].value == "<h1>Epoch</h1>"


def test_module_level_calls_use_the_current_run(home: Path) -> None:
    """polytrack.log_image and friends reach the current run; with none they warn once."""
    with pytest.warns(TrackingWarning, match="log_image"):
        polytrack.log_image("x", pixels(2, 2, 3))
    run = polytrack.init(dir=home, capture=False)
    polytrack.log_image("x", pixels(2, 2, 3), step=1)
    polytrack.log_histogram("h", [1, 2, 3], step=1)
    run.finish()
    assert polytrack.get_run(run.id, home=home).media_keys() == {
        "h": ("histogram", 1), "x": ("image", 1)
    }  # fmt: skip


def test_after_finish_media_calls_warn_once_and_record_nothing(home: Path) -> None:
    """A finished run ignores media calls with one warning, as it does metrics."""
    run = polytrack.init(dir=home, capture=False)
    run.log_image("x", pixels(2, 2, 3), step=0)
    run.finish()
    with pytest.warns(TrackingWarning, match="finished"):
        run.log_image("x", pixels(2, 2, 3), step=1)
        run.log_text("t", "late")
    assert polytrack.get_run(run.id, home=home).media_keys() == {"x": ("image", 1)}


def test_a_disabled_run_takes_media_calls_and_keeps_nothing(home: Path) -> None:
    """mode="disabled": media calls cost nothing and record nothing."""
    run = polytrack.init(dir=home, mode="disabled")
    run.log_image("x", pixels(2, 2, 3))
    run.log_histogram("h", [1.0])
    assert run.media("x") == []
    run.finish()


def test_reading_a_step_twice_takes_the_last(home: Path) -> None:
    """Two values at one step: readers show the last logged."""
    first, second = pixels(3, 3, 3), pixels(3, 3, 3)

    def log(run: Any) -> None:
        run.log_image("x", first, step=5)
        run.log_image("x", second, step=5)
        assert np.array_equal(run.media("x")[0].value, second)  # the live run drains first

    items = logged(home, log).media("x")
    assert len(items) == 1 and np.array_equal(items[0].value, second)
    assert io.BytesIO(items[0].data()).read(4) == b"\x89PNG"
