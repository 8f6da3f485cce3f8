"""Fixtures of the launch tests: TLS material, the Kubernetes emulator on loopback, and
its job controller. The emulator needs kmock (Python 3.11+) and cryptography (the
`kube-test` extra); tests that use it are skipped where they are missing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from launch_helpers import NAMESPACE, TOKEN

if TYPE_CHECKING:
    from kube import Certificates, Cluster, Controller


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    pytest.importorskip("cryptography")
    from kube import Certificates

    return Certificates.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def cluster(certificates: Certificates) -> Iterator[Cluster]:
    """The emulator over HTTPS; bearer token `TOKEN` or a client certificate of the CA."""
    pytest.importorskip("kmock")
    from kube import Cluster, Emulator

    running = Cluster(Emulator(tokens={TOKEN}, accept_client_certs=True), certificates).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def controller(cluster: Cluster) -> Iterator[Controller]:
    """Runs the jobs created in namespace `ml` (see `kube.Controller`)."""
    from kube import Controller

    running = Controller(cluster, namespace=NAMESPACE).start()
    try:
        yield running
    finally:
        running.stop()
    assert not running.errors, running.errors


@pytest.fixture
def kubeconfig_path(cluster: Cluster, tmp_path: Path) -> Path:
    """A kubeconfig for the emulator: its CA, the token, namespace `ml`."""
    from kube import kubeconfig

    return kubeconfig(tmp_path / "kubeconfig", cluster, user={"token": TOKEN}, namespace=NAMESPACE)


@pytest.fixture
def environ(kubeconfig_path: Path, tmp_path: Path) -> dict[str, str]:
    """The environment the command line runs in: that kubeconfig, a private store."""
    return {
        "KUBECONFIG": str(kubeconfig_path),
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
        "POLYTRACK_HOME": str(tmp_path / "home"),
        "POLYTRACK_CACHE_DIR": os.environ["POLYTRACK_CACHE_DIR"],
        "POLYTRACK_HEARTBEAT_INTERVAL": "0.5",
    }
