"""A run's artifacts synced to a real S3 API (moto) as its artifact store, while its
records go to the backend."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

import polytrack
from polytrack.sync.backends.memory import InMemoryBackend

from .moto_server import REGION, MotoServer


def test_artifacts_go_to_the_artifact_store_with_their_digests(
    moto_server: MotoServer, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With POLYTRACK_ARTIFACT_STORE set, a logged model lands in the bucket under
    `<prefix>/<run id>/<name>/<file>`, carrying its SHA-256; the backend gets the rest."""
    bucket = f"runs-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(bucket)
    monkeypatch.setenv("POLYTRACK_ARTIFACT_STORE", f"s3://{bucket}/team")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_server.writer.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_server.writer.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_REGION", REGION)
    # What is asserted is where the files go, not how soon: finish() waits for them.
    monkeypatch.setenv("POLYTRACK_SYNC_TIMEOUT", "120")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(bytes(range(256)) * 4096)
    backend = InMemoryBackend("with-store")
    run = polytrack.init(dir=home, backend=backend, capture=False)
    run.log_model(weights, "model", framework="numpy")
    run.log_metric("loss", 0.5, step=0)
    run.finish()
    assert backend.runs[run.id].status == "succeeded"
    assert backend.runs[run.id].artifacts == {}  # they went to the store instead
    client = moto_server.client()
    try:
        head = client.head_object(Bucket=bucket, Key=f"team/{run.id}/model/weights.bin")
        body = client.get_object(Bucket=bucket, Key=f"team/{run.id}/model/weights.bin")
        data = body["Body"].read()
    finally:
        client.close()
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert data == weights.read_bytes()
    assert head["Metadata"]["sha256"] == digest
