"""Reading a run directory back: events, and metric points as numpy arrays.

The format is described in `polytrack.store.journal`. Readers never write, and never trust a
run's bytes to be well-formed: records torn by a crash are skipped; what is damaged (a block
that fails its checksum, a frame that fails its CRC, a record that does not decode, a point
whose key id no event names, a damaged segment header) is skipped, and reported once in
`corrupt` with its file and byte range; reading goes on after it.

The side journals of a distributed run's other ranks (`ranks/<rank>/`, see
`polytrack.store.journal.RANKS_DIR`) are read with the run: their points join the run's
series (their keys carry the rank already, `system/rank1/cpu.percent`), their damage is
reported under their path (`ranks/1/events-000.log@64: ...`), and their events serve only
to read their points: a side journal never speaks for the run (its status, params, start).
A directory that holds side journals but no events log of its own holds no run yet (rank
1 started before rank 0 created it): its side journals are not read then, so that the
run's absence stays visible to `init()` and to readers.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

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
    KeyTable,
    MetricSummary,
    SchemaDefined,
    SeedState,
    Snapshot,
)
from polytrack.store.journal import (
    EVENTS_MAGIC,
    EVENTS_RE,
    HEADER_SIZE,
    KIND_POINT,
    KIND_ROW,
    POINT_SIZE,
    RANK_RE,
    RANKS_DIR,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    SEGMENT_RE,
    block_bounds,
    block_crcs,
    decode_event,
    stable_frames,
    torn_tail,
)

__all__ = [
    "CHUNK",
    "MetricSeries",
    "RunFiles",
    "RunSummary",
    "SealedSegment",
    "SegmentTotals",
    "SideJournal",
    "SeriesSummary",
    "failed_slots",
    "read_run_files",
    "read_segment_header",
    "written",
    "read_snapshot",
    "segment_dtype",
    "read_series",
    "side_journals",
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
    try:
        data, found = stable_frames(path.read_bytes)
    except FileNotFoundError:
        return  # gone since the directory was listed
    except OSError as exc:
        corrupt.append(f"{path.name}: cannot be read: {exc}")
        return
    if not data.startswith(EVENTS_MAGIC):
        if all(payload is None for _, _, payload in found):
            if data.strip(b"\0"):  # all zeros: created, magic not written yet
                corrupt.append(f"{path.name}: not an events file")
            return
        corrupt.append(f"{path.name}: bytes 0-8, its magic, are damaged; its frames are read")
    stop = HEADER_SIZE  # where the log ends: an empty frame, or a torn or corrupt one
    for pos, after, payload in found:
        stop = after
        if payload is None:
            corrupt.append(f"{path.name}: bytes {pos}-{after} are damaged frames; skipped")
            continue
        try:
            yield decode_event(payload, event_from_dict)
        except CorruptRecordError as exc:
            corrupt.append(f"{path.name}@{pos}: {exc}")
    if torn_tail(data, stop):
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
    directory: Path | None = None
    # attempts whose events were read again (`learn`), so that a damaged or truly unnamed
    # key costs one re-read per attempt, not one per segment
    relearned: set[int] = attrs.field(factory=set)

    def learn(self, attempt: int) -> None:
        """Read `attempt`'s events again for the keys and row schemas defined since.

        The writer defines a key durably before its first point, but a reader of a live
        run reads the events first and the segments after: a key defined in between
        looks unnamed. Called once a segment's records are in memory, this read sees
        every definition they need, so only true damage stays unnamed."""
        if self.directory is None or attempt in self.relearned:
            return
        self.relearned.add(attempt)
        names = self.names.setdefault(attempt, {})
        # Damage in the events was reported by the first read; not again.
        for event in _read_events(self.directory / f"events-{attempt:03d}.log", []):
            if isinstance(event, KeyDefined):
                names.setdefault(event.id, event.name)
            elif isinstance(event, SchemaDefined):
                self.schemas.setdefault((attempt, event.stream), event.keys)
            elif isinstance(event, KeyTable):
                for kid, key in event.keys.items():
                    names.setdefault(kid, key)
                for stream, keys in event.schemas.items():
                    self.schemas.setdefault((attempt, stream), keys)


def _list(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError as exc:
        raise StoreError(f"cannot read run directory {directory}: {exc}") from exc


def _read_all_events(
    directory: Path, entries: list[str], corrupt: list[str]
) -> tuple[list[tuple[int, Event]], _Layout]:
    events: list[tuple[int, Event]] = []
    layout = _Layout(directory=directory)
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
            elif isinstance(event, KeyTable):  # the second copy: either one will do
                names.update(event.keys)
                for stream, keys in event.schemas.items():
                    layout.schemas[attempt, stream] = keys
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
    read = _read_named_segment(directory, name, layout, corrupt)
    if read is not None:
        yield from _record_chunks(name, *read, layout, corrupt, keys, with_times)


def _read_named_segment(
    directory: Path, name: str, layout: _Layout, corrupt: list[str]
) -> tuple[npt.NDArray[Any], float] | None:
    """`_read_segment` of the segment file `name`, None when it holds no valid record."""
    match = SEGMENT_RE.match(name)
    assert match is not None
    attempt, stream = int(match.group(1)), int(match.group(2))
    read = _read_segment(directory / name, attempt, stream, layout, corrupt)
    return None if read is None or not read[0].size else read


def _record_chunks(
    name: str,
    records: npt.NDArray[Any],
    base: float,
    layout: _Layout,
    corrupt: list[str],
    keys: frozenset[str] | None,
    with_times: bool,
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(key, (steps, values, times)) per key of one segment's valid records."""
    match = SEGMENT_RE.match(name)
    assert match is not None
    attempt, stream = int(match.group(1)), int(match.group(2))
    names = layout.names.get(attempt, {})
    if stream == 0:  # _read_segment kept the points of named keys only
        present = np.flatnonzero(np.bincount(records["key"]))
        for key_id in present.tolist():
            key = names[key_id]
            if keys is not None and key not in keys:
                continue
            subset = records if present.size == 1 else records[records["key"] == key_id]
            yield key, _columns(subset, 0, base, with_times)
    else:
        for column, kid in enumerate(layout.schemas[attempt, stream]):
            named = names.get(kid)
            if named is None:
                corrupt.append(
                    f"{name}: column {column} holds key id {kid}, which no event names: "
                    f"{records.size} points skipped"
                )
            elif keys is None or named in keys:
                yield named, _columns(records, column, base, with_times)


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
    for side in side_journals(directory, entries, corrupt):
        said: list[str] = []
        _, side_layout = _read_all_events(side.directory, side.entries, said)
        for key, chunk in _point_chunks(
            side.directory, side.entries, side_layout, said, keys, with_times
        ):
            parts.setdefault(key, []).append(chunk)
        corrupt.extend(side.prefix + message for message in said)
    series = {key: _merge(chunks, with_times) for key, chunks in parts.items()}
    return RunFiles(events=events, series=series, corrupt=corrupt)


