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

Both are written through shared memory maps. A store into a `MAP_SHARED` page is in the page
cache the moment it happens, so a `kill -9` right after a log call returned loses nothing, and
no log call makes a system call. A record's `kind` field, at its end, is stored last (by
`struct.pack_into`, which fills fields in order, or by the C appender with release order): a
record torn by the death of its process reads as empty and is skipped. The writer fsyncs
both every `fsync_interval`, so a power loss costs at most that interval; once a segment is
full (or the run finishes) its bytes get a CRC32, recorded as an event, so a page torn by a
power loss is detected and dropped, never returned.

Segments are allocated with `posix_fallocate` before they are mapped: a full disk is then an
error at allocation time, never a SIGBUS on a store from the training loop.

`polytrack.store.writer` writes these files; `polytrack.store.reader` reads them.
"""

from __future__ import annotations

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

from polytrack.errors import StoreError
from polytrack.models import EVENT_TYPE_NAMES, Checksum, Event

__all__ = [
    "EVENTS_RE",
    "HEADER_SIZE",
    "KIND_POINT",
    "KIND_ROW",
    "SEGMENT_RE",
    "event_to_dict",
    "frames",
]

SEGMENT_MAGIC: Final = b"PTSEG\x00\x00\x01"
EVENTS_MAGIC: Final = b"PTEVT\x00\x00\x01"
HEADER_SIZE: Final = 64
# magic, stream, record size, capacity, attempt, wall-clock ns at t=0
SEGMENT_HEADER: Final = struct.Struct("<8sIIIIq")
FRAME: Final = struct.Struct("<II")
POINT_RECORD: Final = struct.Struct("<qdfHH")
POINT_SIZE: Final = 24

KIND_POINT: Final = 0x5450  # "PT"
KIND_ROW: Final = 0x5752  # "RW"

MAX_KEYS: Final = 0xFFFF
SEGMENT_MAX_AGE: Final = 86_400.0

EVENTS_RE: Final = re.compile(r"events-(\d{3})\.log$")
SEGMENT_RE: Final = re.compile(r"points-(\d{3})-(\d{3})-(\d{5})\.seg$")


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict tagged with its type.

    `attrs.asdict` rather than the cattrs converter: the records are flat, and this keeps
    cattrs' import off `init()`. Reading them back goes through the converter.
    """
    data = attrs.asdict(event)
    data["type"] = EVENT_TYPE_NAMES[type(event)]
    return data


def frames(
    data: bytes | mmap.mmap, start: int = HEADER_SIZE
) -> Iterator[tuple[int, int, bytes]]:
    """(offset, offset after it, payload) of each whole frame of an events log, from
    offset `start` of `data`. The log ends at its first empty frame, or at one that is cut
    short or fails its CRC: being written by a live process, or torn by a crash."""
    pos, size = start, len(data)
    while pos + FRAME.size <= size:
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if length == 0 or end > size:
            return
        payload = data[pos + FRAME.size : end]
        if zlib.crc32(payload) != crc:
            return
        after = end + (-length % 8)
        yield pos, after, payload
        pos = after


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
        # Through a view, not a slice: no copy of up to a segment, and crc32 drops the GIL.
        with memoryview(self.mm) as whole, whole[self.checked : self.committed] as written:
            crc = zlib.crc32(written)
        event = Checksum(file=self.path.name, start=self.checked, end=self.committed, crc=crc)
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
    spare: Segment | None = None


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

        The log ends at its first empty frame, or at one that fails its CRC (torn by a
        crash). With `complete`, it is also cut back to just after the last event for which
        `complete` is true: what follows belongs to a group of events whose writer died
        before finishing it. Everything past the end is zeroed, the first frame header
        first, so a reader sees a valid log at every moment. For appenders that own the
        file (one process at a time), like `HomeBackend`.

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
        magic = bytes(mm[: len(EVENTS_MAGIC)])
        if magic != EVENTS_MAGIC:
            if magic.strip(b"\x00"):
                mm.close()
                os.close(fd)
                raise StoreError(f"{path} is not an events file")
            mm[: len(EVENTS_MAGIC)] = EVENTS_MAGIC  # a create() that died before its magic
        kept: list[Event] = []
        pending: list[Event] = []
        cut = HEADER_SIZE
        for _, after, payload in frames(mm):
            try:
                event = event_from_dict(json.loads(payload))
            except (ValueError, StoreError):
                break  # unreadable: treated as the end, like a torn frame
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
        payload = json.dumps(event_to_dict(event), separators=(",", ":")).encode()
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
