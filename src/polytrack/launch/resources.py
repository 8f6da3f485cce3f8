"""The Kubernetes resource types polytrack creates or reads, and their REST paths.

A manifest says `apiVersion` and `kind`; the REST API wants the group, version and plural
(`/apis/batch/v1/namespaces/ml/jobs`). The table is fixed, not discovered: polytrack
creates only these kinds, and discovery would cost a request per run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from attrs import frozen

from polytrack.errors import LaunchError

__all__ = ["KINDS", "ResourceType", "ref_of", "resource_type"]


@frozen
class ResourceType:
    """One API resource type: `apiVersion` and `kind` as manifests spell them, and the
    plural that REST paths use."""

    api_version: str
    kind: str
    plural: str

    @property
    def display(self) -> str:
        """As kubectl names it in messages: `jobs.batch`, `pods`, `pytorchjobs.kubeflow.org`."""
        group = self.api_version.rpartition("/")[0]
        return f"{self.plural}.{group}" if group else self.plural

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection in `namespace`, or of object `name` in it."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
            if subresource is not None:
                path += f"/{subresource}"
        return path


KINDS: Final[dict[str, ResourceType]] = {
    rt.kind: rt
    for rt in (
        ResourceType("batch/v1", "Job", "jobs"),
        ResourceType("apps/v1", "Deployment", "deployments"),
        ResourceType("v1", "Service", "services"),
        ResourceType("v1", "ConfigMap", "configmaps"),
        ResourceType("v1", "Pod", "pods"),
        ResourceType("kubeflow.org/v1", "PyTorchJob", "pytorchjobs"),
        ResourceType("kubeflow.org/v1", "TFJob", "tfjobs"),
        ResourceType("kubeflow.org/v1", "MPIJob", "mpijobs"),
        ResourceType("kubernetes.dask.org/v1", "DaskCluster", "daskclusters"),
        ResourceType("kubernetes.dask.org/v1", "DaskAutoscaler", "daskautoscalers"),
        ResourceType("ray.io/v1", "RayCluster", "rayclusters"),
        ResourceType("ray.io/v1", "RayJob", "rayjobs"),
    )
}


def resource_type(kind: str) -> ResourceType:
    """The resource type of `kind` (`Job`, `PyTorchJob`, ...).

    Raises:
        LaunchError: polytrack does not know this kind.
    """
    try:
        return KINDS[kind]
    except KeyError:
        raise LaunchError(f"polytrack does not create or read {kind} objects") from None


def ref_of(manifest: Mapping[str, Any]) -> tuple[ResourceType, str, str]:
    """The type, namespace and name of the object a manifest describes."""
    metadata = manifest.get("metadata") or {}
    return resource_type(manifest["kind"]), metadata.get("namespace", "default"), metadata["name"]
