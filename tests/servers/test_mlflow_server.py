"""The MLflow server fixture: a real server that answers the REST API."""

from __future__ import annotations

import uuid

import pytest
import requests

from .mlflow_server import MlflowServer

pytestmark = pytest.mark.slow


def test_logged_metrics_read_back_through_rest(mlflow_server: MlflowServer) -> None:
    """A run created over REST keeps a log-batch of metrics, returned by get-history."""
    api = f"{mlflow_server.url}/api/2.0/mlflow"
    with requests.Session() as http:
        created = http.post(f"{api}/experiments/create", json={"name": f"smoke-{uuid.uuid4()}"})
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        run = http.post(
            f"{api}/runs/create", json={"experiment_id": experiment_id, "start_time": 1}
        )
        assert run.status_code == 200, run.text
        run_id = run.json()["run"]["info"]["run_id"]
        points = [
            {"key": "loss", "value": 1.0 / (step + 1), "timestamp": 1_000 + step, "step": step}
            for step in range(3)
        ]
        logged = http.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": points})
        assert logged.status_code == 200, logged.text
        history = http.get(
            f"{api}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}
        )
        assert history.status_code == 200, history.text
    assert sorted(history.json()["metrics"], key=lambda m: m["step"]) == points
