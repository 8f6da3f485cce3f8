"""`JournalWriter`: writes one attempt of one run into its journal files.

The format is described in `polytrack.store.journal`. The log call is the training loop's hot
path: the C appender (`polytrack._speedups`) where it was built, else a closure over local
names. Everything else here is the slow path (validation, new keys, full segments) and the
background thread that fsyncs, beats the heartbeat and prepares the next segment.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from polytrack._text import has_surrogates, safe_repr
from polytrack.errors import InvalidInputError, InvalidMetricError, StoreError, TrackingWarning
from polytrack.models import Event, KeyDefined, KeyTable, SchemaDefined
from polytrack.store.journal import (
    HEADER_SIZE,
    KIND_POINT,
    KIND_ROW,
    MAX_KEYS,
    POINT_RECORD,
    POINT_SIZE,
    SEGMENT_MAX_AGE,
    Events,
    Segment,
    Stream,
    fsync_dir,
)

if TYPE_CHECKING:
    from polytrack._speedups import Appender

__all__ = ["JournalWriter", "LogMetrics", "check_key"]

# Beyond this many distinct key sets per attempt, dicts are written as single points:
# each stream costs a file and a map.
MAX_ROW_STREAMS: Final = 64
_ALLOCATION_BACKOFF: Final = 5.0
# At `start()`, a stream's next segments are mapped up to this size (128, 256 and 512 KiB
# after the first 64 KiB: ~0.9 MiB more on disk while a run lives, unlinked when it
# closes). A loop logging from the first second fills them within milliseconds, sooner
# than the flusher could map them (it would wait for the GIL), and would otherwise map
# them itself, ~0.2-0.5 ms each, in its first calls (issue 21).
_EARLY_SPARE_BYTES: Final = 512 * 1024


class LogMetrics(Protocol):
    """The signature of `Run.log_metrics`."""

    def __call__(
        self,
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None: ...


class JournalWriter:
    """Writes one attempt of one run: the events log and the metric streams.

    The log function returned by `make_log_metrics` is the training loop's hot path; all
    other methods are rare calls. A background thread (`polytrack-journal-<run>`), owned by
    this writer and stopped by `close()`, fsyncs, seals full segments, beats the heartbeat and maps
    the next segment of a filling stream before it is needed.
    """

    def __init__(
        self,
        directory: Path,
        *,
        run_id: str,
        attempt: int,
        events: Events,
        fsync_interval: float,
        heartbeat_interval: float,
        first_segment_bytes: int,
        max_segment_bytes: int,
    ) -> None:
        self.directory = directory
        self.run_id = run_id
        self.attempt = attempt
        self._events = events
        self._fsync_interval = fsync_interval
        self._heartbeat_interval = heartbeat_interval
        self._first_segment_bytes = first_segment_bytes
        self._max_segment_bytes = max_segment_bytes
        self._key_ids: dict[str, int] = {}
        self._rows: dict[tuple[str, ...], tuple[Any, ...] | None] = {}
        self._streams: list[Stream] = []
        self._retired: list[tuple[float, Segment]] = []
        self._lock = threading.RLock()  # rotation, key registration: never the hot path
        self._last_step = [-1]
        self._fast: Appender | None = None  # the C hot path, when built and enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned: set[str] = set()
        self._new_files = False
        self._retry_allocation_at = 0.0
        self.heartbeat_path = directory / "heartbeat"

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        run_id: str,
        attempt: int,
        fsync_interval: float = 1.0,
        heartbeat_interval: float = 5.0,
        first_segment_bytes: int = 64 * 1024,
        max_segment_bytes: int = 8 * 1024 * 1024,
        speedups: bool = True,
    ) -> JournalWriter:
        """Create the attempt's files in `directory` (which may hold earlier attempts)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            events = Events.create(directory / f"events-{attempt:03d}.log")
        except OSError as exc:
            raise StoreError(f"cannot create the run journal in {directory}: {exc}") from exc
        writer = cls(
            directory,
            run_id=run_id,
            attempt=attempt,
            events=events,
            fsync_interval=fsync_interval,
            heartbeat_interval=heartbeat_interval,
            first_segment_bytes=max(first_segment_bytes, HEADER_SIZE + 8 * POINT_SIZE),
            max_segment_bytes=max(max_segment_bytes, first_segment_bytes),
        )
        writer._streams.append(writer._new_stream(0, POINT_SIZE))
        if speedups:
            writer._use_speedups()
        writer.heartbeat_path.touch()
        fsync_dir(directory)
        return writer

    # -- rare writes ----------------------------------------------------------------------

    def append_event(self, event: Event) -> None:
        """Record an event durably (against process death) before returning."""
        self._events.append(event)

    def _use_speedups(self) -> None:
        try:
            from polytrack._speedups import Appender
        except ImportError:  # not compiled here: the pure-Python path does the same
            return
        self._fast = Appender(self._key_ids, self._log_call)
        current = self._streams[0].segments[-1]
        self._fast.attach(current.mm, current.capacity, time.monotonic() - current.base_mono)

    @property
    def speedups(self) -> bool:
        """Whether log calls go through the C appender."""
        return self._fast is not None

    @property
    def last_step(self) -> int:
        return int(self._fast.last_step) if self._fast is not None else self._last_step[0]

    def set_last_step(self, step: int) -> None:
        """Continue the auto-incremented step after `step` (used when resuming)."""
        self._last_step[0] = step
        if self._fast is not None:
            self._fast.last_step = step

    # -- the hot path ---------------------------------------------------------------------

    def make_log_metrics(self) -> LogMetrics:
        """Return the function that records a dict of metrics at a step.

        The C appender where it is built; else a closure over local names: an attribute
        lookup or a method call per log call would cost more than the record write.
        """
        if self._fast is not None:
            return self._fast
        mono = time.monotonic
        pack_point = POINT_RECORD.pack_into
        key_ids = self._key_ids
        rows = self._rows
        points = self._streams[0].cell
        last = self._last_step
        slow = self._log_slow
        POINT, ROW, HS, RS = KIND_POINT, KIND_ROW, HEADER_SIZE, POINT_SIZE

        def log_metrics(
            metrics: Mapping[str, Any] | None = None,
            step: int | None = None,
            epoch: int | None = None,
            **named: Any,
        ) -> None:
            now = mono()
            if named:  # Polyaxon's habit: log_metrics(loss=0.5, step=3)
                metrics = merge_named(metrics, named)
            if step is None:
                step = last[0] + 1
            elif type(step) is not int:  # True would pack as 1, 2.0 as 2: refuse as C does
                step = _check_step(step)
            if epoch is not None:
                _check_value("epoch", epoch)  # before anything of the call is written
            try:
                count = len(metrics)  # type: ignore[arg-type]
            except TypeError:
                _check_metrics(metrics)  # raises, naming what came instead of a mapping
                raise
            if count == 1:
                try:
                    for key, value in metrics.items():  # type: ignore[union-attr]  # noqa: B007
                        pass
                except AttributeError:
                    _check_metrics(metrics)
                    raise
                kid = key_ids.get(key)
                if kid is None:
                    slow(key, value, step, now)  # a new key (or not a string)
                else:
                    counter, mm, cap, base = points[0]
                    slot = next(counter)
                    if slot >= cap:
                        slow(key, value, step, now)  # rotates the full segment
                    else:
                        try:
                            pack_point(mm, HS + slot * RS, step, value, now - base, kid, POINT)
                        except Exception:
                            slow(key, value, step, now)  # raises, naming the key
            elif metrics:
                names = tuple(metrics)
                row = rows.get(names)
                if row is None:
                    self._log_points_slow(metrics, step, now)
                else:
                    cell, pack, number, size = row
                    counter, mm, cap, base = cell[0]
                    slot = next(counter)
                    if slot >= cap:
                        self._log_row_slow(names, metrics, step, now)
                    else:
                        try:
                            pack(
                                mm,
                                HS + slot * size,
                                step,
                                *metrics.values(),
                                now - base,
                                number,
                                ROW,
                            )
                        except Exception:
                            self._log_row_slow(names, metrics, step, now)
                if row is None and names not in rows:
                    self._define_row(names)
            if epoch is not None:
                slow("epoch", epoch, step, now)
            last[0] = step

        return log_metrics

    def write_sample(self, values: Mapping[str, float], step: int) -> None:
        """Record metrics from a background thread (the system sampler) at its own `step`.

        Safe beside the training thread's log calls: slots are claimed atomically, and the
        training loop's auto-incremented step is left alone. Raises `InvalidMetricError`.
        """
        self._write_points(_check_metrics(values), _check_step(step), time.monotonic())

    def _log_slow(self, key: object, value: object, step: object, now: float) -> None:
        """One point off the hot path: a new key, a full segment, a value to convert."""
        self._log_points_slow({key: value}, step, now)

    def _log_points_slow(self, metrics: object, step: object, now: float) -> None:
        """Validate every key and value first, so a bad one records nothing of the call."""
        self._write_points(_check_metrics(metrics), _check_step(step), now)

    def _write_points(self, values: dict[str, float], step: int, now: float) -> None:
        """Write validated points one by one; a failing disk warns once and drops the rest.

        Every key gets its id first, so a call that would pass the key cap raises before
        any of it is written.
        """
        kids = self._key_ids_of(values)
        for key, value in values.items():
            try:
                self._write_point(kids[key], value, step, now)
            except StoreError as exc:
                self.warn_once("store", f"polytrack could not record metric {key!r}: {exc}")
                return

    def _log_call(
        self,
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None:
        """What the C appender leaves to Python: new keys, other value types, a full
        segment, `epoch=`, metrics as keywords. Validates the whole call before writing
        any of it."""
        now = time.monotonic()
        fast = self._fast
        assert fast is not None
        values = _check_metrics(merge_named(metrics, named) if named else metrics)
        checked = _check_step(fast.last_step + 1 if step is None else step)
        if epoch is not None:
            values["epoch"] = _check_value("epoch", epoch)
        self._write_points(values, checked, now)
        fast.last_step = checked

    def _write_point(self, kid: int, value: float, step: int, now: float) -> None:
        if self._fast is not None:
            while not self._fast.write(kid, step, value):
                self._rotate(self._streams[0], self._streams[0].cell[0])
            return
        self._write_record(0, POINT_RECORD.pack_into, POINT_SIZE, (step, value), kid, now)

    def _log_row_slow(
        self, names: tuple[str, ...], metrics: Mapping[str, Any], step: object, now: float
    ) -> None:
        """A row whose segment is full, or whose values need converting."""
        values = [_check_value(key, metrics[key]) for key in names]
        checked = _check_step(step)
        row = self._rows[names]
        assert row is not None
        _, pack, number, size = row
        try:
            self._write_record(number, pack, size, (checked, *values), number, now)
        except StoreError as exc:
            self.warn_once("store", f"polytrack could not record metrics {names!r}: {exc}")

    def _write_record(
        self,
        number: int,
        pack: Callable[..., None],
        size: int,
        fields: tuple[float, ...],
        tag: int,
        now: float,
    ) -> None:
        """Write one record into stream `number` on the pure-Python path, rotating as needed.

        `tag` is the key id of a point (stream 0) or the stream number of a row.
        """
        stream = self._streams[number]
        kind = KIND_POINT if number == 0 else KIND_ROW
        while True:
            if self._closed:
                raise StoreError("the run's journal is closed")
            cell = stream.cell[0]
            counter, mm, cap, base = cell
            slot = next(counter)
            if slot >= cap:
                self._rotate(stream, cell)
                continue
            try:
                pack(mm, HEADER_SIZE + slot * size, *fields, max(0.0, now - base), tag, kind)
                return
            except ValueError:  # map closed under us by a concurrent rotation: retry
                continue

    def _key_id(self, key: object) -> int:
        return self._key_ids_of({check_key(key): 0.0})[key]  # type: ignore[index]

    def _key_ids_of(self, keys: Mapping[str, object]) -> dict[str, int]:
        """The ids of checked `keys`, defining the new ones: all of them, or none when they
        would pass the cap of `MAX_KEYS` (a call that raises records nothing)."""
        key_ids = self._key_ids
        found = {key: key_ids.get(key, 0) for key in keys}
        if all(found.values()):
            return found
        with self._lock:
            new = [key for key in keys if key not in key_ids]
            if len(key_ids) + len(new) > MAX_KEYS:
                raise InvalidMetricError(
                    f"metric {new[0]!r}: a run holds at most {MAX_KEYS} metric keys "
                    f"({len(key_ids)} defined, this call adds {len(new)}); nothing of it was "
                    "recorded"
                )
            for key in new:
                kid = len(key_ids) + 1
                self.append_event(KeyDefined(id=kid, name=key))
                key_ids[key] = kid
            return {key: key_ids[key] for key in keys}

    def _define_row(self, names: tuple[str, ...]) -> None:
        """Give a key set logged together its own stream of fixed-size rows."""
        with self._lock:
            if names in self._rows:
                return
            if len(self._streams) > MAX_ROW_STREAMS:
                self._rows[names] = None  # no row stream: single points
                return
            try:
                kids = tuple(self._key_id(name) for name in names)
            except InvalidMetricError:
                return  # the caller has raised already; nothing to remember
            number = len(self._streams)
            size = 16 + 8 * len(names)
            try:
                stream = self._new_stream(number, size)
                self.append_event(SchemaDefined(stream=number, keys=kids))
            except StoreError as exc:
                self.warn_once("store", f"polytrack could not add a metric stream: {exc}")
                self._rows[names] = None
                return
            self._streams.append(stream)
            pack = struct.Struct(f"<q{len(names)}dfHH").pack_into
            self._rows[names] = (stream.cell, pack, number, size)

    # -- segments -------------------------------------------------------------------------

    def _new_stream(self, number: int, record_size: int) -> Stream:
        stream = Stream(number, record_size, [], [], self._first_segment_bytes)
        segment = self._create_segment(stream)
        stream.segments.append(segment)
        stream.cell.append(segment.cell())
        return stream

    def _create_segment(self, stream: Stream) -> Segment:
        index = len(stream.segments) + len(stream.spares)
        path = self.directory / f"points-{self.attempt:03d}-{stream.number:03d}-{index:05d}.seg"
        try:
            segment = Segment.create(
                path,
                stream=stream.number,
                record_size=stream.record_size,
                size=max(stream.next_size, HEADER_SIZE + stream.record_size * 8),
                attempt=self.attempt,
            )
        except OSError as exc:
            raise StoreError(f"cannot allocate {path}: {exc}") from exc
        stream.next_size = min(stream.next_size * 2, self._max_segment_bytes)
        self._new_files = True
        return segment

    def _rotate(self, stream: Stream, seen: tuple[Any, ...]) -> None:
        """Swap in the next segment of `stream`, unless another thread already did."""
        with self._lock:
            if stream.cell[0] is not seen:
                return
            if self._closed:
                raise StoreError("the run's journal is closed")
            if not stream.spares and time.monotonic() < self._retry_allocation_at:
                # A full disk: don't pay for a failing fallocate on every log call.
                raise StoreError(f"no space for a new segment in {self.directory}")
            try:
                segment = stream.spares.pop(0) if stream.spares else self._create_segment(stream)
            except StoreError:
                self._retry_allocation_at = time.monotonic() + _ALLOCATION_BACKOFF
                raise
            old = stream.segments[-1]
            stream.segments.append(segment)
            stream.cell[0] = segment.cell()
            grace = 2 * self._fsync_interval + 1.0
            if self._fast is not None and stream.number == 0:
                old.handed_out = self._fast.detach()
                self._fast.attach(
                    segment.mm, segment.capacity, time.monotonic() - segment.base_mono
                )
                grace = 0.0  # the C appender writes whole records under the GIL: done
            # Python threads may still be storing into the old map; the flusher closes
            # it (unmaps, trims, fsyncs) after the grace period, off this thread.
            self._retired.append((time.monotonic() + grace, old))

    # -- background -----------------------------------------------------------------------

    def start(self) -> None:
        """Map the early segments of the streams so far ahead of need (see
        `_EARLY_SPARE_BYTES`), and start the flusher thread."""
        with self._lock:
            for stream in self._streams:
                while stream.next_size <= _EARLY_SPARE_BYTES:
                    try:
                        stream.spares.append(self._create_segment(stream))
                    except StoreError:  # a full disk: the log calls will say so
                        break
        self._thread = threading.Thread(
            target=self._flush_loop, name=f"polytrack-journal-{self.run_id}", daemon=True
        )
        self._thread.start()

    def _flush_loop(self) -> None:
        next_beat = time.monotonic() + self._heartbeat_interval
        while not self._stop.wait(self._fsync_interval):
            try:
                self.flush()
                if time.monotonic() >= next_beat:
                    os.utime(self.heartbeat_path)
                    next_beat = time.monotonic() + self._heartbeat_interval
                self._prepare_spares()
                self._close_retired(force=False)
            except Exception as exc:  # the flusher must outlive a full or broken disk
                self.warn_once("store", f"polytrack could not flush the run journal: {exc}")

    def flush(self) -> None:
        """fsync every mapped file (not msync: that holds the GIL for the disk write)."""
        with self._lock:
            segments = [s.segments[-1] for s in self._streams]
            segments += [seg for _, seg in self._retired]
        for segment in segments:
            os.fsync(segment.fd)
        self._events.flush()
        if self._new_files:
            self._new_files = False
            fsync_dir(self.directory)

    def _prepare_spares(self) -> None:
        """Map a half-full stream's next segment ahead of need; rotate aged segments."""
        now = time.monotonic()
        if now < self._retry_allocation_at:
            return
        for stream in list(self._streams):
            current = stream.segments[-1]
            fast = self._fast if stream.number == 0 else None
            used = fast.used if fast is not None else current.used()
            try:
                if not stream.spares and used * 2 >= current.capacity:
                    with self._lock:
                        if not stream.spares and not self._closed:
                            stream.spares.append(self._create_segment(stream))
                if used and now - current.base_mono > SEGMENT_MAX_AGE:
                    self._rotate(stream, stream.cell[0])
            except StoreError:
                self._retry_allocation_at = time.monotonic() + _ALLOCATION_BACKOFF
                raise

    def _close_retired(self, *, force: bool) -> None:
        now = time.monotonic()
        with self._lock:
            due = [item for item in self._retired if force or item[0] <= now]
            self._retired = [item for item in self._retired if item not in due]
        for _, segment in due:
            self._seal(segment)
            segment.close(truncate=True)

    def _seal(self, segment: Segment) -> None:
        """Checksum a segment that no thread writes any more."""
        segment.scan_committed()
        event = segment.checksum()
        if event is not None:
            self.append_event(event)

    def warn_once(self, kind: str, message: str, *, stacklevel: int = 2) -> None:
        """Warn about a kind of tracking failure the first time it happens in this run."""
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, TrackingWarning, stacklevel=stacklevel + 1)

    def close(self) -> None:
        """Stop the flusher, checksum and sync the tail, and trim segments to their data."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            self._closed = True
            if self._fast is not None:
                self._streams[0].segments[-1].handed_out = self._fast.detach()
        self._close_retired(force=True)
        for stream in self._streams:
            self._seal(stream.segments[-1])
            stream.segments[-1].close(truncate=True)
            for spare in stream.spares:
                spare.close(truncate=False)
                spare.path.unlink(missing_ok=True)
        self._copy_key_table()
        self._events.close()
        fsync_dir(self.directory)

    def _copy_key_table(self) -> None:
        """Write the key ids and row schemas once more, as one record at the end of the
        log: a damaged frame of either then costs no points."""
        if not self._key_ids:
            return
        schemas = {
            row[2]: tuple(self._key_ids[name] for name in names)
            for names, row in list(self._rows.items())
            if row is not None
        }
        keys = {kid: key for key, kid in list(self._key_ids.items())}
        try:
            self._events.append(KeyTable(keys=keys, schemas=schemas))
        except OSError as exc:  # a full disk: the first copy is all there is
            self.warn_once("store", f"polytrack could not finish the run journal: {exc}")


def merge_named(metrics: object, named: dict[str, Any]) -> Mapping[str, Any]:
    """The metrics of a call that names some (or all) as keywords, beside the mapping."""
    if metrics is None:
        return named
    if not isinstance(metrics, Mapping):
        _check_metrics(metrics)  # raises, naming what came instead of a mapping
    both = sorted(set(named).intersection(metrics))  # type: ignore[arg-type]
    if both:
        raise InvalidMetricError(
            f"metric {both[0]!r} is given twice: in the mapping and as a keyword"
        )
    return {**metrics, **named}  # type: ignore[dict-item]


def _check_metrics(metrics: object) -> dict[str, float]:
    """Every key and value of a log call, validated; raises naming the first bad one."""
    if not isinstance(metrics, Mapping):
        raise InvalidMetricError(
            "metrics must be a mapping of names to values (or names as keywords); "
            f"got {type(metrics).__name__}"
        )
    return {check_key(key): _check_value(key, value) for key, value in metrics.items()}


def check_key(key: object) -> str:
    """`key` if it can name a metric (text of 1 to 250 characters, valid UTF-8), for the
    writers of the store: the live one and the importer's.

    Raises:
        InvalidMetricError: it cannot (names it).
    """
    if not isinstance(key, str):
        raise InvalidMetricError(
            f"metric keys must be strings; got {type(key).__name__} {safe_repr(key)}"
        )
    if not key or len(key) > 250:
        raise InvalidMetricError(f"metric key {safe_repr(key)} must have 1 to 250 characters")
    if has_surrogates(key):  # no UTF-8 reader (SQLite, a terminal, a server) could take it
        raise InvalidMetricError(
            f"metric key {key!r} holds a lone surrogate, which is not text: decode the "
            "name's bytes with errors='replace'"
        )
    return key


def _check_value(key: object, value: object) -> float:
    if not isinstance(value, (str, bytes, bytearray)):  # float("3") would parse text
        # A 0-d array or tensor through .item(): torch warns on float() of a tensor that
        # requires grad (a loss, logged as it is), never on .item().
        item = getattr(value, "item", None)
        if callable(item) and getattr(value, "ndim", None) == 0:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                value = item()
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            pass
    raise InvalidMetricError(
        f"metric {safe_repr(key)}: value must be a real number, got {type(value).__name__} "
        f"{safe_repr(value)}"
    )


def _check_step(step: object) -> int:
    if isinstance(step, bool):
        raise InvalidInputError(f"step must be an integer, got bool {step!r}")
    try:
        value = int(step.__index__())  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        raise InvalidInputError(
            f"step must be an integer, got {type(step).__name__} {safe_repr(step)}"
        ) from None
    if not -(2**63) <= value < 2**63:
        raise InvalidInputError(f"step {safe_repr(value)} does not fit in 64 bits")
    return value
