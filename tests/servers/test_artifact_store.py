"""Artifact stores against a real S3 API (moto, IAM auth on) and the local filesystem."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendRejectedError,
    BackendUnavailableError,
)
from polytrack.sync.backends.artifact_store import (
    SIDECAR_DIR,
    ArtifactStore,
    FsspecArtifactStore,
    open_artifact_store,
)
from polytrack.sync.backends.base import Artifact

from .faulty_proxy import Fault, FaultyProxy
from .moto_server import REGION, MotoServer, S3Credentials

pytest.importorskip("s3fs", reason="the s3 extra (fsspec, s3fs) is not installed")

MiB = 2**20
PART = 5 * MiB  # S3's smallest part: a 12 MiB file goes up in three
RUN = "0123456789abcdef"
# Retries belong to the sync engine; here they would only slow the failure tests down.
NO_RETRIES = {"retries": {"max_attempts": 1, "mode": "standard"}}


@pytest.fixture(autouse=True)
def _no_aws_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither the developer's credentials nor the EC2 metadata service (off loopback).
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    name = f"polytrack-{uuid.uuid4().hex[:12]}"
    moto_server.create_bucket(name)
    return name


@pytest.fixture
def s3(moto_server: MotoServer) -> Iterator[Any]:
    client = moto_server.client()
    yield client
    client.close()


@pytest.fixture
def store(moto_server: MotoServer, bucket: str) -> Iterator[FsspecArtifactStore]:
    opened = FsspecArtifactStore(
        f"s3://{bucket}/runs", storage_options=moto_server.storage_options(), block_size=PART
    )
    yield opened
    opened.close()


def _artifact(directory: Path, name: str, data: bytes) -> Artifact:
    path = directory / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Artifact(path, name, f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))


def _object(s3: Any, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    got = s3.get_object(Bucket=bucket, Key=key)
    with got["Body"] as body:
        return body.read(), got


def _absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        return bool(exc.response["Error"]["Code"] == "404")
    return False


# -- S3 --------------------------------------------------------------------------------


def test_put_stores_the_bytes_under_run_and_name(
    store: FsspecArtifactStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """put() writes <url>/<run>/<name>, returns that URL, with the sha256 as metadata."""
    artifact = _artifact(tmp_path, "model/weights.bin", b"weights" * 1000)
    url = store.put(RUN, artifact)
    assert url == f"s3://{bucket}/runs/{RUN}/model/weights.bin"
    data, head = _object(s3, bucket, f"runs/{RUN}/model/weights.bin")
    assert data == artifact.path.read_bytes()
    assert head["Metadata"] == {"sha256": artifact.digest.removeprefix("sha256:")}
    assert isinstance(store, ArtifactStore)


def test_a_file_over_the_block_size_goes_up_in_parts(
    store: FsspecArtifactStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """12 MiB with 5 MiB blocks is a three-part multipart upload, bytes and digest intact."""
    data = os.urandom(12 * MiB)
    artifact = _artifact(tmp_path, "big.bin", data)
    store.put(RUN, artifact)
    stored, head = _object(s3, bucket, f"runs/{RUN}/big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [1000, 6 * MiB], ids=["one-request", "multipart"])
def test_a_repeat_costs_one_head_and_no_upload(
    moto_server: MotoServer, bucket: str, s3: Any, tmp_path: Path, size: int
) -> None:
    """Putting the same artifact again sends one HEAD and no PUT; the object is untouched."""
    artifact = _artifact(tmp_path, "out.bin", os.urandom(size))
    # The client signs Host: keep it, or moto rejects the signature.
    with FaultyProxy.start(moto_server.url, rewrite_host=False) as proxy:
        options = moto_server.storage_options(endpoint=proxy.url)
        store = FsspecArtifactStore(f"s3://{bucket}", storage_options=options, block_size=PART)
        try:
            store.put(RUN, artifact)
            before = s3.head_object(Bucket=bucket, Key=f"{RUN}/out.bin")["LastModified"]
            uploads = [r for r in proxy.records if r.method in ("PUT", "POST")]
            store.put(RUN, artifact)
            repeat = proxy.records[len(uploads) + 1 :]
        finally:
            store.close()
    assert uploads, "the first put uploaded nothing"
    assert [r.method for r in repeat] == ["HEAD"]
    assert s3.head_object(Bucket=bucket, Key=f"{RUN}/out.bin")["LastModified"] == before


def test_new_content_under_the_same_name_replaces_the_object(
    store: FsspecArtifactStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Same name, another digest: uploaded again, with the new digest as metadata."""
    store.put(RUN, _artifact(tmp_path / "v1", "log.txt", b"first"))
    second = _artifact(tmp_path / "v2", "log.txt", b"second")
    store.put(RUN, second)
    data, head = _object(s3, bucket, f"runs/{RUN}/log.txt")
    assert data == b"second"
    assert head["Metadata"]["sha256"] == second.digest.removeprefix("sha256:")


