"""Run kinds that execute containers: `job`, `service`, the Kubeflow `tfjob`,
`pytorchjob` and `mpijob` with their replica specs, and the `daskcluster` and
`raycluster` clusters. (`dag` runs operations; it lives with them in `operation.py`.)

Every container that runs the user's code needs an image: a job's or service's
`container`, and each replica's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from attrs import frozen

from polytrack._convert import FieldError
from polytrack.spec._fields import NonNegativeInt, PositiveInt, Quantity
from polytrack.spec.init import Init
from polytrack.spec.k8s import Container, Environment, Volume

__all__ = [
    "DaskCluster",
    "ElasticPolicy",
    "Job",
    "MPIJob",
    "PyTorchJob",
    "RayCluster",
    "RayReplica",
    "Replica",
    "SchedulingPolicy",
    "Service",
    "TFJob",
]

CleanPodPolicy: TypeAlias = Literal["All", "Running", "None"]


def _require_image(container: Container | None) -> None:
    if container is None:
        raise FieldError('missing required field "container"')
    if not container.image:
        raise FieldError('missing required field "image"', subpath=("container",))


@frozen
class Job:
    """A batch job: one pod running `container`, after its `init` steps, beside `sidecars`."""

    container: Container | None = None
    kind: Literal["job"] = "job"
    environment: Environment | None = None
    connections: tuple[str, ...] | None = None
    volumes: tuple[Volume, ...] | None = None
    init: tuple[Init, ...] | None = None
    sidecars: tuple[Container, ...] | None = None

    def __attrs_post_init__(self) -> None:
        _require_image(self.container)


@frozen
class Service:
    """A long-running server (notebook, tensorboard, API) exposing `ports`."""

    container: Container | None = None
    kind: Literal["service"] = "service"
    environment: Environment | None = None
    connections: tuple[str, ...] | None = None
    volumes: tuple[Volume, ...] | None = None
    init: tuple[Init, ...] | None = None
    sidecars: tuple[Container, ...] | None = None
    ports: tuple[PositiveInt, ...] | None = None
    rewrite_path: bool | None = None
    is_external: bool | None = None
    replicas: PositiveInt | None = None

    def __attrs_post_init__(self) -> None:
        _require_image(self.container)


@frozen
class Replica:
    """One replica type of a distributed job: how many pods, and what each runs."""

    container: Container | None = None
    replicas: NonNegativeInt | None = None
    environment: Environment | None = None
    connections: tuple[str, ...] | None = None
    volumes: tuple[Volume, ...] | None = None
    init: tuple[Init, ...] | None = None
    sidecars: tuple[Container, ...] | None = None

    def __attrs_post_init__(self) -> None:
        _require_image(self.container)


@frozen
class SchedulingPolicy:
    """Gang scheduling of a distributed job's pods (Kubeflow `SchedulingPolicy`)."""

    min_available: NonNegativeInt | None = None
    queue: str | None = None
    min_resources: Mapping[str, Quantity] | None = None
    priority_class: str | None = None
    schedule_timeout_seconds: NonNegativeInt | None = None


@frozen
class ElasticPolicy:
    """Elastic training of a PyTorchJob (Kubeflow `ElasticPolicy`)."""

    min_replicas: NonNegativeInt | None = None
    max_replicas: NonNegativeInt | None = None
    rdzv_backend: str | None = None
    rdzv_port: PositiveInt | None = None
    rdzv_host: str | None = None
    rdzv_id: str | None = None
    rdzv_conf: Any = None
    standalone: bool | None = None
    n_proc_per_node: PositiveInt | None = None
    max_restarts: NonNegativeInt | None = None
    metrics: Any = None


def _require_replica(kind: str, **replicas: Replica | None) -> None:
    if all(replica is None for replica in replicas.values()):
        names = ", ".join(replicas)
        raise FieldError(f"a {kind} needs at least one replica spec ({names})")


@frozen
class TFJob:
    """Distributed TensorFlow (Kubeflow TFJob): chief, parameter servers, workers, evaluator."""

    kind: Literal["tfjob"] = "tfjob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    enable_dynamic_worker: bool | None = None
    success_policy: str | None = None
    chief: Replica | None = None
    ps: Replica | None = None
    worker: Replica | None = None
    evaluator: Replica | None = None

    def __attrs_post_init__(self) -> None:
        _require_replica(
            "tfjob", chief=self.chief, ps=self.ps, worker=self.worker, evaluator=self.evaluator
        )

    @property
    def replica_specs(self) -> dict[str, Replica]:
        """The replica types that are set, by Kubeflow's names (`Chief`, `PS`, ...)."""
        named = {"Chief": self.chief, "PS": self.ps, "Worker": self.worker}
        named["Evaluator"] = self.evaluator
        return {name: spec for name, spec in named.items() if spec is not None}


