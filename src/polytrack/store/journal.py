"""The journal of one run: its on-disk format and the files that hold it.

A run directory holds, per attempt (the first start and each resume):

- `events-AAA.log`: framed records `[u32 length][u32 crc32][JSON payload]`, padded to 8 bytes:
  the run's start, params, tags, status changes, metric key ids and row schemas.
- `points-AAA-SSS-NNNNN.seg`: segments of one *stream* of fixed-size metric records after a
  64-byte header. Stream 0 holds single points
  `[i64 step][f64 value][f32 seconds][u16 key id][u16 kind]` (24 bytes); stream S > 0 holds
  rows of one key set, `[i64 step][f64 value] * n [f32 seconds][u16 S][u16 kind]`. Times
  count from the segment's start (in its header); the writer starts a new segment after
  `SEGMENT_MAX_AGE`, which keeps a float32 time within 8 ms.

and, in a distributed run, `ranks/<rank>/` for each other rank: a side journal of the same
files, metrics only, written by that rank's process (`RANKS_DIR`).

Both are written through shared memory maps. A store into a `MAP_SHARED` page is in the page
cache the moment it happens, so a `kill -9` right after a log call returned loses nothing, and
no log call makes a system call. A record's `kind` field, at its end, is stored last (by
`struct.pack_into`, which fills fields in order, or by the C appender with release order): a
record torn by the death of its process reads as empty and is skipped. The writer fsyncs
both every `fsync_interval`, so a power loss costs at most that interval; once a segment is
full (or the run finishes) its bytes get a CRC32, recorded as an event, so a page torn by a
power loss is detected and dropped, never returned.

What a damaged byte costs (a bad disk sector, a bit flip, a torn page) is kept small, and
readers report every loss:

- The `Checksum` of a segment also holds one CRC32 per `BLOCK` (4 KiB, a page: what a power
  loss tears) of its range, cut at file offsets that are multiples of `BLOCK`: a damaged
  byte drops the records that overlap its block (at most 172 single points, or 44 rows of
  10 keys), not the range. The CRC of the segment's header is in it too. Files written
  before there were blocks have the whole-range CRC alone: a damaged byte there still
  costs the range.
- A damaged frame of an events log costs that frame: readers scan on (8-byte aligned) for
  the next frame whose length fits and whose CRC matches, and go on from there. An empty
  frame header (8 zero bytes) with no valid frame after it is the end of the log: a frame
  being written (its header goes last) or torn by a crash. A reader of a log that is being
  written reads it again before it calls a gap damage: a frame whose header was not yet
  there when a later one was is filled in by then.
- A finished attempt writes its key ids and row schemas again, as one `KeyTable` record at
  the end of its log: a damaged `KeyDefined` or `SchemaDefined` frame costs no points.

Segments are allocated with `posix_fallocate` before they are mapped: a full disk is then an
error at allocation time, never a SIGBUS on a store from the training loop.

`polytrack.store.writer` writes these files; `polytrack.store.reader` reads them.
"""

from __future__ import annotations

import base64
import binascii
import errno
import itertools
import json
import mmap
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs

from polytrack._text import escape_surrogates
from polytrack.errors import CorruptRecordError, StoreError
from polytrack.models import EVENT_TYPE_NAMES, Checksum, Event

__all__ = [
    "BLOCK",
    "CHANGES_ATTEMPT",
    "CHANGES_FILE",
    "EVENTS_RE",
    "HEADER_SIZE",
    "KIND_POINT",
    "KIND_ROW",
    "RANKS_DIR",
    "RANK_RE",
    "SEGMENT_RE",
    "block_bounds",
    "block_crcs",
    "checksum_of",
    "decode_event",
    "event_to_dict",
    "frames",
    "stable_frames",
    "torn_tail",
]

SEGMENT_MAGIC: Final = b"PTSEG\x00\x00\x01"
EVENTS_MAGIC: Final = b"PTEVT\x00\x00\x01"
HEADER_SIZE: Final = 64
# magic, stream, record size, capacity, attempt, wall-clock ns at t=0
SEGMENT_HEADER: Final = struct.Struct("<8sIIIIq")
FRAME: Final = struct.Struct("<II")
POINT_RECORD: Final = struct.Struct("<qdfHH")
POINT_SIZE: Final = 24

