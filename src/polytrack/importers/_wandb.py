"""The W&B reader: offline and synced run directories (`wandb/offline-run-*`,
`wandb/run-*`), each with its `run-<id>.wandb` transaction log, as `SourceRun`s.

The log is a LevelDB-style record log of wandb's `Record` protos. wandb (0.19 and
later) reads it only in its Go core; its Python reader (`wandb.sdk.internal.datastore`)
is gone, so the framing is read here (`_records`, a port of that reader: 32 KiB blocks,
7-byte headers, CRC-32 of type and data) and every record is parsed with wandb's own
`wandb_internal_pb2.Record`. The record kinds used: `run` (name, project, tags, notes,
start time, git), `config`, `history` (every row, with its `_step` and `_timestamp`),
`summary` (the outputs), `stats` (system metrics), `environment` (what wandb recorded
of the host), `artifact` (logged artifacts whose files are still staged locally),
`exit` (the status and the end).

Listing a run reads its log once and keeps the points; `series()` hands them over,
`media()` and `artifacts()` open the files under the run's `files/` when called.
"""

from __future__ import annotations

import itertools
import json
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from attrs import define, field

from polytrack.errors import ImportSourceError, InvalidInputError
from polytrack.importers.source import (
    SourceFile,
    SourceMedia,
    SourceProblem,
    SourceRun,
    SourceSeries,
)
from polytrack.models import GitState

__all__ = ["read"]

_BLOCK = 32768
_HEADER = 7  # checksum (uint32), length (uint16), type (uint8)
_FILE_HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TYPE_CRC = {kind: zlib.crc32(bytes([kind])) for kind in (_FULL, _FIRST, _MIDDLE, _LAST)}
# W&B media types in history rows -> polytrack media kinds (payload files).
_FILE_MEDIA = {"image-file": "image", "audio-file": "audio", "video-file": "video"}
# Artifacts wandb makes by itself: the tables of history rows (already media here).
_INTERNAL_ARTIFACTS = frozenset({"run_table", "wandb-history"})
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


def read(source: str) -> Iterator[SourceRun | SourceProblem]:
    """The runs under a W&B directory (`wandb/`, its parent, one run's directory, or a
    `.wandb` file), offline or synced alike. A run whose log names no project is in
    W&B's own `uncategorized` (the writer's `project=` overrides it).

    A record that fails its checksum is skipped up to the next 32 KiB block, where the
    log's framing starts again (LevelDB's own recovery), and a `SourceProblem` names the
    log and the offset; a log that is no W&B log is a `SourceProblem` too.

    Args:
        source: where to look.

    Raises:
        InvalidInputError: `source` does not exist or holds no `run-*.wandb` log.

    Example:
        >>> runs = list(read("wandb"))  # doctest: +SKIP
    """
    root = Path(source).expanduser()
    if root.is_file():
        logs = [root]
    elif root.is_dir():
        logs = sorted({p.resolve() for p in root.rglob("run-*.wandb") if p.is_file()})
    else:
        raise InvalidInputError(f"{source}: no such file or directory (a W&B directory)")
    if not logs:
        raise InvalidInputError(f"{source}: no W&B run log (run-<id>.wandb) under it")
    # A resumed run writes a new directory with a log of the same id: one run, its logs
    # in the order of their directories' start times (in their names).
    by_id: dict[str, list[Path]] = {}
    for log in logs:
        by_id.setdefault(log.stem, []).append(log)
    for group in by_id.values():
        problems: list[SourceProblem] = []
        scan = _Scan()
        for log in sorted(group, key=lambda p: p.parent.name.removeprefix("offline-")):
            try:
                _scan_log(scan, log, problems)
            except ImportSourceError as exc:
                problems.append(SourceProblem(str(log), str(exc)))
        if scan.logs:
            yield _read_run(root.resolve(), scan)
        yield from problems