@frozen
class PyTorchJob:
    """Distributed PyTorch (Kubeflow PyTorchJob): a master and workers."""

    kind: Literal["pytorchjob"] = "pytorchjob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    elastic_policy: ElasticPolicy | None = None
    n_proc_per_node: PositiveInt | None = None
    master: Replica | None = None
    worker: Replica | None = None

    def __attrs_post_init__(self) -> None:
        _require_replica("pytorchjob", master=self.master, worker=self.worker)

    @property
    def replica_specs(self) -> dict[str, Replica]:
        """The replica types that are set, by Kubeflow's names (`Master`, `Worker`)."""
        named = {"Master": self.master, "Worker": self.worker}
        return {name: spec for name, spec in named.items() if spec is not None}


@frozen
class MPIJob:
    """Distributed MPI (Kubeflow MPIJob): a launcher and workers with `slotsPerWorker`."""

    kind: Literal["mpijob"] = "mpijob"
    clean_pod_policy: CleanPodPolicy | None = None
    scheduling_policy: SchedulingPolicy | None = None
    slots_per_worker: PositiveInt | None = None
    launcher: Replica | None = None
    worker: Replica | None = None

    def __attrs_post_init__(self) -> None:
        _require_replica("mpijob", launcher=self.launcher, worker=self.worker)

    @property
    def replica_specs(self) -> dict[str, Replica]:
        """The replica types that are set, by Kubeflow's names (`Launcher`, `Worker`)."""
        named = {"Launcher": self.launcher, "Worker": self.worker}
        return {name: spec for name, spec in named.items() if spec is not None}


@frozen
class DaskCluster:
    """A Dask cluster (Polyaxon's `V1DaskCluster`): a scheduler and `replicas` workers,
    autoscaled between `minReplicas` and `maxReplicas` when both are set."""

    kind: Literal["daskcluster"] = "daskcluster"
    worker: Replica | None = None
    scheduler: Replica | None = None
    min_replicas: NonNegativeInt | None = None
    max_replicas: PositiveInt | None = None

    def __attrs_post_init__(self) -> None:
        # The Dask operator's DaskCluster needs both pod specs; Polyaxon fills in neither.
        for name, replica in (("worker", self.worker), ("scheduler", self.scheduler)):
            if replica is None:
                raise FieldError(f'missing required field "{name}" (a daskcluster runs both)')
        low, high = self.min_replicas, self.max_replicas
        if isinstance(low, int) and isinstance(high, int) and low > high:  # not templates
            raise FieldError(
                f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}",
                subpath=("minReplicas",),
            )


@frozen
class RayReplica:
    """The head or one worker group of a Ray cluster (Polyaxon's `V1RayReplica`)."""

    container: Container | None = None
    replicas: NonNegativeInt | None = None
    min_replicas: NonNegativeInt | None = None
    max_replicas: NonNegativeInt | None = None
    ray_start_params: Mapping[str, str] | None = None
    environment: Environment | None = None
    connections: tuple[str, ...] | None = None
    volumes: tuple[Volume, ...] | None = None
    init: tuple[Init, ...] | None = None
    sidecars: tuple[Container, ...] | None = None

    def __attrs_post_init__(self) -> None:
        _require_image(self.container)


@frozen
class RayCluster:
    """A Ray cluster (Polyaxon's `V1RayCluster`): a head and named worker groups; with an
    `entrypoint`, a Ray job that runs it on the cluster and ends with it."""

    kind: Literal["raycluster"] = "raycluster"
    entrypoint: str | None = None
    runtime_env: Any = None
    metadata: Mapping[str, str] | None = None
    ray_version: str | None = None
    head: RayReplica | None = None
    workers: Mapping[str, RayReplica] | None = None
    enable_in_tree_autoscaling: bool | None = None
    autoscaler_options: Any = None

    def __attrs_post_init__(self) -> None:
        if self.head is None:
            raise FieldError('missing required field "head" (a raycluster needs its head node)')
