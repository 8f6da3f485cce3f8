"""Reading kubeconfigs and the in-cluster service account into a `ClusterAuth`, and running
exec credential plugins (real scripts on PATH)."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from polytrack.errors import KubeconfigError
from polytrack.launch.kubeconfig import (
    ExecConfig,
    ExecCredentialPlugin,
    in_cluster,
    load_cluster,
    load_kubeconfig,
)


def write_config(path: Path, *, users: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [
            {
                "name": "dev-cluster",
                "cluster": {
                    "server": "https://dev.example:6443",
                    "certificate-authority": "ca.crt",
                },
            },
            {
                "name": "prod-cluster",
                "cluster": {
                    "server": "https://10.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(b"PEM CA").decode(),
                    "tls-server-name": "kubernetes.prod",
                },
            },
        ],
        "users": users
        if users is not None
        else [
            {"name": "alice", "user": {"token": "alice-token"}},
            {
                "name": "bob",
                "user": {
                    "client-certificate-data": base64.b64encode(b"BOB CERT").decode(),
                    "client-key-data": base64.b64encode(b"BOB KEY").decode(),
                },
            },
            {
                "name": "carol",
                "user": {"client-certificate": "carol.crt", "client-key": "/abs/carol.key"},
            },
        ],
        "contexts": [
            {
                "name": "dev",
                "context": {"cluster": "dev-cluster", "user": "alice", "namespace": "ml"},
            },
            {"name": "prod", "context": {"cluster": "prod-cluster", "user": "bob"}},
            {"name": "files", "context": {"cluster": "dev-cluster", "user": "carol"}},
        ],
    }
    document.update(extra)
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_current_context_with_a_token(tmp_path: Path) -> None:
    """current-context picks cluster, user and namespace; relative paths are the file's."""
    auth = load_kubeconfig([write_config(tmp_path / "config")])
    assert (auth.server, auth.namespace, auth.context) == ("https://dev.example:6443", "ml", "dev")
    assert auth.token == "alice-token"
    assert auth.ca_file == str(tmp_path / "ca.crt")
    assert "alice-token" not in repr(auth) and "credential=token" in repr(auth)


def test_inline_data_and_tls_server_name(tmp_path: Path) -> None:
    """`*-data` fields are decoded; a server's trailing slash goes; the namespace defaults."""
    auth = load_kubeconfig([write_config(tmp_path / "config")], context="prod")
    assert auth.server == "https://10.0.0.1:6443"
    assert (auth.ca_data, auth.client_cert_data, auth.client_key_data) == (
        b"PEM CA",
        b"BOB CERT",
        b"BOB KEY",
    )
    assert (auth.tls_server_name, auth.namespace) == ("kubernetes.prod", "default")


def test_certificate_files_relative_and_absolute(tmp_path: Path) -> None:
    """client-certificate relative to the kubeconfig; an absolute key path stays."""
    auth = load_kubeconfig([write_config(tmp_path / "config")], context="files")
    assert auth.client_cert_file == str(tmp_path / "carol.crt")
    assert auth.client_key_file == "/abs/carol.key"


def test_kubeconfig_files_merge_the_first_wins(tmp_path: Path) -> None:
    """KUBECONFIG lists files: the first to name an entry (and a current-context) wins."""
    first = tmp_path / "a.yaml"
    first.write_text(
        yaml.safe_dump(
            {
                "users": [{"name": "alice", "user": {"token": "from-first"}}],
                "current-context": "prod",
            }
        )
    )
    second = write_config(tmp_path / "b.yaml")
    environ = {"KUBECONFIG": os.pathsep.join([str(first), str(second)])}
    auth = load_cluster(environ=environ, context="dev")
    assert auth.token == "from-first"
    assert auth.source == os.pathsep.join([str(first), str(second)])
    assert load_cluster(environ=environ).context == "prod"


