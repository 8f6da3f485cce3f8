"""Fixtures that start real tracking servers (see `process.py` and each server's module)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from .mlflow_server import MlflowServer
from .moto_server import MotoServer
from .polyaxon_sandbox import PolyaxonSandbox
from .process import ServerProcess, group_alive

_Server = TypeVar("_Server", bound=ServerProcess)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow server for the session; its store lives in a pytest tmp dir.

    The first run on a machine builds its venv in the test cache (about two minutes).
    Tests share it, so each makes its own experiment (a unique name) and runs.
    """
    yield from _serve(MlflowServer.start(tmp_path_factory.mktemp("mlflow")))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real S3 API (moto) for the session, with IAM auth on (see `moto_server.py`).

    The first run on a machine builds its venv in the test cache (about half a minute).
    Tests share it, so each makes its own bucket; `storage_options()` connects s3fs.
    """
    pytest.importorskip("botocore", reason="the s3 extra (s3fs, botocore) is not installed")
    yield from _serve(MotoServer.start(tmp_path_factory.mktemp("moto")))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolyaxonSandbox]:
    """A real Polyaxon API (`haupt sandbox`) for the session, shared by its tests, each in
    its own project. The first run on a machine builds its venv (about a minute)."""
    yield from _serve(PolyaxonSandbox.start(tmp_path_factory.mktemp("polyaxon")))


def _serve(server: _Server) -> Iterator[_Server]:
    yield server
    server.stop()
    assert not group_alive(server.pgid), f"{server.name} group {server.pgid} outlived stop()"
