"""W&B offline runs written by wandb itself (its Go core, offline, no network), read by
the W&B reader and imported: history, config, summary, media, artifacts, damaged logs."""

from __future__ import annotations

import io
import os
import platform
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("wandb")

from polytrack.errors import InvalidInputError
from polytrack.importers._wandb import read
from polytrack.importers.source import SourceProblem, SourceRun

T0 = 1_700_000_000.0
ROWS = 3000  # about 0.4 MB of log: many 32 KiB blocks

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import wandb

    root, t0, rows = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    run = wandb.init(
        project="vision", name="baseline", notes="first try", tags=["cnn", "small"],
        config={"lr": 0.1, "layers": [1, 2], "optimizer": {"name": "adam"}},
    )
    for i in range(rows):
        run.log({"loss": i / 4, "train": {"acc": i / rows}, "_timestamp": t0 + i * 0.037},
                step=2 * i)
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    pixels[1, 2] = (255, 0, 0)
    run.log({"sample": wandb.Image(pixels, caption="red dot"),
             "weights": wandb.Histogram(np_histogram=([1, 0, 3], [0.0, 1.0, 2.0, 3.0])),
             "table": wandb.Table(columns=["id", "label"], data=[[1, "cat"], [2, "dog"]]),
             "_timestamp": t0 + 500}, step=2 * rows)
    run.config.update({"epochs": 3})
    run.summary["best_loss"] = 0.25
    with open(root + "/model.bin", "wb") as f:
        f.write(b"weights-bytes")
    artifact = wandb.Artifact("net", type="model")
    artifact.add_file(root + "/model.bin")
    run.log_artifact(artifact)
    run.finish()

    failed = wandb.init(project="vision", name="broken", config={"lr": 1.0})
    failed.log({"loss": 9.0, "_timestamp": t0 + 1000})
    failed.finish(exit_code=2)

    import time
    for attempt in range(2):  # a run resumed: a second directory with the same id
        # wandb names the directory by the second it starts in: wait for the next one,
        # or both attempts would share one directory
        started = int(time.time())
        while attempt and int(time.time()) == started:
            time.sleep(0.05)
        resumed = wandb.init(project="vision", name="resumed", id="resumed01",
                             resume="allow")
        for step in range(3 * attempt, 3 * attempt + 3):
            resumed.log({"loss": float(step), "_timestamp": t0 + 2000 + step}, step=step)
        resumed.finish()
    with open(root + "/written", "w") as f:
        f.write(repr(time.time()))
    """
)


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two offline runs written by wandb: one finished well, one that exited with 2."""
    root = tmp_path_factory.mktemp("wandb-source")
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(root),
        "WANDB_CACHE_DIR": str(root / "cache"),
        "WANDB_DATA_DIR": str(root / "data"),
        "WANDB_CONFIG_DIR": str(root / "config"),
        "WANDB_API_KEY": "",
    }
    subprocess.run(
        [sys.executable, "-c", WRITER, str(root), str(T0), str(ROWS)],
        check=True,
        timeout=300,
        capture_output=True,
        env=env,
        cwd=root,
    )
    return root / "wandb"


def _runs(source: Path) -> dict[str, SourceRun]:
    found = list(read(str(source)))
    assert not [p for p in found if isinstance(p, SourceProblem)], found
    return {r.name: r for r in found if isinstance(r, SourceRun)}


def _ms(times: object) -> list[int]:
    return np.round(np.asarray(times) * 1000).astype(np.int64).tolist()


