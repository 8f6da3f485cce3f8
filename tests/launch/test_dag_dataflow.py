"""DAG data flow on the Kubernetes emulator: an operation is rendered at submit time with
what its upstream runs recorded (their outputs in this store, as a synced or attached
run's are), and skipped when its conditions say so (its run recorded `skipped`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from launch_helpers import NAMESPACE, cli

import polytrack
from polytrack.cli import EXIT_OK
from polytrack.errors import RunStateError
from polytrack.settings import Settings

pytest.importorskip("kmock")

FLOW = {
    "version": 1.1,
    "kind": "component",
    "name": "flow",
    "run": {
        "kind": "dag",
        "operations": [
            {"name": "first", "dagRef": "produce"},
            {
                "name": "second",
                "dagRef": "consume",
                "params": {"y": {"ref": "ops.first", "value": "outputs.x"}},
            },
            {
                "name": "third",
                "dagRef": "consume",
                "params": {"y": {"value": "{{ ops.first.outputs.x }}"}},
                "conditions": "{{ ops.first.outputs.x > 10 }}",
                "tags": ["gated"],
            },
            {"name": "fourth", "dagRef": "produce", "dependencies": ["third"], "tags": ["late"]},
        ],
        "components": [
            {
                "name": "produce",
                "run": {"kind": "job", "container": {"image": "busybox", "command": ["true"]}},
            },
            {
                "name": "consume",
                "inputs": [{"name": "y", "type": "int"}],
                "run": {
                    "kind": "job",
                    "container": {
                        "image": "busybox",
                        "command": ["echo"],
                        "args": ["--y={{ y }}", "--x={{ ops.first.outputs.x }}"],
                    },
                },
            },
        ],
    },
}


def job_env(cluster: Any, name: str) -> dict[str, str]:
    [job] = [
        job
        for job in cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")
        if job["metadata"]["name"] == name
    ]
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", ())}


def pod_records_outputs(cluster: Any, name: str, home: Path, **outputs: Any) -> None:
    """What the pod's own `polytrack.init()` would do, its run synced here: attach to the
    run named in the job's environment and log `outputs`."""
    run_id = job_env(cluster, name)["POLYTRACK_RUN_ID"]
    settings = Settings(home=home, run_id=run_id, capture_git=False)
    deadline = time.monotonic() + 30
    while True:  # until the command line has handed the run over
        try:
            run = polytrack.init(settings=settings, capture=False, reinit="create_new")
            break
        except RunStateError:
            assert time.monotonic() < deadline, "the run was never handed over"
            time.sleep(0.02)
    run.log_outputs(**outputs)
    run.finish()


def test_an_operation_reads_its_upstream_outputs_at_submit_time(
    environ: dict[str, str], controller: Any, cluster: Any, tmp_path: Path
) -> None:
    """`ref: ops.first` and `{{ ops.first.outputs.x }}` render with what first's run
    recorded; third's conditions are false: skipped, never created, and fourth after it
    by its trigger; both recorded as runs `skipped`, saying why, with their tags (and
    third's params as rendered)."""
    from kube import Outcome

    home = Path(environ["POLYTRACK_HOME"])

    def script(name: str) -> Outcome:
        if "-first-" in name:
            pod_records_outputs(cluster, name, home, x=7)
        return Outcome()

    controller.script = script
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(FLOW, sort_keys=False))
    result = cli("run", "-f", str(path), "--watch", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert [name.split("-")[1] for name in controller.started] == ["first", "second"]
    assert "third: skipped (conditions '{{ ops.first.outputs.x > 10 }}' are false)" in result.err
    [second] = [
        job
        for job in cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")
        if "-second-" in job["metadata"]["name"]
    ]
    container = second["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--y=7", "--x=7"]
    runs = {run.name: run for run in polytrack.runs(home=home)}
    assert runs["flow-second"].params == {"y": 7}
    third, fourth = runs["flow-third"], runs["flow-fourth"]
    assert (third.status, third.message) == (
        "skipped",
        "conditions '{{ ops.first.outputs.x > 10 }}' are false",
    )
    assert third.params == {"y": 7} and "gated" in third.tags
    assert (fourth.status, fourth.message) == ("skipped", "trigger all_succeeded: third skipped")
    assert "late" in fourth.tags and fourth.finished_at is not None
