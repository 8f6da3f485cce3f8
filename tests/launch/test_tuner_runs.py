"""Tuner studies end to end: `polytrack run --local` of a hyperband matrix over real
processes that log a metric per epoch (pruned ones are stopped), and the same study on
the Kubernetes emulator, whose "pods" log their metric into their runs as a pod would."""

from __future__ import annotations

import _thread
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from launch_helpers import NAMESPACE, cli

import polytrack
from polytrack.cli import EXIT_INTERRUPTED

pytest.importorskip("optuna")

# A trial: loss falls with the epochs, to a floor set by lr; the last trials of a bracket
# whose floor is high are pruned. Slow enough (0.5 s an epoch: a pruned process has 1.5 s
# of epochs left after the first rung) that it is still running when the controller,
# which reads the store between its own steps, stops it, even on a busy machine.
TRAIN = textwrap.dedent(
    """\
    import sys, time, polytrack
    lr, epochs = float(sys.argv[1]), int(sys.argv[2])
    run = polytrack.init()
    for epoch in range(1, epochs + 1):
        run.log_metric("loss", 10 * (lr - 0.3) ** 2 + 1 / epoch, step=epoch)
        time.sleep(0.5)
    """
)


def _hyperband(tmp_path: Path, *, command: list[str]) -> Path:
    path = tmp_path / "hyperband.yaml"
    document = {
        "version": 1.1,
        "kind": "operation",
        "name": "hb",
        "matrix": {
            "kind": "hyperband",
            "maxIterations": 4,
            "eta": 2,
            "resource": {"name": "epochs", "type": "int"},
            "metric": {"name": "loss", "optimization": "minimize"},
            "params": {"lr": {"kind": "uniform", "value": [0, 1]}},
        },
        "component": {
            "inputs": [{"name": "lr", "type": "float"}, {"name": "epochs", "type": "int"}],
            "run": {
                "kind": "job",
                "container": {"image": "python:3.11", "command": command},
            },
        },
    }
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


@pytest.fixture
def local_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
        "POLYTRACK_HOME": str(tmp_path / "home"),
        "POLYTRACK_CACHE_DIR": os.environ["POLYTRACK_CACHE_DIR"],
        "POLYTRACK_HEARTBEAT_INTERVAL": "0.5",
    }


def _study_runs(home: str) -> tuple[Any, list[Any]]:
    (study,) = polytrack.runs(where='"study" in tags', home=home)
    trials = polytrack.runs(where=f'"study:{study.id}" in tags', home=home)
    return study, sorted(trials, key=lambda run: int(run.name.rsplit("-", 1)[1]))


@pytest.mark.slow
def test_a_local_hyperband_study_prunes_and_records_itself(
    tmp_path: Path, local_environ: dict[str, str]
) -> None:
    command = [sys.executable, "-c", TRAIN, "{{ lr }}", "{{ epochs }}"]
    path = _hyperband(tmp_path, command=command)
    result = cli("run", "--local", "-f", str(path), "--seed", "3", environ=local_environ)
    assert result.code == 0, result.err
    study, trials = _study_runs(local_environ["POLYTRACK_HOME"])
    assert len(trials) == 10  # hyperband(4, 2): brackets of 4, 3 and 3 configurations
    assert all(trial.params["epochs"] == 4 for trial in trials)  # each gets the budget
    outputs = polytrack.get_run(study.id, home=local_environ["POLYTRACK_HOME"]).outputs
    states = {entry["run"]: entry["state"] for entry in outputs["runs"]}
    pruned = [trial for trial in trials if states[trial.id] == "pruned"]
    assert pruned and outputs["pruned"] == len(pruned)
    # Pruned trials were stopped (the process sleeps after each epoch), some before their
    # last epoch: successive halving at the rungs of 1 and 2 epochs.
    epochs = {
        trial.id: len(
            polytrack.get_run(trial.id, home=local_environ["POLYTRACK_HOME"]).history("loss")[0]
        )
        for trial in trials
    }
    # (One pruned at its last epoch may have ended before the controller read it.)
    assert all(t.status == "stopped" or epochs[t.id] == 4 for t in pruned), epochs
    early = [t for t in pruned if t.status == "stopped" and epochs[t.id] < 4]
    assert early, ({t.id: t.status for t in pruned}, epochs)
    complete = [trial for trial in trials if states[trial.id] == "complete"]
    assert all(trial.status == "succeeded" for trial in complete)
    best = min(complete, key=lambda trial: trial.metrics["loss"].last)
    assert outputs["best_run"] == best.id
    assert outputs["best_value"] == pytest.approx(best.metrics["loss"].last)
    assert outputs["best_params"]["lr"] == pytest.approx(best.params["lr"])
    assert study.status == "succeeded"
    assert study.params["matrix.kind"] == "hyperband"
    assert f"best loss {outputs['best_value']:g}" in result.out