def test_run_fields_come_from_the_log(wandb_dir: Path) -> None:
    """Name, project, id, config (with later updates), tags, notes, summary, status and
    start time, from the run's records."""
    runs = _runs(wandb_dir)
    assert sorted(runs) == ["baseline", "broken", "resumed"]
    run = runs["baseline"]
    assert len(list(wandb_dir.glob(f"offline-run-*-{run.original_id}/*.wandb"))) == 1
    assert (run.kind, run.uri, run.project) == ("wandb", str(wandb_dir.resolve()), "vision")
    assert dict(run.params) == {
        "lr": 0.1,
        "layers": [1, 2],
        "optimizer": {"name": "adam"},
        "epochs": 3,
    }
    assert (run.tags, run.notes, run.status) == (("cnn", "small"), "first try", "succeeded")
    assert run.outputs["best_loss"] == 0.25
    assert run.outputs["loss"] == (ROWS - 1) / 4
    assert "sample" not in run.outputs  # media are media, not outputs
    written = float((wandb_dir.parent / "written").read_text())
    assert written - 120 < run.started_at < written  # init(), before the script's end
    assert run.ended_at is not None and run.ended_at >= T0 + 500
    assert run.environment["python"] == platform.python_version()
    assert run.environment["hostname"] == socket.gethostname()
    assert run.environment["executable"] == sys.executable
    assert run.environment["packages"]["numpy"] == np.__version__
    broken = runs["broken"]
    assert (broken.status, dict(broken.params)) == ("failed", {"lr": 1.0})


def test_every_history_point_keeps_its_step_and_time(wandb_dir: Path) -> None:
    """Every row's numbers are points at the row's `_step` and `_timestamp` (to the
    millisecond); nested dicts are dotted keys; resource samples are system series."""
    run = _runs(wandb_dir)["baseline"]
    series = {s.key: s for s in run.series()}
    loss, acc = series["loss"], series["train.acc"]
    assert np.asarray(loss.steps).tolist() == [2 * i for i in range(ROWS)]
    assert np.asarray(loss.values).tolist() == [i / 4 for i in range(ROWS)]
    assert _ms(loss.timestamps) == [round((T0 + i * 0.037) * 1000) for i in range(ROWS)]
    assert np.asarray(acc.values).tolist() == [i / ROWS for i in range(ROWS)]
    assert not loss.system
    system = [s for s in series.values() if s.system]
    assert system and all(len(s.steps) == len(s.values) == len(s.timestamps) for s in system)


def test_media_come_with_their_bytes(wandb_dir: Path) -> None:
    """An image's PNG (its pixels), a histogram's bins, a table's rows, at their step."""
    from PIL import Image

    media = {m.name: m for m in _runs(wandb_dir)["baseline"].media()}
    assert sorted(media) == ["sample", "table", "weights"]
    image = media["sample"]
    assert (image.kind, image.step, image.media_type, image.caption) == (
        "image",
        2 * ROWS,
        "image/png",
        "red dot",
    )
    assert _ms([image.timestamp]) == [round((T0 + 500) * 1000)]
    assert image.payload is not None
    pixels = np.asarray(Image.open(io.BytesIO(image.payload)).convert("RGB"))
    assert pixels.shape == (4, 6, 3)
    assert pixels[1, 2].tolist() == [255, 0, 0] and int(pixels.sum()) == 255
    edges, counts = media["weights"].value
    assert (list(edges), list(counts)) == ([0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 3.0])
    assert media["table"].value == [{"id": 1, "label": "cat"}, {"id": 2, "label": "dog"}]


def test_logged_artifacts_and_run_files_are_artifacts(wandb_dir: Path) -> None:
    """A model artifact still staged locally, with its bytes; the run's own files."""
    artifacts = {
        name: (kind, list(files)) for name, kind, files in _runs(wandb_dir)["baseline"].artifacts()
    }
    kind, files = artifacts["net"]
    assert kind == "model"
    assert [f.path for f in files] == ["model.bin"]
    assert files[0].local is not None and files[0].local.read_bytes() == b"weights-bytes"
    assert "requirements.txt" in [f.path for f in artifacts["files"][1]]


