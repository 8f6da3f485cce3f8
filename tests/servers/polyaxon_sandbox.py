"""A real Polyaxon API server (`haupt sandbox`) for the tests, on a free loopback port.

The sandbox is Polyaxon's single-process server: Django REST API, the streams API
(artifacts and events) and sqlite, served by uvicorn, with no Kubernetes or Docker. It
runs from its own cached virtualenv (`venvs.ensure_venv`), with every path it writes kept
under one temporary directory:

- `--path <dir>/root`: sqlite database (`root/.polyaxon/plx.db`), the sandbox config,
  and the artifacts store, one folder per run (`root/<run uuid>/events/metric/*.plx`);
- `HOME=<dir>/home`: the Polyaxon CLI writes its global config to `~/.polyaxon`;
- `POLYAXON_ARCHIVES_ROOT=<dir>/archives`: the events-read cache, `/tmp/plx/archives`
  otherwise.

In sandbox mode the owner is always `default` and no token is needed. The namespace in
`/streams/v1/{namespace}/...` is not checked; runs report `polyaxon`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from .venvs import ensure_venv

REQUIREMENTS = ("haupt[sandbox]==2.18.0",)
OWNER = "default"
NAMESPACE = "polyaxon"


class SandboxStartError(RuntimeError):
    """The sandbox process exited or never answered its health check."""


class PolyaxonSandbox:
    """One running `haupt sandbox start`, owned by the test that started it."""

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, directory: Path, log: Path
    ) -> None:
        self._process, self.url, self.directory, self._log = process, url, directory, log
        self._session = requests.Session()

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        venv: Path | None = None,
        timeout: float = 60.0,
        environ: Mapping[str, str] = os.environ,
    ) -> PolyaxonSandbox:
        """Start a sandbox keeping all its state under `directory`; wait until healthy.

        Raises:
            SandboxStartError: the process exited, or /healthz did not answer in time
                (the server's log is in the message).
        """
        venv = venv or ensure_venv("polyaxon-sandbox", REQUIREMENTS, environ=environ)
        directory.mkdir(parents=True, exist_ok=True)
        for sub in ("root", "home", "archives"):
            (directory / sub).mkdir(exist_ok=True)
        port = _free_port()
        env = {
            **environ,
            "HOME": str(directory / "home"),
            "POLYAXON_ARCHIVES_ROOT": str(directory / "archives"),
            "POLYAXON_LOG_LEVEL": "warning",
        }
        log = directory / "sandbox.log"
        argv = [
            str(venv / "bin" / "haupt"),
            "sandbox",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # One worker: uvicorn serves in-process, so the group holds one process and
            # sqlite sees a single writer.
            "--workers",
            "1",
            "--path",
            str(directory / "root"),
        ]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped whole
            )
        sandbox = cls(process, f"http://127.0.0.1:{port}", directory, log)
        try:
            sandbox._wait_healthy(timeout)
        except BaseException:
            sandbox.stop()
            raise
        return sandbox

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SandboxStartError(
                    f"haupt sandbox exited {self._process.returncode}:\n{self.log_tail()}"
                )
            if self.health():
                return
            time.sleep(0.2)
        raise SandboxStartError(f"no answer from {self.url} in {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        """The server's process id, which is also its process group's id."""
        return self._process.pid

    def health(self) -> bool:
        """Whether `/healthz` answers 200 (it does once migrations ran and uvicorn serves)."""
        try:
            return self._session.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log_tail(self, size: int = 4000) -> str:
        """The end of the server's combined stdout and stderr, for failure messages."""
        try:
            return self._log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL. Idempotent."""
        self._session.close()
        if self._process.poll() is None:
            _signal_group(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self._process.pid, signal.SIGKILL)
                self._process.wait()

    def __enter__(self) -> PolyaxonSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the REST API, as a test reads it back ---------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/api/v1/<path>`; return the decoded JSON (None for an empty body)."""
        return self._call(method, f"{self.url}/api/v1/{path.lstrip('/')}", **kwargs)

    def streams(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/streams/v1/<NAMESPACE>/<path>` (artifacts, events)."""
        url = f"{self.url}/streams/v1/{NAMESPACE}/{path.lstrip('/')}"
        return self._call(method, url, **kwargs)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._session.request(method, url, timeout=30, **kwargs)
        response.raise_for_status()
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def create_project(self, name: str) -> dict[str, Any]:
        """POST /api/v1/default/projects/create."""
        return self.api("POST", f"{OWNER}/projects/create", json={"name": name})  # type: ignore[no-any-return]

    def create_run(self, project: str, name: str, **fields: Any) -> dict[str, Any]:
        """POST /api/v1/default/<project>/runs: a non-managed (tracking-only) run."""
        body = {"name": name, "is_managed": False, **fields}
        return self.api("POST", f"{OWNER}/{project}/runs", json=body)  # type: ignore[no-any-return]

    def run(self, project: str, uuid: str) -> dict[str, Any]:
        """GET the run: status, inputs, outputs, tags, timestamps."""
        return self.api("GET", f"{OWNER}/{project}/runs/{uuid}")  # type: ignore[no-any-return]

    def set_status(
        self, project: str, uuid: str, status: str, *, reason: str = "", message: str = ""
    ) -> None:
        """POST a status condition, as Polyaxon's own client does (`create_run_status`)."""
        condition = {"type": status, "status": True, "reason": reason, "message": message}
        self.api("POST", f"{OWNER}/{project}/runs/{uuid}/statuses", json={"condition": condition})

    def statuses(self, project: str, uuid: str) -> dict[str, Any]:
        """GET {status, status_conditions: [...]}; the first condition is `created`."""
        return self.api("GET", f"{OWNER}/{project}/runs/{uuid}/statuses")  # type: ignore[no-any-return]

    def add_lineage(self, project: str, uuid: str, artifacts: Sequence[Mapping[str, Any]]) -> None:
        """POST artifact lineage (V1RunArtifact dicts: name, kind, path, is_input, ...).

        Each gets `summary: {}` unless it has one: haupt 2.18.0 answers an artifact
        without a dict `summary` (missing or null) with a bare 405, and logs nothing.
        """
        body = {"artifacts": [{"summary": {}, **artifact} for artifact in artifacts]}
        self.api("POST", f"{OWNER}/{project}/runs/{uuid}/lineage/artifacts", json=body)

    def lineage(self, project: str, uuid: str) -> list[dict[str, Any]]:
        """GET the run's artifact lineage (inputs and outputs), newest first."""
        page = self.api("GET", f"{OWNER}/{project}/runs/{uuid}/lineage/artifacts")
        return page["results"]  # type: ignore[no-any-return]

    def upload_metric_events(
        self, project: str, uuid: str, name: str, points: Sequence[tuple[int, str, float]]
    ) -> None:
        """Upload `(step, ISO timestamp, value)` points as `events/metric/<name>.plx`.

        The file is traceml's event format: `|`-separated, header `step|timestamp|metric`.
        """
        lines = ["step|timestamp|metric", *(f"{s}|{t}|{v!r}" for s, t, v in points)]
        self.streams(
            "POST",
            f"{OWNER}/{project}/runs/{uuid}/artifact",
            files={"upload_file": (f"{name}.plx", "\n".join(lines).encode())},
            data={"json": json.dumps({"path": "events/metric", "untar": False})},
        )

    def metric_events(self, project: str, uuid: str, name: str) -> dict[str, list[Any]]:
        """GET a metric's events as columns {step, timestamp, metric}.

        `force=true`: the server otherwise serves a cached copy (under the archives root)
        made by the first read, and never sees a later upload.
        """
        page = self.streams(
            "GET",
            f"{OWNER}/{project}/runs/{uuid}/events/metric",
            params={"names": name, "orient": "dict", "force": "true"},
        )
        for event in page["data"]:
            if event["name"] == name:
                return event["data"]  # type: ignore[no-any-return]
        raise KeyError(name)


def _free_port() -> int:
    # Racy by nature (the port is free now, not promised later); start() fails loudly
    # through the health check if another process takes it first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pid, sig)
