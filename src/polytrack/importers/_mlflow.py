"""Read an MLflow tracking store (`./mlruns`, `sqlite:///x.db`, `http(s)://server`) as
`SourceRun`s, with MLflow's own client (`pip install "polytrack[import-mlflow]"`).

What maps to what:

```
MLflow                               polytrack
experiment name                      project (unless --project)
run name (mlflow.runName), run id    name, and the origin link `mlflow:<uri>#<run id>`
start_time, end_time (ms)            created at, finished at
RUNNING/SCHEDULED, FINISHED,         running (handed over to the source), succeeded,
FAILED, KILLED                       failed, stopped
params                               params (numbers parsed: MLflow keeps them as text)
tags: mlflow.user,                   user, notes,
  mlflow.note.content,
  mlflow.source.git.commit/branch/   git (commit, branch, remote)
  repoURL, mlflow.source.name        code entrypoint
tags: polytrack.tag.<t> = <t>        tag <t> (what polytrack's MLflow backend wrote)
other tags k = v                     tag "k=v" ("k" for an empty value)
other mlflow.* tags                  environment variables (what the source recorded)
metrics (every point)                points with their step and timestamp (ms)
system/... metrics                   system/... points
artifacts (top-level entries)        one artifact each, files into the blob store
logged models (MLflow 3)             model artifacts `models/<name>`
```

Metric points are read through MLflow's own store, in bulk where the client's store is
one we know: a SQL store (`SqlAlchemyStore`: SQLite, PostgreSQL, MySQL, ...) through its
session and `SqlMetric` model in one query per run, a file store's metric files (found by
`FileStore`) parsed with numpy. A server, and whatever the bulk readers do not recognise,
is read with `get_metric_history` (paged by the client). Any error of MLflow's is
translated once, in `_translated`, into `ImportSourceError` naming the URI or run.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from polytrack.errors import ImportSourceError
from polytrack.importers.source import (
    SourceFile,
    SourceMedia,
    SourceProblem,
    SourceRun,
    SourceSeries,
)
from polytrack.models import GitState
from polytrack.redact import redact_text

__all__ = ["normalize_uri", "read"]

_STATUSES: Final = {
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "succeeded",
    "FAILED": "failed",
    "KILLED": "stopped",
}
_PAGE: Final = 1000
# Metric rows turned into arrays at a time: fewer than the allocations that start a
# young garbage collection (700), so that row objects die young (see `_SqlPoints`).
_ROWS: Final = 500
_IMAGES: Final = "images"
# What `MlflowClient.log_image(..., key=, step=)` names an image: the key ("/" written as
# "~", or "#" in older versions), its step, its time in ms and a uuid.
_IMAGE_NAME: Final = re.compile(
    r"(?P<key>.+)\+step\+(?P<step>-?\d+)\+timestamp\+(?P<ms>\d+)\+[0-9a-fA-F-]+\.png"
)
_NUMBER: Final = re.compile(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)")
_INT: Final = re.compile(r"[-+]?\d+")
# Tags that become fields of the run, not tags.
_FIELD_TAGS: Final = frozenset(
    {
        "mlflow.runName",
        "mlflow.user",
        "mlflow.note.content",
        "mlflow.source.git.commit",
        "mlflow.source.git.branch",
        "mlflow.source.git.repoURL",
        "mlflow.source.name",
    }
)


def normalize_uri(source: str) -> str:
    """The tracking URI of `source`, the same however it was spelled: a local path (a
    file store, or a `.db` file) made absolute, `sqlite:///` with an absolute path, a
    server's URL without credentials or a trailing slash."""
    text = str(source)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        if path.is_file() and path.suffix in (".db", ".sqlite", ".sqlite3"):
            return f"sqlite:///{path}"
        return str(path)
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "file":
        return str(Path(urlsplit(text).path).resolve())
    if scheme == "sqlite":
        path_text = rest[1:] if rest.startswith("/") else rest
        return f"sqlite:///{Path(path_text).expanduser().resolve()}"
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def read(
    source: str, *, experiment: str | Sequence[str] | None = None
) -> Iterator[SourceRun | SourceProblem]:
    """Every run of the store at `source` (of the named experiments only, if given).
    The store is opened and its experiments listed now; the runs are read as iterated.

    Raises:
        ImportSourceError: MLflow is not installed, or the store cannot be opened.
    """
    uri = normalize_uri(source)
    _check_exists(uri, source)
    client = _client(uri, _connection_uri(source, uri))
    wanted = (
        None
        if experiment is None
        else ({experiment} if isinstance(experiment, str) else set(experiment))
    )
    experiments = _experiments(client, uri)
    if wanted is not None:
        missing = wanted - {exp.name for exp in experiments}
        if missing:
            raise ImportSourceError(f"{uri} has no experiment named {', '.join(sorted(missing))}")
        experiments = [exp for exp in experiments if exp.name in wanted]
    return _read_runs(client, uri, experiments)


