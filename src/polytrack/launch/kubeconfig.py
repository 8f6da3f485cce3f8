"""Which cluster to talk to, and how to authenticate: kubeconfig files and in-cluster.

    auth = load_cluster(context="prod", environ=os.environ)   # kubeconfig, else in-cluster
    auth.server, auth.namespace                                 # "https://...", "ml"

`load_kubeconfig` reads `KUBECONFIG` (a list of files, merged as kubectl does: the first
file to define a name wins) or `~/.kube/config`, and resolves one context into a
`ClusterAuth`: the server, its CA (file or inline data, or `insecure-skip-tls-verify`),
and the user's credential: a bearer token (inline or `tokenFile`), a client certificate
and key (files or inline data), basic auth, or an exec credential plugin. Relative paths
are relative to the file that names them. `in_cluster` reads the pod's service account
(`/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}` and
`KUBERNETES_SERVICE_HOST`/`_PORT`).

An exec plugin (`users[].user.exec`) runs as a subprocess with `KUBERNETES_EXEC_INFO` set,
following the `client.authentication.k8s.io/v1` (and `v1beta1`) ExecCredential protocol;
`ExecCredentialPlugin` caches what it prints until its `expirationTimestamp`. Nothing is
read or run at import.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs
import yaml
from attrs import frozen

from polytrack.errors import KubeconfigError

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClusterAuth",
    "ExecConfig",
    "ExecCredential",
    "ExecCredentialPlugin",
    "in_cluster",
    "kubeconfig_paths",
    "load_cluster",
    "load_kubeconfig",
]

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_EXEC_VERSIONS: Final = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)
# Refresh an exec credential this long before it expires, as client-go does not (it
# waits for a 401); a request in flight must not carry a token that expires under it.
_EXPIRY_MARGIN: Final = 10.0


@frozen
class ExecConfig:
    """A kubeconfig `exec` credential plugin: what to run, and how."""

    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    provide_cluster_info: bool = False
    interactive_mode: str = "IfAvailable"
    install_hint: str | None = None


@frozen(repr=False)
class ClusterAuth:
    """One cluster and one user's credential: everything needed to open a session.

    Inline data (`*_data`) is kept as bytes; the client writes it to private files,
    because `requests` takes certificates by path only. `repr` hides the secrets.
    """

    server: str
    namespace: str = "default"
    context: str | None = None
    source: str = ""  # the kubeconfig file(s), or "in-cluster"
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    client_cert_file: str | None = None
    client_cert_data: bytes | None = None
    client_key_file: str | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    exec: ExecConfig | None = None
    proxy_url: str | None = None

    def __repr__(self) -> str:
        kinds = [
            kind
            for kind, present in (
                ("token", self.token or self.token_file),
                ("client certificate", self.client_cert_file or self.client_cert_data),
                ("basic", self.username),
                ("exec", self.exec),
            )
            if present
        ]
        return (
            f"ClusterAuth(server={self.server!r}, namespace={self.namespace!r}, "
            f"context={self.context!r}, credential={'+'.join(kinds) or 'none'})"
        )


def kubeconfig_paths(environ: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files kubectl would read: `KUBECONFIG` (os.pathsep-separated), else
    `~/.kube/config`."""
    raw = environ.get("KUBECONFIG")
    if raw:
        return [Path(part).expanduser() for part in raw.split(os.pathsep) if part]
    home = environ.get("HOME") or str(Path.home())
    return [Path(home) / ".kube" / "config"]


