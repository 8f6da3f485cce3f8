"""A Kubernetes API on loopback for the launch tests: kmock's stateful emulator over HTTPS,
with what it lacks added here, and a tiny job controller.

kmock's `KubernetesEmulator` keeps objects in memory: create (409 on a taken name), get,
list, merge-patch, delete and watch streams, for any resource. It does not:

- authenticate or authorize: `Cluster` adds bearer-token and client-certificate checks
  (401) and a forbidden list of (verb, plural, namespace) (403, with the API server's
  wording);
- fill `metadata.uid` and `creationTimestamp`: added on create;
- serve pod logs, or run anything: `Controller` plays the job controller (and the
  training operator): for each Job or Kubeflow job it creates pods, marks them running,
  writes their logs, and ends them as the test's `script` says; `/log` is served from
  those lines, streamed with `follow=true`;
- honour `fieldSelector`, `labelSelector` or `resourceVersion`: a watch gets every object
  of the namespace, first as ADDED. polytrack filters on its side too.

The server runs on its own event loop in a thread (`kmock-server`), and is driven from
the tests through its HTTP API like any client would.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kmock._internal import k8s as kmock_k8s, rendering

KUBEFLOW = ("pytorchjobs", "tfjobs", "mpijobs")
RESOURCES = (
    "batch/v1/jobs",
    "apps/v1/deployments",
    "v1/services",
    "v1/configmaps",
    "v1/pods",
    *(f"kubeflow.org/v1/{plural}" for plural in KUBEFLOW),
)
_VERBS = {"fetch": "get", "update": "patch"}  # kmock's action names, as RBAC spells them


@attrs.frozen
class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must fail

    @classmethod
    def make(cls, directory: Path) -> Certificates:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = _self_signed("polytrack test CA")
        _, other = _self_signed("some other CA")
        server_key, server_cert = _signed(ca_key, ca_cert, "kube-apiserver", server=True)
        client_key, client_cert = _signed(ca_key, ca_cert, "tester", server=False)
        paths = {}
        for name, data in {
            "ca.crt": _pem(ca_cert),
            "other-ca.crt": _pem(other),
            "server.crt": _pem(server_cert),
            "server.key": _key_pem(server_key),
            "client.crt": _pem(client_cert),
            "client.key": _key_pem(client_key),
        }.items():
            (directory / name).write_bytes(data)
            paths[name] = directory / name
        return cls(
            ca=paths["ca.crt"],
            server_cert=paths["server.crt"],
            server_key=paths["server.key"],
            client_cert=paths["client.crt"],
            client_key=paths["client.key"],
            other_ca=paths["other-ca.crt"],
        )


def _self_signed(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _signed(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH if server else x509.OID_CLIENT_AUTH]),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.test"),
                ]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _status(code: int, reason: str, message: str) -> kmock_k8s.KubernetesError:
    return kmock_k8s.KubernetesError(status=code, reason=reason, message=message, details={})


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus authentication, a forbidden list, uids and pod logs."""

    tokens: set[str] = attrs.field(factory=set)
    accept_client_certs: bool = False
    forbidden: set[tuple[str, str, str]] = attrs.field(factory=set)
    pod_logs: dict[str, list[str]] = attrs.field(factory=dict)
    pods_done: set[str] = attrs.field(factory=set)
    log_lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # Known before any object of them exists: an empty list, not a 404.
        for resource in RESOURCES:
            self.resources[resource] = {}
        self[kmock.subresource("log")] << self._serve_log

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        self._authenticate(request)
        resource = request.resource
        if resource is not None and request.action is not None:
            verb = _VERBS.get(request.action.value.lower(), request.action.value.lower())
            namespace = request.namespace or (request.data or {}).get("metadata", {}).get(
                "namespace", ""
            )
            if (verb, resource.plural, namespace) in self.forbidden:
                group = resource.group or ""
                raise _status(
                    403,
                    "Forbidden",
                    f'{resource.plural}.{group} is forbidden: User "tester" cannot {verb} '
                    f'resource "{resource.plural}" in API group "{group}" in the namespace '
                    f'"{namespace}"',
                )
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                metadata = request.data.setdefault("metadata", {})
                key = (resource, namespace, metadata.get("name"))
                if key in self.objects and not self.objects[key].deleted:
                    raise _status(
                        409,
                        "AlreadyExists",
                        f'{resource.plural}.{resource.group} "{key[2]}" already exists',
                    )
                metadata.setdefault("uid", str(uuid.uuid4()))
                metadata.setdefault(
                    "creationTimestamp",
                    datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                )
        return await super()._handle(request)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            return await super().__call__(raw_request)
        finally:
            # kmock keeps each error a request raised (for its strict mode); their
            # tracebacks hold the connection's transport past the server's end.
            for errors in self._errors:
                errors.clear()

    def _authenticate(self, request: rendering.Request) -> None:
        if not self.tokens and not self.accept_client_certs:
            return
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            return
        raw = request._raw_request
        if self.accept_client_certs and raw is not None and raw.transport is not None:
            peer = raw.transport.get_extra_info("peercert")
            if peer:
                return
        raise _status(401, "Unauthorized", "Unauthorized")

    async def _serve_log(self, request: rendering.Request) -> Any:
        name = request.name or ""
        if request.params.get("follow") != "true":
            with self.log_lock:
                lines = list(self.pod_logs.get(name, ()))
            return "".join(f"{line}\n" for line in lines).encode()
        return self._follow(name)

    async def _follow(self, name: str) -> AsyncIterator[bytes]:
        yield b""  # the headers now, as the API server sends them
        sent = 0
        while True:
            with self.log_lock:
                lines = list(self.pod_logs.get(name, ()))
                done = name in self.pods_done
            for line in lines[sent:]:
                yield f"{line}\n".encode()
            sent = len(lines)
            if done:
                return
            await asyncio.sleep(0.01)


