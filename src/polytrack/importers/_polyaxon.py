"""The Polyaxon reader: runs that traceml wrote offline (or that were pulled from a
Polyaxon artifacts store), one directory per run:

```
<root>/runs/<uuid>/run.plx.json          the run: name, project, status, times, inputs, outputs
                  /events/<kind>/<name>.plx    metric, image, histogram, text, html, ...
                  /resources/<kind>/<name>.plx system metrics (cpu, memory, gpu, ...)
                  /assets/<kind>/...           the files of image, audio, video events
                  /outputs/...                 models, artifacts, env.json
                  /lineages.plx.json           what was logged as an artifact, model, code ref
```

Event files are parsed with traceml's own `V1Events.read` (pandas underneath: its CSV
form for metrics and most media, JSON lines for text and html). `run.plx.json` and
`lineages.plx.json` are plain JSON dumps of Polyaxon's `V1Run` and `V1RunArtifact`s.

Listing reads only `run.plx.json` and `lineages.plx.json`; the events and files are
read by `series()`, `media()` and `artifacts()` when called.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from polytrack.errors import ImportSourceError, InvalidInputError
from polytrack.importers.source import (
    SourceFile,
    SourceMedia,
    SourceProblem,
    SourceRun,
    SourceSeries,
)
from polytrack.media import curves
from polytrack.media.encoder import MediaJob
from polytrack.models import GitState

__all__ = ["read"]

# Polyaxon's V1Statuses -> polytrack's; every other (created, queued, running, ...) is live.
_STATUSES = {
    "succeeded": "succeeded",
    "done": "succeeded",
    "failed": "failed",
    "upstream_failed": "failed",
    "stopped": "stopped",
    "stopping": "stopped",
    "skipped": "stopped",
}
_ASSET_MEDIA = {"image": "image", "audio": "audio", "video": "video"}
_MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}
_MODEL_KINDS = frozenset({"model"})
_FILE_KINDS = frozenset({"model", "artifact", "file", "dir", "data", "env", "dockerfile"})


def read(source: str) -> Iterator[SourceRun | SourceProblem]:
    """The runs under a traceml offline root (`POLYAXON_OFFLINE_ROOT`, holding `runs/`),
    a `runs/` folder, or one run's directory: every directory with a `run.plx.json`.

    A `run.plx.json` that is no JSON object is a `SourceProblem` (the other runs read);
    an event file that traceml cannot parse is an `ImportSourceError` from the run's
    `series()` or `media()`, naming the file.

    Args:
        source: where to look.

    Raises:
        InvalidInputError: `source` is no directory, or holds no `run.plx.json`.

    Example:
        >>> runs = list(read("/tmp/plx/offline"))  # doctest: +SKIP
    """
    root = Path(source).expanduser()
    if not root.is_dir():
        raise InvalidInputError(f"{source}: no such directory (a Polyaxon offline root)")
    root = root.resolve()
    found = sorted(p.parent for p in root.rglob("run.plx.json") if p.is_file())
    if not found:
        raise InvalidInputError(f"{source}: no Polyaxon run (run.plx.json) under it")
    for directory in found:
        where = directory / "run.plx.json"
        try:
            spec = _json(where)
        except ImportSourceError as exc:
            yield SourceProblem(str(where), str(exc))
            continue
        if not isinstance(spec, dict):
            yield SourceProblem(str(where), "not a JSON object (a Polyaxon run)")
            continue
        yield _read_run(root, directory, spec)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ImportSourceError(f"{path}: cannot be read as JSON ({exc})") from None


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _read_run(root: Path, directory: Path, spec: Mapping[str, Any]) -> SourceRun:
    lineage: list[Mapping[str, Any]] = []
    lineage_error: ImportSourceError | None = None
    try:
        found = _json(directory / "lineages.plx.json")
        lineage = [e for e in found or () if isinstance(e, dict)]
    except ImportSourceError as exc:
        lineage_error = exc
    started = (
        _time(spec.get("started_at"))
        or _time(spec.get("created_at"))
        or (directory / "run.plx.json").stat().st_mtime
    )
    owner = spec.get("owner")
    recorded = _json_quiet(directory / "outputs" / "env.json")
    return SourceRun(
        kind="polyaxon",
        uri=str(root),
        original_id=str(spec.get("uuid") or directory.name),
        project=str(spec.get("project") or root.name),
        name=str(spec.get("name") or spec.get("uuid") or directory.name),
        started_at=started,
        ended_at=_time(spec.get("finished_at")),
        status=_STATUSES.get(str(spec.get("status")), "running"),
        params=dict(spec.get("inputs") or {}),
        tags=tuple(str(t) for t in spec.get("tags") or ()),
        notes=spec.get("description") or None,
        user=owner if owner and owner != "default" else None,
        outputs=dict(spec.get("outputs") or {}),
        git=_git(lineage),
        environment=_environment(recorded) if isinstance(recorded, dict) else {},
        series=lambda: _series(directory),
        artifacts=lambda: _artifacts(directory, lineage, lineage_error),
        media=lambda: _media(directory),
    )


def _json_quiet(path: Path) -> Any:
    """A JSON file the run may lack or have half-written: None then."""
    try:
        return _json(path)
    except ImportSourceError:
        return None


def _environment(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """traceml's `env.json` (`log_env`) under the writer's environment keys."""
    found: dict[str, Any] = {}
    for ours, theirs in (
        ("python", "python_version"),
        ("platform", "os"),
        ("hostname", "hostname"),
        ("cwd", "module_path"),
        ("user", "user"),
    ):
        if recorded.get(theirs):
            found[ours] = str(recorded[theirs])
    verbose = str(recorded.get("python_version_verbose") or "")
    if found.get("python"):
        found["implementation"] = "PyPy" if "PyPy" in verbose else "CPython"
    argv = recorded.get("sys.argv")
    if isinstance(argv, list) and argv:
        found["argv"] = [str(a) for a in argv]
        found["entrypoint"] = str(argv[0])
    packages = recorded.get("packages")
    if isinstance(packages, list):
        found["packages"] = {
            str(p[0]): str(p[1]) for p in packages if isinstance(p, list) and len(p) == 2
        }
    return found


def _git(lineage: Iterable[Mapping[str, Any]]) -> GitState | None:
    """The code reference that traceml's `log_code_ref` recorded, if any."""
    for entry in lineage:
        summary = entry.get("summary")
        if entry.get("kind") == "coderef" and isinstance(summary, dict):
            return GitState(
                available=True,
                commit=summary.get("commit"),
                branch=summary.get("branch"),
                remote=summary.get("url"),
            )
    return None


