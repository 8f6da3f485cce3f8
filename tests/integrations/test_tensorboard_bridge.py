"""polytrack.integrations.tensorboard: real SummaryWriters (torch's and tensorboardX's)
mirrored into a run, their event files still written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import polytrack
from polytrack.integrations import tensorboard as bridge


def _torch_writer() -> type:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def _tbx_writer() -> type:
    tensorboardX = pytest.importorskip("tensorboardX")
    return tensorboardX.SummaryWriter  # type: ignore[no-any-return]


@pytest.fixture(params=["torch", "tensorboardX"])
def writer_class(request: pytest.FixtureRequest) -> Iterator[type]:
    cls = _torch_writer() if request.param == "torch" else _tbx_writer()
    yield cls
    bridge.unpatch()  # a failed test leaves no class patched


def _scalars(logdir: Path, tag: str) -> list[tuple[int, float]]:
    """What the writer put in its event file for `tag`, read back by TensorBoard."""
    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def test_writer_calls_are_mirrored_with_tags_and_steps(tmp_path: Path, writer_class: type) -> None:
    """Scalars, histograms, images, text and hparams reach the run at the writer's steps."""
    home = tmp_path / "home"
    run = polytrack.init(project="tb", dir=home, capture=False)
    logdir = tmp_path / "tb"
    image = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)  # CHW
    batch = np.random.default_rng(0).random((2, 4, 5, 3))  # NHWC floats in [0, 1)
    bridge.patch()
    writer = writer_class(str(logdir))
    writer.add_scalar("loss", 0.5, 3)
    writer.add_scalar("loss", 0.25, global_step=4)
    writer.add_scalars("group", {"a": 1.0, "b": 2.0}, 5)
    writer.add_histogram("weights", np.arange(100, dtype=np.float64), 2)
    writer.add_image("sample", image, 1)
    writer.add_images("batch", batch, 2, dataformats="NHWC")
    writer.add_text("note", "hello tensorboard", 1)
    writer.add_hparams({"lr": 0.1, "batch": 4}, {"hp/accuracy": 0.9}, global_step=7)
    writer.close()
    bridge.unpatch()

    assert run.media("sample")[0].step == 1
    assert run.media("sample")[0].value.tolist() == image.transpose(1, 2, 0).tolist()
    (histogram,) = run.media("weights")
    assert histogram.step == 2 and histogram.kind == "histogram"
    assert int(histogram.value.counts.sum()) == 100
    assert histogram.value.edges[0] == 0.0 and histogram.value.edges[-1] == 99.0
    (images,) = run.media("batch")
    assert images.value.shape == (2, 4, 5, 3)
    assert np.abs(images.value / 255.0 - batch).max() < 1 / 255 + 1e-9
    assert [(t.step, t.value) for t in run.media("note")] == [(1, "hello tensorboard")]
    run.finish()

    view = polytrack.get_run(run.id, home=home)
    steps, values = view.history("loss")
    assert steps.tolist() == [3, 4] and values.tolist() == [0.5, 0.25]
    assert view.history("group/a")[0].tolist() == [5]
    assert view.history("group/b")[1].tolist() == [2.0]
    assert view.params == {"lr": 0.1, "batch": 4}
    steps, values = view.history("hp/accuracy")  # once: the writer's own add_scalar is not
    assert steps.tolist() == [7] and values.tolist() == pytest.approx([0.9])
    # The writer was not broken: its event file holds the same scalars.
    assert _scalars(logdir, "loss") == [(3, 0.5), (4, 0.25)]


def test_unpatch_restores_the_methods_and_stops_mirroring(
    tmp_path: Path, writer_class: type
) -> None:
    """After unpatch() the writer's own methods are back and the run records nothing."""
    original = writer_class.add_scalar
    run = polytrack.init(project="tb", dir=tmp_path / "home", capture=False)
    with bridge.patched():
        assert writer_class.add_scalar is not original
        writer = writer_class(str(tmp_path / "tb"))
        writer.add_scalar("during", 1.0, 0)
    assert writer_class.add_scalar is original
    writer.add_scalar("after", 2.0, 1)
    writer.close()
    run.finish()
    view = polytrack.get_run(run.id, home=tmp_path / "home")
    assert list(view.metrics) == ["during"]
    assert _scalars(tmp_path / "tb", "after") == [(1, 2.0)]


def test_patch_twice_records_once_and_follows_the_given_run(
    tmp_path: Path, writer_class: type
) -> None:
    """A second patch() wraps nothing twice; `run=` records into that run, not the current."""
    home = tmp_path / "home"
    chosen = polytrack.init(project="tb", dir=home, capture=False, reinit="create_new")
    current = polytrack.init(project="tb", dir=home, capture=False, reinit="create_new")
    bridge.patch()
    bridge.patch(run=chosen)
    writer = writer_class(str(tmp_path / "tb"))
    writer.add_scalar("x", 1.0, 0)
    writer.close()
    bridge.unpatch()
    for run in (chosen, current):
        run.finish()
    assert polytrack.get_run(chosen.id, home=home).history("x")[0].tolist() == [0]
    assert polytrack.get_run(current.id, home=home).metrics == {}


