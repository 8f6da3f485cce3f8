"""`polytrack run` and `polytrack ops` end to end: the command line in this process, the
emulator over TLS, its job controller running the jobs, runs in a real store."""

from __future__ import annotations

import _thread
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from launch_helpers import NAMESPACE, cli
from test_manifests import LAUNCH, SPECS

import polytrack
from polytrack.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from polytrack.launch.ops import OpsRegistry

pytest.importorskip("kmock")

JOB = str(SPECS / "matrix-mapping.yaml")


def simple_job(tmp_path: Path, *, name: str = "hello") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"version: 1.1\nkind: component\nname: {name}\ntags: [k8s]\n"
        "inputs: [{name: lr, type: float, value: 0.1, isOptional: true}]\n"
        "run:\n  kind: job\n"
        "  container: {image: busybox, command: [echo], args: ['--lr={{ lr }}']}\n"
    )
    return str(path)


def home(environ: dict[str, str]) -> Path:
    return Path(environ["POLYTRACK_HOME"])


def run_of(environ: dict[str, str], run_id: str) -> polytrack.RunView:
    return polytrack.get_run(run_id, home=home(environ))


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_dry_run_prints_manifests_and_makes_nothing(tmp_path: Path) -> None:
    """--dry-run: YAML documents on stdout, no run, no record, no cluster needed."""
    environ = {"POLYTRACK_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    result = cli("run", "-f", JOB, "--dry-run", "-n", "team", environ=environ)
    assert result.code == EXIT_OK, result.err
    jobs = list(yaml.safe_load_all(result.out))
    assert [j["kind"] for j in jobs] == ["Job", "Job"]
    assert {j["metadata"]["namespace"] for j in jobs} == {"team"}
    assert result.err.strip().endswith("dry run: 2 objects for 2 workloads")
    assert not (tmp_path / "home").exists()
    listed = cli("run", "-f", JOB, "--dry-run", "-o", "json", environ=environ)
    document = json.loads(listed.out)
    assert (document["kind"], len(document["items"])) == ("List", 2)


def test_dry_run_ships_the_working_trees_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a dirty clone of the repo a git init names: its commit, and its diff in a ConfigMap."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "git@github.com:acme/train.git"], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    (repo / "train.py").write_text("print(2)\n")
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    monkeypatch.chdir(repo)
    environ = {"POLYTRACK_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    result = cli(
        "run", "-f", str(LAUNCH / "polyaxonfiles" / "tree.yaml"), "--dry-run", environ=environ
    )
    assert result.code == EXIT_OK, result.err
    config, job = yaml.safe_load_all(result.out)
    assert "-print(1)\n+print(2)" in config["data"]["diff.patch"]
    init = job["spec"]["template"]["spec"]["initContainers"][0]
    env = {item["name"]: item["value"] for item in init["env"]}
    assert env["GIT_REVISION"] == commit.stdout.strip()


def test_submit_hands_the_run_over_and_ops_ls_records_its_end(
    environ: dict[str, str], controller: Any, cluster: Any, tmp_path: Path
) -> None:
    """Without --watch: the run is handed over; `ops ls` later records how it ended."""
    from kube import Outcome

    controller.script = lambda name: Outcome(lines=("epoch 1", "done"), duration=0.1)
    result = cli("run", "-f", simple_job(tmp_path), "-P", "lr=0.5", environ=environ)
    assert result.code == EXIT_OK, result.err
    run_id, kind, where = result.out.split()
    assert (kind, where) == ("job", f"{NAMESPACE}/hello-{run_id}")
    view = run_of(environ, run_id)
    assert (view.status, view.name, view.params["lr"], view.tags) == (
        "running",
        "hello",
        0.5,
        ("k8s",),
    )
    assert view.snapshot().code is not None  # recorded at submission
    record = OpsRegistry.at(home(environ)).get(run_id)
    assert (record.name, record.status, record.recorded) == (f"hello-{run_id}", "created", False)
    job = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/hello-{run_id}"
    wait_for(lambda: cluster.call("GET", job).get("status", {}).get("conditions"))
    listed = cli("ops", "ls", environ=environ)
    assert listed.code == EXIT_OK, listed.err
    header, row = listed.out.splitlines()
    assert header.split()[:5] == ["id", "name", "kind", "namespace", "status"]
    assert row.split()[:5] == [run_id, f"hello-{run_id}", "job", NAMESPACE, "succeeded"]
    view = run_of(environ, run_id)
    assert (view.status, view.attempts) == ("succeeded", 2)
    assert [line.text for line in view.logs()] == ["epoch 1", "done"]
    again = cli("ops", "ls", "--json", environ=environ)
    (entry,) = json.loads(again.out)
    assert (entry["status"], entry["recorded"]) == ("succeeded", True)
    assert run_of(environ, run_id).attempts == 2  # recorded once


def test_watch_streams_logs_into_the_run_and_finishes_it(
    environ: dict[str, str], controller: Any, tmp_path: Path
) -> None:
    """--watch: pod lines on stdout and in the run's log; the run ends as the job did."""
    from kube import Outcome

    controller.script = lambda name: Outcome(lines=("loss 0.5", "loss 0.2"), duration=0.3)
    result = cli("run", "-f", simple_job(tmp_path), "--watch", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert result.out.splitlines() == ["loss 0.5", "loss 0.2"]
    record = OpsRegistry.at(home(environ)).all()[0]
    view = run_of(environ, record.id)
    assert (view.status, view.attempts) == ("succeeded", 1)  # owned throughout
    assert [line.text for line in view.logs()] == ["loss 0.5", "loss 0.2"]
    assert "hello-" in result.err and ": succeeded" in result.err
    assert record.recorded


def test_watch_of_a_failing_job_fails(
    environ: dict[str, str], controller: Any, tmp_path: Path
) -> None:
    """A failed job: exit 1, the run failed with the job's reason."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="failed", duration=0.05)
    result = cli("run", "-f", simple_job(tmp_path), "--watch", environ=environ)
    assert result.code == EXIT_ERROR
    assert "1 of 1 did not succeed" in result.err
    view = run_of(environ, OpsRegistry.at(home(environ)).all()[0].id)
    assert (view.status, view.message) == (
        "failed",
        "BackoffLimitExceeded: Job has reached the specified backoff limit",
    )


def test_watch_of_a_matrix(environ: dict[str, str], controller: Any) -> None:
    """A matrix with --watch: every run recorded with its own pod's logs, lines prefixed."""
    from kube import Outcome

    controller.script = lambda name: Outcome(lines=(f"I am {name}",), duration=0.1)
    result = cli("run", "-f", JOB, "--watch", "--concurrency", "1", environ=environ)
    assert result.code == EXIT_OK, result.err
    records = sorted(OpsRegistry.at(home(environ)).all(), key=lambda r: r.key or "")
    assert [r.key for r in records] == ["0", "1"] and records[0].group == records[1].group
    for record in records:
        view = run_of(environ, record.id)
        assert (view.status, view.params["lr"]) == ("succeeded", {"0": 0.1, "1": 0.001}[record.key])
        assert [line.text for line in view.logs()] == [f"I am {record.name}"]
        assert f"[{record.name}] I am {record.name}" in result.out.splitlines()
    assert controller.max_active == 1


def test_a_dag_with_watch_runs_in_order(environ: dict[str, str], controller: Any) -> None:
    """DAG operations start after what they wait for; the hub one is left out, with a note."""
    result = cli("run", "-f", str(SPECS / "dag.yaml"), "--watch", environ=environ)
    assert result.code == EXIT_OK, result.err
    assert "notify: left out" in result.err
    order = [name.split("-")[1] for name in controller.started]
    assert order == ["prepare", "train", "evaluate", "report"]
    statuses = {r.key: r.status for r in OpsRegistry.at(home(environ)).all()}
    assert statuses == dict.fromkeys(order, "succeeded")


def test_a_taken_name_is_reported_and_the_run_failed(
    environ: dict[str, str], controller: Any, tmp_path: Path
) -> None:
    """--name is the exact workload name: a second one meets a 409, said plainly."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="running")
    path = simple_job(tmp_path)
    first = cli("run", "-f", path, "--name", "My Run", environ=environ)
    assert first.code == EXIT_OK, first.err
    assert first.out.split()[2] == f"{NAMESPACE}/my-run"
    second = cli("run", "-f", path, "--name", "My Run", environ=environ)
    assert second.code == EXIT_ERROR
    assert second.err == (
        'polytrack: error: cannot create jobs.batch "my-run" in namespace "ml": 409 '
        'AlreadyExists: jobs.batch "my-run" already exists\n'
    )
    failed = polytrack.runs(where='status == "failed"', home=home(environ))
    assert [r.message for r in failed] == [
        'not submitted: cannot create jobs.batch "my-run" in namespace "ml": 409 AlreadyExists: '
        'jobs.batch "my-run" already exists'
    ]


def test_forbidden_is_reported_and_the_run_failed(
    environ: dict[str, str], cluster: Any, tmp_path: Path
) -> None:
    """RBAC says no: the message names verb, resource and namespace; the run failed."""
    cluster.emulator.forbidden.add(("create", "jobs", NAMESPACE))
    result = cli("run", "-f", simple_job(tmp_path), environ=environ)
    assert result.code == EXIT_ERROR
    assert 'cannot create jobs.batch "hello-' in result.err
    assert (
        'User "tester" cannot create resource "jobs" in API group "batch" in the namespace "ml"'
        in result.err
    )
    (run,) = polytrack.runs(home=home(environ))
    assert run.status == "failed"
    assert OpsRegistry.at(home(environ)).all() == []


def test_ops_stop_cancels_and_records_stopped(
    environ: dict[str, str], controller: Any, cluster: Any, tmp_path: Path
) -> None:
    """`ops stop`: the Job is deleted, the run recorded stopped with what its pod logged."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="running", lines=("working",))
    run_id = cli("run", "-f", simple_job(tmp_path), environ=environ).out.split()[0]
    wait_for(lambda: controller.active)
    stopped = cli("ops", "stop", run_id[:5], environ=environ)
    assert stopped.code == EXIT_OK, stopped.err
    assert cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs") == []
    view = run_of(environ, run_id)
    assert (view.status, view.message) == ("stopped", "stopped by polytrack ops stop")
    assert [line.text for line in view.logs()] == ["working"]
    again = cli("ops", "stop", run_id, environ=environ)
    assert "not on the cluster any more" in again.err and "already ended stopped" in again.err


def test_ops_logs_prints_and_follows(
    environ: dict[str, str], controller: Any, tmp_path: Path
) -> None:
    """`ops logs`: what the pods wrote; `-f` until the workload ends."""
    from kube import Outcome

    controller.script = lambda name: Outcome(lines=("a", "b"), duration=0.4)
    run_id = cli("run", "-f", simple_job(tmp_path), environ=environ).out.split()[0]
    wait_for(lambda: controller.active)
    followed = cli("ops", "logs", "-f", run_id, environ=environ)
    assert followed.code == EXIT_OK, followed.err
    assert followed.out.splitlines() == ["a", "b"]
    assert followed.err.strip().endswith("succeeded")
    printed = cli("ops", "logs", run_id, environ=environ)
    assert printed.out.splitlines() == ["a", "b"]
    missing = cli("ops", "logs", "nosuchrun", environ=environ)
    assert missing.code == EXIT_NOT_FOUND
    assert "no submitted operation has the run id, prefix or name 'nosuchrun'" in missing.err


def test_ctrl_c_with_watch_cancels_and_records_stopped(
    environ: dict[str, str], controller: Any, cluster: Any, tmp_path: Path
) -> None:
    """Ctrl-C while watching: the job is deleted, the run stopped, exit 130."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="running")

    def interrupt() -> None:
        wait_for(lambda: controller.active)
        time.sleep(0.1)
        _thread.interrupt_main()

    # Python's own Ctrl-C handler, whatever this process inherited: a job started in the
    # background by a non-interactive shell (`cmd &`, as a CI runner may) ignores SIGINT,
    # and interrupt_main() then does nothing, leaving the watch to wait for good.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=interrupt, name="test-ctrl-c")
    thread.start()
    try:
        result = cli("run", "-f", simple_job(tmp_path), "--watch", environ=environ)
    finally:
        thread.join()
        signal.signal(signal.SIGINT, previous)
    assert result.code == EXIT_INTERRUPTED
    assert cluster.items(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs") == []
    (run,) = polytrack.runs(home=home(environ))
    assert (run.status, run.message) == ("stopped", "cancelled: interrupted (Ctrl-C)")


def test_the_backend_is_forwarded_without_credentials(tmp_path: Path) -> None:
    """POLYTRACK_BACKEND reaches the container; a password in it does not."""
    environ = {
        "POLYTRACK_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "POLYTRACK_BACKEND": "https://bob:secret@tracking.acme.org:8443/api",
    }
    result = cli(
        "run", "-f", simple_job(tmp_path), "--dry-run", "--secret", "backend", environ=environ
    )
    assert result.code == EXIT_OK, result.err
    (job,) = yaml.safe_load_all(result.out)
    main = job["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in main["env"]}
    assert env["POLYTRACK_BACKEND"] == "https://tracking.acme.org:8443/api"
    assert main["envFrom"] == [{"secretRef": {"name": "backend"}}]
    assert "secret" not in result.out.replace("secretRef", "")
    assert "its credentials are not put in the manifests" in result.err


def test_a_forwarded_backend_keeps_its_host_as_written(tmp_path: Path) -> None:
    """Credentials dropped from an IPv6 or mixed-case host leave a URL that still works."""
    environ = {
        "POLYTRACK_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "POLYTRACK_BACKEND": "http://bob:s3cret@[fd00::1]:8080/api",
    }
    result = cli("run", "-f", simple_job(tmp_path), "--dry-run", environ=environ)
    assert result.code == EXIT_OK, result.err
    (job,) = yaml.safe_load_all(result.out)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POLYTRACK_BACKEND"] == "http://[fd00::1]:8080/api"


def test_usage_and_cluster_errors(tmp_path: Path) -> None:
    """No kubeconfig: a clear error; bad options are usage errors."""
    environ = {"POLYTRACK_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    result = cli("run", "-f", simple_job(tmp_path), environ=environ)
    assert result.code == EXIT_ERROR
    assert "no cluster to talk to" in result.err
    assert cli("run", "-f", JOB, "--concurrency", "0", environ=environ).code == EXIT_ERROR
    assert cli("run", "-f", JOB, "-P", "lr", environ=environ).code == EXIT_USAGE
    assert cli("ops", "ls", environ=environ).err == "no operations\n"


def test_ops_ls_records_a_workload_deleted_behind_its_back_stopped(
    environ: dict[str, str], controller: Any, cluster: Any, tmp_path: Path
) -> None:
    """`ops ls`: a workload gone from the cluster (deleted by hand) is recorded stopped."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="running")
    run_id = cli("run", "-f", simple_job(tmp_path), environ=environ).out.split()[0]
    wait_for(lambda: controller.active)
    cluster.call("DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/hello-{run_id}")
    listed = cli("ops", "ls", "--json", environ=environ)
    assert listed.code == EXIT_OK, listed.err
    (entry,) = json.loads(listed.out)
    assert (entry["status"], entry["recorded"]) == ("stopped", True)
    assert run_of(environ, run_id).status == "stopped"


def test_ops_logs_follow_reports_why_no_logs_came(
    environ: dict[str, str], controller: Any, cluster: Any, tmp_path: Path
) -> None:
    """`ops logs -f` where pods may not be listed: the refusal is said, once, not silence."""
    from kube import Outcome

    controller.script = lambda name: Outcome(lines=("a",), duration=0.4)
    run_id = cli("run", "-f", simple_job(tmp_path), environ=environ).out.split()[0]
    cluster.emulator.forbidden.add(("list", "pods", NAMESPACE))
    followed = cli("ops", "logs", "-f", run_id, environ=environ)
    assert followed.code == EXIT_OK, followed.err
    assert followed.out == ""
    assert followed.err.count('logs: cannot list pods in namespace "ml": 403 Forbidden') == 1