def _read_runs(
    client: Any, uri: str, experiments: Sequence[Any]
) -> Iterator[SourceRun | SourceProblem]:
    points = _PointReader.of(uri, client)
    for exp in experiments:
        models = _logged_models(client, exp.experiment_id)
        for run in _runs(client, uri, exp):
            if isinstance(run, SourceProblem):
                yield run
                continue
            try:
                yield _source_run(client, uri, exp.name, run, points, models)
            except ImportSourceError as exc:
                yield SourceProblem(where=f"{uri}#{run.info.run_id}", message=str(exc))


def _runs(client: Any, uri: str, exp: Any) -> Iterator[Any]:
    """The experiment's runs, oldest first, a page at a time. A file store whose search
    fails (one run's damaged file fails the whole page) is read run by run instead, so
    that only the damaged run is lost, as a `SourceProblem` naming it."""
    token = None
    while True:
        try:
            with _translated(f"{uri}: experiment {exp.name!r}"):
                page = client.search_runs(
                    [exp.experiment_id],
                    max_results=_PAGE,
                    order_by=["attributes.start_time ASC"],
                    page_token=token,
                )
        except ImportSourceError:
            if "://" in uri or token is not None:
                raise
            yield from _runs_one_by_one(client, uri, exp)
            return
        yield from page
        token = page.token
        if not token:
            return


def _runs_one_by_one(client: Any, uri: str, exp: Any) -> Iterator[Any]:
    found = []
    for meta in sorted(Path(uri, exp.experiment_id).glob("*/meta.yaml")):
        run_id = meta.parent.name
        try:
            with _translated(f"{uri}#{run_id}"):
                found.append(client.get_run(run_id))
        except ImportSourceError as exc:
            yield SourceProblem(where=f"{meta.parent}", message=str(exc))
    yield from sorted(found, key=lambda run: run.info.start_time or 0)


def _connection_uri(source: str, uri: str) -> str:
    """What MLflow's client is given: `uri` for a local store; a server's or a database's
    URI as the user spelled it, credentials included, since they are needed to connect
    (only `uri`, without them, is recorded or printed)."""
    text = str(source)
    if "://" not in text or text.partition("://")[0].lower() in ("file", "sqlite"):
        return uri
    return text.rstrip("/")


def _check_exists(uri: str, source: str) -> None:
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ImportSourceError(f"{source}: no such SQLite file ({path})")
        with open(path, "rb") as file:
            if file.read(16) != b"SQLite format 3\x00":
                raise ImportSourceError(f"{path} is not an SQLite database")
    elif "://" not in uri and not Path(uri).is_dir():
        raise ImportSourceError(f"{source}: no such MLflow store directory ({uri})")


@contextlib.contextmanager
def _translated(where: str) -> Iterator[None]:
    """MLflow's and the network's errors as `ImportSourceError` naming `where`: the one
    place they are translated."""
    try:
        yield
    except ImportSourceError:
        raise
    except Exception as exc:  # MlflowException, requests', SQLAlchemy's, OSError, ...
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        # A driver's message may quote the URI it was given, credentials and all.
        message = redact_text(str(message).splitlines()[0])
        raise ImportSourceError(f"{where}: {message}") from exc


