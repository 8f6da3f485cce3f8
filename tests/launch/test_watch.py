"""Following workloads: conditions as run statuses, watches driven by the emulator's job
controller, pod logs as they are written; `responses` for a watch that must list again."""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import responses
from launch_helpers import NAMESPACE, TOKEN

from polytrack.errors import KubernetesError, KubernetesForbiddenError
from polytrack.launch.client import KubeClient
from polytrack.launch.kubeconfig import ClusterAuth, load_kubeconfig
from polytrack.launch.resources import KINDS
from polytrack.launch.watch import (
    JobState,
    LogLine,
    PodLogs,
    WorkloadWatch,
    fetch_logs,
    parse_log_line,
    workload_state,
)

JOBS = KINDS["Job"]


def condition(kind: str, status: str = "True", **extra: str) -> dict[str, str]:
    return {"type": kind, "status": status, **extra}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"kind": "Job"}, JobState("created")),
        ({"kind": "Job", "status": {"active": 1}}, JobState("running")),
        ({"kind": "Job", "status": {"ready": 1}}, JobState("running")),
        ({"kind": "Job", "status": {"conditions": [condition("Complete")]}}, JobState("succeeded")),
        (
            {
                "kind": "Job",
                "status": {
                    "conditions": [
                        condition("FailureTarget", reason="DeadlineExceeded"),
                        condition(
                            "Failed",
                            reason="DeadlineExceeded",
                            message="Job was active longer than specified deadline",
                        ),
                    ]
                },
            },
            JobState("failed", "DeadlineExceeded: Job was active longer than specified deadline"),
        ),
        (
            {
                "kind": "Job",
                "status": {
                    "active": 0,
                    "terminating": 1,
                    "conditions": [condition("FailureTarget", reason="BackoffLimitExceeded")],
                },
            },
            JobState("running", "BackoffLimitExceeded"),
        ),
        (
            {
                "kind": "Job",
                "status": {"terminating": 2, "conditions": [condition("SuccessCriteriaMet")]},
            },
            JobState("running"),
        ),
        (
            {"kind": "Job", "status": {"active": 1, "conditions": [condition("Suspended")]}},
            JobState("created", "suspended"),
        ),
        (
            {
                "kind": "Job",
                "status": {"conditions": [condition("Complete", "False")], "active": 1},
            },
            JobState("running"),
        ),
        (
            {
                "kind": "PyTorchJob",
                "status": {
                    "conditions": [
                        condition("Created", lastTransitionTime="2024-01-01T00:00:00Z"),
                        condition("Running", "False", lastTransitionTime="2024-01-01T00:01:00Z"),
                        condition(
                            "Succeeded",
                            lastTransitionTime="2024-01-01T00:02:00Z",
                            reason="PyTorchJobSucceeded",
                        ),
                    ]
                },
            },
            JobState("succeeded"),
        ),
        (
            {
                "kind": "TFJob",
                "status": {
                    "conditions": [
                        condition("Created", lastTransitionTime="2024-01-01T00:00:00Z"),
                        condition("Restarting", lastTransitionTime="2024-01-01T00:03:00Z"),
                        condition("Running", lastTransitionTime="2024-01-01T00:01:00Z"),
                    ]
                },
            },
            JobState("running"),
        ),
        (
            {
                "kind": "MPIJob",
                "status": {
                    "conditions": [condition("Failed", reason="MPIJobFailed", message="oom")]
                },
            },
            JobState("failed", "MPIJobFailed: oom"),
        ),
        ({"kind": "MPIJob", "status": {}}, JobState("created")),
        (
            {
                "kind": "Deployment",
                "status": {"availableReplicas": 2, "conditions": [condition("Available")]},
            },
            JobState("running"),
        ),
        (
            {
                "kind": "Deployment",
                "status": {
                    "conditions": [
                        condition(
                            "Progressing",
                            "False",
                            reason="ProgressDeadlineExceeded",
                            message="slow",
                        )
                    ]
                },
            },
            JobState("failed", "ProgressDeadlineExceeded: slow"),
        ),
    ],
)
def test_workload_states(obj: dict[str, Any], expected: JobState) -> None:
    """Each object's conditions map to the run status they stand for."""
    assert workload_state(obj) == expected


