"""TensorBoard logdirs written by tensorboardX and by `torch.utils.tensorboard`, read by
the TensorBoard reader and imported whole: every point, media, hparams, damaged files."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")
pytest.importorskip("tensorboardX")
pytest.importorskip("torch")

from polytrack.errors import InvalidInputError
from polytrack.importers._tensorboard import read
from polytrack.importers.source import SourceProblem, SourceRun

T0 = 1_700_000_000.0
POINTS = 10_050  # past EventAccumulator's reservoir of 10,000 scalars per tag

# Both writers, with wall times given: every time is known to the microsecond.
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from tensorboardX import SummaryWriter as XWriter
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    root, t0, points = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    image = np.zeros((3, 4, 6), dtype=np.uint8)  # CHW
    image[0, 1, 2] = 255
    for name, writer in (("tbx", XWriter(root + "/tbx")), ("torch", TorchWriter(root + "/torch"))):
        for step in range(points if name == "tbx" else 5):
            writer.add_scalar("loss", step / 4, step, walltime=t0 + step * 0.037)
        writer.add_histogram("weights", np.array([1.0, 2.0, 3.0, 3.0]), 7, walltime=t0 + 50)
        writer.add_image("sample", image, 3, walltime=t0 + 51)
        writer.add_text("note", "hello **world**", 2, walltime=t0 + 52)
        if name == "torch":
            writer.add_scalar("tensor_loss", 2.5, 9, walltime=t0 + 53, new_style=True)
            writer.add_hparams({"lr": 0.1, "optimizer": "adam"}, {"hp/accuracy": 0.9},
                               run_name="hparams")
        writer.close()

    # Tensor-based summaries, as TensorFlow 2's `tf.summary` writes them (a tensor and
    # its plugin's metadata), made with tensorboard's own helpers and written by
    # tensorboardX's file writer (TensorFlow itself is not installed).
    import io
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.histogram import summary_v2 as histogram
    from tensorboard.plugins.image import metadata as image_metadata
    from tensorboard.plugins.scalar import metadata as scalar_metadata
    from tensorboard.plugins.text import metadata as text_metadata
    from tensorboard.util import tensor_util
    from tensorboardX.proto.summary_pb2 import Summary as XSummary

    writer = XWriter(root + "/tf2")
    def add(summary, step, seconds):
        writer._get_file_writer().add_summary(
            XSummary.FromString(summary.SerializeToString()), step, walltime=t0 + seconds)
    def value(tag, metadata, tensor):
        summary = Summary()
        summary.value.add(tag=tag, metadata=metadata, tensor=tensor)
        return summary
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    pixels[1, 2, 0] = 255
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    add(value("accuracy", scalar_metadata.create_summary_metadata("", ""),
              tensor_util.make_tensor_proto(0.75, dtype="float32")), 1, 10)
    add(histogram.histogram_pb("weights", np.array([1.0, 2.0, 3.0, 3.0]), buckets=3), 2, 11)
    add(value("sample", image_metadata.create_summary_metadata("", ""),
              tensor_util.make_tensor_proto([b"6", b"4", png.getvalue()], dtype="string")),
        3, 12)
    add(value("note", text_metadata.create_summary_metadata("", ""),
              tensor_util.make_tensor_proto("tensor text", dtype="string")), 4, 13)
    writer.close()
    """
)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logdir with a tensorboardX run and a torch run (and torch's hparams run)."""
    root = tmp_path_factory.mktemp("tb") / "experiments"
    subprocess.run(
        [sys.executable, "-c", WRITER, str(root), str(T0), str(POINTS)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return root


def _runs(source: Path) -> dict[str, SourceRun]:
    found = list(read(str(source)))
    assert all(isinstance(r, SourceRun) for r in found), found
    return {r.name: r for r in found if isinstance(r, SourceRun)}


def _ms(times: np.ndarray) -> list[int]:
    return np.round(np.asarray(times) * 1000).astype(np.int64).tolist()


def test_every_run_directory_is_a_run(logdir: Path) -> None:
    """A run per directory with event files, named by its relative path, in the logdir's
    project, identified by that path under the logdir's absolute path."""
    runs = _runs(logdir)
    assert sorted(runs) == ["tbx", "tf2", "torch", "torch/hparams"]
    tbx = runs["tbx"]
    assert (tbx.kind, tbx.uri, tbx.original_id, tbx.project) == (
        "tensorboard",
        str(logdir.resolve()),
        "tbx",
        "experiments",
    )
    assert tbx.status == "succeeded"


def test_every_scalar_point_is_kept_with_its_step_and_wall_time(logdir: Path) -> None:
    """All 10,050 points of a tag (no reservoir sampling), with their steps and their
    wall times to the millisecond; the run starts at its earliest event."""
    run = _runs(logdir)["tbx"]
    series = {s.key: s for s in run.series()}
    assert list(series) == ["loss"]
    loss = series["loss"]
    assert np.asarray(loss.steps).tolist() == list(range(POINTS))
    assert np.asarray(loss.values).tolist() == [np.float32(s / 4) for s in range(POINTS)]
    assert _ms(loss.timestamps) == [round((T0 + s * 0.037) * 1000) for s in range(POINTS)]
    assert run.started_at == T0
    assert run.ended_at is not None and run.ended_at >= T0 + 52  # the file's own header


def test_tensor_scalars_of_new_style_writers_are_points(logdir: Path) -> None:
    """torch's `new_style` scalars (a tensor with the scalars plugin) read like simple
    values."""
    series = {s.key: s for s in _runs(logdir)["torch"].series()}
    assert sorted(series) == ["loss", "tensor_loss"]
    tensor = series["tensor_loss"]
    assert (list(tensor.steps), list(tensor.values)) == ([9], [2.5])
    assert _ms(tensor.timestamps) == [round((T0 + 53) * 1000)]
    assert np.asarray(series["loss"].steps).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("name", ["tbx", "torch"])
def test_images_histograms_and_text_are_media(logdir: Path, name: str) -> None:
    """The PNG an image summary holds (its pixels as written), a histogram's buckets as
    edges and counts, and text, each at its step and wall time."""
    from PIL import Image

    media = {m.name: m for m in _runs(logdir)[name].media()}
    assert sorted(media) == ["note/text_summary", "sample", "weights"]
    image = media["sample"]
    assert (image.kind, image.step, image.media_type) == ("image", 3, "image/png")
    assert image.timestamp == pytest.approx(T0 + 51)
    assert image.payload is not None
    pixels = np.asarray(Image.open(io.BytesIO(image.payload)))
    assert pixels.shape[:2] == (4, 6)
    assert pixels[1, 2, 0] == 255 and int(pixels.sum()) == 255
    histogram = media["weights"]
    edges, counts = histogram.value
    assert (histogram.kind, histogram.step) == ("histogram", 7)
    assert float(np.sum(counts)) == 4.0
    assert len(edges) == len(counts) + 1
    assert (edges[0], edges[-1]) == (1.0, 3.0)
    text = media["note/text_summary"]
    assert (text.kind, text.step, text.value) == ("text", 2, "hello **world**")


def test_tensor_summaries_of_tensorflow_2_are_read(logdir: Path) -> None:
    """The tensor forms of scalars, histograms (rows of left, right, count), images
    (width, height, PNG) and text, named by their plugin's metadata."""
    from PIL import Image

    run = _runs(logdir)["tf2"]
    (accuracy,) = run.series()
    assert (accuracy.key, list(accuracy.steps), list(accuracy.values)) == ("accuracy", [1], [0.75])
    assert _ms(accuracy.timestamps) == [round((T0 + 10) * 1000)]
    media = {m.name: m for m in run.media()}
    assert sorted(media) == ["note", "sample", "weights"]
    edges, counts = media["weights"].value
    assert list(edges) == pytest.approx([1.0, 5 / 3, 7 / 3, 3.0])
    assert list(counts) == [1.0, 1.0, 2.0]
    image = media["sample"]
    assert (image.kind, image.step, image.media_type) == ("image", 3, "image/png")
    assert image.payload is not None
    pixels = np.asarray(Image.open(io.BytesIO(image.payload)))
    assert pixels[1, 2].tolist() == [255, 0, 0] and int(pixels.sum()) == 255
    assert (media["note"].kind, media["note"].value, media["note"].step) == (
        "text",
        "tensor text",
        4,
    )


def test_hparams_are_the_params_of_their_run(logdir: Path) -> None:
    """The hparams plugin's session start gives the params (torch writes them, with the
    metrics given to `add_hparams`, in a run directory of their own)."""
    run = _runs(logdir)["torch/hparams"]
    assert dict(run.params) == {"lr": 0.1, "optimizer": "adam"}
    assert [(s.key, list(s.values)) for s in run.series()] == [
        ("hp/accuracy", [pytest.approx(0.9)])
    ]


def test_a_damaged_record_is_a_problem_naming_the_file(logdir: Path, tmp_path: Path) -> None:
    """A record failing its checksum: a problem names the file and the record, the run
    keeps the points before it, and the other runs read whole."""
    copy = tmp_path / "logs"
    shutil.copytree(logdir, copy)
    (event_file,) = (copy / "tbx").glob("events.out.tfevents.*")
    data = bytearray(event_file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    event_file.write_bytes(bytes(data))
    found = list(read(str(copy)))
    problems = [p for p in found if isinstance(p, SourceProblem)]
    assert len(problems) == 1
    assert problems[0].where == str(event_file.resolve())
    assert "damaged" in problems[0].message
    runs = {r.name: r for r in found if isinstance(r, SourceRun)}
    assert sorted(runs) == ["tbx", "tf2", "torch", "torch/hparams"]
    (loss,) = runs["tbx"].series()
    assert 1000 < len(loss.steps) < POINTS
    assert np.asarray(loss.steps).tolist() == list(range(len(loss.steps)))
    assert [s.key for s in runs["torch"].series()] == ["loss", "tensor_loss"]


def test_a_truncated_last_record_ends_the_file_quietly(logdir: Path, tmp_path: Path) -> None:
    """A file cut mid-record (a writer killed while writing) reads up to the cut, with no
    problem: TensorBoard's own reading of a live run."""
    copy = tmp_path / "logs"
    shutil.copytree(logdir / "torch", copy)
    (event_file,) = copy.glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    event_file.write_bytes(data[: len(data) - 5])
    found = list(read(str(copy)))
    assert not [p for p in found if isinstance(p, SourceProblem)]
    (run,) = [r for r in found if isinstance(r, SourceRun) and r.name == "logs"]
    assert np.asarray(next(iter(run.series())).steps).tolist() == [0, 1, 2, 3, 4]


def test_a_folder_without_event_files_is_refused(tmp_path: Path) -> None:
    """No event file under the source: an error that says so, naming the source."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no TensorBoard event file"):
        list(read(str(tmp_path / "empty")))
    with pytest.raises(InvalidInputError, match="no such directory"):
        list(read(str(tmp_path / "missing")))


def test_import_writes_every_point_and_media_once(logdir: Path, home: Path) -> None:
    """`polytrack.importers.tensorboard` stores the runs with their points at their
    original times, media and params; importing again adds nothing."""
    import polytrack
    import polytrack.importers
    from polytrack.importers._writer import import_run_id

    summary = polytrack.importers.tensorboard(logdir, home=home, progress=False)
    assert summary.problems == ()
    assert (summary.runs_seen, summary.runs_new) == (4, 4)
    assert summary.points == POINTS + 5 + 1 + 1 + 1
    assert summary.media == 6 + 3
    view = polytrack.get_run(import_run_id("tensorboard", str(logdir.resolve()), "tbx"), home=home)
    assert (view.name, view.project, view.status) == ("tbx", "experiments", "succeeded")
    steps, values, times = view.history("loss", with_time=True)
    assert steps.tolist() == list(range(POINTS))
    assert values.tolist() == [float(np.float32(s / 4)) for s in range(POINTS)]
    assert _ms(times) == [round((T0 + s * 0.037) * 1000) for s in range(POINTS)]
    (image,) = view.media("sample")
    assert image.step == 3
    assert int(np.asarray(image.value).sum()) == 255
    hparams = polytrack.get_run(
        import_run_id("tensorboard", str(logdir.resolve()), "torch/hparams"), home=home
    )
    assert hparams.params == {"lr": 0.1, "optimizer": "adam"}
    again = polytrack.importers.tensorboard(logdir, home=home, progress=False)
    assert (again.runs_new, again.runs_unchanged, again.points, again.media) == (0, 4, 0, 0)
