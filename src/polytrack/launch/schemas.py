"""Compiled manifests checked against the schemas the API server applies, before submitting.

polytrack's spec models check what a Polyaxonfile means; the API server then checks the
objects themselves, and refuses some that the spec allows (`nodeAffinity:
{requiredDuringSchedulingIgnoredDuringExecution: {}}` lacks its `nodeSelectorTerms`).
Checking every manifest here, strictly (an unknown field is an error, as with
`kubectl --validate=strict`), turns such a refusal into one clear error naming the field
before anything is created, and lets `polytrack check --schemas` find it with no cluster.

- core kinds (Job, Deployment, Service, ConfigMap): the official OpenAPI schemas shipped
  by kubernetes-validate, for a Kubernetes version (default: the newest it ships);
- the operators' kinds (Kubeflow's `kubeflow.org/v1`, Dask's `kubernetes.dask.org/v1`,
  KubeRay's `ray.io/v1`): their envelope against the JSON schemas in `crds/`, written
  from each operator's CRDs, and each pod template (or pod spec, or service spec) in
  them against the core schema, as the operator's own CRD embeds it.

kubernetes-validate carries a hundred megabytes of schemas: it is the `kube` extra
(`pip install 'polytrack[kube]'`). Without it, `check_manifests` is not called by the
submission path (see `available`), and `check --schemas` says what to install.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

from polytrack.errors import LaunchError

__all__ = ["available", "check_manifests", "default_version", "manifest_problems"]

# The operators' API groups and the schema of each, in `crds/`.
_CRD_SCHEMAS = {
    "kubeflow.org/v1": "kubeflow-v1.schema.json",
    "kubernetes.dask.org/v1": "dask-v1.schema.json",
    "ray.io/v1": "ray-v1.schema.json",
}


def available() -> bool:
    """Whether the `kube` extra (kubernetes-validate) is installed."""
    return importlib.util.find_spec("kubernetes_validate") is not None


def default_version() -> str:
    """The newest Kubernetes version whose schemas kubernetes-validate ships (`1.33`)."""
    import kubernetes_validate.utils

    latest: str = kubernetes_validate.utils.latest_version()
    return ".".join(latest.split(".")[:2])


def check_manifests(manifests: Iterable[Mapping[str, Any]], *, version: str | None = None) -> None:
    """Raise if any manifest would be refused by an API server of `version`.

    Raises:
        LaunchError: one line per problem, `Kind/name field.path: what is wrong`; or the
            `kube` extra is missing, or `version` is not one kubernetes-validate knows.
    """
    if not available():
        raise LaunchError(
            "checking manifests against the Kubernetes schemas needs the kube extra: "
            "pip install 'polytrack[kube]'"
        )
    import kubernetes_validate

    version = version or default_version()
    known = _versions(kubernetes_validate)
    if version.removeprefix("v") not in known:
        raise LaunchError(
            f"kubernetes-validate has no schemas for Kubernetes {version} "
            f"(it has {', '.join(known)})"
        )
    found = [problem for manifest in manifests for problem in manifest_problems(manifest, version)]
    if found:
        lines = "\n".join(found)
        raise LaunchError(
            f"the manifests do not pass the Kubernetes {version} schemas "
            f"(the API server would refuse them):\n{lines}"
        )


def manifest_problems(manifest: Mapping[str, Any], version: str) -> list[str]:
    """What an API server of `version` would refuse in `manifest`, one line each."""
    import kubernetes_validate

    shown = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"
    schema_file = _CRD_SCHEMAS.get(str(manifest.get("apiVersion")))
    if schema_file is None:
        return [f"{shown} {line}" for line in _core(manifest, version, kubernetes_validate)]
    import jsonschema

    problems = [
        f"{shown} {_line(_path(error.absolute_path), error.message)}"
        for error in sorted(
            jsonschema.Draft7Validator(_schema(schema_file)).iter_errors(manifest),
            key=lambda error: list(map(str, error.absolute_path)),
        )
    ]
    if problems:
        return problems  # the embedded objects may not even be where they belong
    for where, wrapped, inner in _embedded(manifest):
        for line in _core(wrapped, version, kubernetes_validate):
            inside = (
                line.removeprefix(inner)
                if line.startswith((inner + ".", inner + "[", inner + ":"))
                else ": " + line
            )
            problems.append(f"{shown} {where}{inside}")
    return problems


def _core(manifest: Mapping[str, Any], version: str, kubernetes_validate: Any) -> list[str]:
    """Problems of a core object: `path: message` (kubernetes-validate stops at the first)."""
    try:
        kubernetes_validate.validate(dict(manifest), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [_line(_path(error.path), error.message)]
    except kubernetes_validate.utils.SchemaNotFoundError as error:
        return [str(error.message)]
    return []


def _versions(kubernetes_validate: Any) -> list[str]:
    shipped = kubernetes_validate.utils.all_versions()
    return sorted(
        {".".join(v.split(".")[:2]) for v in shipped}, key=lambda v: tuple(map(int, v.split(".")))
    )


def _embedded(manifest: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """The core objects inside an operator's manifest: (where, a core object to check
    holding it, the path of the part inside that object, to strip from messages)."""
    spec = manifest.get("spec") or {}
    name = (manifest.get("metadata") or {}).get("name", "x")
    kind = manifest.get("kind")
    if manifest.get("apiVersion") == "kubeflow.org/v1":
        for key, replicas in spec.items():
            if key.endswith("ReplicaSpecs"):
                for replica, replica_spec in replicas.items():
                    yield _template(
                        f"spec.{key}.{replica}.template", replica_spec["template"], name
                    )
    elif kind == "DaskCluster":
        yield _pod_spec("spec.scheduler.spec", spec["scheduler"]["spec"], name)
        yield _pod_spec("spec.worker.spec", spec["worker"]["spec"], name)
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}
        service["spec"] = spec["scheduler"]["service"]
        yield "spec.scheduler.service", service, "spec"
    elif kind in ("RayCluster", "RayJob"):
        cluster = spec if kind == "RayCluster" else spec["rayClusterSpec"]
        prefix = "spec" if kind == "RayCluster" else "spec.rayClusterSpec"
        head = cluster["headGroupSpec"]["template"]
        yield _template(f"{prefix}.headGroupSpec.template", head, name)
        for index, group in enumerate(cluster.get("workerGroupSpecs") or ()):
            yield _template(f"{prefix}.workerGroupSpecs[{index}].template", group["template"], name)


def _template(where: str, template: Any, name: str) -> tuple[str, dict[str, Any], str]:
    wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}}
    wrapper["template"] = template
    return where, wrapper, "template"


def _pod_spec(where: str, pod_spec: Any, name: str) -> tuple[str, dict[str, Any], str]:
    wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}}
    wrapper["template"] = {"spec": pod_spec}
    return where, wrapper, "template.spec"


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    text = resources.files("polytrack.launch").joinpath("crds", name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _line(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


def _path(parts: Sequence[Any] | Iterable[Any]) -> str:
    """`spec.template.spec.containers[0].image`, as kubectl names fields."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
