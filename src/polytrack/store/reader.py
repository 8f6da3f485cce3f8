"""Reading a run directory back: events, and metric points as numpy arrays.

The format is described in `polytrack.store.journal`. Readers never write: records torn by a
crash are skipped, and ranges whose checksum fails are dropped and reported.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from polytrack._convert import event_from_dict
from polytrack.errors import CorruptRecordError, StoreError
from polytrack.models import (
    Checksum,
    CodeState,
    DataRef,
    EnvironmentState,
    Event,
    GitState,
    HardwareState,
    KeyDefined,
    MetricSummary,
    SchemaDefined,
    SeedState,
    Snapshot,
)
from polytrack.store.journal import (
    EVENTS_MAGIC,
    EVENTS_RE,
    FRAME,
    HEADER_SIZE,
    KIND_POINT,
    KIND_ROW,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    SEGMENT_RE,
    frames,
)

__all__ = [
    "CHUNK",
    "MetricSeries",
    "RunFiles",
    "RunSummary",
    "SegmentTotals",
    "SeriesSummary",
    "read_run_files",
    "read_snapshot",
    "segment_dtype",
    "read_series",
    "summarize_run_files",
]


@attrs.define
class MetricSeries:
    """All points of one metric: steps, values and wall-clock times (unix seconds)."""

    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64] | None = None


@attrs.define
class RunFiles:
    """Everything a run directory holds, read without writing to it."""

    events: list[tuple[int, Event]]
    series: dict[str, MetricSeries]
    corrupt: list[str]


def _read_events(path: Path, corrupt: list[str]) -> Iterator[Event]:
    data = path.read_bytes()
    if not data.startswith(EVENTS_MAGIC):
        if data:
            corrupt.append(f"{path.name}: not an events file")
        return
    stop = HEADER_SIZE  # where the log ends: an empty frame, or a torn or corrupt one
    for pos, after, payload in frames(data):
        stop = after
        try:
            yield event_from_dict(json.loads(payload))
        except (ValueError, CorruptRecordError) as exc:
            corrupt.append(f"{path.name}@{pos}: {exc}")
    if stop + FRAME.size <= len(data) and FRAME.unpack_from(data, stop)[0] != 0:
        corrupt.append(f"{path.name}@{stop}: torn or corrupt frame; the rest is skipped")


def segment_dtype(record_size: int) -> np.dtype[Any]:
    """The numpy layout of a segment's records of `record_size` bytes."""
    n = (record_size - 16) // 8
    return np.dtype(
        [("step", "<i8"), ("values", "<f8", (n,)), ("t", "<f4"), ("key", "<u2"), ("kind", "<u2")]
    )


@attrs.define
class _Layout:
    """What the events say about reading the segments: key names, row schemas, checksums."""

    names: dict[int, dict[int, str]] = attrs.field(factory=dict)  # attempt -> id -> name
    schemas: dict[tuple[int, int], tuple[int, ...]] = attrs.field(factory=dict)
    checks: dict[str, list[Checksum]] = attrs.field(factory=dict)


