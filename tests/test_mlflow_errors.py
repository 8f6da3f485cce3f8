"""`MlflowBackend`'s failures: each HTTP error shape maps to the error class sync acts on.

`responses` plays the server for the shapes a real MLflow will not produce on demand
(401, 429 with Retry-After, 5xx, a body that is not JSON); a closed port and a socket
that never answers are real. Every message is checked for the credentials in use.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import responses

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendRejectedError,
    BackendUnavailableError,
)
from polytrack.models import ParamsSet, RunStarted, SeedState
from polytrack.sync.backends.base import Artifact, Batch, Series
from polytrack.sync.backends.config import BackendConfig
from polytrack.sync.backends.mlflow import MlflowBackend

PASSWORD = "pa55-Hunter2-secret"
TOKEN = "tok-0f9e8d7c6b5a-secret"
DIGEST = "sha256:" + "0" * 64
URI = f"mlflow+http://alice:{PASSWORD}@mlflow.test:5000/prefix"
API = "http://mlflow.test:5000/prefix/api/2.0/mlflow"
RUN = RunStarted(
    id="r1",
    project="demo",
    name="r1",
    created_at=1_760_000_000.0,
    host="box",
    pid=1,
    process_started=1_759_999_999.0,
)
BATCH = Batch(
    seq=0,
    metrics=(
        Series(
            "loss",
            np.arange(2, dtype=np.int64),
            np.array([0.5, 0.25]),
            np.array([1_760_000_000.0, 1_760_000_001.0]),
        ),
    ),
)


def make_backend(**environ: str) -> MlflowBackend:
    return MlflowBackend.from_uri(
        URI, environ={"MLFLOW_TRACKING_TOKEN": TOKEN, **environ}, config=BackendConfig()
    )


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text, text


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[MlflowBackend]:
    """A backend with run r1 opened (an existing experiment and MLflow run)."""
    made = make_backend()
    with responses.RequestsMock() as server:
        server.get(
            f"{API}/experiments/get-by-name",
            json={"experiment": {"experiment_id": "7", "lifecycle_stage": "active"}},
        )
        server.post(
            f"{API}/runs/search",
            json={
                "runs": [
                    {
                        "info": {
                            "run_id": "abc123",
                            "experiment_id": "7",
                            "artifact_uri": "mlflow-artifacts:/7/abc123/artifacts",
                        }
                    }
                ]
            },
        )
        made.open_run(RUN, workdir=tmp_path / "work")
    yield made
    made.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, BackendAuthError),
        (403, BackendAuthError),
        (500, BackendUnavailableError),
        (502, BackendUnavailableError),
        (503, BackendUnavailableError),
        (400, BackendRejectedError),
        (404, BackendRejectedError),
    ],
)
def test_statuses_map_to_error_classes(
    backend: MlflowBackend, status: int, error: type[BackendError]
) -> None:
    """401/403 -> auth, 5xx -> unavailable, other 4xx -> rejected; MLflow's code is quoted."""
    body = {"error_code": "SOME_MLFLOW_CODE", "message": f"said {status}"}
    with responses.RequestsMock() as server:
        server.post(f"{API}/runs/log-batch", status=status, json=body)
        with pytest.raises(error) as caught:
            backend.write("r1", BATCH)
    assert type(caught.value) is error
    assert caught.value.status == status
    assert f"SOME_MLFLOW_CODE: said {status}" in str(caught.value)
    assert "runs/log-batch" in str(caught.value)
    assert_no_secrets(str(caught.value), repr(caught.value), repr(backend))


def test_an_unavailable_server_stops_the_write_at_once(backend: MlflowBackend) -> None:
    """After a 503 nothing more of the batch is sent: the engine retries the whole batch."""
    batch = Batch(seq=0, events=(ParamsSet({"lr": 0.1}),), metrics=BATCH.metrics)
    with responses.RequestsMock() as server:
        server.post(f"{API}/runs/log-batch", status=503, body="busy")
        with pytest.raises(BackendUnavailableError, match="busy"):
            backend.write("r1", batch)
        assert len(server.calls) == 1


