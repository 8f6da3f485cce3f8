"""`polytrack.tracking`'s media functions: Polyaxon's names, signatures and reading of the
arguments, recorded through the run's media methods and read back equal."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack import tracking
from polytrack.errors import InvalidInputError, TrackingWarning
from polytrack.run import Run

# Polyaxon's signatures of the media functions, from traceml's `traceml/tracking/
# __init__.py` (which polyaxon 2.18 re-exports as `polyaxon.tracking`): function ->
# (parameter, kind, repr of the default or None when it has none). `log_dataframe`'s
# default there is `V1ArtifactKind.CSV`, a str enum whose value is "csv".
P = "POSITIONAL_OR_KEYWORD"
_STEP = [("step", P, "None"), ("timestamp", P, "None")]
POLYAXON_MEDIA: dict[str, list[tuple[str, str, str | None]]] = {
    "log_roc_auc_curve": [("name", P, None), ("fpr", P, None), ("tpr", P, None),
                          ("auc", P, "None"), *_STEP],
    "log_sklearn_roc_auc_curve": [("name", P, None), ("y_preds", P, None),
                                  ("y_targets", P, None), *_STEP, ("is_multi_class", P, "False")],
    "log_pr_curve": [("name", P, None), ("precision", P, None), ("recall", P, None),
                     ("average_precision", P, "None"), *_STEP],
    "log_sklearn_pr_curve": [("name", P, None), ("y_preds", P, None), ("y_targets", P, None),
                             *_STEP, ("is_multi_class", P, "False")],
    "log_curve": [("name", P, None), ("x", P, None), ("y", P, None),
                  ("annotation", P, "None"), *_STEP],
    "log_confusion_matrix": [("name", P, None), ("x", P, None), ("y", P, None),
                             ("z", P, "None"), *_STEP],
    "log_image": [("data", P, None), ("name", P, "None"), *_STEP, ("rescale", P, "1"),
                  ("dataformats", P, "'CHW'"), ("ext", P, "None")],
    "log_image_with_boxes": [("tensor_image", P, None), ("tensor_boxes", P, None),
                             ("name", P, "None"), *_STEP, ("rescale", P, "1"),
                             ("dataformats", P, "'CHW'")],
    "log_mpl_image": [("data", P, None), ("name", P, "None"), ("close", P, "True"), *_STEP],
    "log_video": [("data", P, None), ("name", P, "None"), ("fps", P, "4"), *_STEP,
                  ("content_type", P, "None")],
    "log_audio": [("data", P, None), ("name", P, "None"), ("sample_rate", P, "44100"), *_STEP,
                  ("content_type", P, "None")],
    "log_text": [("name", P, None), ("text", P, None), *_STEP],
    "log_html": [("name", P, None), ("html", P, None), *_STEP],
    "log_np_histogram": [("name", P, None), ("values", P, None), ("counts", P, None), *_STEP],
    "log_histogram": [("name", P, None), ("values", P, None), ("bins", P, None),
                      ("max_bins", P, "None"), *_STEP],
    "log_dataframe": [("df", P, None), ("name", P, None), ("content_type", P, "'csv'"), *_STEP],
    "log_plotly_chart": [("name", P, None), ("figure", P, None), *_STEP],
    "log_bokeh_chart": [("name", P, None), ("figure", P, None), *_STEP],
    "log_altair_chart": [("name", P, None), ("figure", P, None), *_STEP],
    "log_mpl_plotly_chart": [("name", P, None), ("figure", P, None), *_STEP,
                             ("close", P, "True"), ("fallback_to_image", P, "True")],
}  # fmt: skip
# The functions tests/test_tracking_api.py pins: with these, all that tracking maps.
NOT_MEDIA = {
    "end", "init", "log_artifact", "log_code_ref", "log_data_ref", "log_failed", "log_inputs",
    "log_metric", "log_metrics", "log_model", "log_outputs", "log_progress", "log_stopped",
    "log_succeeded", "log_tags",
    # paths, refs, the Run class: tests/test_tracking_client.py
    "Run", "get_artifacts_path", "get_or_create_run", "get_outputs_path",
    "get_tensorboard_path", "log_artifact_ref", "log_dir_ref", "log_env", "log_file_ref",
    "log_model_ref", "log_status", "log_tensorboard_ref",
}  # fmt: skip


def parameters(function: Any) -> list[tuple[str, str, str | None]]:
    return [
        (p.name, p.kind.name, None if p.default is p.empty else repr(p.default))
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.fixture
def run(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.setenv("POLYTRACK_HOME", str(home))
    started = tracking.init(
        project="media", track_code=False, track_env=False, track_logs=False,
        collect_resources=False,
    ).polytrack_run  # fmt: skip
    assert isinstance(started, Run)
    yield started
    tracking.end()


@pytest.fixture
def plt() -> Iterator[Any]:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


def test_media_signatures_match_polyaxons() -> None:
    """Every media function takes Polyaxon's parameters: names, kinds, order, defaults."""
    assert set(tracking.__all__) == set(POLYAXON_MEDIA) | NOT_MEDIA
    for name, expected in POLYAXON_MEDIA.items():
        assert parameters(getattr(tracking, name)) == expected, name


