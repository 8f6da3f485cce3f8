"""Polyaxon runs written offline by traceml (`tracking.init(is_offline=True)`), read by the
Polyaxon reader with traceml's own event parsing, and imported."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("traceml.events")
pytest.importorskip("polyaxon")  # traceml's tracking (the writer) imports its client

from polytrack.errors import ImportSourceError, InvalidInputError
from polytrack.importers._polyaxon import read
from polytrack.importers.source import SourceProblem, SourceRun

pytestmark = [
    # traceml's V1Event parsing goes through clipped, which calls a pydantic 1 helper.
    pytest.mark.filterwarnings(
        "ignore:`load_str_bytes` is deprecated:pydantic.warnings.PydanticDeprecatedSince20"
    ),
]

T0 = 1_700_000_000.0
POINTS = 300

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    import numpy as np
    from traceml import tracking

    root, t0, points = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

    def at(seconds):
        return datetime.fromtimestamp(t0 + seconds, tz=timezone.utc)

    tracking.init(is_offline=True, project="vision", name="baseline",
                  description="first try", tags=["cnn", "small"], track_code=False,
                  track_env=True)
    tracking.log_inputs(lr=0.1, batch_size=32, optimizer="adam")
    for step in range(points):
        tracking.log_metrics(step=step, timestamp=at(step * 0.037), loss=step / 4,
                             accuracy=step / points)
    pixels = np.zeros((3, 4, 6), dtype=np.uint8)  # CHW
    pixels[0, 1, 2] = 255
    tracking.log_image(pixels, name="sample", step=3, timestamp=at(50))
    tracking.log_np_histogram("weights", np.array([1.0, 0.0, 3.0]),
                              np.array([0.0, 1.0, 2.0, 3.0]), step=4, timestamp=at(51))
    tracking.log_text("note", "hello", step=5, timestamp=at(52))
    tracking.log_html("page", "<b>bold</b>", step=6, timestamp=at(53))
    tracking.log_curve("roc", [0.0, 0.5, 1.0], [0.0, 0.8, 1.0], annotation="auc=0.9",
                       step=7, timestamp=at(54))
    with open(root + "/model.bin", "wb") as f:
        f.write(b"weights-bytes")
    tracking.log_model(root + "/model.bin", name="net", framework="torch")
    tracking.log_outputs(best_loss=0.25)
    tracking.end()

    run = tracking.init(is_offline=True, is_new=True, project="vision", name="broken",
                        track_code=False, track_env=False)
    tracking.log_metrics(step=0, timestamp=at(1000), loss=9.0)
    tracking.log_failed(reason="Diverged", message="loss is nan")
    tracking.end()
    """
)


@pytest.fixture(scope="module")
def offline_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two traceml offline runs: one finished well, one failed."""
    root = tmp_path_factory.mktemp("plx-source")
    env = {**os.environ, "POLYAXON_OFFLINE_ROOT": str(root / "offline")}
    env.pop("POLYAXON_HOME", None)
    subprocess.run(
        [sys.executable, "-c", WRITER, str(root), str(T0), str(POINTS)],
        check=True,
        timeout=300,
        capture_output=True,
        env=env,
        cwd=root,
    )
    return root / "offline"


def _runs(source: Path) -> dict[str, SourceRun]:
    found = list(read(str(source)))
    assert not [p for p in found if isinstance(p, SourceProblem)], found
    return {r.name: r for r in found if isinstance(r, SourceRun)}


def _ms(times: object) -> list[int]:
    return np.round(np.asarray(times) * 1000).astype(np.int64).tolist()


def _spec(root: Path, run: SourceRun) -> dict[str, object]:
    (path,) = root.rglob(f"{run.original_id}/run.plx.json")
    spec = json.loads(path.read_text())
    assert isinstance(spec, dict)
    return spec


def test_run_fields_come_from_run_plx_json(offline_root: Path) -> None:
    """Name, project, uuid, inputs as params, outputs, tags, description, status and the
    recorded start and end times; the environment traceml recorded."""
    runs = _runs(offline_root)
    assert sorted(runs) == ["baseline", "broken"]
    run = runs["baseline"]
    spec = _spec(offline_root, run)
    assert (run.kind, run.uri, run.original_id) == (
        "polyaxon",
        str(offline_root.resolve()),
        spec["uuid"],
    )
    assert (run.project, run.status, run.notes, run.tags) == (
        "vision",
        "succeeded",
        "first try",
        ("cnn", "small"),
    )
    assert dict(run.params) == {"lr": 0.1, "batch_size": 32, "optimizer": "adam"}
    assert run.outputs["best_loss"] == 0.25
    assert run.started_at is not None and run.ended_at is not None
    assert _ms([run.started_at]) == _ms([_iso(str(spec["started_at"]))])
    assert _ms([run.ended_at]) == _ms([_iso(str(spec["finished_at"]))])
    assert run.environment["packages"]["numpy"] == np.__version__
    assert runs["broken"].status == "failed"


def _iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def test_every_metric_point_keeps_its_step_and_time(offline_root: Path) -> None:
    """Every event of a metric file, with its step and timestamp to the millisecond;
    resource samples are system series."""
    series = {s.key: s for s in _runs(offline_root)["baseline"].series()}
    loss = series["loss"]
    assert np.asarray(loss.steps).tolist() == list(range(POINTS))
    assert np.asarray(loss.values).tolist() == [s / 4 for s in range(POINTS)]
    assert _ms(loss.timestamps) == [round((T0 + s * 0.037) * 1000) for s in range(POINTS)]
    assert np.asarray(series["accuracy"].values).tolist() == [s / POINTS for s in range(POINTS)]
    system = sorted(k for k, s in series.items() if s.system)
    assert {"cpu", "memory"} <= set(system)


def test_media_come_with_their_bytes(offline_root: Path) -> None:
    """The image asset's PNG (its pixels), the histogram's edges and counts, text, html
    and a curve, at their steps and times."""
    from PIL import Image

    media = {m.name: m for m in _runs(offline_root)["baseline"].media()}
    assert sorted(media) == ["note", "page", "roc", "sample", "weights"]
    image = media["sample"]
    assert (image.kind, image.step, image.media_type) == ("image", 3, "image/png")
    assert _ms([image.timestamp]) == [round((T0 + 50) * 1000)]
    assert image.payload is not None
    pixels = np.asarray(Image.open(io.BytesIO(image.payload)))
    assert pixels.shape[:2] == (4, 6)
    assert int(pixels.sum()) == 255 and pixels[1, 2].max() == 255
    edges, counts = media["weights"].value
    assert (list(edges), list(counts)) == ([0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 3.0])
    assert (media["note"].kind, media["note"].value) == ("text", "hello")
    assert (media["page"].kind, media["page"].value) == ("html", "<b>bold</b>")
    roc = media["roc"]
    assert (roc.kind, roc.step) == ("curve", 7)
    assert (roc.media_type, roc.meta) == (
        "application/json",
        {"kind": "custom", "annotation": "auc=0.9"},
    )
    assert roc.payload is not None
    assert json.loads(roc.payload) == {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.8, 1.0]}


def test_models_and_outputs_are_artifacts(offline_root: Path) -> None:
    """A logged model with its bytes, from the run's lineage."""
    artifacts = {n: (k, list(f)) for n, k, f in _runs(offline_root)["baseline"].artifacts()}
    kind, files = artifacts["net"]
    assert kind == "model"
    assert [f.path for f in files] == ["model.bin"]
    assert files[0].local is not None and files[0].local.read_bytes() == b"weights-bytes"