def test_namespace_option_overrides_the_context(tmp_path: Path) -> None:
    """`namespace=` wins over the context's namespace."""
    auth = load_cluster(kubeconfig=write_config(tmp_path / "c"), namespace="other", environ={})
    assert auth.namespace == "other"


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    """insecure-skip-tls-verify is carried to the client."""
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "x",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://h", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"username": "admin", "password": "pw"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    auth = load_kubeconfig([path])
    assert auth.insecure and (auth.username, auth.password) == ("admin", "pw")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"current-context": "nope"}, "no context 'nope' (contexts: dev, files, prod)"),
        ({"current-context": ""}, "no current-context; pass a context"),
        (
            {"contexts": [{"name": "dev", "context": {"cluster": "gone", "user": "alice"}}]},
            "context 'dev' names cluster 'gone', which is not defined",
        ),
        (
            {"contexts": [{"name": "dev", "context": {"cluster": "dev-cluster", "user": "x"}}]},
            "context 'dev' names user 'x', which is not defined",
        ),
        (
            {"clusters": [{"name": "dev-cluster", "cluster": {"server": "dev.example"}}]},
            "cluster 'dev-cluster' has no http(s) server (got 'dev.example')",
        ),
    ],
)
def test_bad_kubeconfigs_say_what_is_wrong(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    """Each mistake names the file and the entry."""
    path = write_config(tmp_path / "config", **change)
    with pytest.raises(KubeconfigError) as caught:
        load_kubeconfig([path])
    assert str(caught.value) == f"{path}: {message}"


def test_bad_user_entries(tmp_path: Path) -> None:
    """Bad base64, an auth-provider and an exec of an unknown apiVersion are errors."""
    bad_data = write_config(
        tmp_path / "a", users=[{"name": "alice", "user": {"client-key-data": "%%%"}}]
    )
    with pytest.raises(KubeconfigError, match="user 'alice' key data is not base64"):
        load_kubeconfig([bad_data])
    provider = write_config(
        tmp_path / "b", users=[{"name": "alice", "user": {"auth-provider": {"name": "gcp"}}}]
    )
    with pytest.raises(KubeconfigError, match="uses an auth-provider, which polytrack does not"):
        load_kubeconfig([provider])
    old_exec = write_config(
        tmp_path / "c",
        users=[
            {
                "name": "alice",
                "user": {
                    "exec": {"command": "x", "apiVersion": "client.authentication.k8s.io/v1alpha1"}
                },
            }
        ],
    )
    with pytest.raises(KubeconfigError, match="v1alpha1' is not supported"):
        load_kubeconfig([old_exec])
    (tmp_path / "d").write_text("clusters: [unclosed")
    with pytest.raises(KubeconfigError, match="is not valid YAML"):
        load_kubeconfig([tmp_path / "d"])
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_kubeconfig([tmp_path / "missing"])


def test_in_cluster_reads_the_service_account(tmp_path: Path) -> None:
    """In a pod: KUBERNETES_SERVICE_HOST/PORT and the service account's files."""
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("sa-token\n")
    (account / "ca.crt").write_text("CA")
    (account / "namespace").write_text("team-a\n")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    auth = load_cluster(environ={**environ, "HOME": str(tmp_path)}, service_account_dir=account)
    assert (auth.server, auth.namespace, auth.source) == (
        "https://10.96.0.1:443",
        "team-a",
        "in-cluster",
    )
    assert (auth.token_file, auth.ca_file) == (str(account / "token"), str(account / "ca.crt"))
    ipv6 = in_cluster(
        environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
        directory=account,
    )
    assert ipv6.server == "https://[fd00::1]:443"


def test_no_cluster_at_all(tmp_path: Path) -> None:
    """Neither a kubeconfig nor a pod: one message says both."""
    with pytest.raises(KubeconfigError, match=r"no kubeconfig .* and not inside a cluster"):
        load_cluster(environ={"HOME": str(tmp_path)})
    with pytest.raises(KubeconfigError, match="no service account token"):
        in_cluster(
            environ={"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"},
            directory=tmp_path,
        )


def plugin_script(directory: Path, name: str = "kube-login") -> Path:
    """An exec credential plugin on PATH: prints a token numbered by its call count, valid
    for `$EXPIRES_IN` seconds, and echoes what it was given into `calls.jsonl`."""
    directory.mkdir(exist_ok=True)
    script = directory / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, datetime\n"
        "log = os.path.join(os.path.dirname(__file__), 'calls.jsonl')\n"
        "calls = sum(1 for _ in open(log)) if os.path.exists(log) else 0\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "with open(log, 'a') as f:\n"
        "    f.write(json.dumps({'info': info, 'args': sys.argv[1:], "
        "'team': os.environ.get('TEAM')}) + '\\n')\n"
        "if os.environ.get('FAIL'):\n"
        "    print('login expired, run kube-login --interactive', file=sys.stderr)\n"
        "    sys.exit(3)\n"
        "expires = datetime.datetime.now(datetime.timezone.utc) + "
        "datetime.timedelta(seconds=float(os.environ.get('EXPIRES_IN', '3600')))\n"
        "status = {'token': f'exec-token-{calls + 1}', "
        "'expirationTimestamp': expires.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        "if os.environ.get('CERT'):\n"
        "    status = {'clientCertificateData': os.environ['CERT'],\n"
        "              'clientKeyData': os.environ['KEY']}\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential', "
        "'status': status}))\n"
    )
    script.chmod(0o755)
    return script


def calls(directory: Path) -> list[dict[str, Any]]:
    path = directory / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def exec_config(**changes: Any) -> ExecConfig:
    values: dict[str, Any] = {
        "command": "kube-login",
        "api_version": "client.authentication.k8s.io/v1",
        "args": ("get-token", "--cluster=dev"),
        "env": (("TEAM", "vision"),),
    }
    values.update(changes)
    return ExecConfig(**values)


