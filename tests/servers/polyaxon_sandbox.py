"""A real Polyaxon API server (`haupt sandbox`) for the tests, on a free loopback port.

The sandbox is Polyaxon's single-process server: Django REST API, the streams API
(artifacts and events) and sqlite, served by uvicorn, with no Kubernetes or Docker. It
runs from its own cached virtualenv (`venvs.ensure_venv`), with every path it writes kept
under one temporary directory:

- `--path <dir>/root`: sqlite database (`root/.polyaxon/plx.db`), the sandbox config,
  and the artifacts store, one folder per run (`root/<run uuid>/events/metric/*.plx`);
- `HOME=<dir>/home`: the Polyaxon CLI writes its global config to `~/.polyaxon`;
- `POLYAXON_ARCHIVES_ROOT=<dir>/archives`: the events-read cache, `/tmp/plx/archives`
  otherwise;
- `TMPDIR=<dir>/tmp` and the log `<dir>/server.log`, as for every `ServerProcess`.

In sandbox mode the owner is always `default` and no token is needed. The namespace in
`/streams/v1/{namespace}/...` is not checked; runs report `polyaxon`.

The sandbox answers `/healthz` before its API can take a write, and now and then answers a
write with a bare 405 (its internal error in disguise; see `polytrack.sync.backends.polyaxon`)
or a 5xx. So it is ready only once a project can be created and read back (`api_ready`),
and every request of the helpers below is sent again after such an answer
(`process.request`), as the backend itself does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from .process import ServerProcess, request

REQUIREMENTS = ("haupt[sandbox]==2.18.0",)
OWNER = "default"
NAMESPACE = "polyaxon"
# The project that `api_ready` creates: no test uses it.
_PROBE = "readiness-probe"


class PolyaxonSandbox(ServerProcess):
    """One running `haupt sandbox start`, owned by the test that started it."""

    name = "haupt sandbox"
    venv_name = "polyaxon-sandbox"
    requirements = REQUIREMENTS
    health_path = "/healthz"  # 200 once migrations ran and uvicorn serves

    def __init__(self, process: subprocess.Popen[bytes], *, url: str, directory: Path) -> None:
        super().__init__(process, url=url, directory=directory)
        self._session = requests.Session()

    @classmethod
    def _argv(cls, venv: Path, directory: Path, port: int) -> list[str]:
        return [
            str(venv / "bin" / "haupt"),
            *("sandbox", "start", "--host", "127.0.0.1", "--port", str(port)),
            # One worker: uvicorn serves in-process, so the group holds one process and
            # sqlite sees a single writer.
            *("--workers", "1", "--path", str(directory / "root")),
        ]

    @classmethod
    def _environment(cls, directory: Path, environ: Mapping[str, str]) -> dict[str, str]:
        for sub in ("root", "home", "archives"):  # named here and in `_argv`
            (directory / sub).mkdir(exist_ok=True)
        return {
            **environ,
            "HOME": str(directory / "home"),
            "POLYAXON_ARCHIVES_ROOT": str(directory / "archives"),
            "POLYAXON_LOG_LEVEL": "warning",
        }

    def stop(self, *, grace: float = 10.0) -> None:
        """Close the API session, then end the process group (see `ServerProcess.stop`)."""
        self._session.close()
        super().stop(grace=grace)

    def api_ready(self) -> bool:
        """A project can be created (or was, by an earlier try) and read back."""
        try:
            created = self._session.post(
                f"{self.url}/api/v1/{OWNER}/projects/create", json={"name": _PROBE}, timeout=10
            )
            if created.status_code not in (200, 201) and not self._exists(created):
                return False
            read = self._session.get(f"{self.url}/api/v1/{OWNER}/{_PROBE}", timeout=10)
            return read.status_code == 200 and read.json().get("name") == _PROBE
        except (requests.RequestException, ValueError):  # not up, or not yet its API
            return False

    @staticmethod
    def _exists(response: requests.Response) -> bool:
        """A create refused because the name is taken: by an earlier try that the
        server carried out, though it answered with an error."""
        return response.status_code == 400 and "already exists" in response.text

    # -- the REST API, as a test reads it back ---------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/api/v1/<path>`; return the decoded JSON (None for an empty body)."""
        return self._call(method, f"{self.url}/api/v1/{path.lstrip('/')}", **kwargs)

    def streams(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/streams/v1/<NAMESPACE>/<path>` (artifacts, events)."""
        url = f"{self.url}/streams/v1/{NAMESPACE}/{path.lstrip('/')}"
        return self._call(method, url, **kwargs)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = request(self._session, method, url, timeout=30, **kwargs)
        response.raise_for_status()
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def create_project(self, name: str) -> dict[str, Any]:
        """POST /api/v1/default/projects/create; the project if it exists already (an
        earlier try that failed in the answer only, then sent again)."""
        url = f"{self.url}/api/v1/{OWNER}/projects/create"
        response = request(self._session, "POST", url, json={"name": name}, timeout=30)
        if self._exists(response):
            return self.api("GET", f"{OWNER}/{name}")  # type: ignore[no-any-return]
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

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
