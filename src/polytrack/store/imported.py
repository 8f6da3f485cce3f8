"""`ImportedRun`: writes one attempt of a run recorded elsewhere, with the source's own times.

A live run's writer (`polytrack.store.writer`) stamps every record with the clock of the
process that logs it. A run imported from another tracker (`polytrack.importers`) already
has its times: when it started and ended, when each point was logged. This writer puts
them in the same files, in the same format (`polytrack.store.journal`), so every reader
reads an imported run as any other:

- events are given whole, their times set by the caller (`RunStarted.created_at`,
  `StatusChanged.at`, `ArtifactLogged.logged_at`, `MediaLogged.logged_at`);
- points come in bulk, one key's steps, values and unix times as arrays, and are packed
  with numpy into finished segments: no record goes through the per-point log path.

A point's time is stored as float32 seconds from its segment's start (in the header).
Points are cut into segments by `SPAN`-second windows of the time axis, so an offset is
below `SPAN` and keeps its time to 0.12 ms (the float32 spacing at 2048 is 2**-12 s):
a millisecond timestamp reads back as itself.

Crash safety: a segment is written and synced under a temporary name, then renamed into
place, so a reader never sees half of one; segments are written in time order, so what
an interrupted attempt left of each key is its earliest points. The importer counts what
is stored and writes only the rest next time.

Example:
    >>> with ImportedRun.create(home, run_id="mlf3k2ab") as run:
    ...     run.append(RunStarted(id="mlf3k2ab", project="p", name="n", created_at=t0,
    ...                           host="", pid=0, process_started=0.0))
    ...     run.write_points("loss", steps, values, times)
    ...     run.append(StatusChanged(status="succeeded", at=t1))
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from polytrack.errors import InvalidInputError, StoreError
from polytrack.models import Event, KeyDefined, KeyTable
from polytrack.store.journal import (
    CHANGES_FILE,
    EVENTS_RE,
    HEADER_SIZE,
    KIND_POINT,
    MAX_KEYS,
    POINT_SIZE,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    Events,
    checksum_of,
    fsync_dir,
)
from polytrack.store.reader import segment_dtype
from polytrack.store.writer import check_key

__all__ = ["SPAN", "ImportedRun", "next_attempt"]

# The width, in seconds, of the time window one segment covers (see the module doc).
SPAN: Final = 2048
_POINT_DTYPE: Final = segment_dtype(POINT_SIZE)


def next_attempt(directory: Path) -> int:
    """The number of the next attempt of the run in `directory`: one past every events
    log on disk (the changes log aside), 0 for a new run."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StoreError(f"cannot read run directory {directory}: {exc}") from exc
    numbers = [
        int(match.group(1))
        for name in names
        if name != CHANGES_FILE and (match := EVENTS_RE.match(name))
    ]
    return 1 + max(numbers, default=-1)