def test_log_lines_keep_their_time() -> None:
    """`--timestamps` lines: nanoseconds kept to the microsecond, text after the space."""
    line = parse_log_line("p", b"2024-05-01T10:00:00.123456789Z epoch 1: loss 0.5")
    assert line.text == "epoch 1: loss 0.5"
    assert line.t == pytest.approx(1714557600.123456789)
    plain = parse_log_line("p", b"no stamp here")
    assert plain.text == "no stamp here"
    assert parse_log_line("p", "2024-05-01T10:00:00Z ünïcode".encode()).text == "ünïcode"


def client_for(cluster: Any, tmp_path: Path) -> KubeClient:
    from kube import kubeconfig

    path = kubeconfig(tmp_path / "kc", cluster, user={"token": TOKEN}, namespace=NAMESPACE)
    return KubeClient.connect(load_kubeconfig([path]))


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "template": {
                "metadata": {"labels": {"polytrack.dev/run-id": name}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]},
            }
        },
    }


def watch_until_final(client: KubeClient, name: str) -> list[JobState]:
    states: queue.Queue[JobState | KubernetesError] = queue.Queue()
    watch = WorkloadWatch(
        client, JOBS, NAMESPACE, name, on_state=states.put, on_error=states.put
    ).start()
    seen: list[JobState] = []
    try:
        while True:
            event = states.get(timeout=10)
            if isinstance(event, KubernetesError):
                raise event
            seen.append(event)
            if event.final:
                break
    finally:
        watch.stop()
    return seen


def test_a_watch_follows_a_job_to_success(cluster: Any, controller: Any, tmp_path: Path) -> None:
    """created -> running -> succeeded, each reported once, from the watch's thread."""
    from kube import Outcome

    controller.script = lambda name: Outcome(duration=0.2)
    with client_for(cluster, tmp_path) as client:
        client.create(job("ok"))
        states = watch_until_final(client, "ok")
    assert [s.status for s in states][-2:] == ["running", "succeeded"]
    assert len({s.status for s in states}) == len(states)


def test_a_watch_reports_the_failure_reason(cluster: Any, controller: Any, tmp_path: Path) -> None:
    """A failed Job: its condition's reason and message."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="failed", duration=0.1)
    with client_for(cluster, tmp_path) as client:
        client.create(job("bad"))
        states = watch_until_final(client, "bad")
    assert states[-1] == JobState(
        "failed", "BackoffLimitExceeded: Job has reached the specified backoff limit"
    )


def test_a_deleted_job_is_stopped(cluster: Any, controller: Any, tmp_path: Path) -> None:
    """Deleting the Job (ops stop, kubectl delete) ends the watch with stopped."""
    from kube import Outcome

    controller.script = lambda name: Outcome(status="running")
    with client_for(cluster, tmp_path) as client:
        client.create(job("gone"))
        timer = threading.Timer(0.3, lambda: cluster.call(
            "DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/gone"
        ))  # fmt: skip
        timer.start()
        try:
            states = watch_until_final(client, "gone")
        finally:
            timer.join()
    assert states[-1] == JobState("stopped", "Job gone was deleted")


def test_a_watch_that_may_not_watch_reports_the_error(cluster: Any, tmp_path: Path) -> None:
    """403 on the watch verb: on_error hears it, the thread ends."""
    cluster.emulator.forbidden.add(("watch", "jobs", NAMESPACE))
    with client_for(cluster, tmp_path) as client:
        client.create(job("x"))
        with pytest.raises(
            KubernetesForbiddenError, match=r'cannot watch jobs\.batch in namespace "ml"'
        ):
            watch_until_final(client, "x")


def test_pod_logs_stream_as_written_and_are_fetched_again(
    cluster: Any, controller: Any, tmp_path: Path
) -> None:
    """Every line of the job's pod reaches the sink, in order, stamped; fetch_logs has them."""
    from kube import Outcome

    lines = tuple(f"step {i}" for i in range(20))
    controller.script = lambda name: Outcome(lines=lines, duration=0.3)
    got: list[LogLine] = []
    with client_for(cluster, tmp_path) as client:
        client.create(job("logs"))
        follower = PodLogs(
            client,
            NAMESPACE,
            "polytrack.dev/run-id=logs",
            name="logs",
            container="main",
            sink=got.append,
            poll=0.02,
        ).start()
        try:
            watch_until_final(client, "logs")
        finally:
            follower.drain(timeout=5)
        assert [line.text for line in got] == list(lines)
        assert got[0].pod.startswith("logs-") and got[0].t <= got[-1].t
        fetched = fetch_logs(client, NAMESPACE, "polytrack.dev/run-id=logs", container="main")
    assert [line.text for line in fetched] == list(lines)