def _client(uri: str, connect: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise ImportSourceError(
            f"importing from MLflow needs its client: pip install 'polytrack[import-mlflow]' "
            f"({exc})"
        ) from exc
    with _translated(uri), _file_store_allowed(connect):
        client = MlflowClient(tracking_uri=connect)
        # Builds (and caches, by URI) the store now, while a file store is allowed.
        client.search_experiments(max_results=1)
    return client


@contextlib.contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses to open a file store (`./mlruns`) unless MLFLOW_ALLOW_FILE_STORE
    is set: it reads the variable when it builds the store, which it caches by URI. Set
    for that moment only, and put back as it was; reading is all we do."""
    if "://" in uri:
        yield
        return
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def _experiments(client: Any, uri: str) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        with _translated(uri):
            page = client.search_experiments(max_results=_PAGE, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _logged_models(client: Any, experiment_id: str) -> dict[str, list[Any]]:
    """MLflow 3's logged models of an experiment, by the run that logged them (none
    before MLflow 3, or where the store does not keep them)."""
    search = getattr(client, "search_logged_models", None)
    if search is None:
        return {}
    models: dict[str, list[Any]] = {}
    token = None
    try:
        while True:
            page = search([experiment_id], max_results=100, page_token=token)
            for model in page:
                if model.source_run_id:
                    models.setdefault(model.source_run_id, []).append(model)
            token = page.token
            if not token:
                return models
    except Exception:  # a store or server without logged models: none to import
        return models


def _param(text: str) -> Any:
    """A param as MLflow kept it (text), a number where it reads as one."""
    if _INT.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return text


def _source_run(
    client: Any,
    uri: str,
    experiment: str,
    run: Any,
    points: _PointReader,
    models: dict[str, list[Any]],
) -> SourceRun:
    info, data = run.info, run.data
    tags: dict[str, str] = dict(data.tags)
    run_id = info.run_id
    started = (info.start_time or 0) / 1000
    ended = None if info.end_time is None else info.end_time / 1000
    status = _STATUSES.get(info.status, "failed")
    if tags.get("polytrack.status") == "skipped":
        status = "skipped"
    git = None
    if "mlflow.source.git.commit" in tags:
        git = GitState(
            available=True,
            commit=tags.get("mlflow.source.git.commit"),
            branch=tags.get("mlflow.source.git.branch"),
            remote=tags.get("mlflow.source.git.repoURL"),
        )
    labels: list[str] = []
    environment: dict[str, Any] = {}
    if "mlflow.source.name" in tags:
        environment["entrypoint"] = tags["mlflow.source.name"]
    for key, value in tags.items():
        if key in _FIELD_TAGS:
            continue
        if key.startswith("polytrack.tag."):
            labels.append(value)
        elif key.startswith(("mlflow.", "polytrack.")):
            environment[key] = value
        else:
            labels.append(f"{key}={value}" if value else key)
    keys = sorted(data.metrics)
    return SourceRun(
        kind="mlflow",
        uri=uri,
        original_id=run_id,
        project=experiment,
        name=info.run_name or tags.get("mlflow.runName") or run_id,
        started_at=started,
        ended_at=ended if status != "running" else None,
        status=status,
        params={key: _param(value) for key, value in data.params.items()},
        tags=tuple(dict.fromkeys(labels)),
        notes=tags.get("mlflow.note.content"),
        user=tags.get("mlflow.user") or (info.user_id or None),
        git=git,
        environment=environment,
        series=lambda: points.read(info, keys),
        artifacts=lambda: _artifacts(client, uri, run, models.get(run_id, [])),
        media=lambda: _images(client, uri, run),
    )


class _PointReader:
    """Every point of a run's metrics: in bulk where MLflow's store is one we can query
    in bulk (its SQL store, its file store), else, and for anything the bulk reader does
    not recognise, through the client's `get_metric_history`, key by key."""

    def __init__(
        self, client: Any, uri: str, bulk: Callable[[Any], Iterable[SourceSeries]] | None
    ) -> None:
        self._client, self._uri, self._bulk = client, uri, bulk

    @classmethod
    def of(cls, uri: str, client: Any) -> _PointReader:
        with _file_store_allowed(uri):  # should the client build its store again
            store = _store(client)
        sql = _SqlPoints.of(store)
        if sql is not None:
            return cls(client, uri, sql.read)
        files = _FilePoints.of(store)
        return cls(client, uri, None if files is None else files.read)

    def read(self, info: Any, keys: Sequence[str]) -> list[SourceSeries]:
        """The series of the run `info` (an MLflow `RunInfo`) named by `keys`."""
        run_id = info.run_id
        if self._bulk is not None and keys:
            try:
                found = list(self._bulk(info))
            except Exception:  # SQLAlchemy's, MLflow's, OSError, ValueError: a layout
                found = []  # the bulk reader does not know; MLflow's client reads it
            if sorted(series.key for series in found) == sorted(keys):
                return found
        series = []
        for key in keys:
            with _translated(f"{self._uri}#{run_id}: metric {key!r}"):
                history = self._client.get_metric_history(run_id, key)
            series.append(_series(key, history))
        return series


def _store(client: Any) -> Any:
    """The tracking store MLflow's client built for its URI (`None` where this MLflow
    keeps it elsewhere): a private attribute, so every use of it has a fallback."""
    try:
        return client._tracking_client.store
    except Exception:  # no such attribute in this version, or the store fails to build
        return None