class ImportedRun:
    """One attempt of an imported run, written with the source's times (see the module doc).

    Not thread-safe: one importer writes one run at a time. `close()` (or leaving the
    `with` block) writes the key table and syncs the attempt's files.
    """

    def __init__(self, directory: Path, *, run_id: str, attempt: int, events: Events) -> None:
        self.directory = directory
        self.run_id = run_id
        self.attempt = attempt
        self._events = events
        self._key_ids: dict[str, int] = {}
        self._segments = 0
        self._closed = False
        self.points = 0  # written by this attempt

    @classmethod
    def create(cls, home: Path, *, run_id: str, attempt: int | None = None) -> ImportedRun:
        """Start the next attempt (or `attempt`) of run `run_id` under `home/runs`.

        Raises:
            StoreError: the run directory or its events log cannot be created.
        """
        directory = home / "runs" / run_id
        try:
            directory.mkdir(parents=True, exist_ok=True)
            number = next_attempt(directory) if attempt is None else attempt
            events = Events.create(directory / f"events-{number:03d}.log")
        except OSError as exc:
            raise StoreError(f"cannot create the run journal in {directory}: {exc}") from exc
        return cls(directory, run_id=run_id, attempt=number, events=events)

    def __enter__(self) -> ImportedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, event: Event) -> None:
        """Record an event as given (its times are the caller's)."""
        self._events.append(event)

    def write_points(
        self,
        key: str,
        steps: npt.ArrayLike,
        values: npt.ArrayLike,
        times: npt.ArrayLike,
    ) -> int:
        """Write one metric's points (equal-length steps, values, unix times); the count.

        Raises:
            InvalidInputError: a bad key, arrays of unequal length, a step outside 64 bits,
                a value that is no number, or a time that is not finite.
            StoreError: the segments cannot be written.
        """
        return self.write_series([(key, steps, values, times)])

    def write_series(
        self, series: Sequence[tuple[str, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]]
    ) -> int:
        """Write several metrics' points at once (as `write_points`): their points share
        segments, one per `SPAN` seconds of their times. Returns the count written."""
        parts = [_checked(*item) for item in series]
        parts = [part for part in parts if part[1].size]
        if not parts:
            return 0
        ids = self._define([key for key, *_ in parts])
        total = sum(part[1].size for part in parts)
        records = np.zeros(total, dtype=_POINT_DTYPE)
        times = np.empty(total, dtype=np.float64)
        at = 0
        for key, step, value, time in parts:
            end = at + step.size
            records["step"][at:end] = step
            records["values"][at:end, 0] = value
            records["key"][at:end] = ids[key]
            times[at:end] = time
            at = end
        records["kind"] = KIND_POINT
        windows = np.floor(times / SPAN).astype(np.int64)
        order = np.argsort(windows, kind="stable")  # logging order within a window
        records, times, windows = records[order], times[order], windows[order]
        cuts = np.flatnonzero(np.diff(windows)) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), total], strict=True):
            base = int(windows[lo]) * SPAN
            chunk = records[lo:hi]
            chunk["t"] = (times[lo:hi] - base).astype(np.float32)
            self._write_segment(chunk, base)
        self.points += total
        return total

    def _define(self, keys: Sequence[str]) -> dict[str, int]:
        """The ids of `keys` in this attempt, defining the new ones."""
        new = [key for key in dict.fromkeys(keys) if key not in self._key_ids]
        if len(self._key_ids) + len(new) > MAX_KEYS:
            raise InvalidInputError(
                f"an attempt holds at most {MAX_KEYS} metric keys; this one would hold "
                f"{len(self._key_ids) + len(new)}"
            )
        for key in new:
            kid = len(self._key_ids) + 1
            self._events.append(KeyDefined(id=kid, name=key))
            self._key_ids[key] = kid
        return self._key_ids

    def _write_segment(self, records: npt.NDArray[Any], base: int) -> None:
        """Write a finished segment under a temporary name, sync it, rename it into place,
        and record its checksum."""
        name = f"points-{self.attempt:03d}-000-{self._segments:05d}.seg"
        self._segments += 1
        header = bytearray(HEADER_SIZE)
        SEGMENT_HEADER.pack_into(
            header, 0, SEGMENT_MAGIC, 0, POINT_SIZE, records.size, self.attempt, base * 10**9
        )
        data = records.tobytes()
        path = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(header)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {exc}") from exc
        self._events.append(checksum_of(name, data, header=zlib.crc32(header)))

    def close(self) -> None:
        """Write the key table again (see `KeyTable`), and sync and close the attempt."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._key_ids:
                self._events.append(KeyTable(keys={kid: key for key, kid in self._key_ids.items()}))
        finally:
            self._events.close()
            fsync_dir(self.directory)


def _checked(
    key: object, steps: npt.ArrayLike, values: npt.ArrayLike, times: npt.ArrayLike
) -> tuple[str, npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One key's arrays, converted and checked (see `ImportedRun.write_points`)."""
    name = check_key(key)
    try:
        step = np.asarray(steps, dtype=np.int64).reshape(-1)
        value = np.asarray(values, dtype=np.float64).reshape(-1)
        time = np.asarray(times, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"metric {name!r}: {exc}") from exc
    if not step.size == value.size == time.size:
        raise InvalidInputError(
            f"metric {name!r}: {step.size} steps, {value.size} values and {time.size} times"
        )
    if time.size and not bool(np.isfinite(time).all() and (time >= 0).all()):
        raise InvalidInputError(f"metric {name!r}: its times must be finite unix times")
    return name, step, value, time