def test_a_rejected_part_does_not_stop_the_rest(backend: MlflowBackend) -> None:
    """Metrics refused with a 400: params are sent all the same, then the 400 is raised."""
    batch = Batch(seq=4, events=(ParamsSet({"lr": 0.1}),), metrics=BATCH.metrics)
    with responses.RequestsMock() as server:
        refused = server.post(
            f"{API}/runs/log-batch",
            status=400,
            json={"error_code": "INVALID_PARAMETER_VALUE", "message": "bad metric"},
        )
        accepted = server.post(f"{API}/runs/log-batch", json={})
        with pytest.raises(BackendRejectedError, match=r"batch 4 of run r1.*bad metric"):
            backend.write("r1", batch)
    assert refused.call_count == 1 and accepted.call_count == 1
    sent = accepted.calls[0].request.body
    assert isinstance(sent, bytes)
    assert json.loads(sent)["params"] == [{"key": "lr", "value": "0.1"}]


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("7", 7.0, 7.0),
        ("0.5", 0.5, 0.5),
        ("in-a-while", None, None),
        ("date:+120", 115.0, 120.0),
        ("date:-60", 0.0, 0.0),
    ],
    ids=["seconds", "fraction", "garbage", "date-ahead", "date-past"],
)
def test_429_carries_retry_after(
    backend: MlflowBackend, header: str, low: float | None, high: float | None
) -> None:
    """429 is unavailable; Retry-After (seconds or an HTTP-date) becomes retry_after."""
    if header.startswith("date:"):  # an HTTP-date that many seconds from now
        header = email.utils.formatdate(time.time() + float(header[5:]), usegmt=True)
    with responses.RequestsMock() as server:
        server.post(
            f"{API}/runs/log-batch",
            status=429,
            headers={"Retry-After": header},
            json={"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"},
        )
        with pytest.raises(BackendUnavailableError) as caught:
            backend.write("r1", BATCH)
    assert caught.value.status == 429
    if low is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after is not None
        assert low <= caught.value.retry_after <= high


def test_503_with_retry_after_and_no_json(backend: MlflowBackend) -> None:
    """A proxy's HTML 503 is unavailable, its Retry-After read, its text quoted briefly."""
    page = "<html><body>" + "Service Temporarily Unavailable " * 20 + "</body></html>"
    with responses.RequestsMock() as server:
        server.post(f"{API}/runs/log-batch", status=503, body=page, headers={"Retry-After": "30"})
        with pytest.raises(BackendUnavailableError) as caught:
            backend.write("r1", BATCH)
    assert caught.value.retry_after == 30.0
    assert "Service Temporarily Unavailable" in str(caught.value)
    assert len(str(caught.value)) < 400


def test_a_body_that_is_not_json_is_unavailable(tmp_path: Path) -> None:
    """A 200 whose body is not JSON (a login page, say) is worth retrying, not a crash."""
    backend = make_backend()
    with responses.RequestsMock() as server:
        server.get(f"{API}/experiments/get-by-name", body="<html>Sign in</html>")
        with pytest.raises(BackendUnavailableError, match=r"not a JSON object.*Sign in"):
            backend.open_run(RUN, workdir=tmp_path)
    assert_no_secrets(repr(backend))
    backend.close()


def test_connection_refused_is_unavailable(tmp_path: Path) -> None:
    """A closed loopback port: unavailable, no status, no credentials in the message."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = MlflowBackend.from_uri(
        f"mlflow+http://alice:{PASSWORD}@127.0.0.1:{port}",
        environ={"MLFLOW_TRACKING_TOKEN": TOKEN},
        config=BackendConfig(),
    )
    try:
        with pytest.raises(BackendUnavailableError, match="unreachable") as caught:
            backend.open_run(RUN, workdir=tmp_path)
    finally:
        backend.close()
    assert caught.value.status is None and caught.value.retry_after is None
    assert_no_secrets(str(caught.value), repr(backend))


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    """A socket that accepts connections but never answers: unavailable after the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes the handshake; nobody reads or answers
        port = silent.getsockname()[1]
        backend = MlflowBackend(
            f"http://127.0.0.1:{port}", key=f"mlflow+http://127.0.0.1:{port}", timeout=0.3
        )
        started = time.monotonic()
        try:
            with pytest.raises(BackendUnavailableError, match="timed out"):
                backend.open_run(RUN, workdir=tmp_path)
        finally:
            backend.close()
    assert time.monotonic() - started < 5


