"""`PolyaxonBackend`: ships runs to a Polyaxon server (REST API + streams API) with requests.

URI: `polyaxon+http(s)://host:port[/prefix]/<owner>/<project>[?namespace=polyaxon]`; the
token comes from `POLYTRACK_BACKEND_TOKEN`, `POLYAXON_AUTH_TOKEN` or the config file and
is sent as `Authorization: Token <t>` (Polyaxon's DRF token scheme).

How a polytrack run lands in Polyaxon:

- the run: a non-managed run (`kind: job`, `managed_by: user`) created by `POST runs/sync`
  with the uuid `run_uuid(owner, project, run id)`, so every process finds it again;
  name (made a slug, `[-a-zA-Z0-9_]`), notes -> description, tags, created_at (also
  started_at), and `meta_info.polytrack` (run id, original name, host, pid, version);
- params -> `inputs` (PATCH with `merge: true`; a non-finite float becomes its string);
  tags added later -> tags (merged);
- git state -> a `coderef` lineage input named by the commit (`summary`: commit, branch,
  url, is_dirty) and `meta_info.git`; code, environment, hardware, seeds, links, hand-overs
  -> `meta_info.code`, `.environment`, `.hardware`, `.seeds`, `.reproduces`, `.handed_over`
  (the latest of each kind wins);
- data refs -> `data` lineage artifacts; logged artifacts -> `file`/`dir`/`model`
  (`artifact` for other kinds) lineage artifacts; both with `summary.hash` = the digest;
- metrics -> event files `events/metric/<name>.plx` (traceml's `step|timestamp|metric`
  format) that the dashboard draws; NaN and infinities are kept as points, read as null;
- media -> Polyaxon's own event kinds, `events/<kind>/<name>.plx` (image, histogram,
  curve, confusion, chart, html, text, dataframe, audio, video), their files under
  `assets/<kind>/<name>_<step>.<ext>` (`polytrack.sync.backends.polyaxon_events`);
- statuses -> status conditions (skipped is Polyaxon's `skipped`); crashed -> failed with
  reason `crashed`; a final status first uploads every staged point and sets `outputs`
  to each metric's last finite value;
- artifacts -> files in the run's artifacts store under their name (streams API).

Metric names become event names as Polyaxon's own client makes them (`to_fqn_name`):
accents dropped, characters other than letters, digits, `_`, `-`, `.`, `/`, `\\` and
spaces removed, each run of `/` or `\\` becomes `__`, each run of `-`, `.` or spaces
becomes `-`: `system/cpu` -> `system__cpu`, `val.loss` -> `val-loss`. Two keys that map to
the same name get `-2`, `-3`, ... in the order they first arrive.

Why metrics are staged: Polyaxon keeps one file per metric and an upload replaces it, so
the backend appends each batch's points to an append-only log in the run's `workdir`
(one fdatasync per batch; each record holds the batch's seq, its lines per metric and a
CRC, so the points and "seq applied" are committed together and a torn tail is dropped
on the next open), then uploads the changed files whole: at most every `upload_interval`
seconds (stretched to three times the last upload's duration, so that re-uploading a
growing file never takes more than a quarter of the time), on a final status, on
`close()`, and on `open_run` when an earlier process left changes not uploaded.

Media lines are staged the same way, in the batch's record. A media event's asset (the
PNG, the WAV, the table as CSV, ...) is read from the home's blob store and uploaded by
`write` before the batch's lines are staged, so that an event never points at a file the
server lacks; each asset path's source digest is remembered with the uploaded artifacts,
so a batch sent again uploads nothing twice. The home is the one the run directory is in
(`<home>/runs/<id>/sync/<target>` is the workdir), unless `home=` names it.

Every HTTP failure is translated in one function, `_failure`. A bare 405 (empty body) to
a POST/PATCH is Polyaxon's internal error in disguise: its 500 handler is a view that
answers GET only, so an exception raised while serving any other method comes back as
"405, Allow: GET, HEAD, OPTIONS". It is treated as the 500 it is (retried with backoff).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import secrets
import time
import unicodedata
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import attrs
import requests

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
    ArtifactLogged,
    CodeState,
    DataRef,
    EnvironmentState,
    GitState,
    HandedOver,
    HardwareState,
    MediaLogged,
    NoteSet,
    OutputsSet,
    RunLinked,
    RunRenamed,
    RunRestored,
    RunStarted,
    RunTrashed,
    SeedState,
    TagsChanged,
)
from polytrack.redact import redact_url
from polytrack.store.blobs import BlobStore
from polytrack.sync.backends.base import Artifact, Batch, home_of
from polytrack.sync.backends.config import BackendConfig, credentials_for, uri_key
from polytrack.sync.backends.http import retry_after
from polytrack.sync.backends.polyaxon_events import (
    MediaEvent,
    StagedEvents,
    event_name,
    media_events,
)

__all__ = ["PolyaxonBackend", "event_name", "run_uuid"]

# Fixed forever: the uuid of a run on the server is derived from it.
_RUN_NAMESPACE: Final = uuid.UUID("6f1d3c1e-5a8b-4c1e-9a57-2f0c7b1d9e42")
_STATUS_TYPES: Final = {
    "created": "created",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "stopped": "stopped",
    "skipped": "skipped",  # Polyaxon's own (V1Statuses.SKIPPED)
    "crashed": "failed",
}
_FINAL: Final = frozenset({"succeeded", "failed", "stopped", "skipped", "crashed"})
_ARTIFACT_KINDS: Final = {"file": "file", "directory": "dir", "model": "model"}
_CHUNK: Final = 1 << 20  # bytes per piece of a streamed upload body
_MESSAGE_LIMIT: Final = 300


def run_uuid(owner: str, project: str, run_id: str) -> str:
    """The Polyaxon uuid (hex) of a polytrack run in `owner/project`: the same in every
    process, so a sync that restarts finds the run it created.

    Example: `run_uuid("default", "mnist", "k2x9q1vd")` -> `'c23e7078cdf250eca243f0561c3f4080'`
    """
    return uuid.uuid5(_RUN_NAMESPACE, f"{owner}/{project}/{run_id}").hex


def _slug(name: str) -> str:
    # Run names must match Django's validate_slug and fit 128 characters.
    value = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^-a-zA-Z0-9_]+", "-", value).strip("-")
    return value[:128] or "run"



def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, tz=dt.timezone.utc).isoformat()


# -- the one place where HTTP failures become BackendErrors --------------------------------


def _failure(
    what: str,
    *,
    response: requests.Response | None = None,
    exc: BaseException | None = None,
    malformed: bool = False,
) -> BackendError:
    """The BackendError for a failed request: `exc` raised by requests, or `response`
    (an error status, or a success whose body was not the JSON expected)."""
    if response is None:
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidHeader,
            ),
        ):
            return BackendConfigError(f"{what}: {type(exc).__name__}")
        if isinstance(exc, requests.Timeout):
            return BackendUnavailableError(f"{what}: timed out")
        if isinstance(exc, requests.ConnectionError):
            return BackendUnavailableError(f"{what}: cannot connect ({_exc_reason(exc)})")
        return BackendUnavailableError(f"{what}: {_exc_reason(exc)}")
    status = response.status_code
    said = _server_message(response)
    shown = f"{what}: {status} {response.reason or ''}".rstrip() + (f": {said}" if said else "")
    if malformed:
        return BackendUnavailableError(
            f"{what}: {status} with a body that is not the JSON expected: {said!r}",
            status=status,
        )
    if status in (401, 403):
        return BackendAuthError(shown, status=status)
    if status == 429 or status >= 500:
        return BackendUnavailableError(
            shown, status=status, retry_after=retry_after(response.headers.get("Retry-After"))
        )
    method = response.request.method if response.request is not None else None
    if status == 405 and not response.content and method not in (None, "GET", "HEAD"):
        # Polyaxon's internal error in disguise (see the module docstring).
        return BackendUnavailableError(
            f"{what}: 405 with an empty body: an internal error of the server", status=status
        )
    return BackendRejectedError(shown, status=status)


def _exc_reason(exc: BaseException | None) -> str:
    # urllib3 nests the reason (NewConnectionError: ... Connection refused); keep the
    # innermost one, which says what happened without repeating the URL.
    if exc is None:
        return "no answer"
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return text[:_MESSAGE_LIMIT]


def _server_message(response: requests.Response) -> str:
    """What the server said, in one short line: DRF's `detail`, field errors, or text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return " ".join(text.split())[:_MESSAGE_LIMIT]
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:_MESSAGE_LIMIT]
    if isinstance(body, dict):
        parts = [f"{key}: {_flat(value)}" for key, value in body.items()]
        return "; ".join(parts)[:_MESSAGE_LIMIT]
    return _flat(body)[:_MESSAGE_LIMIT]


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_flat(item) for item in value)
    return str(value)