# Bytes per checksummed block of a segment: a page, the unit a power loss tears.
BLOCK: Final = 4096

KIND_POINT: Final = 0x5450  # "PT"
KIND_ROW: Final = 0x5752  # "RW"

MAX_KEYS: Final = 0xFFFF
SEGMENT_MAX_AGE: Final = 86_400.0

EVENTS_RE: Final = re.compile(r"events-(\d{3})\.log$")
# The events log of changes made to the run afterwards (`polytrack.store.changes`): named
# as an attempt's log, so every reader and the sync tail read it with the rest, and
# numbered past any real attempt, so it sorts (and is applied) last. No process records
# into it; it is never an attempt (`init(resume=)` numbers attempts around it).
CHANGES_ATTEMPT: Final = 999
CHANGES_FILE: Final = f"events-{CHANGES_ATTEMPT:03d}.log"
SEGMENT_RE: Final = re.compile(r"points-(\d{3})-(\d{3})-(\d{5})\.seg$")
# The side journals of a distributed run's other ranks: `ranks/<rank>/` in the run's
# directory, each a journal of this same format (events logs and segments, with their
# own attempts), written by that rank's process alone. They hold metrics only (their
# keys labelled with the rank by the writer), never the run's own records; readers merge
# their points into the run's (`polytrack.store.reader`, docs/distributed.md).
RANKS_DIR: Final = "ranks"
RANK_RE: Final = re.compile(r"[1-9]\d{0,6}$")


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict tagged with its type.

    `attrs.asdict` rather than the cattrs converter: the records are flat, and this keeps
    cattrs' import off `init()`. Reading them back goes through the converter.
    """
    data = attrs.asdict(event)
    data["type"] = EVENT_TYPE_NAMES[type(event)]
    return data


def _escape_strings(data: Any) -> Any:
    """`data` with lone surrogates escaped in every string (`polytrack._text`): the API
    refuses or escapes them, and this net keeps any that slip through (an exception's
    message, a file name) from reaching a reader that cannot decode them."""
    if isinstance(data, str):
        return escape_surrogates(data)
    if isinstance(data, list):
        return [_escape_strings(item) for item in data]
    if isinstance(data, dict):
        return {
            escape_surrogates(key) if isinstance(key, str) else key: _escape_strings(item)
            for key, item in data.items()
        }
    return data


# Where a frame may start again after damage: its JSON payload (always an object).
_PAYLOAD_START: Final = b'{"'
_EMPTY_HEADER: Final = bytes(FRAME.size)


def frames(
    data: bytes | mmap.mmap, start: int = HEADER_SIZE, *, resync: bool = False
) -> Iterator[tuple[int, int, bytes | None]]:
    """(offset, offset after it, payload) of each whole frame of an events log, from
    offset `start` of `data`.

    The log ends at a frame that is empty, cut short or fails its CRC (being written by a
    live process, or torn by a crash). With `resync`, such a frame ends it only when no
    valid frame follows: else the bytes up to the next valid frame come as one
    (offset, offset after them, None), and the frames after them follow.
    """
    pos, size = start, len(data)
    while pos + FRAME.size <= size:
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if length and end <= size:
            payload = data[pos + FRAME.size : end]
            if zlib.crc32(payload) == crc:
                after = end + (-length % 8)
                yield pos, after, payload
                pos = after
                continue
        found = _next_frame(data, pos, start) if resync else None
        if found is None:
            return
        yield pos, found, None
        pos = found


def _next_frame(data: bytes | mmap.mmap, bad: int, start: int) -> int | None:
    """The offset of the first valid frame after the bad one at `bad`, if any.

    A candidate is an 8-aligned offset whose payload opens a JSON object: that search runs
    in C (`find`), so scanning past the zeros after a log's end costs next to nothing.
    """
    size = len(data)
    found = data.find(_PAYLOAD_START, bad + FRAME.size + 1)
    while found != -1:
        pos = found - FRAME.size
        if (pos - start) % 8 == 0:
            length, crc = FRAME.unpack_from(data, pos)
            if 0 < length <= size - found and zlib.crc32(data[found : found + length]) == crc:
                return pos
        found = data.find(_PAYLOAD_START, found + 1)
    return None


def stable_frames(
    read: Callable[[], bytes], start: int = HEADER_SIZE, *, tries: int = 3
) -> tuple[bytes, list[tuple[int, int, bytes | None]]]:
    """`frames(read(), start, resync=True)`, read again while its damaged ranges change.

    A log being written can show a frame whose header is not there yet (still zero)
    beside a later frame whose header is: the second reading has it. Damage stays put.
    """
    data = read()
    found = list(frames(data, start, resync=True))
    for _ in range(tries - 1):
        gaps = [(pos, after) for pos, after, payload in found if payload is None]
        if not gaps:
            break
        again = read()
        refound = list(frames(again, start, resync=True))
        if [(pos, after) for pos, after, payload in refound if payload is None] == gaps:
            break
        data, found = again, refound
    return data, found


def torn_tail(data: bytes | mmap.mmap, stop: int) -> bool:
    """Whether the log that `frames` ended at `stop` holds a damaged frame there rather than
    its end: a frame header that is not all zeros, or an empty header over a payload that
    runs to the end of a closed (trimmed) file, where a frame torn by a crash never
    reaches."""
    header = data[stop : stop + FRAME.size]
    if len(header) < FRAME.size:
        return bool(header.strip(b"\0"))
    if header != _EMPTY_HEADER:
        return True
    if data[stop + FRAME.size : stop + FRAME.size + 2] != _PAYLOAD_START:
        return False
    return bool(data[-8:].strip(b"\0"))  # less than a frame's padding of zeros at the end


def decode_event(payload: bytes, structure: Callable[[dict[str, Any]], Event]) -> Event:
    """The event in a frame's payload, structured by `structure` (`_convert.event_from_dict`:
    cattrs, which `init()` does not load).

    Raises:
        CorruptRecordError: the payload is not JSON, not a tagged record, or a record that
            the models refuse.
    """
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise CorruptRecordError(f"undecodable record: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise CorruptRecordError(f"not a journal record: {payload[:80]!r}")
    if b"\\ud" in payload:  # lone surrogates, which earlier versions wrote: no reader
        data = _escape_strings(data)  # downstream (SQLite, a terminal) could hold them
    return structure(data)


def block_bounds(start: int, end: int, block: int) -> Iterator[tuple[int, int]]:
    """The blocks of bytes [start, end) of a file: cut at the multiples of `block`."""
    lo = start
    while lo < end:
        hi = min(end, (lo // block + 1) * block)
        yield lo, hi
        lo = hi


def checksum_of(
    file: str, data: bytes | memoryview, *, start: int = HEADER_SIZE, header: int | None = None
) -> Checksum:
    """The `Checksum` of `data`, the bytes at [start, start + len(data)) of segment `file`:
    its CRC32 and that of each `BLOCK`; `header` is the CRC32 of the segment's header."""
    end = start + len(data)
    crcs = [zlib.crc32(data[lo - start : hi - start]) for lo, hi in block_bounds(start, end, BLOCK)]
    packed = struct.pack(f"<{len(crcs)}I", *crcs)
    return Checksum(
        file=file,
        start=start,
        end=end,
        crc=zlib.crc32(data),
        block=BLOCK,
        blocks=base64.b64encode(packed).decode("ascii"),
        header=header,
    )


