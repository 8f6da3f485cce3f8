"""Changes made to a recorded run (`polytrack.history.manage`) reach real servers: MLflow
and Polyaxon get the rename, the tags, the note, the trash and the restore."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from polytrack.models import (
    NoteSet,
    RunRenamed,
    RunRestored,
    RunStarted,
    RunTrashed,
    TagsAdded,
    TagsChanged,
)
from polytrack.sync.backends.base import Batch
from polytrack.sync.backends.config import BackendConfig
from polytrack.sync.backends.mlflow import MlflowBackend
from polytrack.sync.backends.polyaxon import PolyaxonBackend, run_uuid

from .mlflow_server import MlflowServer
from .polyaxon_sandbox import OWNER, PolyaxonSandbox
from .test_mlflow_backend import Mlflow, mapped

pytestmark = pytest.mark.slow

T0 = 1_760_000_000.0
CHANGES = (
    RunRenamed(name="baseline", at=T0, by="ana"),
    TagsChanged(added=("c",), removed=("a",), at=T0, by="ana"),
    NoteSet(notes="the one to beat", at=T0, by="ana"),
)


def _started(project: str) -> RunStarted:
    return RunStarted(
        id=uuid.uuid4().hex[:8],
        project=project,
        name="bold-fox-1",
        created_at=T0,
        host="box",
        pid=1,
        process_started=T0 - 1,
        tags=("a", "b"),
    )


def test_mlflow_gets_rename_tags_note_delete_and_restore(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    reader = Mlflow(mlflow_server.url)
    run = _started(f"manage-{uuid.uuid4().hex[:10]}")
    uri = f"mlflow+{mlflow_server.url}"
    backend = MlflowBackend.from_uri(uri, environ={}, config=BackendConfig())
    try:
        backend.open_run(run, workdir=tmp_path / "work")
        mlflow_id = mapped(tmp_path / "work")["run_id"]
        backend.write(run.id, Batch(0, events=(TagsAdded(("a", "b")),)))
        backend.write(run.id, Batch(1, events=CHANGES))
        backend.write(run.id, Batch(1, events=CHANGES))  # a repeat: the tag is gone already
        found = reader.run(mlflow_id)
        tags = reader.tags(mlflow_id)
        assert found["info"]["run_name"] == "baseline"
        assert "polytrack.tag.a" not in tags and tags["polytrack.tag.c"] == "c"
        assert tags["mlflow.note.content"] == "the one to beat"
        backend.write(run.id, Batch(2, events=(RunTrashed(at=T0, by="ana"),)))
        assert reader.run(mlflow_id)["info"]["lifecycle_stage"] == "deleted"
    finally:
        backend.close()
    # A later sync (another process) restores that run rather than making a new one.
    again = MlflowBackend.from_uri(uri, environ={}, config=BackendConfig())
    try:
        again.open_run(run, workdir=tmp_path / "work")
        assert mapped(tmp_path / "work")["run_id"] == mlflow_id
        again.write(run.id, Batch(3, events=(RunRestored(at=T0, by="ana"),)))
    finally:
        again.close()
    assert reader.run(mlflow_id)["info"]["lifecycle_stage"] == "active"
    reader.http.close()


def test_polyaxon_gets_rename_tags_description_archive_and_restore(
    sandbox: PolyaxonSandbox, tmp_path: Path
) -> None:
    project = f"p-{uuid.uuid4().hex[:10]}"
    run = _started(project)
    backend = PolyaxonBackend.from_uri(f"polyaxon+{sandbox.url}/{OWNER}/{project}", environ={})
    uuid_hex = run_uuid(OWNER, project, run.id)
    try:
        backend.open_run(run, workdir=tmp_path / "work")
        backend.write(run.id, Batch(0, events=CHANGES))
        stored = sandbox.run(project, uuid_hex)
        assert (stored["name"], stored["description"]) == ("baseline", "the one to beat")
        assert sorted(stored["tags"]) == ["b", "c"]
        backend.write(run.id, Batch(1, events=(RunTrashed(at=T0, by="ana"),)))
        assert sandbox.run(project, uuid_hex)["live_state"] != 1  # archived
        backend.write(run.id, Batch(2, events=(RunRestored(at=T0, by="ana"),)))
        assert sandbox.run(project, uuid_hex)["live_state"] == 1  # live again
    finally:
        backend.close()