class Cluster:
    """The emulator served over HTTPS on 127.0.0.1, on the thread `kmock-server`."""

    def __init__(self, emulator: Emulator, certificates: Certificates) -> None:
        self.emulator = emulator
        self.certificates = certificates
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="kmock-server", daemon=True)
        self.session = requests.Session()
        self.session.verify = str(certificates.ca)
        self.session.cert = (str(certificates.client_cert), str(certificates.client_key))

    def start(self) -> Cluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def stop(self) -> None:
        self.session.close()
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificates.server_cert, self.certificates.server_key)
        context.load_verify_locations(self.certificates.ca)
        context.verify_mode = ssl.CERT_OPTIONAL
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with self.emulator:
            server = aiohttp.web.Server(self.emulator, handler_cancellation=True)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=0.5)
            await runner.setup()
            site = aiohttp.web.SockSite(runner, sock, ssl_context=context)
            await site.start()
            self.url = f"https://127.0.0.1:{port}"
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()
                # Let TLS connections finish closing (close_notify) before the loop goes:
                # a transport still closing then is reported as unclosed.
                await asyncio.sleep(0.05)

    # -- driving it like a client -----------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        headers = {}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        response = self.session.request(
            method,
            self.url + path,
            json=body,
            params=params,
            headers=headers,
            timeout=10,
            verify=str(self.certificates.ca),  # over REQUESTS_CA_BUNDLE (requests#3829)
        )
        response.raise_for_status()
        return response.json()

    def items(self, path: str) -> list[dict[str, Any]]:
        return list(self.call("GET", path).get("items") or [])


@attrs.define
class Outcome:
    """How the controller runs one workload: its pods' lines, then its end."""

    status: str = "succeeded"  # or "failed", or "running" (never ends by itself)
    lines: tuple[str, ...] = ("hello from the pod",)
    duration: float = 0.05
    reason: str = "BackoffLimitExceeded"
    message: str = "Job has reached the specified backoff limit"


