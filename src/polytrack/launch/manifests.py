"""Compile a resolved operation into plain Kubernetes manifests. Pure: no I/O.

    workload = compile_operation(operation, Target(run_id="a1b2c3d4", run_name="train",
                                                   project="mnist", namespace="ml"))
    workload.manifests   # [ConfigMap (the diff, if any), Job]: dicts ready for the API

| run kind | objects |
| --- | --- |
| `job` | a `batch/v1` Job |
| `service` | an `apps/v1` Deployment and a `v1` Service for its `ports` |
| `pytorchjob`, `tfjob`, `mpijob` | the Kubeflow training operator's `kubeflow.org/v1` kinds |
| `daskcluster` | the Dask operator's `kubernetes.dask.org/v1` DaskCluster (+ DaskAutoscaler) |
| `raycluster` | KubeRay's `ray.io/v1` RayJob with an `entrypoint`, else a RayCluster |

A DaskCluster gets a DaskAutoscaler when both `minReplicas` and `maxReplicas` are set; a
RayJob ends its cluster with the job (`shutdownAfterJobFinishes`).

Each pod gets, besides what the Polyaxonfile says:

- the variables that make `polytrack.init()` inside attach to the run made at submission:
  `POLYTRACK_RUN_ID`, `POLYTRACK_RUN_NAME`, `POLYTRACK_PROJECT`, plus what `Target.env`
  forwards (`POLYTRACK_BACKEND`); never a credential: those come from the Secrets named in
  `Target.secrets` and the spec's `connections`, as `envFrom`;
- init containers for the `init` section (and inputs with `toInit`) writing into an
  `emptyDir` mounted at `/polytrack` in every container: `git` clones into
  `/polytrack/code/<repo>` (the main container's default working directory), at the
  commit of the launching working tree with its uncommitted diff applied when the URL is
  that tree's remote and no `revision` is given; `artifacts` and `paths` copy from the
  connection with rclone; `file` and `dockerfile` write their content;
- labels `app.kubernetes.io/managed-by: polytrack` and `polytrack.dev/run-id`, which
  select the pods; annotations with the run name and project;
- `termination` as `backoffLimit`, `activeDeadlineSeconds` and `ttlSecondsAfterFinished`
  (on a Job's spec, on a Kubeflow job's `runPolicy`).

What polytrack cannot honour is an error (`LaunchError`) when it would change what runs,
and a note in `Workload.notes` when it only changes how (hooks, a schedule, culling).
"""

from __future__ import annotations

import base64
import copy
import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from attrs import Factory, field, frozen

from polytrack._convert import plain, spec_converter
from polytrack.errors import LaunchError
from polytrack.launch.names import is_label_value, label_value, workload_name
from polytrack.launch.resources import ResourceType, resource_type
from polytrack.spec import (
    ArtifactsInit,
    Container,
    DaskCluster,
    DockerfileInit,
    Environment,
    FileInit,
    GitInit,
    Init,
    Job,
    MPIJob,
    Operation,
    PyTorchJob,
    RayCluster,
    RayReplica,
    Replica,
    Service,
    TFJob,
    Volume,
)

__all__ = [
    "CONTEXT_PATH",
    "LABEL_GROUP",
    "LABEL_MANAGED_BY",
    "LABEL_RUN",
    "GitSource",
    "Images",
    "Target",
    "Workload",
    "compile_operation",
    "launch_globals",
]

LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_RUN: Final = "polytrack.dev/run-id"
LABEL_GROUP: Final = "polytrack.dev/group"
LABEL_PROJECT: Final = "polytrack.dev/project"
ANNOTATION_RUN_NAME: Final = "polytrack.dev/run-name"
ANNOTATION_PROJECT: Final = "polytrack.dev/project"
ANNOTATION_COMMIT: Final = "polytrack.dev/git-commit"

CONTEXT_PATH: Final = "/polytrack"
_CONTEXT_VOLUME: Final = "polytrack-context"
_DIFF_VOLUME: Final = "polytrack-git-diff"
_DIFF_PATH: Final = "/polytrack-git-diff"
_DIFF_KEY: Final = "diff.patch"
# A ConfigMap holds at most 1 MiB (etcd's object size limit); keep room for the rest.
MAX_DIFF_BYTES: Final = 900 * 1024

# The variables polytrack sets; the spec may not set them itself.
_RESERVED_ENV: Final = ("POLYTRACK_RUN_ID", "POLYTRACK_RUN_NAME", "POLYTRACK_PROJECT")
# The training operator finds the framework's container by these names.
_KUBEFLOW_CONTAINER: Final = {"PyTorchJob": "pytorch", "TFJob": "tensorflow", "MPIJob": "mpi"}
# The ports of a Dask scheduler (comm, dashboard), and the labels the Dask operator puts
# on its scheduler pod, which the scheduler's Service selects.
_DASK_PORTS: Final = {"tcp-comm": 8786, "http-dashboard": 8787}
_DASK_CLUSTER_LABEL: Final = "dask.org/cluster-name"
_DASK_COMPONENT_LABEL: Final = "dask.org/component"
# Parts of Polyaxon's `environment.securityContext` that only a container takes; the rest
# is the pod's security context.
_CONTAINER_ONLY_SECURITY: Final = (
    "allowPrivilegeEscalation",
    "capabilities",
    "privileged",
    "procMount",
    "readOnlyRootFilesystem",
)

