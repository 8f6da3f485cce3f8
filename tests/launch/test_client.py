"""The REST client: against the emulator over real TLS (tokens, client certificates, CA
bundles, exec plugins, in-cluster), and `responses` for the error shapes a real server
will not produce on demand (429, 5xx, timeouts, malformed bodies)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from launch_helpers import NAMESPACE, TOKEN
from test_kubeconfig import calls, plugin_script

from polytrack.errors import (
    KubernetesConflictError,
    KubernetesError,
    KubernetesForbiddenError,
    KubernetesNotFoundError,
    KubernetesUnauthorizedError,
    KubernetesUnavailableError,
)
from polytrack.launch.client import KubeClient
from polytrack.launch.kubeconfig import ClusterAuth, in_cluster, load_kubeconfig
from polytrack.launch.resources import KINDS

pytest.importorskip("kmock")
from kube import Cluster, kubeconfig

JOBS = KINDS["Job"]


def job(name: str = "train-a1b2c3d4") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]}
            }
        },
    }


def connect(cluster: Cluster, tmp_path: Path, user: dict[str, Any], **options: Any) -> KubeClient:
    path = kubeconfig(tmp_path / "kubeconfig", cluster, user=user, namespace=NAMESPACE)
    return KubeClient.connect(load_kubeconfig([path]), **options)


def test_create_get_list_patch_delete(cluster: Cluster, tmp_path: Path) -> None:
    """The verbs against a stateful API: 201 with a uid, then read, patch, delete."""
    with connect(cluster, tmp_path, {"token": TOKEN}) as client:
        created = client.create(job())
        assert created["metadata"]["uid"]
        assert client.get(JOBS, NAMESPACE, "train-a1b2c3d4")["metadata"]["name"] == "train-a1b2c3d4"
        names = [j["metadata"]["name"] for j in client.list(JOBS, NAMESPACE)["items"]]
        assert names == ["train-a1b2c3d4"]
        client.patch(JOBS, NAMESPACE, "train-a1b2c3d4", {"metadata": {"labels": {"a": "b"}}})
        assert client.get(JOBS, NAMESPACE, "train-a1b2c3d4")["metadata"]["labels"] == {"a": "b"}
        client.delete(JOBS, NAMESPACE, "train-a1b2c3d4")
        with pytest.raises(KubernetesNotFoundError) as caught:
            client.get(JOBS, NAMESPACE, "train-a1b2c3d4")
    assert caught.value.status == 404
    assert str(caught.value).startswith(
        'cannot get jobs.batch "train-a1b2c3d4" in namespace "ml": 404'
    )


def test_a_taken_name_is_a_conflict(cluster: Cluster, tmp_path: Path) -> None:
    """409: the message names the object and quotes the server."""
    with connect(cluster, tmp_path, {"token": TOKEN}) as client:
        client.create(job())
        with pytest.raises(KubernetesConflictError) as caught:
            client.create(job())
    assert str(caught.value) == (
        'cannot create jobs.batch "train-a1b2c3d4" in namespace "ml": 409 AlreadyExists: '
        'jobs.batch "train-a1b2c3d4" already exists'
    )
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")


def test_forbidden_names_verb_resource_and_namespace(cluster: Cluster, tmp_path: Path) -> None:
    """403: what was refused, and the server's RBAC message."""
    cluster.emulator.forbidden.add(("create", "jobs", NAMESPACE))
    with (
        connect(cluster, tmp_path, {"token": TOKEN}) as client,
        pytest.raises(KubernetesForbiddenError) as caught,
    ):
        client.create(job())
    assert str(caught.value) == (
        'cannot create jobs.batch "train-a1b2c3d4" in namespace "ml": 403 Forbidden: '
        'jobs.batch is forbidden: User "tester" cannot create resource "jobs" in API group '
        '"batch" in the namespace "ml"'
    )


def test_a_wrong_token_is_unauthorized(cluster: Cluster, tmp_path: Path) -> None:
    """401 with a static token: not retried, reported."""
    with (
        connect(cluster, tmp_path, {"token": "wrong"}) as client,
        pytest.raises(KubernetesUnauthorizedError, match="401 Unauthorized"),
    ):
        client.list(JOBS, NAMESPACE)