def _records(path: Path, problems: list[SourceProblem]) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of each record of a W&B log, in order.

    A truncated last record (a writer killed mid-write) ends the log quietly, as wandb's
    own readers do; a damaged record is reported and skipped to the next block.

    Raises:
        ImportSourceError: the file is no W&B log.
    """
    with path.open("rb") as stream:
        data = stream.read()
    if data[:6] != _FILE_HEADER[:6]:  # ":W&B" and the magic; any version byte
        raise ImportSourceError(f"{path}: not a W&B run log (its header is {data[:7]!r})")
    position, pending, start = _HEADER, b"", _HEADER
    damaged = False
    while position + _HEADER <= len(data):
        left = _BLOCK - position % _BLOCK
        if left < _HEADER:  # a block's trailer: zeros
            position += left
            continue
        checksum, length, kind = struct.unpack_from("<IHB", data, position)
        if checksum == 0 and length == 0 and kind == 0:  # padding to the block's end
            position += left
            continue
        chunk = data[position + _HEADER : position + _HEADER + length]
        if len(chunk) < length:
            return
        if kind not in _TYPE_CRC or zlib.crc32(chunk, _TYPE_CRC[kind]) != checksum:
            problems.append(
                SourceProblem(
                    str(path),
                    f"the record at byte {position} is damaged; skipped to byte "
                    f"{position + left} (the next block)",
                )
            )
            position, pending, damaged = position + left, b"", True
            continue
        if kind in (_FULL, _FIRST):
            start, damaged = position, False
        position += _HEADER + length
        if damaged:  # the rest of a record whose start was lost
            continue
        if kind == _FULL:
            yield start, chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        else:
            yield start, pending + chunk
            pending = b""


@define
class _Scan:
    """What one pass over a run's log found."""

    logs: list[Path] = field(factory=list)  # read whole or in part
    run: Any = None
    config: dict[str, Any] = field(factory=dict)
    summary: dict[str, Any] = field(factory=dict)
    environment: dict[str, Any] = field(factory=dict)
    exit: Any = None
    last_time: float | None = None
    steps: dict[str, list[int]] = field(factory=dict)
    values: dict[str, list[float]] = field(factory=dict)
    times: dict[str, list[float]] = field(factory=dict)
    system: dict[str, tuple[list[float], list[float]]] = field(factory=dict)
    media: list[tuple[Path, str, int, float, dict[str, Any]]] = field(factory=list)
    artifacts: list[Any] = field(factory=list)

    def point(self, key: str, step: int, value: float, when: float) -> None:
        if key not in self.steps:
            self.steps[key], self.values[key], self.times[key] = [], [], []
        self.steps[key].append(step)
        self.values[key].append(value)
        self.times[key].append(when)


def _scan_log(scan: _Scan, log: Path, problems: list[SourceProblem]) -> None:
    """Fold one log's records into the scan (a resumed run's logs into one).

    Raises:
        ImportSourceError: the file is no W&B log; nothing of it is taken.
    """
    from wandb.proto import wandb_internal_pb2

    records = _records(log, problems)
    first = next(records, None)  # the header is checked here: a foreign file adds nothing
    scan.logs.append(log)
    files = log.parent / "files"
    for offset, data in itertools.chain([first] if first else [], records):
        try:
            record = wandb_internal_pb2.Record.FromString(data)
        except Exception as exc:  # protobuf's DecodeError: framed well, but no Record
            problems.append(SourceProblem(str(log), f"the record at byte {offset}: {exc}"))
            continue
        _take(scan, record, files)


def _read_run(root: Path, scan: _Scan) -> SourceRun:
    log = scan.logs[-1]
    run = scan.run
    run_id = run.run_id if run is not None else log.stem.removeprefix("run-")
    started = _started(scan, log)
    ended = None
    status = "running"
    if scan.exit is not None:
        status = "succeeded" if scan.exit.exit_code == 0 else "failed"
        # The exit's runtime is whole seconds; the last row's or sample's time is finer.
        ended = scan.last_time if scan.last_time else started + scan.exit.runtime
    files = log.parent / "files"  # the latest attempt's
    metadata = _json_file(files / "wandb-metadata.json")
    recorded = {**(metadata if isinstance(metadata, dict) else {}), **scan.environment}
    environment = _environment(recorded, files)
    if run is not None:
        environment.update(
            {k: v for k, v in (("group", run.run_group), ("job_type", run.job_type)) if v}
        )
    return SourceRun(
        kind="wandb",
        uri=str(root),
        original_id=run_id,
        project=run.project if run is not None and run.project else "uncategorized",
        name=(run.display_name if run is not None and run.display_name else run_id),
        started_at=started,
        ended_at=ended,
        status=status,
        params=scan.config,
        tags=tuple(run.tags) if run is not None else (),
        notes=(run.notes or None) if run is not None else None,
        user=(run.entity or None) if run is not None else None,
        outputs={k: v for k, v in scan.summary.items() if _is_output(k, v)},
        git=_git(run, metadata),
        environment=environment,
        series=_series(scan),
        artifacts=_artifacts(scan),
        media=_media(scan),
    )