def _hyperopt(tmp_path: Path) -> Path:
    path = tmp_path / "hyperopt.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1.1
            kind: operation
            name: ho
            matrix:
              kind: hyperopt
              numRuns: 4
              seed: 7
              metric: {name: loss, optimization: minimize}
              params: {x: {kind: uniform, value: [0, 1]}}
            component:
              inputs: [{name: x, type: float}]
              run:
                kind: job
                container: {image: python:3.11, command: [python, -c, train], args: ["{{ x }}"]}
            """
        )
    )
    return path


def test_without_optuna_the_extra_is_named_and_nothing_runs(
    tmp_path: Path, local_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    result = cli("run", "--local", "-f", str(_hyperopt(tmp_path)), environ=local_environ)
    assert result.code != 0
    assert "pip install 'polytrack[tune]'" in result.err
    assert not (Path(local_environ["POLYTRACK_HOME"]) / "runs").exists()


def test_a_dry_run_of_a_study_says_what_it_would_do(
    tmp_path: Path, local_environ: dict[str, str]
) -> None:
    result = cli("run", "--dry-run", "-f", str(_hyperopt(tmp_path)), environ=local_environ)
    assert result.code == 0, result.err
    assert "dry run: a hyperopt study of up to 4 trials, 1 at a time" in result.err
    assert not (Path(local_environ["POLYTRACK_HOME"]) / "runs").exists()


def test_a_distributed_kind_is_refused_locally_before_the_study_starts(
    tmp_path: Path, local_environ: dict[str, str]
) -> None:
    path = _hyperopt(tmp_path)
    path.write_text(
        path.read_text().replace(
            "    kind: job\n    container: {image: python:3.11, command: [python, -c, train],"
            ' args: ["{{ x }}"]}',
            "    kind: pytorchjob\n    master:\n      replicas: 1\n      container:"
            " {image: python:3.11, command: [python, -c, train]}",
        )
    )
    assert "pytorchjob" in path.read_text()
    result = cli("run", "--local", "-f", str(path), environ=local_environ)
    assert result.code != 0
    assert "pytorchjob" in result.err
    assert not (Path(local_environ["POLYTRACK_HOME"]) / "runs").exists()


def test_iterative_is_refused_before_anything_runs(
    tmp_path: Path, local_environ: dict[str, str]
) -> None:
    path = tmp_path / "iterative.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1.1
            kind: operation
            matrix:
              kind: iterative
              maxIterations: 2
              tuner: {hubRef: acme/suggest}
            component:
              run: {kind: job, container: {image: python, command: [python, -V]}}
            """
        )
    )
    result = cli("run", "--local", "-f", str(path), environ=local_environ)
    assert result.code != 0
    assert f"{path}:4 matrix.kind: an iterative matrix" in result.err
    assert not (Path(local_environ["POLYTRACK_HOME"]) / "runs").exists()


# -- on the Kubernetes emulator ---------------------------------------------------------

# What a trial's pod does: attach to its run (POLYTRACK_RUN_ID) and log the metric.
POD = textwrap.dedent(
    """\
    import sys, polytrack
    x = float(sys.argv[1])
    run = polytrack.init(capture=False)
    run.log_metric("loss", (x - 0.3) ** 2, step=1)
    run.finish()
    """
)


def _pod_env(cluster: Any, name: str) -> dict[str, str]:
    (job,) = [
        job
        for job in cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")
        if job["metadata"]["name"] == name
    ]
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value", "") for item in container.get("env") or ()}
    return {**env, "args": json.dumps(container.get("args") or container.get("command"))}


