"""The Polyaxon sandbox fixture: a real server that stores and returns what it is sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .polyaxon_sandbox import PolyaxonSandbox

pytestmark = pytest.mark.slow


def test_run_status_reads_back(sandbox: PolyaxonSandbox) -> None:
    """A project, a run and a status posted to the sandbox read back through its API."""
    sandbox.create_project("smoke")
    run = sandbox.create_run("smoke", "first", tags=["a"])

    sandbox.set_status("smoke", run["uuid"], "running", reason="test")

    statuses = sandbox.statuses("smoke", run["uuid"])
    assert statuses["status"] == "running"
    assert [c["type"] for c in statuses["status_conditions"]] == ["created", "running"]
    stored = sandbox.run("smoke", run["uuid"])
    assert (stored["name"], stored["tags"], stored["is_managed"]) == ("first", ["a"], False)


def test_inputs_lineage_and_metrics_read_back(sandbox: PolyaxonSandbox) -> None:
    """Inputs/outputs, artifact lineage and uploaded metric events read back unchanged."""
    sandbox.create_project("tracked")
    uuid = sandbox.create_run("tracked", "second")["uuid"]

    io = {"inputs": {"lr": 0.1}, "outputs": {"loss": 0.5}}
    sandbox.api("PATCH", f"default/tracked/runs/{uuid}", json=io)
    sandbox.add_lineage(
        "tracked", uuid, [{"name": "train", "kind": "data", "path": "/d", "is_input": True}]
    )
    points = [(0, "2024-01-01T00:00:00+00:00", 1.5), (1, "2024-01-01T00:00:01+00:00", 0.75)]
    sandbox.upload_metric_events("tracked", uuid, "loss", points)

    stored = sandbox.run("tracked", uuid)
    assert (stored["inputs"], stored["outputs"]) == ({"lr": 0.1}, {"loss": 0.5})
    [artifact] = sandbox.lineage("tracked", uuid)
    assert (artifact["name"], artifact["kind"], artifact["is_input"]) == ("train", "data", True)
    events = sandbox.metric_events("tracked", uuid, "loss")
    assert (events["step"], events["metric"]) == ([0, 1], [1.5, 0.75])


def test_stop_ends_the_process_group(tmp_path: Path) -> None:
    """stop() leaves no process of the sandbox's group alive, and may be called twice."""
    server = PolyaxonSandbox.start(tmp_path / "sandbox")
    assert server.health()

    server.stop()
    server.stop()

    assert not server.health()
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pgid, 0)
