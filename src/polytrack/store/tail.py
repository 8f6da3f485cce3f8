"""Reading a run's journal onward from a position: what the sync worker ships next.

A `Position` says, per file, how far shipping got: the offset of the next frame of each
events file, the next slot of each segment. `JournalTail.read` returns the records after a
position and the position after them, under one rule that makes a slice *repeatable*:
reading the same range again (after a crash, say) gives exactly the same records.

- A frame of an events file is there once its header is, and never changes.
- A slot of a segment is final once a `Checksum` covers it (the segment's writers let go
  of it) or once the attempt's process is dead; an empty final slot stays empty (a record
  torn by a crash). While the process lives, slots past the checksummed range may still be
  filled out of order (Python writers on several threads), so a live tail stops at the first
  empty slot and takes the rest once it is filled.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from polytrack._convert import event_from_dict
from polytrack.errors import CorruptRecordError
from polytrack.models import Checksum, Event, KeyDefined, SchemaDefined, StatusChanged
from polytrack.store.journal import (
    EVENTS_MAGIC,
    EVENTS_RE,
    HEADER_SIZE,
    KIND_POINT,
    KIND_ROW,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    SEGMENT_RE,
    frames,
)
from polytrack.store.reader import segment_dtype

__all__ = ["BOOKKEEPING", "Chunk", "JournalTail", "Position", "Slice"]

# Events that describe the journal itself rather than the run: never shipped.
BOOKKEEPING: Final = (KeyDefined, SchemaDefined, Checksum)


@attrs.define
class Position:
    """How far shipping got: events file -> next frame offset, segment -> next slot."""

    events: dict[str, int] = attrs.field(factory=dict)
    points: dict[str, int] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, dict[str, int]]:
        return {"events": dict(self.events), "points": dict(self.points)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Position:
        return cls(
            events={str(k): int(v) for k, v in data.get("events", {}).items()},
            points={str(k): int(v) for k, v in data.get("points", {}).items()},
        )

    def copy(self) -> Position:
        return Position(dict(self.events), dict(self.points))


@attrs.define(eq=False)
class Chunk:
    """Points of one metric from one segment: steps, values and unix times."""

    key: str
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64]


@attrs.define(eq=False)
class Slice:
    """Records after a position, and the position after them.

    `exhausted` is True when nothing more could be read now: the slice stopped at the
    end of what is there (for a live run, of what is final), not at a size limit.
    """

    events: list[Event]
    chunks: list[Chunk]
    end: Position
    exhausted: bool

    @property
    def points(self) -> int:
        return sum(int(chunk.steps.size) for chunk in self.chunks)

    @property
    def empty(self) -> bool:
        return not self.events and not self.chunks


@attrs.define
class _Scanned:
    """What the events files say about the segments, read incrementally."""

    offsets: dict[str, int] = attrs.field(factory=dict)  # events file -> bytes scanned
    names: dict[int, dict[int, str]] = attrs.field(factory=dict)  # attempt -> id -> key
    schemas: dict[tuple[int, int], tuple[int, ...]] = attrs.field(factory=dict)
    checks: dict[str, list[Checksum]] = attrs.field(factory=dict)
    status: StatusChanged | None = None  # the latest status change recorded
    # segment -> (number of checks verified, [(first bad slot, end slot)])
    bad: dict[str, tuple[int, list[tuple[int, int]]]] = attrs.field(factory=dict)


class JournalTail:
    """Reads one run directory's journal from any `Position`; keeps what it learnt of the
    key names and checksums between calls, so each call reads only what is new."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.corrupt: list[str] = []
        self._scanned = _Scanned()

    @property
    def latest_status(self) -> StatusChanged | None:
        """The last status change in the journal, as of the latest `read`."""
        return self._scanned.status

    def read(
        self,
        start: Position,
        *,
        live: bool,
        max_points: int = 20_000,
        max_events: int = 1_000,
        stop: Position | None = None,
    ) -> Slice:
        """The records after `start`, up to the limits, or exactly up to `stop`.

        Args:
            live: the latest attempt's process may still be writing (see module doc).
            stop: read exactly the range [start, stop) that an earlier call returned,
                whatever the limits: how a batch is rebuilt after a restart.
        """
        entries = sorted(os.listdir(self.directory))
        attempts = [int(m.group(1)) for m in map(EVENTS_RE.match, entries) if m]
        latest = max(attempts, default=0)
        self._scan(entries)
        end = start.copy()
        events: list[Event] = []
        full = False
        for name in entries:
            if not EVENTS_RE.match(name):
                continue
            limit = max_events - len(events) if stop is None else None
            if limit is not None and limit <= 0:
                full = True
                break
            upper = None if stop is None else stop.events.get(name, start.events.get(name, 0))
            found, offset, more = self._events_from(name, start.events.get(name, 0), upper, limit)
            events.extend(found)
            if offset:
                end.events[name] = offset
            full = full or more
        chunks: list[Chunk] = []
        budget = max_points
        for name in entries:
            match = SEGMENT_RE.match(name)
            if not match:
                continue
            if stop is None and budget <= 0:
                full = True
                break
            attempt = int(match.group(1))
            upper = None if stop is None else stop.points.get(name, start.points.get(name, 0))
            found_chunks, slot, more = self._points_from(
                name,
                attempt,
                start.points.get(name, 0),
                upper,
                budget if stop is None else None,
                live=live and attempt == latest,
            )
            chunks.extend(found_chunks)
            budget -= sum(int(chunk.steps.size) for chunk in found_chunks)
            if slot:
                end.points[name] = slot
            full = full or more
        return Slice(events=events, chunks=chunks, end=end, exhausted=not full)

    # -- events ---------------------------------------------------------------------------

    def _scan(self, entries: list[str]) -> None:
        scanned = self._scanned
        for name in entries:
            match = EVENTS_RE.match(name)
            if not match:
                continue
            attempt = int(match.group(1))
            names = scanned.names.setdefault(attempt, {})
            offset = scanned.offsets.get(name, HEADER_SIZE)
            for event, _, after in self._frames(name, offset, None):
                offset = after
                if isinstance(event, KeyDefined):
                    names[event.id] = event.name
                elif isinstance(event, SchemaDefined):
                    scanned.schemas[attempt, event.stream] = event.keys
                elif isinstance(event, Checksum):
                    scanned.checks.setdefault(event.file, []).append(event)
                elif isinstance(event, StatusChanged):
                    scanned.status = event
            scanned.offsets[name] = offset

    def _events_from(
        self, name: str, offset: int, upper: int | None, limit: int | None
    ) -> tuple[list[Event], int, bool]:
        """Shippable events from `offset` (to `upper`, at most `limit`), the offset after
        them, and whether more remain."""
        found: list[Event] = []
        offset = max(offset, HEADER_SIZE)
        end = offset
        for event, _, after in self._frames(name, offset, upper):
            if not isinstance(event, BOOKKEEPING):
                if limit is not None and len(found) >= limit:
                    return found, end, True
                found.append(event)
            end = after
        return found, end, False

    def _frames(
        self, name: str, offset: int, upper: int | None
    ) -> Iterator[tuple[Event, int, int]]:
        """(event, its offset, the offset after it) for each whole frame from `offset`."""
        path = self.directory / name
        with path.open("rb") as file:
            if offset <= HEADER_SIZE:
                if not file.read(HEADER_SIZE).startswith(EVENTS_MAGIC):
                    return
                offset = HEADER_SIZE
            file.seek(offset)
            data = file.read() if upper is None else file.read(max(0, upper - offset))
        for pos, after, payload in frames(data, 0):  # ends where a frame is being written
            try:
                event = event_from_dict(json.loads(payload))
            except (ValueError, CorruptRecordError) as exc:
                self.corrupt.append(f"{name}@{offset + pos}: {exc}")
            else:
                yield event, offset + pos, offset + after

    # -- points ---------------------------------------------------------------------------

    def _points_from(
        self,
        name: str,
        attempt: int,
        slot: int,
        upper: int | None,
        budget: int | None,
        *,
        live: bool,
    ) -> tuple[list[Chunk], int, bool]:
        """Chunks from slot `slot` (to `upper`, at most `budget` points), the slot after
        them, and whether more remain."""
        path = self.directory / name
        stream = int(SEGMENT_RE.match(name).group(2))  # type: ignore[union-attr]
        with path.open("rb") as file:
            header = file.read(HEADER_SIZE)
            if len(header) < HEADER_SIZE:
                return [], slot, False
            magic, _, record_size, capacity, _, base_ns = SEGMENT_HEADER.unpack_from(header)
            if magic != SEGMENT_MAGIC or record_size < 16 or record_size % 8:
                self.corrupt.append(f"{name}: bad segment header")
                return [], slot, False
            width = (record_size - 16) // 8
            last = capacity if upper is None else min(upper, capacity)
            count = last - slot
            more = False
            if budget is not None and count * width > budget:
                count, more = max(1, budget // width), True
            if count <= 0:
                return [], slot, False
            file.seek(HEADER_SIZE + slot * record_size)
            records = np.fromfile(file, dtype=segment_dtype(record_size), count=count)
        if not records.size:
            return [], slot, False
        kids = self._key_ids(attempt, stream)
        valid = records["kind"] == (KIND_ROW if stream else KIND_POINT)
        if stream == 0:
            valid &= np.isin(records["key"], np.fromiter(kids, np.uint16, len(kids)))
        elif not kids:
            valid[:] = False
        final = self._final_slots(name, record_size)
        for lo, hi in self._bad_slots(name, record_size):
            a, b = max(lo - slot, 0), max(min(hi - slot, records.size), 0)
            valid[a:b] = False
        taken = records.size
        if upper is None:
            if live:
                # Past the checksummed slots, stop at the first empty one: it may be filled.
                open_from = max(final - slot, 0)
                holes = np.flatnonzero(~valid[open_from:])
                if holes.size:
                    taken, more = open_from + int(holes[0]), False
            else:
                # A dead writer: never-written slots at the end are not worth a position.
                filled = np.flatnonzero(valid)
                if not more:
                    taken = int(filled[-1]) + 1 if filled.size else 0
        records, valid = records[:taken], valid[:taken]
        end = slot + taken
        if not valid.all():
            records = records[valid]
        if not records.size:
            return [], end, more
        return self._chunks(records, attempt, stream, base_ns / 1e9), end, more

    def _key_ids(self, attempt: int, stream: int) -> dict[int, str] | tuple[int, ...]:
        if stream == 0:
            return self._scanned.names.get(attempt, {})
        return self._scanned.schemas.get((attempt, stream), ())

    def _chunks(
        self, records: npt.NDArray[Any], attempt: int, stream: int, base: float
    ) -> list[Chunk]:
        names = self._scanned.names.get(attempt, {})
        times = base + records["t"].astype(np.float64)
        steps = np.ascontiguousarray(records["step"], dtype=np.int64)
        chunks = []
        if stream == 0:
            keys = records["key"]
            for kid in np.unique(keys).tolist():
                mask = keys == kid
                chunks.append(
                    Chunk(names[kid], steps[mask], records["values"][mask, 0].copy(), times[mask])
                )
        else:
            for column, kid in enumerate(self._scanned.schemas[attempt, stream]):
                key = names.get(kid)
                if key is not None:
                    values = np.ascontiguousarray(records["values"][:, column], np.float64)
                    chunks.append(Chunk(key, steps, values, times))
        return chunks

    def _final_slots(self, name: str, record_size: int) -> int:
        checks = self._scanned.checks.get(name, ())
        end = max((check.end for check in checks), default=HEADER_SIZE)
        return (end - HEADER_SIZE) // record_size

    def _bad_slots(self, name: str, record_size: int) -> list[tuple[int, int]]:
        """Slot ranges whose checksum fails (verified once per new checksum)."""
        checks = self._scanned.checks.get(name, [])
        done, bad = self._scanned.bad.get(name, (0, []))
        if done < len(checks):
            with (self.directory / name).open("rb") as file:
                for check in checks[done:]:
                    file.seek(check.start)
                    data = file.read(check.end - check.start)
                    if len(data) != check.end - check.start or zlib.crc32(data) != check.crc:
                        self.corrupt.append(
                            f"{name}: bytes {check.start}-{check.end} fail their checksum"
                        )
                        first = (check.start - HEADER_SIZE) // record_size
                        bad.append((first, (check.end - HEADER_SIZE) // record_size))
            self._scanned.bad[name] = (len(checks), bad)
        return bad