def test_the_media_table_is_what_polyaxon_has() -> None:
    """The table above matches the installed Polyaxon client, where one is at hand."""
    try:
        from servers.polyaxon_sandbox import REQUIREMENTS
        from servers.venvs import _complete, _digest, cache_root
    except ImportError:
        pytest.skip("tests/servers is not importable here")
    python = cache_root() / "venvs" / f"polyaxon-sandbox-{_digest(REQUIREMENTS)}" / "bin" / "python"
    if not _complete(python.parents[1]):
        pytest.skip("the Polyaxon sandbox venv is not built here (tests/servers builds it)")
    script = (
        "import enum, inspect, json\n"
        "from polyaxon import tracking\n"
        "def shown(d):\n"
        "    return repr(d.value if isinstance(d, enum.Enum) else d)\n"
        f"names = {sorted(POLYAXON_MEDIA)!r}\n"
        "print(json.dumps({n: [[p.name, p.kind.name, None if p.default is p.empty else "
        "shown(p.default)] for p in inspect.signature(getattr(tracking, n)).parameters.values()]"
        " for n in names}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert {n: [tuple(p) for p in ps] for n, ps in found.items()} == POLYAXON_MEDIA


# The calls of Polyaxon's example `simulate_dl_experiment.py` (which stopped at its first
# log_histogram), in its order, in a script of our own: seeded, three epochs, and writing
# down what it logged so that the test can compare what polytrack read back.
SIMULATED_DL_EXPERIMENT = """\
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import polytrack.tracking as tracking

EPOCHS = 3
CLASSES = ["plane", "car", "bird", "cat"]
rng = np.random.default_rng(7)
expected = {"histograms": {}, "confusion": {}, "roc": {}, "pr": {}, "text": {}, "figures": {}}

run = tracking.init(project="quick-start", name="simulated", tags=["sim"])
tracking.log_inputs(seed=7, epochs=EPOCHS, learning_rate=0.001, batch_size=64,
                    optimizer="adamw", scheduler="cosine")


def figure(kind, epoch):
    fig, ax = plt.subplots(figsize=(4 + kind, 3))
    ax.plot(np.arange(10), rng.normal(size=10) * (epoch + 1))
    ax.set_title(f"plot {kind} at {epoch}")
    return fig


for epoch in range(EPOCHS):
    train_loss = 2.3 * np.exp(-epoch / 2) + 0.1
    tracking.log_metrics(step=epoch, train_loss=train_loss, val_loss=train_loss * 1.1,
                         train_accuracy=1 - train_loss / 2.4, learning_rate=1e-3 / (epoch + 1))
    for name in CLASSES:
        tracking.log_metric(name=f"class_acc/{name}", value=0.5 + epoch / 10, step=epoch)
    tracking.log_progress((epoch + 1) / EPOCHS)

    for kind in ("weights", "gradients"):
        for layer in ("conv1", "fc1"):
            values = rng.normal(0, 0.1 * (epoch + 1), size=2000)
            tracking.log_histogram(f"{kind}/{layer}", values, "auto", step=epoch)
            counts, edges = np.histogram(values, bins="auto")
            expected["histograms"][f"{kind}/{layer}/{epoch}"] = [counts.tolist(), edges.tolist()]

    cm = rng.integers(0, 20, size=(len(CLASSES), len(CLASSES))).astype(float)
    tracking.log_confusion_matrix("confusion_matrix", x=CLASSES, y=CLASSES, z=cm.tolist(),
                                  step=epoch)
    expected["confusion"][str(epoch)] = cm.tolist()

    fpr = np.sort(np.r_[0.0, rng.uniform(size=20), 1.0])
    tpr = np.sqrt(fpr)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    tracking.log_roc_auc_curve(name="roc_curve", fpr=fpr, tpr=tpr, auc=auc, step=epoch)
    expected["roc"][str(epoch)] = [fpr.tolist(), tpr.tolist(), auc]

    recall = np.linspace(1, 0, 25)
    precision = 1 - recall ** 2 / 2
    ap = float(precision.mean())
    tracking.log_pr_curve(name="pr_curve", precision=precision, recall=recall,
                          average_precision=ap, step=epoch)
    expected["pr"][str(epoch)] = [precision.tolist(), recall.tolist(), ap]

    for kind, name in enumerate(["weight_distributions", "gradient_flow",
                                 "feature_activations", "loss_landscape"]):
        fig = figure(kind, epoch)
        expected["figures"][name] = list(fig.canvas.get_width_height())
        tracking.log_mpl_image(fig, name, step=epoch)
        plt.close(fig)

    text = f"Epoch {epoch}/{EPOCHS} | train_loss={train_loss:.4f}"
    tracking.log_text("training_log", text=text, step=epoch)
    expected["text"][str(epoch)] = text

tracking.log_outputs(final_train_loss=train_loss, total_epochs=EPOCHS)
tracking.end()
expected["open_figures"] = plt.get_fignums()
with open(sys.argv[1], "w") as out:
    json.dump(expected, out)
print(run.id)
"""


def test_a_simulated_dl_experiment_is_recorded_and_read_back(
    home: Path, tmp_path: Path
) -> None:
    """Polyaxon's simulate_dl_experiment calls: metrics, histograms, confusion matrices,
    ROC and PR curves, matplotlib images and texts, every step read back as logged."""
    pytest.importorskip("matplotlib")
    done = subprocess.run(
        [sys.executable, "-c", SIMULATED_DL_EXPERIMENT, str(tmp_path / "expected.json")],
        cwd=tmp_path,
        env={**os.environ, "POLYTRACK_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    expected = json.loads((tmp_path / "expected.json").read_text())
    view = polytrack.get_run(done.stdout.strip().splitlines()[-1], home=home)
    assert (view.project, view.name, view.tags, view.status) == (
        "quick-start", "simulated", ("sim",), "succeeded",
    )  # fmt: skip
    assert view.params["optimizer"] == "adamw"
    assert view.outputs["total_epochs"] == 3
    steps, losses = view.history("train_loss")
    assert steps.tolist() == [0, 1, 2]
    assert losses.tolist() == pytest.approx([2.3 * np.exp(-e / 2) + 0.1 for e in range(3)])
    assert view.history("class_acc/cat")[1].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert view.history("progress")[1].tolist() == pytest.approx([1 / 3, 2 / 3, 1])

    figures = ("weight_distributions", "gradient_flow", "feature_activations", "loss_landscape")
    histograms = [f"{k}/{layer}" for k in ("weights", "gradients") for layer in ("conv1", "fc1")]
    kinds = {name: "histogram" for name in histograms}
    kinds.update({name: "image" for name in figures})
    kinds.update(confusion_matrix="confusion", roc_curve="curve", pr_curve="curve",
                 training_log="text")  # fmt: skip
    assert view.media_keys() == {name: (kind, 3) for name, kind in sorted(kinds.items())}

    for name in histograms:
        for item in view.media(name):
            counts, edges = expected["histograms"][f"{name}/{item.step}"]
            assert item.value.counts.tolist() == counts
            assert item.value.edges.tolist() == pytest.approx(edges)
    for item in view.media("confusion_matrix"):
        assert item.value.x.tolist() == ["plane", "car", "bird", "cat"] == item.value.y.tolist()
        assert item.value.z.tolist() == expected["confusion"][str(item.step)]
    for item in view.media("roc_curve"):
        fpr, tpr, auc = expected["roc"][str(item.step)]
        assert (item.value.kind, item.value.x.tolist(), item.value.y.tolist()) == ("roc", fpr, tpr)
        assert item.meta["auc"] == auc and item.value.annotation == str(auc)
    for item in view.media("pr_curve"):
        precision, recall, ap = expected["pr"][str(item.step)]
        assert item.value.kind == "pr" and item.meta["average_precision"] == ap
        assert (item.value.x.tolist(), item.value.y.tolist()) == (recall, precision)
    for name in figures:
        width, height = expected["figures"][name]
        assert [item.value.shape for item in view.media(name)] == [(height, width, 4)] * 3
    assert [item.value for item in view.media("training_log")] == [
        expected["text"][str(step)] for step in range(3)
    ]
    assert expected["open_figures"] == []  # log_mpl_image closed them (close=True)


def test_before_init_every_media_call_warns_once_and_records_nothing(home: Path) -> None:
    """With no run, a media call warns once (TrackingWarning) and records nothing."""
    with pytest.warns(TrackingWarning, match=r"tracking\.log_image\(\) called before"):
        tracking.log_image(np.zeros((3, 4, 4)))
    tracking.log_image(np.zeros((3, 4, 4)))  # once: filterwarnings=error would raise here
    with pytest.warns(TrackingWarning, match="log_histogram"):
        tracking.log_histogram("w", [1.0, 2.0], 4)
    with pytest.warns(TrackingWarning, match="log_confusion_matrix"):
        tracking.log_confusion_matrix("cm", ["a"], ["a"], [[1]])
    assert not home.exists()


def test_a_disabled_run_records_no_media(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under mode "disabled" the media calls do nothing, not even check their input."""
    monkeypatch.setenv("POLYTRACK_MODE", "disabled")
    tracking.init(project="off")
    tracking.log_image("no such file.png")
    tracking.log_histogram("w", [float("nan")], 4)
    tracking.end()


def test_images_read_polyaxons_dataformats(run: Run) -> None:
    """CHW by default (NCHW for a batch), any order of the letters, and the shape's own
    layout where Polyaxon's default does not fit it; the default name is "image"."""
    chw = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    tracking.log_image(chw, step=0)
    hwc = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3)
    tracking.log_image(hwc, "hwc", step=0)  # 6 is no channel count: read as HWC
    tracking.log_image(chw.transpose(2, 1, 0), "whc", step=0, dataformats="WHC")
    tracking.log_image(np.stack([chw, chw[::-1]]), "batch", step=0)
    tracking.log_image(chw[0], "gray", step=0)
    expected = chw.transpose(1, 2, 0)
    for name in ("image", "whc"):
        assert np.array_equal(run.media(name)[0].value, expected), name
    assert np.array_equal(run.media("hwc")[0].value, hwc)
    batch = run.media("batch")[0]
    assert batch.shape == (2, 4, 5, 3)
    assert np.array_equal(batch.value, np.stack([expected, chw[::-1].transpose(1, 2, 0)]))
    assert np.array_equal(run.media("gray")[0].value, chw[0])


def test_images_from_files_and_rescaled(run: Run, tmp_path: Path) -> None:
    """A path is read as the image, named after the file; `rescale` resizes it."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "sample.v1.png")
    tracking.log_image(str(tmp_path / "sample.v1.png"), step=1)
    tracking.log_image(tmp_path / "sample.v1.png", "scaled", step=1, rescale=0.5)
    tracking.log_image(np.zeros((3, 8, 8)), "doubled", step=1, rescale=2)
    assert np.array_equal(run.media("sample")[0].value, pixels)
    assert run.media("scaled")[0].shape == (1, 3, 4, 3)
    assert run.media("doubled")[0].value.shape == (16, 16, 3)
    with pytest.raises(InvalidInputError, match="neither an array nor an existing file"):
        tracking.log_image(str(tmp_path / "missing.png"))


def test_image_with_boxes_defaults_to_figure(run: Run) -> None:
    """Boxes on a CHW image are kept as numbers; rescale scales them with the image."""
    image = np.zeros((3, 20, 20), dtype=np.uint8)
    tracking.log_image_with_boxes(image, np.array([[2, 3, 10, 12]]), step=0)
    tracking.log_image_with_boxes(image, [[2, 3, 10, 12]], "big", step=0, rescale=2)
    item = run.media("figure")[0]
    assert item.shape == (1, 20, 20, 3)
    assert item.meta["boxes"] == [{"box": [2.0, 3.0, 10.0, 12.0]}]
    big = run.media("big")[0]
    assert big.shape == (1, 40, 40, 3) and big.meta["boxes"] == [{"box": [4.0, 6.0, 20.0, 24.0]}]


def test_mpl_images_close_their_figures(run: Run, plt: Any) -> None:
    """One figure, or a list kept as a batch; closed unless close=False."""
    first, second = plt.figure(figsize=(2, 1)), plt.figure(figsize=(2, 1))
    first.gca().plot([0, 1])
    tracking.log_mpl_image([first, second], step=0)
    kept = plt.figure(figsize=(3, 2))
    tracking.log_mpl_image(kept, "kept", close=False, step=0)
    assert plt.get_fignums() == [kept.number]
    batch = run.media("figure")[0]
    assert batch.shape == (2, 100, 200, 4) and batch.value.shape == (2, 100, 200, 4)
    assert run.media("kept")[0].value.shape == (200, 300, 4)
    with pytest.raises(InvalidInputError, match="matplotlib figure"):
        tracking.log_mpl_image(np.zeros((3, 3)))


def test_histograms_as_polyaxon_bins_them(run: Run) -> None:
    """`bins` as numpy takes it, `max_bins` caps it; log_np_histogram takes Polyaxon's
    (counts, edges) naming and numpy's order alike."""
    values = np.random.default_rng(1).normal(size=5000)
    tracking.log_histogram("auto", values, "auto", step=0)
    tracking.log_histogram("capped", values, "auto", max_bins=5, step=0)
    counts, edges = np.histogram(values, bins="auto")
    assert run.media("auto")[0].value.counts.tolist() == counts.tolist()
    assert run.media("capped")[0].value.counts.tolist() == np.histogram(values, 5)[0].tolist()
    with pytest.raises(InvalidInputError, match="past max_bins"):
        tracking.log_histogram("refused", values, 20, max_bins=10)
    with pytest.raises(InvalidInputError, match="NaN"):
        tracking.log_histogram("refused", [1.0, float("nan")], 4)

    polyaxon_values, polyaxon_counts = np.histogram(values)  # Polyaxon's own docstring
    tracking.log_np_histogram("polyaxon", polyaxon_values, polyaxon_counts, step=0)
    tracking.log_np_histogram("numpy", edges, counts, step=0)
    assert run.media("polyaxon")[0].value.counts.tolist() == polyaxon_values.tolist()
    assert run.media("polyaxon")[0].value.edges.tolist() == polyaxon_counts.tolist()
    assert run.media("numpy")[0].value.counts.tolist() == counts.tolist()
    assert run.media("refused") == []


def test_videos_tile_polyaxons_batches(run: Run, tmp_path: Path) -> None:
    """A 5-D batch (B, T, C, H, W) becomes frames of a grid, as Polyaxon lays it out; a
    GIF file is read with its own frame rate."""
    from PIL import Image

    batch = np.zeros((3, 2, 1, 4, 5), dtype=np.uint8)
    for i in range(3):
        batch[i] = 80 * (i + 1)
    tracking.log_video(batch, step=0)
    item = run.media("video")[0]
    assert item.shape == (2, 4, 20, 1)  # 3 padded to 4: one row of four
    with Image.open(__import__("io").BytesIO(item.value)) as gif:
        frame = np.asarray(gif.convert("L"))
    assert [int(frame[0, 5 * i]) for i in range(4)] == [80, 160, 240, 0]

    frames = [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (0, 120, 250)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=50)
    tracking.log_video(str(tmp_path / "clip.gif"), step=0)
    clip = run.media("clip")[0]
    assert clip.shape == (3, 6, 6, 3) and clip.meta["fps"] == 20.0
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidInputError, match=r"clip\.mp4"):
        tracking.log_video(str(tmp_path / "clip.mp4"))


def test_audio_squeezed_clipped_and_from_wav_files(run: Run, tmp_path: Path) -> None:
    """Samples are squeezed and clipped to [-1, 1]; a WAV file keeps its sample rate."""
    tracking.log_audio(np.array([[0.5, 2.0, -3.0, 0.0]]), step=0, sample_rate=8000)
    sound = run.media("audio")[0]
    assert sound.meta["sample_rate"] == 8000
    assert sound.value.samples[:, 0].tolist() == pytest.approx([0.5, 1.0, -1.0, 0.0], abs=1e-4)

    pcm = (np.sin(np.linspace(0, 20, 400)) * 20000).astype("<i2")
    with wave.open(str(tmp_path / "tone.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    tracking.log_audio(str(tmp_path / "tone.wav"), step=0)
    tone = run.media("tone")[0]
    assert tone.meta["sample_rate"] == 16000
    assert np.allclose(tone.value.samples[:, 0], pcm / 32768, atol=1e-4)


def test_text_html_and_dataframes(run: Run) -> None:
    """Text and HTML as given; a data frame as a table, cell for cell."""
    pd = pytest.importorskip("pandas")
    tracking.log_text("note", "héllo", step=2)
    tracking.log_html("page", "<p>x</p>", step=2)
    frame = pd.DataFrame({"id": [1, 2], "label": ["cat", "dog"]})
    tracking.log_dataframe(frame, "predictions", step=2)
    tracking.log_dataframe(frame, "as_html", content_type="html", step=2)
    assert run.media("note")[0].value == "héllo"
    assert run.media("page")[0].value == "<p>x</p>"
    for name in ("predictions", "as_html"):
        table = run.media(name)[0]
        assert table.kind == "table" and table.shape == (2, 2)
        assert table.value.to_frame().equals(frame), name
    with pytest.raises(InvalidInputError, match="content_type"):
        tracking.log_dataframe(frame, "refused", content_type="xml")


def test_curves_and_confusion_matrices(run: Run) -> None:
    """Custom curves keep x/y and annotation; a confusion matrix from x, y, z as given,
    or counted from true and predicted labels when z is left out."""
    tracking.log_curve("calibration", [0, 0.5, 1], [0, 0.4, 1], annotation="ECE 0.04", step=1)
    curve = run.media("calibration")[0].value
    assert (curve.kind, curve.x.tolist(), curve.y.tolist(), curve.annotation) == (
        "custom", [0, 0.5, 1], [0, 0.4, 1], "ECE 0.04",
    )  # fmt: skip
    tracking.log_roc_auc_curve("roc", [0, 1], [0, 1], step=1)  # no auc: no annotation
    assert run.media("roc")[0].value.annotation is None and "auc" not in run.media("roc")[0].meta

    tracking.log_confusion_matrix("given", ["a", "b"], ["a", "b"], [[0.1, 0.9], [0.3, 0.7]])
    assert run.media("given")[0].value.z.tolist() == [[0.1, 0.9], [0.3, 0.7]]
    tracking.log_confusion_matrix("counted", ["a", "b", "b", "a"], ["a", "b", "a", "a"])
    counted = run.media("counted")[0].value
    assert (counted.y.tolist(), counted.z.tolist()) == (["a", "b"], [[2, 0], [1, 1]])
    with pytest.raises(InvalidInputError, match="z has shape"):
        tracking.log_confusion_matrix("bad", ["a", "b"], ["a", "b"], [[1, 2, 3]])
    assert run.media("bad") == []


def test_sklearn_curves_one_per_class(run: Run) -> None:
    """Binary and multi-class ROC and PR curves equal scikit-learn's, one curve per class
    named "<name>_<i>" (one class against the rest)."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 60)
    scores = rng.dirichlet(np.ones(3), 60)
    tracking.log_sklearn_roc_auc_curve("roc", scores, labels, step=4, is_multi_class=True)
    tracking.log_sklearn_pr_curve("pr", scores, labels, step=4, is_multi_class=True)
    binary = (labels == 1).astype(int)
    tracking.log_sklearn_roc_auc_curve("binary", scores[:, 1], binary, step=4)
    for i in range(3):
        fpr, tpr, _ = metrics.roc_curve(labels, scores[:, i], pos_label=i)
        roc = run.media(f"roc_{i}")[0]
        assert np.allclose(roc.value.x, fpr) and np.allclose(roc.value.y, tpr)
        assert roc.meta["auc"] == pytest.approx(metrics.auc(fpr, tpr))
        precision, recall, _ = metrics.precision_recall_curve(labels, scores[:, i], pos_label=i)
        pr = run.media(f"pr_{i}")[0]
        assert np.allclose(pr.value.x, recall) and np.allclose(pr.value.y, precision)
    fpr, tpr, _ = metrics.roc_curve(binary, scores[:, 1])
    assert np.allclose(run.media("binary")[0].value.x, fpr)
    with pytest.raises(InvalidInputError, match="one column of scores per class"):
        tracking.log_sklearn_roc_auc_curve("bad", scores[:, :2], labels, is_multi_class=True)


def test_charts_of_each_library(run: Run, plt: Any) -> None:
    """plotly figures (and their dicts), bokeh and altair charts keep their library's
    spec; a matplotlib figure is converted to plotly, or kept drawn where it cannot be."""
    go = pytest.importorskip("plotly.graph_objects")
    bokeh_plotting = pytest.importorskip("bokeh.plotting")
    alt = pytest.importorskip("altair")
    pd = pytest.importorskip("pandas")
    tracking.log_plotly_chart("plotly", go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), step=0)
    tracking.log_plotly_chart("plotly_dict", {"data": [{"type": "bar", "y": [1, 2]}]}, step=0)
    chart = bokeh_plotting.figure()
    chart.line([1, 2], [3, 4])
    tracking.log_bokeh_chart("bokeh", chart, step=0)
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    tracking.log_altair_chart("altair", alt.Chart(frame).mark_point().encode(x="a", y="b"), step=0)
    assert run.media("plotly")[0].value["spec"]["data"][0]["y"] == [3, 4]
    assert run.media("plotly_dict")[0].value["spec"]["data"][0]["type"] == "bar"
    assert run.media("bokeh")[0].value["library"] == "bokeh"
    assert run.media("altair")[0].value["library"] == "vega-lite"

    figure = plt.figure()
    figure.gca().plot([1, 2, 3], [3, 1, 2])
    tracking.log_mpl_plotly_chart("mpl", figure, step=0)
    assert plt.get_fignums() == []  # close=True
    mpl = run.media("mpl")[0]
    assert mpl.kind == "figure"
    assert mpl.meta["library"] == ("plotly" if mpl.meta["converted"] else "matplotlib")
    with pytest.raises(InvalidInputError, match="matplotlib figure"):
        tracking.log_mpl_plotly_chart("refused", {"data": []})


def test_mpl_plotly_falls_back_to_the_drawn_figure(run: Run, plt: Any) -> None:
    """A figure plotly cannot convert (polar axes) is kept drawn, with a warning once;
    with fallback_to_image=False it is refused and nothing is recorded."""
    pytest.importorskip("plotly")

    def polar() -> Any:
        figure = plt.figure(figsize=(2, 2))
        figure.add_subplot(projection="polar").plot([0, 1], [1, 2])
        return figure

    with pytest.warns(TrackingWarning, match="cannot convert"):
        tracking.log_mpl_plotly_chart("polar", polar(), step=0)
    tracking.log_mpl_plotly_chart("polar", polar(), step=1)  # warned once only
    items = run.media("polar")
    assert [(i.meta["library"], i.meta["converted"]) for i in items] == [("matplotlib", False)] * 2
    assert items[0].value["spec"] == {"width": 200, "height": 200}
    with pytest.raises(InvalidInputError, match="fallback_to_image=False"):
        tracking.log_mpl_plotly_chart("refused", polar(), fallback_to_image=False)
    assert run.media("refused") == [] and plt.get_fignums() == []


def test_torch_tensors_as_polyaxon_takes_them(run: Run) -> None:
    """A CHW tensor is an image, a tensor of values a histogram."""
    torch = pytest.importorskip("torch")
    tensor = torch.arange(3 * 4 * 5, dtype=torch.uint8).reshape(3, 4, 5)
    tracking.log_image(tensor, "tensor", step=0)
    tracking.log_histogram("weights", torch.randn(100), 10, step=0)
    assert np.array_equal(run.media("tensor")[0].value, tensor.numpy().transpose(1, 2, 0))
    assert run.media("weights")[0].value.counts.sum() == 100