@pytest.mark.slow
def test_a_hyperopt_study_on_the_cluster(
    tmp_path: Path, environ: dict[str, str], controller: Any
) -> None:
    from kube import Outcome

    def script(name: str) -> Outcome:
        # The emulator runs no container: play the pod, attaching to its run.
        env = _pod_env(controller.cluster, name)
        x = json.loads(env["args"])[-1]
        child = {**environ, "POLYTRACK_RUN_ID": env["POLYTRACK_RUN_ID"]}
        subprocess.run([sys.executable, "-c", POD, x], env=child, check=True, timeout=60)
        return Outcome(duration=0.05)

    controller.script = script
    result = cli("run", "-f", str(_hyperopt(tmp_path)), "--concurrency", "2", environ=environ)
    assert result.code == 0, result.err
    study, trials = _study_runs(environ["POLYTRACK_HOME"])
    assert [trial.status for trial in trials] == ["succeeded"] * 4
    assert len(controller.started) == 4 and controller.max_active <= 2
    outputs = polytrack.get_run(study.id, home=environ["POLYTRACK_HOME"]).outputs
    best = min(trials, key=lambda trial: trial.metrics["loss"].last)
    assert outputs["best_run"] == best.id
    assert outputs["best_value"] == pytest.approx((best.params["x"] - 0.3) ** 2)
    assert study.status == "succeeded"


@pytest.mark.slow
def test_early_stopping_on_the_cluster_cancels_the_trials_still_running(
    tmp_path: Path, environ: dict[str, str], controller: Any
) -> None:
    from kube import Outcome

    def script(name: str) -> Outcome:
        env = _pod_env(controller.cluster, name)
        if not env["POLYTRACK_RUN_NAME"].endswith("-0"):
            return Outcome(status="running")  # never ends: only a cancel ends it
        x = json.loads(env["args"])[-1]
        child = {**environ, "POLYTRACK_RUN_ID": env["POLYTRACK_RUN_ID"]}
        subprocess.run([sys.executable, "-c", POD, x], env=child, check=True, timeout=60)
        return Outcome(duration=0.05)

    controller.script = script
    path = _hyperopt(tmp_path)
    text = path.read_text().replace(
        "  seed: 7\n",
        "  seed: 7\n  earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 10,"
        " optimization: minimize}]\n",
    )
    path.write_text(text)
    result = cli("run", "-f", str(path), "--concurrency", "2", environ=environ)
    assert result.code == 0, result.err
    study, trials = _study_runs(environ["POLYTRACK_HOME"])
    assert [trial.status for trial in trials] == ["succeeded", "stopped"]
    assert "early stopping: trial 0 reached loss" in result.err
    jobs = controller.cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")
    assert [job["metadata"]["name"].startswith("ho-0-") for job in jobs] == [True]  # cancelled
    outputs = polytrack.get_run(study.id, home=environ["POLYTRACK_HOME"]).outputs
    assert outputs["trials"] == 2 and outputs["best_run"] == trials[0].id


def test_ctrl_c_cancels_the_trials_and_stops_the_study(
    tmp_path: Path, environ: dict[str, str], controller: Any
) -> None:
    from kube import Outcome
    from test_cli_launch import wait_for

    controller.script = lambda name: Outcome(status="running")

    def interrupt() -> None:
        wait_for(lambda: len(controller.active) == 2)
        _thread.interrupt_main()

    # Python's own Ctrl-C handler, whatever this process inherited (see test_cli_launch).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=interrupt, name="test-ctrl-c")
    thread.start()
    try:
        result = cli("run", "-f", str(_hyperopt(tmp_path)), "--concurrency", "2", environ=environ)
    finally:
        thread.join()
        signal.signal(signal.SIGINT, previous)
    assert result.code == EXIT_INTERRUPTED
    assert controller.cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs") == []
    study, trials = _study_runs(environ["POLYTRACK_HOME"])
    assert [trial.status for trial in trials] == ["stopped", "stopped"]
    assert (study.status, study.message) == ("stopped", "interrupted (Ctrl-C)")


def test_the_same_seed_gives_the_same_trials_locally(
    tmp_path: Path, local_environ: dict[str, str]
) -> None:
    path = _hyperopt(tmp_path)
    path.write_text(
        path.read_text()
        .replace("numRuns: 4", "numRuns: 3")
        .replace("[python, -c, train]", json.dumps([sys.executable, "-c", POD]))
    )
    home = local_environ["POLYTRACK_HOME"]
    sequences = []
    for _ in range(2):
        result = cli("run", "--local", "-f", str(path), "--seed", "7", environ=local_environ)
        assert result.code == 0, result.err
        study_id = result.out.split()[1].rstrip(":")  # "study <id>: best loss ..."
        trials = polytrack.runs(where=f'"study:{study_id}" in tags', home=home)
        ordered = sorted(trials, key=lambda run: run.name)
        assert [trial.status for trial in ordered] == ["succeeded"] * 3
        sequences.append([trial.params["x"] for trial in ordered])
    assert sequences[0] == sequences[1]
    assert len(set(sequences[0])) == 3