@pytest.mark.parametrize("inline", [False, True], ids=["files", "inline-data"])
def test_client_certificates(cluster: Cluster, tmp_path: Path, inline: bool) -> None:
    """Mutual TLS with a certificate and key, from files or inline data; inline data is
    written to private files that close() removes."""
    certs = cluster.certificates
    if inline:
        user = {
            "client-certificate-data": base64.b64encode(certs.client_cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(certs.client_key.read_bytes()).decode(),
        }
    else:
        user = {"client-certificate": str(certs.client_cert), "client-key": str(certs.client_key)}
    client = connect(cluster, tmp_path, user)
    try:
        assert client.list(JOBS, NAMESPACE)["items"] == []
        cert_file = client.session.cert[0]  # type: ignore[index]
    finally:
        client.close()
    assert Path(cert_file).exists() != inline  # the private copy is gone
    client.close()  # idempotent


def test_ca_bundles_inline_and_wrong(cluster: Cluster, tmp_path: Path) -> None:
    """An inline CA verifies the server; a CA that did not sign it fails as TLS."""
    auth = load_kubeconfig(
        [kubeconfig(tmp_path / "k", cluster, user={"token": TOKEN}, namespace=NAMESPACE)]
    )
    inline = ClusterAuth(
        server=auth.server,
        namespace=NAMESPACE,
        ca_data=cluster.certificates.ca.read_bytes(),
        token=TOKEN,
    )
    with KubeClient.connect(inline) as client:
        assert client.list(JOBS, NAMESPACE)["items"] == []
    wrong = ClusterAuth(server=auth.server, ca_file=str(cluster.certificates.other_ca), token=TOKEN)
    with KubeClient.connect(wrong) as client, pytest.raises(KubernetesUnavailableError) as caught:
        client.list(JOBS, NAMESPACE)
    assert f"TLS with {auth.server} failed" in str(caught.value)
    assert "certificate verify failed" in str(caught.value)


def test_insecure_skip_tls_verify(cluster: Cluster) -> None:
    """insecure-skip-tls-verify: no CA needed, no warning per request."""
    auth = ClusterAuth(server=cluster.url, insecure=True, token=TOKEN)
    with KubeClient.connect(auth) as client:
        assert client.list(JOBS, NAMESPACE)["items"] == []


def test_tls_server_name(cluster: Cluster) -> None:
    """tls-server-name: the certificate is checked for that name, not the address."""
    ca = str(cluster.certificates.ca)
    good = ClusterAuth(
        server=cluster.url, ca_file=ca, token=TOKEN, tls_server_name="kubernetes.test"
    )
    with KubeClient.connect(good) as client:
        assert client.list(JOBS, NAMESPACE)["items"] == []
    bad = ClusterAuth(server=cluster.url, ca_file=ca, token=TOKEN, tls_server_name="other.test")
    with KubeClient.connect(bad) as client, pytest.raises(KubernetesUnavailableError, match="TLS"):
        client.list(JOBS, NAMESPACE)


def test_exec_plugin_token_is_refreshed_after_a_401(cluster: Cluster, tmp_path: Path) -> None:
    """The server refuses the plugin's first token: the plugin runs again, once."""
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir)
    cluster.emulator.tokens.add("exec-token-2")
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "kube-login",
            "interactiveMode": "Never",
        }
    }
    environ = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with connect(cluster, tmp_path, user, environ=environ) as client:
        assert client.list(JOBS, NAMESPACE)["items"] == []
        assert client.list(JOBS, NAMESPACE)["items"] == []  # the new token is cached
    assert len(calls(bin_dir)) == 2


def test_exec_plugin_client_certificate(cluster: Cluster, tmp_path: Path) -> None:
    """A plugin that answers with a certificate and key: mutual TLS with them."""
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir)
    certs = cluster.certificates
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kube-login"}}
    environ = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CERT": certs.client_cert.read_text(),
        "KEY": certs.client_key.read_text(),
    }
    with connect(cluster, tmp_path, user, environ=environ) as client:
        assert client.list(JOBS, NAMESPACE)["items"] == []
        assert client.list(JOBS, NAMESPACE)["items"] == []
    assert len(calls(bin_dir)) == 1


def test_in_cluster_token_file_is_read_again_when_rotated(cluster: Cluster, tmp_path: Path) -> None:
    """The service account token file is re-read when kubelet rewrites it."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_bytes(cluster.certificates.ca.read_bytes())
    (account / "namespace").write_text(NAMESPACE)
    host, port = cluster.url.removeprefix("https://").split(":")
    auth = in_cluster(
        environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
        directory=account,
    )
    with KubeClient.connect(auth) as client:
        assert client.namespace == NAMESPACE
        assert client.list(JOBS, NAMESPACE)["items"] == []
        cluster.emulator.tokens.add("rotated")
        cluster.emulator.tokens.discard(TOKEN)
        (account / "token").write_text("rotated")
        os.utime(account / "token", (time.time() + 5, time.time() + 5))
        assert client.list(JOBS, NAMESPACE)["items"] == []


def test_a_watch_streams_events_and_closes_from_another_thread(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Events arrive as they happen; close() wakes a reader blocked on the stream."""
    with connect(cluster, tmp_path, {"token": TOKEN}) as client:
        client.create(job("a"))
        stream = client.watch(JOBS, NAMESPACE, timeout_seconds=30)
        seen: list[tuple[str, str]] = []

        def read() -> None:
            for line in stream.lines():
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"]["name"]))

        reader = threading.Thread(target=read, name="test-watch-reader")
        reader.start()
        client.create(job("b"))
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        stream.close()
        reader.join(5)
        assert not reader.is_alive()
    assert seen[:2] == [("ADDED", "a"), ("ADDED", "b")]