def _events(path: Path, kind: str) -> Any:
    """traceml's `V1Events` of one `.plx` file: a pandas frame, a row per event."""
    from traceml.events import V1Events

    try:
        return V1Events.read(kind=kind, name=path.stem, data=path.read_text(encoding="utf-8"))
    except Exception as exc:  # pandas' ParserError, ValueError, OSError: traceml's own
        raise ImportSourceError(f"{path}: traceml cannot read these events ({exc})") from None


def _seconds(frame: Any) -> np.ndarray:
    """The frame's timestamps as seconds since the epoch (UTC), to the microsecond."""
    pd = importlib.import_module("pandas")  # untyped: no stubs; traceml's own dependency
    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    micros = stamps.dt.as_unit("us").astype("int64").to_numpy()
    return np.asarray(micros, dtype=np.float64) / 1e6


def _series(directory: Path) -> list[SourceSeries]:
    found: list[SourceSeries] = []
    for folder, system in (("events", False), ("resources", True)):
        for path in sorted((directory / folder / "metric").rglob("*.plx")):
            frame = _events(path, "metric")
            if not len(frame.df):
                continue
            values = frame.df["metric"].to_numpy(dtype=np.float64)
            if system:  # resource samples have no step: their order stands for it
                steps = np.arange(len(values), dtype=np.int64)
            else:
                steps = frame.df["step"].fillna(0).to_numpy(dtype=np.int64)
            found.append(
                SourceSeries(
                    key=_key(directory / folder / "metric", path),
                    steps=steps,
                    values=values,
                    timestamps=_seconds(frame.df),
                    system=system,
                )
            )
    return found


def _key(folder: Path, path: Path) -> str:
    """The event's name: its path under the kind's folder, without `.plx` (names with
    slashes are folders there)."""
    return path.relative_to(folder).with_suffix("").as_posix()