_GIT_SCRIPT: Final = """set -eu
git clone "$@" -- "$GIT_URL" "$DEST"
cd "$DEST"
if [ -n "${GIT_REVISION:-}" ]; then git -c advice.detachedHead=false checkout "$GIT_REVISION"; fi
if [ -f "${GIT_DIFF:-/nonexistent}" ]; then git apply --whitespace=nowarn "$GIT_DIFF"; fi
"""
_FILE_SCRIPT: Final = """set -eu
mkdir -p "$(dirname "$DEST")"
printf '%s' "$CONTENT" > "$DEST"
if [ -n "${CHMOD:-}" ]; then chmod "$CHMOD" "$DEST"; fi
"""


@frozen
class GitSource:
    """The working tree `polytrack run` was started from, as far as containers need it.

    `diff` is the uncommitted patch of tracked files against `commit` (`git apply`-able);
    untracked files are not part of it.
    """

    commit: str
    remote: str | None = None
    diff: bytes = b""
    untracked: int = 0  # untracked files, which the diff does not carry


@frozen
class Images:
    """The images of the init containers polytrack adds."""

    git: str = "alpine/git:2.47.2"
    files: str = "busybox:1.37"
    artifacts: str = "rclone/rclone:1.69"


@frozen
class Target:
    """As which run, where and with what an operation is compiled.

    `name` is the workload's name (default: `<run name>-<run id>`, a DNS label);
    `labels` and `annotations` are added to every object and pod (a matrix's or DAG's
    group); `env` is added to the main container (`POLYTRACK_BACKEND`); `secrets` are
    Secrets whose keys become the main container's environment.
    """

    run_id: str
    run_name: str
    project: str
    namespace: str = "default"
    name: str | None = None
    labels: Mapping[str, str] = Factory(dict)
    annotations: Mapping[str, str] = Factory(dict)
    env: Mapping[str, str] = Factory(dict)
    secrets: tuple[str, ...] = ()
    git: GitSource | None = None
    images: Images = Images()

    @property
    def workload(self) -> str:
        return self.name or workload_name(self.run_name, self.run_id)


@frozen(eq=False)
class Workload:
    """What `compile_operation` made: the objects to create, in order, and how to find
    what runs (`pod_selector` selects every pod of it)."""

    kind: str  # the run kind: job, service, pytorchjob, tfjob, mpijob
    name: str
    namespace: str
    manifests: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    main_container: str = "main"
    pod_selector: str = field(default="")

    @property
    def resource(self) -> ResourceType:
        """The type of the object whose status tells how the run goes (the last manifest's
        for a job; the Deployment for a service)."""
        return resource_type(self.main["kind"])

    @property
    def main(self) -> dict[str, Any]:
        """The manifest of the workload itself (not the ConfigMap or Service beside it)."""
        for manifest in self.manifests:
            if manifest["kind"] not in ("ConfigMap", "Service"):
                return manifest
        raise AssertionError("a workload without its main object")


def launch_globals(target: Target, *, ports: Sequence[int] = ()) -> dict[str, Any]:
    """The values of `{{ globals.* }}` for `polytrack.spec.load(..., globals=...)`.

    Example:
        >>> launch_globals(Target(run_id="a1b2c3d4", run_name="t", project="p"))["run_uuid"]
        'a1b2c3d4'
    """
    return {
        "uuid": target.run_id,
        "run_uuid": target.run_id,
        "name": target.run_name,
        "run_name": target.run_name,
        "project_name": target.project,
        "namespace": target.namespace,
        "context_path": CONTEXT_PATH,
        "run_artifacts_path": f"{CONTEXT_PATH}/artifacts",
        "run_outputs_path": f"{CONTEXT_PATH}/artifacts/outputs",
        "ports": list(ports),
        "base_url": f"/services/{target.namespace}/{target.workload}",
    }


def compile_operation(operation: Operation, target: Target) -> Workload:
    """The manifests that run `operation` as `target`'s run, in creation order.

    Args:
        operation: as `polytrack.spec.load` returns it, for one run: not a DAG (compile
            its operations one by one) and without a matrix (load each matrix run).
        target: the run and the namespace.

    Raises:
        LaunchError: the operation cannot run as written (a DAG, an init polytrack
            cannot perform, a Job with `restartPolicy: Always`, a diff too large to ship).

    Example:
        >>> compile_operation(spec.load(["job.yaml"]), target).manifests[-1]["kind"]
        'Job'
    """
    component = operation.component
    if component is None:
        raise LaunchError(
            f"operation {operation.name or ''} has no component to run"
            + (f" (hubRef {operation.hub_ref} is not fetched)" if operation.hub_ref else "")
        )
    run = component.run
    if run.kind == "dag":
        raise LaunchError("a dag runs as one workload per operation: compile each of them")
    return _Compiler(operation, target).compile(run)