def test_a_token_is_sent_as_bearer_and_wins_over_a_password(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_TOKEN -> Authorization: Bearer; without one, the URI's basic auth."""
    for environ, expected in (
        ({}, f"Bearer {TOKEN}"),
        (
            {"MLFLOW_TRACKING_TOKEN": ""},
            "Basic " + b64encode(f"alice:{PASSWORD}".encode()).decode(),
        ),
    ):
        backend = MlflowBackend.from_uri(
            URI, environ={"MLFLOW_TRACKING_TOKEN": TOKEN, **environ}, config=BackendConfig()
        )
        with responses.RequestsMock() as server:
            server.get(f"{API}/experiments/get-by-name", status=401, json={})
            with pytest.raises(BackendAuthError):
                backend.open_run(RUN, workdir=tmp_path)
            assert server.calls[0].request.headers["Authorization"] == expected
        backend.close()


def test_uris_it_cannot_use_are_config_errors() -> None:
    """Another scheme, no host or a bad port is a BackendConfigError naming the URI."""
    for uri in ("http://host:5000", "mlflow+http://", "mlflow+http://host:99999"):
        with pytest.raises(BackendConfigError):
            MlflowBackend.from_uri(uri, environ={}, config=BackendConfig())
    with pytest.raises(BackendConfigError) as caught:
        MlflowBackend.from_uri(
            f"polyaxon+http://alice:{PASSWORD}@h", environ={}, config=BackendConfig()
        )
    assert_no_secrets(str(caught.value))


def test_the_key_and_repr_hold_no_credentials() -> None:
    """key is the URI without user and password; repr says only which credentials exist."""
    backend = make_backend()
    assert backend.key == "mlflow+http://mlflow.test:5000/prefix"
    assert repr(backend) == (
        "<MlflowBackend mlflow+http://mlflow.test:5000/prefix"
        " Credentials(token, username, password)>"
    )
    backend.close()


def test_a_missing_artifact_file_is_rejected(backend: MlflowBackend, tmp_path: Path) -> None:
    """A file that is gone will never upload: rejected, and nothing is sent."""
    artifact = Artifact(path=tmp_path / "gone.bin", name="gone.bin", digest=DIGEST, size=1)
    with responses.RequestsMock() as server, pytest.raises(BackendRejectedError, match="gone"):
        backend.upload_artifact("r1", artifact)
    assert not server.calls


def test_without_an_artifact_proxy_files_are_refused_and_tags_still_sent(
    tmp_path: Path,
) -> None:
    """A run whose artifacts live in s3:// : uploads are refused, snapshots send tags only."""
    backend = make_backend()
    with responses.RequestsMock() as server:
        server.get(
            f"{API}/experiments/get-by-name",
            json={"experiment": {"experiment_id": "7", "lifecycle_stage": "active"}},
        )
        server.post(
            f"{API}/runs/search",
            json={
                "runs": [
                    {
                        "info": {
                            "run_id": "abc",
                            "experiment_id": "7",
                            "artifact_uri": "s3://bucket/7/abc/artifacts",
                        }
                    }
                ]
            },
        )
        backend.open_run(RUN, workdir=tmp_path)
        tags = server.post(f"{API}/runs/log-batch", json={})
        backend.write("r1", Batch(seq=0, events=(SeedState(seed=3, libraries=("random",)),)))
    assert tags.call_count == 1
    (path := tmp_path / "f.txt").write_text("x")
    with pytest.raises(BackendRejectedError, match="--serve-artifacts"):
        backend.upload_artifact("r1", Artifact(path=path, name="f.txt", digest=DIGEST, size=1))
    backend.close()


def test_a_retried_batch_resends_only_what_was_not_acknowledged(backend: MlflowBackend) -> None:
    """A 503 on the third request of a batch: the retry sends the third alone, then nothing."""
    values = np.linspace(0.0, 1.0, 2500)
    steps = np.arange(values.size, dtype=np.int64)
    big = Batch(seq=9, metrics=(Series("loss", steps, values, 1_760_000_000.0 + steps),))
    with responses.RequestsMock() as server:
        for status in (200, 200, 503, 200):
            server.post(f"{API}/runs/log-batch", status=status, json={})
        with pytest.raises(BackendUnavailableError):
            backend.write("r1", big)
        assert len(server.calls) == 3
        backend.write("r1", big)
        backend.write("r1", big)
        assert len(server.calls) == 4
        assert server.calls[3].request.body == server.calls[2].request.body
        backend.write("r1", Batch(seq=10, metrics=big.metrics))  # another batch: sent whole
        assert len(server.calls) == 7
