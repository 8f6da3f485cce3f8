"""Polyaxon's event files, and the staging log they are built from.

Polyaxon (traceml) keeps one text file per metric, `events/metric/<name>.plx`: a header
`step|timestamp|metric`, then a line per point. An upload replaces the server's file, so
the backend keeps every point it accepted in `StagedEvents`, an append-only log in its
workdir, and uploads each metric's whole file from it (`polytrack.sync.backends.polyaxon`).

Media go the same way, as Polyaxon's own event kinds (`media_events` maps a
`MediaLogged` record to them), one file per kind and name, `events/<kind>/<name>.plx`:

| polytrack kind | Polyaxon event: value | asset (`assets/<kind>/<name>_<step>.<ext>`) |
| --- | --- | --- |
| image | image: height, width, colorspace, path | the PNG (image i > 0 of a batch: `<name>__<i>`) |
| figure (matplotlib) | image, from its PNG | the PNG |
| figure (plotly, bokeh, vega-lite) | chart: kind plotly/bokeh/vega, figure: the spec | |
| histogram | histogram: values (the n counts), counts (the n + 1 edges) | |
| curve | curve: kind roc/pr/custom, x, y, annotation (or the auc / AP) | |
| confusion | confusion: x, y, z | |
| table | dataframe: path, content_type "csv" | the table as CSV (header row) |
| audio | audio: sample_rate, num_channels, length_frames, path, content_type | the WAV |
| video | video: height, width, colorspace, path, content_type (gif/mp4/webm) | the file |
| text, html | text, html: the string | |

The histogram's field names are traceml's own, swapped as its client fills them:
`values, counts = np.histogram(...)`, so `values` holds the counts and `counts` the edges.
The CSV kinds are written as traceml writes them (`step|timestamp|<JSON>`, header
`step|timestamp|<kind>`); a value holding a `|` is quoted, CSV style, which the server's
reader (pyarrow) undoes. text, html and chart files are JSON lines, as traceml 1.5 writes
them and haupt reads them: `{"timestamp": ..., "step": ..., "<kind>": <string>}`, a chart's
value being its JSON as a string. A media file keeps one event per step, the last one
logged (the asset of a step is one file, replaced by the later one too).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import io
import json
import math
import os
import re
import struct
import time
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
from attrs import frozen

from polytrack.errors import BackendUnavailableError, StoreError
from polytrack.models import MediaLogged
from polytrack.store.journal import fsync_dir
from polytrack.sync.backends.base import Series

__all__ = [
    "MediaAsset",
    "MediaEvent",
    "StagedEvents",
    "compiled_format_events",
    "event_lines",
    "event_name",
    "media_events",
    "table_csv",
]

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

    A log record is a JSON header line (`seq`, payload `size` and `crc`, `chunks`:
    [event name, metric key, bytes] in payload order, then `media`, where the batch has
    any: [file, media key, step, bytes], one event line each) followed by the payload. A
    metric's event file is the header followed by all its chunks, in log order. A media
    file is named `<kind>/<event name>` (a metric's name has no "/"): its header (none
    for the JSON-lines kinds), then the latest line of each step, steps in the order they
    first came. `totals` counts every byte staged for a file, so that it changes with
    each line, also one that replaces another.
    """

    directory: Path
    fd: int
    size: int  # bytes of committed records
    seqs: set[int] = attrs.field(factory=set)
    names: dict[str, str] = attrs.field(factory=dict)  # metric key -> event name
    chunks: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)  # name -> spans
    totals: dict[str, int] = attrs.field(factory=dict)  # name or file -> bytes staged
    last: dict[str, float] = attrs.field(factory=dict)  # name -> last value
    uploaded: dict[str, int] = attrs.field(factory=dict)  # name -> bytes at last upload
    artifacts: dict[str, str] = attrs.field(factory=dict)  # artifact name -> digest
    # (Polyaxon kind, media key) -> event name; media file -> step -> its latest line.
    media_names: dict[tuple[str, str], str] = attrs.field(factory=dict)
    steps: dict[str, dict[int, tuple[int, int]]] = attrs.field(factory=dict)

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
        for name, spans in self.chunks.items():  # metrics only: media are in `steps`
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
        for file, key, step, length in header.get("media", ()):
            kind, _, name = file.partition("/")
            self.media_names.setdefault((kind, key), name)
            self.steps.setdefault(file, {})[step] = (offset, length)
            self.totals[file] = self.totals.get(file, 0) + length
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

    def media_name_for(self, kind: str, key: str) -> str:
        """The event name of media `key` among Polyaxon's `kind` events, assigning a free
        one on first sight (as `name_for` does for metrics)."""
        name = self.media_names.get((kind, key))
        if name is None:
            base = event_name(key)
            taken = {n for (k, _), n in self.media_names.items() if k == kind}
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            self.media_names[(kind, key)] = name
        return name

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

    def append(
        self,
        seq: int,
        series: Sequence[Series],
        media: Sequence[tuple[str, str, int, bytes]] = (),
    ) -> None:
        """Commit the batch's lines and its seq in one record, durably.

        `media`: (file `<kind>/<event name>`, media key, step, event line) for each media
        event of the batch.

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
        media_chunks: list[list[Any]] = []
        for file, key, step, line in media:
            pieces.append(line)
            media_chunks.append([file, key, step, len(line)])
        crc = size = 0
        for piece in pieces:  # no joined copy of the payload: it can be tens of MB
            crc = zlib.crc32(piece, crc)
            size += len(piece)
        header: dict[str, Any] = {"seq": seq, "size": size, "crc": crc, "chunks": chunks}
        if media_chunks:
            header["media"] = media_chunks
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
        """The pieces of `name`'s event file (header, then log spans) and its size; `name`
        is a metric's event name or a media file's `<kind>/<event name>`."""
        pieces: list[bytes | tuple[int, int, int]]
        if "/" in name:
            kind = name.partition("/")[0]
            header = b"" if kind in _JSONL_KINDS else b"step|timestamp|" + kind.encode()
            spans = list(self.steps.get(name, {}).values())
            pieces = [header] if header else []
            pieces += [(self.fd, offset, length) for offset, length in spans]
            return pieces, len(header) + sum(length for _, length in spans)
        pieces = [_EVENT_HEADER]
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
    media = header.get("media", [])
    if not isinstance(media, list) or not all(
        isinstance(m, list)
        and len(m) == 4
        and isinstance(m[0], str)
        and "/" in m[0]
        and isinstance(m[1], str)
        and isinstance(m[2], int)
        and isinstance(m[3], int)
        and m[3] > 0
        for m in media
    ):
        return None
    if size < 0 or sum(c[2] for c in chunks) + sum(m[3] for m in media) != size:
        return None
    return header


# -- media as Polyaxon's event kinds -------------------------------------------------------

# Kinds whose event files traceml 1.5 writes (and haupt reads) as JSON lines, no header.
_JSONL_KINDS: Final = frozenset({"text", "html", "chart"})
_CHART_KINDS: Final = {"plotly": "plotly", "bokeh": "bokeh", "vega-lite": "vega", "vega": "vega"}
_CURVE_KINDS: Final = frozenset({"roc", "pr", "custom"})
_VIDEO_TYPES: Final = {"image/gif": "gif", "video/mp4": "mp4", "video/webm": "webm"}
# A PNG's colour type -> channels (gray, RGB, palette, gray + alpha, RGBA).
_PNG_CHANNELS: Final = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@frozen
class MediaAsset:
    """The file a media event points at, uploaded to `assets/<kind>/<name>_<step>.<ext>`.

    `marker` names what the file is made from (a blob's digest): the backend uploads it
    again only when the marker of that path changed. `load` makes the bytes, on demand:
    a file already uploaded is never read.
    """

    ext: str
    marker: str
    load: Callable[[], bytes] = attrs.field(eq=False, repr=False)


@frozen
class MediaEvent:
    """One Polyaxon event made from a media record.

    `kind` is Polyaxon's (the folder under `events/`), `key` names the event file (the
    media name; `<name>/<i>` for image i > 0 of a batch), `value` is the event's JSON
    value (a dict, its `path` filled in from the asset's place), or the string of a text
    or html event.
    """

    kind: str
    key: str
    step: int
    at: float
    value: Any
    asset: MediaAsset | None = None

    def asset_path(self, name: str) -> str:
        """Where the asset goes in the run's artifacts, as traceml's `get_asset_path`
        places it, for the event file called `name`."""
        ext = f".{self.asset.ext}" if self.asset is not None else ""
        return f"assets/{self.kind}/{name}_{self.step}{ext}"

    def line(self, name: str) -> bytes:
        """The event's line in the file `events/<kind>/<name>.plx`, with its leading "\\n".

        Example: `'\\n3|2024-11-26 09:12:25.500000+00:00|{"values":[1,2],"counts":[0,1,2]}'`
        """
        value = self.value
        if self.asset is not None:
            value = {**value, "path": self.asset_path(name)}
        stamp = _stamp(self.at)
        if self.kind in _JSONL_KINDS:
            text = value if isinstance(value, str) else _json(value)
            record = {"timestamp": stamp, "step": self.step, self.kind: text}
            return ("\n" + json.dumps(record, ensure_ascii=False)).encode()
        field = _json(value)
        if "|" in field or field.startswith('"'):
            field = '"' + field.replace('"', '""') + '"'
        return f"\n{self.step}|{stamp}|{field}".encode()


def media_events(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    """The Polyaxon events of one media record (see the module docstring for the map).

    Args:
        record: the journal's record.
        read: a blob's bytes by digest (`BlobStore.read_bytes`).

    Raises:
        ValueError: the record cannot be made into an event (a blob missing from the
            store or not what its kind holds); the message names the record.

    Example: `media_events(record, BlobStore(home).read_bytes)[0].line("samples")`
    """
    try:
        return _CONVERTERS[record.kind](record, read)
    except (StoreError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"{record.kind} {record.name!r} at step {record.step}: {exc}") from exc


def _image(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    pngs = [blob for blob in record.blobs if blob.media_type == "image/png"]
    if not pngs:
        raise ValueError("it holds no PNG")
    shape = record.shape[1:4] if len(record.shape) == 4 else None
    events = []
    for i, blob in enumerate(pngs):
        if shape is None:
            shape = _png_shape(read(blob.digest))
        height, width, channels = shape
        value = {"height": height, "width": width, "colorspace": channels}
        key = record.name if i == 0 else f"{record.name}/{i}"
        asset = MediaAsset("png", blob.digest, functools.partial(read, blob.digest))
        events.append(MediaEvent("image", key, record.step, record.logged_at, value, asset))
    return events


def _figure(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    figure = json.loads(read(_blob(record, "application/json").digest))
    library = str(figure.get("library") or record.meta.get("library") or "")
    chart = _CHART_KINDS.get(library)
    if chart is not None:
        value = {"kind": chart, "figure": figure["spec"]}
        return [MediaEvent("chart", record.name, record.step, record.logged_at, value)]
    if any(blob.media_type == "image/png" for blob in record.blobs):  # matplotlib
        return _image(attrs.evolve(record, shape=()), read)
    raise ValueError(f"a {library or 'figure'} without a PNG rendering")


def _histogram(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    data = json.loads(read(_blob(record, "application/json").digest))
    edges, counts = list(data["edges"]), list(data["counts"])
    if len(edges) != len(counts) + 1:
        raise ValueError(f"{len(edges)} edges for {len(counts)} counts")
    value = {"values": counts, "counts": edges}  # traceml's names, as its client fills them
    return [MediaEvent("histogram", record.name, record.step, record.logged_at, value)]


def _text(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    text = read(_blob(record, "text/plain", "text/html").digest).decode("utf-8")
    return [MediaEvent(record.kind, record.name, record.step, record.logged_at, text)]


def _table(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    digest = _blob(record, "application/json").digest
    asset = MediaAsset("csv", digest, lambda: table_csv(read(digest)))
    value = {"content_type": "csv"}
    return [MediaEvent("dataframe", record.name, record.step, record.logged_at, value, asset)]


def _audio(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    blob = _blob(record, "audio/wav", "audio/x-wav", "audio/wave")
    value: dict[str, Any] = {"content_type": "audio/wav"}
    if "sample_rate" in record.meta:
        value["sample_rate"] = record.meta["sample_rate"]
    if len(record.shape) == 2:
        value["length_frames"], value["num_channels"] = record.shape
    asset = MediaAsset("wav", blob.digest, functools.partial(read, blob.digest))
    return [MediaEvent("audio", record.name, record.step, record.logged_at, value, asset)]


def _video(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    blob = _blob(record, *_VIDEO_TYPES)
    ext = _VIDEO_TYPES[blob.media_type]
    value: dict[str, Any] = {"content_type": ext}
    if len(record.shape) == 4:
        _, value["height"], value["width"], value["colorspace"] = record.shape
    asset = MediaAsset(ext, blob.digest, functools.partial(read, blob.digest))
    return [MediaEvent("video", record.name, record.step, record.logged_at, value, asset)]


def _curve(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    data = json.loads(read(_blob(record, "application/json").digest))
    x, y = list(data["x"]), list(data["y"])
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x for {len(y)} y")
    meta = record.meta
    kind = meta.get("kind") if meta.get("kind") in _CURVE_KINDS else "custom"
    annotation = meta.get("annotation")
    if annotation is None:
        score = meta.get("auc") if kind == "roc" else meta.get("average_precision")
        annotation = None if score is None else str(score)
    value = {"kind": kind, "x": x, "y": y, "annotation": annotation}
    return [MediaEvent("curve", record.name, record.step, record.logged_at, value)]


def _confusion(record: MediaLogged, read: Callable[[str], bytes]) -> list[MediaEvent]:
    data = json.loads(read(_blob(record, "application/json").digest))
    value = {"x": list(data["x"]), "y": list(data["y"]), "z": list(data["z"])}
    return [MediaEvent("confusion", record.name, record.step, record.logged_at, value)]


_CONVERTERS: Final[dict[str, Callable[[MediaLogged, Callable[[str], bytes]], list[MediaEvent]]]] = {
    "image": _image,
    "figure": _figure,
    "histogram": _histogram,
    "text": _text,
    "html": _text,
    "table": _table,
    "audio": _audio,
    "video": _video,
    "curve": _curve,
    "confusion": _confusion,
}


def table_csv(data: bytes) -> bytes:
    """A table blob (`{"columns", "data", "dtypes"}`) as the CSV of a Polyaxon dataframe
    event: a header row, then a row each; None is an empty cell, NaN too (as pandas
    writes it), other non-strings their `repr` or JSON.

    Raises:
        ValueError: not such a table.

    Example: `table_csv(b'{"columns":["a"],"data":[[1],[null]]}')` -> `b'a\\n1\\n\\n'`
    """
    table = json.loads(data)
    columns, rows = table["columns"], table["data"]
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise ValueError("a table holds lists of columns and rows")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_cell(column) for column in columns])
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (str, bool, int)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _blob(record: MediaLogged, *media_types: str) -> Any:
    for blob in record.blobs:
        if blob.media_type in media_types:
            return blob
    raise ValueError(f"it holds no {' or '.join(media_types)} blob")


def _png_shape(data: bytes) -> tuple[int, int, int]:
    """(height, width, channels) from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("its image is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return height, width, _PNG_CHANNELS.get(data[25], 3)


def _stamp(at: float) -> str:
    """A unix time as the metric lines write it: `2024-01-01 00:00:00.000000+00:00`."""
    seconds, micros = divmod(round(at * 1e6), 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}+00:00"


def _json(value: Any) -> str:
    """Compact JSON, as traceml's orjson writes it: the event's fields that are None left
    out (traceml's `exclude_none`), non-finite floats as null."""
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if item is not None}
    return json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