# -- JSON bodies ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """`value` with tuples as lists, non-finite floats as strings ("nan", "inf"): JSON that
    the server's parser accepts (it refuses NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _record(event: Any) -> dict[str, Any]:
    return _jsonable(attrs.asdict(event, recurse=True))  # type: ignore[no-any-return]


# -- streamed multipart bodies -----------------------------------------------------------


class _MultipartBody:
    """A multipart/form-data body of one JSON field and one file, streamed: the file's
    bytes are pieces in memory and (fd, offset, length) spans read as they are sent.

    requests sends an iterable with a `__len__` with a Content-Length, chunk by chunk.
    """

    def __init__(
        self,
        fields: Mapping[str, str],
        filename: str,
        pieces: Sequence[bytes | tuple[int, int, int]],
    ) -> None:
        self.boundary = secrets.token_hex(16)
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for key, value in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="upload_file"; '
            f"{_filename_parameter(filename)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._pieces: list[bytes | tuple[int, int, int]] = [
            head,
            *pieces,
            f"\r\n--{self.boundary}--\r\n".encode(),
        ]
        self._length = sum(p[2] if isinstance(p, tuple) else len(p) for p in self._pieces)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        buffer = bytearray()
        for piece in self._pieces:
            if isinstance(piece, bytes):
                buffer += piece
            else:
                fd, offset, length = piece
                while length:
                    data = os.pread(fd, min(length, _CHUNK), offset)
                    if not data:
                        raise OSError(f"the staged file ended {length} bytes early")
                    buffer += data
                    offset += len(data)
                    length -= len(data)
                    if len(buffer) >= _CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
            if len(buffer) >= _CHUNK:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)


