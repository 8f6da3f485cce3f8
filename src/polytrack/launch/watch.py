"""Following a workload on the cluster: its state, as a run status, and its pods' logs.

- Job: `succeeded` on its condition Complete, `failed` on Failed (with its reason:
  BackoffLimitExceeded, DeadlineExceeded, ...), `running` while a pod is active or
  ready or, after FailureTarget or SuccessCriteriaMet, its pods terminate; else
  `created` (pending);
- PyTorchJob, TFJob, MPIJob: the latest true condition: Succeeded, Failed, Running or
  Restarting (`running`), Created;
- Deployment (a service): `running` once Available, `failed` once its progress deadline
  passed;
- DaskCluster: its `phase` (Running: `running`, Failed: `failed`); RayCluster: its
  `state` (ready: `running`, failed: `failed`); RayJob: its `jobStatus` (SUCCEEDED,
  FAILED, STOPPED, RUNNING) or, before the job starts, a Failed deployment;
- deleted: `stopped`.

`WorkloadWatch` follows one object with a watch (`?watch=true&fieldSelector=metadata.name=
...&resourceVersion=...`) on the thread `polytrack-launch-watch-<name>`, watching again
from the last version when the server ends the stream and listing again on 410 Gone.
`PodLogs` finds the workload's pods by label and follows each one's log
(`follow=true&timestamps=true`) on its own thread, `polytrack-launch-logs-<pod>`. Both
are owned by whoever starts them and stopped (threads joined) by `stop()`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from attrs import frozen

from polytrack.errors import KubernetesError, KubernetesNotFoundError, KubernetesUnavailableError
from polytrack.launch.client import KubeClient, Stream
from polytrack.launch.resources import ResourceType, resource_type

__all__ = [
    "FINAL",
    "JobState",
    "LogLine",
    "PodLogs",
    "WorkloadWatch",
    "fetch_logs",
    "parse_log_line",
    "workload_state",
]

FINAL: Final = frozenset({"succeeded", "failed", "stopped"})
_KUBEFLOW_CONDITIONS: Final = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Running": "running",
    "Restarting": "running",
    "Created": "created",
    "Suspended": "created",
}
# The Dask and Ray operators' kinds: the status field that says, and what its values mean.
_OPERATOR_STATES: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "DaskCluster": ("phase", {"Running": "running", "Failed": "failed"}),
    "RayCluster": ("state", {"ready": "running", "failed": "failed"}),
    "RayJob": (
        "jobStatus",
        {"RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed", "STOPPED": "stopped"},
    ),
}
# A Job's conditions (Kubernetes 1.31+) between the decision and Failed or Complete.
_JOB_ENDING: Final = frozenset({"FailureTarget", "SuccessCriteriaMet"})
# How often a broken watch or log stream is opened again before giving up.
_RECONNECTS: Final = 5


@frozen
class JobState:
    """A workload's state as a run status (created, running, succeeded, failed, stopped),
    with the cluster's reason and message where it gives one."""

    status: str
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


@frozen
class LogLine:
    """One line of a pod's log, stamped with the time the container wrote it."""

    pod: str
    t: float
    text: str


def workload_state(obj: Mapping[str, Any]) -> JobState:
    """The run status that object `obj` (a Job, a Kubeflow job, a Deployment) stands for.

    Example:
        >>> workload_state({"kind": "Job", "status": {"conditions": [
        ...     {"type": "Complete", "status": "True"}]}}).status
        'succeeded'
    """
    kind = obj.get("kind")
    status = obj.get("status") or {}
    conditions = [c for c in status.get("conditions") or () if isinstance(c, Mapping)]
    true = [c for c in conditions if c.get("status") == "True"]
    if kind == "Job":
        for condition in true:
            if condition.get("type") == "Complete":
                return JobState("succeeded")
            if condition.get("type") == "Failed":
                return JobState("failed", _explain(condition))
        for condition in true:
            if condition.get("type") in _JOB_ENDING:
                # Decided, its pods still terminating (no longer counted `active`): the
                # final condition, Failed or Complete, follows once they are gone.
                return JobState("running", _explain(condition))
            if condition.get("type") == "Suspended":
                return JobState("created", "suspended")
        if (status.get("active") or 0) > 0 or (status.get("ready") or 0) > 0:
            return JobState("running")
        return JobState("created")
    if kind == "Deployment":
        for condition in conditions:
            if (
                condition.get("type") == "Progressing"
                and condition.get("status") == "False"
                and condition.get("reason") == "ProgressDeadlineExceeded"
            ):
                return JobState("failed", _explain(condition))
        for condition in true:
            if condition.get("type") == "Available" and (status.get("availableReplicas") or 0):
                return JobState("running")
        return JobState("created")
    if kind in _OPERATOR_STATES:
        field, states = _OPERATOR_STATES[kind]
        mapped = states.get(str(status.get(field) or ""))
        if kind == "RayJob" and mapped is None and status.get("jobDeploymentStatus") == "Failed":
            mapped = "failed"
        if mapped is not None:
            message = status.get("message") or status.get("reason")
            return JobState(mapped, str(message) if message and mapped == "failed" else None)
        return JobState("created")
    # Kubeflow: conditions accumulate; the last true one (by transition time) says.
    ordered = sorted(
        enumerate(true), key=lambda pair: (str(pair[1].get("lastTransitionTime") or ""), pair[0])
    )
    for _, condition in reversed(ordered):
        mapped = _KUBEFLOW_CONDITIONS.get(str(condition.get("type")))
        if mapped is not None:
            message = _explain(condition) if mapped == "failed" else None
            return JobState(mapped, message)
    return JobState("created")


