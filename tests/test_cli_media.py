"""`polytrack media ls|get` and the media section of `runs show`: a real run's images,
histograms and texts listed and fetched through `main(argv)`."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from attrs import frozen
from PIL import Image

import polytrack
from _cli import cli
from polytrack.cli import main
from polytrack.store.blobs import blob_path


@frozen
class Logged:
    """A store with one run that logged images (one a batch), a histogram and texts."""

    home: Path
    run_id: str
    first: np.ndarray  # samples/val at step 1
    batch: np.ndarray  # samples/val at step 4: two images
    values: np.ndarray  # weights at step 2


@pytest.fixture
def logged(home: Path) -> Logged:
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    batch = rng.integers(0, 256, (2, 4, 7, 3), dtype=np.uint8)
    values = rng.normal(size=500)
    run = polytrack.init(project="mnist", name="media", dir=home, capture=False)
    run.log_image("samples/val", first, step=1, caption="first <b>look</b>")
    run.log_image("samples/val", batch, step=4)
    run.log_histogram("weights", values, step=2, bins=10)
    run.log_text("notes", "héllo\nworld", step=3)
    run.log_html("report", "<h1>epoch 3</h1>", step=3)
    run.finish()
    return Logged(home, run.id, first, batch, values)


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_runs_show_lists_media_keys_with_kind_and_steps(logged: Logged) -> None:
    """`runs show` has a media section: one line per name with its kind and step count."""
    result = cli("runs", "show", logged.run_id, "--home", str(logged.home))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    start = lines.index("media")
    section = [line.split() for line in lines[start + 1 : start + 7]]
    assert section == [
        ["name", "kind", "steps"],
        ["notes", "text", "1"],
        ["report", "html", "1"],
        ["samples/val", "image", "2"],
        ["weights", "histogram", "1"],
        [],
    ]


def test_runs_show_json_has_the_media_keys(logged: Logged) -> None:
    """`runs show --json` lists the same keys under "media"."""
    result = cli("runs", "show", logged.run_id, "--json", "--home", str(logged.home))
    assert result.code == 0, result.err
    media = json.loads(result.out)["media"]
    assert {m["name"]: (m["kind"], m["steps"]) for m in media} == {
        "notes": ("text", 1),
        "report": ("html", 1),
        "samples/val": ("image", 2),
        "weights": ("histogram", 1),
    }


def test_runs_show_says_none_without_media(home: Path) -> None:
    """A run that logged no media shows "none" under its media heading."""
    run = polytrack.init(dir=home, capture=False)
    run.finish()
    result = cli("runs", "show", run.id, "--home", str(home))
    lines = result.out.splitlines()
    assert lines[lines.index("media") + 1] == "  none"


def test_ls_lists_keys(logged: Logged) -> None:
    """`media ls RUN` is a table of name, kind and number of steps; --json the same."""
    result = cli("media", "ls", logged.run_id, "--home", str(logged.home))
    assert result.code == 0, result.err
    assert [line.split() for line in result.out.splitlines()] == [
        ["name", "kind", "steps"],
        ["notes", "text", "1"],
        ["report", "html", "1"],
        ["samples/val", "image", "2"],
        ["weights", "histogram", "1"],
    ]
    as_json = cli("media", "ls", logged.run_id, "--json", "--home", str(logged.home))
    assert {"name": "weights", "kind": "histogram", "steps": 1} in json.loads(as_json.out)


def test_ls_of_a_name_lists_its_steps(logged: Logged) -> None:
    """`media ls RUN NAME`: step, kind, shape, files, size and caption of each step."""
    result = cli("media", "ls", logged.run_id, "samples/val", "--home", str(logged.home))
    assert result.code == 0, result.err
    header, first, second = result.out.splitlines()
    assert header.split() == ["step", "kind", "shape", "files", "size", "caption"]
    assert first.split()[:4] == ["1", "image", "1x6x5x3", "1"]
    assert first.endswith("first <b>look</b>")
    assert second.split()[:4] == ["4", "image", "2x4x7x3", "2"]
    assert second.endswith("-")

    records = json.loads(
        cli("media", "ls", logged.run_id, "weights", "--json", "--home", str(logged.home)).out
    )
    (record,) = records
    assert (record["step"], record["shape"], record["meta"]["total"]) == (2, [10], 500.0)
    assert record["files"][0]["media_type"] == "application/json"
    assert record["files"][0]["digest"].startswith("sha256:")


def test_ls_of_a_run_without_media(home: Path) -> None:
    """ls of a run that logged none says so on stderr and succeeds."""
    run = polytrack.init(dir=home, capture=False)
    run.finish()
    result = cli("media", "ls", run.id, "--home", str(home))
    assert (result.code, result.out) == (0, "")
    assert "has no media" in result.err


def test_get_writes_the_last_step_by_default(
    logged: Logged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --step and -o: the last step, as <name>-<step>.png with "/" written "_"."""
    monkeypatch.chdir(tmp_path)
    result = cli("media", "get", logged.run_id, "samples/val", "--home", str(logged.home))
    assert result.code == 0, result.err
    assert result.out.strip() == "samples_val-4.png"
    assert np.array_equal(png_pixels((tmp_path / "samples_val-4.png").read_bytes()),
                          logged.batch[0])  # fmt: skip


