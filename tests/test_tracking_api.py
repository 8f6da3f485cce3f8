"""`polytrack.tracking`: a script written for Polyaxon's `tracking` module, one import changed."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import polytrack
from polytrack import tracking
from polytrack.errors import TrackingWarning
from polytrack.run import Run

# Polyaxon's signatures, copied from traceml 1.5.0 `traceml/tracking/__init__.py`, which
# polyaxon 2.18.0 re-exports as `polyaxon.tracking` (`from traceml.tracking import *`):
# function -> (parameter name, kind, repr of its default or None when it has none).
P, K, V = "POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY", "VAR_KEYWORD"
POLYAXON: dict[str, list[tuple[str, str, str | None]]] = {
    "init": [
        ("owner", P, "None"),
        ("project", P, "None"),
        ("run_uuid", P, "None"),
        ("client", P, "None"),
        ("track_code", P, "True"),
        ("track_env", P, "True"),
        ("track_logs", P, "True"),
        ("refresh_data", P, "False"),
        ("artifacts_path", P, "None"),
        ("collect_artifacts", P, "None"),
        ("collect_resources", P, "None"),
        ("is_offline", P, "None"),
        ("is_new", P, "None"),
        ("name", P, "None"),
        ("description", P, "None"),
        ("tags", P, "None"),
        ("log_context", K, "False"),
    ],
    "log_metric": [
        ("name", P, None),
        ("value", P, None),
        ("step", P, "None"),
        ("timestamp", P, "None"),
    ],
    "log_metrics": [("step", P, "None"), ("timestamp", P, "None"), ("metrics", V, None)],
    "log_inputs": [("reset", P, "False"), ("async_req", P, "True"), ("inputs", V, None)],
    "log_outputs": [("reset", P, "False"), ("async_req", P, "True"), ("outputs", V, None)],
    "log_tags": [("tags", P, None), ("reset", P, "False"), ("async_req", P, "True")],
    "log_progress": [("value", P, None)],
    "log_data_ref": [
        ("name", P, None),
        ("hash", P, "None"),
        ("path", P, "None"),
        ("content", P, "None"),
        ("summary", P, "None"),
        ("is_input", P, "True"),
        ("skip_hash_calculation", P, "False"),
    ],
    "log_code_ref": [("code_ref", P, "None"), ("is_input", P, "True")],
    "log_model": [
        ("path", P, None),
        ("name", P, "None"),
        ("framework", P, "None"),
        ("summary", P, "None"),
        ("step", P, "None"),
        ("timestamp", P, "None"),
        ("rel_path", P, "None"),
        ("skip_hash_calculation", P, "False"),
        ("kwargs", V, None),
    ],
    "log_artifact": [
        ("path", P, None),
        ("name", P, "None"),
        ("kind", P, "None"),
        ("summary", P, "None"),
        ("step", P, "None"),
        ("timestamp", P, "None"),
        ("rel_path", P, "None"),
        ("skip_hash_calculation", P, "False"),
        ("kwargs", V, None),
    ],
    "end": [],
    "log_succeeded": [("reason", P, "None"), ("message", P, "'Operation has succeeded'")],
    "log_stopped": [("reason", P, "None"), ("message", P, "'Operation is stopped'")],
    "log_failed": [("reason", P, "None"), ("message", P, "None")],
}


def parameters(function: Any) -> list[tuple[str, str, str | None]]:
    return [
        (p.name, p.kind.name, None if p.default is p.empty else repr(p.default))
        for p in inspect.signature(function).parameters.values()
    ]


def test_signatures_match_polyaxons() -> None:
    """Every mapped function takes Polyaxon's parameters: names, kinds, order, defaults."""
    assert set(POLYAXON) <= set(tracking.__all__)  # media: tests/media/test_tracking_media.py
    for name, expected in POLYAXON.items():
        assert parameters(getattr(tracking, name)) == expected, name


def _polyaxon_python() -> Path | None:
    """The cached Polyaxon sandbox venv's interpreter, if a test run has built it."""
    try:
        from servers.polyaxon_sandbox import REQUIREMENTS
        from servers.venvs import _complete, _digest, cache_root
    except ImportError:
        return None
    venv = cache_root() / "venvs" / f"polyaxon-sandbox-{_digest(REQUIREMENTS)}"
    return venv / "bin" / "python" if _complete(venv) else None