def _list(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError as exc:
        raise StoreError(f"cannot read run directory {directory}: {exc}") from exc


def _read_all_events(
    directory: Path, entries: list[str], corrupt: list[str]
) -> tuple[list[tuple[int, Event]], _Layout]:
    events: list[tuple[int, Event]] = []
    layout = _Layout()
    for name in entries:
        match = EVENTS_RE.match(name)
        if not match:
            continue
        attempt = int(match.group(1))
        names = layout.names.setdefault(attempt, {})
        for event in _read_events(directory / name, corrupt):
            if isinstance(event, KeyDefined):
                names[event.id] = event.name
            elif isinstance(event, SchemaDefined):
                layout.schemas[attempt, event.stream] = event.keys
            elif isinstance(event, Checksum):
                layout.checks.setdefault(event.file, []).append(event)
                continue
            events.append((attempt, event))
    return events, layout


def _point_chunks(
    directory: Path,
    entries: list[str],
    layout: _Layout,
    corrupt: list[str],
    keys: frozenset[str] | None,
    with_times: bool,
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(key, (steps, values, times)) per segment and key, one segment in memory at a time."""
    for name in entries:
        if SEGMENT_RE.match(name):
            yield from _segment_chunks(directory, name, layout, corrupt, keys, with_times)


def _segment_chunks(
    directory: Path,
    name: str,
    layout: _Layout,
    corrupt: list[str],
    keys: frozenset[str] | None,
    with_times: bool,
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    match = SEGMENT_RE.match(name)
    assert match is not None
    attempt, stream = int(match.group(1)), int(match.group(2))
    read = _read_segment(directory / name, stream, layout.checks.get(name, ()), corrupt)
    if read is None or not read[0].size:
        return
    records, base = read
    names = layout.names.get(attempt, {})
    if stream == 0:
        present = np.flatnonzero(np.bincount(records["key"]))
        for key_id in present.tolist():
            key = names.get(key_id)
            if key is None or (keys is not None and key not in keys):
                continue
            subset = records if present.size == 1 else records[records["key"] == key_id]
            yield key, _columns(subset, 0, base, with_times)
    else:
        kids = layout.schemas.get((attempt, stream))
        if kids is None:
            corrupt.append(f"{name}: no schema for stream {stream}")
            return
        for column, kid in enumerate(kids):
            key = names.get(kid)
            if key is None or (keys is not None and key not in keys):
                continue
            yield key, _columns(records, column, base, with_times)


def read_run_files(
    directory: Path, *, keys: frozenset[str] | None = None, with_times: bool = False
) -> RunFiles:
    """Read every attempt's events and metric points from a run directory.

    Records torn by a crash are skipped; ranges whose checksum fails are dropped and
    reported in `corrupt`. Pass `keys` to decode only those metrics, and `with_times` for
    each point's wall-clock time (otherwise `MetricSeries.times` is None).
    """
    corrupt: list[str] = []
    entries = _list(directory)
    events, layout = _read_all_events(directory, entries, corrupt)
    parts: dict[str, list[tuple[Any, ...]]] = {}
    for key, chunk in _point_chunks(directory, entries, layout, corrupt, keys, with_times):
        parts.setdefault(key, []).append(chunk)
    series = {key: _merge(chunks, with_times) for key, chunks in parts.items()}
    return RunFiles(events=events, series=series, corrupt=corrupt)


def read_series(directory: Path, key: str, *, with_times: bool = False) -> MetricSeries:
    """Every point of one metric of a run directory (empty arrays if it has none)."""
    files = read_run_files(directory, keys=frozenset([key]), with_times=with_times)
    series = files.series.get(key)
    if series is not None:
        return series
    empty = np.empty(0, np.float64)
    return MetricSeries(np.empty(0, np.int64), empty, empty if with_times else None)


@attrs.define
class SeriesSummary:
    """A metric's summary and its chunk rows, computed without holding its points."""

    summary: MetricSummary
    # (count, step_min, step_max, min, max, last) per CHUNK points, in logging order;
    # min and max are NaN where a chunk holds no number
    chunks: list[tuple[int, int, int, float, float, float]]


# key -> [count, min, max, last step, last, chunks]: one sealed segment's totals, as JSON
SegmentTotals = dict[str, list[Any]]


@attrs.define
class RunSummary:
    """A run directory's events and metric summaries.

    `sealed` holds the totals of the sealed segments read this time: a sealed segment
    never changes, so a caller may keep them and pass them back instead of re-reading it.
    """

    events: list[tuple[int, Event]]
    metrics: dict[str, SeriesSummary]
    corrupt: list[str]
    sealed: dict[str, SegmentTotals] = attrs.field(factory=dict)


CHUNK: Final = 4096


def summarize_run_files(
    directory: Path, *, sealed: Mapping[str, SegmentTotals] | None = None
) -> RunSummary:
    """Events and metric summaries of a run directory, reading one segment at a time.

    `last` is the value at the highest step (the latest logged among equals); min and
    max ignore NaN (NaN when every value is NaN). Segments sealed by a checksum whose
    totals are in `sealed` are not read again: a live run costs its open segments only.
    """
    corrupt: list[str] = []
    entries = _list(directory)
    events, layout = _read_all_events(directory, entries, corrupt)
    totals: dict[str, _Totals] = {}
    fresh: dict[str, SegmentTotals] = {}
    for name in entries:
        if not SEGMENT_RE.match(name):
            continue
        known = sealed.get(name) if sealed is not None and name in layout.checks else None
        if known is not None:
            parts = {key: _Totals.from_json(data) for key, data in known.items()}
        else:
            parts = {}
            for key, (steps, values, _) in _segment_chunks(
                directory, name, layout, corrupt, None, False
            ):
                parts.setdefault(key, _Totals()).add(steps, values)
            if name in layout.checks:
                fresh[name] = {key: part.to_json() for key, part in parts.items()}
        for key, part in parts.items():
            totals.setdefault(key, _Totals()).merge(part)
    metrics = {key: t.result() for key, t in totals.items() if t.count}
    return RunSummary(events=events, metrics=metrics, corrupt=corrupt, sealed=fresh)


@attrs.define
class _Totals:
    count: int = 0
    low: float = math.inf
    high: float = -math.inf
    last_step: int = -(2**63)
    last: float = math.nan
    chunks: list[tuple[int, int, int, float, float, float]] = attrs.field(factory=list)

    def add(self, steps: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        for start in range(0, steps.size, CHUNK):
            s, v = steps[start : start + CHUNK], values[start : start + CHUNK]
            finite = v[~np.isnan(v)]
            low = float(finite.min()) if finite.size else math.nan
            high = float(finite.max()) if finite.size else math.nan
            self.chunks.append((int(s.size), int(s.min()), int(s.max()), low, high, float(v[-1])))
            self.count += int(s.size)
            if finite.size:
                self.low, self.high = min(self.low, low), max(self.high, high)
            # The last occurrence of the highest step: later points win ties.
            top = int(s.size - 1 - np.argmax(s[::-1]))
            if int(s[top]) >= self.last_step:
                self.last_step, self.last = int(s[top]), float(v[top])

    def merge(self, other: _Totals) -> None:
        """Fold in the totals of points logged after these (later points win step ties)."""
        self.count += other.count
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        if other.count and other.last_step >= self.last_step:
            self.last_step, self.last = other.last_step, other.last
        self.chunks.extend(other.chunks)

    def to_json(self) -> list[Any]:
        # json writes inf and NaN as Infinity and NaN, and reads them back.
        return [self.count, self.low, self.high, self.last_step, self.last, self.chunks]

    @classmethod
    def from_json(cls, data: list[Any]) -> _Totals:
        count, low, high, last_step, last, chunks = data
        return cls(count, low, high, last_step, last, [tuple(chunk) for chunk in chunks])

    def result(self) -> SeriesSummary:
        nan = math.nan
        return SeriesSummary(
            summary=MetricSummary(
                last=self.last,
                min=self.low if self.low != math.inf else nan,
                max=self.high if self.high != -math.inf else nan,
                count=self.count,
                last_step=self.last_step,
            ),
            chunks=self.chunks,
        )


def _read_segment(
    path: Path, stream: int, checks: Iterable[Checksum], corrupt: list[str]
) -> tuple[npt.NDArray[Any], float] | None:
    """The valid records of one segment file, and the wall-clock time its times count from."""
    with path.open("rb") as file:
        header = file.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            return None
        magic, _, record_size, _, _, base_ns = SEGMENT_HEADER.unpack_from(header, 0)
        if magic != SEGMENT_MAGIC or record_size < 16 or record_size % 8:
            corrupt.append(f"{path.name}: bad segment header")
            return None
        records = np.fromfile(file, dtype=segment_dtype(record_size))
    good = records["kind"] == (KIND_POINT if stream == 0 else KIND_ROW)
    raw = records.view(np.uint8).data
    for check in checks:
        lo, hi = check.start - HEADER_SIZE, check.end - HEADER_SIZE
        if hi > len(raw) or zlib.crc32(raw[lo:hi]) != check.crc:
            corrupt.append(f"{path.name}: bytes {check.start}-{check.end} fail their checksum")
            good[lo // record_size : hi // record_size] = False
    del raw
    return (records if good.all() else records[good]), base_ns / 1e9


def _columns(
    records: npt.NDArray[Any], column: int, base: float, with_times: bool
) -> tuple[Any, ...]:
    steps = np.ascontiguousarray(records["step"], dtype=np.int64)
    values = np.ascontiguousarray(records["values"][:, column], dtype=np.float64)
    times = base + records["t"].astype(np.float64) if with_times else None
    return steps, values, times


def _merge(chunks: list[tuple[Any, ...]], with_times: bool) -> MetricSeries:
    """One series from its chunks, sorted by step (stable: logging order breaks ties)."""
    if len(chunks) == 1:
        steps, values, times = chunks[0]
    else:
        steps = np.concatenate([c[0] for c in chunks])
        values = np.concatenate([c[1] for c in chunks])
        times = np.concatenate([c[2] for c in chunks]) if with_times else None
    if steps.size > 1 and not bool(np.all(steps[1:] >= steps[:-1])):
        order = (
            np.lexsort((times, steps)) if times is not None else np.argsort(steps, kind="stable")
        )
        steps, values = steps[order], values[order]
        times = times[order] if times is not None else None
    return MetricSeries(steps, values, times)


_SNAPSHOT_PARTS: Final = {
    GitState: "git",
    CodeState: "code",
    EnvironmentState: "environment",
    HardwareState: "hardware",
    SeedState: "seeds",
}


def read_snapshot(directory: Path) -> Snapshot:
    """The run's reproducibility snapshot: the latest record of each kind across attempts,
    and every data ref in the order logged."""
    corrupt: list[str] = []
    events, _ = _read_all_events(directory, _list(directory), corrupt)
    parts: dict[str, Any] = {}
    refs: list[DataRef] = []
    for _, event in events:
        part = _SNAPSHOT_PARTS.get(type(event))
        if part is not None:
            parts[part] = event
        elif isinstance(event, DataRef):
            refs.append(event)
    return Snapshot(**parts, data_refs=tuple(refs))
