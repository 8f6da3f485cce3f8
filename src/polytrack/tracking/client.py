"""Polyaxon's clients of its server (`polyaxon.client`: `PolyaxonClient`, `RunClient`,
`ProjectClient`, ...) and the tracking calls that only its server answers: each raises
`ServerOnlyError`, saying what polytrack offers instead.

    from polytrack.tracking.client import RunClient   # was: from polyaxon.client import ...
    RunClient(owner="acme", project="mnist")          # ServerOnlyError: ... polytrack.runs()
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

from polytrack.errors import ServerOnlyError

__all__ = [
    "ModelVersionClient",
    "OrganizationClient",
    "PolyaxonClient",
    "ProjectClient",
    "RunClient",
    "SERVER_ONLY",
    "server_only",
]

# Polyaxon tracking calls that need its server -> what polytrack offers instead.
SERVER_ONLY: Final = {
    "get_connections_catalog": "polytrack has no connections: pass paths and URLs directly",
    "get_artifacts_store_connection": (
        "polytrack's artifacts live in its store: tracking.get_artifacts_path(), or "
        "POLYTRACK_ARTIFACT_STORE for an fsspec URL"
    ),
    "set_run_event_logger": "polytrack records events into its journal from init()",
    "set_run_resource_logger": "polytrack samples system metrics from init() (collect_resources)",
    "set_run_process_sidecar": "polytrack needs no sidecar: every record is durable on return",
    "sync_events_summaries": "polytrack's readers summarize a run's events themselves",
    "sync_system_events_summaries": "polytrack's readers summarize a run's events themselves",
    "pull_remote_run": "`polytrack import polyaxon` reads a Polyaxon run into the store",
    "push_offline_run": "`polytrack sync` ships recorded runs to a backend",
    "promote_to_model_version": (
        "polytrack has no model registry: keep the model with log_model and read it back "
        "with polytrack.get_run(id).artifact(name)"
    ),
    "promote_to_artifact_version": (
        "polytrack has no artifact registry: read artifacts back with "
        "polytrack.get_run(id).artifact(name)"
    ),
    "log_artifact_lineage": "log_file_ref, log_dir_ref and log_model_ref record the lineage",
    "update": "polytrack records a run through its log calls; a run's record is not edited",
}
_CLIENTS: Final = (
    "the runs of polytrack's store are read with polytrack.runs() and polytrack.get_run(), "
    "and recorded with polytrack.init() or tracking.Run()"
)


def server_only(name: str) -> Any:
    """A stand-in for the Polyaxon call `name` that raises `ServerOnlyError` when called."""
    instead = SERVER_ONLY[name]

    def call(*args: Any, **kwargs: Any) -> NoReturn:
        raise ServerOnlyError(f"{name}() needs Polyaxon's server; {instead}")

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"Raises `ServerOnlyError`: needs Polyaxon's server ({instead})."
    return call


class _ServerClient:
    """A Polyaxon REST client: constructing one raises `ServerOnlyError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ServerOnlyError(
            f"{type(self).__name__} is a client of Polyaxon's server, which polytrack does "
            f"not need or talk to: {_CLIENTS}"
        )


class PolyaxonClient(_ServerClient):
    """Polyaxon's API client; raises `ServerOnlyError`."""


class RunClient(_ServerClient):
    """Polyaxon's run client (its server's runs); raises `ServerOnlyError`. To record a
    run use `polytrack.tracking.Run`, to read one `polytrack.get_run`."""


class ProjectClient(_ServerClient):
    """Polyaxon's project client; raises `ServerOnlyError`: `polytrack.runs(project=...)`
    lists a project's runs."""


class ModelVersionClient(_ServerClient):
    """Polyaxon's model registry client; raises `ServerOnlyError`."""


class OrganizationClient(_ServerClient):
    """Polyaxon's organization client; raises `ServerOnlyError`."""