def test_the_copied_table_is_what_polyaxon_has() -> None:
    """The table above matches the installed Polyaxon client, where one is at hand."""
    python = _polyaxon_python()
    if python is None:
        pytest.skip("the Polyaxon sandbox venv is not built here (tests/servers builds it)")
    script = (
        "import inspect, json\n"
        "from polyaxon import tracking\n"
        f"names = {sorted(POLYAXON)!r}\n"
        "print(json.dumps({n: [[p.name, p.kind.name, None if p.default is p.empty else "
        "repr(p.default)] for p in inspect.signature(getattr(tracking, n)).parameters.values()]"
        " for n in names}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert {n: [tuple(p) for p in ps] for n, ps in found.items()} == POLYAXON


# The script as written for Polyaxon; the test changes its import line only.
POLYAXON_SCRIPT = """\
from polyaxon import tracking

tracking.init(
    project="mnist",
    name="ported",
    description="written for Polyaxon",
    tags=["cnn"],
    track_env=False,
    collect_resources=False,
)
tracking.log_inputs(lr=0.01, batch_size=64)
with open("train.csv", "w") as f:
    f.write("x,y\\n1,2\\n")
tracking.log_data_ref(name="train", path="train.csv")
tracking.log_code_ref(
    {"commit": "0123abcd", "branch": "main", "url": "https://bob:pw@example.com/r.git"}
)
for step in range(3):
    tracking.log_metrics(step=step, loss=1.0 / (step + 1), accuracy=step / 3)
    tracking.log_progress((step + 1) / 3)
with open("model.pt", "wb") as f:
    f.write(b"weights")
tracking.log_model("model.pt", framework="pytorch", summary={"layers": 3}, step=2)
with open("report.txt", "w") as f:
    f.write("fine")
tracking.log_artifact("report.txt", kind="text", rel_path="reports")
tracking.log_tags(["ported"])
tracking.log_outputs(accuracy=0.67)
print(tracking.TRACKING_RUN.id)
tracking.end()
"""


def test_a_polyaxon_script_is_tracked_by_changing_its_import(
    home: Path, tmp_path: Path
) -> None:
    """Params, data and code refs, metrics, progress, model, artifact, tags and outputs."""
    script = POLYAXON_SCRIPT.replace("from polyaxon import", "from polytrack import")
    assert script.count("\n") == POLYAXON_SCRIPT.count("\n") and script != POLYAXON_SCRIPT
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "POLYTRACK_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = polytrack.get_run(done.stdout.strip(), home=home)
    assert (run.project, run.name, run.notes, run.status) == (
        "mnist",
        "ported",
        "written for Polyaxon",
        "succeeded",
    )
    assert run.message is None
    assert run.tags == ("cnn", "ported")
    assert run.params == {"lr": 0.01, "batch_size": 64}
    assert run.outputs == {"accuracy": 0.67}
    assert run.history("loss")[0].tolist() == [0, 1, 2]
    assert run.history("accuracy")[1].tolist() == pytest.approx([0, 1 / 3, 2 / 3])
    assert run.history("progress")[0].tolist() == [0, 1, 2]  # at the steps, none added
    assert run.history("progress")[1].tolist() == pytest.approx([1 / 3, 2 / 3, 1])
    model = run.artifact("model")
    assert (model.kind, model.framework, model.metadata) == (
        "model",
        "pytorch",
        {"layers": 3, "step": 2},
    )
    assert model.download(tmp_path / "out").read_bytes() == b"weights"
    assert run.artifact("report").kind == "text"
    snapshot = run.snapshot()
    assert [(d.name, d.role, d.kind) for d in snapshot.data_refs] == [("train", "input", "file")]
    assert snapshot.git is not None
    assert (snapshot.git.commit, snapshot.git.branch) == ("0123abcd", "main")
    assert snapshot.git.remote is not None and "pw" not in snapshot.git.remote
    assert snapshot.environment is None and snapshot.hardware is None  # track_env=False
    assert "system/cpu_percent" not in run.metrics  # collect_resources=False


def test_init_maps_polyaxons_options(home: Path) -> None:
    """is_offline, track_* and collect_resources switch polytrack's mode and captures."""
    run = tracking.init(
        project="p",
        is_offline=True,
        track_code=False,
        track_logs=False,
        collect_resources="false",
        owner="ignored",
        artifacts_path="/ignored",
        log_context=True,
    )
    assert isinstance(run, tracking.Run) and isinstance(run.polytrack_run, Run)
    assert tracking.TRACKING_RUN is run
    settings = run.polytrack_run.settings
    assert settings.mode == "offline" and settings.project == "p"
    assert not (settings.capture_git or settings.capture_code or settings.capture_logs)
    assert not settings.capture_system
    assert settings.capture_environment and settings.capture_hardware
    tracking.end()
    assert tracking.TRACKING_RUN is None


def test_run_uuid_continues_a_recorded_run(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """init(run_uuid=...) continues that run; is_new=True starts a new one instead."""
    first = polytrack.init(dir=home, capture=False)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finish()
    monkeypatch.setenv("POLYTRACK_HOME", str(home))
    again = tracking.init(run_uuid=first.id, track_code=False, track_env=False)
    assert again.id == first.id
    tracking.log_metrics(loss=0.5)
    tracking.end()
    assert polytrack.get_run(first.id, home=home).history("loss")[0].tolist() == [0, 1]
    other = tracking.init(run_uuid=first.id, is_new=True, track_code=False, track_env=False)
    assert other.id != first.id
    tracking.end()


@pytest.mark.parametrize(
    ("end", "status", "message"),
    [
        (lambda: tracking.log_succeeded(), "succeeded", None),
        (lambda: tracking.log_stopped(), "stopped", None),
        (
            lambda: tracking.log_failed(reason="OOM", message="CUDA out of memory"),
            "failed",
            "OOM: CUDA out of memory",
        ),
        (lambda: tracking.log_succeeded(message="early stop"), "succeeded", "early stop"),
    ],
)
def test_status_functions_finish_the_run(
    home: Path, end: Any, status: str, message: str | None
) -> None:
    """log_succeeded/stopped/failed finish the run; Polyaxon's default messages are dropped."""
    run = polytrack.init(dir=home, capture=False)
    end()
    view = polytrack.get_run(run.id, home=home)
    assert (view.status, view.message) == (status, message)


def test_polyaxon_input_checks_and_what_polytrack_cannot_do(home: Path) -> None:
    """log_progress checks its value as Polyaxon does; resets and bare hashes warn."""
    polytrack.init(dir=home, capture=False)
    with pytest.raises(TypeError):
        tracking.log_progress("half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between"):
        tracking.log_progress(1.5)
    with pytest.warns(TrackingWarning, match="never removes recorded inputs"):
        tracking.log_inputs(reset=True, a=1)
    with pytest.warns(TrackingWarning, match="never removes recorded tags"):
        tracking.log_tags("x", reset=True)
    with pytest.warns(TrackingWarning, match="a hash alone is not recorded"):
        assert tracking.log_data_ref("train", hash="abc123") is None
    ref = tracking.log_data_ref("vocab", content="a b c", is_input=False)
    assert ref is not None and ref.role == "output" and ref.kind == "bytes"
    tracking.log_outputs(a=1)
    tracking.log_outputs(reset=True, b=2)
    tracking.log_code_ref({"branch": "no commit: ignored, as by Polyaxon"})
    run = polytrack.current_run()
    assert run is not None
    tracking.end()
    view = polytrack.get_run(run.id, home=home)
    assert view.params == {"a": 1} and view.tags == ("x",) and view.outputs == {"b": 2}
    assert view.snapshot().git is None


def test_before_init_and_unknown_functions(home: Path) -> None:
    """Calls before init() warn and record nothing; Polyaxon-only functions are absent."""
    with pytest.warns(TrackingWarning, match="before"):
        tracking.log_metrics(step=0, loss=1.0)
    with pytest.warns(TrackingWarning, match="before tracking.init"):
        tracking.log_progress(0.5)
    with pytest.raises(AttributeError, match=r"log_meta.*maps these"):
        tracking.log_meta  # noqa: B018
    assert not home.exists()
