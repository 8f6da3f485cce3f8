"""Polyaxon's metric event files, and the staging log they are built from.

Polyaxon (traceml) keeps one text file per metric, `events/metric/<name>.plx`: a header
`step|timestamp|metric`, then a line per point. An upload replaces the server's file, so
the backend keeps every point it accepted in `StagedEvents`, an append-only log in its
workdir, and uploads each metric's whole file from it (`polytrack.sync.backends.polyaxon`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import time
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from polytrack.errors import BackendUnavailableError
from polytrack.store.journal import fsync_dir
from polytrack.sync.backends.base import Series

__all__ = ["StagedEvents", "compiled_format_events", "event_lines", "event_name"]

# The traceml event-file header of a metric; every line after it starts with "\n".
_EVENT_HEADER: Final = b"step|timestamp|metric"
_LOG: Final = "staged.log"
_UPLOADED: Final = "uploaded.json"
_IOV_MAX: Final = 1024  # buffers per writev (POSIX's IOV_MAX on Linux)


def event_name(key: str) -> str:
    """A metric key as Polyaxon names its event file (its client's `to_fqn_name`).

    Example: `event_name("system/cpu")` -> `'system__cpu'`
    """
    value = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\\/.\s-]", "", value).strip()
    value = re.sub(r"[\\/]+", "__", value)
    value = re.sub(r"[-.\s]+", "-", value)
    return value or "metric"


def event_lines(series: Series, *, speedups: bool = True) -> bytes:
    """The series as traceml event lines, each "\\n<step>|<UTC time>|<value>".

    Times are written as `str(datetime)` writes them, always with microseconds
    (`2024-01-01 00:00:00.000000+00:00`), values as `repr` (exact; nan and inf are read
    back by Polyaxon as null). In C (`polytrack._speedups.format_events`, byte for byte
    the same text) where it was built and `speedups` is true, else in Python.
    """
    if not len(series):
        return b""
    micros = np.rint(series.times * 1e6).astype(np.int64)
    compiled = compiled_format_events() if speedups else None
    if compiled is not None:
        return compiled(
            np.ascontiguousarray(series.steps, dtype=np.int64),
            micros,
            np.ascontiguousarray(series.values, dtype=np.float64),
        )
    return _event_lines_in_python(series.steps, micros, series.values)


_FormatEvents = Callable[
    [npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]], bytes
]


@functools.cache
def compiled_format_events() -> _FormatEvents | None:
    try:
        from polytrack._speedups import format_events
    except ImportError:  # not compiled here, or compiled before it had format_events
        return None
    return format_events


def _event_lines_in_python(
    steps: npt.NDArray[np.int64], micros: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> bytes:
    """`event_lines` in Python, from the times in whole microseconds.

    Built column by column and joined once: `repr` of the values is most of the cost;
    each run of equal whole seconds is formatted once, the microseconds through two
    1,000-entry tables.
    """
    n = int(micros.size)
    if not n:
        return b""
    seconds, fraction = np.divmod(micros, 1_000_000)
    first = np.concatenate(([0], np.flatnonzero(np.diff(seconds)) + 1))
    counts = np.diff(np.concatenate((first, [n])))
    prefixes = np.array(
        [time.strftime("|%Y-%m-%d %H:%M:%S.", time.gmtime(s)) for s in seconds[first].tolist()],
        dtype=object,
    )
    milli, micro = np.divmod(fraction, 1000)
    pieces: list[str] = [""] * (6 * n)
    pieces[0::6] = ["\n"] * n
    pieces[1::6] = map(str, steps.tolist())
    pieces[2::6] = np.repeat(prefixes, counts).tolist()
    pieces[3::6] = map(_DIGITS.__getitem__, milli.tolist())
    pieces[4::6] = map(_DIGITS_UTC.__getitem__, micro.tolist())
    pieces[5::6] = _value_texts(values)
    return "".join(pieces).encode("ascii")


def _value_texts(values: npt.NDArray[np.float64]) -> list[str]:
    """`repr` of each value; each distinct value once when few are distinct (system
    metrics, step-wise learning rates), told apart by their bits (so 0.0 is not -0.0)."""
    if values.size >= 256:
        bits = values.view(np.int64)
        if np.unique(bits[:128]).size <= 32:
            distinct, inverse = np.unique(bits, return_inverse=True)
            if distinct.size * 4 <= values.size:
                texts = np.array(
                    list(map(float.__repr__, distinct.view(np.float64).tolist())), dtype=object
                )
                return texts[inverse].tolist()  # type: ignore[no-any-return]
    return list(map(float.__repr__, values.tolist()))


_DIGITS: Final = [f"{i:03d}" for i in range(1000)]
_DIGITS_UTC: Final = [f"{i:03d}+00:00|" for i in range(1000)]


@attrs.define
class StagedEvents:
    """One run's staging: the append-only log of event lines, and what was uploaded.

    A log record is a JSON header line (`seq`, payload `size` and `crc`, and `chunks`:
    [event name, metric key, bytes] in payload order) followed by the payload. A metric's
    event file is the header followed by all its chunks, in log order.
    """

    directory: Path
    fd: int
    size: int  # bytes of committed records
    seqs: set[int] = attrs.field(factory=set)
    names: dict[str, str] = attrs.field(factory=dict)  # metric key -> event name
    chunks: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)  # name -> spans
    totals: dict[str, int] = attrs.field(factory=dict)  # name -> bytes staged
    last: dict[str, float] = attrs.field(factory=dict)  # name -> last value
    uploaded: dict[str, int] = attrs.field(factory=dict)  # name -> bytes at last upload
    artifacts: dict[str, str] = attrs.field(factory=dict)  # artifact name -> digest

    @classmethod
    def open(cls, directory: Path) -> StagedEvents:
        """Open (or create) the staging of `directory`, dropping a torn last record."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _LOG
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if created:
                fsync_dir(directory)
            staged = cls(directory, fd, 0)
            staged._replay()
            staged._read_uploaded()
        except BaseException:
            os.close(fd)
            raise
        return staged

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- reading back ----------------------------------------------------------------------

    def _replay(self) -> None:
        end = os.fstat(self.fd).st_size
        records: list[tuple[int, int, dict[str, Any]]] = []  # (start, payload start, header)
        with open(self.fd, "rb", closefd=False) as log:
            log.seek(0)
            position = 0
            while position < end:
                line = log.readline()
                header = _parse_header(line)
                payload = position + len(line)
                if header is None or payload + header["size"] > end:
                    break
                records.append((position, payload, header))
                position = payload + header["size"]
                log.seek(position)
        if records:
            start, payload, header = records[-1]
            # Only the last record can be torn: each was fsynced before the next began.
            if zlib.crc32(os.pread(self.fd, header["size"], payload)) != header["crc"]:
                records.pop()
                position = start
        if position != end:
            os.ftruncate(self.fd, position)
            os.fsync(self.fd)
        self.size = position
        for _, payload, header in records:
            self._index(payload, header)
        for name, spans in self.chunks.items():
            offset, length = spans[-1]
            tail = os.pread(self.fd, min(length, 512), offset + length - min(length, 512))
            self.last[name] = float(tail.rsplit(b"\n", 1)[-1].rsplit(b"|", 1)[-1])

    def _index(self, payload: int, header: Mapping[str, Any]) -> None:
        self.seqs.add(header["seq"])
        offset = payload
        for name, key, length in header["chunks"]:
            self.names.setdefault(key, name)
            self.chunks.setdefault(name, []).append((offset, length))
            self.totals[name] = self.totals.get(name, 0) + length
            offset += length

    def _read_uploaded(self) -> None:
        # Losing this file costs a re-upload, never data: read it leniently.
        try:
            data = json.loads((self.directory / _UPLOADED).read_text())
            self.uploaded = {str(k): int(v) for k, v in data["metrics"].items()}
            self.artifacts = {str(k): str(v) for k, v in data["artifacts"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.uploaded, self.artifacts = {}, {}

    # -- writing ---------------------------------------------------------------------------

    def name_for(self, key: str) -> str:
        """The event name of `key`, assigning a free one on first sight."""
        name = self.names.get(key)
        if name is None:
            base = event_name(key)
            taken = set(self.names.values())
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            self.names[key] = name
        return name

    def append(self, seq: int, series: Sequence[Series]) -> None:
        """Commit the batch's lines and its seq in one record, durably.

        Raises:
            OSError: the record could not be written; the log is left as it was, so that
                the engine's retry of the batch starts clean.
        """
        pieces: list[bytes] = []
        chunks: list[list[Any]] = []
        last: dict[str, float] = {}
        for one in series:
            lines = event_lines(one)
            if lines:
                name = self.name_for(one.key)
                pieces.append(lines)
                chunks.append([name, one.key, len(lines)])
                last[name] = float(one.values[-1])
        crc = size = 0
        for piece in pieces:  # no joined copy of the payload: it can be tens of MB
            crc = zlib.crc32(piece, crc)
            size += len(piece)
        header = {"seq": seq, "size": size, "crc": crc, "chunks": chunks}
        head = json.dumps(header, separators=(",", ":")).encode() + b"\n"
        record = [head, *pieces]
        try:
            for start in range(0, len(record), _IOV_MAX):
                group = record[start : start + _IOV_MAX]
                if os.writev(self.fd, group) != sum(map(len, group)):
                    raise OSError(errno.ENOSPC, "short write")
            os.fdatasync(self.fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self._index(self.size + len(head), header)
        self.last.update(last)
        self.size += len(head) + size

    def pending(self) -> list[str]:
        """Event names whose staged bytes differ from what was last uploaded."""
        return [name for name, total in self.totals.items() if self.uploaded.get(name) != total]

    def save_uploaded(self) -> None:
        """Remember what was uploaded (atomically; losing it costs only a re-upload).

        Raises:
            BackendUnavailableError: the file cannot be written (the upload is repeated).
        """
        path = self.directory / _UPLOADED
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(
                json.dumps({"metrics": self.uploaded, "artifacts": self.artifacts})
            )
            os.replace(temporary, path)
        except OSError as exc:
            raise BackendUnavailableError(f"cannot write {path}: {exc.strerror}") from exc

    def event_file(self, name: str) -> tuple[list[bytes | tuple[int, int, int]], int]:
        """The pieces of `name`'s event file (header, then log spans) and its size."""
        pieces: list[bytes | tuple[int, int, int]] = [_EVENT_HEADER]
        pieces += [(self.fd, offset, length) for offset, length in self.chunks.get(name, [])]
        return pieces, len(_EVENT_HEADER) + self.totals.get(name, 0)


def _parse_header(line: bytes) -> dict[str, Any] | None:
    """A record's header line, or None when it is torn or not one."""
    if not line.endswith(b"\n"):
        return None
    try:
        header = json.loads(line)
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    seq, size, crc, chunks = (header.get(name) for name in ("seq", "size", "crc", "chunks"))
    if not (isinstance(seq, int) and isinstance(crc, int) and isinstance(size, int)):
        return None
    if not isinstance(chunks, list) or not all(
        isinstance(c, list)
        and len(c) == 3
        and isinstance(c[0], str)
        and isinstance(c[1], str)
        and isinstance(c[2], int)
        and c[2] > 0
        for c in chunks
    ):
        return None
    if size < 0 or sum(c[2] for c in chunks) != size:
        return None
    return header