@attrs.frozen
class SideJournal:
    """The side journal of one other rank of a distributed run, as listed for a read."""

    rank: int
    directory: Path
    entries: list[str]
    prefix: str  # its path in the run's directory, ending in "/": names its files


def side_journals(directory: Path, entries: Sequence[str], corrupt: list[str]) -> list[SideJournal]:
    """The side journals (`ranks/<rank>/`) of the run in `directory`, by rank, listed.

    None where the directory holds no events log of its own (no run yet, see the module's
    docstring). One that cannot be listed is reported in `corrupt` and left out; one that
    is gone since is left out quietly.
    """
    if RANKS_DIR not in entries or not any(EVENTS_RE.match(name) for name in entries):
        return []
    ranks = directory / RANKS_DIR
    try:
        names = os.listdir(ranks)
    except FileNotFoundError:
        return []
    except OSError as exc:
        corrupt.append(f"{RANKS_DIR}: cannot be read: {exc.strerror or exc}")
        return []
    found = []
    for name in sorted(names, key=lambda name: (len(name), name)):
        if RANK_RE.match(name) is None:
            continue  # not a rank's: another tool's file, or a temporary one
        path = ranks / name
        try:
            listed = sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            corrupt.append(f"{RANKS_DIR}/{name}: cannot be read: {exc.strerror or exc}")
            continue
        found.append(SideJournal(int(name), path, listed, f"{RANKS_DIR}/{name}/"))
    return found


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


