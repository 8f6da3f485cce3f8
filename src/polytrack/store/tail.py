"""Reading a run's journal onward from a position: what the sync worker ships next.

A `Position` says, per file, how far shipping got: the offset of the next frame of each
events file, the next slot of each segment. `JournalTail.read` returns the records after a
position and the position after them, under one rule that makes a slice *repeatable*:
reading the same range again (after a crash, say) gives exactly the same records.

- A frame of an events file is there once its header is, and never changes. A damaged
  frame is skipped, and the frames after it are read (`journal.frames` with `resync`);
  damage never changes either, so a range read again skips the same bytes.
- A slot of a segment is final once a `Checksum` covers it (the segment's writers let go
  of it) or once the attempt's process is dead; an empty final slot stays empty (a record
  torn by a crash). While the process lives, slots past the checksummed range may still be
  filled out of order (Python writers on several threads), so a live tail stops at the first
  empty slot and takes the rest once it is filled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from polytrack._convert import event_from_dict
from polytrack.errors import CorruptRecordError
from polytrack.models import (
    Checksum,
    Event,
    KeyDefined,
    KeyTable,
    SchemaDefined,
    StatusChanged,
)
from polytrack.store.journal import (
    CHANGES_ATTEMPT,
    EVENTS_RE,
    HEADER_SIZE,
    KIND_POINT,
    KIND_ROW,
    SEGMENT_RE,
    decode_event,
    stable_frames,
)
from polytrack.store.reader import (
    expected_record_size,
    failed_slots,
    read_segment_header,
    segment_dtype,
    written,
)

__all__ = ["BOOKKEEPING", "Chunk", "JournalTail", "Position", "Slice"]

# Events that describe the journal itself rather than the run: never shipped.
BOOKKEEPING: Final = (KeyDefined, SchemaDefined, Checksum, KeyTable)


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
        # What was skipped as damaged, each said once however often it is read again.
        self.corrupt: list[str] = []
        self._said: set[str] = set()
        self._scanned = _Scanned()

    def _report(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self.corrupt.append(message)

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
        attempts = [a for a in attempts if a != CHANGES_ATTEMPT]  # the changes log: no attempt
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
                elif isinstance(event, KeyTable):
                    names.update(event.keys)
                    for stream, keys in event.schemas.items():
                        scanned.schemas[attempt, stream] = keys
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
        """(event, its offset, the offset after it) for each whole frame from `offset`;
        damaged frames and records that do not decode are skipped and reported."""
        path = self.directory / name
        offset = max(offset, HEADER_SIZE)

        def read() -> bytes:
            with path.open("rb") as file:
                file.seek(offset)
                return file.read() if upper is None else file.read(max(0, upper - offset))

        try:
            _, found = stable_frames(read, 0)  # ends where a frame is being written
        except FileNotFoundError:
            return
        except OSError as exc:
            self._report(f"{name}: cannot be read: {exc}")
            return
        for pos, after, payload in found:
            start, end = offset + pos, offset + after
            if payload is None:
                self._report(f"{name}: bytes {start}-{end} are damaged frames; skipped")
                continue
            try:
                event = decode_event(payload, event_from_dict)
            except CorruptRecordError as exc:
                self._report(f"{name}@{start}: {exc}")
            else:
                yield event, start, end

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
        kids = self._key_ids(attempt, stream)
        expected = expected_record_size(stream, self._scanned.schemas.get((attempt, stream)))
        checks = self._scanned.checks.get(name, ())
        try:
            with path.open("rb") as file:
                header = file.read(HEADER_SIZE)
                if not written(file, header, expected, checks):
                    return [], slot, False
                said: list[str] = []
                layout = read_segment_header(
                    name,
                    header,
                    attempt=attempt,
                    stream=stream,
                    record_size=expected,
                    checks=checks,
                    corrupt=said,
                )
                for message in said:
                    self._report(message)
                if layout is None:
                    return [], slot, False
                record_size, base = layout
                width = (record_size - 16) // 8
                # The slots the file holds: its header's capacity may be damaged.
                capacity = (os.fstat(file.fileno()).st_size - HEADER_SIZE) // record_size
                last = capacity if upper is None else min(upper, capacity)
                count = last - slot
                more = False
                if budget is not None and count * max(width, 1) > budget:
                    count, more = max(1, budget // max(width, 1)), True
                if count <= 0:
                    return [], slot, False
                file.seek(HEADER_SIZE + slot * record_size)
                records = np.fromfile(file, dtype=segment_dtype(record_size), count=count)
            bad = self._bad_slots(name, record_size)
        except FileNotFoundError:
            return [], slot, False
        except OSError as exc:
            self._report(f"{name}: cannot be read: {exc}")
            return [], slot, False
        if not records.size:
            return [], slot, False
        kinds = records["kind"]
        valid = kinds == (KIND_ROW if stream else KIND_POINT)
        failed = np.zeros(records.size, dtype=bool)
        for lo, hi in bad:
            a, b = max(lo - slot, 0), max(min(hi - slot, records.size), 0)
            failed[a:b] = True
        valid &= ~failed
        if stream == 0:
            stray = valid & ~np.isin(records["key"], np.fromiter(kids, np.uint16, len(kids)))
        else:
            stray = valid & (records["key"] != stream) if kids else valid.copy()
        valid &= ~stray
        final = self._final_slots(name, record_size)
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
        self._report_skipped(name, slot, records, stray[:taken], failed[:taken], stream)
        if not valid.all():
            records = records[valid]
        if not records.size:
            return [], end, more
        return self._chunks(records, attempt, stream, base), end, more

    def _report_skipped(
        self,
        name: str,
        slot: int,
        records: npt.NDArray[Any],
        stray: npt.NDArray[np.bool_],
        failed: npt.NDArray[np.bool_],
        stream: int,
    ) -> None:
        """Report the records taken past that are neither empty nor in a failed block
        (reported already): a damaged kind, a key id no event names, a row of no stream."""
        kind = KIND_ROW if stream else KIND_POINT
        damaged = ~failed & (records["kind"] != 0) & (records["kind"] != kind)
        where = f"{name}: records {slot}-{slot + records.size}"
        if damaged.any():
            self._report(f"{where}: {int(damaged.sum())} with a damaged kind field skipped")
        if stray.any():
            keys = np.unique(records["key"][stray]).tolist()
            what = f"key ids {keys[:5]}" if stream == 0 else f"stream {stream}"
            self._report(f"{where}: {int(stray.sum())} of {what}, which no event names, skipped")

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
        ends = [
            check.end
            for check in checks
            if HEADER_SIZE <= check.start <= check.end
            and (check.end - HEADER_SIZE) % record_size == 0
        ]
        return (max(ends, default=HEADER_SIZE) - HEADER_SIZE) // record_size

    def _bad_slots(self, name: str, record_size: int) -> list[tuple[int, int]]:
        """Slot ranges that fail their checksums (verified once per new checksum)."""
        checks = self._scanned.checks.get(name, [])
        done, bad = self._scanned.bad.get(name, (0, []))
        if done < len(checks):
            with (self.directory / name).open("rb") as file:
                size = os.fstat(file.fileno()).st_size

                def read(lo: int, hi: int) -> bytes:
                    file.seek(lo)
                    return file.read(hi - lo)

                for first, end, message in failed_slots(
                    name, checks[done:], record_size, size, read
                ):
                    self._report(message)
                    bad.append((first, end))
            self._scanned.bad[name] = (len(checks), bad)
        return bad