def test_exec_plugin_gives_a_token_and_caches_it(tmp_path: Path) -> None:
    """The plugin runs with KUBERNETES_EXEC_INFO, its args and env; the token is cached."""
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir)
    environ = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    plugin = ExecCredentialPlugin(
        exec_config(provide_cluster_info=True), cluster={"server": "https://h"}, environ=environ
    )
    first = plugin.credential()
    assert first.token == "exec-token-1"
    assert first.expires_at is not None and first.expires_at > time.time() + 3000
    assert plugin.credential().token == "exec-token-1"  # cached
    (call,) = calls(bin_dir)
    assert call["args"] == ["get-token", "--cluster=dev"] and call["team"] == "vision"
    assert call["info"] == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": "https://h"}},
    }
    plugin.invalidate()
    assert plugin.credential().token == "exec-token-2"


def test_exec_plugin_runs_again_once_the_token_expires(tmp_path: Path) -> None:
    """A token about to expire is replaced before it is used."""
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir)
    environ = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "EXPIRES_IN": "5"}
    plugin = ExecCredentialPlugin(exec_config(), environ=environ)
    assert plugin.credential().token == "exec-token-1"
    assert plugin.credential().token == "exec-token-2"  # within the margin: expired
    assert len(calls(bin_dir)) == 2


def test_exec_plugin_v1beta1_and_client_certificates(tmp_path: Path) -> None:
    """v1beta1 works the same; a plugin may answer with a certificate and key."""
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir)
    environ = {"PATH": str(bin_dir), "CERT": "CERT PEM", "KEY": "KEY PEM"}
    plugin = ExecCredentialPlugin(
        exec_config(api_version="client.authentication.k8s.io/v1beta1"), environ=environ
    )
    credential = plugin.credential()
    assert (credential.client_cert_data, credential.client_key_data) == (b"CERT PEM", b"KEY PEM")
    assert credential.token is None and credential.expires_at is None


def test_exec_plugin_failures_say_what_happened(tmp_path: Path) -> None:
    """A missing plugin gives its install hint; a failing one its last stderr line."""
    missing = ExecCredentialPlugin(
        exec_config(command="no-such-plugin", install_hint="install it with brew\n"),
        environ={"PATH": str(tmp_path)},
    )
    with pytest.raises(
        KubeconfigError, match=r"^exec plugin no-such-plugin not found: install it with brew$"
    ):
        missing.credential()
    bin_dir = tmp_path / "bin"
    plugin_script(bin_dir)
    failing = ExecCredentialPlugin(exec_config(), environ={"PATH": str(bin_dir), "FAIL": "1"})
    with pytest.raises(
        KubeconfigError,
        match=(
            r"^exec plugin kube-login exited with 3: "
            r"login expired, run kube-login --interactive$"
        ),
    ):
        failing.credential()
    always = ExecCredentialPlugin(exec_config(interactive_mode="Always"), environ={})
    with pytest.raises(KubeconfigError, match="interactiveMode Always needs a terminal"):
        always.credential()


def test_exec_plugin_output_is_checked(tmp_path: Path) -> None:
    """Output that is not an ExecCredential of the configured apiVersion is refused."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {
        "not-json": "print('hello')",
        "wrong-version": 'print(\'{"apiVersion": "client.authentication.k8s.io/v1beta1", '
        '"kind": "ExecCredential", "status": {"token": "t"}}\')',
        "no-token": 'print(\'{"apiVersion": "client.authentication.k8s.io/v1", '
        '"kind": "ExecCredential", "status": {}}\')',
        "bad-time": 'print(\'{"apiVersion": "client.authentication.k8s.io/v1", '
        '"kind": "ExecCredential", "status": {"token": "t", '
        '"expirationTimestamp": "tomorrow"}}\')',
    }.items():
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{body}\n")
        script.chmod(0o755)
    expected = {
        "not-json": "printed something that is not JSON",
        "wrong-version": "printed an ExecCredential of 'client.authentication.k8s.io/v1beta1', "
        "not 'client.authentication.k8s.io/v1' as the kubeconfig says",
        "no-token": "printed neither a token nor a client certificate and key in status",
        "bad-time": "printed an expirationTimestamp that is not RFC 3339: 'tomorrow'",
    }
    for name, message in expected.items():
        plugin = ExecCredentialPlugin(exec_config(command=name), environ={"PATH": str(bin_dir)})
        with pytest.raises(KubeconfigError) as caught:
            plugin.credential()
        assert str(caught.value) == f"exec plugin {name} {message}"


def test_exec_section_of_a_kubeconfig(tmp_path: Path) -> None:
    """A kubeconfig's exec section becomes an ExecConfig with its env and mode."""
    path = write_config(
        tmp_path / "config",
        users=[
            {
                "name": "alice",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "kube-login",
                        "args": ["get-token"],
                        "env": [{"name": "TEAM", "value": "vision"}],
                        "provideClusterInfo": True,
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    )
    auth = load_kubeconfig([path])
    assert auth.exec == ExecConfig(
        command="kube-login",
        api_version="client.authentication.k8s.io/v1",
        args=("get-token",),
        env=(("TEAM", "vision"),),
        provide_cluster_info=True,
        interactive_mode="Never",
    )