def block_crcs(check: Checksum) -> tuple[int, ...] | None:
    """The CRC32 of each block of a `Checksum`'s range; None where it has none (written
    before blocks existed) or holds a list that does not fit its range."""
    if check.block <= 0 or not check.blocks or check.end <= check.start:
        return None
    count = (check.end - 1) // check.block - check.start // check.block + 1
    if len(check.blocks) != 4 * -(-4 * count // 3):  # base64's length, before decoding
        return None
    try:
        packed = base64.b64decode(check.blocks, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(packed) != 4 * count:
        return None
    return struct.unpack(f"<{count}I", packed)


def allocate(fd: int, size: int) -> None:
    """Reserve `size` bytes of disk so stores into the map can never SIGBUS."""
    try:
        fallocate = os.posix_fallocate  # not on macOS
    except AttributeError:
        fallocate = None
    try:
        if fallocate is None:
            raise OSError(errno.ENOSYS, "posix_fallocate is not available")
        fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        # Filesystems without fallocate: writing zeros reserves the blocks just the same.
        current = os.fstat(fd).st_size
        zeros = bytes(min(size - current, 1 << 20)) if size > current else b""
        while current < size:
            current += os.pwrite(fd, zeros[: size - current], current)


def peek(counter: Iterator[int]) -> int:
    """The next value an `itertools.count` would hand out, without consuming it."""
    return int(repr(counter)[6:-1])  # "count(N)"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@attrs.define(eq=False)
class Segment:
    """One mapped segment file of a stream."""

    path: Path
    fd: int
    mm: mmap.mmap
    record_size: int
    capacity: int
    base_mono: float
    # Bytes [HEADER_SIZE, checked) are covered by Checksum events.
    checked: int = HEADER_SIZE
    # Bytes [HEADER_SIZE, committed) hold every record written (and maybe empty slots).
    committed: int = HEADER_SIZE
    counter: Iterator[int] | None = None
    # Slots used, once known for good (the C appender reports it when it lets go).
    handed_out: int | None = None

    @classmethod
    def create(
        cls, path: Path, *, stream: int, record_size: int, size: int, attempt: int
    ) -> Segment:
        capacity = (size - HEADER_SIZE) // record_size
        size = HEADER_SIZE + capacity * record_size
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            allocate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        base_wall_ns, base_mono = time.time_ns(), time.monotonic()
        SEGMENT_HEADER.pack_into(
            mm, 0, SEGMENT_MAGIC, stream, record_size, capacity, attempt, base_wall_ns
        )
        return cls(path, fd, mm, record_size, capacity, base_mono)

    def cell(self) -> tuple[Iterator[int], mmap.mmap, int, float]:
        """What the hot path needs, swapped in as one tuple so threads never mix segments."""
        self.counter = itertools.count()
        return (self.counter, self.mm, self.capacity, self.base_mono)

    def used(self) -> int:
        """Slots handed out so far."""
        if self.handed_out is not None:
            return self.handed_out
        return peek(self.counter) if self.counter is not None else 0

    def scan_committed(self) -> None:
        """Advance `committed` to the slots handed out so far.

        Called for a segment no thread writes any more (retired or closing), so every
        handed-out slot holds a record or stays empty for good; readers skip empty ones.
        """
        handed_out = min(self.used(), self.capacity)
        self.committed = max(self.committed, HEADER_SIZE + handed_out * self.record_size)

    def checksum(self) -> Checksum | None:
        """A Checksum event for the bytes written since the last one, if any."""
        if self.committed <= self.checked:
            return None
        header = zlib.crc32(self.mm[:HEADER_SIZE])
        # Through a view, not a slice: no copy of up to a segment. The whole-range CRC drops
        # the GIL; the 4 KiB blocks' CRCs hold it (zlib drops it above 5 KiB only), about
        # 4 ms per 8 MiB segment on the flusher thread, measured as no loss to a log loop.
        with memoryview(self.mm) as whole, whole[self.checked : self.committed] as written:
            event = checksum_of(self.path.name, written, start=self.checked, header=header)
        self.checked = self.committed
        return event

    def close(self, *, truncate: bool) -> None:
        """Unmap, trim to the records written (with `truncate`), fsync and close."""
        try:
            self.mm.close()
            if truncate:
                os.ftruncate(self.fd, self.committed)
            os.fsync(self.fd)
        finally:
            os.close(self.fd)


@attrs.define(eq=False)
class Stream:
    """A sequence of segments of one record layout."""

    number: int
    record_size: int
    cell: list[tuple[Iterator[int], mmap.mmap, int, float]]
    segments: list[Segment]
    next_size: int
    # The next segments, mapped ahead of need (in order); unlinked when the run closes.
    spares: list[Segment] = attrs.Factory(list)


class Events:
    """The framed, mapped events file of one attempt; writes are serialized by a lock."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap) -> None:
        self._path, self._fd, self._mm = path, fd, mm
        self._pos = HEADER_SIZE
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def create(cls, path: Path, size: int = 64 * 1024) -> Events:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            allocate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        mm[: len(EVENTS_MAGIC)] = EVENTS_MAGIC
        return cls(path, fd, mm)

    @classmethod
    def open_existing(
        cls, path: Path, *, complete: Callable[[Event], bool] | None = None
    ) -> tuple[Events, list[Event]]:
        """Map an events file written before, to append to it; with the events it keeps.

        The log ends where `frames` ends it with `resync`: damaged frames (and records
        that do not decode) in between are skipped, not taken for the end, so nothing valid
        after them is cut. With `complete`, it is also cut back to just after the last
        event for which `complete` is true: what follows belongs to a group of events whose
        writer died before finishing it. Everything past the end is zeroed, the first frame
        header first, so a reader sees a valid log at every moment. A damaged magic is
        written again when valid frames follow it. For appenders that own the file (one
        process at a time), like `HomeBackend`.

        Raises:
            StoreError: the file is not an events log, or cannot be mapped.
        """
        from polytrack._convert import event_from_dict  # cattrs: not on init()'s path

        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
        try:
            size = os.fstat(fd).st_size
            if size < 64 * 1024:
                allocate(fd, 64 * 1024)  # also gives a file cut to its frames room to grow
                size = 64 * 1024
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot map {path}: {exc}") from exc
        found = list(frames(mm, resync=True))
        magic = bytes(mm[: len(EVENTS_MAGIC)])
        if magic != EVENTS_MAGIC:
            if magic.strip(b"\x00") and all(payload is None for _, _, payload in found):
                mm.close()
                os.close(fd)
                raise StoreError(f"{path} is not an events file")
            # A create() that died before its magic, or a damaged one over valid frames.
            mm[: len(EVENTS_MAGIC)] = EVENTS_MAGIC
        kept: list[Event] = []
        pending: list[Event] = []
        cut = HEADER_SIZE
        for _, after, payload in found:
            if payload is None:
                continue  # damaged frames: the ones after them are kept
            try:
                event = decode_event(payload, event_from_dict)
            except CorruptRecordError:
                continue  # a record this version cannot read: skipped, like readers do
            pending.append(event)
            if complete is None or complete(event):
                kept.extend(pending)
                pending.clear()
                cut = after
        if bytes(mm[cut:size]).strip(b"\x00"):
            header_end = min(cut + FRAME.size, size)
            mm[cut:header_end] = bytes(header_end - cut)  # readers now stop here
            mm[header_end:size] = bytes(size - header_end)
        events = cls(path, fd, mm)
        events._pos = cut
        os.fsync(fd)
        return events, kept

    def append(self, event: Event) -> None:
        data = event_to_dict(event)
        payload = json.dumps(data, separators=(",", ":")).encode()
        if b"\\ud" in payload:  # an emoji's surrogate pair, or a lone surrogate to escape
            payload = json.dumps(_escape_strings(data), separators=(",", ":")).encode()
        length = len(payload)
        frame = FRAME.size + length + (-length % 8)
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._path} is closed")
            if self._pos + frame > len(self._mm):
                self._grow(self._pos + frame)
            start = self._pos + FRAME.size
            self._mm[start : start + length] = payload
            # The frame header last: until it is there, readers see the end of the log.
            FRAME.pack_into(self._mm, self._pos, length, zlib.crc32(payload))
            self._pos += frame

    def _grow(self, needed: int) -> None:
        size = len(self._mm)
        while size < needed:
            size *= 2
        allocate(self._fd, size)
        self._mm.resize(size)

    def flush(self) -> None:
        if not self._closed:
            os.fsync(self._fd)  # releases the GIL, unlike mmap.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._mm.close()
            try:
                os.ftruncate(self._fd, self._pos)
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