def _loaded_class(module: str, name: str) -> type | None:
    """`module.name` if MLflow has imported that module already, else `None`: a store
    can only be an instance of a class whose module is loaded, and importing, say, the
    SQL store's module for a server's client would pull in SQLAlchemy for nothing."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def _series(key: str, history: Sequence[Any]) -> SourceSeries:
    count = len(history)
    steps = np.fromiter((m.step for m in history), dtype=np.int64, count=count)
    values = np.fromiter((m.value for m in history), dtype=np.float64, count=count)
    stamps = np.fromiter((m.timestamp for m in history), dtype=np.float64, count=count)
    return SourceSeries(
        key=key,
        steps=steps,
        values=values,
        timestamps=stamps / 1000,
        system=key.startswith("system/"),
    )


class _SqlPoints:
    """A run's points from MLflow's SQL store (SQLite, PostgreSQL, MySQL, ...), in one
    query through the store's own session and its ORM model `SqlMetric`, so that
    MLflow's schema stays the one definition of the `metrics` table. Columns only, no
    `Metric` object per row: that is what makes it faster than `get_metric_history`.
    Points come in the order `get_metric_history` gives them (time, step, value) and
    NaN is read from `is_nan`, as MLflow does."""

    def __init__(self, store: Any) -> None:
        self._store = store

    @classmethod
    def of(cls, store: Any) -> _SqlPoints | None:
        kind = _loaded_class("mlflow.store.tracking.sqlalchemy_store", "SqlAlchemyStore")
        if kind is None or not isinstance(store, kind):
            return None
        return cls(store)

    def read(self, info: Any) -> Iterator[SourceSeries]:
        from mlflow.store.tracking.dbmodels.models import SqlMetric
        from sqlalchemy import select

        metric = SqlMetric
        query: Any = (
            select(metric.key, metric.step, metric.value, metric.timestamp, metric.is_nan)
            .where(metric.run_uuid == info.run_id)
            .order_by(metric.key, metric.timestamp, metric.step, metric.value)
        )
        names: list[str] = []
        steps: list[np.ndarray[Any, Any]] = []
        floats: list[np.ndarray[Any, Any]] = []  # value, timestamp, is_nan
        with self._store.ManagedSessionMaker() as session:
            # Core rows through the session's connection (not ORM-loaded ones), turned into
            # arrays a short page at a time: row objects held by the thousand outlive young
            # garbage collections, and the full collection they then set off costs more
            # than the query (measured: 170 ms more for 100,000 points, one time in two).
            result = session.connection().execute(query)
            for page in result.partitions(_ROWS):
                page_names, page_steps, *page_floats = zip(*page, strict=True)
                names.extend(page_names)
                steps.append(np.array(page_steps, dtype=np.int64))
                floats.append(np.array(page_floats, dtype=np.float64))
        if not names:
            return
        keys = np.array(names, dtype=object)
        starts = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist()]
        if len(starts) != len(set(names)):  # a collation that does not keep a key together
            raise ValueError(f"run {info.run_id}: the metrics table's keys are interleaved")
        step_array = np.concatenate(steps)
        values, stamps, nans = np.concatenate(floats, axis=1)
        value_array = np.where(nans != 0, np.nan, values)
        stamp_array = stamps / 1000
        for start, end in zip(starts, [*starts[1:], len(names)], strict=True):
            key = names[start]
            yield SourceSeries(
                key=key,
                steps=step_array[start:end],
                values=value_array[start:end],
                timestamps=stamp_array[start:end],
                system=key.startswith("system/"),
            )


class _FilePoints:
    """A run's points from MLflow's file store (`./mlruns`). MLflow finds the run's
    metric files (`FileStore._get_run_files`: the run's directory, in the experiment or
    the trash, and each file's metric key); their lines, `timestamp value step`, are
    parsed here with numpy, because MLflow's only reader of them builds a `Metric`
    object per line (`get_metric_history`), many times slower. A file with any other
    line (MLflow's 2-field and 5-field forms, damage) is not read here: the caller
    falls back to the client's `get_metric_history`, which reads every form it knows
    and names what it cannot read."""

    def __init__(self, store: Any) -> None:
        self._store = store

    @classmethod
    def of(cls, store: Any) -> _FilePoints | None:
        kind = _loaded_class("mlflow.store.tracking.file_store", "FileStore")
        if kind is None or not isinstance(store, kind):
            return None
        return cls(store)

    def read(self, info: Any) -> Iterator[SourceSeries]:
        folder, names = self._store._get_run_files(info, "metric")
        for key in sorted(names):
            data = Path(folder, key).read_bytes()
            lines = data.splitlines()
            if not all(line.count(b" ") == 2 for line in lines):
                raise ValueError(f"{folder}/{key}: a line not of MLflow's 3 fields")
            columns = np.array(data.split(), dtype=np.bytes_).reshape(-1, 3)
            yield SourceSeries(
                key=key,
                steps=columns[:, 2].astype(np.int64),
                values=columns[:, 1].astype(np.float64),
                timestamps=columns[:, 0].astype(np.int64) / 1000,
                system=key.startswith("system/"),
            )


def _artifacts(
    client: Any, uri: str, run: Any, models: Sequence[Any]
) -> Iterator[tuple[str, str, Iterable[SourceFile]]]:
    """Each top-level artifact entry of the run, then its logged models; files are read
    in place where the artifact store is a local directory, else downloaded."""
    run_id = run.info.run_id
    with _translated(f"{uri}#{run_id}: artifacts"):
        entries = list(client.list_artifacts(run_id))
    local = _local_dir(run.info.artifact_uri)
    for entry in entries:
        if entry.path == _IMAGES and _logs_images(run):
            continue  # `log_image`'s images: imported as media (`_images`)
        if local is not None and (local / entry.path).exists():
            yield entry.path, "artifact", _walk(local / entry.path, entry.path)
        else:
            with tempfile.TemporaryDirectory(prefix="polytrack-import-") as tmp:
                with _translated(f"{uri}#{run_id}: artifact {entry.path!r}"):
                    path = Path(client.download_artifacts(run_id, entry.path, dst_path=tmp))
                yield entry.path, "artifact", list(_walk(path, entry.path))
    for model in models:
        name = f"models/{model.name}"
        place = _local_dir(model.artifact_location)
        if place is not None and place.is_dir():
            yield name, "model", list(_walk(place, ""))
            continue
        with tempfile.TemporaryDirectory(prefix="polytrack-import-") as tmp:
            with _translated(f"{uri}#{run_id}: model {model.name!r}"):
                from mlflow.artifacts import download_artifacts

                path = Path(
                    download_artifacts(
                        artifact_uri=model.artifact_location,
                        dst_path=tmp,
                        tracking_uri=client.tracking_uri,
                    )
                )
            yield name, "model", list(_walk(path, ""))


def _logs_images(run: Any) -> bool:
    return str(run.data.tags.get("mlflow.loggedImages", "")).lower() == "true"


def _images(client: Any, uri: str, run: Any) -> Iterator[SourceMedia]:
    """The images `log_image(image, key=, step=)` logged, as image media at their step and
    time (the file names say both); the `.webp` thumbnails beside them are left out."""
    if not _logs_images(run):
        return
    run_id = run.info.run_id
    with _translated(f"{uri}#{run_id}: images"):
        entries = [e for e in client.list_artifacts(run_id, _IMAGES) if not e.is_dir]
    local = _local_dir(run.info.artifact_uri)
    for entry in sorted(entries, key=lambda e: e.path):
        match = _IMAGE_NAME.fullmatch(entry.path.rsplit("/", 1)[-1])
        if match is None:
            continue
        with _translated(f"{uri}#{run_id}: {entry.path}"):
            if local is not None and (local / entry.path).is_file():
                data = (local / entry.path).read_bytes()
            else:
                with tempfile.TemporaryDirectory(prefix="polytrack-import-") as tmp:
                    data = Path(client.download_artifacts(run_id, entry.path, tmp)).read_bytes()
        yield SourceMedia(
            name=match["key"].replace("~", "/").replace("#", "/"),
            kind="image",
            step=int(match["step"]),
            timestamp=int(match["ms"]) / 1000,
            payload=data,
            media_type="image/png",
            shape=_png_shape(data),
        )


def _png_shape(data: bytes) -> tuple[int, ...]:
    """(1, height, width, channels) from a PNG's header; () if it is no PNG."""
    if len(data) < 26 or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(data[25], 3)
    return (1, height, width, channels)


def _local_dir(artifact_uri: str | None) -> Path | None:
    if not artifact_uri:
        return None
    if artifact_uri.startswith("file://"):
        return Path(urlsplit(artifact_uri).path)
    if "://" not in artifact_uri and os.path.isabs(artifact_uri):
        return Path(artifact_uri)
    return None


def _walk(path: Path, name: str) -> Iterator[SourceFile]:
    """The files of an artifact entry (a file, or a directory walked in order), their
    paths relative to the entry ("/"-separated; a file's own name for a file)."""
    if path.is_file():
        yield SourceFile(path=path.name, size=path.stat().st_size, local=path)
        return
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for file in sorted(files):
            full = Path(root) / file
            relative = full.relative_to(path).as_posix()
            yield SourceFile(path=relative, size=full.stat().st_size, local=full)
