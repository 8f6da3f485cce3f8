"""Reading a run directory back: events, and metric points as numpy arrays.

The format is described in `polytrack.journal`. Readers never write: records torn by a
crash are skipped, and ranges whose checksum fails are dropped and reported.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from polytrack._convert import event_from_dict
from polytrack.errors import CorruptRecordError, StoreError
from polytrack.journal import (
    EVENTS_MAGIC,
    EVENTS_RE,
    FRAME,
    HEADER_SIZE,
    KIND_POINT,
    KIND_ROW,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    SEGMENT_RE,
)
from polytrack.models import Checksum, Event, KeyDefined, SchemaDefined

__all__ = ["MetricSeries", "RunFiles", "read_run_files"]


@attrs.define
class MetricSeries:
    """All points of one metric: steps, values and wall-clock times (unix seconds)."""

    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64]


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
    pos = HEADER_SIZE
    while pos + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, pos)
        if length == 0:
            return
        payload = data[pos + FRAME.size : pos + FRAME.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            corrupt.append(f"{path.name}@{pos}: torn or corrupt frame; the rest is skipped")
            return
        try:
            yield event_from_dict(json.loads(payload))
        except (ValueError, CorruptRecordError) as exc:
            corrupt.append(f"{path.name}@{pos}: {exc}")
        pos += FRAME.size + length + (-length % 8)


def _segment_dtype(record_size: int) -> np.dtype[Any]:
    n = (record_size - 16) // 8
    return np.dtype(
        [("step", "<i8"), ("values", "<f8", (n,)), ("t", "<f4"), ("key", "<u2"), ("kind", "<u2")]
    )


def read_run_files(directory: Path, *, keys: frozenset[str] | None = None) -> RunFiles:
    """Read every attempt's events and metric points from a run directory.

    Records torn by a crash are skipped; ranges whose checksum fails are dropped and
    reported in `corrupt`. Pass `keys` to decode only those metrics.
    """
    corrupt: list[str] = []
    events: list[tuple[int, Event]] = []
    names_by_attempt: dict[int, dict[int, str]] = {}
    schemas: dict[tuple[int, int], tuple[int, ...]] = {}
    checks: dict[str, list[Checksum]] = {}
    try:
        entries = sorted(os.listdir(directory))
    except OSError as exc:
        raise StoreError(f"cannot read run directory {directory}: {exc}") from exc
    for name in entries:
        match = EVENTS_RE.match(name)
        if not match:
            continue
        attempt = int(match.group(1))
        names = names_by_attempt.setdefault(attempt, {})
        for event in _read_events(directory / name, corrupt):
            if isinstance(event, KeyDefined):
                names[event.id] = event.name
            elif isinstance(event, SchemaDefined):
                schemas[attempt, event.stream] = event.keys
            elif isinstance(event, Checksum):
                checks.setdefault(event.file, []).append(event)
                continue
            events.append((attempt, event))

    parts: dict[str, list[tuple[Any, Any, Any]]] = {}
    for name in entries:
        match = SEGMENT_RE.match(name)
        if not match:
            continue
        attempt, stream = int(match.group(1)), int(match.group(2))
        names = names_by_attempt.get(attempt, {})
        path = directory / name
        raw = path.read_bytes()
        if len(raw) < HEADER_SIZE:
            continue
        magic, _, record_size, _, _, base_ns = SEGMENT_HEADER.unpack_from(raw, 0)
        if magic != SEGMENT_MAGIC or record_size < 16 or record_size % 8:
            corrupt.append(f"{name}: bad segment header")
            continue
        count = (len(raw) - HEADER_SIZE) // record_size
        records = np.frombuffer(raw, _segment_dtype(record_size), count, HEADER_SIZE)
        good = records["kind"] == (KIND_POINT if stream == 0 else KIND_ROW)
        for check in checks.get(name, ()):
            if zlib.crc32(raw[check.start : check.end]) != check.crc:
                corrupt.append(f"{name}: bytes {check.start}-{check.end} fail their checksum")
                lo = (check.start - HEADER_SIZE) // record_size
                hi = (check.end - HEADER_SIZE) // record_size
                good[lo:hi] = False
        records = records[good]
        times = base_ns / 1e9 + records["t"].astype(np.float64)
        if stream == 0:
            for kid in np.unique(records["key"]):
                key = names.get(int(kid))
                if key is None or (keys is not None and key not in keys):
                    continue
                mask = records["key"] == kid
                parts.setdefault(key, []).append(
                    (records["step"][mask], records["values"][mask, 0], times[mask])
                )
        else:
            kids = schemas.get((attempt, stream))
            if kids is None:
                corrupt.append(f"{name}: no schema for stream {stream}")
                continue
            for column, kid in enumerate(kids):
                key = names.get(kid)
                if key is None or (keys is not None and key not in keys):
                    continue
                parts.setdefault(key, []).append(
                    (records["step"], records["values"][:, column], times)
                )
    series: dict[str, MetricSeries] = {}
    for key, chunks in parts.items():
        steps = np.concatenate([c[0] for c in chunks]).astype(np.int64, copy=False)
        values = np.concatenate([c[1] for c in chunks]).astype(np.float64, copy=False)
        times = np.concatenate([c[2] for c in chunks]).astype(np.float64, copy=False)
        if len(chunks) > 1 or (steps.size > 1 and bool(np.any(np.diff(steps) < 0))):
            order = np.lexsort((times, steps))
            steps, values, times = steps[order], values[order], times[order]
        series[key] = MetricSeries(steps, values, times)
    return RunFiles(events=events, series=series, corrupt=corrupt)