def load_cluster(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ClusterAuth:
    """The cluster to use, as kubectl would pick it: `kubeconfig` if given, else the
    `KUBECONFIG` files or `~/.kube/config` where one exists, else the pod's service
    account when running inside a cluster.

    Args:
        kubeconfig: a kubeconfig file, instead of `KUBECONFIG`.
        context: the context to use; default the file's `current-context`.
        namespace: overrides the context's namespace.
        environ: read instead of `os.environ`.
        service_account_dir: where the in-cluster credential lives (for tests).

    Raises:
        KubeconfigError: no kubeconfig and not in a cluster, or the chosen one is unusable.

    Example:
        >>> load_cluster(context="kind-dev").server
        'https://127.0.0.1:40123'
    """
    env = os.environ if environ is None else environ
    if kubeconfig is not None:
        paths = [Path(kubeconfig).expanduser()]
    else:
        paths = [path for path in kubeconfig_paths(env) if path.is_file()]
    if paths or context is not None:
        auth = load_kubeconfig(paths, context=context, environ=env)
    elif env.get("KUBERNETES_SERVICE_HOST"):
        auth = in_cluster(environ=env, directory=service_account_dir)
    else:
        raise KubeconfigError(
            "no cluster to talk to: no kubeconfig (KUBECONFIG, ~/.kube/config) and not "
            "inside a cluster (KUBERNETES_SERVICE_HOST unset)"
        )
    if namespace is not None:
        auth = attrs.evolve(auth, namespace=namespace)
    return auth


def load_kubeconfig(
    paths: Sequence[str | os.PathLike[str]],
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClusterAuth:
    """Resolve `context` (default: `current-context`) of the merged kubeconfig `paths`.

    Raises:
        KubeconfigError: a file cannot be read or parsed, the context, its cluster or its
            user is missing, or a field is malformed; the message names file and entry.
    """
    files = [Path(path) for path in paths]
    if not files:
        raise KubeconfigError("no kubeconfig file given")
    merged: dict[str, dict[str, tuple[Path, dict[str, Any]]]] = {
        "clusters": {},
        "users": {},
        "contexts": {},
    }
    current: str | None = None
    for path in files:
        document = _read_yaml(path)
        current = current or document.get("current-context") or None
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for index, entry in enumerate(document.get(section) or ()):
                if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                    raise KubeconfigError(f"{path}: {section}[{index}] has no name")
                body = entry.get(inner) or {}
                if not isinstance(body, Mapping):
                    raise KubeconfigError(f"{path}: {section}[{index}].{inner} is not a mapping")
                merged[section].setdefault(entry["name"], (path, dict(body)))
    source = os.pathsep.join(str(path) for path in files)
    name = context or current
    if not name:
        raise KubeconfigError(f"{source}: no current-context; pass a context")
    if name not in merged["contexts"]:
        known = ", ".join(sorted(merged["contexts"])) or "none"
        raise KubeconfigError(f"{source}: no context {name!r} (contexts: {known})")
    context_path, body = merged["contexts"][name]
    cluster_name, user_name = body.get("cluster"), body.get("user")
    if cluster_name not in merged["clusters"]:
        raise KubeconfigError(
            f"{context_path}: context {name!r} names cluster {cluster_name!r}, which is not defined"
        )
    cluster_path, cluster = merged["clusters"][cluster_name]
    if user_name is not None and user_name not in merged["users"]:
        raise KubeconfigError(
            f"{context_path}: context {name!r} names user {user_name!r}, which is not defined"
        )
    user_path, user = merged["users"][user_name] if user_name is not None else (cluster_path, {})
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise KubeconfigError(
            f"{cluster_path}: cluster {cluster_name!r} has no http(s) server (got {server!r})"
        )
    if "auth-provider" in user:
        raise KubeconfigError(
            f"{user_path}: user {user_name!r} uses an auth-provider, which polytrack does not "
            "support (it was removed from kubectl in 1.26); use an exec plugin"
        )

    def where(field: str) -> str:
        return f"{user_path}: user {user_name!r} {field}"

    return ClusterAuth(
        server=server.rstrip("/"),
        namespace=str(body.get("namespace") or "default"),
        context=name,
        source=source,
        ca_file=_file(cluster_path, cluster.get("certificate-authority")),
        ca_data=_data(cluster.get("certificate-authority-data"), f"{cluster_path}: cluster ca"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"),
        client_cert_file=_file(user_path, user.get("client-certificate")),
        client_cert_data=_data(user.get("client-certificate-data"), where("certificate")),
        client_key_file=_file(user_path, user.get("client-key")),
        client_key_data=_data(user.get("client-key-data"), where("key")),
        token=user.get("token"),
        token_file=_file(user_path, user.get("tokenFile")),
        username=user.get("username"),
        password=user.get("password"),
        exec=_exec(user.get("exec"), where("exec")) if user.get("exec") else None,
    )


def in_cluster(
    *, environ: Mapping[str, str] | None = None, directory: Path = SERVICE_ACCOUNT_DIR
) -> ClusterAuth:
    """The credential of the pod this process runs in: its service account's token (read
    again whenever the file changes: kubelet rotates it), CA and namespace.

    Raises:
        KubeconfigError: not in a cluster, or the service account files are missing.
    """
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError(
            "not inside a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT unset"
        )
    token = directory / "token"
    if not token.is_file():
        raise KubeconfigError(f"in-cluster: no service account token at {token}")
    ca = directory / "ca.crt"
    try:
        namespace = (directory / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return ClusterAuth(
        server=f"https://{host}:{port}",
        namespace=namespace,
        context=None,
        source="in-cluster",
        ca_file=str(ca) if ca.is_file() else None,
        token_file=str(token),
    )


@frozen(repr=False)
class ExecCredential:
    """What an exec plugin printed: a token, or a client certificate and key."""

    token: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    expires_at: float | None = None  # unix time; None: until the server says 401

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at - _EXPIRY_MARGIN


class ExecCredentialPlugin:
    """Runs a kubeconfig's exec plugin and caches its credential until it expires.

    Thread-safe: one plugin process at a time, whoever asks. `invalidate()` (after a 401)
    makes the next `credential()` run the plugin again.
    """

    def __init__(
        self,
        config: ExecConfig,
        *,
        cluster: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._config = config
        self._cluster = cluster
        self._environ = dict(os.environ if environ is None else environ)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cached: ExecCredential | None = None

    def credential(self) -> ExecCredential:
        """The cached credential, or a fresh one from the plugin.

        Raises:
            KubeconfigError: the plugin is missing, fails, times out or prints something
                that is not an ExecCredential of its apiVersion.
        """
        with self._lock:
            if self._cached is None or not self._cached.valid(time.time()):
                self._cached = self._run()
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _run(self) -> ExecCredential:
        config = self._config
        if config.interactive_mode == "Always":
            raise KubeconfigError(
                f"exec plugin {config.command}: interactiveMode Always needs a terminal, "
                "and polytrack runs plugins without one"
            )
        spec: dict[str, Any] = {"interactive": False}
        if config.provide_cluster_info and self._cluster is not None:
            spec["cluster"] = dict(self._cluster)
        info = {"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**self._environ, **dict(config.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            done = subprocess.run(
                [config.command, *config.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except FileNotFoundError:
            hint = f": {config.install_hint.strip()}" if config.install_hint else ""
            raise KubeconfigError(f"exec plugin {config.command} not found{hint}") from None
        except subprocess.TimeoutExpired:
            raise KubeconfigError(
                f"exec plugin {config.command} gave no credential within {self._timeout:g} s"
            ) from None
        except OSError as exc:
            raise KubeconfigError(f"exec plugin {config.command} cannot run: {exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()
            last = f": {stderr[-1]}" if stderr else ""
            raise KubeconfigError(
                f"exec plugin {config.command} exited with {done.returncode}{last}"
            )
        return _parse_exec_output(done.stdout, config)


def _parse_exec_output(stdout: bytes, config: ExecConfig) -> ExecCredential:
    what = f"exec plugin {config.command}"
    try:
        document = json.loads(stdout)
    except ValueError:
        raise KubeconfigError(f"{what} printed something that is not JSON") from None
    if not isinstance(document, Mapping) or document.get("kind") != "ExecCredential":
        raise KubeconfigError(f"{what} printed no ExecCredential")
    if document.get("apiVersion") != config.api_version:
        raise KubeconfigError(
            f"{what} printed an ExecCredential of {document.get('apiVersion')!r}, "
            f"not {config.api_version!r} as the kubeconfig says"
        )
    status = document.get("status")
    if not isinstance(status, Mapping):
        raise KubeconfigError(f"{what} printed an ExecCredential without status")
    token = status.get("token")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if not token and not (cert and key):
        raise KubeconfigError(
            f"{what} printed neither a token nor a client certificate and key in status"
        )
    expires_at = None
    if status.get("expirationTimestamp"):
        stamp = str(status["expirationTimestamp"])
        try:
            expires_at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise KubeconfigError(
                f"{what} printed an expirationTimestamp that is not RFC 3339: {stamp!r}"
            ) from None
    return ExecCredential(
        token=token or None,
        client_cert_data=cert.encode() if cert else None,
        client_key_data=key.encode() if key else None,
        expires_at=expires_at,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    return document


def _file(base: Path, value: Any) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base.parent / path)


def _data(value: Any, where: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise KubeconfigError(f"{where} data is not base64") from None


def _exec(value: Any, where: str) -> ExecConfig:
    if not isinstance(value, Mapping) or not isinstance(value.get("command"), str):
        raise KubeconfigError(f"{where} has no command")
    api_version = value.get("apiVersion")
    if api_version not in _EXEC_VERSIONS:
        raise KubeconfigError(
            f"{where}: apiVersion {api_version!r} is not supported "
            f"(supported: {', '.join(_EXEC_VERSIONS)})"
        )
    env = []
    for item in value.get("env") or ():
        if not isinstance(item, Mapping) or "name" not in item:
            raise KubeconfigError(f"{where}: env entries need a name and a value")
        env.append((str(item["name"]), str(item.get("value", ""))))
    return ExecConfig(
        command=value["command"],
        api_version=api_version,
        args=tuple(str(arg) for arg in value.get("args") or ()),
        env=tuple(env),
        provide_cluster_info=bool(value.get("provideClusterInfo", False)),
        interactive_mode=str(value.get("interactiveMode") or "IfAvailable"),
        install_hint=value.get("installHint"),
    )