@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["one-request", "multipart"])
def test_a_file_changed_since_hashing_is_refused_and_not_stored(
    store: FsspecArtifactStore, s3: Any, bucket: str, tmp_path: Path, size: int
) -> None:
    """Bytes that no longer match the digest raise, leave no object and no open upload."""
    artifact = _artifact(tmp_path, "ckpt.bin", b"\0" * size)
    artifact.path.write_bytes(b"\1" * size)  # same size, other bytes
    with pytest.raises(BackendRejectedError, match="changed since it was logged"):
        store.put(RUN, artifact)
    assert _absent(s3, bucket, f"runs/{RUN}/ckpt.bin")
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_file_that_grew_is_refused_without_reading_it_all(
    store: FsspecArtifactStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A file longer than its recorded size is refused; the old object keeps its own digest."""
    old = _artifact(tmp_path / "v1", "metrics.csv", b"a,b\n")
    store.put(RUN, old)
    grown = _artifact(tmp_path / "v2", "metrics.csv", b"a,b\n1,2\n")
    grown.path.write_bytes(b"a,b\n1,2\n3,4\n")
    with pytest.raises(BackendRejectedError, match="more than 8 bytes"):
        store.put(RUN, grown)
    data, head = _object(s3, bucket, f"runs/{RUN}/metrics.csv")
    assert (data, head["Metadata"]["sha256"]) == (b"a,b\n", old.digest.removeprefix("sha256:"))


def test_credentials_and_endpoint_come_from_environ(
    moto_server: MotoServer, bucket: str, s3: Any, tmp_path: Path
) -> None:
    """open_artifact_store() takes AWS_* keys, region and AWS_ENDPOINT_URL from `environ`."""
    environ = {
        "AWS_ACCESS_KEY_ID": moto_server.writer.access_key,
        "AWS_SECRET_ACCESS_KEY": moto_server.writer.secret_key,
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_DEFAULT_REGION": REGION,
    }
    store = open_artifact_store(f"s3://{bucket}/env/", environ=environ)
    try:
        assert store.key == f"s3://{bucket}/env"
        store.put(RUN, _artifact(tmp_path, "a.txt", b"from environ"))
    finally:
        store.close()
    assert _object(s3, bucket, f"env/{RUN}/a.txt")[0] == b"from environ"


def test_a_missing_bucket_is_rejected(moto_server: MotoServer, tmp_path: Path) -> None:
    """No such bucket: BackendRejectedError with the 404, naming the object."""
    name = f"polytrack-missing-{uuid.uuid4().hex[:8]}"
    store = FsspecArtifactStore(f"s3://{name}", storage_options=moto_server.storage_options())
    try:
        with pytest.raises(BackendRejectedError, match="NoSuchBucket") as caught:
            store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
    finally:
        store.close()
    assert caught.value.status == 404
    assert f"s3://{name}/{RUN}/a.txt" in str(caught.value)


def test_an_invalid_bucket_name_is_rejected(moto_server: MotoServer, tmp_path: Path) -> None:
    """A bucket name S3 cannot have is refused before any request."""
    store = FsspecArtifactStore("s3://Not_A_Bucket!", storage_options=moto_server.storage_options())
    try:
        with pytest.raises(BackendRejectedError, match="bucket name"):
            store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
    finally:
        store.close()


@pytest.mark.parametrize("who", ["wrong-secret", "unknown-key", "no-permission"])
def test_bad_credentials_are_auth_errors_that_hide_the_secret(
    moto_server: MotoServer, bucket: str, tmp_path: Path, who: str
) -> None:
    """A wrong secret, an unknown key, or a user without s3:PutObject: BackendAuthError, 403."""
    writer = moto_server.writer
    credentials = {
        "wrong-secret": S3Credentials(writer.access_key, "not-the-secret-0123456789"),
        "unknown-key": S3Credentials("AKIAUNKNOWN000000000", writer.secret_key),
        "no-permission": moto_server.denied,
    }[who]
    options = moto_server.storage_options(credentials)
    store = FsspecArtifactStore(f"s3://{bucket}", storage_options=options)
    try:
        with pytest.raises(BackendAuthError) as caught:
            store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
    finally:
        store.close()
    assert caught.value.status == 403
    for shown in (str(caught.value), repr(caught.value), repr(store), store.key):
        assert credentials.secret_key not in shown


def test_no_credentials_at_all_is_an_auth_error(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    """With no key anywhere (environment cleared, no ~/.aws): BackendAuthError."""
    options = {k: v for k, v in moto_server.storage_options().items() if k not in ("key", "secret")}
    store = FsspecArtifactStore(f"s3://{bucket}", storage_options=options)
    try:
        with pytest.raises(BackendAuthError, match="credentials"):
            store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
    finally:
        store.close()


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [(Fault.status(503), 503, None), (Fault.status(500), 500, None), (Fault.throttle(7), 429, 7.0)],
)
def test_server_errors_and_throttling_are_unavailable(
    moto_server: MotoServer,
    bucket: str,
    tmp_path: Path,
    fault: Fault,
    status: int,
    retry_after: float | None,
) -> None:
    """5xx and 429 answers become BackendUnavailableError, with the server's Retry-After."""
    with FaultyProxy.start(moto_server.url, rewrite_host=False) as proxy:
        proxy.fail_next(None, fault)
        options = {**moto_server.storage_options(endpoint=proxy.url), "config_kwargs": NO_RETRIES}
        options["config_kwargs"] = {**NO_RETRIES, "s3": {"addressing_style": "path"}}
        store = FsspecArtifactStore(f"s3://{bucket}", storage_options=options)
        try:
            with pytest.raises(BackendUnavailableError) as caught:
                store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
        finally:
            store.close()
    assert caught.value.status == status
    assert caught.value.retry_after == retry_after


def test_an_unreachable_endpoint_is_unavailable(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    """Nothing listening at the endpoint: BackendUnavailableError without a status."""
    with FaultyProxy.start(moto_server.url) as proxy:
        dead = proxy.url  # a loopback port that is closed once the proxy stops
    options = {**moto_server.storage_options(endpoint=dead), "config_kwargs": NO_RETRIES}
    store = FsspecArtifactStore(f"s3://{bucket}", storage_options=options)
    try:
        with pytest.raises(BackendUnavailableError, match="Could not connect") as caught:
            store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
    finally:
        store.close()
    assert caught.value.status is None


def test_close_is_idempotent(store: FsspecArtifactStore, tmp_path: Path) -> None:
    """close() after a put releases the session, and may be called twice."""
    store.put(RUN, _artifact(tmp_path, "a.txt", b"x"))
    store.close()
    store.close()


def test_blocks_under_the_s3_minimum_are_refused() -> None:
    """S3 refuses parts under 5 MiB, so a smaller block_size is a configuration error."""
    with pytest.raises(BackendConfigError, match="block_size"):
        FsspecArtifactStore("s3://bucket", block_size=MiB)


def test_key_and_repr_carry_no_credentials() -> None:
    """The store's key is its URL without a trailing slash; no option shows in its repr."""
    store = FsspecArtifactStore(
        "s3://bucket/prefix/", storage_options={"key": "AKIAEXAMPLE", "secret": "hunter2-secret"}
    )
    assert store.key == "s3://bucket/prefix"
    assert "hunter2" not in repr(store) and "AKIA" not in repr(store)


# -- file:// -----------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Iterator[FsspecArtifactStore]:
    opened = open_artifact_store(f"file://{tmp_path}/store", environ={}, block_size=MiB)
    yield opened  # type: ignore[misc]
    opened.close()


def test_file_store_writes_the_file_and_a_sha256sum_sidecar(
    local: FsspecArtifactStore, tmp_path: Path
) -> None:
    """file:// stores the bytes and .sha256/<name>, which `sha256sum -c` accepts."""
    artifact = _artifact(tmp_path, "model/w.bin", b"local bytes")
    url = local.put(RUN, artifact)
    run_dir = tmp_path / "store" / RUN
    assert url == f"file://{run_dir}/model/w.bin"
    assert (run_dir / "model" / "w.bin").read_bytes() == b"local bytes"
    hexdigest = artifact.digest.removeprefix("sha256:")
    assert (run_dir / SIDECAR_DIR / "model" / "w.bin").read_text() == f"{hexdigest}  model/w.bin\n"
    if shutil.which("sha256sum"):
        check = [shutil.which("sha256sum") or "", "-c", f"{SIDECAR_DIR}/model/w.bin"]
        assert subprocess.run(check, cwd=run_dir, capture_output=True).returncode == 0


def test_file_store_streams_a_file_over_the_block_size(
    local: FsspecArtifactStore, tmp_path: Path
) -> None:
    """A 3 MiB file with 1 MiB blocks is streamed, committed whole, bytes equal."""
    data = os.urandom(3 * MiB + 17)
    local.put(RUN, _artifact(tmp_path, "big.bin", data))
    assert (tmp_path / "store" / RUN / "big.bin").read_bytes() == data


def test_file_store_skips_a_repeat(local: FsspecArtifactStore, tmp_path: Path) -> None:
    """The second put of the same artifact rewrites neither the file nor its sidecar."""
    artifact = _artifact(tmp_path, "a.txt", b"same")
    local.put(RUN, artifact)
    written = [tmp_path / "store" / RUN / "a.txt", tmp_path / "store" / RUN / SIDECAR_DIR / "a.txt"]
    for path in written:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    local.put(RUN, artifact)
    assert [path.stat().st_mtime_ns for path in written] == [1_000_000_000] * 2


@pytest.mark.parametrize("size", [100, 2 * MiB], ids=["one-request", "streamed"])
def test_file_store_refuses_a_changed_file_and_unclaims_the_old_one(
    local: FsspecArtifactStore, tmp_path: Path, size: int
) -> None:
    """A changed file is refused: no new bytes, and the old object's sidecar is gone."""
    local.put(RUN, _artifact(tmp_path / "v1", "x.bin", b"\0" * size))
    changed = _artifact(tmp_path / "v2", "x.bin", b"\1" * size)
    changed.path.write_bytes(b"\2" * size)
    with pytest.raises(BackendRejectedError, match="changed since it was logged"):
        local.put(RUN, changed)
    assert (tmp_path / "store" / RUN / "x.bin").read_bytes() == b"\0" * size
    assert not (tmp_path / "store" / RUN / SIDECAR_DIR / "x.bin").exists()


def test_a_vanished_file_is_rejected(local: FsspecArtifactStore, tmp_path: Path) -> None:
    """An artifact whose file is gone cannot ever upload: BackendRejectedError."""
    artifact = _artifact(tmp_path, "gone.txt", b"x")
    artifact.path.unlink()
    with pytest.raises(BackendRejectedError, match="cannot read artifact file"):
        local.put(RUN, artifact)


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "a//b", "a/", "../up", "a/../b", "a/./b", ".sha256/x", "a\\b"]
)
def test_bad_names_are_refused(local: FsspecArtifactStore, tmp_path: Path, name: str) -> None:
    """Absolute names, empty, '.' or '..' parts, and the sidecar folder are refused."""
    data = _artifact(tmp_path, "ok.txt", b"x")
    with pytest.raises(BackendRejectedError, match="artifact name"):
        local.put(RUN, Artifact(data.path, name, data.digest, data.size))
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("run_id", ["", "..", "a/b"])
def test_bad_run_ids_are_refused(local: FsspecArtifactStore, tmp_path: Path, run_id: str) -> None:
    """A run id that is not one path segment is refused."""
    with pytest.raises(BackendRejectedError, match="run id"):
        local.put(run_id, _artifact(tmp_path, "ok.txt", b"x"))


def test_without_fsspec_opening_a_store_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With fsspec not importable, open_artifact_store names the extra to install."""
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    with pytest.raises(BackendConfigError, match=r"polytrack\[s3\]"):
        open_artifact_store("s3://bucket/x", environ={})


def test_an_unknown_scheme_is_a_config_error() -> None:
    """A URL no fsspec implementation claims is a BackendConfigError naming the store."""
    with pytest.raises(BackendConfigError, match="nosuchfs://x"):
        open_artifact_store("nosuchfs://x/y", environ={})