# -- error shapes, with `responses` -------------------------------------------------------

SERVER = "https://kube.test"


def plain_client(**options: Any) -> KubeClient:
    return KubeClient.connect(ClusterAuth(server=SERVER, token="t"), backoff=0, **options)


@responses.activate
def test_429_is_retried_then_succeeds() -> None:
    """Too many requests: retried after Retry-After, by the transport."""
    url = f"{SERVER}/apis/batch/v1/namespaces/ml/jobs"
    responses.get(url, status=429, headers={"Retry-After": "0"}, json={"reason": "TooManyRequests"})
    responses.get(url, json={"items": []})
    with plain_client() as client:
        assert client.list(JOBS, "ml") == {"items": []}
    assert len(responses.calls) == 2


@responses.activate
def test_5xx_on_a_read_is_retried_and_reported() -> None:
    """A 503 that persists ends as KubernetesUnavailableError with the server's words."""
    url = f"{SERVER}/apis/batch/v1/namespaces/ml/jobs/x"
    status = {"kind": "Status", "reason": "ServiceUnavailable", "message": "etcd is down"}
    responses.get(url, status=503, json=status)
    with plain_client(retries=2) as client, pytest.raises(KubernetesUnavailableError) as caught:
        client.get(JOBS, "ml", "x")
    assert str(caught.value) == (
        'cannot get jobs.batch "x" in namespace "ml": 503 ServiceUnavailable: etcd is down'
    )
    assert len(responses.calls) == 3


@responses.activate
def test_a_create_is_not_repeated_after_a_500() -> None:
    """A POST that got a 500 may have been done: not retried (it would meet itself: 409)."""
    url = f"{SERVER}/apis/batch/v1/namespaces/ml/jobs"
    responses.post(url, status=500, body="internal error\nmore")
    with plain_client() as client, pytest.raises(KubernetesUnavailableError) as caught:
        client.create(job())
    assert str(caught.value).endswith("500 Internal Server Error: internal error")
    assert len(responses.calls) == 1


@responses.activate
def test_401_without_a_refreshable_credential() -> None:
    """A static token refused: one request, KubernetesUnauthorizedError."""
    responses.get(
        f"{SERVER}/api/v1/namespaces/ml/pods",
        status=401,
        json={"reason": "Unauthorized", "message": "Unauthorized"},
    )
    with plain_client() as client, pytest.raises(KubernetesUnauthorizedError):
        client.list(KINDS["Pod"], "ml")
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), "did not answer within 30 s"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "did not answer within 30 s"),
        (
            requests.exceptions.ConnectionError("connection refused"),
            "is unreachable: connection refused",
        ),
    ],
)
@responses.activate
def test_transport_failures_are_unavailable(error: Exception, message: str) -> None:
    """Timeouts and refused connections become KubernetesUnavailableError."""
    responses.get(f"{SERVER}/apis/batch/v1/namespaces/ml/jobs", body=error)
    with plain_client() as client, pytest.raises(KubernetesUnavailableError) as caught:
        client.list(JOBS, "ml")
    assert str(caught.value) == f'cannot list jobs.batch in namespace "ml": {SERVER} {message}'


@responses.activate
def test_malformed_bodies() -> None:
    """A 200 that is not JSON, or JSON but not an object, is a KubernetesError."""
    url = f"{SERVER}/apis/batch/v1/namespaces/ml/jobs"
    responses.get(url, body="<html>proxy login</html>")
    responses.get(url, json=["not", "an", "object"])
    with plain_client() as client:
        for _ in range(2):
            with pytest.raises(KubernetesError) as caught:
                client.list(JOBS, "ml")
            assert str(caught.value) == (
                'cannot list jobs.batch in namespace "ml": the server answered 200 with a body '
                "that is not a JSON object"
            )
            assert type(caught.value) is KubernetesError


@responses.activate
def test_an_unknown_resource_type_is_not_found() -> None:
    """A cluster without the Kubeflow CRDs answers 404 for their path."""
    responses.post(
        f"{SERVER}/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs",
        status=404,
        json={
            "kind": "Status",
            "reason": "NotFound",
            "message": "the server could not find the requested resource",
        },
    )
    manifest = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "p", "namespace": "ml"},
    }
    with plain_client() as client, pytest.raises(KubernetesNotFoundError) as caught:
        client.create(manifest)
    assert str(caught.value) == (
        'cannot create pytorchjobs.kubeflow.org "p" in namespace "ml": 404 NotFound: '
        "the server could not find the requested resource"
    )