def test_get_a_step_and_an_index_of_a_batch(logged: Logged, tmp_path: Path) -> None:
    """--step picks the step, --index the image of a batch; -o names the file."""
    home = str(logged.home)
    out = tmp_path / "val.png"
    result = cli("media", "get", logged.run_id, "samples/val", "--step", "1", "-o", str(out),
                 "--home", home)  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.strip() == str(out)
    assert np.array_equal(png_pixels(out.read_bytes()), logged.first)

    folder = tmp_path / "folder"
    folder.mkdir()
    second = cli("media", "get", logged.run_id, "samples/val", "--index", "1", "-o",
                 str(folder), "--home", home)  # fmt: skip
    assert second.code == 0, second.err
    assert second.out.strip() == str(folder / "samples_val-4-1.png")
    assert np.array_equal(png_pixels((folder / "samples_val-4-1.png").read_bytes()),
                          logged.batch[1])  # fmt: skip


def test_get_a_histogram_as_json_and_text_to_stdout(logged: Logged, tmp_path: Path) -> None:
    """A histogram comes out as its JSON (numpy's counts exactly); `-o -` prints a text."""
    home = str(logged.home)
    out = tmp_path / "w.json"
    result = cli("media", "get", logged.run_id, "weights", "-o", str(out), "--home", home)
    assert result.code == 0, result.err
    payload = json.loads(out.read_text())
    counts, edges = np.histogram(logged.values, bins=10)
    assert payload["counts"] == counts.tolist()
    assert np.allclose(payload["edges"], edges)

    text = cli("media", "get", logged.run_id, "notes", "-o", "-", "--home", home)
    assert (text.code, text.out) == (0, "héllo\nworld")


def test_get_to_a_binary_stdout_writes_the_bytes(logged: Logged) -> None:
    """`-o -` on a stream with a byte buffer (a pipe) gets the PNG's bytes unchanged."""
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    code = main(["media", "get", logged.run_id, "samples/val", "--step", "1", "-o", "-",
                 "--home", str(logged.home)], stdout=stdout, stderr=io.StringIO(),
                environ={})  # fmt: skip
    assert code == 0
    assert np.array_equal(png_pixels(raw.getvalue()), logged.first)


def test_errors_become_exit_codes(logged: Logged, tmp_path: Path) -> None:
    """No such run, media, step or file: 3, naming what there is; a corrupt blob: 1."""
    home = str(logged.home)
    missing_run = cli("media", "get", "nope", "weights", "--home", home)
    assert missing_run.code == 3 and "nope" in missing_run.err
    missing = cli("media", "get", logged.run_id, "loss", "--home", home)
    assert missing.code == 3
    assert f"run {logged.run_id} has no media 'loss'" in missing.err
    assert "samples/val" in missing.err and "Traceback" not in missing.err
    no_step = cli("media", "get", logged.run_id, "samples/val", "--step", "2", "--home", home)
    assert no_step.code == 3 and "has no step 2 (its 2 step(s): 1, 4)" in no_step.err
    no_file = cli("media", "get", logged.run_id, "weights", "--index", "1", "--home", home)
    assert no_file.code == 3 and "--index 1" in no_file.err
    no_ls = cli("media", "ls", logged.run_id, "loss", "--home", home)
    assert no_ls.code == 3 and "has no media 'loss'" in no_ls.err
    bad_step = cli("media", "get", logged.run_id, "weights", "--step", "-1", "--home", home)
    assert bad_step.code == 2

    view = polytrack.get_run(logged.run_id, home=logged.home)
    blob = blob_path(logged.home, view.media("weights")[0].blobs[0].digest)
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot")
    out = tmp_path / "w.json"
    corrupt = cli("media", "get", logged.run_id, "weights", "-o", str(out), "--home", home)
    assert corrupt.code == 1 and "does not match its digest" in corrupt.err
    assert not out.exists()


def test_help_describes_the_commands() -> None:
    """`polytrack --help` lists `media`; `media get --help` tells the options."""
    assert "media" in cli("--help").out
    help_text = cli("media", "get", "--help").out
    assert "--step" in help_text and "--index" in help_text and "<name>-<step>" in help_text


def test_gc_keeps_the_blobs_media_refer_to(logged: Logged, tmp_path: Path) -> None:
    """`polytrack gc` deletes no blob of a media record, however old."""
    old = 1_000_000_000  # 2001: far past gc's grace period
    for blob in (logged.home / "blobs" / "sha256").rglob("*"):
        if blob.is_file():
            os.utime(blob, (old, old))
    assert cli("gc", "--home", str(logged.home)).code == 0
    out = tmp_path / "val.png"
    result = cli("media", "get", logged.run_id, "samples/val", "--step", "1", "-o", str(out),
                 "--home", str(logged.home))  # fmt: skip
    assert result.code == 0, result.err
    assert np.array_equal(png_pixels(out.read_bytes()), logged.first)