def _filename_parameter(filename: str) -> str:
    if filename.isascii() and not set(filename) & set('"\\\r\n'):
        return f'filename="{filename}"'
    return f"filename*=UTF-8''{quote(filename, safe='')}"


# -- the backend ---------------------------------------------------------------------------


@attrs.define
class _Run:
    """What the backend holds of one opened run."""

    uuid: str
    staged: StagedEvents
    next_upload: float  # time.monotonic() after which a due upload may start
    gap: float
    blobs: BlobStore  # the home's, where media bytes are read from


class PolyaxonBackend:
    """Ships runs to one Polyaxon project; see the module docstring for the mapping.

    Args:
        url: the server, `http(s)://host:port[/prefix]`.
        owner: the organisation or user (`default` on Polyaxon CE).
        project: created on first use if missing.
        token: sent as `Authorization: Token <token>`.
        username, password: HTTP basic auth instead (a proxy in front of the server).
        namespace: the streams API's namespace segment (the agent's namespace).
        upload_interval: least seconds between two uploads of the staged event files.
        timeout: (connect, read) seconds for each request.
        home: the polytrack home whose blob store holds the media bytes; by default the
            one the run's workdir is in.

    Example:
        >>> backend = PolyaxonBackend.from_uri(
        ...     "polyaxon+http://localhost:8000/default/mnist", environ=os.environ
        ... )
        >>> polytrack.init(backend=backend)
    """

    def __init__(
        self,
        url: str,
        owner: str,
        project: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        namespace: str = "polyaxon",
        upload_interval: float = 10.0,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        session: requests.Session | None = None,
        home: Path | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._owner, self._project, self._namespace = owner, project, namespace
        self._upload_interval = upload_interval
        self._timeout = timeout
        self._home = home
        self._session = session or requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Token {token}"
        elif username and password:
            self._session.auth = (username, password)
        self._runs: dict[str, _Run] = {}
        self._closed = False
        self._key = uri_key(f"polyaxon+{self._url}/{owner}/{project}")

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        environ: Mapping[str, str],
        config: BackendConfig | None = None,
        **options: Any,
    ) -> PolyaxonBackend:
        """The backend a `polyaxon+http(s)://host:port/<owner>/<project>` URI names.

        Query options: `namespace` (streams API), `upload_interval` (seconds).

        Raises:
            BackendConfigError: not that shape, or an unknown query option.
        """
        shown = redact_url(uri)
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in ("polyaxon+http", "polyaxon+https") or not parts.hostname:
            raise BackendConfigError(
                f"{shown!r} is not a Polyaxon URI: polyaxon+http(s)://host:port/owner/project"
            )
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2:
            raise BackendConfigError(
                f"{shown!r} names no project: polyaxon+http(s)://host:port/owner/project"
            )
        *prefix, owner, project = segments
        query = dict(parse_qsl(parts.query))
        unknown = sorted(set(query) - {"namespace", "upload_interval"})
        if unknown:
            raise BackendConfigError(f"{shown!r}: unknown option(s) {', '.join(unknown)}")
        if "namespace" in query:
            options.setdefault("namespace", query["namespace"])
        if "upload_interval" in query:
            try:
                options.setdefault("upload_interval", float(query["upload_interval"]))
            except ValueError:
                raise BackendConfigError(
                    f"{shown!r}: upload_interval must be a number of seconds"
                ) from None
        try:
            port = parts.port
        except ValueError:
            raise BackendConfigError(f"{shown!r}: the port is not a number") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = f"{host}:{port}" if port else host
        path = "/" + "/".join(prefix) if prefix else ""
        url = urlunsplit((scheme.split("+", 1)[1], netloc, path, "", ""))
        credentials = credentials_for(
            uri, environ, config or BackendConfig(), env_token=("POLYAXON_AUTH_TOKEN",)
        )
        return cls(
            url,
            owner,
            project,
            token=credentials.token,
            username=credentials.username,
            password=credentials.password,
            **options,
        )

    def __repr__(self) -> str:
        return f"<PolyaxonBackend {self._key}: {len(self._runs)} runs>"

    @property
    def key(self) -> str:
        return self._key

    # -- the Backend protocol ----------------------------------------------------------------

    def open_run(self, run: RunStarted, *, workdir: Path) -> None:
        """Create the Polyaxon run (and project), or find the one made before; upload
        what an earlier process staged and did not upload."""
        if run.id in self._runs:
            state = self._runs[run.id]
        else:
            try:
                staged = StagedEvents.open(workdir)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot open the staging of run {run.id} in {workdir}: {exc}"
                ) from exc
            home = self._home or home_of(workdir) or workdir
            uuid_hex = run_uuid(self._owner, self._project, run.id)
            state = _Run(uuid_hex, staged, 0.0, 0.0, BlobStore(home))
            self._runs[run.id] = state
        if self._get_run(state.uuid) is None:
            self._create_run(run, state.uuid)
        state.next_upload = time.monotonic() + self._upload_interval
        state.gap = self._upload_interval
        if state.staged.pending():
            self._flush(state, force=True)

    def write(self, run_id: str, batch: Batch) -> None:
        """Apply the batch's records to the run, stage its points; upload if one is due.

        A record the server refuses (BackendRejectedError) does not cost the batch its
        points: they are staged, and the batch counts as applied, before it is raised.
        """
        state = self._run(run_id)
        staged = state.staged
        if batch.seq not in staged.seqs:
            refused: BackendRejectedError | None = None
            patch, lineage = self._changes(batch)
            try:
                if patch:
                    self._api("PATCH", self._run_path(state), json_body={**patch, "merge": True})
                if lineage:
                    path = self._run_path(state, "lineage/artifacts")
                    self._api("POST", path, json_body={"artifacts": lineage})
                for event in batch.events:  # changes made afterwards, last and in order
                    if isinstance(event, CHANGE_EVENTS):
                        self._apply_change(state, event)
            except BackendRejectedError as exc:
                refused = exc
            media, skipped = self._media(state, batch)
            if skipped and refused is None:
                refused = BackendRejectedError(
                    f"run {run_id}: {len(skipped)} media not sent to Polyaxon: "
                    + "; ".join(skipped[:3])
                )
            try:
                staged.append(batch.seq, [s for s in batch.metrics if len(s)], media)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot stage batch {batch.seq} of run {run_id} in {staged.directory}: "
                    f"{exc.strerror or exc}"
                ) from exc
            if refused is not None:
                raise refused
        self._flush(state, force=False)

    def set_status(
        self, run_id: str, status: str, *, at: float, message: str | None = None
    ) -> None:
        """Post the status as a condition; a final one first uploads every staged point
        and sets `outputs` to the last metric values."""
        state = self._run(run_id)
        kind = _STATUS_TYPES.get(status)
        if kind is None:
            raise BackendRejectedError(f"run {run_id}: unknown status {status!r}")
        if status in _FINAL:
            self._flush(state, force=True)
            outputs = {
                name: value for name, value in state.staged.last.items() if math.isfinite(value)
            }
            if outputs:
                self._api(
                    "PATCH", self._run_path(state), json_body={"outputs": outputs, "merge": True}
                )
        stamp = _iso(at)
        condition = {
            "type": kind,
            "status": True,
            "reason": "crashed" if status == "crashed" else "polytrack",
            "message": message or ("the run's process died" if status == "crashed" else ""),
            "last_update_time": stamp,
            "last_transition_time": stamp,
        }
        self._api("POST", self._run_path(state, "statuses"), json_body={"condition": condition})

    def upload_artifact(self, run_id: str, artifact: Artifact) -> None:
        """Upload the file under `artifact.name` in the run's artifacts (once per digest)."""
        state = self._run(run_id)
        staged = state.staged
        if staged.artifacts.get(artifact.name) == artifact.digest:
            return
        directory, _, filename = artifact.name.rpartition("/")
        try:
            fd = os.open(artifact.path, os.O_RDONLY)
        except OSError as exc:
            raise BackendRejectedError(
                f"artifact {artifact.name!r} of run {run_id}: cannot read {artifact.path}: "
                f"{exc.strerror}"
            ) from exc
        try:
            size = os.fstat(fd).st_size
            if size != artifact.size:
                raise BackendRejectedError(
                    f"artifact {artifact.name!r} of run {run_id}: {artifact.path} holds {size} "
                    f"bytes, not the {artifact.size} logged"
                )
            self._upload(state, directory, filename, [(fd, 0, size)])
        finally:
            os.close(fd)
        staged.artifacts[artifact.name] = artifact.digest
        staged.save_uploaded()

    def close(self) -> None:
        """Upload what is staged, then release the connections and files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        error: BackendError | None = None
        try:
            for state in self._runs.values():
                try:
                    self._flush(state, force=True)
                except BackendError as exc:  # staged: the next process uploads it
                    error = error or exc
        finally:
            for state in self._runs.values():
                state.staged.close()
            self._session.close()
        if error is not None:
            raise error

    # -- what a batch changes ------------------------------------------------------------------

    def _changes(self, batch: Batch) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The run PATCH (inputs, tags, meta_info) and the lineage artifacts of a batch."""
        patch: dict[str, Any] = {}
        params = batch.params()
        if params:
            patch["inputs"] = _jsonable(params)
        tags = batch.tags()
        if tags:
            patch["tags"] = list(tags)
        meta: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        lineage: dict[str, dict[str, Any]] = {}
        for event in batch.events:
            if isinstance(event, OutputsSet):  # log_outputs: Polyaxon's own outputs
                if event.reset:
                    outputs.clear()
                outputs.update(event.outputs)
            elif isinstance(event, GitState):
                meta["git"] = _record(event)
                if event.commit:
                    code_ref = {
                        "commit": event.commit,
                        "branch": event.branch,
                        "url": event.remote,
                        "is_dirty": event.dirty,
                    }
                    lineage[f"coderef:{event.commit}"] = {
                        "name": event.commit,
                        "kind": "coderef",
                        "is_input": True,
                        "summary": _jsonable(code_ref),
                    }
            elif isinstance(event, CodeState):
                meta["code"] = _record(event)
            elif isinstance(event, EnvironmentState):
                meta["environment"] = _record(event)
            elif isinstance(event, HardwareState):
                meta["hardware"] = _record(event)
            elif isinstance(event, SeedState):
                meta["seeds"] = _record(event)
            elif isinstance(event, RunLinked):
                meta[event.relation] = {
                    "run": event.run_id,
                    "uuid": run_uuid(self._owner, self._project, event.run_id),
                }
            elif isinstance(event, HandedOver):
                meta["handed_over"] = _record(event)
            elif isinstance(event, DataRef):
                summary = {
                    "hash": event.digest,
                    "size": event.size,
                    "files": event.files,
                    "kind": event.kind,
                }
                lineage[f"data:{event.name}:{event.role}"] = {
                    "name": event.name,
                    "kind": "data",
                    "path": event.path,
                    "is_input": event.role == "input",
                    "summary": summary,
                }
            elif isinstance(event, ArtifactLogged):
                summary = {"hash": event.digest, "size": event.size, "files": len(event.files)}
                if event.framework:
                    summary["framework"] = event.framework
                if event.metadata:
                    summary["metadata"] = _jsonable(event.metadata)
                lineage[f"artifact:{event.name}:{event.role}"] = {
                    "name": event.name,
                    "kind": _ARTIFACT_KINDS.get(event.kind, "artifact"),
                    "path": event.name,
                    "is_input": event.role == "input",
                    "summary": summary,
                }
        if meta:
            patch["meta_info"] = meta
        if outputs:
            patch["outputs"] = _jsonable(outputs)
        return patch, list(lineage.values())

    # -- media -------------------------------------------------------------------------------

    def _media(
        self, state: _Run, batch: Batch
    ) -> tuple[list[tuple[str, str, int, bytes]], list[str]]:
        """The batch's media events as lines to stage, their assets uploaded first; and
        what could not be sent (a blob missing, an asset the server refused).

        Raises:
            BackendUnavailableError: an upload failed; nothing is staged, the batch is
                sent again (assets uploaded already are not).
        """
        chosen: dict[tuple[str, str, int], MediaEvent] = {}  # the last one per step wins
        skipped: list[str] = []
        for event in batch.events:
            if isinstance(event, MediaLogged):
                try:
                    made = media_events(event, state.blobs.read_bytes)
                except ValueError as exc:
                    skipped.append(str(exc))
                    continue
                for one in made:
                    chosen.pop((one.kind, one.key, one.step), None)
                    chosen[(one.kind, one.key, one.step)] = one
        staged = state.staged
        lines: list[tuple[str, str, int, bytes]] = []
        uploaded = False
        try:
            for one in chosen.values():
                name = staged.media_name_for(one.kind, one.key)
                if one.asset is not None:
                    path = one.asset_path(name)
                    if staged.artifacts.get(path) != one.asset.marker:
                        try:
                            data = one.asset.load()
                        except (StoreError, ValueError) as exc:
                            skipped.append(f"{one.kind} {one.key!r} at step {one.step}: {exc}")
                            continue
                        directory, _, filename = path.rpartition("/")
                        try:
                            self._upload(state, directory, filename, [data])
                        except BackendRejectedError as exc:
                            skipped.append(str(exc))
                            continue
                        staged.artifacts[path] = one.asset.marker
                        uploaded = True
                lines.append((f"{one.kind}/{name}", one.key, one.step, one.line(name)))
        finally:
            if uploaded:
                staged.save_uploaded()
        return lines, skipped

    # -- uploads -----------------------------------------------------------------------------

    def _flush(self, state: _Run, *, force: bool) -> None:
        """Upload the event files that changed, if forced or due."""
        pending = state.staged.pending()
        if not pending or (not force and time.monotonic() < state.next_upload):
            return
        started = time.monotonic()
        for name in pending:
            pieces, _ = state.staged.event_file(name)
            total = state.staged.totals[name]
            kind, _, media_name = name.rpartition("/")  # a media file is `<kind>/<name>`
            self._upload(state, f"events/{kind or 'metric'}", f"{media_name}.plx", pieces)
            state.staged.uploaded[name] = total
        state.staged.save_uploaded()
        took = time.monotonic() - started
        state.gap = max(self._upload_interval, 3 * took)
        state.next_upload = time.monotonic() + state.gap

    def _upload(
        self,
        state: _Run,
        directory: str,
        filename: str,
        pieces: Sequence[bytes | tuple[int, int, int]],
    ) -> None:
        """POST one file to the run's artifacts through the streams API (replacing it)."""
        fields = {"json": json.dumps({"path": directory, "untar": False, "overwrite": True})}
        body = _MultipartBody(fields, filename, pieces)
        url = (
            f"{self._url}/streams/v1/{self._namespace}/{self._owner}/{self._project}"
            f"/runs/{state.uuid}/artifact"
        )
        self._send("POST", url, data=body, headers={"Content-Type": body.content_type})

    # -- requests ------------------------------------------------------------------------------

    def _apply_change(self, state: _Run, event: object) -> None:
        """A change made to the run afterwards (`polytrack.history.manage`): name, tags
        and description by PATCH; the trash as Polyaxon's archive (and restore)."""
        path = self._run_path(state)
        if isinstance(event, RunRenamed):
            self._api("PATCH", path, json_body={"name": _slug(event.name)})
        elif isinstance(event, NoteSet):
            self._api("PATCH", path, json_body={"description": event.notes or ""})
        elif isinstance(event, TagsChanged):
            if event.added:
                self._api("PATCH", path, json_body={"tags": list(event.added), "merge": True})
            if event.removed:
                found = self._get_run(state.uuid) or {}
                kept = [tag for tag in found.get("tags") or [] if tag not in event.removed]
                self._api("PATCH", path, json_body={"tags": kept, "merge": False})
        elif isinstance(event, RunTrashed):
            self._api("POST", self._run_path(state, "archive"))
        elif isinstance(event, RunRestored):
            self._api("POST", self._run_path(state, "restore"))

    def _run(self, run_id: str) -> _Run:
        if self._closed:
            raise BackendRejectedError(f"{self._key} is closed")
        try:
            return self._runs[run_id]
        except KeyError:
            raise BackendRejectedError(f"run {run_id} was never opened on {self._key}") from None

    def _run_path(self, state: _Run, tail: str = "") -> str:
        return f"{self._owner}/{self._project}/runs/{state.uuid}" + (f"/{tail}" if tail else "")

    def _get_run(self, uuid_hex: str) -> dict[str, Any] | None:
        """The run, or None when the server has no such run in this project."""
        try:
            found = self._api("GET", f"{self._owner}/{self._project}/runs/{uuid_hex}")
        except BackendRejectedError as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def _create_run(self, run: RunStarted, uuid_hex: str) -> None:
        """`POST runs/sync` with our uuid; creates the project first if it is missing."""
        body: dict[str, Any] = {
            "uuid": uuid_hex,
            "name": _slug(run.name),
            "description": run.notes,
            "tags": list(run.tags),
            "kind": "job",
            "runtime": "job",
            "is_managed": False,
            "created_at": _iso(run.created_at),
            "started_at": _iso(run.created_at),
            "meta_info": {
                "polytrack": {
                    "run_id": run.id,
                    "name": run.name,
                    "host": run.host,
                    "pid": run.pid,
                    "version": run.version,
                    # Polyaxon sets a run's `user` from the token that creates it and takes
                    # none in the body: who ran it is kept beside the rest of ours.
                    "user": run.user,
                }
            },
        }
        path = f"{self._owner}/{self._project}/runs/sync"
        for attempt in range(3):
            try:
                self._api("POST", path, json_body=body)
                return
            except BackendRejectedError as exc:
                if exc.status == 404 and attempt == 0:
                    self._create_project()
                elif exc.status == 400 and "already exists" in str(exc):
                    if self._get_run(uuid_hex) is not None:
                        return  # another process made it meanwhile
                    raise
                elif exc.status == 400 and "name" in str(exc) and attempt < 2:
                    # A reserved word ("model", "run", ...): keep it recognisable.
                    body["name"] = f"{body['name'][:119]}-{run.id[:8]}"
                else:
                    raise
        raise BackendRejectedError(f"cannot create run {run.id} in {self._key}")

    def _create_project(self) -> None:
        try:
            self._api("POST", f"{self._owner}/projects/create", json_body={"name": self._project})
        except BackendRejectedError as exc:
            if exc.status == 400 and "already exists" in str(exc):
                return  # made by another process meanwhile
            raise

    def _api(self, method: str, path: str, *, json_body: Any = None) -> Any:
        """Call `/api/v1/<path>`; the decoded JSON answer (None when empty)."""
        url = f"{self._url}/api/v1/{path}"
        kwargs: dict[str, Any] = {}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body, allow_nan=False).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        response = self._send(method, url, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise _failure(f"{method} {url}", response=response, malformed=True) from exc

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request; failures raised as BackendErrors by `_failure`."""
        what = f"{method} {url}"
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise _failure(what, exc=exc) from exc
        except OSError as exc:  # reading a file we stream failed
            raise BackendUnavailableError(f"{what}: {exc}") from exc
        if response.status_code >= 400:
            raise _failure(what, response=response)
        return response