def test_a_damaged_record_is_skipped_to_the_next_block(wandb_dir: Path, tmp_path: Path) -> None:
    """A record failing its checksum: a problem names the log and the offset, reading goes
    on at the next 32 KiB block, and the other run reads whole."""
    copy = tmp_path / "wandb"
    shutil.copytree(wandb_dir, copy, symlinks=True)
    baseline = _runs(wandb_dir)["baseline"].original_id
    (log,) = copy.glob(f"offline-run-*-{baseline}/run-{baseline}.wandb")
    data = bytearray(log.read_bytes())
    at = 3 * 32768 + 1000
    data[at : at + 8] = bytes(b ^ 0xFF for b in data[at : at + 8])
    log.write_bytes(bytes(data))
    found = list(read(str(copy)))
    problems = [p for p in found if isinstance(p, SourceProblem)]
    assert len(problems) == 1
    assert problems[0].where == str(log.resolve())
    assert "damaged" in problems[0].message and "next block" in problems[0].message
    runs = {r.name: r for r in found if isinstance(r, SourceRun)}
    steps = np.asarray({s.key: s for s in runs["baseline"].series()}["loss"].steps).tolist()
    assert ROWS - 400 < len(steps) < ROWS
    assert steps[-1] == 2 * (ROWS - 1)  # the rows after the damaged block are read
    assert runs["broken"].status == "failed"


def test_a_resumed_run_is_one_run_with_both_logs(wandb_dir: Path) -> None:
    """The logs of a run resumed in a second directory (same id) are read as one run,
    in order."""
    assert len(list(wandb_dir.glob("offline-run-*-resumed01"))) == 2
    run = _runs(wandb_dir)["resumed"]
    assert (run.original_id, run.status) == ("resumed01", "succeeded")
    loss = {s.key: s for s in run.series()}["loss"]
    assert np.asarray(loss.steps).tolist() == [0, 1, 2, 3, 4, 5]
    assert _ms(loss.timestamps) == [round((T0 + 2000 + s) * 1000) for s in range(6)]


def test_a_file_that_is_no_log_is_a_problem(wandb_dir: Path, tmp_path: Path) -> None:
    """A `run-*.wandb` that is no W&B log is named as a problem; the other runs read."""
    copy = tmp_path / "wandb"
    shutil.copytree(wandb_dir, copy, symlinks=True)
    foreign = copy / "offline-run-20200101_000000-foreign" / "run-foreign.wandb"
    foreign.parent.mkdir()
    foreign.write_bytes(b"not a transaction log")
    found = list(read(str(copy)))
    problems = [p for p in found if isinstance(p, SourceProblem)]
    assert [p.where for p in problems] == [str(foreign.resolve())]
    assert "not a W&B run log" in problems[0].message
    assert sorted(r.name for r in found if isinstance(r, SourceRun)) == [
        "baseline",
        "broken",
        "resumed",
    ]


def test_a_folder_without_logs_is_refused(tmp_path: Path) -> None:
    """No `run-*.wandb` under the source: an error that says so."""
    with pytest.raises(InvalidInputError, match="no W&B run log"):
        list(read(str(tmp_path)))


def test_import_writes_history_media_and_artifacts_once(wandb_dir: Path, home: Path) -> None:
    """`polytrack.importers.wandb` stores both runs with their points at their original
    times, params, statuses, media and the model; importing again adds nothing."""
    import polytrack
    import polytrack.importers
    from polytrack.importers._writer import import_run_id

    summary = polytrack.importers.wandb(wandb_dir, home=home, progress=False)
    assert summary.problems == ()
    assert (summary.runs_seen, summary.runs_new) == (3, 3)
    assert summary.media == 3
    baseline = _runs(wandb_dir)["baseline"]
    view = polytrack.get_run(
        import_run_id("wandb", str(wandb_dir.resolve()), baseline.original_id), home=home
    )
    assert (view.name, view.project, view.status) == ("baseline", "vision", "succeeded")
    assert view.params["lr"] == 0.1
    steps, values, times = view.history("loss", with_time=True)
    assert steps.tolist() == [2 * i for i in range(ROWS)]
    assert values.tolist() == [i / 4 for i in range(ROWS)]
    assert _ms(times) == [round((T0 + i * 0.037) * 1000) for i in range(ROWS)]
    (image,) = view.media("sample")
    assert np.asarray(image.value)[1, 2].tolist()[:3] == [255, 0, 0]
    model = view.artifact("net")
    assert [f.path for f in model.files] == ["model.bin"]
    again = polytrack.importers.wandb(wandb_dir, home=home, progress=False)
    assert (again.runs_new, again.runs_unchanged, again.points, again.media) == (0, 3, 0, 0)
