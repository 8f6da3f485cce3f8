"""The `skipped` status (a DAG operation whose trigger or conditions did not hold): a final
status a run can be finished with, read back, queried, never judged crashed, and shipped
to each backend as its nearest status."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import responses

import polytrack
from polytrack.models import FINAL_STATUSES, STATUSES
from polytrack.sync.backends.base import Batch
from polytrack.sync.backends.config import BackendConfig
from polytrack.sync.backends.memory import InMemoryBackend
from polytrack.sync.backends.mlflow import MlflowBackend
from polytrack.sync.backends.polyaxon import PolyaxonBackend, run_uuid

QUIET = {"capture": False}


def test_skipped_is_a_final_status() -> None:
    assert "skipped" in STATUSES and "skipped" in FINAL_STATUSES


def test_a_run_finished_skipped_reads_back_and_is_queried(home: Path, hot_path: str) -> None:
    """finish("skipped") records the status, its message and the end; `status ==
    "skipped"` finds it, and only it."""
    skipped = polytrack.init(dir=home, name="skipped-one", **QUIET)
    skipped.finish("skipped", message="trigger all_succeeded: a failed")
    other = polytrack.init(dir=home, name="succeeded-one", **QUIET)
    other.finish()
    info = polytrack.get_run(skipped.id, home=home)
    assert info.status == "skipped"
    assert info.message == "trigger all_succeeded: a failed"
    assert info.finished_at is not None
    found = polytrack.runs(home=home, where='status == "skipped"')
    assert [run.id for run in found] == [skipped.id]


def test_the_module_level_finish_accepts_skipped(home: Path) -> None:
    run = polytrack.init(dir=home, **QUIET)
    polytrack.finish("skipped", message="conditions are false")
    assert polytrack.get_run(run.id, home=home).status == "skipped"


def test_a_skipped_run_whose_process_is_gone_is_not_crashed(home: Path) -> None:
    """The process that finished it skipped has exited: the run stays skipped (final),
    where a run left unfinished by a dead process reads as crashed."""
    script = textwrap.dedent(
        f"""
        import polytrack
        skipped = polytrack.init(dir={str(home)!r}, name="skipped", capture=False)
        skipped.finish("skipped", message="not run")
        left = polytrack.init(dir={str(home)!r}, name="left", capture=False,
                              reinit="create_new")
        import os
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    statuses = {run.name: run.status for run in polytrack.runs(home=home)}
    assert statuses == {"skipped": "skipped", "left": "crashed"}


def test_skipped_reaches_the_in_memory_backend(home: Path) -> None:
    backend = InMemoryBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    run.finish("skipped", message="conditions are false")
    assert backend.runs[run.id].status == "skipped"
    assert backend.runs[run.id].statuses[-1][2] == "conditions are false"


MLFLOW_API = "http://mlflow.test:5000/api/2.0/mlflow"


def test_mlflow_has_no_skipped_it_gets_killed_and_the_tag(tmp_path: Path) -> None:
    """MLflow's statuses have no skipped: KILLED with an end time, and the tag
    polytrack.status=skipped saying which."""
    from polytrack.models import RunStarted

    started = RunStarted(
        id="r1", project="demo", name="r1", created_at=1.7e9, host="h", pid=1, process_started=0
    )
    backend = MlflowBackend.from_uri(
        "mlflow+http://mlflow.test:5000", environ={}, config=BackendConfig()
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as server:
        server.get(
            f"{MLFLOW_API}/experiments/get-by-name",
            json={"experiment": {"experiment_id": "7", "lifecycle_stage": "active"}},
        )
        server.post(
            f"{MLFLOW_API}/runs/search",
            json={"runs": [{"info": {"run_id": "abc", "experiment_id": "7"}}]},
        )
        server.post(f"{MLFLOW_API}/runs/update", json={})
        server.post(f"{MLFLOW_API}/runs/log-batch", json={})
        server.post(f"{MLFLOW_API}/runs/set-tag", json={})
        backend.open_run(started, workdir=tmp_path)
        backend.set_status("r1", "skipped", at=1.7e9 + 1, message="conditions are false")
        bodies = {
            call.request.url.rsplit("/", 1)[-1]: json.loads(call.request.body or "{}")
            for call in server.calls
            if call.request.method == "POST"
        }
    backend.close()
    assert bodies["update"]["status"] == "KILLED"
    assert bodies["update"]["end_time"] == round((1.7e9 + 1) * 1000)
    sent = json.dumps(bodies.get("log-batch", {})) + json.dumps(bodies.get("set-tag", {}))
    assert '"polytrack.status"' in sent and '"skipped"' in sent
    assert "conditions are false" in sent


def test_polyaxon_gets_its_own_skipped(tmp_path: Path) -> None:
    from polytrack.models import RunStarted

    api = "http://polyaxon.test:8000/api/v1/acme/mnist"
    run = f"{api}/runs/{run_uuid('acme', 'mnist', 'r1')}"
    started = RunStarted(
        id="r1", project="mnist", name="r1", created_at=1.7e9, host="h", pid=1, process_started=0
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as server:
        server.get(run, json={"uuid": "x"})
        server.post(f"{run}/statuses", json={})
        backend = PolyaxonBackend.from_uri(
            "polyaxon+http://polyaxon.test:8000/acme/mnist",
            environ={"POLYAXON_AUTH_TOKEN": "t"},
        )
        backend.open_run(started, workdir=tmp_path)
        backend.write("r1", Batch(0, ()))
        backend.set_status("r1", "skipped", at=1.7e9 + 1, message="conditions are false")
        posted = [
            json.loads(call.request.body)
            for call in server.calls
            if call.request.url.endswith("/statuses")
        ]
    backend.close()
    assert [body["condition"]["type"] for body in posted] == ["skipped"]
    assert posted[0]["condition"]["message"] == "conditions are false"


def test_the_terminal_and_notebooks_colour_skipped() -> None:
    from polytrack._display import STATUS_COLORS as HTML_COLORS
    from polytrack.cli.runs import STATUS_COLORS

    assert "skipped" in STATUS_COLORS and "skipped" in HTML_COLORS


def test_the_dashboard_has_a_skipped_badge() -> None:
    """The shipped stylesheet (built from frontend/src/app.css) styles the badge."""
    from importlib.resources import files

    css = files("polytrack.dashboard").joinpath("static/assets/app.css").read_text()
    assert ".status-skipped{" in css