class _Compiler:
    """One `compile_operation` call: collects notes and the objects beside the workload."""

    def __init__(self, operation: Operation, target: Target) -> None:
        self.operation = operation
        self.target = target
        self.name = target.workload
        self.notes: list[str] = []
        self.extra: list[dict[str, Any]] = []  # created before the workload (the diff)

    def compile(self, run: Job | Service | PyTorchJob | TFJob | MPIJob | Any) -> Workload:
        self._note_ignored()
        if isinstance(run, Job):
            manifests, container = self._job(run), "main"
        elif isinstance(run, Service):
            manifests, container = self._service(run), "main"
        elif isinstance(run, PyTorchJob | TFJob | MPIJob):
            manifests = [self._kubeflow(run)]
            container = _KUBEFLOW_CONTAINER[manifests[0]["kind"]]
        elif isinstance(run, DaskCluster):
            manifests, container = self._dask(run), "scheduler"
        elif isinstance(run, RayCluster):
            manifests, container = [self._ray(run)], "ray-head"
        else:  # pragma: no cover - the spec admits no other kind
            raise LaunchError(f"polytrack cannot launch a {run.kind} run")
        return Workload(
            kind=run.kind,
            name=self.name,
            namespace=self.target.namespace,
            # Copies: no dict is shared between two places (YAML would print an alias).
            manifests=tuple(copy.deepcopy([*self.extra, *manifests])),
            notes=tuple(self.notes),
            main_container=container,
            pod_selector=f"{LABEL_RUN}={self.target.run_id}",
        )

    # -- kinds ------------------------------------------------------------------------------

    def _job(self, run: Job) -> list[dict[str, Any]]:
        restart = (run.environment.restart_policy if run.environment else None) or "Never"
        if restart == "Always":
            raise LaunchError(
                "run.environment.restartPolicy: a job's pods restart Never or OnFailure, "
                "not Always (that is a service)"
            )
        template = self._pod_template(
            container=run.container,
            environment=run.environment,
            connections=run.connections,
            volumes=run.volumes,
            inits=run.init,
            sidecars=run.sidecars,
            container_name="main",
            restart_policy=restart,
        )
        spec: dict[str, Any] = {}
        termination = self.operation.termination
        if termination is not None:
            _put(spec, "backoffLimit", termination.max_retries)
            _put(spec, "activeDeadlineSeconds", termination.timeout)
            _put(spec, "ttlSecondsAfterFinished", termination.ttl)
            _put(spec, "podFailurePolicy", plain(termination.pod_failure_policy))
        spec["template"] = template
        return [self._object(resource_type("Job"), spec)]

    def _service(self, run: Service) -> list[dict[str, Any]]:
        termination = self.operation.termination
        if termination is not None and (
            termination.max_retries is not None
            or termination.timeout is not None
            or termination.ttl is not None
        ):
            self.notes.append(
                "termination: a service runs until stopped; maxRetries, timeout and ttl "
                "do not apply"
            )
        restart = run.environment.restart_policy if run.environment else None
        if restart not in (None, "Always"):
            raise LaunchError(
                f"run.environment.restartPolicy: a service's pods restart Always, not {restart}"
            )
        ports = tuple(run.ports or ())
        template = self._pod_template(
            container=run.container,
            environment=run.environment,
            connections=run.connections,
            volumes=run.volumes,
            inits=run.init,
            sidecars=run.sidecars,
            container_name="main",
            restart_policy="Always",
            ports=ports,
        )
        deployment = self._object(
            resource_type("Deployment"),
            {
                "replicas": run.replicas or 1,
                "selector": {"matchLabels": {LABEL_RUN: self.target.run_id}},
                "template": template,
            },
        )
        if not ports:
            self.notes.append("service: no ports, so no Service object; the pods run alone")
            return [deployment]
        service = self._object(
            resource_type("Service"),
            {
                "type": "LoadBalancer" if run.is_external else "ClusterIP",
                "selector": {LABEL_RUN: self.target.run_id},
                "ports": [
                    {"name": f"port-{port}", "port": port, "targetPort": port, "protocol": "TCP"}
                    for port in ports
                ],
            },
        )
        return [deployment, service]

    def _kubeflow(self, run: PyTorchJob | TFJob | MPIJob) -> dict[str, Any]:
        kind = {"pytorchjob": "PyTorchJob", "tfjob": "TFJob", "mpijob": "MPIJob"}[run.kind]
        container = _KUBEFLOW_CONTAINER[kind]
        policy: dict[str, Any] = {}
        _put(policy, "cleanPodPolicy", run.clean_pod_policy)
        termination = self.operation.termination
        if termination is not None:
            _put(policy, "backoffLimit", termination.max_retries)
            _put(policy, "activeDeadlineSeconds", termination.timeout)
            _put(policy, "ttlSecondsAfterFinished", termination.ttl)
        if run.scheduling_policy is not None:
            _put(policy, "schedulingPolicy", _plain(run.scheduling_policy))
        spec: dict[str, Any] = {"runPolicy": policy}
        if isinstance(run, PyTorchJob):
            if run.elastic_policy is not None:
                spec["elasticPolicy"] = _plain(run.elastic_policy)
            if run.n_proc_per_node is not None:
                spec["nprocPerNode"] = str(run.n_proc_per_node)
            key = "pytorchReplicaSpecs"
        elif isinstance(run, TFJob):
            _put(spec, "successPolicy", run.success_policy)
            _put(spec, "enableDynamicWorker", run.enable_dynamic_worker)
            key = "tfReplicaSpecs"
        else:
            _put(spec, "slotsPerWorker", run.slots_per_worker)
            key = "mpiReplicaSpecs"
        spec[key] = {
            replica_type: self._replica(replica, replica_type, container)
            for replica_type, replica in run.replica_specs.items()
        }
        return self._object(resource_type(kind), spec)

    def _dask(self, run: DaskCluster) -> list[dict[str, Any]]:
        assert run.scheduler is not None and run.worker is not None  # the spec requires them
        self._note_termination("daskcluster")
        scheduler = self._replica_pod(run.scheduler, "scheduler", restart_policy=None)
        worker = self._replica_pod(run.worker, "worker", restart_policy=None)
        service = {
            "type": "ClusterIP",
            "selector": {_DASK_CLUSTER_LABEL: self.name, _DASK_COMPONENT_LABEL: "scheduler"},
            "ports": [
                {"name": name, "protocol": "TCP", "port": port, "targetPort": port}
                for name, port in _DASK_PORTS.items()
            ],
        }
        worker_part: dict[str, Any] = {
            "replicas": 1 if run.worker.replicas is None else run.worker.replicas
        }
        worker_part.update(metadata=worker["metadata"], spec=worker["spec"])
        cluster = self._object(
            resource_type("DaskCluster"),
            {
                "scheduler": {
                    "metadata": scheduler["metadata"],
                    "spec": scheduler["spec"],
                    "service": service,
                },
                "worker": worker_part,
            },
        )
        if run.min_replicas is None or run.max_replicas is None:
            if run.min_replicas is not None or run.max_replicas is not None:
                self.notes.append(
                    "daskcluster: autoscaling needs both minReplicas and maxReplicas; "
                    "the workers stay at their replicas"
                )
            return [cluster]
        autoscaler = self._object(
            resource_type("DaskAutoscaler"),
            {"cluster": self.name, "minimum": run.min_replicas, "maximum": run.max_replicas},
        )
        return [cluster, autoscaler]

    def _ray(self, run: RayCluster) -> dict[str, Any]:
        assert run.head is not None  # the spec requires it
        head = run.head
        cluster: dict[str, Any] = {}
        _put(cluster, "rayVersion", run.ray_version)
        _put(cluster, "enableInTreeAutoscaling", run.enable_in_tree_autoscaling)
        _put(cluster, "autoscalerOptions", plain(run.autoscaler_options))
        cluster["headGroupSpec"] = {
            "rayStartParams": dict(head.ray_start_params or {}),
            "template": self._replica_pod(head, "ray-head", restart_policy=None, where="run.head"),
        }
        groups = []
        for name, group in (run.workers or {}).items():
            replicas = group.replicas if group.replicas is not None else group.min_replicas or 1
            low = replicas if group.min_replicas is None else group.min_replicas
            high = max(replicas, low) if group.max_replicas is None else group.max_replicas
            groups.append(
                {
                    "groupName": name,
                    "replicas": replicas,
                    "minReplicas": low,
                    "maxReplicas": high,
                    "rayStartParams": dict(group.ray_start_params or {}),
                    "template": self._replica_pod(
                        group, "ray-worker", restart_policy=None, where=f"run.workers.{name}"
                    ),
                }
            )
        if groups:
            cluster["workerGroupSpecs"] = groups
        if run.entrypoint is None:
            self._note_termination("raycluster without an entrypoint")
            if run.runtime_env is not None or run.metadata is not None:
                self.notes.append(
                    "raycluster: runtimeEnv and metadata go with an entrypoint's job; "
                    "without one they are ignored"
                )
            return self._object(resource_type("RayCluster"), cluster)
        spec: dict[str, Any] = {"entrypoint": run.entrypoint}
        if run.runtime_env is not None:
            spec["runtimeEnvYAML"] = json.dumps(plain(run.runtime_env), sort_keys=True)
        _put(spec, "metadata", plain(run.metadata))
        spec["rayClusterSpec"] = cluster
        spec["shutdownAfterJobFinishes"] = True
        termination = self.operation.termination
        if termination is not None:
            _put(spec, "backoffLimit", termination.max_retries)
            _put(spec, "activeDeadlineSeconds", termination.timeout)
            _put(spec, "ttlSecondsAfterFinished", termination.ttl)
        return self._object(resource_type("RayJob"), spec)

    def _replica_pod(
        self,
        replica: Replica | RayReplica,
        container: str,
        *,
        restart_policy: str | None,
        where: str | None = None,
    ) -> dict[str, Any]:
        return self._pod_template(
            container=replica.container,
            environment=replica.environment,
            connections=replica.connections,
            volumes=replica.volumes,
            inits=replica.init,
            sidecars=replica.sidecars,
            container_name=container,
            restart_policy=restart_policy,
            where=where or f"run.{container}",
        )

    def _note_termination(self, what: str) -> None:
        termination = self.operation.termination
        if termination is None:
            return
        ignored = [
            key
            for key, value in (
                ("maxRetries", termination.max_retries),
                ("timeout", termination.timeout),
                ("ttl", termination.ttl),
            )
            if value is not None
        ]
        if ignored:
            verb = "does" if len(ignored) == 1 else "do"
            self.notes.append(
                f"termination: a {what} runs until stopped; {', '.join(ignored)} {verb} not apply"
            )

    def _replica(self, replica: Replica, replica_type: str, container: str) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        _put(spec, "replicas", replica.replicas)
        restart = replica.environment.restart_policy if replica.environment else None
        _put(spec, "restartPolicy", restart)
        spec["template"] = self._pod_template(
            container=replica.container,
            environment=replica.environment,
            connections=replica.connections,
            volumes=replica.volumes,
            inits=replica.init,
            sidecars=replica.sidecars,
            container_name=container,
            restart_policy=None,  # the operator sets it from the replica's
            where=f"run.{replica_type.lower()}",
        )
        return spec

    # -- objects and pods -------------------------------------------------------------------

    def _labels(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        labels = dict(extra or {})
        labels.update(self.target.labels)
        labels[LABEL_MANAGED_BY] = "polytrack"
        labels[LABEL_RUN] = self.target.run_id
        project = label_value(self.target.project)
        if project:
            labels[LABEL_PROJECT] = project
        for key, value in labels.items():
            if not is_label_value(value):
                raise LaunchError(f"label {key}: {value!r} is not a valid label value")
        return labels

    def _annotations(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        annotations = dict(extra or {})
        annotations.update(self.target.annotations)
        annotations[ANNOTATION_RUN_NAME] = self.target.run_name
        annotations[ANNOTATION_PROJECT] = self.target.project
        if self.target.git is not None:
            annotations[ANNOTATION_COMMIT] = self.target.git.commit
        return annotations

    def _metadata(self, name: str, environment: Environment | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.target.namespace,
            "labels": self._labels(environment.labels if environment else None),
            "annotations": self._annotations(environment.annotations if environment else None),
        }

    def _object(self, rt: ResourceType, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": rt.api_version,
            "kind": rt.kind,
            "metadata": self._metadata(self.name),
            "spec": spec,
        }

    def _pod_template(
        self,
        *,
        container: Container | None,
        environment: Environment | None,
        connections: Sequence[str] | None,
        volumes: Sequence[Volume] | None,
        inits: Sequence[Init] | None,
        sidecars: Sequence[Container] | None,
        container_name: str,
        restart_policy: str | None,
        ports: Sequence[int] = (),
        where: str = "run",
    ) -> dict[str, Any]:
        assert container is not None  # the spec requires it
        env = environment or Environment()
        init_containers, pod_volumes, workdir = self._inits(
            [*(inits or ()), *self._param_inits()], where
        )
        pod_volumes.extend(_plain(volume) for volume in volumes or ())
        context_mounts = (
            [{"name": _CONTEXT_VOLUME, "mountPath": CONTEXT_PATH}] if init_containers else []
        )
        if init_containers:
            pod_volumes.insert(0, {"name": _CONTEXT_VOLUME, "emptyDir": {}})
        plugins = self.operation.plugins
        if plugins is not None and plugins.shm:
            pod_volumes.append({"name": "polytrack-shm", "emptyDir": {"medium": "Memory"}})
            context_mounts.append({"name": "polytrack-shm", "mountPath": "/dev/shm"})
        pod_security, container_security = _split_security(env)
        main = self._main_container(
            container,
            name=container_name,
            connections=connections or (),
            mounts=context_mounts,
            security=container_security,
            workdir=workdir,
            ports=ports,
            where=where,
        )
        pod: dict[str, Any] = {}
        _put(pod, "restartPolicy", restart_policy)
        if init_containers:
            pod["initContainers"] = init_containers
        pod["containers"] = [main, *self._sidecars(sidecars or (), context_mounts)]
        _put(pod, "volumes", pod_volumes or None)
        _put(pod, "serviceAccountName", env.service_account_name)
        _put(pod, "nodeSelector", plain(env.node_selector))
        _put(pod, "nodeName", env.node_name)
        _put(pod, "affinity", _plain(env.affinity) if env.affinity else None)
        _put(pod, "tolerations", [_plain(t) for t in env.tolerations or ()] or None)
        _put(pod, "securityContext", pod_security)
        _put(pod, "imagePullSecrets", [{"name": s} for s in env.image_pull_secrets or ()] or None)
        _put(pod, "hostAliases", plain(env.host_aliases))
        _put(pod, "hostNetwork", env.host_network)
        _put(pod, "hostPID", env.host_pid)
        _put(pod, "dnsPolicy", env.dns_policy)
        _put(pod, "dnsConfig", plain(env.dns_config))
        _put(pod, "schedulerName", env.scheduler_name)
        _put(pod, "priorityClassName", env.priority_class_name)
        _put(pod, "priority", env.priority)
        metadata = self._metadata(self.name, env)
        del metadata["name"], metadata["namespace"]
        return {"metadata": metadata, "spec": pod}

    def _main_container(
        self,
        container: Container,
        *,
        name: str,
        connections: Iterable[str],
        mounts: list[dict[str, Any]],
        security: dict[str, Any] | None,
        workdir: str | None,
        ports: Sequence[int],
        where: str,
    ) -> dict[str, Any]:
        body = _plain(container)
        body.pop("name", None)
        if container.name is not None and container.name != name:
            self.notes.append(
                f"{where}.container.name: {container.name!r} is named {name!r}, "
                "the name polytrack and the operator look for"
            )
        if "args" in body:
            # A false flag's `{{ params.x.as_arg }}` renders to nothing: no argument at all.
            body["args"] = [arg for arg in body["args"] if arg != ""]
        if workdir is not None:
            body.setdefault("workingDir", workdir)
        own = self._polytrack_env()
        for item in body.get("env", ()):
            if item.get("name") in own:
                raise LaunchError(
                    f"{where}.container.env: {item['name']} is set by polytrack run "
                    "(it names the run the container records into)"
                )
        body["env"] = [
            *({"name": key, "value": value} for key, value in own.items()),
            *body.get("env", ()),
            *self._param_env(),
        ]
        env_from = [*body.get("envFrom", ())]
        env_from += [{"secretRef": {"name": c}} for c in connections]
        env_from += [{"secretRef": {"name": s}} for s in self.target.secrets]
        _put(body, "envFrom", env_from or None)
        if ports and "ports" not in body:
            body["ports"] = [{"containerPort": port, "protocol": "TCP"} for port in ports]
        if mounts:
            body["volumeMounts"] = [*body.get("volumeMounts", ()), *mounts]
        if security:
            body["securityContext"] = {**security, **body.get("securityContext", {})}
        return {"name": name, **body}

    def _sidecars(
        self, sidecars: Iterable[Container], mounts: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        out = []
        for index, sidecar in enumerate(sidecars):
            body = _plain(sidecar)
            name = body.pop("name", None) or f"sidecar-{index}"
            if mounts:
                body["volumeMounts"] = [*body.get("volumeMounts", ()), *mounts]
            out.append({"name": name, **body})
        return out

    def _polytrack_env(self) -> dict[str, str]:
        env = {
            "POLYTRACK_RUN_ID": self.target.run_id,
            "POLYTRACK_RUN_NAME": self.target.run_name,
            "POLYTRACK_PROJECT": self.target.project,
        }
        env.update(self.target.env)
        return env

    def _param_env(self) -> list[dict[str, str]]:
        """Inputs with `toEnv`: their values as the variables they name."""
        return [
            {"name": param.to_env, "value": _text(param.value)}
            for param in self.operation.params.values()
            if param.to_env and param.value is not None
        ]

    def _param_inits(self) -> list[Init]:
        """Inputs with `toInit`: a `git` or `artifacts` value becomes an init step."""
        component = self.operation.component
        assert component is not None
        inits = []
        for name, param in self.operation.params.items():
            if not param.to_init or param.value is None:
                continue
            io = component.io(name)
            kind = io.type if io is not None else None
            value = param.value
            if kind == "git":
                url, revision = value.get("url"), value.get("revision")
                flags = tuple(value.get("flags") or ()) or None
                git = GitInit(url=url, revision=revision, flags=flags)
                inits.append(Init(git=git, connection=param.connection))
            elif kind == "artifacts":
                files = tuple(value.get("files") or ()) or None
                dirs = tuple(value.get("dirs") or ()) or None
                artifacts = ArtifactsInit(files=files, dirs=dirs)
                inits.append(Init(artifacts=artifacts, connection=param.connection))
            else:
                self.notes.append(f"params.{name}: toInit is done for git and artifacts only")
        return inits

    # -- init containers --------------------------------------------------------------------

    def _inits(
        self, inits: Sequence[Init], where: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
        """The init containers, the volumes they add, and the first checkout's path."""
        containers: list[dict[str, Any]] = []
        volumes: list[dict[str, Any]] = []
        workdir: str | None = None
        for index, init in enumerate(inits):
            spot = f"{where}.init[{index}]"
            handler = init.handler
            if handler == "git":
                assert init.git is not None
                body, dest, diff_volume = self._git(init, init.git, spot)
                workdir = workdir or dest
                if diff_volume is not None:
                    volumes.append(diff_volume)
            elif handler in ("artifacts", "paths"):
                body = self._artifacts(init, spot)
            elif handler == "file":
                assert init.file is not None
                body = self._file(init, init.file)
            elif handler == "dockerfile":
                assert init.dockerfile is not None
                body = self._dockerfile(init, init.dockerfile)
            elif handler is None:
                if init.container is None:
                    continue
                body = {"image": self.target.images.files}
            else:
                raise LaunchError(
                    f"{spot}.{handler}: polytrack run cannot fetch {handler} inits "
                    "(they need Polyaxon's stores); fetch them in the container"
                )
            custom = _plain(init.container) if init.container is not None else {}
            custom.pop("name", None)
            body = {**body, **custom}
            body["volumeMounts"] = [
                {"name": _CONTEXT_VOLUME, "mountPath": CONTEXT_PATH},
                *body.get("volumeMounts", ()),
            ]
            name = (init.container.name if init.container else None) or (
                f"init-{index}-{handler or 'container'}".lower()
            )
            containers.append({"name": name, **body})
        return containers, volumes, workdir

    def _path(self, init: Init, default: str) -> str:
        if init.path is None:
            return default
        return posixpath.normpath(posixpath.join(CONTEXT_PATH, init.path))

    def _git(
        self, init: Init, git: GitInit, spot: str
    ) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
        if git.url is None:
            raise LaunchError(
                f"{spot}.git: no url; polytrack has no connection catalog to take it from"
            )
        repo = git.url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
        dest = self._path(init, f"{CONTEXT_PATH}/code/{repo or 'repo'}")
        revision = git.revision
        env = [{"name": "GIT_URL", "value": git.url}, {"name": "DEST", "value": dest}]
        mounts: list[dict[str, Any]] = []
        diff_volume = None
        tree = self.target.git
        if revision is None and tree is not None and _same_repo(git.url, tree.remote):
            revision = tree.commit
            if tree.untracked:
                self.notes.append(
                    f"{spot}.git: the working tree's {tree.untracked} untracked files are not "
                    "shipped (add and commit them to run them)"
                )
            if tree.diff:
                diff_volume = self._diff_volume(tree.diff)
                env.append({"name": "GIT_DIFF", "value": f"{_DIFF_PATH}/{_DIFF_KEY}"})
                mounts.append({"name": _DIFF_VOLUME, "mountPath": _DIFF_PATH, "readOnly": True})
        if revision is not None:
            env.append({"name": "GIT_REVISION", "value": revision})
        body: dict[str, Any] = {
            "image": self.target.images.git,
            "command": ["sh", "-c", _GIT_SCRIPT, "git-init", *(git.flags or ())],
            "env": env,
        }
        if init.connection:
            body["envFrom"] = [{"secretRef": {"name": init.connection}}]
        if mounts:
            body["volumeMounts"] = mounts
        return body, dest, diff_volume

    def _diff_volume(self, diff: bytes) -> dict[str, Any]:
        """The ConfigMap that ships the uncommitted diff (made once), and its volume."""
        name = f"{self.name}-git-diff"
        if not any(obj["metadata"]["name"] == name for obj in self.extra):
            try:
                data: dict[str, Any] = {"data": {_DIFF_KEY: diff.decode("utf-8")}}
                size = len(diff)
            except UnicodeDecodeError:
                encoded = base64.b64encode(diff).decode("ascii")
                data, size = {"binaryData": {_DIFF_KEY: encoded}}, len(encoded)
            if size > MAX_DIFF_BYTES:
                raise LaunchError(
                    f"the uncommitted diff of the working tree is {size} bytes, more than a "
                    f"ConfigMap can ship ({MAX_DIFF_BYTES}): commit and push it, or launch "
                    "from a clean tree"
                )
            self.extra.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": self._metadata(name),
                    **data,
                }
            )
        return {"name": _DIFF_VOLUME, "configMap": {"name": name}}

    def _artifacts(self, init: Init, spot: str) -> dict[str, Any]:
        if init.connection is None:
            raise LaunchError(f"{spot}: artifacts need a connection to copy from")
        remote = re.sub(r"[^A-Za-z0-9]", "", init.connection).lower() or "store"
        base = self._path(init, f"{CONTEXT_PATH}/artifacts")
        items: list[tuple[str, Any]] = []
        if init.artifacts is not None:
            items += [("copyto", item) for item in init.artifacts.files or ()]
            items += [("copy", item) for item in init.artifacts.dirs or ()]
        items += [("copy", item) for item in init.paths or ()]
        lines = ["set -eu"]
        for verb, item in items:
            source, dest = (item[0], item[1]) if isinstance(item, list | tuple) else (item, item)
            target = posixpath.normpath(posixpath.join(base, str(dest).lstrip("/")))
            lines.append(f"rclone {verb} {shlex.quote(f'{remote}:{source}')} {shlex.quote(target)}")
        return {
            "image": self.target.images.artifacts,
            "command": ["sh", "-c", "\n".join(lines) + "\n"],
            "envFrom": [{"secretRef": {"name": init.connection}}],
        }

    def _write(self, dest: str, content: str, chmod: str | None) -> dict[str, Any]:
        env = [{"name": "DEST", "value": dest}, {"name": "CONTENT", "value": content}]
        if chmod:
            env.append({"name": "CHMOD", "value": chmod})
        return {
            "image": self.target.images.files,
            "command": ["sh", "-c", _FILE_SCRIPT],
            "env": env,
        }

    def _file(self, init: Init, file: FileInit) -> dict[str, Any]:
        directory = self._path(init, f"{CONTEXT_PATH}/files")
        return self._write(f"{directory}/{file.filename or 'file'}", file.content, file.chmod)

    def _dockerfile(self, init: Init, dockerfile: DockerfileInit) -> dict[str, Any]:
        directory = self._path(init, f"{CONTEXT_PATH}/build")
        dest = f"{directory}/{dockerfile.filename or 'Dockerfile'}"
        return self._write(dest, _dockerfile_text(dockerfile), None)

    def _note_ignored(self) -> None:
        operation = self.operation
        for section, value in (
            ("hooks", operation.hooks),
            ("schedule", operation.schedule),
            ("cache", operation.cache),
            ("build", operation.build),
        ):
            if value:
                self.notes.append(f"{section}: not done by polytrack run (ignored)")
        termination = operation.termination
        if termination is not None and termination.culling is not None:
            self.notes.append("termination.culling: not done by polytrack run (ignored)")


def _dockerfile_text(spec: DockerfileInit) -> str:
    """The Dockerfile a `dockerfile` init describes, as Polyaxon writes it."""
    lines = [f"FROM {spec.image}"]
    if spec.lang_env:
        lines.append(f"ENV LC_ALL={spec.lang_env} LANG={spec.lang_env} LANGUAGE={spec.lang_env}")
    for key, value in (spec.env or {}).items():
        lines.append(f"ENV {key}={json.dumps(_text(value))}")
    if spec.path:
        lines.append(f'ENV PATH="${{PATH}}:{":".join(spec.path)}"')
    if spec.uid is not None and spec.gid is not None and spec.username:
        lines.append(
            f"RUN groupadd -g {spec.gid} {spec.username} && "
            f"useradd -m -u {spec.uid} -g {spec.gid} {spec.username}"
        )
    if spec.shell:
        lines.append(f'SHELL ["{spec.shell}", "-c"]')
    workdir = spec.workdir or "/code"
    lines.append(f"WORKDIR {workdir}")
    copy_to = spec.workdir_path or workdir
    for item in spec.copy or ():
        source, dest = (item[0], item[1]) if isinstance(item, list | tuple) else (item, copy_to)
        lines.append(f"COPY {source} {dest}")
    lines += [f"RUN {step}" for step in spec.run or ()]
    for item in spec.post_run_copy or ():
        source, dest = (item[0], item[1]) if isinstance(item, list | tuple) else (item, copy_to)
        lines.append(f"COPY {source} {dest}")
    if spec.username:
        lines.append(f"USER {spec.username}")
    return "\n".join(lines) + "\n"


def _split_security(env: Environment) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Polyaxon's one security context as the pod's part and the main container's part."""
    if env.security_context is None:
        return None, None
    context = _plain(env.security_context)
    container: dict[str, Any] = {
        k: context.pop(k) for k in _CONTAINER_ONLY_SECURITY if k in context
    }
    return context or None, container or None


_SCP_LIKE: Final = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")


def _repo_key(url: str) -> str:
    """`host/path` of a git URL, for comparing https, ssh and scp-like spellings."""
    url = url.strip()
    if "://" in url:
        rest = url.split("://", 1)[1]
        rest = rest.rsplit("@", 1)[-1] if "@" in rest.split("/", 1)[0] else rest
        host, _, path = rest.partition("/")
        host = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    elif (match := _SCP_LIKE.match(url)) is not None:
        host, path = match["host"], match["path"]
    else:
        return url.rstrip("/").removesuffix(".git")
    return f"{host.lower()}/{path.strip('/').removesuffix('.git')}"


def _same_repo(url: str, remote: str | None) -> bool:
    return remote is not None and _repo_key(url) == _repo_key(remote)


def _plain(obj: Any) -> dict[str, Any]:
    data = plain(spec_converter.unstructure(obj))
    assert isinstance(data, dict)
    return data


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _text(value: Any) -> str:
    """A param value as a container sees it in a variable: text as is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)
