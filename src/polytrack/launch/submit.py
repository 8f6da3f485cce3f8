"""Submitting workloads: one, a matrix within a concurrency limit, a DAG in dependency order.

`create_workload` creates a compiled workload's objects in order (the diff's ConfigMap,
the workload, its Service), makes the workload own the others (so that deleting it
deletes them) and takes back what it created when a later object fails. `cancel` deletes
a workload with `propagationPolicy: Foreground`: its pods go first.

`Scheduler` runs many units: it submits a unit once what it waits for has ended (a DAG's
upstream operations, checked against its `trigger`) and a slot is free (at most
`concurrency` workloads live at once), learns from one `WorkloadWatch` per live workload
when a slot frees, and reports every state to its caller. The caller makes runs and
manifests (`submit`) and records ends (`on_state`); nothing here knows about runs.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from attrs import Factory, frozen

from polytrack.errors import KubernetesError, KubernetesNotFoundError, LaunchError
from polytrack.launch.client import KubeClient
from polytrack.launch.manifests import Workload
from polytrack.launch.ops import ObjectRef
from polytrack.launch.resources import ref_of, resource_type
from polytrack.launch.watch import JobState, WorkloadWatch

__all__ = ["Scheduler", "Submitted", "Unit", "cancel", "create_workload", "trigger_allows"]

# What a DAG operation's `trigger` asks of the operations it waits for (all of them
# ended: polytrack waits for every upstream operation, also for the `one_*` triggers).
_TRIGGERS: Final[dict[str, Callable[[Sequence[str]], bool]]] = {
    "all_succeeded": lambda s: all(x == "succeeded" for x in s),
    "all_failed": lambda s: all(x == "failed" for x in s),
    "all_done": lambda s: True,
    "one_succeeded": lambda s: any(x == "succeeded" for x in s),
    "one_failed": lambda s: any(x == "failed" for x in s),
    "one_done": lambda s: True,
}


def trigger_allows(trigger: str | None, upstream: Sequence[str]) -> bool:
    """Whether a DAG operation with `trigger` runs after upstream statuses `upstream`
    (`skipped` counts as neither succeeded nor failed).

    Example:
        >>> trigger_allows(None, ["succeeded", "failed"])
        False
    """
    return not upstream or _TRIGGERS[trigger or "all_succeeded"](upstream)


def create_workload(client: KubeClient, workload: Workload) -> tuple[ObjectRef, ...]:
    """Create `workload`'s objects in order; all of them or none.

    With the `kube` extra installed, every manifest is first checked against the
    Kubernetes schemas (`schemas.check_manifests`): nothing is created for a workload the
    API server would refuse in part.

    Raises:
        LaunchError: a manifest fails the schemas; nothing was created.
        KubernetesError: a create failed (`KubernetesConflictError` when a name is
            taken); the objects created before it are deleted again.
    """
    from polytrack.launch import schemas

    if schemas.available():
        schemas.check_manifests(workload.manifests)
    created: list[dict[str, Any]] = []
    main = workload.main
    try:
        uid = None
        for manifest in workload.manifests:
            answer = client.create(manifest)
            created.append(manifest)
            if manifest is main:
                uid = (answer.get("metadata") or {}).get("uid")
        if uid:
            reference = {
                "apiVersion": main["apiVersion"],
                "kind": main["kind"],
                "name": main["metadata"]["name"],
                "uid": uid,
            }
            for manifest in created:
                if manifest is not main:
                    rt, namespace, name = ref_of(manifest)
                    patch = {"metadata": {"ownerReferences": [reference]}}
                    client.patch(rt, namespace, name, patch)
    except KubernetesError:
        # Also when an owner cannot be set: the caller reports the workload not submitted.
        for manifest in reversed(created):
            rt, namespace, name = ref_of(manifest)
            with contextlib.suppress(KubernetesError):  # the first error is the one to report
                client.delete(rt, namespace, name, propagation="Background")
        raise
    return tuple(
        ObjectRef(api_version=m["apiVersion"], kind=m["kind"], name=m["metadata"]["name"])
        for m in workload.manifests
    )


def cancel(client: KubeClient, namespace: str, objects: Sequence[ObjectRef]) -> bool:
    """Delete a workload's objects, the workload first with its pods (Foreground).

    Returns False when none of them existed any more.
    """
    found = False
    ordered = sorted(objects, key=lambda ref: ref.kind in ("ConfigMap", "Service"))
    for ref in ordered:
        try:
            client.delete(resource_type(ref.kind), namespace, ref.name, propagation="Foreground")
            found = True
        except KubernetesNotFoundError:
            continue
    return found


@frozen
class Unit:
    """One workload to submit: its key in its group (a matrix index, a DAG operation),
    what it waits for, and under which `trigger`."""

    key: str
    upstream: frozenset[str] = frozenset()
    trigger: str | None = None
    params: Mapping[str, Any] = Factory(dict)


@frozen(eq=False)
class Submitted:
    """A unit on the cluster: its run and workload."""

    unit: Unit
    run_id: str
    workload: Workload


class Scheduler:
    """Submits units in order, within `concurrency`, each once its upstream units ended.

    `submit(unit)` creates the unit's run and objects and returns what it submitted (None:
    it decided not to run the unit, which counts as skipped; or raises: the error ends
    the scheduling); `on_state(submitted, state)` gets every state
    of every workload, from the scheduler's thread, the final one included;
    `on_skip(unit, reason)` hears of a DAG operation whose trigger did not hold.
    """

    def __init__(
        self,
        client: KubeClient,
        units: Sequence[Unit],
        *,
        submit: Callable[[Unit], Submitted | None],
        on_state: Callable[[Submitted, JobState], None],
        on_skip: Callable[[Unit, str], None] = lambda unit, reason: None,
        concurrency: int | None = None,
        watch_timeout: int = 60,
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise LaunchError(f"concurrency must be at least 1, got {concurrency}")
        self._client = client
        self._units = list(units)
        self._submit = submit
        self._on_state = on_state
        self._on_skip = on_skip
        self._limit = concurrency or len(self._units) or 1
        self._watch_timeout = watch_timeout
        self._events: queue.Queue[tuple[str, JobState | KubernetesError]] = queue.Queue()
        self._live: dict[str, tuple[Submitted, WorkloadWatch]] = {}
        self.statuses: dict[str, str] = {}  # key -> final status, "skipped" included
        self.max_live = 0

    @property
    def live(self) -> list[Submitted]:
        """What is submitted and not known to have ended."""
        return [submitted for submitted, _ in self._live.values()]

    def run(self, *, wait: bool) -> list[Submitted]:
        """Submit every unit; with `wait`, also wait until every workload ended.

        Returns what was still live when it returned (nothing with `wait`): those run
        on, handed over. Stops every watch before it returns or raises.

        Raises:
            KubernetesError: a submission failed, or a watch did (a slot could no longer be
                known to free); nothing more is submitted.
        """
        pending = list(self._units)
        try:
            while pending or (wait and self._live):
                waiting = len(pending)
                self._start_ready(pending)
                if not self._live:
                    if pending and len(pending) == waiting:
                        keys = ", ".join(unit.key for unit in pending)
                        raise LaunchError(f"{keys} wait for operations that never run")
                    continue
                if not pending and not wait:
                    break
                self._next_event()
            return self.live
        finally:
            for _, watch in self._live.values():
                watch.stop()

    def _start_ready(self, pending: list[Unit]) -> None:
        for unit in list(pending):
            if len(self._live) >= self._limit:
                return
            if not unit.upstream <= self.statuses.keys():
                continue
            pending.remove(unit)
            upstream = [self.statuses[key] for key in sorted(unit.upstream)]
            if not trigger_allows(unit.trigger, upstream):
                self.statuses[unit.key] = "skipped"
                waited = ", ".join(f"{k} {self.statuses[k]}" for k in sorted(unit.upstream))
                self._on_skip(unit, f"trigger {unit.trigger or 'all_succeeded'}: {waited}")
                continue
            submitted = self._submit(unit)
            if submitted is None:  # decided at submit time (a DAG's `conditions`): not run
                self.statuses[unit.key] = "skipped"
                continue
            workload = submitted.workload
            watch = WorkloadWatch(
                self._client,
                workload.resource,
                workload.namespace,
                workload.name,
                on_state=self._reporter(unit.key),
                on_error=self._reporter(unit.key),
                timeout_seconds=self._watch_timeout,
            )
            self._live[unit.key] = (submitted, watch)
            self.max_live = max(self.max_live, len(self._live))
            watch.start()

    def _reporter(self, key: str) -> Callable[[JobState | KubernetesError], None]:
        """What a watch calls with its states and its error: queued for `run()`'s thread."""

        def report(event: JobState | KubernetesError) -> None:
            self._events.put((key, event))

        return report

    def _next_event(self) -> None:
        while True:
            try:
                key, event = self._events.get(timeout=0.5)
                break
            except queue.Empty:
                continue  # a timed wait: Ctrl-C is handled between two
        if key not in self._live:
            return  # a late event of a workload already ended
        submitted, watch = self._live[key]
        if isinstance(event, KubernetesError):
            raise event
        self._on_state(submitted, event)
        if event.final:
            del self._live[key]
            watch.stop()
            self.statuses[key] = event.status