def test_pod_logs_keep_a_repeated_error_once(cluster: Any, tmp_path: Path) -> None:
    """A pod listing refused at every poll is kept once, not once per poll."""
    cluster.emulator.forbidden.add(("list", "pods", NAMESPACE))
    with client_for(cluster, tmp_path) as client:
        follower = PodLogs(
            client, NAMESPACE, "polytrack.dev/run-id=x", name="x", container="main",
            sink=lambda line: None, poll=0.01,
        ).start()  # fmt: skip
        try:
            deadline = time.monotonic() + 5
            while not follower.errors and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # many more polls
        finally:
            follower.stop()
    assert [type(e) for e in follower.errors] == [KubernetesForbiddenError]
    assert 'cannot list pods in namespace "ml"' in str(follower.errors[0])


SERVER = "https://kube.test"


@pytest.mark.parametrize("answer", ["error event", "http status"])
@responses.activate
def test_a_watch_lists_again_after_410_gone(answer: str) -> None:
    """A version too old, said by an ERROR event in the stream or by the watch request's
    own HTTP 410: list again, go on."""
    url = f"{SERVER}/apis/batch/v1/namespaces/ml/jobs"
    responses.get(
        f"{url}/j", json={"kind": "Job", "metadata": {"name": "j", "resourceVersion": "1"}}
    )
    expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    if answer == "error event":
        responses.get(url, body=json.dumps({"type": "ERROR", "object": expired}) + "\n")
    else:
        responses.get(url, status=410, json=expired)
    done = {
        "kind": "Job",
        "metadata": {"name": "j", "resourceVersion": "9"},
        "status": {"conditions": [condition("Complete")]},
    }
    responses.get(f"{url}/j", json=done)
    states: list[JobState] = []
    errors: list[KubernetesError] = []
    with KubeClient.connect(ClusterAuth(server=SERVER, token="t")) as client:
        watch = WorkloadWatch(
            client, JOBS, "ml", "j", on_state=states.append, on_error=errors.append
        ).start()
        watch.join(5)
    assert (states, errors) == ([JobState("created"), JobState("succeeded")], [])
    watched = [c.request.url for c in responses.calls if "watch=true" in c.request.url]
    assert "resourceVersion=1" in watched[0] and "fieldSelector=metadata.name%3Dj" in watched[0]


@responses.activate
def test_a_watch_error_event_other_than_410_ends_it() -> None:
    """Another ERROR event is reported as a KubernetesError with its code."""
    url = f"{SERVER}/apis/batch/v1/namespaces/ml/jobs"
    responses.get(
        f"{url}/j", json={"kind": "Job", "metadata": {"name": "j", "resourceVersion": "1"}}
    )
    error = {"type": "ERROR", "object": {"code": 500, "reason": "InternalError", "message": "boom"}}
    responses.get(url, body=json.dumps(error) + "\n")
    errors: list[KubernetesError] = []
    with KubeClient.connect(ClusterAuth(server=SERVER, token="t")) as client:
        watch = WorkloadWatch(
            client, JOBS, "ml", "j", on_state=lambda s: None, on_error=errors.append
        ).start()
        watch.join(5)
    assert [str(e) for e in errors] == ["watch of jobs.batch 'j': 500 InternalError: boom"]
