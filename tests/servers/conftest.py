"""Fixtures that start real tracking servers (see `mlflow_server.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .mlflow_server import MlflowServer, group_alive
from .moto_server import MotoServer
from .polyaxon_sandbox import PolyaxonSandbox


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow server for the session; its store lives in a pytest tmp dir.

    The first run on a machine builds its venv in the test cache (about two minutes).
    Tests share it, so each makes its own experiment (a unique name) and runs.
    """
    server = MlflowServer.start(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()
    assert not group_alive(server.pgid), f"mlflow server group {server.pgid} outlived stop()"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real S3 API (moto) for the session, with IAM auth on (see `moto_server.py`).

    The first run on a machine builds its venv in the test cache (about half a minute).
    Tests share it, so each makes its own bucket; `storage_options()` connects s3fs.
    """
    pytest.importorskip("botocore", reason="the s3 extra (s3fs, botocore) is not installed")
    server = MotoServer.start(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()
    assert not group_alive(server.pgid), f"moto server group {server.pgid} outlived stop()"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolyaxonSandbox]:
    """A real Polyaxon API (`haupt sandbox`) for the session, shared by its tests, each in
    its own project. The first run on a machine builds its venv (about a minute)."""
    server = PolyaxonSandbox.start(tmp_path_factory.mktemp("polyaxon"))
    yield server
    server.stop()
