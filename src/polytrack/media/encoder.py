"""The run's media encoder: a thread that turns copied values into blobs and records.

The user's thread hands over a `MediaJob` (its input already checked and copied) and
returns; the encoder thread (`polytrack-media-<run id>`, started by the first media call
and stopped by `finish()`) runs each job's `encode` (PNG, WAV, JSON: the slow part),
puts the bytes into the blob store, and, once a batch of blobs is fsynced and their
directories synced, appends one `MediaLogged` record per job. A record therefore never
points at bytes that are not there, whatever kills the process and whenever; what a
`kill -9` can lose is media whose encoding had not finished (`docs/media.md`).

The queue is bounded by the bytes it holds (`Settings.media_queue_bytes`): a log call
that would go past it waits for the encoder, so memory stays bounded whatever the loop
logs. Handing over is a deque append (and, once a few values wait, one wake-up): a log
call costs little more than the copy of its value.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from attrs import define, field, frozen

from polytrack.models import Event, MediaBlob, MediaLogged
from polytrack.store.blobs import BlobStore

__all__ = ["Encoded", "MediaEncoder", "MediaJob"]

# At most this many jobs between two syncs of the store: one fsync of the directories
# and a burst of records per batch, not per image.
BATCH: Final = 64
# The thread wakes by itself this often, or at once when a call leaves this many jobs
# waiting: a log call mostly just appends (waking a thread costs a lock and a switch).
WAKE_EVERY: Final = 0.1
WAKE_AT: Final = 4
# Jobs waiting past which the thread is behind: it then takes each kind's fast encoding
# (a PNG stored, not deflated: ~0.1 ms instead of 2-5 ms for 224x224x3), as it does for
# whatever is left when the run finishes.
BEHIND: Final = 8


@frozen
class Encoded:
    """One file a job made: its bytes and media type ("image/png", ...)."""

    data: bytes
    media_type: str


@define(slots=True)  # not frozen: made once per log call, where every microsecond shows
class MediaJob:
    """A checked, copied value waiting to be encoded, and what its record will say.

    `encode` runs on the encoder thread and returns the record's files, and the shape
    and meta to record when they are known only once encoded (an image scaled down).
    With `has_fast` the kind's `encode` takes `fast=`: True makes the same value in a
    bigger file at a fraction of the time (a PNG stored uncompressed), asked for while
    the queue is behind, so that `finish()` after a burst of images returns within
    about a second.
    """

    name: str
    kind: str
    step: int
    encode: Callable[..., tuple[Sequence[Encoded], tuple[int, ...] | None, dict[str, Any]]]
    shape: tuple[int, ...] = ()
    caption: str | None = None
    meta: dict[str, Any] = field(factory=dict)
    size: int = 0  # bytes held in memory until encoded: the queue's bound counts them
    logged_at: float = 0.0
    has_fast: bool = False


class MediaEncoder:
    """The run's media thread and its queue: see the module docstring.

    Owned by the run (`Run.own`); `stop()` encodes and records everything queued.

    Example:
        >>> encoder = MediaEncoder(store=BlobStore(home), record=writer.append_event,
        ...                        warn=writer.warn_once, run_id=run.id)
        >>> encoder.start()
        >>> encoder.submit(job)
        >>> encoder.stop()
    """

    def __init__(
        self,
        *,
        store: BlobStore,
        record: Callable[[Event], None],
        warn: Callable[[str, str], None],
        run_id: str,
        max_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.store = store
        self._record = record
        self._warn = warn
        self._run_id = run_id
        self._max_bytes = max_bytes
        # (bytes held, a MediaJob or (make, *args) for a job made on the thread).
        self._jobs: deque[tuple[int, Any]] = deque()
        self._wake = threading.Event()
        self._room = threading.Condition()
        # Bytes handed over and bytes done: each has one writer (the callers' total may
        # miss a concurrent caller's add, which only loosens the bound by one value).
        self._queued_bytes = 0
        self._done_bytes = 0
        self._submitted = 0  # jobs handed over (the callers' count)
        self._completed = 0  # jobs recorded or failed (the thread's count)
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"<polytrack.MediaEncoder {self._run_id}>"

    def start(self) -> None:
        """Start the thread that encodes."""
        self._thread = threading.Thread(
            target=self._loop, name=f"polytrack-media-{self._run_id}", daemon=True
        )
        self._thread.start()

    def submit(self, job: MediaJob) -> bool:
        """Queue a job; waits only while the queue holds `max_bytes` already.

        Returns False, queueing nothing, once `stop()` was called.
        """
        return self.submit_later(job.size, job)

    def submit_later(self, size: int, item: Any) -> bool:
        """Queue a `MediaJob`, or a tuple `(make, *args)` whose `make(*args)` makes one on
        the thread: the cheapest hand-over there is, for the hot path of images. `size`:
        the bytes it holds in memory. As `submit` otherwise."""
        if self._stopping:
            return False
        held = self._queued_bytes - self._done_bytes  # queued or being encoded
        if held and held + size > self._max_bytes:
            self._wait_for_room(size)
        queued = self._queued_bytes + size
        self._queued_bytes = queued
        self._submitted += 1
        jobs = self._jobs
        jobs.append((size, item))
        if len(jobs) >= WAKE_AT and not self._wake.is_set():
            self._wake.set()
        return True

    def _wait_for_room(self, size: int) -> None:
        with self._room:
            self._room.wait_for(
                # Room, or nothing held at all (one value bigger than the bound goes
                # through alone), or the thread ended.
                lambda: (
                    self._queued_bytes == self._done_bytes
                    or self._queued_bytes - self._done_bytes + size <= self._max_bytes
                    or self._stopping
                ),
                timeout=None,
            )

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every job handed over so far is recorded (or failed); False after
        `timeout` seconds with some still to do."""
        target = self._submitted
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._completed >= target, timeout)

    def stop(self) -> None:
        """Encode and record everything queued, then end the thread. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        if self._thread is None:
            return
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        while self._jobs:  # handed over while the thread was ending
            self._run_batch([self._jobs.popleft() for _ in range(min(BATCH, len(self._jobs)))])
        with self._room:
            self._room.notify_all()

    def _loop(self) -> None:
        while True:
            self._wake.wait(WAKE_EVERY)
            self._wake.clear()
            while self._jobs:
                batch: list[tuple[int, Any]] = []
                while self._jobs and len(batch) < BATCH:
                    batch.append(self._jobs.popleft())
                self._run_batch(batch)
            if self._stopping and not self._jobs:
                return

    def _run_batch(self, batch: list[tuple[int, Any]]) -> None:
        made: list[tuple[MediaJob, tuple[MediaBlob, ...], tuple[int, ...], dict[str, Any]]] = []
        for position, (size, item) in enumerate(batch):
            what = "a media value"
            try:
                job: MediaJob = item[0](*item[1:]) if type(item) is tuple else item
                what = f"{job.kind} {job.name!r}"
                behind = len(self._jobs) + len(batch) - position
                hurry = self._stopping or behind >= BEHIND
                files, shape, meta = job.encode(fast=hurry) if job.has_fast else job.encode()
                blobs = tuple(
                    MediaBlob(stored.digest, stored.size, encoded.media_type)
                    for encoded in files
                    for stored in (self.store.put_bytes(encoded.data),)
                )
                made.append((job, blobs, job.shape if shape is None else shape, meta))
            except Exception as exc:  # a tracking failure: never the training loop's
                self._warn_safely(f"polytrack could not store {what}: {exc}")
            finally:
                self._done_bytes += size
        with self._room:
            self._room.notify_all()
        try:
            self.store.flush()  # every blob of the batch durable before any record
            for job, blobs, shape, meta in made:
                self._record(
                    MediaLogged(
                        name=job.name,
                        kind=job.kind,
                        step=job.step,
                        blobs=blobs,
                        shape=shape,
                        caption=job.caption,
                        meta={**job.meta, **meta},
                        logged_at=job.logged_at,
                    )
                )
        except Exception as exc:
            self._warn_safely(f"polytrack could not record {len(made)} media values: {exc}")
        finally:
            with self._idle:
                self._completed += len(batch)
                self._idle.notify_all()

    def _warn_safely(self, message: str) -> None:
        # A warning turned into an error (-W error) must not end the thread.
        with contextlib.suppress(Exception):
            self._warn("media", message)