def _take(scan: _Scan, record: Any, files: Path) -> None:
    """Fold one record into the scan."""
    from google.protobuf import json_format

    which = record.WhichOneof("record_type")
    if which == "run":
        scan.run = scan.run or record.run  # a resumed run keeps its first start
        for item in record.run.config.update:
            _set(scan.config, item)
    elif which == "config":
        for item in record.config.update:
            _set(scan.config, item)
        for item in record.config.remove:
            scan.config.pop(item.key or ".".join(item.nested_key), None)
    elif which == "history":
        _history(scan, record.history, files)
    elif which == "summary":
        for item in record.summary.update:
            _set(scan.summary, item)
        for item in record.summary.remove:
            scan.summary.pop(item.key or item.nested_key[0], None)
    elif which == "stats":
        when = record.stats.timestamp.seconds + record.stats.timestamp.nanos / 1e9
        scan.last_time = max(scan.last_time or when, when)
        for item in record.stats.item:
            value = json.loads(item.value_json)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                times, values = scan.system.setdefault(item.key, ([], []))
                times.append(when)
                values.append(float(value))
    elif which == "environment":
        found = json_format.MessageToDict(record.environment, preserving_proto_field_name=True)
        found.pop("_info", None)
        found.pop("writer_id", None)
        scan.environment.update(found)
    elif which == "artifact":
        scan.artifacts.append(record.artifact)
    elif which == "exit":
        scan.exit = record.exit


def _set(into: dict[str, Any], item: Any) -> None:
    """One config or summary update: a top-level key (nested keys address inside it)."""
    path = list(item.nested_key) or [item.key]
    if path[0] == "_wandb":
        return
    value = json.loads(item.value_json)
    target = into
    for part in path[:-1]:
        inner = target.get(part)
        if not isinstance(inner, dict):
            inner = target[part] = {}
        target = inner
    target[path[-1]] = value