def test_damaged_files_are_named_and_the_rest_reads(offline_root: Path, tmp_path: Path) -> None:
    """A `run.plx.json` that is no JSON is a problem naming it (the other run reads); a
    metric file traceml cannot parse is an error naming it."""
    copy = tmp_path / "offline"
    shutil.copytree(offline_root, copy)
    runs = _runs(copy)
    broken = next(copy.rglob(f"{runs['broken'].original_id}/run.plx.json"))
    broken.write_text("{not json")
    found = list(read(str(copy)))
    problems = [p for p in found if isinstance(p, SourceProblem)]
    assert [p.where for p in problems] == [str(broken.resolve())]
    assert [r.name for r in found if isinstance(r, SourceRun)] == ["baseline"]
    metric = next(copy.rglob(f"{runs['baseline'].original_id}/events/metric/loss.plx"))
    metric.write_text('step|timestamp|metric\n1|2026-01-01|1.0|extra|cells\n"unclosed')
    (baseline,) = [r for r in read(str(copy)) if isinstance(r, SourceRun)]
    with pytest.raises(ImportSourceError, match=r"loss\.plx"):
        list(baseline.series())


def test_a_folder_without_runs_is_refused(tmp_path: Path) -> None:
    """No `run.plx.json` under the source: an error that says so."""
    with pytest.raises(InvalidInputError, match="no Polyaxon run"):
        list(read(str(tmp_path)))


def test_import_writes_points_media_and_models_once(offline_root: Path, home: Path) -> None:
    """`polytrack.importers.polyaxon` stores both runs with their points at their
    original times, params, statuses, media and the model; importing again adds nothing."""
    import polytrack
    import polytrack.importers
    from polytrack.importers._writer import import_run_id

    summary = polytrack.importers.polyaxon(offline_root, home=home, progress=False)
    assert summary.problems == ()
    assert (summary.runs_seen, summary.runs_new) == (2, 2)
    baseline = _runs(offline_root)["baseline"]
    view = polytrack.get_run(
        import_run_id("polyaxon", str(offline_root.resolve()), baseline.original_id), home=home
    )
    assert (view.name, view.project, view.status) == ("baseline", "vision", "succeeded")
    assert view.params == {"lr": 0.1, "batch_size": 32, "optimizer": "adam"}
    steps, values, times = view.history("loss", with_time=True)
    assert steps.tolist() == list(range(POINTS))
    assert values.tolist() == [s / 4 for s in range(POINTS)]
    assert _ms(times) == [round((T0 + s * 0.037) * 1000) for s in range(POINTS)]
    (image,) = view.media("sample")
    assert int(np.asarray(image.value).sum()) == 255
    assert [f.path for f in view.artifact("net").files] == ["model.bin"]
    again = polytrack.importers.polyaxon(offline_root, home=home, progress=False)
    assert (again.runs_new, again.runs_unchanged, again.points, again.media) == (0, 2, 0, 0)