def _media(directory: Path) -> Iterator[SourceMedia]:
    events = directory / "events"
    for kind in ("image", "audio", "video", "histogram", "text", "html", "curve", "confusion"):
        for path in sorted((events / kind).rglob("*.plx")):
            frame = _events(path, kind)
            if not len(frame.df):
                continue
            times = _seconds(frame.df)
            steps = frame.df["step"].fillna(0).to_numpy(dtype=np.int64)
            for row, (step, when) in enumerate(zip(steps, times, strict=True)):
                event = frame.get_event_at(row)
                try:
                    yield from _media_value(
                        directory, _key(events / kind, path), kind, int(step), float(when), event
                    )
                except InvalidInputError as exc:  # a curve polytrack's encoder refuses
                    raise ImportSourceError(f"{path}: event {row + 1}: {exc}") from None


def _media_value(
    directory: Path, name: str, kind: str, step: int, when: float, event: Any
) -> Iterator[SourceMedia]:
    """One traceml `V1Event` as media; kinds with no counterpart are left out."""
    value = getattr(event, kind)
    if value is None:
        return
    if kind in _ASSET_MEDIA:
        if not value.path:
            return
        path = directory / value.path
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise ImportSourceError(f"{path}: an asset of the run cannot be read ({exc})") from None
        meta = {
            k: getattr(value, k)
            for k in ("height", "width", "colorspace", "sample_rate", "length_frames")
            if getattr(value, k, None) is not None
        }
        yield SourceMedia(
            name,
            _ASSET_MEDIA[kind],
            step,
            when,
            payload=payload,
            media_type=value.content_type
            if getattr(value, "content_type", None)
            else _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
            meta=meta,
        )
    elif kind == "histogram":
        # traceml stores numpy's (hist, bin_edges) as (values, counts): the longer is edges.
        first = np.asarray(value.values, dtype=np.float64)
        second = np.asarray(value.counts, dtype=np.float64)
        edges, counts = (second, first) if len(second) == len(first) + 1 else (first, second)
        if len(edges) == len(counts) + 1 and len(counts):
            yield SourceMedia(name, "histogram", step, when, value=(edges, counts))
    elif kind in ("text", "html"):
        yield SourceMedia(name, kind, step, when, value=str(value))
    elif kind == "curve":
        job = curves.curve_job(
            name,
            value.x,
            value.y,
            step,
            kind=str(value.kind or "custom"),
            annotation=value.annotation or None,
        )
        yield _encoded(job, when)
    elif kind == "confusion":
        yield _encoded(curves.confusion_matrix_job(name, value.x, value.y, value.z, step), when)


def _encoded(job: MediaJob, when: float) -> SourceMedia:
    """A curve or confusion matrix encoded as polytrack's own `log_curve` and
    `log_confusion_matrix` keep them (Polyaxon's JSON), at the event's time."""
    (encoded,), _, _ = job.encode()
    return SourceMedia(
        job.name,
        job.kind,
        job.step,
        when,
        payload=encoded.data,
        media_type=encoded.media_type,
        meta=dict(job.meta),
    )


def _artifacts(
    directory: Path,
    lineage: Iterable[Mapping[str, Any]],
    error: ImportSourceError | None,
) -> Iterator[tuple[str, str, Iterable[SourceFile]]]:
    """Every model and file artifact of the lineage whose files are in the run's
    directory, then the rest of `outputs/` as an artifact "outputs"."""
    if error is not None:
        raise error
    taken: set[Path] = set()
    for entry in lineage:
        kind, relative = entry.get("kind"), entry.get("path")
        if kind not in _FILE_KINDS or not isinstance(relative, str) or relative.startswith("/"):
            continue
        where = directory / relative
        paths = sorted(p for p in where.rglob("*") if p.is_file()) if where.is_dir() else [where]
        files = [p for p in paths if p.is_file()]
        if not files:
            continue
        taken.update(files)
        base = where if where.is_dir() else where.parent
        yield (
            str(entry.get("name") or where.name),
            "model" if kind in _MODEL_KINDS else "artifact",
            [_local(p, p.relative_to(base).as_posix()) for p in files],
        )
    outputs = directory / "outputs"
    rest = sorted(p for p in outputs.rglob("*") if p.is_file() and p not in taken)
    if rest:
        yield "outputs", "artifact", [_local(p, p.relative_to(outputs).as_posix()) for p in rest]


def _local(path: Path, name: str) -> SourceFile:
    return SourceFile(path=name, size=path.stat().st_size, local=path)
