"""A real MLflow tracking server for the tests, from its own cached virtualenv.

It keeps its SQLite store, its proxied artifacts, its log and its temporary files under
one directory the test owns; `mlflow server` forks uvicorn, and `stop()` ends both
(see `process.ServerProcess`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import requests

from .process import ServerProcess

# mlflow 3.18.0 is on the index, but its pinned mlflow-skinny==3.18.0 and
# mlflow-tracing==3.18.0 are not yet, so it cannot install; 3.17.2 is the newest whole set.
# mlflow-skinny plus the server's extras was tried: `mlflow server` then needs pandas and
# aiohttp too (its genai job modules), so the full package is the one that works.
MLFLOW_REQUIREMENTS = ("mlflow==3.17.2",)


class MlflowServer(ServerProcess):
    """One running `mlflow server`, REST under `url + /api/2.0/mlflow`; `start()`, `stop()`.

    Its venv takes about two minutes to build on first use, and it may take a while to
    create its store: `/health` answers before that, so readiness is a read of the
    tracking API (`api_ready`).
    """

    name = "mlflow server"
    venv_name = "mlflow"
    requirements = MLFLOW_REQUIREMENTS
    health_path = "/health"

    def api_ready(self) -> bool:
        """The store answers: the `Default` experiment, which creating it makes, reads back."""
        try:
            answer = requests.get(
                f"{self.url}/api/2.0/mlflow/experiments/get-by-name",
                params={"experiment_name": "Default"},
                timeout=10,
            )
            return answer.status_code == 200 and "experiment" in answer.json()
        except (requests.RequestException, ValueError):  # not up, or not yet its API
            return False

    @classmethod
    def _argv(cls, venv: Path, directory: Path, port: int) -> list[str]:
        return [
            str(venv / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{directory / 'mlflow.db'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ]

    @classmethod
    def _environment(cls, directory: Path, environ: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in environ.items() if not k.startswith("MLFLOW_")}
        # The job runner (genai scorers) forks a runner and six huey consumers and leaves
        # a queue directory in /dev/shm; the tracking API needs none of it.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env
