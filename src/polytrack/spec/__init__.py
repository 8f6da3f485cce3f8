"""Polyaxonfiles: load, check and resolve them into typed models for launching.

    from polytrack import spec

    operation = spec.load(["polyaxonfile.yaml", "gpu-preset.yaml"], {"lr": "0.1"})
    operation.component.run.container.args      # templates rendered with lr=0.1
    spec.expand_matrix(operation.matrix, seed=1)  # [{"lr": ..., "dropout": ...}, ...]

`load` returns an `Operation` (see `operation.py` for what "resolved" means); `check`
adds the plain-data document `polytrack check` prints. Every problem is a `SpecError`
naming file, line and field path: `polyaxonfile.yaml:14 run.container.resources.limits.cpu:
expected a quantity, got "lots"`. Importing `polytrack` does not import this package.
"""

from __future__ import annotations

from polytrack.spec.init import (
    ArtifactsInit,
    DockerfileInit,
    FileInit,
    GitInit,
    Init,
    TensorboardInit,
)
from polytrack.spec.io import IO, Join, JoinParam, Param, Validation
from polytrack.spec.iotypes import TYPES, convert
from polytrack.spec.k8s import (
    Affinity,
    Container,
    Environment,
    EnvVar,
    Resources,
    SecurityContext,
    Toleration,
    Volume,
)
from polytrack.spec.loader import SPEC_VERSION, load
from polytrack.spec.matrix import (
    Bayes,
    GridSearch,
    HpParam,
    Hyperband,
    Hyperopt,
    Iterative,
    MappingMatrix,
    Matrix,
    RandomSearch,
    expand_matrix,
)
from polytrack.spec.operation import Component, Dag, Operation, Run, find_cycle
from polytrack.spec.policies import (
    Cache,
    CronSchedule,
    DateTimeSchedule,
    Hook,
    IntervalSchedule,
    Plugins,
    Schedule,
    Termination,
)
from polytrack.spec.quantity import is_quantity, parse_quantity
from polytrack.spec.report import Report, check, to_dict
from polytrack.spec.runs import (
    DaskCluster,
    Job,
    MPIJob,
    PyTorchJob,
    RayCluster,
    RayReplica,
    Replica,
    Service,
    TFJob,
)

__all__ = [
    "IO",
    "SPEC_VERSION",
    "TYPES",
    "Affinity",
    "ArtifactsInit",
    "Bayes",
    "Cache",
    "Component",
    "Container",
    "CronSchedule",
    "Dag",
    "DaskCluster",
    "DateTimeSchedule",
    "DockerfileInit",
    "EnvVar",
    "Environment",
    "FileInit",
    "GitInit",
    "GridSearch",
    "Hook",
    "HpParam",
    "Hyperband",
    "Hyperopt",
    "Init",
    "IntervalSchedule",
    "Iterative",
    "Job",
    "Join",
    "JoinParam",
    "MPIJob",
    "MappingMatrix",
    "Matrix",
    "Operation",
    "Param",
    "Plugins",
    "PyTorchJob",
    "RandomSearch",
    "RayCluster",
    "RayReplica",
    "Replica",
    "Report",
    "Resources",
    "Run",
    "Schedule",
    "SecurityContext",
    "Service",
    "TFJob",
    "TensorboardInit",
    "Termination",
    "Toleration",
    "Validation",
    "Volume",
    "check",
    "convert",
    "expand_matrix",
    "find_cycle",
    "is_quantity",
    "load",
    "parse_quantity",
    "to_dict",
]
