"""A small client of the Kubernetes REST API, on one `requests.Session`.

    with KubeClient.connect(load_cluster()) as client:
        client.create(manifest)                       # POST, 201
        for event in client.watch(KINDS["Job"], "ml", field_selector="metadata.name=x"):
            ...                                       # {"type": "MODIFIED", "object": {...}}

The session owns TLS (the cluster's CA, a client certificate, or no verification when
the kubeconfig says `insecure-skip-tls-verify`) and the credential: a bearer token (read
again from its file when the file changes: kubelet rotates service account tokens), basic
auth, or an exec plugin's token or certificate, fetched again once after a 401. Retries
belong to the transport (`urllib3.Retry`): connection failures, and 429/5xx answers to
reads and deletes, back off and retry; a create is retried only on 429, which the server
sends before it acts.

Every HTTP and transport error is translated here, once, in `_request`, into the
`KubernetesError` tree of `polytrack.errors`, whose message names the request and quotes
the server's `Status` message:

    cannot create jobs.batch "train-a1b2c3d4" in namespace "ml": 409 AlreadyExists:
    jobs.batch "train-a1b2c3d4" already exists
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from polytrack.errors import (
    KubeconfigError,
    KubernetesConflictError,
    KubernetesError,
    KubernetesForbiddenError,
    KubernetesNotFoundError,
    KubernetesUnauthorizedError,
    KubernetesUnavailableError,
)
from polytrack.launch.kubeconfig import ClusterAuth, ExecCredential, ExecCredentialPlugin
from polytrack.launch.resources import ResourceType, ref_of, resource_type

__all__ = ["KubeClient", "Stream"]

_ERRORS: Final[dict[int, type[KubernetesError]]] = {
    401: KubernetesUnauthorizedError,
    403: KubernetesForbiddenError,
    404: KubernetesNotFoundError,
    409: KubernetesConflictError,
    429: KubernetesUnavailableError,
}
_VERBS: Final = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}


class _Retry(Retry):
    """`Retry` that repeats a POST only on 429: a create that timed out or got a 5xx may
    have been done, and repeating it would answer 409 for the caller's own object."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST" and status_code != 429:
            return False
        return bool(super().is_retry(method, status_code, has_retry_after))


class _Adapter(HTTPAdapter):
    """Checks the server certificate against `tls-server-name` where the kubeconfig gives
    one (a server reached by IP, its certificate issued for a name)."""

    def __init__(self, *, server_hostname: str | None, **kwargs: Any) -> None:
        self._server_hostname = server_hostname
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._server_hostname:
            kwargs["server_hostname"] = self._server_hostname
            kwargs["assert_hostname"] = self._server_hostname
        super().init_poolmanager(*args, **kwargs)


class _Credential(requests.auth.AuthBase):
    """Puts the current bearer token on each request; knows how to get a fresh one."""

    def __init__(
        self,
        *,
        token: str | None,
        token_file: str | None,
        plugin: ExecCredentialPlugin | None,
        on_certificate: Any,
    ) -> None:
        self._token = token
        self._token_file = token_file
        self._plugin = plugin
        self._on_certificate = on_certificate
        self._lock = threading.Lock()
        self._file_token: tuple[float, str] | None = None
        self._certificate: ExecCredential | None = None  # the one whose files are in use

    @property
    def refreshable(self) -> bool:
        return self._plugin is not None or self._token_file is not None

    def current(self) -> str | None:
        if self._plugin is not None:
            credential = self._plugin.credential()
            if credential.client_cert_data and credential.client_key_data:
                with self._lock:
                    fresh = credential is not self._certificate
                    self._certificate = credential
                if fresh:  # written once per credential, not once per request
                    self._on_certificate(credential.client_cert_data, credential.client_key_data)
            if credential.token:
                return credential.token
        if self._token_file is not None:
            return self._read_file()
        return self._token

    def invalidate(self) -> None:
        if self._plugin is not None:
            self._plugin.invalidate()
        with self._lock:
            self._file_token = None

    def _read_file(self) -> str:
        assert self._token_file is not None
        try:
            mtime = os.stat(self._token_file).st_mtime
            with self._lock:
                if self._file_token is not None and self._file_token[0] == mtime:
                    return self._file_token[1]
            token = Path(self._token_file).read_text().strip()
        except OSError as exc:
            raise KubeconfigError(
                f"cannot read the token file {self._token_file}: {exc.strerror or exc}"
            ) from exc
        with self._lock:
            self._file_token = (mtime, token)
        return token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        return request