class Controller:
    """Plays the job controller and the training operator, on the thread `kube-controller`.

    Each new Job (or PyTorchJob, TFJob, MPIJob) in `namespace` gets a pod labelled as its
    template says, marked Running with the job active; its lines are written to the
    pod's log; after `duration` the pod and the job end as `script(name)` says. The
    controller records how many jobs were active at once, for concurrency tests.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespace: str = "default",
        script: Callable[[str], Outcome] = lambda name: Outcome(),
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.script = script
        self.started: list[str] = []  # job names, in the order the controller saw them
        self.finished: list[str] = []
        self.active: set[str] = set()
        self.max_active = 0
        self._running: dict[str, tuple[float, Outcome, str, str]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kube-controller", daemon=True)
        self.errors: list[BaseException] = []

    def start(self) -> Controller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception as exc:  # reported by the fixture
                self.errors.append(exc)
            self._stopping.wait(0.01)

    def _step(self) -> None:
        ns = self.namespace
        jobs: list[tuple[str, dict[str, Any]]] = []
        for plural in ("jobs", *KUBEFLOW):
            group = "batch/v1" if plural == "jobs" else "kubeflow.org/v1"
            found = self.cluster.items(f"/apis/{group}/namespaces/{ns}/{plural}")
            jobs += [(plural, job) for job in found]
        names = set()
        for plural, job in jobs:
            name = job["metadata"]["name"]
            names.add(name)
            if name in self.started:
                continue
            self.started.append(name)
            self._launch(plural, job)
        for name in list(self.active):
            if name not in names:  # deleted
                self.active.discard(name)
                self._running.pop(name, None)
        now = time.monotonic()
        for name, (started, outcome, plural, pod) in list(self._running.items()):
            if outcome.status != "running" and now - started >= outcome.duration:
                self._end(name, plural, pod, outcome)

    def _launch(self, plural: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        ns = self.namespace
        if plural == "jobs":
            template = job["spec"]["template"]
        else:
            specs = next(v for k, v in job["spec"].items() if k.endswith("ReplicaSpecs"))
            template = next(iter(specs.values()))["template"]
        labels = dict(template.get("metadata", {}).get("labels") or {})
        labels["job-name"] = name
        pod = f"{name}-{uuid.uuid4().hex[:5]}"
        outcome = self.script(name)
        with self.cluster.emulator.log_lock:
            self.cluster.emulator.pod_logs[pod] = []
        self.cluster.call(
            "POST",
            f"/api/v1/namespaces/{ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": ns, "labels": labels},
                "spec": template.get("spec", {}),
                "status": {"phase": "Running"},
            },
        )
        self._patch_status(plural, name, self._running_status(plural))
        self.active.add(name)
        self.max_active = max(self.max_active, len(self.active))
        stamp = datetime.datetime.now(datetime.timezone.utc)
        stamps = [
            (stamp + datetime.timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            for i in range(len(outcome.lines))
        ]
        with self.cluster.emulator.log_lock:
            self.cluster.emulator.pod_logs[pod] = [
                f"{when} {line}" for when, line in zip(stamps, outcome.lines, strict=True)
            ]
        self._running[name] = (time.monotonic(), outcome, plural, pod)

    def _end(self, name: str, plural: str, pod: str, outcome: Outcome) -> None:
        del self._running[name]
        ns = self.namespace
        phase = "Succeeded" if outcome.status == "succeeded" else "Failed"
        self.cluster.call(
            "PATCH", f"/api/v1/namespaces/{ns}/pods/{pod}/status", {"status": {"phase": phase}}
        )
        with self.cluster.emulator.log_lock:
            self.cluster.emulator.pods_done.add(pod)
        # Counted as ended before the job says so: whoever watches it acts on the status,
        # and must find the books already kept.
        self.active.discard(name)
        self.finished.append(name)
        self._patch_status(plural, name, self._end_status(plural, outcome))

    def _patch_status(self, plural: str, name: str, status: dict[str, Any]) -> None:
        prefix = "/apis/batch/v1" if plural == "jobs" else "/apis/kubeflow.org/v1"
        self.cluster.call(
            "PATCH",
            f"{prefix}/namespaces/{self.namespace}/{plural}/{name}/status",
            {"status": status},
        )

    @staticmethod
    def _running_status(plural: str) -> dict[str, Any]:
        if plural == "jobs":
            return {"active": 1, "ready": 1}
        return {"conditions": [_condition("Created"), _condition("Running")]}

    @staticmethod
    def _end_status(plural: str, outcome: Outcome) -> dict[str, Any]:
        if plural == "jobs":
            kind = "Complete" if outcome.status == "succeeded" else "Failed"
            condition = _condition(kind)
            if kind == "Failed":
                condition.update(reason=outcome.reason, message=outcome.message)
            return {"active": 0, "ready": 0, "conditions": [condition]}
        kind = "Succeeded" if outcome.status == "succeeded" else "Failed"
        condition = _condition(kind)
        if kind == "Failed":
            condition.update(reason=outcome.reason, message=outcome.message)
        return {"conditions": [_condition("Created"), _condition("Running"), condition]}


def _condition(kind: str) -> dict[str, Any]:
    # Distinct, increasing times: the latest condition is the state.
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"type": kind, "status": "True", "lastTransitionTime": stamp}


def kubeconfig(
    path: Path,
    cluster: Cluster,
    *,
    user: dict[str, Any],
    namespace: str = "default",
    ca: Path | None = None,
) -> Path:
    """Write a kubeconfig for `cluster` with `user`, and return its path."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [
            {
                "name": "emulator",
                "cluster": {
                    "server": cluster.url,
                    "certificate-authority": str(ca or cluster.certificates.ca),
                },
            }
        ],
        "users": [{"name": "tester", "user": user}],
        "contexts": [
            {
                "name": "test",
                "context": {"cluster": "emulator", "user": "tester", "namespace": namespace},
            }
        ],
    }
    path.write_text(json.dumps(document))
    return path