def _history(scan: _Scan, history: Any, files: Path) -> None:
    """One history row: its numbers are points, its W&B media values are media."""
    row: dict[str, Any] = {}
    for item in history.item:
        _set(row, item)
    step = int(row.get("_step", history.step.num))
    when = float(row.get("_timestamp", 0.0))
    scan.last_time = max(scan.last_time or when, when)
    for key, value in _flatten(row):
        if key.startswith("_"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scan.point(key, step, float(value), when)
        elif isinstance(value, dict) and "_type" in value:
            scan.media.append((files, key, step, when, value))


def _flatten(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts of a row as dotted keys (W&B's own naming); media dicts stay whole."""
    for key, value in row.items():
        if isinstance(value, dict) and "_type" not in value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# What W&B records of the host, under the names of polytrack's environment and code
# records (see `source.py`); the rest of these kept as variables, any other key left out.
_KEPT = (
    "cpu_count",
    "cpu_count_logical",
    "gpu_type",
    "gpu_count",
    "cuda_version",
    "docker",
    "username",
)


def _environment(recorded: Mapping[str, Any], files: Path) -> dict[str, Any]:
    """wandb's `environment` record (or `wandb-metadata.json` of older versions) and
    `requirements.txt`, as the writer's environment keys."""
    found: dict[str, Any] = {}
    python = str(recorded.get("python") or "")
    if python:
        implementation, _, version = python.rpartition(" ")
        found["python"], found["implementation"] = version, implementation or "CPython"
    for ours, theirs in (("platform", "os"), ("hostname", "host"), ("cwd", "root")):
        if recorded.get(theirs):
            found[ours] = str(recorded[theirs])
    if recorded.get("executable"):
        found["executable"] = str(recorded["executable"])
    program = recorded.get("code_path") or recorded.get("program")
    if program:
        found["entrypoint"] = str(program)
        found["argv"] = [str(program), *(str(a) for a in recorded.get("args") or ())]
    memory = recorded.get("memory")
    if isinstance(memory, dict) and memory.get("total"):
        found["memory_total"] = str(memory["total"])
    found.update({k: recorded[k] for k in _KEPT if recorded.get(k)})
    packages = _requirements(files / "requirements.txt")
    if packages:
        found["packages"] = packages
    return found


def _requirements(path: Path) -> dict[str, str]:
    """`name==version` lines of the `requirements.txt` wandb wrote (its `pip freeze`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        name, equals, version = line.strip().partition("==")
        if equals and name and not name.startswith("#"):
            found[name] = version
    return found


def _started(scan: _Scan, log: Path) -> float:
    if scan.run is not None and scan.run.HasField("start_time"):
        return float(scan.run.start_time.seconds + scan.run.start_time.nanos / 1e9)
    started = scan.environment.get("started_at")
    if isinstance(started, str):
        from datetime import datetime

        return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    return log.stat().st_mtime


def _is_output(key: str, value: Any) -> bool:
    return not key.startswith("_") and not (isinstance(value, dict) and "_type" in value)


def _git(run: Any, metadata: Any) -> GitState | None:
    remote = commit = None
    if run is not None and run.HasField("git"):
        remote, commit = run.git.remote_url or None, run.git.commit or None
    if isinstance(metadata, dict) and isinstance(metadata.get("git"), dict):
        remote = remote or metadata["git"].get("remote")
        commit = commit or metadata["git"].get("commit")
    if remote is None and commit is None:
        return None
    return GitState(available=True, remote=remote, commit=commit)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _series(scan: _Scan) -> Callable[[], list[SourceSeries]]:
    def series() -> list[SourceSeries]:
        found = [
            SourceSeries(
                key=key,
                steps=np.asarray(scan.steps[key], dtype=np.int64),
                values=np.asarray(scan.values[key], dtype=np.float64),
                timestamps=np.asarray(scan.times[key], dtype=np.float64),
            )
            for key in scan.steps
        ]
        for key, (times, values) in scan.system.items():
            found.append(
                SourceSeries(
                    key=key,
                    steps=np.arange(len(times), dtype=np.int64),
                    values=np.asarray(values, dtype=np.float64),
                    timestamps=np.asarray(times, dtype=np.float64),
                    system=True,
                )
            )
        return found

    return series


def _media(scan: _Scan) -> Callable[[], Iterator[SourceMedia]]:
    def media() -> Iterator[SourceMedia]:
        for files, key, step, when, value in scan.media:
            yield from _media_values(files, key, step, when, value)

    return media


def _media_values(
    files: Path, key: str, step: int, when: float, value: Mapping[str, Any]
) -> Iterator[SourceMedia]:
    """One W&B media value of a history row; kinds with no counterpart are left out."""
    kind = value["_type"]
    if kind in _FILE_MEDIA and isinstance(value.get("path"), str):
        path = files / value["path"]
        meta = {k: value[k] for k in ("width", "height", "format") if k in value}
        yield SourceMedia(
            key,
            _FILE_MEDIA[kind],
            step,
            when,
            payload=_payload(path),
            media_type=_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
            caption=value.get("caption"),
            meta=meta,
        )
    elif kind == "images/separated":
        for number, name in enumerate(value.get("filenames", ())):
            path = files / name
            captions = value.get("captions") or ()
            yield SourceMedia(
                key if number == 0 else f"{key}/{number}",
                "image",
                step,
                when,
                payload=_payload(path),
                media_type=_MEDIA_TYPES.get(path.suffix.lower(), "image/png"),
                caption=captions[number] if number < len(captions) else None,
            )
    elif kind == "histogram":
        edges = np.asarray(value.get("bins", ()), dtype=np.float64)
        counts = np.asarray(value.get("values", ()), dtype=np.float64)
        if len(edges) == len(counts) + 1 and len(counts):
            yield SourceMedia(key, "histogram", step, when, value=(edges, counts))
    elif kind == "html-file" and isinstance(value.get("path"), str):
        html = _payload(files / value["path"]).decode("utf-8", "replace")
        yield SourceMedia(key, "html", step, when, value=html)
    elif kind in ("table-file", "incremental-table-file") and isinstance(value.get("path"), str):
        table = json.loads(_payload(files / value["path"]))
        columns = [str(c) for c in table.get("columns", ())]
        rows = [dict(zip(columns, row, strict=False)) for row in table.get("data", ())]
        yield SourceMedia(key, "table", step, when, value=rows)


def _payload(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImportSourceError(f"{path}: a media file of the run cannot be read ({exc})") from None


def _artifacts(scan: _Scan) -> Callable[[], Iterator[tuple[str, str, Iterable[SourceFile]]]]:
    """The run's own files (`files/`, less media; a resumed run's latest of each) as an
    artifact "files", and every logged artifact whose files are still in wandb's local
    staging area."""

    def artifacts() -> Iterator[tuple[str, str, Iterable[SourceFile]]]:
        own: dict[str, SourceFile] = {}
        for log in scan.logs:
            files = log.parent / "files"
            for path in sorted(files.rglob("*")):
                name = path.relative_to(files).as_posix()
                if path.is_file() and not name.startswith("media/"):
                    own[name] = _local(path, name)
        if own:
            yield "files", "artifact", [own[name] for name in sorted(own)]
        for artifact in scan.artifacts:
            if artifact.type in _INTERNAL_ARTIFACTS:
                continue
            found = [
                _local(Path(entry.local_path), entry.path)
                for entry in artifact.manifest.contents
                if entry.local_path and Path(entry.local_path).is_file()
            ]
            if found:
                kind = "model" if artifact.type == "model" else "artifact"
                yield artifact.name, kind, found

    return artifacts


def _local(path: Path, name: str) -> SourceFile:
    return SourceFile(path=name, size=path.stat().st_size, local=path)
