"""`MlflowBackend`: a run's records on an MLflow tracking server, through its REST API.

What goes where (`mlflow+http://host:5000[/prefix]`, or `mlflow+https://`):

```
polytrack                      MLflow
project                        experiment of that name (created when missing)
run                            run tagged polytrack.run_id=<id>; run name, start time,
                               notes (mlflow.note.content), polytrack.host, polytrack.project
params                         params, as str(value) (what MLflow's own client sends)
tags                           tags polytrack.tag.<tag> = <tag>
metrics                        metrics; timestamp = round(time * 1000) ms; NaN is kept, and
                               +-inf reads back as +-1.797e308 (MLflow's SQL stores cannot
                               hold inf)
status                         RUNNING / FINISHED / FAILED / KILLED (crashed: FAILED plus
                               tag polytrack.status=crashed; skipped: KILLED plus tag
                               polytrack.status=skipped), end time, polytrack.status_message
git                            mlflow.source.git.commit / .branch / .repoURL
code                           mlflow.source.name, mlflow.source.type (LOCAL, NOTEBOOK)
user                           mlflow.user and the run's user_id (who started it)
environment, hardware, seeds   polytrack/<kind>.json artifacts plus summary tags
                               (polytrack.python, polytrack.gpus, polytrack.seed, ...)
data refs                      tag polytrack.data.<name> = digest; inputs also as datasets
artifacts                      the run's artifact root, through the server's artifact proxy
media: images                  images/<key>+step+<step>+timestamp+<ms>+<uuid>.png and its
                               ...+compressed.webp thumbnail, tag mlflow.loggedImages: what
                               `mlflow.log_image(image, key=, step=)` writes, so MLflow's UI
                               shows them with its step slider (one file pair per image)
media: tables                  tables/<name>/step-<step>.json in `mlflow.log_table`'s JSON
                               ({"columns", "data"}), listed in tag mlflow.loggedArtifacts
media: the other kinds         media/<kind>/<name>/step-<step>.<ext> (a figure: its spec
                               .json and its .png; a histogram, curve, confusion: .json)
```
A name MLflow refuses (characters outside letters, digits, `_ - . / : space`, a path
that normalises to another one, more than 250 characters) is sent as a cleaned name with
a hash of the original appended (`loss@val` -> `loss_val-1a2b3c4d`), the same every time.

Every call may be repeated (see `polytrack.sync.backends.base`): metric points carry the
journal's timestamps, and MLflow's SQL stores drop a point identical in key, step,
timestamp and value to one they hold; params, tags and datasets are set, not appended; an
artifact upload overwrites. Within a process, a retried batch skips those of its requests
that were acknowledged already (MLflow's duplicate check is slow). A param whose value
differs from the one MLflow holds is a conflict that MLflow refuses: everything else of
the batch is sent first, then `BackendRejectedError` names the param. A media file's name
follows from its record alone (the run, name, step, the image's place in its batch and the
time it was logged: the uuid in an image's name is derived from those), so a batch sent
again overwrites the files it wrote before; of two records for one name and step in a
batch, the later one goes. Media blobs are read from the home's blob store, the home being
the one that holds the run's directory (`open_run`'s `workdir` is
`<home>/runs/<run>/sync/<target>`, as `polytrack.sync.engine` lays it out).

No retries here: the sync engine retries. Every failure is translated in one function,
`_error`: unreachable, timed out, 429 and 5xx -> `BackendUnavailableError` (with the
server's `Retry-After`); 401/403 -> `BackendAuthError`; other 4xx ->
`BackendRejectedError`, quoting MLflow's `error_code` and message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import quote, urlsplit

import attrs
import numpy as np
import requests
from attrs import frozen

from polytrack.errors import (
    BackendAuthError,
    BackendConfigError,
    BackendError,
    BackendRejectedError,
    BackendUnavailableError,
    StoreError,
)
from polytrack.models import (
    CHANGE_EVENTS,
    MEDIA_EXTENSIONS,
    CodeState,
    DataRef,
    EnvironmentState,
    GitState,
    HardwareState,
    MediaLogged,
    NoteSet,
    OutputsSet,
    ParamValue,
    RunLinked,
    RunRenamed,
    RunRestored,
    RunStarted,
    RunTrashed,
    SeedState,
    TagsAdded,
    TagsChanged,
)
from polytrack.redact import redact_url
from polytrack.store.blobs import BlobStore
from polytrack.sync.backends.base import Artifact, Batch, Series, home_of
from polytrack.sync.backends.config import BackendConfig, Credentials, credentials_for, uri_key
from polytrack.sync.backends.http import retry_after

__all__ = ["MlflowBackend"]

SCHEMES: Final = ("mlflow+http", "mlflow+https")
_API: Final = "/api/2.0/mlflow"
_ARTIFACTS: Final = "/api/2.0/mlflow-artifacts/artifacts"

# runs/log-batch limits (mlflow/utils/validation.py): a request over any of them is a 400.
MAX_METRICS_PER_BATCH: Final = 1000
MAX_PARAMS_TAGS_PER_BATCH: Final = 100
MAX_BATCH_BYTES: Final = 1_000_000
MAX_DATASETS_PER_BATCH: Final = 1000
# Longer values are truncated by the server itself (MLFLOW_TRUNCATE_LONG_VALUES); doing it
# here too keeps request bodies bounded whatever the server's setting.
MAX_PARAM_VALUE: Final = 6000
MAX_TAG_VALUE: Final = 8000
# The tag that MLflow's UI shows as a run's description: where a run's notes go.
NOTE_TAG: Final = "mlflow.note.content"
# Set on a run before `polytrack runs rm` deletes it, so a later sync restores that run
# rather than take it for one deleted by someone else (and make it anew).
TRASHED_TAG: Final = "polytrack.trashed"
MAX_NAME: Final = 250
MAX_DATASET_DIGEST: Final = 36
MAX_DATASET_NAME: Final = 500

_STATUS: Final = {
    "created": "SCHEDULED",
    "running": "RUNNING",
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "stopped": "KILLED",
    "skipped": "KILLED",  # MLflow has no skipped: tag polytrack.status says it
    "crashed": "FAILED",
}
_FINAL: Final = frozenset({"succeeded", "failed", "stopped", "skipped", "crashed"})
# Non-finite values as MLflow's own client sends them (protobuf's JSON mapping): a bare
# NaN token is accepted with a 200 by MLflow 3.x but stores garbage (value 0, step 0).
_NON_FINITE: Final = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}
_NAME_OK: Final = re.compile(r"[/\w.\- :]*")  # validate_param_and_metric_name, non-Windows
_NAME_BAD_CHAR: Final = re.compile(r"[^/\w.\- :]")
_WORKDIR_FILE: Final = "mlflow-run.json"

# Media (issue 15), as MLflow 3.x's own client writes it (mlflow/tracking/client.py):
# log_image's tag (set to str(True)), log_table's list of {"path", "type": "table"}.
IMAGES_TAG: Final = "mlflow.loggedImages"
ARTIFACTS_TAG: Final = "mlflow.loggedArtifacts"
# mlflow.tracking.multimedia.COMPRESSED_IMAGE_SIZE: the longer side of the thumbnail.
THUMBNAIL_SIDE: Final = 256
# log_image's key check; "+" (its file name delimiter, as of MLflow 3.17) and "~" (its
# stand-in for "/") are outside it, which keeps a key apart from the rest of the name.
_MEDIA_NAME_OK: Final = re.compile(r"[a-zA-Z0-9_\-./ ]+")
_MEDIA_NAME_BAD_CHAR: Final = re.compile(r"[^a-zA-Z0-9_\-./ ]")
# The uuid in an image's file name is uuid5 of (run, name, step, index) in this namespace.
_IMAGE_NAMESPACE: Final = uuid.UUID("8f0d6c1e-6a3b-5b8e-9f4c-2d7a1e5b3c90")


@frozen
class _RemoteRun:
    """Where one polytrack run lives in MLflow."""

    experiment_id: str
    run_id: str
    # "<experiment>/<run>/artifacts" under the artifact proxy; None when the server keeps
    # artifacts where only its own clients can write (s3://..., a local path).
    artifact_path: str | None


@frozen
class _MediaFile:
    """One file a media record becomes in MLflow: its artifact path, the blob it is made
    from, and how (the blob's bytes as they are, a thumbnail of them, a table rewritten)."""

    path: str
    digest: str
    make: Callable[[bytes], bytes]


@frozen
class _Translation:
    """What a batch's events become in MLflow (metrics and params go separately)."""

    tags: dict[str, str] = attrs.field(factory=dict)
    datasets: list[dict[str, Any]] = attrs.field(factory=list)
    files: dict[str, bytes] = attrs.field(factory=dict)


class _BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer <token>`; its repr keeps the token out of logs."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<token>)"


class MlflowBackend:
    """Ships runs to an MLflow tracking server (see the module doc for the mapping).

    Build it with `from_uri`; `__init__` only stores. Not thread-safe: the sync engine
    calls it from one thread.

    Example:
        >>> backend = MlflowBackend.from_uri(
        ...     "mlflow+http://127.0.0.1:5000", environ=os.environ, config=BackendConfig()
        ... )
        >>> backend.open_run(started, workdir=tmp_path)
        >>> backend.write(started.id, batch)
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: str,
        credentials: Credentials | None = None,
        session: requests.Session | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key = key
        self._credentials = credentials or Credentials()
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._timeout = (connect_timeout, timeout)
        self._runs: dict[str, _RemoteRun] = {}
        self._homes: dict[str, Path | None] = {}  # run id -> the home holding its blobs
        self._experiments: dict[str, str] = {}
        self._closed = False
        # Digests of the log-batch bodies acknowledged for the batch being written, kept
        # until another batch comes: a retry of the batch skips them. MLflow drops points
        # it holds, but finding them costs it ~15x a first write (bench_sync.py, M3).
        self._acked: tuple[str, int, set[bytes]] = ("", -1, set())
        self._writing = False
        # Per request, not on the session: a session passed in stays as it was given.
        self._auth: requests.auth.AuthBase | None = None
        if self._credentials.token:
            self._auth = _BearerAuth(self._credentials.token)
        elif self._credentials.username or self._credentials.password:
            self._auth = requests.auth.HTTPBasicAuth(
                self._credentials.username or "", self._credentials.password or ""
            )

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        environ: Mapping[str, str],
        config: BackendConfig,
        session: requests.Session | None = None,
    ) -> MlflowBackend:
        """The backend for `mlflow+http(s)://host:port[/prefix]`, with its credentials.

        Credentials come from `credentials_for`: the URI's user and password,
        `POLYTRACK_BACKEND_TOKEN`/`_USERNAME`/`_PASSWORD`, `MLFLOW_TRACKING_TOKEN`/
        `_USERNAME`/`_PASSWORD`, then the config file. A token is sent as
        `Authorization: Bearer`, a user name and password as basic auth.

        Args:
            uri: the backend URI.
            environ: the environment to read credentials from.
            config: the config file's contents.
            session: a `requests.Session` to send through (its adapters, proxies, hooks);
                by default a new one, closed by `close()`.

        Raises:
            BackendConfigError: not an `mlflow+http(s)` URI, or no host in it.

        Example:
            >>> MlflowBackend.from_uri(
            ...     "mlflow+https://mlflow.internal", environ=os.environ, config=BackendConfig()
            ... ).key
            'mlflow+https://mlflow.internal'
        """
        parts = urlsplit(uri)
        shown = redact_url(uri)
        if parts.scheme.lower() not in SCHEMES:
            raise BackendConfigError(
                f"{shown!r} is not an MLflow URI; expected mlflow+http://host:port[/prefix]"
                " or mlflow+https://..."
            )
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise BackendConfigError(f"{shown!r} has an invalid port") from None
        if not parts.hostname:
            raise BackendConfigError(f"{shown!r} names no host; expected mlflow+http://host:port")
        key = uri_key(uri)
        credentials = credentials_for(
            uri,
            environ,
            config,
            env_token=("MLFLOW_TRACKING_TOKEN",),
            env_username=("MLFLOW_TRACKING_USERNAME",),
            env_password=("MLFLOW_TRACKING_PASSWORD",),
        )
        base = key.split("+", 1)[1]  # http(s)://host:port/prefix, credential-free
        return cls(base, key=key, credentials=credentials, session=session)

    def __repr__(self) -> str:
        return f"<MlflowBackend {self._key} {self._credentials!r}>"

    @property
    def key(self) -> str:
        """The URI without credentials, e.g. `mlflow+http://127.0.0.1:5000`."""
        return self._key

    # -- the Backend protocol ---------------------------------------------------------------

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        """Find the MLflow run of `run` (tag polytrack.run_id), or create it.

        The mapping is kept in memory and in `workdir/mlflow-run.json`, which spares the
        search next time (it is checked against the server before use).

        Raises:
            BackendUnavailableError, BackendAuthError, BackendRejectedError: see the module.
        """
        self._homes[run.id] = home_of(workdir)
        if run.id in self._runs:
            return
        # Two processes syncing the run on this machine (a training process and
        # `polytrack sync`) take turns, so the second finds what the first created.
        with _locked(workdir):
            remote = self._remembered(run, workdir) or self._find_or_create(run)
            _remember(workdir, self._key, run.id, remote)
        self._runs[run.id] = remote

    def write(self, run_id: str, batch: Batch) -> None:
        """Send a batch: metrics, then tags, datasets, snapshot files and media, then params.

        Raises:
            BackendRejectedError: after sending all the rest, when MLflow refused part of
                the batch (a param changed value, say); the message names what.
            BackendUnavailableError, BackendAuthError: at once; the whole batch may be
                sent again.
        """
        remote = self._remote(run_id)
        plan = _translate(batch)
        refused: list[BackendRejectedError] = []
        if self._acked[:2] != (run_id, batch.seq):
            self._acked = (run_id, batch.seq, set())

        def attempt(send: Callable[..., None], *args: Any) -> None:
            try:
                send(*args)
            except BackendRejectedError as exc:
                refused.append(exc)

        self._writing = True
        try:
            attempt(self._log_metrics, remote, batch.metrics)
            attempt(self._log_tags, remote, plan.tags)
            if plan.datasets:
                attempt(self._log_inputs, remote, plan.datasets)
            if remote.artifact_path is not None:  # else: the summary tags carry the gist
                for name, data in plan.files.items():
                    attempt(self._put_artifact, remote, name, data)
            media = _media_of(batch)
            if media:
                refused.extend(self._log_media(run_id, remote, media))
            attempt(self._log_params, remote, batch.params())
            for event in batch.events:  # changes made afterwards, last and in order
                if isinstance(event, CHANGE_EVENTS):
                    attempt(self._apply_change, remote, event)
        finally:
            self._writing = False
        if refused:
            raise BackendRejectedError(
                f"part of batch {batch.seq} of run {run_id} was refused: "
                + "; ".join(str(exc) for exc in refused),
                status=refused[0].status,
            )

    def set_status(
        self, run_id: str, status: str, *, at: float, message: str | None = None
    ) -> None:
        """Set the MLflow run's status (and end time for a final one).

        Raises:
            BackendRejectedError: an unknown status, or MLflow refused the update.
        """
        remote = self._remote(run_id)
        if status not in _STATUS:
            raise BackendRejectedError(f"unknown run status {status!r}")
        update: dict[str, Any] = {"run_id": remote.run_id, "status": _STATUS[status]}
        if status in _FINAL:
            update["end_time"] = round(at * 1000)
        self._call("POST", f"{_API}/runs/update", what="runs/update", body=update)
        tags = {"polytrack.status": status}
        if message is not None:
            tags["polytrack.status_message"] = message
        self._log_tags(remote, tags)

    def upload_artifact(self, run_id: str, artifact: Artifact) -> None:
        """Upload one file, streamed, under the run's artifact root as `artifact.name`.

        Raises:
            BackendRejectedError: the name is not a clean relative path, the file is gone,
                or the server keeps artifacts where polytrack cannot write (no proxy).
            BackendUnavailableError: the file cannot be read now, or the server failed.
        """
        remote = self._remote(run_id)
        if remote.artifact_path is None:
            raise BackendRejectedError(
                f"{self._key} keeps the artifacts of run {run_id} outside its artifact proxy;"
                " start `mlflow server` with --serve-artifacts (its default) to upload them"
            )
        try:
            stream = open(artifact.path, "rb")  # noqa: SIM115 - closed below, after the PUT
        except FileNotFoundError:
            raise BackendRejectedError(
                f"artifact {artifact.name} of run {run_id} is gone: {artifact.path}"
            ) from None
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot read artifact {artifact.name} at {artifact.path}: {exc.strerror}"
            ) from exc
        with stream:  # requests streams a file object, Content-Length from fstat
            self._put_artifact(remote, artifact.name, stream)

    def close(self) -> None:
        """Close the session (if this backend made it); idempotent."""
        if not self._closed:
            self._closed = True
            if self._owns_session:
                self._session.close()

    # -- runs -------------------------------------------------------------------------------

    def _remote(self, run_id: str) -> _RemoteRun:
        try:
            return self._runs[run_id]
        except KeyError:
            raise BackendRejectedError(f"run {run_id} was not opened on {self._key}") from None

    def _remembered(self, run: RunStarted, workdir: Path) -> _RemoteRun | None:
        """The run `workdir` names, if the server still has it, active and tagged as ours."""
        try:
            saved = json.loads((workdir / _WORKDIR_FILE).read_text())
            if saved["key"] != self._key or saved["polytrack_run_id"] != run.id:
                return None
            mlflow_run_id = str(saved["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no file, or not ours to trust: search instead
        try:
            found = self._call(
                "GET", f"{_API}/runs/get", what="runs/get", params={"run_id": mlflow_run_id}
            )["run"]
        except BackendRejectedError:
            return None  # deleted for good (404): search, else create
        tags = {tag["key"]: tag.get("value") for tag in found.get("data", {}).get("tags", [])}
        info = found["info"]
        # Deleted by `polytrack runs rm` (the tag says so), it is still ours: the restore
        # that brings it back is what this sync sends. Deleted by someone else: made anew.
        ours = info.get("lifecycle_stage") == "active" or tags.get(TRASHED_TAG) == "true"
        if tags.get("polytrack.run_id") != run.id or not ours:
            return None
        return _remote_run(info)

    def _find_or_create(self, run: RunStarted) -> _RemoteRun:
        experiment_id = self._experiment(run.project)
        found = self._search(experiment_id, run.id)
        if found:
            return _remote_run(_oldest(found))
        tags = {
            "mlflow.runName": run.name,
            "polytrack.run_id": run.id,
            "polytrack.project": run.project,
            "polytrack.host": run.host,
        }
        if run.notes:
            tags["mlflow.note.content"] = run.notes
        if run.user:  # as MLflow's own client records who ran it: the tag and user_id
            tags["mlflow.user"] = run.user
        tags.update(_tag_tags(run.tags))
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "run_name": run.name,
            "start_time": round(run.created_at * 1000),
            "tags": [{"key": k, "value": v} for k, v in _clean_tags(tags).items()],
        }
        if run.user:
            body["user_id"] = run.user
        created = self._call("POST", f"{_API}/runs/create", what="runs/create", body=body)[
            "run"
        ]["info"]
        # runs/create is not idempotent: processes on two machines opening the run at once
        # may both create one. Each then keeps the same one and deletes its own if not it.
        found = self._search(experiment_id, run.id)
        if len(found) > 1:
            keep = _oldest(found)
            if keep["run_id"] != created["run_id"]:
                self._call(
                    "POST",
                    f"{_API}/runs/delete",
                    what="runs/delete",
                    body={"run_id": created["run_id"]},
                )
                return _remote_run(keep)
        return _remote_run(created)

    def _search(self, experiment_id: str, run_id: str) -> list[dict[str, Any]]:
        if "'" not in run_id:
            literal = f"'{run_id}'"
        elif '"' not in run_id:
            literal = f'"{run_id}"'
        else:  # MLflow's filter grammar has no escape for a quote
            raise BackendRejectedError(f"run id {run_id!r} cannot be searched for in MLflow")
        answer = self._call(
            "POST",
            f"{_API}/runs/search",
            what="runs/search",
            body={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`polytrack.run_id` = {literal}",
                "run_view_type": "ACTIVE_ONLY",
                "max_results": 10,
            },
        )
        runs: list[dict[str, Any]] = answer.get("runs", [])
        return runs

    def _experiment(self, name: str) -> str:
        """The id of the experiment `name`, created when missing (racing creators agree)."""
        if name in self._experiments:
            return self._experiments[name]
        experiment = self._get_experiment(name)
        if experiment is None:
            try:
                created = self._call(
                    "POST",
                    f"{_API}/experiments/create",
                    what="experiments/create",
                    body={"name": name},
                )
                experiment = {"experiment_id": created["experiment_id"], "lifecycle_stage": ""}
            except BackendRejectedError:
                # RESOURCE_ALREADY_EXISTS: another process created it meanwhile.
                experiment = self._get_experiment(name)
                if experiment is None:
                    raise
        experiment_id = str(experiment["experiment_id"])
        if experiment.get("lifecycle_stage") == "deleted":
            raise BackendRejectedError(
                f"experiment {name!r} (id {experiment_id}) is deleted on {self._key}; restore"
                f" it (mlflow experiments restore --experiment-id {experiment_id}) or use"
                " another project name",
                status=400,
            )
        self._experiments[name] = experiment_id
        return experiment_id

    def _get_experiment(self, name: str) -> dict[str, Any] | None:
        try:
            answer = self._call(
                "GET",
                f"{_API}/experiments/get-by-name",
                what="experiments/get-by-name",
                params={"experiment_name": name},
            )
        except BackendRejectedError as exc:
            if exc.status == 404:
                return None
            raise
        experiment: dict[str, Any] = answer["experiment"]
        return experiment

    # -- records ----------------------------------------------------------------------------

    def _log_metrics(self, remote: _RemoteRun, metrics: Sequence[Series]) -> None:
        head = '{"run_id":' + json.dumps(remote.run_id) + ',"metrics":['
        for chunk in _chunks(_metric_entries(metrics), MAX_METRICS_PER_BATCH, len(head) + 2):
            self._post_batch(head + ",".join(chunk) + "]}")

    def _log_tags(self, remote: _RemoteRun, tags: Mapping[str, str]) -> None:
        entries = [_pair(key, value) for key, value in _clean_tags(tags).items()]
        head = '{"run_id":' + json.dumps(remote.run_id) + ',"tags":['
        for chunk in _chunks(entries, MAX_PARAMS_TAGS_PER_BATCH, len(head) + 2):
            self._post_batch(head + ",".join(chunk) + "]}")

    def _log_params(self, remote: _RemoteRun, params: Mapping[str, ParamValue]) -> None:
        wanted = {
            _mlflow_name(key): _param_text(value)[:MAX_PARAM_VALUE] for key, value in params.items()
        }
        try:
            self._send_params(remote, wanted)
        except BackendRejectedError as exc:
            # One changed value fails its whole request: find which ones MLflow holds with
            # another value, send the rest, and name those.
            held = self._held_params(remote)
            changed = {k: v for k, v in wanted.items() if k in held and held[k] != v}
            if not changed:
                raise
            self._send_params(remote, {k: v for k, v in wanted.items() if k not in changed})
            names = ", ".join(
                f"{k}={v!r} (MLflow holds {held[k]!r})" for k, v in sorted(changed.items())
            )
            raise BackendRejectedError(
                f"MLflow does not allow changing a param's value: {names}", status=exc.status
            ) from exc

    def _send_params(self, remote: _RemoteRun, params: Mapping[str, str]) -> None:
        entries = [_pair(key, value) for key, value in params.items()]
        head = '{"run_id":' + json.dumps(remote.run_id) + ',"params":['
        for chunk in _chunks(entries, MAX_PARAMS_TAGS_PER_BATCH, len(head) + 2):
            self._post_batch(head + ",".join(chunk) + "]}")

    def _held_params(self, remote: _RemoteRun) -> dict[str, str]:
        found = self._call(
            "GET", f"{_API}/runs/get", what="runs/get", params={"run_id": remote.run_id}
        )
        params = found["run"].get("data", {}).get("params", [])
        return {param["key"]: param.get("value", "") for param in params}

    def _log_inputs(self, remote: _RemoteRun, datasets: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(datasets), MAX_DATASETS_PER_BATCH):
            chunk = list(datasets[start : start + MAX_DATASETS_PER_BATCH])
            self._call(
                "POST",
                f"{_API}/runs/log-inputs",
                what="runs/log-inputs",
                body={"run_id": remote.run_id, "datasets": chunk},
            )

    def _post_batch(self, body: str) -> None:
        data = body.encode()
        # Only within write(): set_status may send the same tags again after others.
        digest = hashlib.blake2b(data, digest_size=16).digest() if self._writing else b""
        if digest and digest in self._acked[2]:
            return  # this very request was acknowledged in an earlier try of the batch
        self._call("POST", f"{_API}/runs/log-batch", what="runs/log-batch", data=data)
        if digest:
            self._acked[2].add(digest)

    def _put_artifact(self, remote: _RemoteRun, name: str, data: bytes | IO[bytes]) -> None:
        clean = posixpath.normpath(name)
        if name.startswith("/") or clean != name or clean == "." or clean.startswith(".."):
            raise BackendRejectedError(f"artifact name {name!r} is not a clean relative path")
        path = f"{remote.artifact_path}/{name}"
        self._call(
            "PUT",
            f"{_ARTIFACTS}/{quote(path, safe='/')}",
            what=f"upload of artifact {name}",
            data=data,
            content_type="application/octet-stream",
        )

    # -- media ------------------------------------------------------------------------------

    def _log_media(
        self, run_id: str, remote: _RemoteRun, records: Sequence[MediaLogged]
    ) -> list[BackendRejectedError]:
        """Upload the files of `records` (see the module doc), then the tags through which
        MLflow's UI finds them; returns what could not go, after sending the rest.

        Raises:
            BackendUnavailableError, BackendAuthError: at once; the batch is sent again.
        """
        if remote.artifact_path is None:
            return [
                BackendRejectedError(
                    f"{self._key} keeps the artifacts of run {run_id} outside its artifact"
                    f" proxy: {len(records)} media records were not uploaded (start `mlflow"
                    " server` with --serve-artifacts, its default, to upload them)"
                )
            ]
        home = self._homes.get(run_id)
        if home is None:
            return [
                BackendRejectedError(
                    f"run {run_id} was opened outside a home's runs directory: the blob store"
                    f" of its {len(records)} media records is unknown"
                )
            ]
        store = BlobStore(home)
        refused: list[BackendRejectedError] = []
        images = False
        tables: list[str] = []
        for record in records:
            try:
                for file in _media_files(run_id, record):
                    self._put_media(remote, store, file)
            except BackendRejectedError as exc:
                refused.append(
                    BackendRejectedError(
                        f"{record.kind} {record.name!r} at step {record.step}: {exc}",
                        status=exc.status,
                    )
                )
                continue
            if record.kind == "image" and record.blobs:
                images = True
            elif record.kind == "table" and record.blobs:
                tables.append(_table_path(record))
        if images:
            self._log_tags(remote, {IMAGES_TAG: "True"})  # str(True), as log_image sets it
        if tables:
            refused.extend(self._list_tables(remote, tables))
        return refused

    def _put_media(self, remote: _RemoteRun, store: BlobStore, file: _MediaFile) -> None:
        """Upload one media file, unless this try of the batch uploaded it already."""
        acked = hashlib.blake2b(
            f"media\0{file.path}\0{file.digest}".encode(), digest_size=16
        ).digest()
        if acked in self._acked[2]:
            return
        try:
            source = store.read_bytes(file.digest)
        except (StoreError, ValueError) as exc:  # gone (`polytrack gc`?), or no digest
            raise BackendRejectedError(f"its blob cannot be read: {exc}") from None
        except OSError as exc:  # a read that failed midway: may work next time
            raise BackendUnavailableError(
                f"cannot read blob {file.digest} of {file.path}: {exc.strerror or exc}"
            ) from exc
        try:
            data = file.make(source)
        except Exception as exc:  # a blob that Pillow or json cannot read: set it aside
            raise BackendRejectedError(
                f"its blob {file.digest} cannot be made into {file.path}: {exc}"
            ) from exc
        self._put_artifact(remote, file.path, data)
        self._acked[2].add(acked)

    def _list_tables(self, remote: _RemoteRun, paths: Sequence[str]) -> list[BackendRejectedError]:
        """Add `paths` to the run's `mlflow.loggedArtifacts` (what `log_table` does, and
        what `mlflow.load_table` searches), keeping the entries already there."""
        found = self._call(
            "GET", f"{_API}/runs/get", what="runs/get", params={"run_id": remote.run_id}
        )
        tags = found["run"].get("data", {}).get("tags", [])
        held = next((tag.get("value") for tag in tags if tag.get("key") == ARTIFACTS_TAG), None)
        try:
            listed = json.loads(held) if held else []
        except ValueError:
            listed = []
        if not isinstance(listed, list):
            listed = []
        before = len(listed)
        left_out: list[str] = []
        for path in paths:
            entry = {"path": path, "type": "table"}
            if entry in listed:
                continue
            # Formatted as MLflow's client does (json.dumps' defaults): load_table's search
            # is a LIKE on '"path"%:%"<file>",%"type"%:%"table"'.
            if len(json.dumps([*listed, entry])) > MAX_TAG_VALUE:
                left_out.append(path)
            else:
                listed.append(entry)
        if len(listed) != before:
            self._log_tags(remote, {ARTIFACTS_TAG: json.dumps(listed)})
        if not left_out:
            return []
        return [
            BackendRejectedError(
                f"tag {ARTIFACTS_TAG} is full ({MAX_TAG_VALUE} characters): the tables"
                f" {', '.join(left_out)} were uploaded but are not listed in it, so"
                " mlflow.load_table does not find them"
            )
        ]

    def _apply_change(self, remote: _RemoteRun, event: object) -> None:
        """A change made to the run afterwards (`polytrack.history.manage`): renamed with
        `runs/update`, tags set and deleted, the note as `mlflow.note.content` (what the
        MLflow UI shows as the run's description), the trash as `runs/delete|restore`."""
        body: dict[str, Any] = {"run_id": remote.run_id}
        if isinstance(event, RunRenamed):
            body["run_name"] = event.name
            self._call("POST", f"{_API}/runs/update", what="runs/update", body=body)
        elif isinstance(event, TagsChanged):
            if event.added:
                self._log_tags(remote, _tag_tags(event.added))
            for tag in event.removed:
                self._delete_tag(remote, _mlflow_name(f"polytrack.tag.{tag}"))
        elif isinstance(event, NoteSet):
            if event.notes:
                self._log_tags(remote, {NOTE_TAG: event.notes})
            else:
                self._delete_tag(remote, NOTE_TAG)
        elif isinstance(event, RunTrashed):
            self._log_tags(remote, {TRASHED_TAG: "true"})
            self._call("POST", f"{_API}/runs/delete", what="runs/delete", body=body)
        elif isinstance(event, RunRestored):
            self._call("POST", f"{_API}/runs/restore", what="runs/restore", body=body)
            self._log_tags(remote, {TRASHED_TAG: "false"})

    def _delete_tag(self, remote: _RemoteRun, key: str) -> None:
        """Delete a tag; one that is not there (deleted by an earlier try) is fine."""
        try:
            self._call(
                "POST",
                f"{_API}/runs/delete-tag",
                what="runs/delete-tag",
                body={"run_id": remote.run_id, "key": key},
            )
        except BackendRejectedError as exc:
            if exc.status != 404 and "No tag" not in str(exc):
                raise

    # -- HTTP -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        data: bytes | IO[bytes] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request; its JSON answer, or the `BackendError` that `_error` makes of it."""
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
        try:
            response = self._session.request(
                method,
                self._base + path,
                data=data,
                params=params,
                headers={"Content-Type": content_type} if data is not None else None,
                auth=self._auth,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise _error(self._key, what, exc=exc) from exc
        if response.status_code >= 400:
            raise _error(self._key, what, response=response)
        if not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError as exc:
            raise _error(self._key, what, response=response, malformed=True) from exc
        if not isinstance(answer, dict):
            raise _error(self._key, what, response=response, malformed=True)
        return answer


# -- failures -------------------------------------------------------------------------------


def _error(
    key: str,
    what: str,
    *,
    exc: requests.RequestException | None = None,
    response: requests.Response | None = None,
    malformed: bool = False,
) -> BackendError:
    """The one translation of a failed request into a `BackendError` (see the module doc).

    Messages name the backend by its key and the request by its endpoint: never a
    credential. A 2xx answer that is not a JSON object (a proxy's login page, say) counts
    as unavailable: the request itself may well succeed later.
    """
    if response is None:
        # The text names host, port and path (and a proxy, whose password redact_url drops).
        reason = redact_url(f"{type(exc).__name__}: {exc}") if exc is not None else "no answer"
        if isinstance(exc, requests.Timeout):
            return BackendUnavailableError(f"{key} timed out ({what}): {_snippet(reason, 500)}")
        return BackendUnavailableError(f"{key} is unreachable ({what}): {_snippet(reason, 500)}")
    status = response.status_code
    if malformed:
        return BackendUnavailableError(
            f"{key} answered {what} with {status} and a body that is not a JSON object:"
            f" {_snippet(response.text)!r}",
            status=status,
        )
    detail = _detail(response)
    if status in (401, 403):
        hint = "credentials missing or not accepted" if status == 401 else "not allowed"
        return BackendAuthError(f"{key} refused {what} ({status}, {hint}): {detail}", status=status)
    if status == 429 or status >= 500:
        return BackendUnavailableError(
            f"{key} failed {what} ({status}): {detail}",
            status=status,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )
    return BackendRejectedError(f"{key} refused {what} ({status}): {detail}", status=status)


def _detail(response: requests.Response) -> str:
    """MLflow's `error_code: message`, else the start of the body."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and ("error_code" in answer or "message" in answer):
        code = answer.get("error_code", "")
        message = _snippet(str(answer.get("message", "")), 500)
        return f"{code}: {message}" if code else message
    return _snippet(response.text) or response.reason or "no details"


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- translation ----------------------------------------------------------------------------


def _translate(batch: Batch) -> _Translation:
    """The tags, dataset inputs and snapshot files of a batch's events (latest wins)."""
    plan = _Translation()
    for event in batch.events:
        if isinstance(event, TagsAdded):
            plan.tags.update(_tag_tags(event.tags))
        elif isinstance(event, GitState):
            _git(plan, event)
        elif isinstance(event, CodeState):
            plan.tags["mlflow.source.name"] = event.notebook or event.entrypoint or event.executable
            plan.tags["mlflow.source.type"] = "NOTEBOOK" if event.notebook else "LOCAL"
            plan.files["polytrack/code.json"] = _json(event)
        elif isinstance(event, EnvironmentState):
            plan.tags["polytrack.python"] = f"{event.implementation} {event.python}"
            plan.tags["polytrack.platform"] = event.platform
            if event.frameworks:
                plan.tags["polytrack.frameworks"] = ", ".join(
                    f"{name} {version}" for name, version in sorted(event.frameworks.items())
                )
            plan.files["polytrack/environment.json"] = _json(event)
        elif isinstance(event, HardwareState):
            if event.cpu_model:
                plan.tags["polytrack.cpu"] = event.cpu_model
            plan.tags["polytrack.gpus"] = ", ".join(gpu.name for gpu in event.gpus) or "none"
            plan.files["polytrack/hardware.json"] = _json(event)
        elif isinstance(event, SeedState):
            plan.tags["polytrack.seed"] = str(event.seed)
            plan.files["polytrack/seeds.json"] = _json(event)
        elif isinstance(event, DataRef):
            plan.tags[_mlflow_name(f"polytrack.data.{event.name}")] = event.digest
            if event.role == "input":
                plan.datasets.append(_dataset(event))
        elif isinstance(event, RunLinked):
            plan.tags[f"polytrack.{event.relation}"] = event.run_id
        elif isinstance(event, OutputsSet):  # MLflow has no outputs: tags, as JSON values
            for name, value in event.outputs.items():
                text = value if isinstance(value, str) else json.dumps(value)
                plan.tags[_mlflow_name(f"polytrack.output.{name}")] = text
        # ParamsSet and metrics are sent on their own; StatusChanged through set_status,
        # ArtifactLogged through upload_artifact; the rest is the journal's bookkeeping.
    return plan


def _git(plan: _Translation, git: GitState) -> None:
    if not git.available:
        return
    for tag, value in (
        ("mlflow.source.git.commit", git.commit),
        ("mlflow.source.git.branch", git.branch),
        ("mlflow.source.git.repoURL", git.remote),
    ):
        if value:
            plan.tags[tag] = value
    if git.dirty is not None:
        plan.tags["polytrack.git.dirty"] = "true" if git.dirty else "false"
    plan.files["polytrack/git.json"] = _json(git)


def _dataset(ref: DataRef) -> dict[str, Any]:
    """An MLflow DatasetInput for a data ref; the digest shortened to MLflow's 36 chars."""
    source: dict[str, Any]
    if ref.path:
        source_type, source = "local", {"uri": ref.path}
    else:
        source_type, source = "code", {"tags": {"polytrack.kind": ref.kind}}
    profile = {"kind": ref.kind, "size": ref.size, "files": ref.files, "digest": ref.digest}
    return {
        "tags": [],
        "dataset": {
            "name": ref.name[:MAX_DATASET_NAME],
            "digest": ref.digest.removeprefix("sha256:")[:MAX_DATASET_DIGEST],
            "source_type": source_type,
            "source": json.dumps(source),
            "profile": json.dumps(profile),
        },
    }


def _tag_tags(tags: Iterable[str]) -> dict[str, str]:
    return {_mlflow_name(f"polytrack.tag.{tag}"): tag for tag in tags}


def _clean_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {_mlflow_name(key): value[:MAX_TAG_VALUE] for key, value in tags.items()}


def _json(record: Any) -> bytes:
    return (json.dumps(attrs.asdict(record), indent=2, sort_keys=True) + "\n").encode()


def _param_text(value: ParamValue) -> str:
    """A param as MLflow's client sends it: `str(value)` (True -> "True", [1] -> "[1]")."""
    return str(value)


def _mlflow_name(name: str) -> str:
    """`name` if MLflow accepts it as a metric, param or tag key; else a stable stand-in."""
    if name and len(name) <= MAX_NAME and _NAME_OK.fullmatch(name) and _path_unique(name):
        return name
    suffix = "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    clean = _NAME_BAD_CHAR.sub("_", name)
    if not _path_unique(clean):
        clean = clean.replace("/", "_")
    if not _path_unique(clean + suffix):  # ".", "..": still a relative path of its own
        clean = "_" + clean
    return clean[: MAX_NAME - len(suffix)] + suffix


def _path_unique(name: str) -> bool:
    """MLflow's `path_not_unique`, negated: names double as file paths in its stores."""
    norm = posixpath.normpath(name)
    return not (norm != name or norm == "." or norm.startswith("..") or norm.startswith("/"))


# -- media ----------------------------------------------------------------------------------



def _media_of(batch: Batch) -> list[MediaLogged]:
    """The batch's media records, the later of two for one (kind, name, step) only: a
    reader keeps the last, and both would write the same table and media files."""
    latest: dict[tuple[str, str, int], MediaLogged] = {}
    for event in batch.events:
        if isinstance(event, MediaLogged):
            latest[(event.kind, event.name, event.step)] = event
    return list(latest.values())


def _media_files(run_id: str, record: MediaLogged) -> list[_MediaFile]:
    """The MLflow artifacts of one media record (see the module doc)."""
    name = _media_name(record.name)
    if record.kind == "image":
        return _image_files(run_id, record, name)
    if record.kind == "table":
        path = _table_path(record)
        return [_MediaFile(path, blob.digest, _mlflow_table) for blob in record.blobs[:1]]
    extensions = [MEDIA_EXTENSIONS.get(blob.media_type, "bin") for blob in record.blobs]
    files = []
    for index, (blob, extension) in enumerate(zip(record.blobs, extensions, strict=True)):
        # One blob per type, nearly always (a figure: .json, .png, maybe .html).
        stem = f"step-{record.step}"
        if extensions.count(extension) > 1:
            stem += f"-{index}"
        path = f"media/{record.kind}/{name}/{stem}.{extension}"
        files.append(_MediaFile(path, blob.digest, _same))
    return files


def _image_files(run_id: str, record: MediaLogged, name: str) -> list[_MediaFile]:
    """What `mlflow.log_image(image, key=name, step=step)` writes, once per image of the
    batch: the PNG and its WebP thumbnail, named `images/<key>+step+<step>+timestamp+<ms>+
    <uuid>[+compressed]` with "/" in the key as "~" (MLflow 3.x; its UI reads "%" too)."""
    key = name.replace("/", "~")
    stamp = round(record.logged_at * 1000)
    files = []
    for index, blob in enumerate(record.blobs):
        if blob.media_type != "image/png":
            continue
        unique = uuid.uuid5(_IMAGE_NAMESPACE, f"{run_id}\0{record.name}\0{record.step}\0{index}")
        stem = f"images/{key}+step+{record.step}+timestamp+{stamp}+{unique}"
        files.append(_MediaFile(f"{stem}.png", blob.digest, _same))
        files.append(_MediaFile(f"{stem}+compressed.webp", blob.digest, _thumbnail))
    return files


def _table_path(record: MediaLogged) -> str:
    """`tables/<name>/step-<step>.json`: a table's steps side by side in one folder."""
    return f"tables/{_media_name(record.name)}/step-{record.step}.json"


def _media_name(name: str) -> str:
    """`name` if `mlflow.log_image` takes it as a key and it is a clean relative path (so
    it also passes `log_table`'s file name check); else a stable stand-in, as `_mlflow_name`
    makes (`loss@val` -> `loss_val-1a2b3c4d`)."""
    if len(name) <= MAX_NAME and _MEDIA_NAME_OK.fullmatch(name) and _path_unique(name):
        return name
    suffix = "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    clean = _MEDIA_NAME_BAD_CHAR.sub("_", name)
    if not _path_unique(clean):
        clean = clean.replace("/", "_")
    if not _path_unique(clean + suffix):
        clean = "_" + clean
    return clean[: MAX_NAME - len(suffix)] + suffix


def _same(data: bytes) -> bytes:
    return data


def _thumbnail(png: bytes) -> bytes:
    """The WebP that `log_image` stores beside a PNG: scaled so that its longer side is
    256 pixels (up or down, as `mlflow.tracking.multimedia.compress_image_size` does),
    saved with Pillow's WebP defaults."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        width, height = image.size
        if width > height:
            size = (THUMBNAIL_SIDE, max(1, int(height * (THUMBNAIL_SIDE / width))))
        else:
            size = (max(1, int(width * (THUMBNAIL_SIDE / height))), THUMBNAIL_SIDE)
        small = image.resize(size)
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA" if "A" in small.getbands() else "RGB")
    out = io.BytesIO()
    small.save(out, format="WEBP")
    return out.getvalue()


def _mlflow_table(data: bytes) -> bytes:
    """A table's blob as `log_table` writes it (pandas' `orient="split"` JSON without the
    index): {"columns": [...], "data": [[...], ...]}; polytrack's "dtypes" is left out."""
    payload = json.loads(data)
    table = {"columns": payload["columns"], "data": payload["data"]}
    return json.dumps(table, separators=(",", ":"), ensure_ascii=False).encode()


def _pair(key: str, value: str) -> str:
    return '{"key":' + json.dumps(key) + ',"value":' + json.dumps(value) + "}"


def _metric_entries(metrics: Sequence[Series]) -> Iterator[str]:
    """Each point as the JSON object runs/log-batch takes, ASCII (so len() is bytes)."""
    for series in metrics:
        if not len(series):
            continue
        head = '{"key":' + json.dumps(_mlflow_name(series.key)) + ',"value":'
        values = [repr(value) for value in series.values.tolist()]
        if not bool(np.isfinite(series.values).all()):
            values = [_NON_FINITE.get(value, value) for value in values]
        stamps = np.rint(series.times * 1000.0).astype(np.int64).tolist()
        steps = series.steps.tolist()
        for value, stamp, step in zip(values, stamps, steps, strict=True):
            yield f'{head}{value},"timestamp":{stamp},"step":{step}}}'


def _chunks(entries: Iterable[str], limit: int, overhead: int) -> Iterator[list[str]]:
    """`entries` in groups of at most `limit` whose joined size keeps a body within 1 MB."""
    budget = MAX_BATCH_BYTES - overhead
    chunk: list[str] = []
    size = 0
    for entry in entries:
        cost = len(entry) + 1  # its comma
        if chunk and (len(chunk) >= limit or size + cost > budget):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += cost
    if chunk:
        yield chunk


def _oldest(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The `info` of the run every process picks among twins: earliest start, lowest id."""
    infos = [run["info"] for run in runs]
    return min(infos, key=lambda info: (int(info.get("start_time", 0)), str(info["run_id"])))


def _remote_run(info: Mapping[str, Any]) -> _RemoteRun:
    return _RemoteRun(
        experiment_id=str(info["experiment_id"]),
        run_id=str(info["run_id"]),
        artifact_path=_proxied_path(str(info.get("artifact_uri", ""))),
    )


def _proxied_path(artifact_uri: str) -> str | None:
    """`mlflow-artifacts:/1/<run>/artifacts` -> `1/<run>/artifacts`; None for other stores."""
    parts = urlsplit(artifact_uri)
    if parts.scheme != "mlflow-artifacts":
        return None
    return parts.path.strip("/") or None


@contextlib.contextmanager
def _locked(workdir: Path) -> Iterator[None]:
    """An exclusive `flock` on a file in `workdir` (none on Windows, or where unwritable)."""
    lock: IO[str] | None = None
    if sys.platform != "win32":
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            lock = open(workdir / ".mlflow-open.lock", "a")  # noqa: SIM115 - closed below
        except OSError:
            lock = None  # an unwritable workdir costs the lock, not the sync
    if lock is None:
        yield  # the search after create still limits twins
        return
    with lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _remember(workdir: Path, key: str, run_id: str, remote: _RemoteRun) -> None:
    """Write the mapping for the next process; a failure only costs that one a search."""
    record = {
        "key": key,
        "polytrack_run_id": run_id,
        "experiment_id": remote.experiment_id,
        "run_id": remote.run_id,
    }
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        temporary = workdir / f".{_WORKDIR_FILE}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, workdir / _WORKDIR_FILE)
    except OSError:
        pass