@attrs.frozen
class SealedSegment:
    """What summarizing a sealed segment found: its totals per key, the unix times of its
    first and last points (None: it holds none), and what of it was damaged. A sealed
    segment never changes, so this stands for it in every later summary, its losses too:
    a reader that skips the file still says what it lacks."""

    totals: SegmentTotals
    times: tuple[float, float] | None = None
    corrupt: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        # json writes inf and NaN as Infinity and NaN, and reads them back.
        return {"totals": self.totals, "times": self.times, "corrupt": list(self.corrupt)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SealedSegment:
        """Raises KeyError, TypeError or ValueError for what `to_json` did not write."""
        times = data["times"]
        return cls(
            totals=dict(data["totals"]),
            times=None if times is None else (float(times[0]), float(times[1])),
            corrupt=tuple(str(message) for message in data["corrupt"]),
        )


@attrs.define
class RunSummary:
    """A run directory's events and metric summaries.

    `sealed` holds what the sealed segments read this time hold: a sealed segment never
    changes, so a caller may keep it and pass it back instead of re-reading the file.
    `first_point_at` and `last_point_at` are the unix times of the earliest and latest
    point of any segment (None without points): when the run logged.
    """

    events: list[tuple[int, Event]]
    metrics: dict[str, SeriesSummary]
    corrupt: list[str]
    sealed: dict[str, SealedSegment] = attrs.field(factory=dict)
    first_point_at: float | None = None
    last_point_at: float | None = None


CHUNK: Final = 4096


def summarize_run_files(
    directory: Path, *, sealed: Mapping[str, SealedSegment] | None = None
) -> RunSummary:
    """Events and metric summaries of a run directory, reading one segment at a time.

    `last` is the value at the highest step (the latest logged among equals); min and
    max ignore NaN (NaN when every value is NaN). Segments sealed by a checksum that are
    in `sealed` are not read again (their losses are reported from it): a live run costs
    its open segments only.
    """
    corrupt: list[str] = []
    entries = _list(directory)
    events, layout = _read_all_events(directory, entries, corrupt)
    totals: dict[str, _Totals] = {}
    fresh: dict[str, SealedSegment] = {}
    spans: list[tuple[float, float]] = []
    _summarize_segments(directory, entries, layout, "", sealed, corrupt, totals, fresh, spans)
    for side in side_journals(directory, entries, corrupt):
        said: list[str] = []
        _, side_layout = _read_all_events(side.directory, side.entries, said)
        corrupt.extend(side.prefix + message for message in said)
        _summarize_segments(
            side.directory, side.entries, side_layout, side.prefix, sealed, corrupt, totals,
            fresh, spans,
        )  # fmt: skip
    metrics = {key: t.result() for key, t in totals.items() if t.count}
    return RunSummary(
        events=events,
        metrics=metrics,
        corrupt=corrupt,
        sealed=fresh,
        first_point_at=min((lo for lo, _ in spans), default=None),
        last_point_at=max((hi for _, hi in spans), default=None),
    )


def _summarize_segments(
    directory: Path,
    entries: list[str],
    layout: _Layout,
    prefix: str,
    sealed: Mapping[str, SealedSegment] | None,
    corrupt: list[str],
    totals: dict[str, _Totals],
    fresh: dict[str, SealedSegment],
    spans: list[tuple[float, float]],
) -> None:
    """Add the segments of one journal (the run's, or a side journal's at `prefix`) to
    `totals`, `fresh` and `spans`; sealed segments are named by their path in the run's
    directory (`ranks/1/points-...`), so that two journals' files never share a name."""
    for name in entries:
        if not SEGMENT_RE.match(name):
            continue
        path = prefix + name
        known = sealed.get(path) if sealed is not None and name in layout.checks else None
        if known is None:
            said: list[str] = []
            known = _summarize_segment(directory, name, layout, said)
            said = [prefix + message for message in said]
            corrupt.extend(said)
            if name in layout.checks:
                fresh[path] = attrs.evolve(known, corrupt=tuple(said))
        else:
            corrupt.extend(known.corrupt)
        if known.times is not None:
            spans.append(known.times)
        for key, data in known.totals.items():
            totals.setdefault(key, _Totals()).merge(_Totals.from_json(data))


def _summarize_segment(
    directory: Path, name: str, layout: _Layout, corrupt: list[str]
) -> SealedSegment:
    """One segment's totals per key and the span of its points' times (its losses go to
    `corrupt`)."""
    read = _read_named_segment(directory, name, layout, corrupt)
    if read is None:
        return SealedSegment(totals={})
    records, base = read
    parts: dict[str, _Totals] = {}
    for key, (steps, values, _) in _record_chunks(
        name, records, base, layout, corrupt, None, False
    ):
        parts.setdefault(key, _Totals()).add(steps, values)
    seconds = records["t"]
    times = (base + float(seconds.min()), base + float(seconds.max()))
    return SealedSegment(totals={key: part.to_json() for key, part in parts.items()}, times=times)


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
        # low > high only while no value but NaN was seen: a series of NaN and inf has
        # its min and max (inf itself), which a test of low against inf would lose.
        seen = self.low <= self.high
        return SeriesSummary(
            summary=MetricSummary(
                last=self.last,
                min=self.low if seen else math.nan,
                max=self.high if seen else math.nan,
                count=self.count,
                last_step=self.last_step,
            ),
            chunks=self.chunks,
        )


def _read_segment(
    path: Path, attempt: int, stream: int, layout: _Layout, corrupt: list[str]
) -> tuple[npt.NDArray[Any], float] | None:
    """The valid records of one segment file, and the wall-clock time its times count from.

    Valid: written (not empty), outside any block that fails its checksum, with the kind of
    its stream and, in stream 0, a key id that an event names. The rest is reported.
    """
    name = path.name
    checks = layout.checks.get(name, ())
    expected = expected_record_size(stream, layout.schemas.get((attempt, stream)))
    try:
        with path.open("rb") as file:
            header = file.read(HEADER_SIZE)
            if not written(file, header, expected, checks):
                return None
            read = read_segment_header(
                name,
                header,
                attempt=attempt,
                stream=stream,
                record_size=expected,
                checks=checks,
                corrupt=corrupt,
            )
            if read is None:
                return None
            record_size, base = read
            records = np.fromfile(file, dtype=segment_dtype(record_size))
    except FileNotFoundError:
        return None  # gone since the directory was listed (a spare segment, say)
    except OSError as exc:
        corrupt.append(f"{name}: cannot be read: {exc}")
        return None
    kinds = records["kind"]
    good = kinds == (KIND_POINT if stream == 0 else KIND_ROW)
    with records.view(np.uint8).data as raw:
        failed = failed_slots(
            name,
            checks,
            record_size,
            HEADER_SIZE + len(raw),
            lambda lo, hi: raw[lo - HEADER_SIZE : hi - HEADER_SIZE],
        )
    corrupt.extend(message for _, _, message in failed)
    checked = np.zeros(records.size, dtype=bool)
    for first, end, _ in failed:
        good[first:end] = False
        checked[first:end] = True
    if not good.all():
        # Outside failing blocks, a kind that is neither empty nor this stream's is damage
        # that no checksum covers (an unsealed segment).
        damaged = ~good & ~checked & (kinds != 0)
        if damaged.any():
            corrupt.append(
                f"{name}: {int(damaged.sum())} records with a damaged kind field skipped "
                f"(first at byte {HEADER_SIZE + int(np.argmax(damaged)) * record_size})"
            )
        records = records[good]
    if stream == 0:
        if records.size and int(records["key"].max()) not in layout.names.get(attempt, {}):
            layout.learn(attempt)  # the highest id is the newest key: defined just now?
        records = _named_points(name, records, layout.names.get(attempt, {}), corrupt)
    elif records.size:
        kids = layout.schemas.get((attempt, stream))
        if kids is None or not all(kid in layout.names.get(attempt, {}) for kid in kids):
            layout.learn(attempt)
            kids = layout.schemas.get((attempt, stream))
        stray = records["key"] != stream
        if kids is None or stray.any():
            count = records.size if kids is None else int(stray.sum())
            why = f"no event defines stream {stream}" if kids is None else "damaged stream field"
            corrupt.append(f"{name}: {count} rows skipped: {why}")
            records = records[~stray] if kids is not None else records[:0]
    return records, base


def _named_points(
    name: str, records: npt.NDArray[Any], names: Mapping[int, str], corrupt: list[str]
) -> npt.NDArray[Any]:
    """The points whose key id an event names; the others are reported and dropped."""
    if not records.size:
        return records
    present = np.flatnonzero(np.bincount(records["key"])).tolist()
    unknown = [kid for kid in present if kid not in names]
    if not unknown:
        return records
    stray = np.isin(records["key"], np.array(unknown, dtype=np.uint16))
    shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
    corrupt.append(
        f"{name}: {int(stray.sum())} points of key ids {shown}, which no event names, skipped"
    )
    return records[~stray]


def expected_record_size(stream: int, schema: Sequence[int] | None) -> int | None:
    """The record size the events give a stream (None: a row stream with no schema)."""
    if stream == 0:
        return POINT_SIZE
    return None if schema is None else 16 + 8 * len(schema)


def written(
    file: BinaryIO, header: bytes, record_size: int | None, checks: Sequence[Checksum]
) -> bool:
    """Whether a segment holds anything to read. One whose header is all zeros is being
    created (its header comes right after its file), unless records follow it: then the
    header was damaged. Leaves `file` just after the header."""
    if len(header) < HEADER_SIZE:
        return False
    if header != bytes(HEADER_SIZE) or checks:
        return True
    if record_size is None:
        return False
    kinds = np.fromfile(file, dtype=segment_dtype(record_size))["kind"]
    file.seek(HEADER_SIZE)
    return bool(kinds.any())


def read_segment_header(
    name: str,
    header: bytes,
    *,
    attempt: int,
    stream: int,
    record_size: int | None,
    checks: Sequence[Checksum],
    corrupt: list[str],
) -> tuple[int, float] | None:
    """A segment's record size and the unix time its times count from, from its header
    checked against its name, its stream's `record_size` and the header CRC its checksums
    hold. A damaged header is reported and read with what the rest says; None when there
    is nothing to read (a header not written yet) or no record size to read with."""
    if len(header) < HEADER_SIZE:
        return None
    magic, hstream, hsize, capacity, hattempt, base_ns = SEGMENT_HEADER.unpack_from(header)
    crc = next((check.header for check in checks if check.header is not None), None)
    if crc is not None and zlib.crc32(header) == crc:
        return hsize, base_ns / 1e9
    problems = [
        what
        for what, bad in (
            ("magic", magic != SEGMENT_MAGIC),
            ("stream", hstream != stream),
            ("record size", record_size is not None and hsize != record_size),
            ("attempt", hattempt != attempt),
        )
        if bad
    ]
    size = hsize if record_size is None else record_size
    if size < 16 or size % 8 or (record_size is None and problems):
        corrupt.append(f"{name}: bad segment header; its records cannot be read")
        return None
    if base_ns <= 0:
        problems.append("start time: its points' times may be off")
    elif crc is not None:
        # Rebuilt from what its name and schema say: if that matches its CRC, only those
        # fields were damaged. Else the capacity or the start time was.
        rebuilt = bytearray(HEADER_SIZE)
        SEGMENT_HEADER.pack_into(
            rebuilt, 0, SEGMENT_MAGIC, stream, size, capacity, attempt, base_ns
        )
        if zlib.crc32(rebuilt) != crc:
            problems.append("capacity or start time: its points' times may be off")
    if problems:
        corrupt.append(
            f"{name}: bytes 0-{HEADER_SIZE}, its header, are damaged ({'; '.join(problems)}); "
            "read with the layout its name and the events give"
        )
    return size, base_ns / 1e9


def failed_slots(
    name: str,
    checks: Iterable[Checksum],
    record_size: int,
    size: int,
    read: Callable[[int, int], bytes | memoryview],
) -> list[tuple[int, int, str]]:
    """The slots [first, end) of a segment of `size` bytes that its checksums reject, each
    with the message that reports it: the blocks whose CRC fails (the whole range, for a
    checksum without blocks) and the bytes missing from a file cut short.

    `read(lo, hi)` gives bytes [lo, hi) of the file, for `HEADER_SIZE <= lo <= hi <= size`.
    """
    failed: list[tuple[int, int, str]] = []
    for check in checks:
        start, end = check.start, check.end
        if (
            start < HEADER_SIZE
            or end < start
            or (start - HEADER_SIZE) % record_size
            or (end - HEADER_SIZE) % record_size
        ):
            failed.append((0, 0, f"{name}: a checksum of bytes {start}-{end} does not fit it"))
            continue
        present = max(start, min(end, size))
        data = read(start, present)
        if present == end and zlib.crc32(data) == check.crc:
            continue
        crcs = block_crcs(check)
        if crcs is None:
            spans = [(start, end)]
        else:
            spans = []
            for (lo, hi), crc in zip(block_bounds(start, end, check.block), crcs, strict=True):
                if hi <= present and zlib.crc32(data[lo - start : hi - start]) == crc:
                    continue
                if spans and spans[-1][1] == lo:
                    spans[-1] = (spans[-1][0], hi)
                else:
                    spans.append((lo, hi))
        for lo, hi in spans:
            first = (lo - HEADER_SIZE) // record_size
            stop = -(-(hi - HEADER_SIZE) // record_size)
            cut = f" (the file ends at byte {present})" if hi > present else ""
            failed.append(
                (
                    first,
                    stop,
                    f"{name}: bytes {lo}-{hi} fail their checksum{cut}: "
                    f"records {first}-{stop} dropped",
                )
            )
    return failed


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
