"""The TensorBoard reader: every run directory of a logdir as a `SourceRun`.

A run is a directory that holds `events.out.tfevents.*` files; its name is its path
relative to the logdir (TensorBoard's own rule), its project the logdir's name. Records
are read with the `tensorboard` package's record reader and parsed into its `Event`
protos; nothing is sampled (TensorBoard's `EventAccumulator` keeps a reservoir of 1,000
scalars per tag and drops the rest: every point must come over, so it is not used).

Both forms of each summary are understood: the legacy fields (`simple_value`, `histo`,
`image`, `audio`: tensorboardX and `torch.utils.tensorboard` by default) and the
tensor-based ones that name a plugin in their first value's metadata (`scalars`,
`histograms`, `images`, `text`, `audio`; `new_style` writers and TensorFlow 2). The
`hparams` plugin's session start gives the params, its session end the status.

Listing a run reads its event files once, keeping the points (a few bytes each) and the
place of each media value; `series()` hands the points over, `media()` reads the
payloads again from the files, only when called.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from attrs import define, field

from polytrack.errors import ImportSourceError, InvalidInputError
from polytrack.importers.source import SourceMedia, SourceProblem, SourceRun, SourceSeries

__all__ = ["read"]

_EVENT_FILE = re.compile(r"events\.out\.tfevents\.(\d+)")
# hparams' SessionEndInfo.status: STATUS_SUCCESS, STATUS_FAILURE, STATUS_RUNNING, STATUS_ABORTED.
_HPARAMS_STATUS = {1: "succeeded", 2: "failed", 3: "running", 4: "stopped"}


def read(source: str) -> Iterator[SourceRun | SourceProblem]:
    """The runs of a TensorBoard logdir, one per directory that holds event files; each
    run's project is the logdir's name (the writer's `project=` overrides it).

    An event file with a record that fails its checksum is read up to that record, the
    run is imported with the rest of its files, and a `SourceProblem` names the file and
    the record.

    Args:
        source: the logdir (or one run's directory).

    Raises:
        InvalidInputError: `source` is not a directory, or holds no event file.

    Example:
        >>> runs = list(read("logs"))  # doctest: +SKIP
    """
    root = Path(source).expanduser()
    if not root.is_dir():
        raise InvalidInputError(f"{source}: no such directory (a TensorBoard logdir)")
    root = root.resolve()
    by_dir: dict[Path, list[Path]] = {}
    for path in root.rglob("events.out.tfevents.*"):
        if path.is_file():
            by_dir.setdefault(path.parent, []).append(path)
    if not by_dir:
        raise InvalidInputError(f"{source}: no TensorBoard event file (events.out.tfevents.*)")
    for directory in sorted(by_dir):
        files = sorted(by_dir[directory], key=_file_order)
        relative = directory.relative_to(root).as_posix()
        name = root.name if relative == "." else relative
        run, problems = _read_run(root, name, files, project=root.name)
        yield run
        yield from problems


def _file_order(path: Path) -> tuple[int, str]:
    """Event files in the order they were opened: the creation time in the name."""
    match = _EVENT_FILE.match(path.name)
    return (int(match.group(1)) if match else 0, path.name)


class _Damaged(ImportSourceError):
    """A record of an event file fails its checksum or is no `Event`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@define
class _MediaRef:
    """Where a media value is: the file, the index of its event there, and of the value."""

    file: Path
    event: int
    value: int
    kind: str


@define
class _Scan:
    """What one pass over a run's event files found."""

    first: float | None = None  # the earliest wall time
    last: float | None = None  # the latest
    steps: dict[str, list[int]] = field(factory=dict)
    values: dict[str, list[float]] = field(factory=dict)
    times: dict[str, list[float]] = field(factory=dict)
    plugins: dict[str, str] = field(factory=dict)  # tag -> plugin of its first value
    media: list[_MediaRef] = field(factory=list)
    params: dict[str, Any] = field(factory=dict)
    status: str = "succeeded"
    problems: list[SourceProblem] = field(factory=list)

    def point(self, tag: str, step: int, value: float, when: float) -> None:
        if tag not in self.steps:
            self.steps[tag], self.values[tag], self.times[tag] = [], [], []
        self.steps[tag].append(step)
        self.values[tag].append(value)
        self.times[tag].append(when)


def _read_run(
    root: Path, name: str, files: list[Path], *, project: str
) -> tuple[SourceRun, list[SourceProblem]]:
    scan = _Scan()
    for path in files:
        try:
            for index, event in enumerate(_events(path)):
                _take(scan, path, index, event)
        except _Damaged as exc:
            scan.problems.append(SourceProblem(str(path), f"run {name}: {exc.message}"))
    started = scan.first if scan.first is not None else _first_time(files)
    run = SourceRun(
        kind="tensorboard",
        uri=str(root),
        original_id=name,
        project=project,
        name=name,
        started_at=started,
        ended_at=scan.last,
        status=scan.status,
        params=scan.params,
        series=_series(scan),
        media=_media(scan),
    )
    return run, scan.problems


def _first_time(files: list[Path]) -> float:
    """The creation time in the first file's name, for a run whose files hold no event."""
    match = _EVENT_FILE.match(files[0].name)
    return float(match.group(1)) if match else files[0].stat().st_mtime


def _events(path: Path) -> Iterator[Any]:
    """The `Event` protos of one file, in order.

    tensorboard's `RawEventFileLoader` would end the file silently at a record that fails
    its checksum; its record reader is used directly so that only a truncated last record
    (a writer still writing, or killed) ends the file quietly, and a damaged one is named.
    """
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    reader = PyRecordReader_New(str(path))
    number = 0
    try:
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                return
            except errors.DataLossError as exc:
                # The stub reader's `_truncation_error` ("... has truncated record in
                # data"): the record ends past the end of the file.
                if "truncated record" in str(exc):
                    return
                why = str(exc.message).replace(str(path), "").strip()  # it names the file
                raise _Damaged(f"record {number + 1} is damaged ({why})") from None
            number += 1
            try:
                event = event_pb2.Event.FromString(reader.record())
            except Exception as exc:  # protobuf's DecodeError: a record that is no Event
                raise _Damaged(f"record {number} is no Event ({exc})") from None
            yield event
    finally:
        reader.file_handle.close()


def _take(scan: _Scan, path: Path, index: int, event: Any) -> None:
    """Fold one event into the scan: its points, its media's places, hparams, times."""
    when = float(event.wall_time)
    if when > 0:  # the earliest and latest: writers may be given wall times of the past
        scan.first = when if scan.first is None else min(scan.first, when)
        scan.last = when if scan.last is None else max(scan.last, when)
    if not event.HasField("summary"):
        return
    step = int(event.step)
    for number, value in enumerate(event.summary.value):
        tag = value.tag
        named = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else ""
        if named == "hparams":  # torch and tensorboardX write these with no value
            _hparams(scan, value.metadata.plugin_data.content)
            continue
        if named:
            scan.plugins.setdefault(tag, named)
        which = value.WhichOneof("value")
        if which == "simple_value":
            scan.point(tag, step, float(value.simple_value), when)
        elif which in ("histo", "image", "audio"):
            kind = {"histo": "histogram", "image": "image", "audio": "audio"}[which]
            scan.media.append(_MediaRef(path, index, number, kind))
        elif which == "tensor":
            plugin = scan.plugins.get(tag, "")
            if plugin == "scalars":
                scan.point(tag, step, float(_array(value.tensor).reshape(-1)[0]), when)
            elif plugin in ("histograms", "images", "text", "audio"):
                kind = {"histograms": "histogram", "images": "image"}.get(plugin, plugin)
                scan.media.append(_MediaRef(path, index, number, kind))


def _array(tensor: Any) -> np.ndarray:
    from tensorboard.util import tensor_util

    return np.asarray(tensor_util.make_ndarray(tensor))


def _hparams(scan: _Scan, content: bytes) -> None:
    """The hparams plugin's session start (the params) and end (the status)."""
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if data.HasField("session_start_info"):
        for key, value in data.session_start_info.hparams.items():
            scan.params[key] = json_format.MessageToDict(value)
    elif data.HasField("session_end_info"):
        scan.status = _HPARAMS_STATUS.get(int(data.session_end_info.status), scan.status)


def _series(scan: _Scan) -> Callable[[], list[SourceSeries]]:
    def series() -> list[SourceSeries]:
        return [
            SourceSeries(
                key=tag,
                steps=np.asarray(scan.steps[tag], dtype=np.int64),
                values=np.asarray(scan.values[tag], dtype=np.float64),
                timestamps=np.asarray(scan.times[tag], dtype=np.float64),
            )
            for tag in scan.steps
        ]

    return series


def _media(scan: _Scan) -> Callable[[], Iterator[SourceMedia]]:
    def media() -> Iterator[SourceMedia]:
        wanted: dict[Path, dict[int, list[_MediaRef]]] = {}
        for ref in scan.media:
            wanted.setdefault(ref.file, {}).setdefault(ref.event, []).append(ref)
        for path, events in wanted.items():
            last = max(events)
            # The records up to the last wanted one: those were read whole at listing.
            for index, event in enumerate(_events(path)):
                for ref in events.get(index, ()):
                    value = event.summary.value[ref.value]
                    yield from _media_values(
                        value, ref.kind, int(event.step), float(event.wall_time)
                    )
                if index >= last:
                    break

    return media


def _media_values(value: Any, kind: str, step: int, when: float) -> Iterator[SourceMedia]:
    """One summary value as media: legacy protos or a plugin's tensor."""
    tag = value.tag
    which = value.WhichOneof("value")
    if which == "histo":
        edges, counts = _histo_bins(value.histo)
        yield SourceMedia(tag, "histogram", step, when, value=(edges, counts))
    elif which == "image":
        payload = bytes(value.image.encoded_image_string)
        yield _picture(tag, step, when, payload, {"height": value.image.height})
    elif which == "audio":
        yield SourceMedia(
            tag,
            "audio",
            step,
            when,
            payload=bytes(value.audio.encoded_audio_string),
            media_type=value.audio.content_type or "audio/wav",
            meta={"sample_rate": float(value.audio.sample_rate)},
        )
    elif kind == "histogram":
        rows = _array(value.tensor).reshape(-1, 3).astype(np.float64)
        if len(rows):
            edges = np.concatenate([rows[:1, 0], rows[:, 1]])
            yield SourceMedia(tag, "histogram", step, when, value=(edges, rows[:, 2]))
    elif kind == "image":
        # The images plugin's tensor: [width, height, image, image, ...], encoded.
        cells = _array(value.tensor).reshape(-1)
        for number, payload in enumerate(cells[2:]):
            name = tag if number == 0 else f"{tag}/{number}"
            yield _picture(name, step, when, bytes(payload), {})
    elif kind == "text":
        cells = _array(value.tensor).reshape(-1)
        text = "\n".join(c.decode("utf-8", "replace") for c in cells)
        yield SourceMedia(tag, "text", step, when, value=text)
    elif kind == "audio":
        # The audio plugin's tensor: [[encoded, label], ...].
        cells = _array(value.tensor).reshape(-1)
        pairs = cells.reshape(-1, 2) if cells.size % 2 == 0 else cells[:0].reshape(0, 2)
        for number, row in enumerate(pairs):
            name = tag if number == 0 else f"{tag}/{number}"
            yield SourceMedia(
                name, "audio", step, when, payload=bytes(row[0]), media_type="audio/wav"
            )


def _picture(
    name: str, step: int, when: float, payload: bytes, meta: Mapping[str, Any]
) -> SourceMedia:
    """An encoded image as media; an animated GIF (tensorboardX's `add_video`) is a video."""
    if payload.startswith(b"GIF8"):
        return SourceMedia(name, "video", step, when, payload=payload, media_type="image/gif")
    media_type = "image/jpeg" if payload.startswith(b"\xff\xd8") else "image/png"
    return SourceMedia(name, "image", step, when, payload=payload, media_type=media_type)


def _histo_bins(histo: Any) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) of a `HistogramProto`: bucket i ends at `bucket_limit[i]`.

    TensorFlow writes empty buckets out to +-DBL_MAX at both ends; they are dropped, the
    first edge is the minimum and the last is capped at the maximum.
    """
    limits = np.asarray(histo.bucket_limit, dtype=np.float64)
    counts = np.asarray(histo.bucket, dtype=np.float64)
    nonzero = np.flatnonzero(counts)
    if len(nonzero) == 0 or len(limits) != len(counts):
        return np.asarray([histo.min, histo.max], dtype=np.float64), np.zeros(1)
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    edges = np.concatenate([[histo.min], limits[lo : hi + 1]])
    if edges[-1] > histo.max > edges[-2]:
        edges[-1] = histo.max
    if edges[0] >= edges[1] and lo > 0:
        edges[0] = limits[lo - 1]
    return edges, counts[lo : hi + 1]