def _explain(condition: Mapping[str, Any]) -> str | None:
    parts = [str(condition[key]) for key in ("reason", "message") if condition.get(key)]
    return ": ".join(parts) or None


def parse_log_line(pod: str, raw: bytes) -> LogLine:
    """A line of `kubectl logs --timestamps` output: `<RFC 3339 time> <text>`."""
    text = raw.decode("utf-8", "replace")
    stamp, space, rest = text.partition(" ")
    if space:
        t = _parse_time(stamp)
        if t is not None:
            return LogLine(pod, t, rest)
    return LogLine(pod, time.time(), text)


def _parse_time(stamp: str) -> float | None:
    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    main, _, fraction = stamp[:-1].partition(".")
    try:
        base = datetime.fromisoformat(main + "+00:00").timestamp()
    except ValueError:
        return None
    digits = "".join(ch for ch in fraction if ch.isdigit())[:9]
    return base + (int(digits) / 10 ** len(digits) if digits else 0.0)


class WorkloadWatch:
    """Follows one workload's state on the thread `polytrack-launch-watch-<name>`.

    `on_state` gets each new state (never the same twice in a row), from that thread; the
    watch ends by itself after a final one. `on_error` gets a `KubernetesError` that ends
    it early (403 on watch, the API gone for good).
    """

    def __init__(
        self,
        client: KubeClient,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        on_state: Callable[[JobState], None],
        on_error: Callable[[KubernetesError], None],
        timeout_seconds: int = 60,
        retry_delay: float = 1.0,
    ) -> None:
        self._client = client
        self._rt = rt
        self._namespace = namespace
        self._name = name
        self._on_state = on_state
        self._on_error = on_error
        self._timeout_seconds = timeout_seconds
        self._retry_delay = retry_delay
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: Stream | None = None
        self._last: JobState | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"polytrack-launch-watch-{name}", daemon=True
        )

    def start(self) -> WorkloadWatch:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and join the thread; idempotent."""
        self._stopping.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _emit(self, state: JobState) -> bool:
        """Report `state` if new; True once it is final (the watch is done)."""
        if state != self._last:
            self._last = state
            self._on_state(state)
        return state.final

    def _run(self) -> None:
        try:
            self._follow()
        except KubernetesError as exc:
            if not self._stopping.is_set():
                self._on_error(exc)

    def _follow(self) -> None:
        failures = 0
        version: str | None = None
        while not self._stopping.is_set():
            if version is None:
                try:
                    obj = self._client.get(self._rt, self._namespace, self._name)
                except KubernetesNotFoundError:
                    self._emit(JobState("stopped", f"{self._rt.kind} {self._name} was deleted"))
                    return
                if self._emit(workload_state(obj)):
                    return
                version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            try:
                outcome, version = self._watch_once(version)
            except KubernetesUnavailableError:
                failures += 1
                if failures > _RECONNECTS:
                    raise
                self._stopping.wait(self._retry_delay * failures)
                version = None  # list again: events may have been missed meanwhile
                continue
            failures = 0
            if outcome == "done":
                return

    def _watch_once(self, version: str) -> tuple[str, str | None]:
        """Read one watch stream; ("done", _) after a final state or a deletion,
        ("again", version) when the stream ended, ("again", None) to list again."""
        try:
            stream = self._client.watch(
                self._rt,
                self._namespace,
                field_selector=f"metadata.name={self._name}",
                resource_version=version or None,
                timeout_seconds=self._timeout_seconds,
            )
        except KubernetesError as exc:
            if exc.status == 410:  # the version is too old, said before the stream opens
                return "again", None
            raise
        with self._lock:
            self._stream = stream
        if self._stopping.is_set():
            stream.close()
        try:
            for event in _events(stream.lines()):
                kind, obj = event.get("type"), event.get("object") or {}
                metadata = obj.get("metadata") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:  # the version is gone from the server's cache
                        return "again", None
                    raise KubernetesError(
                        f"watch of {self._rt.display} {self._name!r}: "
                        f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}",
                        status=obj.get("code"),
                        reason=obj.get("reason"),
                    )
                version = str(metadata.get("resourceVersion") or version or "")
                if kind == "BOOKMARK" or metadata.get("name") != self._name:
                    continue  # a server may ignore the fieldSelector: filter here too
                if kind == "DELETED":
                    self._emit(JobState("stopped", f"{self._rt.kind} {self._name} was deleted"))
                    return "done", version
                if self._emit(workload_state(obj)):
                    return "done", version
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return "again", version


def _events(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise KubernetesUnavailableError(
                f"a watch sent a line that is not JSON: {exc}"
            ) from exc
        if isinstance(event, dict):
            yield event


class PodLogs:
    """Streams the logs of a workload's pods, as they come and go, to `sink`.

    Pods are found by `selector` every `poll` seconds (thread
    `polytrack-launch-pods-<name>`); each pod whose containers started gets a thread
    `polytrack-launch-logs-<pod>` following its log until the container ends. `sink` is
    called from those threads, one call at a time. `errors` holds each distinct
    `KubernetesError` met (a refused pod listing or log), once, for the owner to report.
    """

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        selector: str,
        *,
        name: str,
        container: str,
        sink: Callable[[LogLine], None],
        poll: float = 1.0,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._selector = selector
        self._container = container
        self._sink = sink
        self._poll = poll
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sink_lock = threading.Lock()
        self._followers: dict[str, threading.Thread] = {}
        self._streams: dict[str, Stream] = {}
        self.errors: list[KubernetesError] = []
        self._finder = threading.Thread(
            target=self._find, name=f"polytrack-launch-pods-{name}", daemon=True
        )

    def start(self) -> PodLogs:
        self._finder.start()
        return self

    def drain(self, timeout: float) -> None:
        """Let the pods' streams end by themselves (their containers ended), for at most
        `timeout` seconds, then `stop()`: the last lines written are not lost."""
        deadline = time.monotonic() + timeout
        self._scan()  # pods that started since the last look
        with self._lock:
            followers = list(self._followers.values())
        for thread in followers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following and join every thread; idempotent."""
        self._stopping.set()
        with self._lock:
            for stream in self._streams.values():
                stream.close()
            followers = list(self._followers.values())
        if self._finder.is_alive():
            self._finder.join(timeout)
        for thread in followers:
            thread.join(timeout)

    def _report(self, exc: KubernetesError) -> None:
        """Keep `exc` unless an equal one is kept: a listing refused every `poll` seconds
        would otherwise grow the list for as long as the workload runs."""
        with self._lock:
            if all(str(known) != str(exc) for known in self.errors):
                self.errors.append(exc)

    def _find(self) -> None:
        while not self._stopping.is_set():
            self._scan()
            self._stopping.wait(self._poll)

    def _scan(self) -> None:
        try:
            pods = _pods(self._client, self._namespace, self._selector)
        except KubernetesError as exc:
            self._report(exc)
            return
        for pod in pods:
            name = pod["metadata"]["name"]
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Running", "Succeeded", "Failed"):
                continue
            with self._lock:
                if name in self._followers or self._stopping.is_set():
                    continue
                thread = threading.Thread(
                    target=self._follow,
                    args=(name,),
                    name=f"polytrack-launch-logs-{name}",
                    daemon=True,
                )
                self._followers[name] = thread
                # Started under the lock: whoever lists the followers (drain, stop) may join
                # them, and joining a thread not yet started raises.
                thread.start()

    def _follow(self, pod: str) -> None:
        since: str | None = None
        last_t = float("-inf")
        for _ in range(_RECONNECTS):
            if self._stopping.is_set():
                return
            try:
                stream = self._client.logs(
                    self._namespace, pod, container=self._container, follow=True, since_time=since
                )
            except KubernetesError as exc:
                self._report(exc)
                return
            with self._lock:
                self._streams[pod] = stream
            if self._stopping.is_set():
                stream.close()
            try:
                for raw in stream.lines():
                    line = parse_log_line(pod, raw)
                    if line.t <= last_t and since is not None:
                        continue  # already had it before the reconnect
                    last_t = max(last_t, line.t)
                    with self._sink_lock:
                        self._sink(line)
            except KubernetesUnavailableError:
                # The connection broke while the container may still be writing: follow
                # again from the last line's time.
                if last_t > float("-inf"):
                    moment = datetime.fromtimestamp(int(last_t), tz=timezone.utc)
                    since = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
                continue
            finally:
                with self._lock:
                    self._streams.pop(pod, None)
            return


def _pods(client: KubeClient, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods matching `selector`, oldest first; filtered here too, in case a server
    ignores the selector."""
    items = client.list(resource_type("Pod"), namespace, label_selector=selector).get("items")
    wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
    pods = [
        pod
        for pod in items or ()
        if isinstance(pod, dict)
        and all(
            ((pod.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in wanted.items()
        )
    ]
    return sorted(pods, key=lambda pod: str(pod["metadata"].get("creationTimestamp") or ""))


def fetch_logs(
    client: KubeClient, namespace: str, selector: str, *, container: str
) -> list[LogLine]:
    """Everything the workload's pods logged so far (not following), pod by pod.

    Raises:
        KubernetesError: the pods cannot be listed. A pod whose log cannot be read
            (gone meanwhile, never started) is skipped.
    """
    lines: list[LogLine] = []
    for pod in _pods(client, namespace, selector):
        name = pod["metadata"]["name"]
        try:
            with client.logs(namespace, name, container=container) as stream:
                lines.extend(parse_log_line(name, raw) for raw in stream.lines())
        except KubernetesError:
            continue
    return lines
