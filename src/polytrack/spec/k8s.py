"""The Kubernetes objects a Polyaxonfile embeds: containers, resources, environment, volumes.

They accept the API's camelCase keys and, as Polyaxon does, the Python client's snake_case
ones (`volume_mounts`); both become the camelCase fields here. Fields the launcher reads
are typed and checked (image, command, resources, tolerations, ...); the rest are kept as
written (`Any`) and passed on to the API, which validates them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from attrs import field, frozen

from polytrack.spec._fields import Args, Quantity

__all__ = [
    "Affinity",
    "Container",
    "EnvVar",
    "Environment",
    "Resources",
    "SecurityContext",
    "Toleration",
    "Volume",
]


@frozen
class Resources:
    """Container resource requests and limits, each a map of resource name to quantity."""

    __snake_case_keys__: ClassVar[bool] = True

    limits: Mapping[str, Quantity] | None = None
    requests: Mapping[str, Quantity] | None = None
    claims: tuple[Any, ...] | None = None


@frozen
class EnvVar:
    """One environment variable of a container: a literal `value` or a `valueFrom` source."""

    __snake_case_keys__: ClassVar[bool] = True

    name: str
    value: str | None = None
    value_from: Any = None


@frozen
class Container:
    """A Kubernetes container (`V1Container`): the main one, a sidecar or an init container.

    `command` and `args` are lists of strings; a single string is one item, so
    `command: python train.py` runs the binary named "python train.py" as Kubernetes
    would; write `command: [python, train.py]` to split it.
    """

    __snake_case_keys__: ClassVar[bool] = True

    name: str | None = None
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: Args | None = None
    args: Args | None = None
    working_dir: str | None = None
    env: tuple[EnvVar, ...] | None = None
    env_from: Any = None
    ports: Any = None
    resources: Resources | None = None
    volume_mounts: Any = None
    volume_devices: Any = None
    security_context: Any = None
    lifecycle: Any = None
    liveness_probe: Any = None
    readiness_probe: Any = None
    startup_probe: Any = None
    resize_policy: Any = None
    restart_policy: str | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None


@frozen
class Toleration:
    """A pod toleration (`V1Toleration`)."""

    __snake_case_keys__: ClassVar[bool] = True

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


@frozen
class Affinity:
    """Pod scheduling affinity (`V1Affinity`); each part is passed on as written."""

    __snake_case_keys__: ClassVar[bool] = True

    node_affinity: Any = None
    pod_affinity: Any = None
    pod_anti_affinity: Any = None


@frozen
class SecurityContext:
    """A container security context (`V1SecurityContext`), as Polyaxon's environment takes it."""

    __snake_case_keys__: ClassVar[bool] = True

    allow_privilege_escalation: bool | None = None
    app_armor_profile: Any = None
    capabilities: Any = None
    privileged: bool | None = None
    proc_mount: str | None = None
    read_only_root_filesystem: bool | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    se_linux_options: Any = None
    seccomp_profile: Any = None
    windows_options: Any = None


@frozen
class Volume:
    """A pod volume (`V1Volume`): a name and one source, passed on as written."""

    __snake_case_keys__: ClassVar[bool] = True

    name: str
    aws_elastic_block_store: Any = None
    azure_disk: Any = None
    azure_file: Any = None
    cephfs: Any = None
    cinder: Any = None
    config_map: Any = None
    csi: Any = None
    downward_api: Any = field(default=None, metadata={"key": "downwardAPI"})
    empty_dir: Any = None
    ephemeral: Any = None
    fc: Any = None
    flex_volume: Any = None
    flocker: Any = None
    gce_persistent_disk: Any = None
    git_repo: Any = None
    glusterfs: Any = None
    host_path: Any = None
    image: Any = None
    iscsi: Any = None
    nfs: Any = None
    persistent_volume_claim: Any = None
    photon_persistent_disk: Any = None
    portworx_volume: Any = None
    projected: Any = None
    quobyte: Any = None
    rbd: Any = None
    scale_io: Any = field(default=None, metadata={"key": "scaleIO"})
    secret: Any = None
    storageos: Any = None
    vsphere_volume: Any = None


@frozen
class Environment:
    """Where and how the pods run: Polyaxon's `environment` section (`V1Environment`)."""

    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    node_selector: Mapping[str, str] | None = None
    affinity: Affinity | None = None
    tolerations: tuple[Toleration, ...] | None = None
    node_name: str | None = None
    service_account_name: str | None = None
    host_aliases: tuple[Any, ...] | None = None
    security_context: SecurityContext | None = None
    image_pull_secrets: tuple[str, ...] | None = None
    host_network: bool | None = None
    host_pid: bool | None = field(default=None, metadata={"key": "hostPID"})
    dns_policy: str | None = None
    dns_config: Any = None
    scheduler_name: str | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