def test_nested_patched_restores_the_outer_block(tmp_path: Path, writer_class: type) -> None:
    """An inner patched() leaves the outer block's patch and run in place when it ends."""
    home = tmp_path / "home"
    outer = polytrack.init(project="tb", dir=home, capture=False, reinit="create_new")
    inner = polytrack.init(project="tb", dir=home, capture=False, reinit="create_new")
    original = writer_class.add_scalar
    writer = writer_class(str(tmp_path / "tb"))
    with bridge.patched(run=outer):
        with bridge.patched(run=inner):
            writer.add_scalar("x", 1.0, 0)
        writer.add_scalar("x", 2.0, 1)
    assert writer_class.add_scalar is original
    writer.close()
    for run in (outer, inner):
        run.finish()
    assert polytrack.get_run(inner.id, home=home).history("x")[0].tolist() == [0]
    assert polytrack.get_run(outer.id, home=home).history("x")[0].tolist() == [1]


def test_without_a_run_the_writer_works_alone(tmp_path: Path, writer_class: type) -> None:
    """With no current run, patched writers write their files and record nothing."""
    with bridge.patched():
        writer = writer_class(str(tmp_path / "tb"))
        writer.add_scalar("loss", 1.5, 2)
        writer.close()
    assert _scalars(tmp_path / "tb", "loss") == [(2, 1.5)]
    assert polytrack.current_run() is None


def test_what_polytrack_refuses_warns_once_and_the_writer_goes_on(
    tmp_path: Path, writer_class: type
) -> None:
    """A tag polytrack cannot take warns once (TrackingWarning); the event file gets it."""
    run = polytrack.init(project="tb", dir=tmp_path / "home", capture=False)
    tag = "t" * 300  # past a media name's 250 characters
    with bridge.patched():
        writer = writer_class(str(tmp_path / "tb"))
        with pytest.warns(polytrack.TrackingWarning, match="could not mirror"):
            writer.add_text(tag, "a", 0)
        writer.add_text(tag, "b", 1)  # said once: no second warning (would be an error)
        writer.close()
    run.finish()
    accumulator = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    accumulator.Reload()
    assert [e.step for e in accumulator.Tensors(f"{tag}/text_summary")] == [0, 1]


def test_figure_is_recorded_as_a_figure(tmp_path: Path, writer_class: type) -> None:
    """add_figure records a matplotlib figure itself (before the writer closes it), and a
    list of figures as the batch of images the writer renders."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    run = polytrack.init(project="tb", dir=tmp_path / "home", capture=False)
    figure = plt.figure()
    figure.gca().plot([0, 1], [1, 0])
    pair = [plt.figure(figsize=(2, 1)), plt.figure(figsize=(2, 1))]
    with bridge.patched():
        writer = writer_class(str(tmp_path / "tb"))
        writer.add_figure("chart", figure, 4)
        writer.add_figure("pair", pair, 5)  # a list: the images the writer renders
        writer.close()
    (item,) = run.media("chart")
    assert (item.kind, item.step) == ("figure", 4)
    assert item.value["library"] == "matplotlib"
    (images,) = run.media("pair")
    assert (images.kind, images.step) == ("image", 5)
    assert images.value.shape[0] == 2 and images.value.shape[-1] in (3, 4)
    run.finish()


def test_record_summary_reads_scalars_images_histograms_and_text(tmp_path: Path) -> None:
    """A serialized Summary's values become a metric, an image, a histogram and a text."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import summary as tb_summary

    run = polytrack.init(project="tb", dir=tmp_path / "home", capture=False)
    pixels = np.zeros((3, 2, 2), dtype=np.uint8)
    pixels[0] = 255  # red
    values: list[Any] = [
        *tb_summary.scalar("acc", 0.75).value,
        *tb_summary.image("picture", pixels, dataformats="CHW").value,
        *tb_summary.histogram("h", np.arange(10.0), bins="auto").value,
        *tb_summary.text("words", "some text").value,
    ]
    bridge.record_summary(Summary(value=values).SerializeToString(), step=6, run=run)
    assert run.media("picture")[0].value[..., 0].tolist() == [[255, 255], [255, 255]]
    (histogram,) = run.media("h")
    assert int(histogram.value.counts.sum()) == 10
    assert histogram.value.edges[0] <= 0.0 and histogram.value.edges[-1] == 9.0
    assert run.media("words")[0].value == "some text"
    run.finish()
    view = polytrack.get_run(run.id, home=tmp_path / "home")
    assert view.history("acc")[0].tolist() == [6]
    assert view.history("acc")[1].tolist() == [0.75]