class Stream:
    """A streaming answer (a watch, a log): iterate its lines; `close()` from any thread.

    `close()` shuts the socket down, which wakes a reader blocked on it; the reader ends
    (its loop sees the end or an error) and releases the response itself.
    """

    def __init__(self, response: requests.Response, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def lines(self) -> Iterator[bytes]:
        """The answer's lines, without their line ends, as they arrive.

        Raises:
            KubernetesUnavailableError: the connection broke (not after `close()`: the
                lines just end then).
        """
        try:
            # chunk_size=None reads each HTTP chunk as the server flushes it; a size
            # would wait for that many bytes, holding back a watch event or a log line.
            yield from self._response.iter_lines(chunk_size=None)
        except (requests.RequestException, OSError, ValueError) as exc:
            if not self.closed:
                raise KubernetesUnavailableError(f"{self._what}: the stream broke: {exc}") from exc
        finally:
            self._response.close()

    def close(self) -> None:
        self._closed.set()
        connection = getattr(self._response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._response.close()


class KubeClient:
    """The Kubernetes REST API of one cluster, as one user. Create with `connect()`.

    Thread-safe: `requests.Session` shares its connection pool between threads, and the
    credential refresh holds a lock.
    """

    def __init__(
        self,
        session: requests.Session,
        server: str,
        *,
        namespace: str = "default",
        credential: _Credential | None = None,
        private_dir: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.server = server.rstrip("/")
        self.namespace = namespace
        self._credential = credential
        self._private_dir = private_dir
        self._timeout = timeout
        self._closed = False

    @classmethod
    def connect(
        cls,
        auth: ClusterAuth,
        *,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> KubeClient:
        """A client for `auth`'s cluster. Opens no connection yet.

        Args:
            auth: from `load_cluster()`.
            environ: the environment an exec plugin runs in; default `os.environ`.
            timeout: seconds to wait for a connection and for each answer.
            retries: how often a failed connection or a 429/5xx is retried.
            backoff: the first retry's delay in seconds; each next one doubles.

        Raises:
            KubeconfigError: a certificate or key cannot be written or read.
        """
        session = requests.Session()
        private: Path | None = None

        def write(name: str, data: bytes) -> str:
            nonlocal private
            if private is None:
                private = Path(tempfile.mkdtemp(prefix="polytrack-kube-"))  # mode 0700
            path = private / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            return str(path)

        try:
            if auth.insecure:
                session.verify = False
                # Asked for in the kubeconfig; kubectl does not warn on every request either.
                warnings.filterwarnings("ignore", category=InsecureRequestWarning)
            elif auth.ca_data is not None:
                session.verify = write("ca.crt", auth.ca_data)
            elif auth.ca_file is not None:
                session.verify = auth.ca_file
            if auth.client_cert_data is not None or auth.client_cert_file is not None:
                cert = auth.client_cert_file or write("client.crt", auth.client_cert_data or b"")
                key = auth.client_key_file or (
                    write("client.key", auth.client_key_data) if auth.client_key_data else None
                )
                if key is None:
                    raise KubeconfigError(f"{auth.source}: a client certificate without its key")
                session.cert = (cert, key)
            if auth.username is not None:
                session.auth = (auth.username, auth.password or "")
            plugin = None
            if auth.exec is not None:
                cluster = {
                    "server": auth.server,
                    "insecure-skip-tls-verify": auth.insecure,
                }
                if auth.tls_server_name:
                    cluster["tls-server-name"] = auth.tls_server_name
                plugin = ExecCredentialPlugin(auth.exec, cluster=cluster, environ=environ)

            def use_certificate(cert: bytes, key: bytes) -> None:
                session.cert = (write("exec.crt", cert), write("exec.key", key))

            credential = None
            if plugin is not None or auth.token or auth.token_file:
                credential = _Credential(
                    token=auth.token,
                    token_file=auth.token_file,
                    plugin=plugin,
                    on_certificate=use_certificate,
                )
                session.auth = credential
            if auth.proxy_url:
                session.proxies = {"https": auth.proxy_url, "http": auth.proxy_url}
            retry = _Retry(
                total=retries,
                connect=retries,
                read=0,
                other=0,  # a TLS failure (a wrong CA) stays one however often it is tried
                status=retries,
                status_forcelist=(429, 500, 502, 503, 504),
                allowed_methods=frozenset({"GET", "DELETE", "POST"}),
                backoff_factor=backoff,
                respect_retry_after_header=True,
                raise_on_status=False,
            )
            session.mount(
                "https://", _Adapter(server_hostname=auth.tls_server_name, max_retries=retry)
            )
            session.mount("http://", _Adapter(server_hostname=None, max_retries=retry))
        except OSError as exc:
            session.close()
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            raise KubeconfigError(f"cannot prepare the credentials: {exc}") from exc
        except BaseException:
            session.close()
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            raise
        return cls(
            session,
            auth.server,
            namespace=auth.namespace,
            credential=credential,
            private_dir=private,
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the connections and delete the private copies of certificates; idempotent."""
        if self._closed:
            return
        self._closed = True
        # urllib3 2's PoolManager.clear() forgets its pools without closing them (they
        # close when collected); a traceback that keeps a response keeps its pool, and
        # the pool its sockets open. Close them now.
        for adapter in self.session.adapters.values():
            manager = getattr(adapter, "poolmanager", None)
            if manager is None:
                continue
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
        self.session.close()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- verbs ------------------------------------------------------------------------------

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the object `manifest` describes (in its `metadata.namespace`).

        Raises:
            KubernetesConflictError: an object of that name exists. Others of the
                `KubernetesError` tree for other refusals.
        """
        rt, namespace, name = ref_of(manifest)
        return self._json("POST", rt, namespace, name, path=rt.path(namespace), body=manifest)

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """The object `name`. Raises `KubernetesNotFoundError` if there is none."""
        return self._json("GET", rt, namespace, name, path=rt.path(namespace, name))

    def list(
        self,
        rt: ResourceType,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        """A list of objects (`items`, and `metadata.resourceVersion` to watch from)."""
        params = _selectors(label_selector, field_selector)
        return self._json("GET", rt, namespace, None, path=rt.path(namespace), params=params)

    def patch(
        self, rt: ResourceType, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7386) to object `name`."""
        return self._json(
            "PATCH",
            rt,
            namespace,
            name,
            path=rt.path(namespace, name),
            body=body,
            content_type="application/merge-patch+json",
        )

    def delete(
        self, rt: ResourceType, namespace: str, name: str, *, propagation: str = "Foreground"
    ) -> dict[str, Any]:
        """Delete object `name`; `Foreground` deletes its pods first, then the object.

        Raises:
            KubernetesNotFoundError: it does not exist (any more).
        """
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        return self._json("DELETE", rt, namespace, name, path=rt.path(namespace, name), body=body)

    def watch(
        self,
        rt: ResourceType,
        namespace: str,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
    ) -> Stream:
        """Open a watch of a collection: each line of the stream is one JSON event,
        `{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}`.

        The server ends the stream after `timeout_seconds`; watch again from the last
        `resourceVersion` seen. An ERROR event with code 410 means that version is too
        old: list again.
        """
        params = _selectors(label_selector, field_selector)
        params.update(watch="true", allowWatchBookmarks="true", timeoutSeconds=str(timeout_seconds))
        if resource_version:
            params["resourceVersion"] = resource_version
        response = self._request(
            "GET",
            rt,
            namespace,
            None,
            path=rt.path(namespace),
            params=params,
            stream=True,
            # The server closes the watch after timeout_seconds; this only catches a
            # connection that died without a word.
            read_timeout=timeout_seconds + self._timeout,
            verb="watch",
        )
        return Stream(response, f"watch {rt.display} in namespace {namespace!r}")

    def logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        follow: bool = False,
        since_time: str | None = None,
        timestamps: bool = True,
    ) -> Stream:
        """A pod's log: each line prefixed with its RFC 3339 time when `timestamps`.

        With `follow`, the stream stays open until the container ends (or `close()`).
        """
        params: dict[str, str] = {}
        if container:
            params["container"] = container
        if follow:
            params["follow"] = "true"
        if timestamps:
            params["timestamps"] = "true"
        if since_time:
            params["sinceTime"] = since_time
        rt = resource_type("Pod")
        response = self._request(
            "GET",
            rt,
            namespace,
            pod,
            path=rt.path(namespace, pod, "log"),
            params=params,
            stream=True,
            read_timeout=None if follow else self._timeout,
            verb="get logs of",
        )
        return Stream(response, f"logs of pod {pod!r}")

    # -- the boundary -----------------------------------------------------------------------

    def _json(
        self,
        method: str,
        rt: ResourceType,
        namespace: str,
        name: str | None,
        *,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        response = self._request(
            method,
            rt,
            namespace,
            name,
            path=path,
            params=params,
            body=body,
            content_type=content_type,
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise KubernetesError(
                f"{_what(method, rt, namespace, name)}: the server answered "
                f"{response.status_code} with a body that is not a JSON object",
                status=response.status_code,
            )
        return data

    def _request(
        self,
        method: str,
        rt: ResourceType,
        namespace: str,
        name: str | None,
        *,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        read_timeout: float | None = None,
        verb: str | None = None,
    ) -> requests.Response:
        """Send one request; every transport and HTTP error becomes a `KubernetesError`."""
        what = _what(method, rt, namespace, name, verb)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        timeout = (self._timeout, read_timeout if stream else self._timeout)
        for attempt in (1, 2):
            try:
                response = self.session.request(
                    method,
                    self.server + path,
                    params=params,
                    data=data,
                    headers=headers,
                    stream=stream,
                    timeout=timeout,
                    # Per request: REQUESTS_CA_BUNDLE would otherwise override the
                    # session's CA (https://github.com/psf/requests/issues/3829).
                    verify=self.session.verify,
                )
            except requests.exceptions.SSLError as exc:
                raise KubernetesUnavailableError(
                    f"{what}: TLS with {self.server} failed: {_root(exc)}"
                ) from exc
            except requests.Timeout as exc:
                raise KubernetesUnavailableError(
                    f"{what}: {self.server} did not answer within {self._timeout:g} s"
                ) from exc
            except requests.RequestException as exc:
                raise KubernetesUnavailableError(
                    f"{what}: {self.server} is unreachable: {_root(exc)}"
                ) from exc
            if response.status_code == 401 and attempt == 1 and self._refreshable():
                _discard(response)
                assert self._credential is not None
                self._credential.invalidate()  # an expired token: get a new one, once
                continue
            break
        if response.status_code < 400:
            return response
        try:
            reason, message = _status(response)
        finally:
            _discard(response)
        error = _ERRORS.get(response.status_code)
        if error is None:
            error = KubernetesUnavailableError if response.status_code >= 500 else KubernetesError
        raise error(
            f"{what}: {response.status_code} {reason}: {message}",
            status=response.status_code,
            reason=reason,
        )

    def _refreshable(self) -> bool:
        return self._credential is not None and self._credential.refreshable


def _discard(response: requests.Response) -> None:
    """Close an answer we are done with, and its connection: an error's traceback keeps
    the response alive, and with it a socket the pool no longer owns."""
    with contextlib.suppress(Exception):
        response.raw.close()
    response.close()


def _what(
    method: str, rt: ResourceType, namespace: str, name: str | None, verb: str | None = None
) -> str:
    """How a request reads in a message: `cannot create jobs.batch "x" in namespace "ml"`."""
    verb = verb or (_VERBS.get(method, method.lower()) if name else "list")
    target = f'{rt.display} "{name}"' if name else rt.display
    return f'cannot {verb} {target} in namespace "{namespace}"'


def _status(response: requests.Response) -> tuple[str, str]:
    """The reason and message of a failed answer: from its `Status` body if it has one."""
    fallback = response.reason or "error"
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return fallback, (text[0][:300] if text else "no message")
    if isinstance(body, dict):
        return str(body.get("reason") or fallback), str(body.get("message") or "no message")
    return fallback, "no message"


def _root(exc: BaseException) -> str:
    """The innermost cause's text: urllib3 wraps the interesting part three deep."""
    while exc.__cause__ is not None or (exc.args and isinstance(exc.args[0], BaseException)):
        inner = exc.__cause__ or exc.args[0]
        assert isinstance(inner, BaseException)
        exc = inner
    reason = getattr(exc, "reason", None)
    return str(reason if isinstance(reason, BaseException) else exc)


def _selectors(label: str | None, field: str | None) -> dict[str, str]:
    params = {}
    if label:
        params["labelSelector"] = label
    if field:
        params["fieldSelector"] = field
    return params
